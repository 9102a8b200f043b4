//! The standard pipeline of a project — governance, package, sign, attest, verify, deploy — composed
//! from its `wharf.toml` alone: the registry `[registry]` names (the OCI layout on disk,
//! any OCI registry, or ECR), the key `[sign]` names (a key file, AWS KMS, or keyless), the
//! audit log `[audit]` names. This is what `cargo xtask pipeline` runs; a program of one's
//! own gets the same run in three lines, and can add stages before `build()`.
//!
//! Every run ends in one audit record, refusals included: once the audit log is open, a
//! refusal to start (a wrong key password, a keyless setup without a token, an unreachable
//! ECR) is recorded as a failed run with one `setup` stage, and returned as
//! [`PipelineError::Refused`] carrying that record.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_core::{Actor, Environment, Error, ErrorKind, Registry, Secret};
use wharf_sign::attest::{MODEL_EVALUATION_V1, SLSA_PROVENANCE_V1};

use crate::project::project_builder;
use crate::stages::{
    AttestStage, BaseImageRef, DeployStage, GovernanceStage, KeylessToken, PackageStage,
    ScanSource, ScanStage, SignFormat, SignStage, TagPolicy,
};
use crate::{Config, Pipeline, PipelineBuilder, PipelineError, RunContext, Stage, StageOutcome};

/// The default signing key, relative to the config: a `cosign.key` generated on first use.
pub const DEFAULT_SIGNING_KEY: &str = ".wharf/keys/cosign.key";
/// Where the key password comes from by default: cosign's own variable.
pub const DEFAULT_PASSWORD_ENV: &str = "COSIGN_PASSWORD";
/// Where keyless signing reads the OIDC ID token by default: cosign's own variable.
pub const DEFAULT_TOKEN_ENV: &str = "SIGSTORE_ID_TOKEN";
/// The GitOps repository the deploy stage commits to when `[deploy]` names none.
pub const DEFAULT_GITOPS_REPO: &str = ".wharf/gitops";
/// The OCI layout directory when `[registry]` names neither `url` nor `layout`.
const DEFAULT_LAYOUT: &str = ".wharf/oci";

/// What a standard run needs that `wharf.toml` does not say: the facts of this run, and
/// secrets the caller has already obtained. Everything is optional.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunOptions {
    /// Check this model manifest instead of the config's `[model] manifest`.
    pub manifest: Option<PathBuf>,
    /// How the image is tagged (default [`TagPolicy::ContentDerived`]; pass the commit as
    /// [`TagPolicy::Fixed`] when the model directory is exactly that commit).
    pub tag: Option<TagPolicy>,
    /// The source commit, recorded with the run.
    pub source_commit: Option<String>,
    /// What built the image, for provenance (default: the CI workflow when there is one —
    /// GitHub Actions, GitLab CI — else `wharf-pipeline` on this host).
    pub builder_id: Option<String>,
    /// The signing key's password (default: the variable `[sign] password_env` names,
    /// `COSIGN_PASSWORD`). An empty password is none.
    pub key_password: Option<Secret>,
    /// The OIDC ID token for keyless signing (default: the variable `[sign] token_env`
    /// names, `SIGSTORE_ID_TOKEN`; else the run's token source, `[identity]`, asked for
    /// audience `sigstore`).
    pub id_token: Option<Secret>,
    /// Credentials for the managed cluster `[deploy]` names: AWS for `eks`, Azure for
    /// `aks`, Google for `gke` (default: the `[identity]` exchange for that cloud; for
    /// `eks` without `[identity.aws]`, the AWS SDK's default chain).
    pub cloud_credentials: Option<Arc<dyn wharf_core::CloudCredentials>>,
}

impl RunOptions {
    /// No options: everything from `wharf.toml` and the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Check `manifest` instead of the config's.
    pub fn manifest(mut self, manifest: impl Into<PathBuf>) -> Self {
        self.manifest = Some(manifest.into());
        self
    }

    /// Tag the image as `tag` says.
    pub fn tag(mut self, tag: TagPolicy) -> Self {
        self.tag = Some(tag);
        self
    }

    /// Record `commit` as the run's source.
    pub fn source_commit(mut self, commit: impl Into<String>) -> Self {
        self.source_commit = Some(commit.into());
        self
    }

    /// Name what built the image in its provenance.
    pub fn builder_id(mut self, id: impl Into<String>) -> Self {
        self.builder_id = Some(id.into());
        self
    }

    /// Unlock the signing key with `password`.
    pub fn key_password(mut self, password: Secret) -> Self {
        self.key_password = Some(password);
        self
    }

    /// Sign keylessly with `token`.
    pub fn id_token(mut self, token: Secret) -> Self {
        self.id_token = Some(token);
        self
    }

    /// Reach the managed cluster `[deploy]` names with `credentials`.
    pub fn cloud_credentials(mut self, credentials: Arc<dyn wharf_core::CloudCredentials>) -> Self {
        self.cloud_credentials = Some(credentials);
        self
    }
}

