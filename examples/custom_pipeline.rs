//! A pipeline of your own, written against wharf's traits.
//!
//! It composes wharf's governance stage with two stages of its own: one that checks the
//! model card, and one that stores the model's files in any `Registry` (here the in-memory
//! one; swap in an OCI layout or ECR without touching the stage). Every run ends in an
//! audit record, whatever happens.
//!
//! Run it: `cargo run -p wharf-examples --example custom_pipeline`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use wharf_core::memory::{MemoryAuditLog, MemoryRegistry};
use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions, blob_stream_from};
use wharf_core::{
    Actor, Descriptor, Digest, Environment, Evidence, ImageManifest, Registry, RunOutcome,
    media_types,
};
use wharf_pipeline::stages::GovernanceStage;
use wharf_pipeline::{Config, Pipeline, RunContext, Stage, StageOutcome};

/// Blocks the run unless the model directory has a model card that names the version.
struct ModelCardStage {
    dir: PathBuf,
}

#[async_trait]
impl Stage for ModelCardStage {
    fn name(&self) -> &str {
        "model-card"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let path = self.dir.join("MODEL_CARD.md");
        let Ok(card) = std::fs::read_to_string(&path) else {
            return Ok(StageOutcome::blocked(format!(
                "{} is missing: write a model card",
                path.display()
            )));
        };
        let version = ctx
            .model
            .as_ref()
            .map(|m| m.version.clone())
            .unwrap_or_default();
        if !card.contains(&version) {
            return Ok(StageOutcome::blocked(format!(
                "the model card does not mention version {version}"
            )));
        }
        Ok(StageOutcome::passed("model card present and current")
            .with_evidence(Evidence::of_bytes("model-card", card.as_bytes())))
    }
}

/// Stores the weights as a blob and an artifact manifest in any registry.
struct StoreStage {
    registry: Arc<dyn Registry>,
    weights: PathBuf,
}

#[async_trait]
impl Stage for StoreStage {
    fn name(&self) -> &str {
        "store"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let repo = format!("models/{}", ctx.project);
        // Small file: read it. (wharf-registry streams multi-GB layers from disk.)
        let bytes = std::fs::read(&self.weights).map_err(|e| {
            wharf_core::Error::not_found(format!("cannot read {}: {e}", self.weights.display()))
        })?;
        let layer = Descriptor::for_bytes("application/vnd.cncf.model.weight.v1.raw", &bytes);
        self.registry
            .push_blob(
                &repo,
                &layer.digest,
                blob_stream_from(bytes),
                &PushBlobOptions::default(),
            )
            .await?;
        let config = Descriptor::for_bytes(media_types::OCI_EMPTY, b"{}");
        self.registry
            .push_blob(
                &repo,
                &config.digest,
                blob_stream_from(&b"{}"[..]),
                &PushBlobOptions::default(),
            )
            .await?;
        let mut manifest = ImageManifest::new(config, vec![layer]);
        manifest.artifact_type = Some(media_types::MODELPACK_MANIFEST.into());
        let manifest = ManifestBytes::new(media_types::OCI_MANIFEST, manifest.to_vec());
        let tag = ctx.source_commit.clone().unwrap_or_else(|| "dev".into());
        let pushed = self
            .registry
            .push_manifest(&repo, &manifest, &PushManifestOptions::tagged(tag))
            .await?;
        ctx.image_digest = Some(pushed.digest.clone());
        Ok(
            StageOutcome::passed(format!("stored {repo}@{}", pushed.digest))
                .with_evidence(Evidence::new("image-manifest", pushed.digest)),
        )
    }
}

/// Build and run the pipeline on the example project; returns the run's outcome and digest.
async fn run(
    examples: &Path,
    env: Environment,
    log: Arc<MemoryAuditLog>,
) -> anyhow::Result<(RunOutcome, Option<Digest>)> {
    let config = Config::load(&examples.join("wharf.toml"))?;
    let model_dir = config.resolve(&config.model.dir);
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new().with_immutable_tags());
    let pipeline = Pipeline::builder(config.project.name.clone(), env, Actor::local("example"))
        .stage(GovernanceStage::new(
            config.governance(env),
            config.manifest_path(),
        ))
        .stage(ModelCardStage {
            dir: model_dir.clone(),
        })
        .stage(StoreStage {
            registry,
            weights: model_dir.join("model.safetensors"),
        })
        .audit_log(log)
        .build()?;
    let report = pipeline.run().await?;
    for s in &report.record.stages {
        println!("{:<12} {:<8} {}", s.name, s.status, s.summary);
    }
    println!(
        "audit record #{} {}",
        report.receipt.sequence, report.receipt.hash
    );
    Ok((report.record.outcome, report.record.image_digest))
}

fn main() -> anyhow::Result<()> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR"));
    let log = Arc::new(MemoryAuditLog::new());
    let (outcome, _) = futures::executor::block_on(run(examples, Environment::Prod, log))?;
    println!("outcome: {outcome}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_custom_pipeline_runs_every_stage_and_records_the_digest() {
        let log = Arc::new(MemoryAuditLog::new());
        let examples = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (outcome, digest) =
            futures::executor::block_on(run(examples, Environment::Prod, log.clone())).unwrap();
        assert_eq!(outcome, RunOutcome::Passed);
        let records = log.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].event.image_digest(), digest.as_ref());
        assert!(digest.is_some());
    }
}
