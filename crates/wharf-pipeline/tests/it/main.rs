//! Integration tests for wharf-pipeline: run outcomes and the always-audited guarantee,
//! the governance stage on the example model, and the example config.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod config;
mod deploy;
mod governance;
mod package;
mod runs;
mod scan;
mod sign;
mod standard;

use std::path::PathBuf;

pub(crate) fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}
