//! The governance gate: bundled and user Rego policies evaluated with regorus.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use wharf_core::policy::EvaluateOptions;
use wharf_core::{Decision, Environment, PolicyGate, Violation};

use crate::error::{located_one_line, rego_error};
use crate::{GovernanceConfig, ModelManifest, PolicyError};

/// The Rego package every governance policy lives in.
pub const PACKAGE: &str = "data.wharf.governance";

/// The policies shipped with wharf, by file name.
pub const BUNDLED: &[(&str, &str)] = &[
    ("metrics.rego", include_str!("../policies/metrics.rego")),
    ("fairness.rego", include_str!("../policies/fairness.rego")),
    ("drift.rego", include_str!("../policies/drift.rego")),
    (
        "dependencies.rego",
        include_str!("../policies/dependencies.rego"),
    ),
    (
        "operations.rego",
        include_str!("../policies/operations.rego"),
    ),
    (
        "provenance.rego",
        include_str!("../policies/provenance.rego"),
    ),
];

/// Evaluates model manifests against the bundled governance policies, plus any `.rego`
/// files from a user directory, with the configured thresholds.
///
/// Policies add objects `{rule, message, field, value, threshold}` (or plain strings) to
/// the sets `deny` (blocks) and `warn`, and their rule ids to `checked`.
///
/// ```
/// use wharf_core::Environment;
/// use wharf_policy::{GovernanceConfig, GovernanceGate, ModelManifest};
///
/// let gate = GovernanceGate::new(GovernanceConfig::default())?;
/// let manifest = ModelManifest::from_yaml_str(r#"
/// apiVersion: wharf.dev/v1
/// kind: ModelManifest
/// model: { name: fraud, version: 1.0.0 }
/// metrics: { accuracy: 0.80, f1: 0.85 }
/// "#, "model.yaml")?;
/// let decision = gate.evaluate_manifest(&manifest, Environment::Prod)?;
/// assert!(!decision.allow);
/// let v = decision.violations.iter().find(|v| v.rule == "min_accuracy").unwrap();
/// assert_eq!(v.value, 0.80);
/// assert_eq!(v.threshold, 0.85);
/// # Ok::<(), wharf_policy::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct GovernanceGate {
    engine: regorus::Engine,
    config: GovernanceConfig,
    sources: Vec<String>,
}

impl std::fmt::Debug for GovernanceGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernanceGate")
            .field("policies", &self.sources)
            .finish_non_exhaustive()
    }
}

impl GovernanceGate {
    /// A gate with the bundled policies, plus `config.policy_dir` when set.
    pub fn new(config: GovernanceConfig) -> Result<Self, PolicyError> {
        config.validate()?;
        let mut gate = Self {
            engine: regorus::Engine::new(),
            config,
            sources: Vec::new(),
        };
        for (name, text) in BUNDLED {
            gate.add_policy(&format!("<bundled>/{name}"), text)?;
        }
        if let Some(dir) = gate.config.policy_dir.clone() {
            gate = gate.with_policy_dir(&dir)?;
        }
        Ok(gate)
    }

