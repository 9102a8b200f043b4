//! `wharf.toml`: the project's configuration, parsed strictly (unknown keys are errors),
//! with environment-variable overrides (`WHARF__SECTION__KEY=value`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use wharf_core::{Environment, EnvironmentPolicy, ScanGate, Severity};
use wharf_policy::{GovernanceConfig, ThresholdOverrides};

use crate::PipelineError;

/// The prefix of environment-variable overrides; `__` separates path segments:
/// `WHARF__REGISTRY__URL=http://127.0.0.1:5000`,
/// `WHARF__ENVIRONMENTS__PROD__REPLICAS=4`.
pub const ENV_PREFIX: &str = "WHARF__";

/// The most parts an override key has (`WHARF__ENVIRONMENTS__PROD__GOVERNANCE__MIN_F1`).
const MAX_OVERRIDE_DEPTH: usize = 4;

/// The whole `wharf.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// `[project]`
    pub project: ProjectConfig,
    /// `[model]`
    pub model: ModelConfig,
    /// `[governance]`
    #[serde(default)]
    pub governance: GovernanceSection,
    /// `[registry]`
    #[serde(default)]
    pub registry: RegistryConfig,
    /// `[scan]`
    #[serde(default)]
    pub scan: ScanConfig,
    /// `[sign]`
    #[serde(default)]
    pub sign: SignConfig,
    /// `[audit]`
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[environments.<dev|test|prod>]`
    #[serde(default)]
    pub environments: BTreeMap<Environment, EnvironmentConfig>,
    /// `[deploy]`
    #[serde(default)]
    pub deploy: DeployConfig,
    /// `[identity]`
    #[serde(default)]
    pub identity: IdentityConfig,
    /// The directory relative paths are resolved against (the config file's directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The identity `[identity]` resolves to, once per config.
    #[serde(skip)]
    pub(crate) resolved_identity: crate::identity::IdentityCell,
}

/// `[identity]`: where the run's OIDC ID token comes from and what it is exchanged for.
/// With none of it, the token source is detected (see `wharf_identity::source`) and no
/// exchange happens: the clouds' own default credential chains apply.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IdentityConfig {
    /// `auto` (default: GitHub Actions, GitLab CI, token files and variables, in that
    /// order), `github`, `gitlab`, `file`, `env`, or `none` (the local user, no token).
    pub source: Option<String>,
    /// `source = "file"`: the token file (a Kubernetes projected token), read at each use.
    pub token_file: Option<PathBuf>,
    /// `source = "env"`: the variable holding the token; `gitlab`: the `id_tokens` variable.
    pub token_env: Option<String>,
    /// `[identity.aws]`: assume a role with the token (STS AssumeRoleWithWebIdentity) for
    /// every AWS call: ECR, S3 audit, KMS, EKS.
    pub aws: Option<AwsIdentityConfig>,
    /// `[identity.azure]`: Entra workload identity for Azure calls (AKS).
    pub azure: Option<AzureIdentityConfig>,
    /// `[identity.gcp]`: workload identity federation for Google Cloud calls (GKE).
    pub gcp: Option<GcpIdentityConfig>,
}

/// `[identity.aws]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AwsIdentityConfig {
    /// The role to assume: `arn:aws:iam::123456789012:role/NAME`.
    pub role_arn: String,
    /// The role session's name in CloudTrail (default `wharf-<CI run id>`).
    pub session_name: Option<String>,
    /// Requested lifetime, 900 to 43200 seconds (default STS's: 3600).
    pub duration_seconds: Option<u64>,
    /// The token's audience (default `sts.amazonaws.com`).
    pub audience: Option<String>,
    /// STS's region (default `AWS_REGION`, then `us-east-1`).
    pub region: Option<String>,
    /// STS at this URL (a VPC endpoint; default `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// STS's FIPS endpoint.
    pub fips: Option<bool>,
}