/// A standard pipeline, ready to build, and what setting it up did or noticed.
#[non_exhaustive]
pub struct StandardPipeline {
    /// The stages, environment policy and audit log; add stages of your own, then `build()`.
    pub builder: PipelineBuilder,
    /// One line each, for the user: an ECR repository created or brought to policy, a
    /// signing key without a password outside prod.
    pub notices: Vec<String>,
}

impl Pipeline {
    /// The standard pipeline of `config`'s project in `env`, as `cargo xtask pipeline` runs
    /// it: governance, package (into the registry `[registry]` names), sign and attest
    /// (with the key `[sign]` names), and verify (the signature and the SLSA provenance and
    /// model-evaluation attestations), recorded in the audit log `[audit]` names.
    ///
    /// A registry URL needs the `distribution` feature (ECR: `ecr`), an `awskms://` key
    /// `kms`, keyless signing `keyless`; without them this is an error naming the feature.
    /// Once the audit log is open, a refusal to start is recorded and returned as
    /// [`PipelineError::Refused`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use wharf_pipeline::{Config, Pipeline, RunOptions, wharf_core::{Actor, Environment}};
    ///
    /// let config = Config::load(std::path::Path::new("wharf.toml"))?;
    /// let standard = Pipeline::standard(&config, Environment::Dev, Actor::local("me"), RunOptions::new()).await?;
    /// let report = standard.builder.build()?.run().await?;
    /// println!("{}", report.record.outcome);
    /// # Ok(()) }
    /// ```
    pub async fn standard(
        config: &Config,
        env: Environment,
        actor: Actor,
        options: RunOptions,
    ) -> Result<StandardPipeline, PipelineError> {
        let audit = Arc::new(config.open_audit_log().await?);
        // The run's settings, once for the standard stages and once, should setup be
        // refused, for the record of that refusal.
        let base = || {
            let builder = project_builder(config, env, actor.clone(), audit.clone());
            match &options.source_commit {
                Some(commit) => builder.source_commit(commit.clone()),
                None => builder,
            }
        };
        let mut notices = Vec::new();
        match standard_stages(config, env, &options, base(), &mut notices).await {
            Ok(builder) => Ok(StandardPipeline { builder, notices }),
            Err(refusal) => Err(record_refusal(base(), refusal).await),
        }
    }
}

/// Governance, package, sign, attest and verify on `builder`.
async fn standard_stages(
    config: &Config,
    env: Environment,
    options: &RunOptions,
    builder: PipelineBuilder,
    notices: &mut Vec<String>,
) -> Result<PipelineBuilder, PipelineError> {
    // An `[identity]` that cannot be resolved (no token for a configured exchange, a role
    // ARN with a typo) refuses the run, whether or not a stage would have used it.
    config.identity().await?;
    let manifest = options
        .manifest
        .clone()
        .unwrap_or_else(|| config.manifest_path());
    let repository = config.repository();
    let registry = config.registry_for_push(&repository, notices).await?;
    let scan = scan_stage(config, env, registry.clone(), &repository).await?;
    let sign = sign_stage(config, env, options, registry.clone(), notices).await?;
    let mut package = PackageStage::new(
        manifest.clone(),
        registry,
        repository,
        config
            .layout_dir()
            .join(wharf_registry::layout::STAGING_DIR),
        options.tag.clone().unwrap_or(TagPolicy::ContentDerived),
    );
    if let Some(spec) = &config.registry.base_image {
        package = package.on_base_image(
            config
                .base_image(spec)
                .map_err(|e| setup(format!("[registry] base_image {spec:?}"), e))?,
        );
    }
    let verify = sign
        .verify_stage()
        .require_attestation(MODEL_EVALUATION_V1)
        .require_attestation(SLSA_PROVENANCE_V1);
    let builder_id = options
        .builder_id
        .clone()
        .unwrap_or_else(default_builder_id);
    let attest = AttestStage::new(&sign, &manifest, builder_id);
    let mut deploy = DeployStage::new(
        deploy_target(config, env, options).await?,
        config.project.name.clone(),
        config.docker_reference(&config.repository()),
    );
    if let Some(secs) = config.deploy.rollout_timeout_seconds {
        deploy = deploy.with_timeout(std::time::Duration::from_secs(secs));
    }
    Ok(builder
        .stage(GovernanceStage::new(config.governance(env), manifest))
        .stage(package)
        .stage(scan)
        .stage(sign)
        .stage(attest)
        .stage(verify)
        .stage(deploy))
}

/// The OSV database when `[scan] osv_db` names none.
pub const DEFAULT_OSV_DB: &str = ".wharf/osv";
/// Where scan reports go when `[scan] reports_dir` names none.
pub const DEFAULT_SCAN_REPORTS: &str = ".wharf/scan";

