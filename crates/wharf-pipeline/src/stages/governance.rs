//! The governance gate stage: the model manifest against Rego policy.

use std::path::PathBuf;

use async_trait::async_trait;
use wharf_core::record::ModelId;
use wharf_core::{Evidence, Violation};
use wharf_policy::{GovernanceConfig, GovernanceGate, ModelManifest};

use crate::{RunContext, Stage, StageOutcome};

/// Reads the model manifest, evaluates it with the governance policies for the run's
/// environment, and blocks the run when a rule is violated.
#[derive(Debug, Clone)]
pub struct GovernanceStage {
    config: GovernanceConfig,
    manifest: PathBuf,
}

impl GovernanceStage {
    /// A stage checking `manifest` with `config` (policies load when the stage runs, so a
    /// broken policy is recorded in the run like any other failure).
    pub fn new(config: GovernanceConfig, manifest: impl Into<PathBuf>) -> Self {
        Self {
            config,
            manifest: manifest.into(),
        }
    }
}

/// `[rule] field = value (threshold T): message`
fn describe(v: &Violation) -> String {
    let mut s = format!("[{}]", v.rule);
    if let Some(f) = &v.field {
        s.push(' ');
        s.push_str(f);
        if !v.value.is_null() {
            s.push_str(&format!(" = {}", v.value));
        }
    }
    if !v.threshold.is_null() {
        let t = match &v.threshold {
            serde_json::Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        s.push_str(&format!(" (threshold: {t})"));
    }
    s.push_str(": ");
    s.push_str(&v.message);
    s
}

#[async_trait]
impl Stage for GovernanceStage {
    fn name(&self) -> &str {
        "governance"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let manifest = ModelManifest::from_path(&self.manifest)?;
        ctx.model = Some(ModelId::new(
            manifest.model.name.clone(),
            manifest.model.version.clone(),
        ));
        let gate = GovernanceGate::new(self.config.clone())?;
        let decision = gate.evaluate_manifest(&manifest, ctx.environment)?;
        let decision_json = serde_json::to_vec(&decision).map_err(|e| {
            wharf_core::Error::internal(format!("decision cannot be serialized: {e}"))
        })?;
        let manifest_bytes = std::fs::read(&self.manifest).map_err(|e| {
            wharf_core::Error::internal(format!("cannot re-read {}: {e}", self.manifest.display()))
        })?;
        let total = decision.rules_evaluated.len();
        let who = format!("{} {}", manifest.model.name, manifest.model.version);
        let mut details: Vec<String> = decision.violations.iter().map(describe).collect();
        details.extend(
            decision
                .warnings
                .iter()
                .map(|w| format!("warning {}", describe(w))),
        );
        let outcome = if !decision.allow {
            StageOutcome::blocked(format!(
                "{} of {total} rules violated for {who} in {}",
                decision.violations.len(),
                ctx.environment
            ))
        } else if !decision.warnings.is_empty() {
            let n = decision.warnings.len();
            StageOutcome::warned(format!(
                "{total} rules passed for {who}, {n} warning{}",
                if n == 1 { "" } else { "s" }
            ))
        } else {
            StageOutcome::passed(format!(
                "{total} rules passed for {who} in {}",
                ctx.environment
            ))
        };
        Ok(outcome
            .with_details(details)
            .with_evidence(
                Evidence::of_bytes("model-manifest", &manifest_bytes)
                    .with_location(self.manifest.display().to_string()),
            )
            .with_evidence(Evidence::of_bytes("policy-decision", &decision_json))
            .with_data(serde_json::to_value(&decision).unwrap_or_default()))
    }
}
