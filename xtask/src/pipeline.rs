//! `cargo xtask pipeline`: the whole chain on a project's `wharf.toml` (by default the
//! example in `examples/`), with a stage-by-stage summary and exit codes that mean one
//! thing each.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use wharf_core::{Actor, Environment, ErrorKind, RunOutcome, StageStatus};
use wharf_pipeline::stages::TagPolicy;
use wharf_pipeline::{
    Config, DEFAULT_PASSWORD_ENV, DEFAULT_TOKEN_ENV, Pipeline, PipelineError, RunOptions, RunReport,
};

mod logging;

/// Exit codes of `cargo xtask pipeline`.
pub(crate) mod exit {
    /// Every stage passed (or only warned).
    pub(crate) const PASSED: u8 = 0;
    /// A gate (governance, scan, signature) blocked the run.
    pub(crate) const BLOCKED: u8 = 1;
    /// Bad input: flags, config, manifest or policy files.
    pub(crate) const INVALID: u8 = 2;
    /// A stage failed with an error or panicked.
    pub(crate) const FAILED: u8 = 3;
    /// The run's audit record could not be written.
    pub(crate) const AUDIT: u8 = 4;
}

/// Run the model supply-chain pipeline.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit codes: 0 passed, 1 blocked by a gate, 2 invalid input (flags, config, manifest, policy), 3 a stage failed or panicked, 4 the audit record could not be written."
)]
pub(crate) struct PipelineCmd {
    /// The project config (default: examples/wharf.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Target environment: dev, test or prod (default: the config's project.default_environment).
    #[arg(long, value_name = "ENV")]
    env: Option<String>,
    /// Check this model manifest instead of the config's.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Print the run record and receipt as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// Log each stage's progress to stderr.
    #[arg(long, short)]
    verbose: bool,
}

impl PipelineCmd {
    pub(crate) fn run(&self) -> ExitCode {
        if self.verbose {
            logging::init_verbose();
        }
        match self.execute() {
            Ok(code) => ExitCode::from(code),
            Err(err) => {
                eprintln!("error: {}", one_line(&err));
                ExitCode::from(exit::INVALID)
            }
        }
    }

