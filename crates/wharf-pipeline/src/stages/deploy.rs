//! The deploy stage: the verified image, by digest, to a [`DeployTarget`] — plan, apply,
//! check health, and roll back when it is not healthy. It runs after `verify-signature`, so
//! in prod nothing unverified reaches it; the run record carries the plan, the revision and
//! any rollback.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use wharf_core::deploy::{DeployRequest, HealthState};
use wharf_core::{DeployTarget, Error, Reference};
use wharf_kube::render::{SETTING_MODEL, SETTING_MODEL_VERSION, SETTING_RUN_ID};

use crate::stages::VERIFIED_OUTPUT;
use crate::{RunContext, Stage, StageOutcome};

/// Deploy the run's image to `target` as application `app`.
#[derive(Debug, Clone)]
pub struct DeployStage {
    target: Arc<dyn DeployTarget>,
    app: String,
    repository: String,
    timeout: Duration,
}

/// How long the stage waits for a rollout (and for a rollback's) when not configured.
pub const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(600);

impl DeployStage {
    /// Deploy `repository@<the run's digest>` (the name the image is pulled by) as `app`.
    pub fn new(
        target: Arc<dyn DeployTarget>,
        app: impl Into<String>,
        repository: impl Into<String>,
    ) -> Self {
        Self {
            target,
            app: app.into(),
            repository: repository.into(),
            timeout: DEFAULT_ROLLOUT_TIMEOUT,
        }
    }

    /// Wait at most `timeout` for the rollout; one still progressing then is rolled back.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Stage for DeployStage {
    fn name(&self) -> &str {
        "deploy"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let digest = ctx
            .image_digest
            .clone()
            .ok_or_else(|| Error::invalid("nothing to deploy: no earlier stage pushed an image"))?;
        let image: Reference = format!("{}@{digest}", self.repository)
            .parse()
            .map_err(|e| Error::invalid(format!("{}@{digest}: {e}", self.repository)))?;
        // Only what this run verified reaches an environment that requires a signature —
        // whoever composed the stages (a pipeline without VerifySignatureStage is refused).
        let verified = ctx
            .outputs
            .get(VERIFIED_OUTPUT)
            .filter(|v| v["image"] == digest.to_string())
            .cloned();
        if verified.is_none() && ctx.policy.require_signature {
            return Ok(StageOutcome::blocked(format!(
                "refusing to deploy {digest} to {}: no stage of this run verified its signature ({} requires one); run verify-signature before deploy",
                ctx.environment, ctx.environment
            )));
        }
        let mut request = DeployRequest::new(&self.app, image, ctx.environment)?;
        request.replicas = ctx.policy.replicas;
        request
            .settings
            .insert(SETTING_RUN_ID.into(), ctx.run_id.clone());
        if let Some(model) = &ctx.model {
            request
                .settings
                .insert(SETTING_MODEL.into(), model.name.clone());
            request
                .settings
                .insert(SETTING_MODEL_VERSION.into(), model.version.clone());
        }
        let target = self.target.name().to_owned();
        let plan = self.target.plan(&request).await?;
        let changes: Vec<String> = plan.to_string().lines().map(str::to_owned).collect();
        let deployed = self.target.apply(&plan).await?;
        let health = self.target.wait(&deployed, self.timeout).await?;
        let mut data = json!({
            "target": target,
            "image": request.image.to_string(),
            "plan": plan.changes,
            "revision": deployed.revision,
            "previous_revision": deployed.previous_revision,
            "health": {"state": health.state, "message": health.message},
            "verified": verified,
        });
        if health.state != HealthState::Healthy {
            let to = deployed
                .previous_revision
                .clone()
                .unwrap_or_else(|| "the previous revision".into());
            let (rollback, record) = match self.target.rollback(&deployed).await {
                Ok(back) => {
                    let after = self.target.wait(&back, self.timeout).await;
                    let text = match &after {
                        Ok(h) if h.state == HealthState::Healthy => {
                            format!("rolled back to {to} ({})", h.message)
                        }
                        Ok(h) => format!(
                            "rolled back to {to}, which is not healthy either: {}",
                            h.message
                        ),
                        Err(e) => format!("rolled back to {to}, then: {e}"),
                    };
                    let record = json!({
                        "to": to,
                        "revision": back.revision,
                        "health": after.as_ref().map(|h| json!({"state": h.state, "message": h.message})).unwrap_or_else(|e| json!({"error": e.to_string()})),
                    });
                    (text, record)
                }
                Err(e) => {
                    let text = format!("and the rollback failed: {e}");
                    (text.clone(), json!({"to": to, "error": text}))
                }
            };
            data["rollback"] = record;
            ctx.outputs.insert("deploy".into(), data.clone());
            return Ok(StageOutcome::failed(format!(
                "{} on {target} is not healthy ({}); {rollback}",
                self.app, health.message
            ))
            .with_details(changes)
            .with_data(data));
        }
        let summary = if plan.is_noop() {
            format!(
                "{} already at {digest} on {target} ({})",
                self.app, health.message
            )
        } else {
            format!(
                "{} → {digest} on {target}: {} change(s), {}",
                self.app,
                plan.changes.len(),
                health.message
            )
        };
        ctx.outputs.insert("deploy".into(), data.clone());
        Ok(StageOutcome::passed(summary)
            .with_details(changes)
            .with_data(data))
    }
}