/// The scan stage `[scan]` describes, with `env`'s gate.
async fn scan_stage(
    config: &Config,
    env: Environment,
    registry: Arc<dyn Registry>,
    repository: &str,
) -> Result<ScanStage, PipelineError> {
    use wharf_core::Scanner;
    let s = &config.scan;
    let timeout = std::time::Duration::from_secs(s.timeout_seconds.unwrap_or(600));
    let offline = s.offline.unwrap_or(false);
    let names = s.scanners.clone().unwrap_or_else(|| vec!["osv".to_owned()]);
    let mut scanners: Vec<Arc<dyn Scanner>> = Vec::new();
    for name in &names {
        scanners.push(match name.as_str() {
            "osv" => Arc::new(
                wharf_scan::OsvScanner::new(
                    config.resolve(s.osv_db.as_deref().unwrap_or(Path::new(DEFAULT_OSV_DB))),
                )
                .with_registry(registry.clone()),
            ),
            "trivy" => {
                let mut t = wharf_scan::trivy::TrivyScanner::new(
                    s.trivy.as_deref().map_or_else(|| PathBuf::from("trivy"), |p| config.resolve(p)),
                )
                .timeout(timeout)
                .offline(offline)
                .insecure(config.registry.url.as_deref().is_some_and(|u| u.starts_with("http://")));
                if let Some(d) = &s.trivy_cache_dir {
                    t = t.cache_dir(config.resolve(d));
                }
                if let Some(r) = &s.trivy_db_repository {
                    t = t.db_repository(r.clone());
                }
                Arc::new(t)
            }
            "grype" => {
                let mut g = wharf_scan::grype::GrypeScanner::new(
                    s.grype.as_deref().map_or_else(|| PathBuf::from("grype"), |p| config.resolve(p)),
                )
                .timeout(timeout)
                .offline(offline);
                if let Some(d) = &s.grype_db_dir {
                    g = g.db_dir(config.resolve(d));
                }
                Arc::new(g)
            }
            "ecr" => ecr_scanner(config).await?,
            other => {
                return Err(setup(
                    "[scan] scanners",
                    Error::new(
                        ErrorKind::Unsupported,
                        format!("scanner {other:?} is not available in this build: use osv, trivy or grype"),
                    ),
                ));
            }
        });
    }
    let policy = config.environment_policy(env);
    let overrides = config.environments.get(&env);
    let gate_policy = crate::stages::gate_policy(
        &policy.scan_gate,
        overrides.and_then(|e| e.fail_on_cvss),
        overrides.and_then(|e| e.only_fixed).unwrap_or(false),
        s.severity_sources.clone(),
    );
    let mut gate = wharf_scan::gate::Gate::new(gate_policy);
    for v in &s.vex {
        let path = config.resolve(v);
        gate = gate
            .with_vex_file(&path)
            .map_err(|e| setup(format!("[scan] vex {}", v.display()), e))?;
    }
    if let Some(w) = &s.waivers {
        let waivers = wharf_scan::gate::read_waivers(&config.resolve(w))
            .map_err(|e| setup(format!("[scan] waivers {}", w.display()), e))?;
        gate = gate
            .with_waivers(waivers)
            .map_err(|e| setup("[scan] waivers", e))?;
    }
    let source = if config.registry.url.is_none() {
        ScanSource::Layout(config.layout_dir().join(repository))
    } else {
        let reference = wharf_core::Reference::parse(&config.docker_reference(repository))
            .map_err(|e| setup("[registry] url", Error::invalid(e.to_string())))?;
        ScanSource::Registry(reference)
    };
    let mut options = wharf_core::scan::ScanOptions::default();
    options.offline = offline;
    Ok(ScanStage::new(
        scanners,
        source,
        gate,
        config.resolve(
            s.reports_dir
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_SCAN_REPORTS)),
        ),
    )
    .image_name(config.docker_reference(repository))
    .options(options))
}

/// ECR's own scanner for the ECR registry `[registry] url` names.
#[cfg(feature = "ecr")]
async fn ecr_scanner(config: &Config) -> Result<Arc<dyn wharf_core::Scanner>, PipelineError> {
    let region = config.ecr_region().ok_or_else(|| {
        setup(
            "[scan] scanners",
            Error::invalid(
                "scanner \"ecr\" scans images in ECR: [registry] url must be an ECR registry (or set ecr_region)",
            ),
        )
    })?;
    let sdk = config.aws_sdk_config(Some(&region)).await?;
    Ok(Arc::new(wharf_scan::ecr::EcrScanner::new(
        wharf_scan::ecr::Client::new(&sdk),
    )))
}

#[cfg(not(feature = "ecr"))]
async fn ecr_scanner(_config: &Config) -> Result<Arc<dyn wharf_core::Scanner>, PipelineError> {
    Err(setup(
        "[scan] scanners",
        Error::new(
            ErrorKind::Unsupported,
            "scanner \"ecr\" needs wharf-pipeline's `ecr` feature",
        ),
    ))
}

