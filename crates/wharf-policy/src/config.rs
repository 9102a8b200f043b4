//! Governance configuration: thresholds (overridable per environment) and allow-lists.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use wharf_core::Environment;

use crate::PolicyError;

/// Numeric limits the bundled policies check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Thresholds {
    /// Minimum accuracy (default 0.85).
    pub min_accuracy: f64,
    /// Minimum F1 (default 0.80).
    pub min_f1: f64,
    /// Demographic parity difference must be below this (default 0.10).
    pub max_demographic_parity: f64,
    /// Drift score must be below this (default 0.30).
    pub max_drift: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_accuracy: 0.85,
            min_f1: 0.80,
            max_demographic_parity: 0.10,
            max_drift: 0.30,
        }
    }
}

/// Per-environment overrides of [`Thresholds`]; unset fields keep the base value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ThresholdOverrides {
    /// Override of [`Thresholds::min_accuracy`].
    pub min_accuracy: Option<f64>,
    /// Override of [`Thresholds::min_f1`].
    pub min_f1: Option<f64>,
    /// Override of [`Thresholds::max_demographic_parity`].
    pub max_demographic_parity: Option<f64>,
    /// Override of [`Thresholds::max_drift`].
    pub max_drift: Option<f64>,
}

impl ThresholdOverrides {
    /// Apply to `base`.
    pub fn apply(&self, base: Thresholds) -> Thresholds {
        Thresholds {
            min_accuracy: self.min_accuracy.unwrap_or(base.min_accuracy),
            min_f1: self.min_f1.unwrap_or(base.min_f1),
            max_demographic_parity: self
                .max_demographic_parity
                .unwrap_or(base.max_demographic_parity),
            max_drift: self.max_drift.unwrap_or(base.max_drift),
        }
    }
}

/// Dependencies approved by default: the common scientific-Python and serving stack.
pub const DEFAULT_ALLOWED_DEPENDENCIES: &[&str] = &[
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "joblib",
    "xgboost",
    "lightgbm",
    "catboost",
    "torch",
    "torchvision",
    "tensorflow",
    "keras",
    "onnx",
    "onnxruntime",
    "transformers",
    "tokenizers",
    "safetensors",
    "sentencepiece",
    "fastapi",
    "uvicorn",
    "pydantic",
    "starlette",
    "shap",
    "mlflow",
    "prometheus-client",
];

/// The `[governance]` section of `wharf.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct GovernanceConfig {
    /// Base thresholds for every environment.
    pub thresholds: Thresholds,
    /// Per-environment overrides (`[environments.prod.governance]` in `wharf.toml`).
    pub overrides: BTreeMap<Environment, ThresholdOverrides>,
    /// Approved runtime dependencies (case-insensitive package names).
    pub allowed_dependencies: Vec<String>,
    /// Approved training data sources, by name.
    pub approved_data_sources: Vec<String>,
    /// A directory of extra `.rego` files in `package wharf.governance`.
    pub policy_dir: Option<PathBuf>,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            overrides: BTreeMap::new(),
            allowed_dependencies: DEFAULT_ALLOWED_DEPENDENCIES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            approved_data_sources: Vec::new(),
            policy_dir: None,
        }
    }
}

impl GovernanceConfig {
    /// The thresholds in force for `env`.
    pub fn thresholds_for(&self, env: Environment) -> Thresholds {
        self.overrides
            .get(&env)
            .map_or(self.thresholds, |o| o.apply(self.thresholds))
    }

    /// Override thresholds for one environment.
    pub fn with_override(mut self, env: Environment, overrides: ThresholdOverrides) -> Self {
        self.overrides.insert(env, overrides);
        self
    }

    /// Check every threshold is a fraction in 0..1 (drift: >= 0), naming the key that is not.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let check = |name: String, v: f64, max: f64| {
            if v.is_finite() && v >= 0.0 && v <= max {
                Ok(())
            } else {
                Err(PolicyError::Config {
                    message: format!("{name} = {v} is out of range 0..{max}"),
                })
            }
        };
        let mut all = vec![("thresholds".to_owned(), self.thresholds)];
        for (env, o) in &self.overrides {
            all.push((
                format!("environments.{env}.governance"),
                o.apply(self.thresholds),
            ));
        }
        for (scope, t) in all {
            check(format!("{scope}.min_accuracy"), t.min_accuracy, 1.0)?;
            check(format!("{scope}.min_f1"), t.min_f1, 1.0)?;
            check(
                format!("{scope}.max_demographic_parity"),
                t.max_demographic_parity,
                1.0,
            )?;
            check(format!("{scope}.max_drift"), t.max_drift, f64::MAX)?;
        }
        Ok(())
    }
}
