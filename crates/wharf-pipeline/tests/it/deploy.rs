//! The deploy stage on the in-memory target: in prod only the digest this run verified is
//! deployed (whoever composed the stages), and a rollout that is not healthy fails the run
//! with the plan, the health and the rollback kept in the record.

use std::sync::Arc;

use async_trait::async_trait;
use futures::executor::block_on;
use serde_json::json;
use wharf_core::memory::{MemoryAuditLog, MemoryDeployTarget};
use wharf_core::{Actor, Digest, Environment, StageStatus};
use wharf_pipeline::stages::{DeployStage, VERIFIED_OUTPUT};
use wharf_pipeline::{Pipeline, RunContext, Stage, StageOutcome};

/// Pushes an image (sets the run's digest) and, if told, says it verified `verified`.
struct Pushed {
    digest: Digest,
    verified: Option<Digest>,
}

#[async_trait]
impl Stage for Pushed {
    fn name(&self) -> &str {
        "push"
    }
    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        ctx.image_digest = Some(self.digest.clone());
        if let Some(v) = &self.verified {
            ctx.outputs.insert(
                VERIFIED_OUTPUT.into(),
                json!({"image": v.to_string(), "signatures": 1}),
            );
        }
        Ok(StageOutcome::passed("pushed"))
    }
}

fn run(
    env: Environment,
    target: &Arc<MemoryDeployTarget>,
    pushed: Pushed,
) -> wharf_pipeline::RunReport {
    let p = Pipeline::builder("fraud", env, Actor::local("u"))
        .audit_log(Arc::new(MemoryAuditLog::new()))
        .stage(pushed)
        .stage(DeployStage::new(
            target.clone(),
            "fraud",
            "registry.example/models/fraud",
        ))
        .build()
        .unwrap();
    block_on(p.run()).unwrap()
}

#[test]
fn prod_deploys_only_the_digest_this_run_verified() {
    let image = Digest::sha256_of(b"model v1");
    let other = Digest::sha256_of(b"model v0");
    let target = Arc::new(MemoryDeployTarget::new());
    for verified in [None, Some(other.clone())] {
        let report = run(
            Environment::Prod,
            &target,
            Pushed {
                digest: image.clone(),
                verified,
            },
        );
        let deploy = &report.record.stages[1];
        assert_eq!(deploy.status, StageStatus::Blocked, "{}", deploy.summary);
        assert!(
            deploy
                .summary
                .contains("no stage of this run verified its signature (prod requires one)"),
            "{}",
            deploy.summary
        );
        assert_eq!(target.current_image("fraud"), None, "nothing was applied");
    }
    let report = run(
        Environment::Prod,
        &target,
        Pushed {
            digest: image.clone(),
            verified: Some(image.clone()),
        },
    );
    let deploy = &report.record.stages[1];
    assert_eq!(deploy.status, StageStatus::Passed, "{}", deploy.summary);
    assert_eq!(deploy.details["verified"]["image"], image.to_string());
    assert_eq!(
        target.current_image("fraud"),
        Some(format!("registry.example/models/fraud@{image}"))
    );
    // Dev does not require a signature: deployed, and the record says it was not verified.
    let dev = run(
        Environment::Dev,
        &Arc::new(MemoryDeployTarget::new()),
        Pushed {
            digest: image,
            verified: None,
        },
    );
    assert_eq!(dev.record.stages[1].status, StageStatus::Passed);
    assert!(dev.record.stages[1].details["verified"].is_null());
}

#[test]
fn an_unhealthy_rollout_fails_the_run_and_records_the_rollback() {
    let target = Arc::new(MemoryDeployTarget::new());
    let (v1, v2) = (Digest::sha256_of(b"v1"), Digest::sha256_of(b"v2"));
    let first = run(
        Environment::Dev,
        &target,
        Pushed {
            digest: v1.clone(),
            verified: None,
        },
    );
    assert_eq!(first.record.stages[1].status, StageStatus::Passed);
    target.fail_health_of(&format!("registry.example/models/fraud@{v2}"));
    let report = run(
        Environment::Dev,
        &target,
        Pushed {
            digest: v2,
            verified: None,
        },
    );
    let deploy = &report.record.stages[1];
    assert_eq!(deploy.status, StageStatus::Failed, "{}", deploy.summary);
    assert!(
        deploy.summary.contains("is not healthy") && deploy.summary.contains("rolled back to 1"),
        "{}",
        deploy.summary
    );
    assert_eq!(deploy.details["health"]["state"], "unhealthy");
    assert_eq!(deploy.details["rollback"]["to"], "1");
    assert_eq!(deploy.details["rollback"]["health"]["state"], "healthy");
    assert!(!deploy.details["plan"].as_array().unwrap().is_empty());
    assert_eq!(
        target.current_image("fraud"),
        Some(format!("registry.example/models/fraud@{v1}"))
    );
    assert_ne!(report.record.outcome, wharf_core::RunOutcome::Passed);
}
