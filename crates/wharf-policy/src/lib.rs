//! wharf-policy: the governance gate for ML models, in Rego.
//!
//! A model manifest (`model.yaml`) is schema-checked, then evaluated with
//! [regorus](https://crates.io/crates/regorus) against bundled policies — accuracy, F1,
//! fairness, drift, dependency allow-list, monitoring, explainability, semantic version,
//! approved data sources — with thresholds per environment, plus any `.rego` files the user
//! adds. Every violation carries the rule, the field, the value seen and the threshold, in
//! words a data scientist can act on.
//!
//! ```
//! use wharf_core::Environment;
//! use wharf_policy::{GovernanceConfig, GovernanceGate, ModelManifest};
//!
//! let manifest = ModelManifest::from_yaml_str(r#"
//! apiVersion: wharf.dev/v1
//! kind: ModelManifest
//! model: { name: churn, version: 2.1.0 }
//! metrics: { accuracy: 0.93, f1: 0.88 }
//! fairness: { demographic_parity: 0.04, protected_attributes: [age] }
//! drift: { score: 0.1 }
//! dependencies: [{ name: scikit-learn, version: 1.5.2 }]
//! monitoring: { enabled: true }
//! explainability: { method: shap }
//! data_sources: [{ name: crm-2025 }]
//! "#, "model.yaml")?;
//!
//! let mut config = GovernanceConfig::default();
//! config.approved_data_sources.push("crm-2025".into());
//! let decision = GovernanceGate::new(config)?.evaluate_manifest(&manifest, Environment::Prod)?;
//! assert!(decision.allow, "{:?}", decision.violations);
//! assert_eq!(decision.rules_evaluated.len(), 10);
//! # Ok::<(), wharf_policy::PolicyError>(())
//! ```

mod bounds;
mod config;
mod error;
mod gate;
mod manifest;

// What call sites need from wharf-core, so depending on this crate alone is enough.
pub use config::{DEFAULT_ALLOWED_DEPENDENCIES, GovernanceConfig, ThresholdOverrides, Thresholds};
pub use error::PolicyError;
pub use gate::{BUNDLED, GovernanceGate, PACKAGE};
pub use manifest::{
    API_VERSION, Artifact, ArtifactRole, DataSource, Dependency, Drift, Explainability, Fairness,
    KIND, MAX_FLOW_DEPTH, MAX_MANIFEST_BYTES, Metrics, ModelInfo, ModelManifest, Monitoring,
};
pub use wharf_core;
pub use wharf_core::{Decision, Environment, PolicyGate, Violation};

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
