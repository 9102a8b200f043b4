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
        run_tests(&sh, self.keep_backends, &self.cargo_args).map(|_| ())
    }
}

fn shell() -> anyhow::Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(crate::project_root());
    Ok(sh)
}

fn run_tests(sh: &Shell, keep: bool, extra: &[String]) -> anyhow::Result<Counts> {
    let running = backends::up().context("starting the test backends")?;
    let result = cargo_test(sh, &running.env, extra);
    if !keep && let Err(e) = backends::down() {
        eprintln!("warning: stopping the backends failed: {e:#}");
    }
    let counts = result?;
    println!("{}", counts.closing_line());
    anyhow::ensure!(
        counts.failed == 0,
        "tests failed (backend logs are kept in target/wharf-backends/)"
    );
    anyhow::ensure!(
        counts.passed > 0,
        "no test ran: that is a failure, not a pass"
    );
    Ok(counts)
}

/// Test counts summed over every test binary of a `cargo test` run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    /// Add one `test result: ok. 3 passed; 0 failed; 1 ignored; …` line.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match label {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }

    /// The plain closing line CI reads: `tests: N passed, N failed, N skipped`.
    fn closing_line(&self) -> String {
        format!(
            "tests: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.ignored
        )
    }
}

/// Run `cargo test` (every test binary, even after one fails: a CI run names every failure),
/// streaming its output, and sum the per-binary results.
fn cargo_test(sh: &Shell, env: &[(String, String)], extra: &[String]) -> anyhow::Result<Counts> {
    use std::io::BufRead;
    let mut child = std::process::Command::new("cargo")
        .args([
            "test",
            "--workspace",
            "--locked",
            "--all-features",
            "--no-fail-fast",
        ])
        .args(extra)
        .current_dir(sh.current_dir())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let mut counts = Counts::default();
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let line = line.context("reading cargo test output")?;
            println!("{line}");
            counts.add_line(&line);
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() && counts.failed == 0 {
        anyhow::bail!(
            "cargo test failed ({status}) before any test failed: see the build errors above"
        );
    }
    Ok(counts)
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
                "cargo clippy --workspace --all-targets --all-features --locked -- -D warnings"
            )
            .run()?)
        })?;
        step("features", &mut || check_each_feature(&sh))?;
        step("outside projects", &mut || {
            crate::outside::run_all(&sh, false)
        })?;
        let mut counts = Counts::default();
        step("test", &mut || {
            counts = run_tests(&sh, false, &[])?;
            Ok(())
        })?;
        step("doc", &mut || {
            let _env = sh.push_env("RUSTDOCFLAGS", "-D warnings");
            Ok(cmd!(
                sh,
                "cargo doc --workspace --no-deps --all-features --locked"
            )
            .run()?)
        })?;
        step("deny", &mut || {
            ensure_cargo_deny(&sh)?;
            // `advisories` needs the RustSec database from GitHub, which this machine cannot
            // reach; run `cargo xtask deny-advisories` where the network allows.
            Ok(cmd!(sh, "cargo deny --locked check bans licenses sources").run()?)
        })?;
        if !self.skip_publish {
            step("publish dry run", &mut || {
                clear_stale_package_overlays()?;
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
        println!("{}", counts.closing_line());
        Ok(())
    }
}

/// Every publishable crate's library builds with no features and with each feature alone
/// (what `cargo hack check --each-feature` proves), so a user who picks one feature gets a
/// crate that compiles.
pub(crate) fn check_each_feature(sh: &Shell) -> anyhow::Result<()> {
    let metadata = cmd!(sh, "cargo metadata --format-version 1 --no-deps --locked")
        .quiet()
        .read()?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).context("reading cargo metadata")?;
    // A warning in a build with fewer features (an import only a feature uses) is a
    // warning every such user sees: refuse it here as clippy does for the full build.
    let _deny = sh.push_env("RUSTFLAGS", "-D warnings");
    // A library never picks k8s-openapi's Kubernetes version; the user's binary does, as
    // this variable does for a library built alone.
    let _k8s = sh.push_env("K8S_OPENAPI_ENABLED_VERSION", "1.37");
    let mut checks = 0;
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let publishable = package["publish"].as_array().is_none_or(|p| !p.is_empty());
        let Some(name) = package["name"].as_str() else {
            continue;
        };
        if !publishable || !name.starts_with("wharf-") {
            continue;
        }
        let mut sets = vec![String::new()];
        if let Some(features) = package["features"].as_object() {
            sets.extend(features.keys().filter(|f| *f != "default").cloned());
        }
        for features in sets {
            eprintln!("    {name}: --no-default-features --features {features:?}");
            cmd!(
                sh,
                "cargo check --quiet --locked --lib -p {name} --no-default-features --features {features}"
            )
            .run()?;
            checks += 1;
        }
    }
    eprintln!("    {checks} feature sets build alone");
    Ok(())
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

/// `cargo publish --workspace --dry-run` verifies each crate against the others through a
/// local overlay registry (`target/package/tmp-registry`), whose crates cargo extracts under
/// `$CARGO_HOME/registry/src/-<hash of that path>/`. The version stays 0.1.0 while the code
/// changes, and cargo reuses an extracted copy without looking, so a second dry run from
/// the same checkout path verified against an earlier run's sources. Remove our crates from
/// those local-registry caches (crates.io's are `index.crates.io-…`, untouched) first.
///
/// Compiled copies go stale the same way: cargo takes a registry crate's version as its
/// content, so the previous dry run's `wharf-*` libraries in the target directory would be
/// linked again. Those are removed too (the workspace's own wharf libraries with them: they
/// rebuild in a minute at the next build).
fn clear_stale_package_overlays() -> anyhow::Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("target"));
    for (dir, prefixes) in [
        (target.join("debug/.fingerprint"), &["wharf-"][..]),
        (target.join("debug/deps"), &["libwharf_", "wharf_"][..]),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if prefixes.iter().any(|p| name.starts_with(p)) {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(cargo_home) = cargo_home else {
        return Ok(());
    };
    for kind in ["src", "cache"] {
        let Ok(registries) = std::fs::read_dir(cargo_home.join("registry").join(kind)) else {
            continue;
        };
        for reg in registries.flatten() {
            if !reg.file_name().to_string_lossy().starts_with('-') {
                continue; // a real registry
            }
            for entry in std::fs::read_dir(reg.path())?.flatten() {
                if entry.file_name().to_string_lossy().starts_with("wharf-") {
                    let path = entry.path();
                    if path.is_dir() {
                        std::fs::remove_dir_all(&path)?;
                    } else {
                        std::fs::remove_file(&path)?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn sums_cargo_test_result_lines() {
        let mut c = Counts::default();
        c.add_line("test result: ok. 38 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.13s");
        c.add_line(
            "test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out",
        );
        c.add_line("running 4 tests");
        assert_eq!(
            c,
            Counts {
                passed: 41,
                failed: 2,
                ignored: 1
            }
        );
        assert_eq!(c.closing_line(), "tests: 41 passed, 2 failed, 1 skipped");
    }
}
