//! `cargo xtask test` (every test, with the real backends started first) and
//! `cargo xtask ci` (formatting, lints, tests, docs, dependency policy, publish dry run).

use std::time::Instant;

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::backends;

/// Run every test of the workspace against real local backends.
#[derive(clap::Args, Debug)]
pub(crate) struct TestCmd {
    /// Leave the backends running afterwards (for re-running single tests).
    #[arg(long)]
    keep_backends: bool,
    /// Extra arguments for `cargo test` (after `--`).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

impl TestCmd {
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let sh = shell()?;
        run_tests(&sh, self.keep_backends, &self.cargo_args)
    }
}

fn shell() -> anyhow::Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(crate::project_root());
    Ok(sh)
}

fn run_tests(sh: &Shell, keep: bool, extra: &[String]) -> anyhow::Result<()> {
    let running = backends::up().context("starting the test backends")?;
    for (k, v) in &running.env {
        sh.set_var(k, v);
    }
    let result = cmd!(sh, "cargo test --workspace --locked {extra...}").run();
    if !keep && let Err(e) = backends::down() {
        eprintln!("warning: stopping the backends failed: {e:#}");
    }
    result.context("tests failed (backend logs are kept in target/wharf-backends/)")?;
    Ok(())
}

/// Everything CI checks, in order; stops at the first failure.
#[derive(clap::Args, Debug)]
pub(crate) struct CiCmd {
    /// Skip `cargo publish --workspace --dry-run` (it rebuilds every crate from its package).
    #[arg(long)]
    skip_publish: bool,
}

impl CiCmd {
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let sh = shell()?;
        let mut timings = Vec::new();
        let mut step =
            |name: &'static str, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
                eprintln!("\n==> {name}");
                let t = Instant::now();
                let r = f().with_context(|| format!("ci step `{name}` failed"));
                timings.push((name, t.elapsed().as_secs_f64()));
                r
            };
        step("fmt", &mut || {
            Ok(cmd!(sh, "cargo fmt --all -- --check").run()?)
        })?;
        step("clippy", &mut || {
            Ok(cmd!(
                sh,
                "cargo clippy --workspace --all-targets --locked -- -D warnings"
            )
            .run()?)
        })?;
        step("test", &mut || run_tests(&sh, false, &[]))?;
        step("doc", &mut || {
            let _env = sh.push_env("RUSTDOCFLAGS", "-D warnings");
            Ok(cmd!(sh, "cargo doc --workspace --no-deps --locked").run()?)
        })?;
        step("deny", &mut || {
            ensure_cargo_deny(&sh)?;
            // `advisories` needs the RustSec database from GitHub, which this machine cannot
            // reach; run `cargo xtask deny-advisories` where the network allows.
            Ok(cmd!(sh, "cargo deny --locked check bans licenses sources").run()?)
        })?;
        if !self.skip_publish {
            step("publish dry run", &mut || {
                let dirty = if std::env::var_os("CI").is_some() {
                    None
                } else {
                    Some("--allow-dirty")
                };
                Ok(cmd!(
                    sh,
                    "cargo publish --workspace --dry-run --locked {dirty...}"
                )
                .run()?)
            })?;
        }
        eprintln!("\nci passed:");
        for (name, secs) in timings {
            eprintln!("  {name:<16} {secs:>7.1} s");
        }
        Ok(())
    }
}

fn ensure_cargo_deny(sh: &Shell) -> anyhow::Result<()> {
    if cmd!(sh, "cargo deny --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Ok(());
    }
    eprintln!(
        "cargo-deny is missing: installing it with cargo install --locked (about 2-3 minutes)"
    );
    cmd!(sh, "cargo install cargo-deny --locked --version ^0.20").run()?;
    Ok(())
}

/// `cargo deny check advisories`: needs network access to the RustSec advisory database.
#[derive(clap::Args, Debug)]
pub(crate) struct DenyAdvisoriesCmd {}

impl DenyAdvisoriesCmd {
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let sh = shell()?;
        ensure_cargo_deny(&sh)?;
        cmd!(sh, "cargo deny --locked check advisories").run()?;
        Ok(())
    }
}