/// The target `[deploy]` names: the GitOps repository by default.
async fn deploy_target(
    config: &Config,
    env: Environment,
    options: &RunOptions,
) -> Result<Arc<dyn wharf_core::DeployTarget>, PipelineError> {
    let d = &config.deploy;
    let mut workload = d.workload.clone().unwrap_or_default();
    if workload.namespace.is_none() {
        workload.namespace = d.namespace.clone();
    }
    if let Some(paths) = &d.manifests {
        let paths: Vec<PathBuf> = paths.iter().map(|p| config.resolve(p)).collect();
        workload.manifests = wharf_kube::render::load_manifests(&paths)
            .map_err(|e| setup("[deploy] manifests", e))?;
    }
    for overlay in d.overlays.iter().flatten() {
        let dir = config.resolve(Path::new(&overlay.replace("{environment}", env.as_str())));
        workload.overlays.push(
            wharf_kube::kustomize::load_overlay(&dir)
                .map_err(|e| setup(format!("[deploy] overlays {overlay:?}"), e))?,
        );
    }
    match d.target.as_deref().unwrap_or("gitops") {
        "gitops" => {
            let repo = config.resolve(
                d.gitops_repo
                    .as_deref()
                    .unwrap_or(Path::new(DEFAULT_GITOPS_REPO)),
            );
            let mut target = wharf_kube::gitops::GitOps::open(&repo, workload)
                .map_err(|e| setup(format!("[deploy] gitops_repo {}", repo.display()), e))?;
            if let Some(remote) = &d.gitops_remote {
                target = target.with_remote(remote.clone());
            }
            Ok(Arc::new(target))
        }
        target @ ("kubernetes" | "eks" | "aks" | "gke") => {
            kubernetes_target(config, env, options, target, workload).await
        }
        other => Err(setup(
            "[deploy] target",
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "deploy target {other:?} is not one wharf knows: use \"gitops\" (the default), \"kubernetes\", \"eks\", \"aks\" or \"gke\""
                ),
            ),
        )),
    }
}

/// `[deploy] target = "kubernetes"`: the kubeconfig's (or the pod's own) cluster; `eks`,
/// `aks`, `gke`: a managed cluster found through its cloud's API.
#[cfg(feature = "kubernetes")]
async fn kubernetes_target(
    config: &Config,
    env: Environment,
    options: &RunOptions,
    target: &str,
    workload: wharf_kube::render::Workload,
) -> Result<Arc<dyn wharf_core::DeployTarget>, PipelineError> {
    use wharf_kube::cloud::{Aks, Gke};
    use wharf_kube::cluster::Cluster;
    let d = &config.deploy;
    let need = |field: &str, value: &Option<String>| {
        value.clone().ok_or_else(|| {
            setup(
                format!("[deploy] {field}"),
                Error::invalid(format!(
                    "target = {target:?} needs [deploy] {field} (see examples/wharf.toml)"
                )),
            )
        })
    };
    let identity = config.identity().await?;
    let credentials =
        |cloud: &str, table: &str, exchange: Option<Arc<dyn wharf_core::CloudCredentials>>| {
            options.cloud_credentials.clone().or(exchange).ok_or_else(|| {
            setup(
                "[deploy] target",
                Error::new(
                    ErrorKind::Unauthenticated,
                    format!(
                        "target = {target:?} needs {cloud} credentials: configure {table} (workload identity from this run's OIDC token), or pass a CloudCredentials provider in RunOptions::cloud_credentials"
                    ),
                ),
            )
        })
        };
    let cluster = match target {
        "eks" => eks_target(config, options, workload).await?,
        "aks" => {
            let mut aks = Aks::new(
                need("subscription", &d.subscription)?,
                need("resource_group", &d.resource_group)?,
                need("cluster", &d.cluster)?,
                credentials(
                    "Azure",
                    "[identity.azure]",
                    identity
                        .azure
                        .clone()
                        .map(|a| a as Arc<dyn wharf_core::CloudCredentials>),
                )?,
            );
            if let Some(url) = &d.endpoint_url {
                aks = aks.management_url(url);
            }
            aks.connect(workload)
                .await
                .map_err(|e| setup("[deploy] cluster", e))?
        }
        "gke" => {
            let mut gke = Gke::new(
                need("project", &d.project)?,
                need("location", &d.location)?,
                need("cluster", &d.cluster)?,
                credentials(
                    "Google Cloud",
                    "[identity.gcp]",
                    identity
                        .gcp
                        .clone()
                        .map(|g| g as Arc<dyn wharf_core::CloudCredentials>),
                )?,
            );
            if let Some(url) = &d.endpoint_url {
                gke = gke.api_url(url);
            }
            gke.connect(workload)
                .await
                .map_err(|e| setup("[deploy] cluster", e))?
        }
        _ if d.in_cluster.unwrap_or(false) => {
            Cluster::in_cluster(workload).map_err(|e| setup("[deploy] in_cluster", e))?
        }
        _ => {
            let path = d.kubeconfig.as_deref().map(|p| config.resolve(p));
            Cluster::from_kubeconfig(path.as_deref(), d.context.as_deref(), workload)
                .await
                .map_err(|e| setup("[deploy] kubeconfig", e))?
        }
    };
    let mut cluster = cluster
        .force_conflicts(d.force_conflicts.unwrap_or(false))
        .promote_canary(d.promote.unwrap_or(true));
    if let Some(url) = &d.health_url {
        cluster = cluster.health_url(url.replace("{environment}", env.as_str()));
    }
    if let Some(secs) = d.health_timeout_seconds {
        cluster = cluster.health_timeout(std::time::Duration::from_secs(secs));
    }
    Ok(Arc::new(cluster))
}