/// `[identity.azure]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AzureIdentityConfig {
    /// The Entra tenant (default `AZURE_TENANT_ID`).
    pub tenant_id: Option<String>,
    /// The application (client) id with the federated credential (default `AZURE_CLIENT_ID`).
    pub client_id: Option<String>,
    /// Entra's authority (default `AZURE_AUTHORITY_HOST`, then the public cloud's).
    pub authority_host: Option<String>,
    /// The token's audience (default `api://AzureADTokenExchange`).
    pub audience: Option<String>,
}

/// `[identity.gcp]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GcpIdentityConfig {
    /// The workload identity provider:
    /// `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`.
    pub provider: String,
    /// A service account to impersonate (default: use the federated token itself).
    pub service_account: Option<String>,
    /// The token's audience (default `https://iam.googleapis.com/` + the provider).
    pub token_audience: Option<String>,
    /// Google STS's token URL (default `https://sts.googleapis.com/v1/token`).
    pub sts_url: Option<String>,
    /// IAM Credentials' URL (default `https://iamcredentials.googleapis.com`).
    pub iam_url: Option<String>,
}

/// `[project]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProjectConfig {
    /// Project name (in run records).
    pub name: String,
    /// Environment used when `--env` is not given.
    #[serde(default = "default_env")]
    pub default_environment: Environment,
}

fn default_env() -> Environment {
    Environment::Dev
}

/// `[model]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelConfig {
    /// The model directory.
    pub dir: PathBuf,
    /// The manifest, relative to `dir` (default `model.yaml`).
    #[serde(default = "default_manifest")]
    pub manifest: PathBuf,
}

fn default_manifest() -> PathBuf {
    PathBuf::from("model.yaml")
}

/// `[governance]`: the policy gate's allow-lists, thresholds and user policies.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GovernanceSection {
    /// Base thresholds.
    #[serde(default)]
    pub thresholds: Option<ThresholdOverrides>,
    /// Approved dependencies; replaces the bundled list when set.
    pub allowed_dependencies: Option<Vec<String>>,
    /// Approved data sources.
    #[serde(default)]
    pub approved_data_sources: Vec<String>,
    /// A directory of extra `.rego` policies.
    pub policy_dir: Option<PathBuf>,
}

/// `[registry]`: where images go. Without `url`, the embedded OCI layout is used.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// Registry URL (`https://ghcr.io`, `http://127.0.0.1:5000`, an ECR endpoint).
    pub url: Option<String>,
    /// Repository inside the registry (default: the model name).
    pub repository: Option<String>,
    /// OCI image layout directory for the embedded default (default `.wharf/oci`).
    pub layout: Option<PathBuf>,
    /// Base image to append model layers to.
    pub base_image: Option<String>,
    /// Treat `url` as Amazon ECR in this region: create the repository (immutable tags
    /// except `sha256-*`, scan-on-push) and authenticate with `GetAuthorizationToken`.
    /// Implied for `*.dkr.ecr.<region>.amazonaws.com` URLs; set it for VPC endpoints.
    pub ecr_region: Option<String>,
}

