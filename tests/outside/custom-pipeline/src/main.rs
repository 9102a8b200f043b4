//! A pipeline of one's own: wharf's governance stage with the thresholds of the project's
//! `wharf.toml`, then a stage written here, audited to write-once files.

use std::sync::Arc;

use wharf_pipeline::stages::GovernanceStage;
use wharf_pipeline::wharf_core::{Actor, Environment, RunOutcome};
use wharf_pipeline::{
    Config, FileAuditLog, Pipeline, RunContext, Stage, StageOutcome, async_trait,
};

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
    let config = Config::load(std::path::Path::new(&config))?;
    let env = Environment::Dev;
    let pipeline = Pipeline::builder(config.project.name.clone(), env, Actor::local("outside"))
        .stage(GovernanceStage::new(
            config.governance(env),
            config.manifest_path(),
        ))
        .stage(ModelNamed)
        .audit_log(Arc::new(FileAuditLog::open(audit)?))
        .build()?;
    let report = futures::executor::block_on(pipeline.run())?;
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
