//! A project's `wharf.toml` turned into the parts every pipeline of that project shares:
//! the audit log `[audit]` names and a pipeline builder with the project's environment
//! policy, governance thresholds and audit log — so a pipeline of one's own runs on the
//! same settings as `cargo xtask pipeline`, never on defaults by accident.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_audit::{FileStore, WormLog, WormStore};
use wharf_core::{Actor, Environment, Error};
use wharf_sign::EcdsaP256Key;

use crate::stages::GovernanceStage;
use crate::{Config, PipelineBuilder, PipelineError};

/// The audit log of a project, over whichever store `[audit]` names.
pub type ProjectAuditLog = WormLog<Box<dyn WormStore>>;

/// The checkpoint key's default path, relative to the config.
const DEFAULT_CHECKPOINT_KEY: &str = ".wharf/keys/audit-checkpoint.pem";

fn audit_error(what: impl std::fmt::Display, e: impl Into<Error>) -> PipelineError {
    let e: Error = e.into();
    PipelineError::Setup {
        what: what.to_string(),
        source: e,
    }
}

impl Config {
    /// The checkpoint key file `[audit] checkpoint_key` names (default
    /// `.wharf/keys/audit-checkpoint.pem` beside the config); `None` when it is `"none"`.
    pub fn checkpoint_key_path(&self) -> Option<PathBuf> {
        match self.audit.checkpoint_key.as_deref() {
            Some("none") => None,
            Some(p) => Some(self.resolve(Path::new(p))),
            None => Some(self.resolve(Path::new(DEFAULT_CHECKPOINT_KEY))),
        }
    }

    /// Open the audit log `[audit]` names: the write-once directory, or `url` —
    /// `s3://bucket/prefix` (feature `s3`: the bucket is checked for Object Lock and
    /// retention first; credentials and region from the AWS environment), `az://…`,
    /// `gs://…`, `file://…` (features `azure`, `gcp`, `object-store`). With a checkpoint key
    /// (generated on first use) a signed checkpoint follows every `checkpoint_every`
    /// records (default: every record). A URL whose feature the build lacks is an error
    /// naming the feature.
    pub async fn open_audit_log(&self) -> Result<ProjectAuditLog, PipelineError> {
        let store: Box<dyn WormStore> =
            match self.audit.url.as_deref() {
                // The store's error names the directory.
                None => Box::new(FileStore::open(self.audit_dir()).map_err(|e| {
                    PipelineError::Setup {
                        what: "[audit] dir".into(),
                        source: e,
                    }
                })?),
                Some(url) => self.open_audit_url(url).await?,
            };
        // Runs are few and each matters: by default every record gets a signed checkpoint.
        let mut log =
            WormLog::new(store).checkpoint_every(self.audit.checkpoint_every.unwrap_or(1));
        if let Some(path) = self.checkpoint_key_path() {
            let key = EcdsaP256Key::load_or_generate(&path).map_err(|e| {
                audit_error(format!("[audit] checkpoint_key {}", path.display()), e)
            })?;
            log = log
                .with_verifier(Arc::new(key.public_key().clone()))
                .with_signer(Arc::new(key));
        }
        Ok(log)
    }

    async fn open_audit_url(&self, url: &str) -> Result<Box<dyn WormStore>, PipelineError> {
        let what = format!("[audit] url {url:?}");
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(audit_error(
                    what,
                    Error::invalid("no bucket name: write s3://bucket/prefix"),
                ));
            }
            return self
                .open_s3(bucket, prefix)
                .await
                .map_err(|e| audit_error(what, e));
        }
        #[cfg(feature = "object-store")]
        {
            let store = wharf_audit::ObjectStoreStore::from_url(url, std::env::vars())
                .map_err(|e| audit_error(what, e))?;
            Ok(Box::new(store))
        }
        #[cfg(not(feature = "object-store"))]
        Err(audit_error(
            what,
            Error::invalid(
                "object-store audit logs (az://, gs://, file://) need wharf-pipeline's `azure`, `gcp` or `object-store` feature",
            ),
        ))
    }

    #[cfg(feature = "s3")]
    async fn open_s3(&self, bucket: &str, prefix: &str) -> wharf_core::Result<Box<dyn WormStore>> {
        use crate::config::LockModeConfig;
        let sdk = self
            .aws_sdk_config(None)
            .await
            .map_err(|e| Error::new(e.kind(), wharf_core::display_chain(&e)))?;
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(self.audit.force_path_style)
            .build();
        let mut policy = wharf_audit::s3::RetentionPolicy::compliance_days(
            self.audit.retention_days.unwrap_or(7 * 365 + 2),
        );
        if self.audit.lock_mode == Some(LockModeConfig::Governance) {
            policy = policy.governance();
        }
        if self.audit.legal_hold {
            policy = policy.with_legal_hold();
        }
        let store = wharf_audit::S3Store::connect(
            aws_sdk_s3::Client::from_conf(s3),
            bucket,
            prefix,
            policy,
        )
        .await?;
        Ok(Box::new(store))
    }

    #[cfg(not(feature = "s3"))]
    async fn open_s3(
        &self,
        _bucket: &str,
        _prefix: &str,
    ) -> wharf_core::Result<Box<dyn WormStore>> {
        Err(Error::invalid(
            "S3 audit logs need wharf-pipeline's `s3` feature",
        ))
    }
}

impl crate::Pipeline {
    /// A pipeline of `config`'s project in `env`, as `cargo xtask pipeline` starts one: the
    /// environment's policy from `[environments]`, the governance stage with the project's
    /// thresholds on its manifest, and the audit log `[audit]` names. Add stages of your
    /// own, then `build()`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use wharf_pipeline::{Config, Pipeline, wharf_core::{Actor, Environment}};
    ///
    /// let config = Config::load(std::path::Path::new("wharf.toml"))?;
    /// let report = Pipeline::from_config(&config, Environment::Prod, Actor::local("ci"))
    ///     .await?
    ///     .build()?
    ///     .run()
    ///     .await?;
    /// println!("{}", report.record.outcome);
    /// # Ok(()) }
    /// ```
    pub async fn from_config(
        config: &Config,
        env: Environment,
        actor: Actor,
    ) -> Result<PipelineBuilder, PipelineError> {
        let audit = Arc::new(config.open_audit_log().await?);
        Ok(
            project_builder(config, env, actor, audit).stage(GovernanceStage::new(
                config.governance(env),
                config.manifest_path(),
            )),
        )
    }
}

/// A pipeline of `config`'s project in `env`: its environment policy and `audit` log.
pub(crate) fn project_builder(
    config: &Config,
    env: Environment,
    actor: Actor,
    audit: Arc<ProjectAuditLog>,
) -> PipelineBuilder {
    crate::Pipeline::builder(config.project.name.clone(), env, actor)
        .environment_policy(config.environment_policy(env))
        .audit_log(audit)
}