#[cfg(not(feature = "kubernetes"))]
async fn kubernetes_target(
    _config: &Config,
    _env: Environment,
    _options: &RunOptions,
    target: &str,
    _workload: wharf_kube::render::Workload,
) -> Result<Arc<dyn wharf_core::DeployTarget>, PipelineError> {
    let feature = if target == "eks" { "eks" } else { "kubernetes" };
    Err(setup(
        "[deploy] target",
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "deploy target {target:?} needs wharf-pipeline's `{feature}` feature (cargo xtask pipeline has it)"
            ),
        ),
    ))
}

/// `[deploy] target = "eks"`: DescribeCluster and EKS tokens with the AWS SDK's default
/// credentials chain (or the `RunOptions` provider).
#[cfg(feature = "eks")]
async fn eks_target(
    config: &Config,
    options: &RunOptions,
    workload: wharf_kube::render::Workload,
) -> Result<wharf_kube::cluster::Cluster, PipelineError> {
    let d = &config.deploy;
    let name = d.cluster.clone().ok_or_else(|| {
        setup(
            "[deploy] cluster",
            Error::invalid("target = \"eks\" needs [deploy] cluster, the EKS cluster's name"),
        )
    })?;
    let sdk = config.aws_sdk_config(None).await?;
    let region = d
        .region
        .clone()
        .or_else(|| sdk.region().map(ToString::to_string))
        .ok_or_else(|| {
            setup(
                "[deploy] region",
                Error::invalid(
                    "target = \"eks\" needs the cluster's region: [deploy] region, or AWS_REGION",
                ),
            )
        })?;
    let credentials = match (&options.cloud_credentials, &config.identity().await?.aws) {
        (Some(c), _) => c.clone(),
        (None, Some(role)) => role.clone() as Arc<dyn wharf_core::CloudCredentials>,
        (None, None) => {
            Arc::new(crate::aws::SdkChain::new(&sdk)?) as Arc<dyn wharf_core::CloudCredentials>
        }
    };
    let mut eks = wharf_kube::cloud::Eks::new(name, region, credentials);
    if let Some(url) = d.endpoint_url.as_deref().or(sdk.endpoint_url()) {
        eks = eks.endpoint_url(url);
    }
    eks.connect(workload)
        .await
        .map_err(|e| setup("[deploy] cluster", e))
}

#[cfg(all(feature = "kubernetes", not(feature = "eks")))]
async fn eks_target(
    _config: &Config,
    _options: &RunOptions,
    _workload: wharf_kube::render::Workload,
) -> Result<wharf_kube::cluster::Cluster, PipelineError> {
    Err(setup(
        "[deploy] target",
        Error::new(
            ErrorKind::Unsupported,
            "deploy target \"eks\" needs wharf-pipeline's `eks` feature (cargo xtask pipeline has it)",
        ),
    ))
}

pub(crate) fn setup(what: impl Into<String>, source: impl Into<Error>) -> PipelineError {
    PipelineError::Setup {
        what: what.into(),
        source: source.into(),
    }
}

/// Record `refusal` as a failed run of one `setup` stage on `builder` (its policy, actor,
/// commit and audit log), and return it as [`PipelineError::Refused`].
async fn record_refusal(builder: PipelineBuilder, refusal: PipelineError) -> PipelineError {
    let stage = Refused {
        message: wharf_core::display_chain(&refusal),
        kind: refusal.kind(),
    };
    let recorded = match builder.stage(stage).build() {
        Ok(pipeline) => pipeline.run().await,
        Err(e) => Err(e),
    };
    PipelineError::Refused {
        source: Box::new(refusal),
        recorded: recorded.map(Box::new).map_err(|e| match e {
            PipelineError::Audit { source, .. } => source,
            other => other.into(),
        }),
    }
}

/// The stage a refused run records: it fails with the refusal.
struct Refused {
    message: String,
    kind: ErrorKind,
}

