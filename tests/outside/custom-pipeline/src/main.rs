//! A pipeline of one's own from the project's `wharf.toml` in three lines: the governance
//! stage with the project's thresholds, the audit log `[audit]` names, then a stage
//! written here.

use wharf_pipeline::wharf_core::{Actor, Environment, RunOutcome};
use wharf_pipeline::{Config, Pipeline, RunContext, Stage, StageOutcome, async_trait};

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
    // This check's own audit directory and checkpoint key, not the example project's.
    config.audit.dir = Some(audit.clone().into());
    config.audit.checkpoint_key = Some(format!("{audit}/checkpoint.pem"));
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
    Ok(())
}