    fn execute(&self) -> anyhow::Result<u8> {
        let clock = Instant::now();
        let config_path = self
            .config
            .clone()
            .unwrap_or_else(|| crate::project_root().join("examples/wharf.toml"));
        let config = Config::load(&config_path)?;
        let env: Environment = match &self.env {
            Some(e) => e.parse().with_context(|| "--env")?,
            None => config.project.default_environment,
        };
        let manifest = self
            .manifest
            .clone()
            .unwrap_or_else(|| config.manifest_path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        // The actor: the OIDC token's subject and run context when this run has a token
        // (an identity that fails to resolve is reported by the pipeline's setup, recorded).
        let actor = match runtime.block_on(config.identity()) {
            Ok(identity) => {
                for hint in &identity.hints {
                    eprintln!("identity: {hint}");
                }
                if let Some(token) = &identity.token {
                    logging::mask(token.token.expose());
                }
                identity.actor().unwrap_or_else(local_actor)
            }
            Err(_) => local_actor(),
        };
        let commit = git_commit(config_path.parent().unwrap_or(Path::new(".")));
        let model_dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
        // Tag with the commit only when the model directory is exactly that commit.
        let tag = match &commit {
            Some(sha) if git_clean(&model_dir) => TagPolicy::Fixed(sha.clone()),
            _ => TagPolicy::ContentDerived,
        };
        // What built the image: the library's default — the CI workflow when there is one
        // (GitHub Actions, GitLab CI), else wharf-pipeline on this host.
        let mut options = RunOptions::new().manifest(manifest).tag(tag);
        if let Some(commit) = &commit {
            options = options.source_commit(commit.clone());
        }
        if let Some(key) = config.signing_key_file()
            && let Some(password) = key_password(&config, &key)?
        {
            options = options.key_password(password);
        }
        // Whatever secret the run reads from the environment is masked in verbose logs.
        for var in [
            config
                .sign
                .password_env
                .as_deref()
                .unwrap_or(DEFAULT_PASSWORD_ENV),
            config
                .sign
                .token_env
                .as_deref()
                .unwrap_or(DEFAULT_TOKEN_ENV),
        ] {
            if let Ok(value) = std::env::var(var) {
                logging::mask(&value);
            }
        }
        // From here on the audit log is open, so a refusal to run (a wrong or missing key
        // password, an unreadable key, a bad base image or registry) is recorded as a run
        // of its own before exiting: see ARCHITECTURE.md, "Limits and refusals".
        let standard = runtime.block_on(Pipeline::standard(&config, env, actor, options));
        let pipeline = match standard {
            Ok(standard) => {
                for notice in &standard.notices {
                    eprintln!("{notice}");
                }
                standard.builder.build()?
            }
            Err(PipelineError::Refused { source, recorded }) => {
                return Ok(self.refused(&source, recorded));
            }
            Err(e) => {
                eprintln!(
                    "error: no run without an audit record: {}",
                    wharf_core::display_chain(&e)
                );
                return Ok(exit::AUDIT);
            }
        };
        match runtime.block_on(pipeline.run()) {
            Ok(report) => {
                let code = exit_code(&report);
                if self.json {
                    let out = serde_json::json!({ "run": report.record, "receipt": report.receipt, "exit_code": code });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    print_summary(&report, code, clock.elapsed().as_secs_f64());
                }
                Ok(code)
            }
            Err(PipelineError::Audit { record, source }) => {
                eprintln!(
                    "error: the run finished ({}) but its audit record could not be written, so the run fails: {}",
                    record.outcome,
                    wharf_core::display_chain(&source)
                );
                Ok(exit::AUDIT)
            }
            Err(other) => Err(other.into()),
        }
    }
}

impl PipelineCmd {
    /// Say on one line why the run was refused and where that was recorded, and return the
    /// exit code: 3 when a backend or wharf itself failed, 2 for bad input (config, key,
    /// password, base image), 4 when even the refusal could not be recorded.
    fn refused(
        &self,
        source: &PipelineError,
        recorded: Result<Box<RunReport>, wharf_core::Error>,
    ) -> u8 {
        let message = wharf_core::display_chain(source);
        let code = match source.kind() {
            ErrorKind::Transient | ErrorKind::Internal => exit::FAILED,
            _ => exit::INVALID,
        };
        match recorded {
            Ok(report) => {
                if self.json {
                    let out = serde_json::json!({ "run": report.record, "receipt": report.receipt, "exit_code": code });
                    if let Ok(text) = serde_json::to_string_pretty(&out) {
                        println!("{text}");
                    }
                }
                eprintln!(
                    "error: {message} (refused before the run started; recorded as audit record #{} {})",
                    report.receipt.sequence, report.receipt.hash
                );
                code
            }
            Err(e) => {
                eprintln!(
                    "error: {message}; and the refused run could not be recorded: {}",
                    wharf_core::display_chain(&e)
                );
                exit::AUDIT
            }
        }
    }
}

/// An error and its causes on one line, each cause once (`{:#}` repeats a cause that an
/// error both shows in its message and keeps as its source, as most of ours do).
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    wharf_core::display_chain(err.as_ref())
}

fn exit_code(report: &RunReport) -> u8 {
    match report.record.outcome {
        RunOutcome::Passed => exit::PASSED,
        RunOutcome::Blocked => exit::BLOCKED,
        RunOutcome::Failed => match report.error_kind() {
            Some(ErrorKind::Invalid | ErrorKind::NotFound) => exit::INVALID,
            _ => exit::FAILED,
        },
    }
}