#[async_trait::async_trait]
impl Stage for Refused {
    fn name(&self) -> &str {
        "setup"
    }

    async fn run(&self, _ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        Err(Error::new(
            self.kind,
            format!("refused before the run started: {}", self.message),
        ))
    }
}

/// What built the image: the CI workflow when there is one (GitHub Actions, GitLab CI),
/// else `wharf-pipeline` on this host.
fn default_builder_id() -> String {
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
        "https://wharf.dev/builder/wharf-pipeline@{}",
        env!("CARGO_PKG_VERSION")
    )
}

impl Config {
    /// The repository images go to: `[registry] repository`, else `models/<project name>`.
    pub fn repository(&self) -> String {
        self.registry
            .repository
            .clone()
            .unwrap_or_else(|| format!("models/{}", self.project.name))
    }

    /// The OCI layout directory `[registry] layout` names (default `.wharf/oci` beside the
    /// config): the registry when there is no `url`, and where layers are staged.
    pub fn layout_dir(&self) -> PathBuf {
        self.resolve(
            self.registry
                .layout
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_LAYOUT)),
        )
    }

    /// The name signatures give images of `repository`: `host/repository` for a registry
    /// URL, the repository alone for the OCI layout.
    pub fn docker_reference(&self, repository: &str) -> String {
        match &self.registry.url {
            Some(url) => {
                let host = url
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/');
                format!("{host}/{repository}")
            }
            None => repository.to_owned(),
        }
    }

    /// The ECR region of `[registry] url`: `ecr_region` when set, else the `<region>` of a
    /// `<account>.dkr.ecr.<region>.amazonaws.com[.cn]` host; `None` for other registries.
    pub fn ecr_region(&self) -> Option<String> {
        ecr_region(
            self.registry.url.as_deref()?,
            self.registry.ecr_region.as_deref(),
        )
    }

    /// The key file `[sign] key` names (default `.wharf/keys/cosign.key` beside the
    /// config); `None` for `keyless` and `awskms://` keys.
    pub fn signing_key_file(&self) -> Option<PathBuf> {
        match self.sign.key.as_deref() {
            Some("keyless") => None,
            Some(k) if k.starts_with("awskms://") => None,
            other => Some(self.resolve(Path::new(other.unwrap_or(DEFAULT_SIGNING_KEY)))),
        }
    }

    /// The registry `[registry]` names, to read from: the OCI layout directory (created if
    /// missing), any OCI registry over HTTP(S) (credentials from the docker config; feature
    /// `distribution`), or ECR with token auth (feature `ecr`; AWS credentials and
    /// endpoints from the environment, as for the AWS CLI). Pushing through
    /// [`Pipeline::standard`] also creates the ECR repository or brings it to policy.
    pub async fn open_registry(&self) -> Result<Arc<dyn Registry>, PipelineError> {
        self.registry_with(None, &mut Vec::new()).await
    }

    async fn registry_for_push(
        &self,
        repository: &str,
        notices: &mut Vec<String>,
    ) -> Result<Arc<dyn Registry>, PipelineError> {
        self.registry_with(Some(repository), notices).await
    }

    async fn registry_with(
        &self,
        ensure: Option<&str>,
        notices: &mut Vec<String>,
    ) -> Result<Arc<dyn Registry>, PipelineError> {
        let Some(url) = &self.registry.url else {
            let dir = self.layout_dir();
            let layout = wharf_registry::layout::LayoutRegistry::open(&dir)
                .map_err(|e| setup(format!("[registry] layout {}", dir.display()), e))?;
            return Ok(Arc::new(layout));
        };
        let what = format!("[registry] url {url:?}");
        match self.ecr_region() {
            Some(region) => ecr_registry(self, url, &region, ensure, notices)
                .await
                .map_err(|e| setup(format!("{what} (ECR in {region})"), e)),
            None => distribution_client(url).map_err(|e| setup(what, e)),
        }
    }

    /// A base image: `oci:<layout dir>:<tag>` (relative to the config) or a registry
    /// reference (`ghcr.io/acme/python:3.12`, `…@sha256:…`; feature `distribution`).
    fn base_image(&self, spec: &str) -> Result<BaseImageRef, Error> {
        if let Some(rest) = spec.strip_prefix("oci:") {
            let (dir, reference) = rest
                .rsplit_once(':')
                .filter(|(d, r)| !d.is_empty() && !r.is_empty())
                .ok_or_else(|| Error::invalid("write oci:<layout directory>:<tag>"))?;
            let dir = self.resolve(Path::new(dir));
            let (Some(parent), Some(repo)) = (dir.parent(), dir.file_name()) else {
                return Err(Error::invalid(format!(
                    "{} is not a layout directory inside another",
                    dir.display()
                )));
            };
            let registry = wharf_registry::layout::LayoutRegistry::open(parent)?;
            return Ok(BaseImageRef::new(
                Arc::new(registry),
                repo.to_string_lossy(),
                reference,
            ));
        }
        let r = wharf_core::Reference::parse_docker(spec)?;
        let host = r
            .registry_host()
            .ok_or_else(|| Error::invalid("the reference names no registry"))?;
        let reference = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        Ok(BaseImageRef::new(
            distribution_client(host)?,
            r.path(),
            reference,
        ))
    }
}

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