    /// Add every `.rego` file in `dir` (not recursive, sorted by name).
    pub fn with_policy_dir(mut self, dir: &Path) -> Result<Self, PolicyError> {
        if !dir.is_dir() {
            return Err(PolicyError::PolicyDir {
                path: dir.to_owned(),
            });
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| PolicyError::Read {
                path: dir.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rego") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
                path: path.clone(),
                source,
            })?;
            self.add_policy(&path.display().to_string(), &text)?;
        }
        Ok(self)
    }

    /// Add one policy from source text; `origin` names it in errors.
    pub fn add_policy(&mut self, origin: &str, rego: &str) -> Result<(), PolicyError> {
        let package = self
            .engine
            .add_policy(origin.to_owned(), rego.to_owned())
            .map_err(|e| rego_error(origin, &e.to_string()))?;
        if package != PACKAGE {
            return Err(PolicyError::Rego {
                origin: origin.to_owned(),
                location: None,
                message: format!(
                    "declares package {}, but governance policies must be in `package wharf.governance` to be evaluated",
                    package.trim_start_matches("data.")
                ),
            });
        }
        self.sources.push(origin.to_owned());
        Ok(())
    }

    /// The policy files loaded, bundled first.
    pub fn policies(&self) -> &[String] {
        &self.sources
    }

    /// The configuration in force.
    pub fn config(&self) -> &GovernanceConfig {
        &self.config
    }

    /// Evaluate a manifest for `env`.
    pub fn evaluate_manifest(
        &self,
        manifest: &ModelManifest,
        env: Environment,
    ) -> Result<Decision, PolicyError> {
        self.evaluate_json(&manifest.to_json(), env)
    }

    fn evaluate_json(
        &self,
        manifest: &serde_json::Value,
        env: Environment,
    ) -> Result<Decision, PolicyError> {
        let eval_err = |e: &dyn std::fmt::Display| PolicyError::Eval {
            message: located_one_line(&e.to_string()),
        };
        let mut engine = self.engine.clone();
        let thresholds = self.config.thresholds_for(env);
        let data = serde_json::json!({ "wharf": { "config": {
            "thresholds": thresholds,
            "allowed_dependencies": self.config.allowed_dependencies,
            "approved_data_sources": self.config.approved_data_sources,
        }}});
        let input = serde_json::json!({ "manifest": manifest, "environment": env.as_str() });
        engine
            .add_data(regorus::Value::from_json_str(&data.to_string()).map_err(|e| eval_err(&e))?)
            .map_err(|e| eval_err(&e))?;
        engine.set_input(
            regorus::Value::from_json_str(&input.to_string()).map_err(|e| eval_err(&e))?,
        );
        // A query (not eval_rule): a set no policy contributes to is undefined, not an error.
        let mut rule = |name: &str| -> Result<serde_json::Value, PolicyError> {
            let results = engine
                .eval_query(format!("{PACKAGE}.{name}"), false)
                .map_err(|e| eval_err(&e))?;
            match results.result.first().and_then(|r| r.expressions.first()) {
                Some(expr) => serde_json::to_value(&expr.value).map_err(|e| eval_err(&e)),
                None => Ok(serde_json::Value::Null),
            }
        };
        let deny = rule("deny")?;
        let warn = rule("warn")?;
        let checked = rule("checked")?;
        let mut violations = to_violations(&deny)?;
        let mut warnings = to_violations(&warn)?;
        violations.sort_by(|a, b| (&a.rule, &a.field).cmp(&(&b.rule, &b.field)));
        warnings.sort_by(|a, b| (&a.rule, &a.field).cmp(&(&b.rule, &b.field)));
        let mut rules: Vec<String> = match checked {
            serde_json::Value::Array(items) => items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        rules.sort();
        Ok(Decision::new(violations, warnings, rules))
    }
}

/// A rule set that is undefined (no rule contributed) evaluates to regorus' `undefined`,
/// which serializes as a string or null; treat both as empty.
fn to_violations(set: &serde_json::Value) -> Result<Vec<Violation>, PolicyError> {
    let items = match set {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Null | serde_json::Value::String(_) => return Ok(Vec::new()),
        other => {
            return Err(PolicyError::Eval {
                message: format!("deny/warn must be sets, found {other}"),
            });
        }
    };
    items
        .iter()
        .map(|item| match item {
            serde_json::Value::String(s) => Ok(Violation::new("custom", s.clone())),
            serde_json::Value::Object(o) => {
                let text = |k: &str| o.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                let mut v = Violation::new(
                    text("rule").unwrap_or_else(|| "custom".into()),
                    text("message")
                        .or_else(|| text("msg"))
                        .unwrap_or_else(|| item.to_string()),
                );
                v.field = text("field");
                v.value = o.get("value").cloned().unwrap_or_default();
                v.threshold = o.get("threshold").cloned().unwrap_or_default();
                Ok(v)
            }
            other => Err(PolicyError::Eval {
                message: format!("a deny/warn entry must be a string or an object, found {other}"),
            }),
        })
        .collect()
}

#[async_trait]
impl PolicyGate for GovernanceGate {
    /// `input` is a model manifest as JSON; it is schema-checked like a YAML manifest.
    async fn evaluate(
        &self,
        input: &serde_json::Value,
        opts: &EvaluateOptions,
    ) -> wharf_core::Result<Decision> {
        let env = opts.environment.unwrap_or(Environment::Dev);
        let manifest: ModelManifest =
            serde_json::from_value(input.clone()).map_err(|e| PolicyError::Manifest {
                origin: "<input>".into(),
                location: None,
                message: e.to_string(),
            })?;
        Ok(self.evaluate_manifest(&manifest, env)?)
    }
}
