//! `cargo xtask audit verify|show`: check the run records a project's pipeline wrote.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wharf_core::AuditLog;
use wharf_core::audit::VerifyRange;
use wharf_pipeline::{Config, FileAuditLog};

/// Verify or show the audit log of a project.
#[derive(clap::Args, Debug)]
pub(crate) struct AuditCmd {
    #[command(subcommand)]
    action: Action,
    /// The project config (default: examples/wharf.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Walk the whole chain, recompute every hash; exit 1 if anything is wrong.
    Verify,
    /// Print the record of one run as JSON.
    Show {
        /// The run id (`run-20261122T…`), as printed by `cargo xtask pipeline`.
        run_id: String,
    },
}

impl AuditCmd {
    pub(crate) fn run(&self) -> ExitCode {
        match self.execute() {
            Ok(code) => code,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::from(2)
            }
        }
    }

    fn execute(&self) -> anyhow::Result<ExitCode> {
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| crate::project_root().join("examples/wharf.toml"));
        let config = Config::load(&path)?;
        let dir = config.audit_dir();
        if !dir.is_dir() {
            anyhow::bail!(
                "no audit log at {}: run `cargo xtask pipeline` first",
                dir.display()
            );
        }
        let log = FileAuditLog::open(&dir)?;
        match &self.action {
            Action::Verify => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let report = rt.block_on(log.verify(&VerifyRange::default()))?;
                if report.is_intact() {
                    let head = report
                        .head
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "none".into());
                    println!(
                        "{}: {} records, chain intact, head {head}",
                        dir.display(),
                        report.checked
                    );
                    Ok(ExitCode::SUCCESS)
                } else {
                    println!(
                        "{}: {} records, {} problems:",
                        dir.display(),
                        report.checked,
                        report.problems.len()
                    );
                    for p in &report.problems {
                        println!("  - {p}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
            Action::Show { run_id } => {
                let rec = log
                    .find_run(run_id)?
                    .with_context(|| format!("no record of run {run_id} in {}", dir.display()))?;
                println!("{}", serde_json::to_string_pretty(&rec)?);
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
