//! `cargo xtask fsck`: check the project's OCI layout — every blob re-hashed, every tag and
//! every blob a manifest names present with its size, no temp files of killed runs — and,
//! with `--repair`, remove what is damaged so the next run stores it again. Exit 0 clean
//! (or repaired), 1 damage remains, 2 bad input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use wharf_pipeline::Config;

use crate::pipeline::exit;

/// Check (and repair) the OCI layout the pipeline pushes to.
#[derive(clap::Args, Debug)]
pub(crate) struct FsckCmd {
    /// The project config naming `registry.layout` (default: examples/wharf.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check this layout root instead of the config's.
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Remove damaged blobs and stale temp files (a later push stores the content again).
    #[arg(long)]
    repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl FsckCmd {
    pub(crate) fn run(&self) -> ExitCode {
        match self.execute() {
            Ok(code) => ExitCode::from(code),
            Err(err) => {
                eprintln!("error: {}", crate::pipeline::one_line(&err));
                ExitCode::from(exit::INVALID)
            }
        }
    }

    fn execute(&self) -> anyhow::Result<u8> {
        let root = match &self.layout {
            Some(dir) => dir.clone(),
            None => {
                let path = self
                    .config
                    .clone()
                    .unwrap_or_else(|| crate::project_root().join("examples/wharf.toml"));
                let config = Config::load(&path)?;
                config.resolve(
                    config
                        .registry
                        .layout
                        .as_deref()
                        .unwrap_or(Path::new(".wharf/oci")),
                )
            }
        };
        anyhow::ensure!(
            root.is_dir(),
            "{}: no OCI layout there (registry.layout): nothing has been pushed to check",
            root.display()
        );
        let registry = wharf_registry::layout::LayoutRegistry::open(&root)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let report = runtime.block_on(registry.fsck(self.repair))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            for p in &report.problems {
                let state = if p.repaired { "REPAIRED" } else { "DAMAGED " };
                println!("{state} {}: {}", p.path.display(), p.what);
            }
            let remaining = report.problems.iter().filter(|p| !p.repaired).count();
            println!(
                "{} repositories, {} blobs ({:.1} MiB) checked: {}",
                report.repositories,
                report.blobs,
                report.bytes as f64 / f64::from(1 << 20),
                match (report.problems.len(), remaining) {
                    (0, _) => "intact".to_owned(),
                    (n, 0) => format!("{n} problems, all repaired"),
                    (_, r) if self.repair =>
                        format!("{r} problems left: push the named content again"),
                    (_, r) => format!("{r} problems: run with --repair, then push again"),
                }
            );
        }
        Ok(if report.is_clean() {
            exit::PASSED
        } else {
            exit::BLOCKED
        })
    }
}