fn print_summary(report: &RunReport, code: u8, seconds: f64) {
    let r = &report.record;
    let model = r
        .model
        .as_ref()
        .map(|m| format!("{} {}", m.name, m.version))
        .unwrap_or_else(|| r.project.clone());
    println!(
        "wharf pipeline: {model} -> {} (run {})",
        r.environment, r.run_id
    );
    println!(
        "  actor {} · commit {}",
        r.actor,
        r.source_commit
            .as_deref()
            .map(|c| &c[..c.len().min(12)])
            .unwrap_or("none (not a git checkout)")
    );
    println!();
    let width = report
        .stages
        .iter()
        .map(|s| s.record.name.len())
        .max()
        .unwrap_or(0);
    for s in &report.stages {
        let rec = &s.record;
        let status = match (rec.status, s.error_kind) {
            (StageStatus::Passed, _) => "PASS ",
            (StageStatus::Warned, _) => "WARN ",
            (StageStatus::Blocked, _) => "BLOCK",
            (StageStatus::Failed, _) => "FAIL ",
            (StageStatus::Skipped, _) => "SKIP ",
        };
        println!(
            "  {status} {:<width$}  {:>6} ms  {}",
            rec.name, rec.duration_ms, rec.summary
        );
        for line in &s.details {
            println!("        {line}");
        }
    }
    println!();
    let location = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            Path::new(&report.receipt.location)
                .strip_prefix(cwd)
                .ok()
                .map(|p| p.display().to_string())
        })
        .unwrap_or_else(|| report.receipt.location.clone());
    println!(
        "  audit  record #{} {} -> {location}",
        report.receipt.sequence, report.receipt.hash
    );
    let verdict = match r.outcome {
        RunOutcome::Passed => "PASSED".to_owned(),
        RunOutcome::Blocked => format!(
            "BLOCKED by {}",
            r.failed_stage().map_or("a gate", |s| s.name.as_str())
        ),
        RunOutcome::Failed => format!(
            "FAILED in {}",
            r.failed_stage().map_or("a stage", |s| s.name.as_str())
        ),
    };
    println!("  result {verdict} (exit {code}) in {seconds:.2} s");
}

/// The local user, for runs without an OIDC identity.
fn local_actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Actor::local(user)
}

/// True when git reports no changes (tracked or untracked) under `dir`.
fn git_clean(dir: &Path) -> bool {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--", "."])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
}

/// The commit checked out at `dir`, if it is in a git work tree with a commit.
fn git_commit(dir: &Path) -> Option<String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .output()
        .ok()?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && sha.len() == 40).then_some(sha)
}

/// The signing key's password when it must be asked for: the variable `[sign]
/// password_env` names is unset or empty, and a person is at the terminal (never in CI).
/// `None` leaves it to the pipeline, which reads the variable, refuses a key without a
/// password in prod and warns elsewhere. An empty answer is no password.
fn key_password(config: &Config, key_path: &Path) -> anyhow::Result<Option<wharf_core::Secret>> {
    use std::io::IsTerminal;
    let password_env = config
        .sign
        .password_env
        .as_deref()
        .unwrap_or(DEFAULT_PASSWORD_ENV);
    let state = match std::env::var(password_env) {
        Ok(p) if !p.is_empty() => return Ok(None),
        Ok(_) => "is empty",
        Err(_) => "is not set",
    };
    if !std::io::stdin().is_terminal() || std::env::var_os("CI").is_some() {
        return Ok(None);
    }
    let prompt = format!(
        "{} signing key {} ({password_env} {state}): ",
        if key_path.exists() {
            "Password of the"
        } else {
            "Password for the new"
        },
        key_path.display()
    );
    let typed = read_password(&prompt).context("reading the key password from the terminal")?;
    logging::mask(typed.expose());
    Ok(Some(typed))
}

/// Read a line from the terminal without echo (`stty -echo`).
fn read_password(prompt: &str) -> anyhow::Result<wharf_core::Secret> {
    use std::io::Write;
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let tty = || std::fs::File::open("/dev/tty");
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(tty()?)
            .status()
            .map(|_| ())
    };
    stty("-echo")?;
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    let _ = stty("echo");
    eprintln!();
    read?;
    Ok(wharf_core::Secret::new(line.trim_end_matches(['\r', '\n'])))
}
