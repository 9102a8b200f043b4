//! `cargo xtask pipeline`: the whole chain on a project's `wharf.toml` (by default the
//! example in `examples/`), with a stage-by-stage summary and exit codes that mean one
//! thing each.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use wharf_core::{Actor, Environment, ErrorKind, RunOutcome, StageStatus};
use wharf_pipeline::stages::{
    AttestStage, BaseImageRef, GovernanceStage, PackageStage, SignFormat, SignStage, TagPolicy,
};
use wharf_pipeline::{Config, Pipeline, PipelineError, RunReport};

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
        let audit = match runtime.block_on(crate::audit::open_log(&config)) {
            Ok(log) => Arc::new(log),
            Err(e) => {
                eprintln!("error: no run without an audit record: {}", one_line(&e));
                return Ok(exit::AUDIT);
            }
        };
        let actor = local_actor();
        let commit = git_commit(config_path.parent().unwrap_or(Path::new(".")));
        // From here on the audit log is open, so a refusal to run (a wrong or missing key
        // password, an unreadable key, a bad base image or registry) is recorded as a run
        // of its own before exiting: see ARCHITECTURE.md, "Limits and refusals".
        let built = (|| -> Result<Pipeline, Refusal> {
            let model_dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
            // Tag with the commit only when the model directory is exactly that commit.
            let tag = match &commit {
                Some(sha) if git_clean(&model_dir) => TagPolicy::Fixed(sha.clone()),
                _ => TagPolicy::ContentDerived,
            };
            let layout_root = config.resolve(
                config
                    .registry
                    .layout
                    .as_deref()
                    .unwrap_or(Path::new(".wharf/oci")),
            );
            let repository = config
                .registry
                .repository
                .clone()
                .unwrap_or_else(|| format!("models/{}", config.project.name));
            // A registry URL sends the image there (ECR: repository ensured and token auth;
            // otherwise credentials from the docker config); without one, the OCI layout on disk
            // is the registry.
            let registry: Arc<dyn wharf_core::Registry> = match &config.registry.url {
                Some(url) => match ecr_region(url, config.registry.ecr_region.as_deref()) {
                    Some(region) => match runtime.block_on(ecr_registry(url, &region, &repository))
                    {
                        Ok(registry) => registry,
                        Err(e) => {
                            return Err(Refusal {
                                error: e.context(format!("setting up ECR at {url} ({region})")),
                                code: exit::FAILED,
                            });
                        }
                    },
                    None => Arc::new(
                        wharf_registry::distribution::DistributionClient::builder(url.clone())
                            .build()
                            .with_context(|| format!("registry.url {url:?}"))?,
                    ),
                },
                None => Arc::new(wharf_registry::layout::LayoutRegistry::open(&layout_root)?),
            };
            let sign = sign_stage(&config, env, &runtime, registry.clone(), &repository)?;
            let mut package = PackageStage::new(
                manifest.clone(),
                registry,
                repository,
                layout_root.join(wharf_registry::layout::STAGING_DIR),
                tag,
            );
            if let Some(base) = &config.registry.base_image {
                package = package.on_base_image(
                    base_image(base, &config)
                        .with_context(|| format!("registry.base_image {base:?}"))?,
                );
            }
            let mut builder = Pipeline::builder(config.project.name.clone(), env, actor.clone())
                .environment_policy(config.environment_policy(env))
                .stage(GovernanceStage::new(
                    config.governance(env),
                    manifest.clone(),
                ))
                .stage(package);
            let verify = sign
                .verify_stage()
                .require_attestation(wharf_sign::attest::MODEL_EVALUATION_V1)
                .require_attestation(wharf_sign::attest::SLSA_PROVENANCE_V1);
            let attest = AttestStage::new(&sign, &manifest, builder_id());
            builder = builder
                .stage(sign)
                .stage(attest)
                .stage(verify)
                .audit_log(audit.clone());
            if let Some(commit) = &commit {
                builder = builder.source_commit(commit.clone());
            }
            Ok(builder.build()?)
        })();
        let pipeline = match built {
            Ok(pipeline) => pipeline,
            Err(refusal) => {
                return Ok(
                    self.record_refusal(&runtime, &config, env, actor, commit, audit, refusal)
                );
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

/// A refusal to start a run, after the audit log is open: why, and the exit code.
struct Refusal {
    error: anyhow::Error,
    code: u8,
}

impl<E: Into<anyhow::Error>> From<E> for Refusal {
    /// Bad input (config, key, password, base image): exit 2.
    fn from(error: E) -> Self {
        Refusal {
            error: error.into(),
            code: exit::INVALID,
        }
    }
}

/// The stage a refused run records: it fails with the refusal.
struct Refused {
    message: String,
    kind: ErrorKind,
}

/// What `Stage::run` returns (the trait is `async_trait`; this one needs no await).
type StageFuture<'f> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = wharf_core::Result<wharf_pipeline::StageOutcome>>
            + Send
            + 'f,
    >,
>;

impl wharf_pipeline::Stage for Refused {
    fn name(&self) -> &str {
        "setup"
    }

    fn run<'a, 'b, 'f>(&'a self, _ctx: &'b mut wharf_pipeline::RunContext) -> StageFuture<'f>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        Box::pin(std::future::ready(Err(wharf_core::Error::new(
            self.kind,
            format!("refused before the run started: {}", self.message),
        ))))
    }
}

impl PipelineCmd {
    /// Record `refusal` as a failed run (one `setup` stage that failed with it), say so on
    /// one line, and return its exit code (4 when even that record cannot be written).
    #[allow(clippy::too_many_arguments)]
    fn record_refusal(
        &self,
        runtime: &tokio::runtime::Runtime,
        config: &Config,
        env: Environment,
        actor: Actor,
        commit: Option<String>,
        audit: Arc<crate::audit::ProjectLog>,
        refusal: Refusal,
    ) -> u8 {
        let message = one_line(&refusal.error);
        // The kind the error carries, else what its exit code means.
        let kind = refusal
            .error
            .chain()
            .find_map(|e| {
                e.downcast_ref::<wharf_core::Error>()
                    .map(wharf_core::Error::kind)
            })
            .unwrap_or(if refusal.code == exit::INVALID {
                ErrorKind::Invalid
            } else {
                ErrorKind::Internal
            });
        let mut builder = Pipeline::builder(config.project.name.clone(), env, actor)
            .environment_policy(config.environment_policy(env))
            .stage(Refused {
                message: message.clone(),
                kind,
            })
            .audit_log(audit);
        if let Some(commit) = commit {
            builder = builder.source_commit(commit);
        }
        let run = match builder.build() {
            Ok(pipeline) => runtime.block_on(pipeline.run()),
            Err(e) => Err(e),
        };
        match run {
            Ok(report) => {
                if self.json {
                    let out = serde_json::json!({ "run": report.record, "receipt": report.receipt, "exit_code": refusal.code });
                    if let Ok(text) = serde_json::to_string_pretty(&out) {
                        println!("{text}");
                    }
                }
                eprintln!(
                    "error: {message} (refused before the run started; recorded as audit record #{} {})",
                    report.receipt.sequence, report.receipt.hash
                );
                refusal.code
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

/// The ECR region of a registry URL: `registry.ecr_region` when set, else the `<region>` of
/// a `<account>.dkr.ecr.<region>.amazonaws.com[.cn]` host; `None` for other registries.
fn ecr_region(url: &str, configured: Option<&str>) -> Option<String> {
    if let Some(region) = configured {
        return Some(region.to_owned());
    }
    let host = url.split("://").last()?.split(['/', ':']).next()?;
    let labels: Vec<&str> = host.split('.').collect();
    let is_ecr = labels.len() >= 6
        && labels[1] == "dkr"
        && labels[2] == "ecr"
        && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"));
    is_ecr.then(|| labels[3].to_owned())
}

/// ECR behind `url`: the repository created or brought to wharf's policy (immutable tags
/// except `sha256-*` signature tags, scan-on-push), and a client whose credentials come
/// from `GetAuthorizationToken`, refreshed before they expire. AWS credentials and API
/// endpoints come from the environment (`AWS_*`), as for the AWS CLI.
async fn ecr_registry(
    url: &str,
    region: &str,
    repository: &str,
) -> anyhow::Result<Arc<dyn wharf_core::Registry>> {
    use wharf_registry::ecr::{Ecr, RepositorySettings};
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .load()
        .await;
    let ecr = Ecr::new(&sdk).with_registry_endpoint(url);
    let repo = ecr
        .ensure_repository(repository, &RepositorySettings::default())
        .await?;
    for change in &repo.changes {
        eprintln!("ecr: {}: {change}", repo.name);
    }
    Ok(Arc::new(ecr.registry().await?))
}

/// Where a base image comes from: `oci:<layout dir>:<tag>` (an OCI layout on disk, relative
/// to the config file) or a registry reference (`ghcr.io/acme/python:3.12`, `…@sha256:…`).
fn base_image(spec: &str, config: &Config) -> anyhow::Result<BaseImageRef> {
    if let Some(rest) = spec.strip_prefix("oci:") {
        let (dir, reference) = rest
            .rsplit_once(':')
            .filter(|(d, r)| !d.is_empty() && !r.is_empty())
            .context("write oci:<layout directory>:<tag>")?;
        let dir = config.resolve(Path::new(dir));
        let parent = dir.parent().context("the layout directory has no parent")?;
        let repo = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("the layout directory has no name")?;
        let registry = Arc::new(wharf_registry::layout::LayoutRegistry::open(parent)?);
        return Ok(BaseImageRef::new(registry, repo, reference));
    }
    let r = wharf_core::Reference::parse_docker(spec)?;
    let host = r
        .registry_host()
        .context("the reference names no registry")?
        .to_owned();
    let reference = match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let client = wharf_registry::distribution::DistributionClient::builder(host).build()?;
    Ok(BaseImageRef::new(
        Arc::new(client),
        r.path().to_owned(),
        reference,
    ))
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

/// The signing key's password: from `password_env`; else asked for on a terminal (never in
/// CI); else, outside prod, empty (cosign's unprotected key) with a warning. Prod refuses a
/// key without a password. An empty value (variable set but empty, or nothing typed) is no
/// password: it protects nothing.
fn key_password(
    key_path: &Path,
    password_env: &str,
    env: Environment,
) -> anyhow::Result<wharf_core::Secret> {
    use std::io::IsTerminal;
    let (state, mut why) = match std::env::var(password_env) {
        Ok(p) if !p.is_empty() => {
            logging::mask(&p);
            return Ok(wharf_core::Secret::new(p));
        }
        Ok(_) => (
            "is empty",
            "it is set but empty, and an empty password is none",
        ),
        Err(_) => ("is not set", "it is not set"),
    };
    let interactive = std::io::stdin().is_terminal() && std::env::var_os("CI").is_none();
    if interactive {
        let new = !key_path.exists();
        let prompt = format!(
            "{} signing key {} ({password_env} {state}): ",
            if new {
                "Password for the new"
            } else {
                "Password of the"
            },
            key_path.display()
        );
        let typed = read_password(&prompt).context("reading the key password from the terminal")?;
        if !typed.expose().is_empty() {
            logging::mask(typed.expose());
            return Ok(typed);
        }
        why = "the password typed was empty";
    }
    if env == Environment::Prod {
        anyhow::bail!(
            "[sign] key {}: prod signs only with a password-protected key: set {password_env} ({why})",
            key_path.display()
        );
    }
    eprintln!(
        "warning: the {env} signing key {} has no password; set {password_env} to protect it ({why})",
        key_path.display()
    );
    Ok(wharf_core::Secret::new(""))
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

/// What built the image, for provenance: the CI workflow when there is one (GitHub Actions,
/// GitLab CI), else this command on this host.
fn builder_id() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(server), Some(repo), Some(wf)) = (
        var("GITHUB_SERVER_URL"),
        var("GITHUB_REPOSITORY"),
        var("GITHUB_WORKFLOW_REF"),
    ) {
        let path = wf.strip_prefix(&format!("{repo}/")).unwrap_or(&wf);
        return format!("{server}/{repo}/{path}");
    }
    if let Some(job) = var("CI_JOB_URL") {
        return job;
    }
    format!(
        "https://wharf.dev/builder/cargo-xtask-pipeline@{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The default signing key, relative to the config: a cosign.key generated on first use.
const DEFAULT_SIGNING_KEY: &str = ".wharf/keys/cosign.key";
/// Where the key password comes from by default: cosign's own variable.
const DEFAULT_PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// The sign stage `[sign]` describes: an ECDSA P-256 key file (generated on first use, its
/// public key beside it as `<key>.pub`), signing images in `repository` under the name a
/// registry client would use (`host/repository`; the repository alone for the OCI layout).
fn sign_stage(
    config: &Config,
    env: Environment,
    runtime: &tokio::runtime::Runtime,
    registry: Arc<dyn wharf_core::Registry>,
    repository: &str,
) -> anyhow::Result<SignStage> {
    let format = match config.sign.format.as_deref() {
        Some("bundle") => SignFormat::Bundle,
        Some("auto") => SignFormat::Auto,
        _ => SignFormat::Legacy, // validated when the config was read
    };
    let docker_reference = match &config.registry.url {
        Some(url) => {
            let host = url
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            format!("{host}/{repository}")
        }
        None => repository.to_owned(),
    };
    if config.sign.key.as_deref() == Some("keyless") {
        return Ok(
            keyless_sign_stage(config, env, registry, repository, docker_reference)?
                .with_format(format),
        );
    }
    let (signer, public): (Arc<dyn wharf_core::Signer>, wharf_sign::PublicKey) =
        match config.sign.key.as_deref() {
            Some(k) if k.starts_with("awskms://") => {
                // The private key stays in KMS; credentials and region from the AWS
                // environment (a web-identity role in CI).
                let key = runtime
                    .block_on(async {
                        let sdk = aws_config::load_from_env().await;
                        wharf_sign::kms::KmsKey::connect(aws_sdk_kms::Client::new(&sdk), k).await
                    })
                    .with_context(|| format!("[sign] key {k}"))?;
                let public = key.public_key().clone();
                (Arc::new(key), public)
            }
            other => {
                let key_path = config.resolve(Path::new(other.unwrap_or(DEFAULT_SIGNING_KEY)));
                let password_env = config
                    .sign
                    .password_env
                    .as_deref()
                    .unwrap_or(DEFAULT_PASSWORD_ENV);
                let password = key_password(&key_path, password_env, env)?;
                let key =
                    wharf_sign::EcdsaP256Key::load_or_generate_with(&key_path, Some(&password))
                        .with_context(|| {
                            format!(
                                "[sign] key {} (password from {password_env})",
                                key_path.display()
                            )
                        })?;
                let public = key.public_key().clone();
                (Arc::new(key), public)
            }
        };
    Ok(SignStage::new(
        registry,
        repository,
        docker_reference,
        signer,
        Arc::new(public),
    )
    .with_format(format))
}

/// Where keyless signing reads the OIDC ID token by default: cosign's own variable.
const DEFAULT_TOKEN_ENV: &str = "SIGSTORE_ID_TOKEN";

/// `[sign] key = "keyless"`: Fulcio and Rekor (public-good unless configured) verified
/// against the configured `trusted_root.json`, the OIDC token from `token_env`.
fn keyless_sign_stage(
    config: &Config,
    env: Environment,
    registry: Arc<dyn wharf_core::Registry>,
    repository: &str,
    docker_reference: String,
) -> anyhow::Result<SignStage> {
    let s = &config.sign;
    let root_path = s.trusted_root.as_deref().map(|p| config.resolve(p)).ok_or_else(|| {
        anyhow::anyhow!(
            "[sign] key = \"keyless\" needs trusted_root = the trusted_root.json of your Sigstore deployment (from its TUF repository, e.g. `cosign trusted-root create` or the public-good root)"
        )
    })?;
    let bytes = std::fs::read(&root_path)
        .with_context(|| format!("[sign] trusted_root {}", root_path.display()))?;
    let root = wharf_sign::rekor::TrustedRoot::parse(&bytes, &root_path.display().to_string())?;
    let token_env = s.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV);
    let token = std::env::var(token_env).map_err(|_| {
        anyhow::anyhow!(
            "[sign] key = \"keyless\": no OIDC ID token in {token_env}; in CI, request one with audience \"sigstore\" and export it there"
        )
    })?;
    logging::mask(&token);
    let identity = match (&s.identity, &s.issuer) {
        (Some(subject), Some(issuer)) => Some(wharf_sign::fulcio::Identity::exact(subject, issuer)),
        _ if config.environment_policy(env).require_signature => anyhow::bail!(
            "[sign] key = \"keyless\" in {env}: set identity and issuer, the certificate identity {env} trusts (e.g. your release workflow's URI and https://token.actions.githubusercontent.com)"
        ),
        _ => None,
    };
    let sigstore = wharf_sign::keyless::Sigstore::new(
        s.fulcio_url
            .as_deref()
            .unwrap_or(wharf_sign::keyless::PUBLIC_FULCIO),
        s.rekor_url
            .as_deref()
            .unwrap_or(wharf_sign::keyless::PUBLIC_REKOR),
        root,
    )?;
    Ok(SignStage::keyless(
        registry,
        repository,
        docker_reference,
        Arc::new(sigstore),
        wharf_core::Secret::new(token),
        identity,
    ))
}

#[cfg(test)]
mod tests {
    use super::ecr_region;

    #[test]
    fn ecr_hosts_are_recognised_and_others_are_not() {
        assert_eq!(
            ecr_region("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", None).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            ecr_region("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/x", None).as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(ecr_region("https://ghcr.io", None), None);
        assert_eq!(ecr_region("http://127.0.0.1:5000", None), None);
        assert_eq!(
            ecr_region("http://127.0.0.1:5000", Some("us-east-1")).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(ecr_region("https://dkr.ecr.evil.example.com", None), None);
    }
}