/// `[scan]`: which scanners, their data, and what the gate suppresses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ScanConfig {
    /// Scanners whose findings merge into one report: `osv` (the embedded default),
    /// `trivy`, `grype`, `ecr`.
    pub scanners: Option<Vec<String>>,
    /// The OSV database: a directory of OSV records or an export's ZIP (default `.wharf/osv`).
    pub osv_db: Option<PathBuf>,
    /// The Trivy binary (default `trivy` on `PATH`).
    pub trivy: Option<PathBuf>,
    /// Trivy's cache and database directory (`--cache-dir`).
    pub trivy_cache_dir: Option<PathBuf>,
    /// Where Trivy downloads its database from (`--db-repository`, e.g. an ECR mirror).
    pub trivy_db_repository: Option<String>,
    /// The Grype binary (default `grype` on `PATH`).
    pub grype: Option<PathBuf>,
    /// Grype's database directory.
    pub grype_db_dir: Option<PathBuf>,
    /// Never download vulnerability data (Trivy `--skip-db-update --offline-scan`, Grype
    /// without auto-update).
    pub offline: Option<bool>,
    /// Stop a scanner binary after this many seconds (default 600).
    pub timeout_seconds: Option<u64>,
    /// OpenVEX documents applied to findings.
    #[serde(default)]
    pub vex: Vec<PathBuf>,
    /// A TOML file of `[[waiver]]` tables (id, package, reason, owner, expires).
    pub waivers: Option<PathBuf>,
    /// Whose rating sets a finding's severity, first match wins (`["ghsa", "nvd"]`).
    #[serde(default)]
    pub severity_sources: Vec<String>,
    /// Where each image's report, SARIF and SBOM are written (default `.wharf/scan`).
    pub reports_dir: Option<PathBuf>,
}

/// `[sign]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SignConfig {
    /// Key: a `cosign.key` path, `awskms://…`, or `keyless`.
    pub key: Option<String>,
    /// Environment variable holding the key password (never the password itself).
    pub password_env: Option<String>,
    /// Signature format: `legacy` (`.sig` tags), `bundle` (OCI 1.1 referrers) or `auto`
    /// (bundle where the registry has the referrers API, else legacy).
    pub format: Option<String>,
    /// Keyless: Fulcio's URL (default: the public-good instance).
    pub fulcio_url: Option<String>,
    /// Keyless: Rekor's URL (default: the public-good instance).
    pub rekor_url: Option<String>,
    /// Keyless: the Sigstore `trusted_root.json` that vouches for Fulcio, Rekor and the CT
    /// logs (from the deployment's TUF repository; required for keyless).
    pub trusted_root: Option<PathBuf>,
    /// Keyless: the environment variable holding the OIDC ID token (default
    /// `SIGSTORE_ID_TOKEN`, as cosign reads it).
    pub token_env: Option<String>,
    /// Keyless: the certificate identity signatures must carry (a workflow URI, an email);
    /// required in environments that require signatures.
    pub identity: Option<String>,
    /// Keyless: the OIDC issuer that must have vouched for `identity`.
    pub issuer: Option<String>,
}

/// `[audit]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditConfig {
    /// Directory of the embedded write-once audit log (default `.wharf/audit`), used when
    /// `url` is not set.
    pub dir: Option<PathBuf>,
    /// Where the log lives instead: `s3://bucket/prefix` (S3 Object Lock), `az://container/prefix`
    /// (Azure Blob), `gs://bucket/prefix` (GCS), `file:///dir`.
    pub url: Option<String>,
    /// Days each record is locked on S3 (default 2557, seven years). The bucket must have
    /// Object Lock, and no shorter default retention.
    pub retention_days: Option<u64>,
    /// S3 lock mode: `compliance` (default; nobody can delete early) or `governance`.
    pub lock_mode: Option<LockModeConfig>,
    /// Also place a legal hold on every S3 record.
    #[serde(default)]
    pub legal_hold: bool,
    /// Address S3 buckets by path (`http://host/bucket`): for S3-compatible stores and
    /// local test endpoints.
    #[serde(default)]
    pub force_path_style: bool,
    /// A signed checkpoint every this many records (default 1: after every run).
    pub checkpoint_every: Option<u64>,
    /// The checkpoint signing key file (ECDSA P-256, PKCS#8 PEM; created on first use);
    /// default `.wharf/keys/audit-checkpoint.pem`. `"none"` turns checkpoints off.
    pub checkpoint_key: Option<String>,
}

/// `[audit] lock_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LockModeConfig {
    /// COMPLIANCE: nobody can shorten the retention or delete a record, not even root.
    #[default]
    Compliance,
    /// GOVERNANCE: users with `s3:BypassGovernanceRetention` can.
    Governance,
}

