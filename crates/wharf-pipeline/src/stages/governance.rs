//! The governance gate stage: the model manifest against Rego policy.

use std::collections::BTreeSet;
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
    /// How many violations, and how many warnings, the run record and the detail lines list
    /// one by one; the rest are counted, and the whole decision is pinned by digest as
    /// `policy-decision` evidence (and reproducible from the manifest, pinned the same way).
    pub const MAX_LISTED_VIOLATIONS: usize = 20;

    /// A stage checking `manifest` with `config` (policies load when the stage runs, so a
    /// broken policy is recorded in the run like any other failure).
    pub fn new(config: GovernanceConfig, manifest: impl Into<PathBuf>) -> Self {
        Self {
            config,
            manifest: manifest.into(),
        }
    }
}

/// The longest value shown in a detail line, in characters.
const MAX_VALUE_CHARS: usize = 200;

/// `[rule] field = value (threshold T): message`
fn describe(v: &Violation) -> String {
    let mut s = format!("[{}]", v.rule);
    if let Some(f) = &v.field {
        s.push(' ');
        s.push_str(f);
        if !v.value.is_null() {
            let mut value = v.value.to_string();
            if let Some((at, _)) = value.char_indices().nth(MAX_VALUE_CHARS) {
                value.truncate(at);
                value.push('…');
            }
            s.push_str(&format!(" = {value}"));
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
        // One read: what is parsed is exactly what the evidence pins.
        let manifest_bytes = ModelManifest::read_file(&self.manifest)?;
        let manifest =
            ModelManifest::from_yaml_bytes(&manifest_bytes, &self.manifest.display().to_string())?;
        ctx.model = Some(ModelId::new(
            manifest.model.name.clone(),
            manifest.model.version.clone(),
        ));
        let gate = GovernanceGate::new(self.config.clone())?;
        let decision = gate.evaluate_manifest(&manifest, ctx.environment)?;
        let decision_json = serde_json::to_vec(&decision).map_err(|e| {
            wharf_core::Error::internal(format!("decision cannot be serialized: {e}"))
        })?;
        let decision_evidence = Evidence::of_bytes("policy-decision", &decision_json);
        let total = decision.rules_evaluated.len();
        let who = format!("{} {}", manifest.model.name, manifest.model.version);
        let violated: BTreeSet<&str> = decision
            .violations
            .iter()
            .map(|v| v.rule.as_str())
            .collect();
        let (n_violations, n_warnings) = (decision.violations.len(), decision.warnings.len());
        let more = |n: usize, what: &str| {
            format!(
                "… and {} more {what} (all {n} in the policy-decision evidence, {})",
                n - Self::MAX_LISTED_VIOLATIONS,
                decision_evidence.digest
            )
        };
        let mut details: Vec<String> = decision
            .violations
            .iter()
            .take(Self::MAX_LISTED_VIOLATIONS)
            .map(describe)
            .collect();
        if n_violations > Self::MAX_LISTED_VIOLATIONS {
            details.push(more(n_violations, "violations"));
        }
        details.extend(
            decision
                .warnings
                .iter()
                .take(Self::MAX_LISTED_VIOLATIONS)
                .map(|w| format!("warning {}", describe(w))),
        );
        if n_warnings > Self::MAX_LISTED_VIOLATIONS {
            details.push(more(n_warnings, "warnings"));
        }
        let outcome = if !decision.allow {
            let count = if n_violations == violated.len() {
                String::new()
            } else {
                format!(" ({n_violations} violations)")
            };
            StageOutcome::blocked(format!(
                "{} of {total} rules violated{count} for {who} in {}",
                violated.len(),
                ctx.environment
            ))
        } else if n_warnings > 0 {
            StageOutcome::warned(format!(
                "{total} rules passed for {who}, {n_warnings} warning{}",
                if n_warnings == 1 { "" } else { "s" }
            ))
        } else {
            StageOutcome::passed(format!(
                "{total} rules passed for {who} in {}",
                ctx.environment
            ))
        };
        // The record lists the first violations and warnings and counts them all.
        let data = serde_json::json!({
            "allow": decision.allow,
            "violation_count": n_violations,
            "violations": &decision.violations[..n_violations.min(Self::MAX_LISTED_VIOLATIONS)],
            "rules_violated": violated,
            "warning_count": n_warnings,
            "warnings": &decision.warnings[..n_warnings.min(Self::MAX_LISTED_VIOLATIONS)],
            "rules_evaluated": decision.rules_evaluated,
        });
        Ok(outcome
            .with_details(details)
            .with_evidence(
                Evidence::of_bytes("model-manifest", &manifest_bytes)
                    .with_location(self.manifest.display().to_string()),
            )
            .with_evidence(decision_evidence)
            .with_data(data))
    }
}
