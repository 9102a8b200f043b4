//! `cargo xtask`: wharf's command line (`pipeline`, `audit`, `verify`) and the project's chores
//! (`test`, `ci`, `backends`).

mod audit;
mod backends;
mod bench;
mod bench_audit;
mod ci;
mod pipeline;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "wharf: run the model supply-chain pipeline, and the project's chores"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline on a wharf.toml (default: the example in examples/).
    Pipeline(pipeline::PipelineCmd),
    /// Verify the audit log's hash chain, or show one run's record.
    Audit(audit::AuditCmd),
    /// Verify an image's signatures and attestations, by key or by keyless identity
    /// (cosign verify / verify-attestation).
    Verify(verify::VerifyCmd),
    /// Run every test, with the real local backends started first.
    Test(ci::TestCmd),
    /// Everything CI checks: fmt, clippy, tests, docs, cargo-deny, publish dry run.
    Ci(ci::CiCmd),
    /// `cargo deny check advisories` (needs network access to the RustSec database).
    DenyAdvisories(ci::DenyAdvisoriesCmd),
    /// Install, start, stop or inspect the real local backends the tests use.
    Backends(backends::BackendsCmd),
    /// Time wharf's operations side by side with peer tools (openssl, sha256sum, tar, skopeo, curl).
    Bench(bench::BenchCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pipeline(cmd) => return cmd.run(),
        Command::Audit(cmd) => return cmd.run(),
        Command::Verify(cmd) => return cmd.run(),
        Command::Test(cmd) => cmd.run(),
        Command::Ci(cmd) => cmd.run(),
        Command::DenyAdvisories(cmd) => cmd.run(),
        Command::Backends(cmd) => cmd.run(),
        Command::Bench(cmd) => cmd.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of `xtask/`).
pub(crate) fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}