/// `[environments.<name>]`: overrides of the environment's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EnvironmentConfig {
    /// Replicas.
    pub replicas: Option<u32>,
    /// Debug flag.
    pub debug: Option<bool>,
    /// Fail the scan gate at this severity or worse; `"none"` for warn only.
    pub fail_on: Option<String>,
    /// Also fail on findings with a CVSS base score at or above this (default: the
    /// `fail_on` severity's band, 7.0 for HIGH).
    pub fail_on_cvss: Option<f64>,
    /// Let only findings that have a fix count toward the scan gate.
    pub only_fixed: Option<bool>,
    /// Require a verified signature.
    pub require_signature: Option<bool>,
    /// Governance threshold overrides.
    pub governance: Option<ThresholdOverrides>,
}

/// `[deploy]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DeployConfig {
    /// Target: `gitops` (embedded default), `kubernetes` (a kubeconfig's cluster, or the
    /// pod's own), `eks`, `aks`, `gke` (a managed cluster found by `cluster` and its
    /// region, resource group or project).
    pub target: Option<String>,
    /// `eks`, `aks`, `gke`: the cluster's name.
    pub cluster: Option<String>,
    /// `eks`: the cluster's region (default the AWS SDK's region).
    pub region: Option<String>,
    /// `aks`: the subscription id.
    pub subscription: Option<String>,
    /// `aks`: the resource group.
    pub resource_group: Option<String>,
    /// `gke`: the project id.
    pub project: Option<String>,
    /// `gke`: the cluster's location (region or zone).
    pub location: Option<String>,
    /// `eks`, `aks`, `gke`: the cloud API to ask for the cluster (a VPC/FIPS endpoint, a
    /// sovereign cloud's Resource Manager) instead of the public one.
    pub endpoint_url: Option<String>,
    /// The GitOps repository directory (default `.wharf/gitops` beside the config).
    pub gitops_repo: Option<PathBuf>,
    /// A remote every GitOps commit is pushed to (a name or URL git knows).
    pub gitops_remote: Option<String>,
    /// Kubernetes namespace (the workload's `namespace` wins).
    pub namespace: Option<String>,
    /// `kubernetes`: the kubeconfig file (default `KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// `kubernetes`: the kubeconfig context (default its current context).
    pub context: Option<String>,
    /// `kubernetes`: use the pod's service account instead of a kubeconfig.
    pub in_cluster: Option<bool>,
    /// `kubernetes`: take fields another field manager owns instead of failing.
    pub force_conflicts: Option<bool>,
    /// Seconds to wait for a rollout (and a rollback's) before rolling back (600).
    pub rollout_timeout_seconds: Option<u64>,
    /// `kubernetes`: after the rollout, GET this URL until it answers 2xx (`{environment}`
    /// is replaced by the run's environment); without it, health is the pods' readiness.
    pub health_url: Option<String>,
    /// `kubernetes`: seconds the health check may keep failing (120).
    pub health_timeout_seconds: Option<u64>,
    /// `kubernetes`, InferenceService with a canary share: promote a canary that passed to
    /// 100 % (`true`, the default), or leave it at its share for a person to promote.
    pub promote: Option<bool>,
    /// Users' own manifests applied with the rendered ones: YAML files or directories of
    /// them, relative to this file.
    pub manifests: Option<Vec<PathBuf>>,
    /// Kustomize overlays built over the rendered objects and `manifests` (directories with
    /// a `kustomization.yaml`, relative to this file; `{environment}` is replaced by the
    /// run's environment), as `kubectl kustomize` would build them.
    pub overlays: Option<Vec<String>>,
    /// `[deploy.workload]`: how the model runs (replicas, resources, probes, GPU nodes…).
    pub workload: Option<wharf_kube::render::Workload>,
}

