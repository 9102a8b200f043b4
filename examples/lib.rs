//! wharf's examples: `models/fraud-detector` (a small real model with valid and invalid
//! manifests), `wharf.toml` (the embedded defaults), and `custom_pipeline.rs` (a pipeline
//! written against the traits). This library only locates them.

use std::path::{Path, PathBuf};

/// The `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}
