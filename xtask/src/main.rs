//! `cargo xtask`: wharf's command line (`pipeline`, `audit`, `verify`) and the project's chores
//! (`test`, `ci`, `backends`).

// Every print in the crate goes through `out`, so a closed pipe (`cargo xtask … | head`)
// ends the output instead of panicking as std's macros do. These shadow std's macros in
// every module declared below them.
macro_rules! println {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::out::text(format_args!($($arg)*))
    };
}
macro_rules! eprintln {
    () => {
        $crate::out::err(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::out::err(format_args!($($arg)*), true)
    };
}
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::out::err(format_args!($($arg)*), false)
    };
}

mod audit;
mod backends;
mod bench;
mod bench_audit;
mod bench_scan;
mod ci;
mod fsck;
mod identity;
mod osv;
mod out;
mod outside;
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
    /// The run's OIDC identity: `identity whoami` prints the token source, its claims and
    /// what each configured exchange returns.
    Identity(identity::IdentityCmd),
    /// Check the OCI layout for damaged or missing blobs and stale temp files (--repair).
    Fsck(fsck::FsckCmd),
    /// Run every test, with the real local backends started first.
    Test(ci::TestCmd),
    /// Everything CI checks: fmt, clippy, features, outside projects, tests, docs,
    /// cargo-deny, publish dry run.
    Ci(ci::CiCmd),
    /// `cargo deny check advisories` (needs network access to the RustSec database).
    DenyAdvisories(ci::DenyAdvisoriesCmd),
    /// Install, start, stop or inspect the real local backends the tests use.
    Backends(backends::BackendsCmd),
    /// Build and run the outside projects in tests/outside (one crate used from a user's
    /// project) and hold each to its budget of crates compiled.
    Outside(outside::OutsideCmd),
    /// Check that every publishable crate builds with no features and with each feature
    /// alone (`cargo hack check --each-feature`, without cargo-hack).
    Features,
    /// Time wharf's operations side by side with peer tools (openssl, sha256sum, tar, skopeo,
    /// curl, cosign, kubectl, Trivy, Grype, osv-scanner).
    Bench(bench::BenchCmd),
    /// Refresh the project's OSV snapshot from OSV exports (`osv refresh --export all.zip`).
    Osv(osv::OsvCmd),
}

fn main() -> ExitCode {
    out::finish(run())
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pipeline(cmd) => return cmd.run(),
        Command::Audit(cmd) => return cmd.run(),
        Command::Verify(cmd) => return cmd.run(),
        Command::Fsck(cmd) => return cmd.run(),
        Command::Identity(cmd) => return cmd.run(),
        Command::Test(cmd) => cmd.run(),
        Command::Ci(cmd) => cmd.run(),
        Command::DenyAdvisories(cmd) => cmd.run(),
        Command::Backends(cmd) => cmd.run(),
        Command::Bench(cmd) => cmd.run(),
        Command::Osv(cmd) => cmd.run(),
        Command::Outside(cmd) => cmd.run(),
        Command::Features => xshell::Shell::new()
            .map_err(anyhow::Error::from)
            .and_then(|sh| ci::check_each_feature(&sh)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", crate::pipeline::one_line(&err));
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