#[cfg(feature = "distribution")]
fn distribution_client(url: &str) -> Result<Arc<dyn Registry>, Error> {
    Ok(Arc::new(
        wharf_registry::distribution::DistributionClient::builder(url).build()?,
    ))
}

#[cfg(not(feature = "distribution"))]
fn distribution_client(_url: &str) -> Result<Arc<dyn Registry>, Error> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "a registry URL needs wharf-pipeline's `distribution` feature (without one, the OCI layout on disk is the registry)",
    ))
}

/// ECR behind `url`: with `ensure`, that repository created or brought to wharf's policy
/// (immutable tags except `sha256-*` signature tags, scan-on-push), each change a notice;
/// a client whose credentials come from `GetAuthorizationToken`, refreshed before expiry.
#[cfg(feature = "ecr")]
async fn ecr_registry(
    config: &Config,
    url: &str,
    region: &str,
    ensure: Option<&str>,
    notices: &mut Vec<String>,
) -> Result<Arc<dyn Registry>, Error> {
    use wharf_registry::ecr::{Ecr, RepositorySettings};
    let sdk = config
        .aws_sdk_config(Some(region))
        .await
        .map_err(|e| Error::new(e.kind(), wharf_core::display_chain(&e)))?;
    let ecr = Ecr::new(&sdk).with_registry_endpoint(url);
    if let Some(repository) = ensure {
        let repo = ecr
            .ensure_repository(repository, &RepositorySettings::default())
            .await?;
        for change in &repo.changes {
            tracing::info!(repository = %repo.name, "ecr: {change}");
            notices.push(format!("ecr: {}: {change}", repo.name));
        }
    }
    Ok(Arc::new(ecr.registry().await?))
}

#[cfg(not(feature = "ecr"))]
async fn ecr_registry(
    _config: &Config,
    _url: &str,
    _region: &str,
    _ensure: Option<&str>,
    _notices: &mut Vec<String>,
) -> Result<Arc<dyn Registry>, Error> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "an ECR registry needs wharf-pipeline's `ecr` feature",
    ))
}

/// The sign stage `[sign]` describes, signing images of the config's repository in
/// `registry`.
async fn sign_stage(
    config: &Config,
    env: Environment,
    options: &RunOptions,
    registry: Arc<dyn Registry>,
    notices: &mut Vec<String>,
) -> Result<SignStage, PipelineError> {
    let format = match config.sign.format.as_deref() {
        Some("bundle") => SignFormat::Bundle,
        Some("auto") => SignFormat::Auto,
        _ => SignFormat::Legacy, // validated when the config was read
    };
    let repository = config.repository();
    let docker_reference = config.docker_reference(&repository);
    let stage = match config.sign.key.as_deref() {
        Some("keyless") => {
            keyless_sign_stage(
                config,
                env,
                options,
                registry,
                &repository,
                docker_reference,
            )
            .await?
        }
        Some(k) if k.starts_with("awskms://") => {
            kms_sign_stage(config, k, registry, repository, docker_reference)
                .await
                .map_err(|e| setup(format!("[sign] key {k}"), e))?
        }
        other => {
            // Neither keyless nor KMS: a key file (the default one when `[sign]` names none).
            let path = config.resolve(Path::new(other.unwrap_or(DEFAULT_SIGNING_KEY)));
            let password_env = config
                .sign
                .password_env
                .as_deref()
                .unwrap_or(DEFAULT_PASSWORD_ENV);
            let password = key_password(&path, password_env, env, options, notices)?;
            let key = wharf_sign::EcdsaP256Key::load_or_generate_with(&path, Some(&password))
                .map_err(|e| {
                    setup(
                        format!(
                            "[sign] key {} (password from {password_env})",
                            path.display()
                        ),
                        e,
                    )
                })?;
            let public = key.public_key().clone();
            SignStage::new(
                registry,
                repository,
                docker_reference,
                Arc::new(key),
                Arc::new(public),
            )
        }
    };
    Ok(stage.with_format(format))
}

