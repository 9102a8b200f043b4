//! Pipelines of one's own from the project's `wharf.toml`, each in three lines: the
//! governance stage with the project's thresholds and the audit log `[audit]` names, then a
//! stage written here; and the standard pipeline `cargo xtask pipeline` runs (package into
//! the OCI layout, sign with a key file, attest, verify) — without a Tokio runtime.

use wharf_pipeline::wharf_core::{Actor, Environment, RunOutcome};
use wharf_pipeline::{Config, Pipeline, RunContext, RunOptions, Stage, StageOutcome, async_trait};

/// Passes when the governance stage named a model.
struct ModelNamed;

#[async_trait]
impl Stage for ModelNamed {
    fn name(&self) -> &str {
        "model-named"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_pipeline::wharf_core::Result<StageOutcome> {
        Ok(match &ctx.model {
            Some(m) => StageOutcome::passed(format!("{} {}", m.name, m.version)),
            None => StageOutcome::blocked("no model was read"),
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(audit)) = (args.next(), args.next()) else {
        return Err("usage: outside-custom-pipeline WHARF_TOML AUDIT_DIR".into());
    };
    let mut config = Config::load(std::path::Path::new(&config))?;
    // This check's own audit log, checkpoint key, signing key and OCI layout, not the
    // example project's.
    config.audit.dir = Some(audit.clone().into());
    config.audit.checkpoint_key = Some(format!("{audit}/checkpoint.pem"));
    config.sign.key = Some(format!("{audit}/cosign.key"));
    config.registry.layout = Some(format!("{audit}/oci").into());
    let report = futures::executor::block_on(async {
        Pipeline::from_config(&config, Environment::Dev, Actor::local("outside"))
            .await?
            .stage(ModelNamed)
            .build()?
            .run()
            .await
    })?;
    if report.record.outcome != RunOutcome::Passed {
        return Err(format!("the run ended {}", report.record.outcome).into());
    }
    println!(
        "custom-pipeline: {} stages passed, audit record #{}",
        report.record.stages.len(),
        report.receipt.sequence
    );

    let standard = futures::executor::block_on(async {
        let standard =
            Pipeline::standard(&config, Environment::Dev, Actor::local("outside"), RunOptions::new())
                .await?;
        standard.builder.build()?.run().await
    })?;
    if standard.record.outcome != RunOutcome::Passed {
        return Err(format!("the standard run ended {}", standard.record.outcome).into());
    }
    let names: Vec<&str> = standard.record.stages.iter().map(|s| s.name.as_str()).collect();
    println!(
        "standard: {} passed, image {}, audit record #{}",
        names.join(", "),
        standard.record.image_digest.as_ref().map_or("none".into(), |d| d.to_string()),
        standard.receipt.sequence
    );
    Ok(())
}