impl Config {
    /// Load `path` and apply `WHARF__…` overrides from the process environment.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml_str(&text, &path.display().to_string(), &base, std::env::vars())
    }

    /// Parse `text` (`origin` names it in errors), applying overrides from `vars`.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        base_dir: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, PipelineError> {
        // First the file alone, so errors point at its lines.
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| toml_error(&e, text, origin))?;
        let mut config: Config = toml::from_str(text).map_err(|e| toml_error(&e, text, origin))?;
        let mut applied = Vec::new();
        for (key, value) in vars {
            let Some(path) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // wharf.toml is at most four tables deep (environments.prod.governance.min_f1);
            // a deeper or oddly spelled key is a typo, and a hostile one would nest without end.
            if !path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || path.split("__").count() > MAX_OVERRIDE_DEPTH
            {
                return Err(PipelineError::Config {
                    origin: key.chars().take(80).collect(),
                    location: None,
                    message: format!(
                        "not a wharf.toml key: use letters, digits and `__` between at most {MAX_OVERRIDE_DEPTH} parts, like WHARF__ENVIRONMENTS__PROD__REPLICAS"
                    ),
                });
            }
            let segments: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
            if segments.iter().any(String::is_empty) {
                return Err(PipelineError::Config {
                    origin: key.clone(),
                    location: None,
                    message: "empty path segment: use WHARF__SECTION__KEY".into(),
                });
            }
            set_path(&mut table, &segments, parse_value(&value));
            applied.push(key);
        }
        if !applied.is_empty() {
            applied.sort();
            config = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| PipelineError::Config {
                    origin: format!("{origin} with overrides {}", applied.join(", ")),
                    location: None,
                    message: e.message().trim().to_owned(),
                })?;
        }
        config.base_dir = base_dir.to_owned();
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), PipelineError> {
        let bad = |message: String| PipelineError::Config {
            origin: origin.to_owned(),
            location: None,
            message,
        };
        if self.project.name.trim().is_empty() {
            return Err(bad("project.name must not be empty".into()));
        }
        for (env, e) in &self.environments {
            if let Some(f) = &e.fail_on {
                parse_fail_on(f).map_err(|m| bad(format!("environments.{env}.fail_on: {m}")))?;
            }
            if let Some(c) = e.fail_on_cvss
                && !(0.0..=10.0).contains(&c)
            {
                return Err(bad(format!(
                    "environments.{env}.fail_on_cvss must be a CVSS score from 0.0 to 10.0, got {c}"
                )));
            }
            if e.replicas == Some(0) {
                return Err(bad(format!(
                    "environments.{env}.replicas must be at least 1"
                )));
            }
        }
        for s in self.scan.scanners.iter().flatten() {
            if !crate::stages::SCANNERS.contains(&s.as_str()) {
                return Err(bad(format!(
                    "scan.scanners: {s:?} is not a scanner wharf runs: use {}",
                    crate::stages::SCANNERS.join(", ")
                )));
            }
        }
        for (field, var, example) in [
            (
                "password_env",
                &self.sign.password_env,
                "WHARF_KEY_PASSWORD",
            ),
            ("token_env", &self.sign.token_env, "SIGSTORE_ID_TOKEN"),
        ] {
            if let Some(v) = var
                && (v.is_empty() || v.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
            {
                return Err(bad(format!(
                    "sign.{field} must name an environment variable (like {example}), not hold a secret; got {} characters",
                    v.len()
                )));
            }
        }
        if self.sign.identity.is_some() != self.sign.issuer.is_some() {
            return Err(bad(
                "sign.identity and sign.issuer go together: the certificate identity and the OIDC issuer that vouched for it".into(),
            ));
        }
        if let Some(f) = &self.sign.format
            && !matches!(f.as_str(), "legacy" | "bundle" | "auto")
        {
            return Err(bad(format!(
                "sign.format {f:?}: write \"legacy\" (cosign .sig tags), \"bundle\" (Sigstore bundle referrers, cosign 3) or \"auto\" (bundle where the registry has the referrers API)"
            )));
        }
        for env in Environment::ALL {
            self.governance(env)
                .validate()
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }

    /// Resolve a path from the config against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The model manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        self.resolve(&self.model.dir).join(&self.model.manifest)
    }

    /// The audit directory (default `.wharf/audit` next to the config).
    pub fn audit_dir(&self) -> PathBuf {
        self.resolve(
            self.audit
                .dir
                .as_deref()
                .unwrap_or(Path::new(".wharf/audit")),
        )
    }

    /// The policy in force for `env`: DESIGN.md's defaults with this file's overrides.
    pub fn environment_policy(&self, env: Environment) -> EnvironmentPolicy {
        let mut p = env.policy();
        if let Some(e) = self.environments.get(&env) {
            if let Some(r) = e.replicas {
                p = p.with_replicas(r);
            }
            if let Some(d) = e.debug {
                p = p.with_debug(d);
            }
            if let Some(gate) = e.fail_on.as_deref().and_then(|f| parse_fail_on(f).ok()) {
                p = p.with_scan_gate(gate);
            }
            if let Some(s) = e.require_signature {
                p = p.with_require_signature(s);
            }
        }
        p
    }

    /// The governance configuration in force in `env`: its `thresholds` are `env`'s (the
    /// base `[governance.thresholds]` with `[environments.<env>.governance]` applied), so
    /// what a caller reads is what the gate applies; evaluate runs in `env` with it.
    pub fn governance(&self, env: Environment) -> GovernanceConfig {
        let mut g = GovernanceConfig::default();
        if let Some(t) = &self.governance.thresholds {
            g.thresholds = t.apply(g.thresholds);
        }
        if let Some(deps) = &self.governance.allowed_dependencies {
            g.allowed_dependencies = deps.clone();
        }
        g.approved_data_sources = self.governance.approved_data_sources.clone();
        g.policy_dir = self
            .governance
            .policy_dir
            .as_deref()
            .map(|p| self.resolve(p));
        if let Some(o) = self.environments.get(&env).and_then(|e| e.governance) {
            g.thresholds = o.apply(g.thresholds);
            g = g.with_override(env, o);
        }
        g
    }
}