/// The signing key's password: the caller's, else the variable's. Prod refuses a key
/// without one; elsewhere an unprotected key (cosign's empty password) is a notice.
fn key_password(
    key: &Path,
    password_env: &str,
    env: Environment,
    options: &RunOptions,
    notices: &mut Vec<String>,
) -> Result<Secret, PipelineError> {
    let why = match &options.key_password {
        Some(p) if !p.expose().is_empty() => return Ok(p.clone()),
        Some(_) => "the password given is empty",
        None => match std::env::var(password_env) {
            Ok(p) if !p.is_empty() => return Ok(Secret::new(p)),
            Ok(_) => "it is set but empty, and an empty password is none",
            Err(_) => "it is not set",
        },
    };
    if env == Environment::Prod {
        return Err(setup(
            format!("[sign] key {}", key.display()),
            Error::invalid(format!(
                "prod signs only with a password-protected key: set {password_env} ({why})"
            )),
        ));
    }
    notices.push(format!(
        "warning: the {env} signing key {} has no password; set {password_env} to protect it ({why})",
        key.display()
    ));
    Ok(Secret::new(""))
}

/// Sign with an AWS KMS key: the private key stays in KMS; credentials and region from the
/// AWS environment (a web-identity role in CI).
#[cfg(feature = "kms")]
async fn kms_sign_stage(
    config: &Config,
    reference: &str,
    registry: Arc<dyn Registry>,
    repository: String,
    docker_reference: String,
) -> Result<SignStage, Error> {
    let sdk = config
        .aws_sdk_config(None)
        .await
        .map_err(|e| Error::new(e.kind(), wharf_core::display_chain(&e)))?;
    let key = wharf_sign::kms::KmsKey::connect(aws_sdk_kms::Client::new(&sdk), reference).await?;
    let public = key.public_key().clone();
    Ok(SignStage::new(
        registry,
        repository,
        docker_reference,
        Arc::new(key),
        Arc::new(public),
    ))
}

#[cfg(not(feature = "kms"))]
async fn kms_sign_stage(
    _config: &Config,
    _reference: &str,
    _registry: Arc<dyn Registry>,
    _repository: String,
    _docker_reference: String,
) -> Result<SignStage, Error> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "AWS KMS keys need wharf-pipeline's `kms` feature",
    ))
}

/// `[sign] key = "keyless"`: Fulcio and Rekor (public-good unless configured) verified
/// against the configured `trusted_root.json`; the OIDC token from the caller, else
/// `token_env`, else the run's token source (`[identity]`: GitHub Actions, GitLab…), asked
/// for audience `sigstore` at each exchange.
async fn keyless_sign_stage(
    config: &Config,
    env: Environment,
    options: &RunOptions,
    registry: Arc<dyn Registry>,
    repository: &str,
    docker_reference: String,
) -> Result<SignStage, PipelineError> {
    let s = &config.sign;
    let keyless = "[sign] key = \"keyless\"";
    let root_path = s.trusted_root.as_deref().map(|p| config.resolve(p)).ok_or_else(|| {
        setup(
            format!("{keyless} needs trusted_root"),
            Error::invalid(
                "the trusted_root.json of your Sigstore deployment (from its TUF repository, e.g. `cosign trusted-root create` or the public-good root)",
            ),
        )
    })?;
    let root_what = format!("[sign] trusted_root {}", root_path.display());
    let bytes = std::fs::read(&root_path).map_err(|e| setup(&root_what, e))?;
    let root = wharf_sign::rekor::TrustedRoot::parse(&bytes, &root_path.display().to_string())
        .map_err(|e| setup(&root_what, e))?;
    let token_env = s.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV);
    let token = match &options.id_token {
        Some(token) => Some(token.clone()),
        None => std::env::var(token_env)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(Secret::new),
    };
    let missing = |why: &str| {
        setup(
            keyless,
            Error::new(
                ErrorKind::Unauthenticated,
                format!("no OIDC ID token in {token_env}{why}"),
            ),
        )
    };
    let token = match token {
        Some(token) => KeylessToken::Fixed(token),
        // A variable the config names is the only place looked at.
        None if s.token_env.is_some() => {
            return Err(missing(": export the ID token (audience \"sigstore\") there"));
        }
        None => KeylessToken::Source(
            config
                .identity()
                .await?
                .token_source()
                .ok_or_else(|| {
                    missing(
                        " and no other token source: in GitHub Actions give the job `permissions: id-token: write`, in GitLab CI add `id_tokens` with `aud: sigstore`, elsewhere export one (audience \"sigstore\") in SIGSTORE_ID_TOKEN",
                    )
                })?,
        ),
    };
    let identity = match (&s.identity, &s.issuer) {
        (Some(subject), Some(issuer)) => Some(wharf_sign::fulcio::Identity::exact(subject, issuer)),
        _ if config.environment_policy(env).require_signature => {
            return Err(setup(
                format!("{keyless} in {env}"),
                Error::invalid(format!(
                    "set identity and issuer, the certificate identity {env} trusts (e.g. your release workflow's URI and https://token.actions.githubusercontent.com)"
                )),
            ));
        }
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
    )
    .map_err(|e| setup(keyless, e))?;
    Ok(SignStage::keyless_with(
        registry,
        repository.to_owned(),
        docker_reference,
        Arc::new(sigstore),
        token,
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
