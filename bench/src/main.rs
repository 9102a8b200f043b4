//! `wharf-bench OP ARGS…`: one operation of wharf, run once, for `cargo xtask bench` to time
//! with `/usr/bin/time` beside the peer tools. Prints one line of result on stdout.
//!
//! - `sha256 FILE` — the streaming hasher over a file.
//! - `package DIR STAGING` — package a model directory as a ModelPack artifact.
//! - `push-layout DIR STAGING ROOT` — package and push into an OCI layout.

use std::path::PathBuf;

use anyhow::{Context, bail};
use wharf_registry::layout::LayoutRegistry;
use wharf_registry::package::{ModelSpec, package_modelpack};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> anyhow::Result<PathBuf> {
        args.get(i)
            .map(PathBuf::from)
            .context("missing argument; see the doc comment of bench/src/main.rs")
    };
    match args.first().map(String::as_str) {
        Some("sha256") => {
            let path = arg(1)?;
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let (digest, n) = wharf_core::Digest::from_reader(wharf_core::Algorithm::Sha256, file)?;
            println!("{digest} {n}");
        }
        Some("package") => {
            let packaged = package_modelpack(&ModelSpec::new(arg(1)?, "bench", "1.0.0"), &arg(2)?)?;
            println!("{}", packaged.digest());
        }
        Some("push-layout") => {
            let packaged = package_modelpack(&ModelSpec::new(arg(1)?, "bench", "1.0.0"), &arg(2)?)?;
            let root = arg(3)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let reg = LayoutRegistry::open(&root)?;
                packaged.push(&reg, "bench/model", Some("v1")).await
            })?;
            println!("{}", packaged.digest());
        }
        other => bail!("unknown operation {other:?}: use sha256, package or push-layout"),
    }
    Ok(())
}