fn parse_fail_on(s: &str) -> Result<ScanGate, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(ScanGate::warn_only());
    }
    s.parse::<Severity>()
        .map(ScanGate::fail_on)
        .map_err(|e| format!("{e}, or none"))
}

/// An override value: TOML syntax when it parses (numbers, booleans, arrays), else a string.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, segments: &[String], value: toml::Value) {
    match segments {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

fn toml_error(e: &toml::de::Error, text: &str, origin: &str) -> PipelineError {
    let location = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map_or(before.len(), |i| before.len() - i - 1)
            + 1;
        (line, col)
    });
    PipelineError::Config {
        origin: origin.to_owned(),
        location,
        message: e.message().trim().replace('\n', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_keys_are_at_most_four_parts_of_plain_characters() {
        let deep = format!("WHARF__{}", vec!["G"; 3000].join("__"));
        for key in [
            deep.as_str(),
            "WHARF__A__B__C__D__E",
            "WHARF__REGISTRY__U RL",
        ] {
            let e = Config::from_toml_str(
                MINIMAL,
                "wharf.toml",
                Path::new("/p"),
                vec![(key.to_owned(), "1".to_owned())],
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("not a wharf.toml key") && e.len() < 400, "{e}");
        }
        let ok = Config::from_toml_str(
            MINIMAL,
            "wharf.toml",
            Path::new("/p"),
            vec![(
                "WHARF__ENVIRONMENTS__PROD__REPLICAS".to_owned(),
                "4".to_owned(),
            )],
        )
        .unwrap();
        assert_eq!(ok.environment_policy(Environment::Prod).replicas, 4);
    }

    const MINIMAL: &str = "[project]\nname = \"fraud\"\n\n[model]\ndir = \"models/fraud\"\n";

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<Config, PipelineError> {
        Config::from_toml_str(
            text,
            "wharf.toml",
            Path::new("/repo"),
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL, &[]).unwrap();
        assert_eq!(c.project.default_environment, Environment::Dev);
        assert_eq!(
            c.manifest_path(),
            Path::new("/repo/models/fraud/model.yaml")
        );
        assert_eq!(c.audit_dir(), Path::new("/repo/.wharf/audit"));
        assert_eq!(
            c.environment_policy(Environment::Prod),
            Environment::Prod.policy()
        );
    }

    #[test]
    fn unknown_keys_name_file_line_and_column() {
        let err = parse(&format!("{MINIMAL}\n[registry]\nurll = \"x\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("wharf.toml:8:1: unknown field `urll`"),
            "{err}"
        );
        let err = parse(&format!("{MINIMAL}\n[deploi]\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `deploi`"), "{err}");
    }

    #[test]
    fn malformed_toml_is_one_line() {
        let err = parse("[project\nname = 1", &[]).unwrap_err().to_string();
        assert!(err.starts_with("wharf.toml:1:"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn environment_sections() {
        let text = format!(
            "{MINIMAL}\n[environments.prod]\nreplicas = 5\nfail_on = \"critical\"\n[environments.prod.governance]\nmin_accuracy = 0.9\n[environments.dev]\nfail_on = \"none\"\n"
        );
        let c = parse(&text, &[]).unwrap();
        let prod = c.environment_policy(Environment::Prod);
        assert_eq!(prod.replicas, 5);
        assert!(!prod.scan_gate.blocks(Severity::High));
        assert!(prod.scan_gate.blocks(Severity::Critical));
        // governance(env) is the config in force in env: what a caller reads is what the
        // gate applies there.
        let g = c.governance(Environment::Prod);
        assert_eq!(g.thresholds.min_accuracy, 0.9);
        assert_eq!(g.thresholds_for(Environment::Prod).min_accuracy, 0.9);
        assert_eq!(c.governance(Environment::Dev).thresholds.min_accuracy, 0.85);
        assert_eq!(
            c.governance(Environment::Dev)
                .thresholds_for(Environment::Dev)
                .min_accuracy,
            0.85
        );
        let err = parse(&format!("{MINIMAL}\n[environments.staging]\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `staging`"), "{err}");
        let err = parse(
            &format!("{MINIMAL}\n[environments.prod]\nfail_on = \"severe\"\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("environments.prod.fail_on"), "{err}");
    }

    #[test]
    fn env_var_overrides() {
        let c = parse(
            MINIMAL,
            &[
                ("WHARF__REGISTRY__URL", "http://127.0.0.1:5000"),
                ("WHARF__ENVIRONMENTS__PROD__REPLICAS", "4"),
                ("WHARF__GOVERNANCE__APPROVED_DATA_SOURCES", "[\"a\", \"b\"]"),
                (
                    "WHARF_TEST_REGISTRY",
                    "ignored: single underscore is not an override",
                ),
            ],
        )
        .unwrap();
        assert_eq!(c.registry.url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.environment_policy(Environment::Prod).replicas, 4);
        assert_eq!(c.governance.approved_data_sources, ["a", "b"]);
        let err = parse(MINIMAL, &[("WHARF__REGISTRY__URLL", "x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WHARF__REGISTRY__URLL") && err.contains("unknown field `urll`"),
            "{err}"
        );
    }

    #[test]
    fn password_env_must_be_a_name_and_is_never_echoed() {
        let text = format!("{MINIMAL}\n[sign]\npassword_env = \"hunter2-canary!\"\n");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            err.contains("sign.password_env must name an environment variable"),
            "{err}"
        );
        assert!(!err.contains("hunter2-canary"), "{err}");
    }
}
