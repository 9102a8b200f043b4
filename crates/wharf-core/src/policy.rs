//! The [`PolicyGate`] contract: evaluate a document, get an explained decision.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Environment, Result};

/// One rule a document broke, explained in words and with the value seen and the limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Violation {
    /// Rule id (`min_accuracy`).
    pub rule: String,
    /// What is wrong and what to do, in words a data scientist understands.
    pub message: String,
    /// The field the rule looked at (`metrics.accuracy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The value seen.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub value: serde_json::Value,
    /// The threshold or allowed set.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub threshold: serde_json::Value,
}

impl Violation {
    /// A violation of `rule`.
    pub fn new(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            message: message.into(),
            field: None,
            value: serde_json::Value::Null,
            threshold: serde_json::Value::Null,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.rule, self.message)
    }
}

/// A gate's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decision {
    /// True when no rule is violated.
    pub allow: bool,
    /// Rules broken (block).
    pub violations: Vec<Violation>,
    /// Rules that only warn.
    pub warnings: Vec<Violation>,
    /// Every rule evaluated, by id, so a reviewer sees what was checked.
    pub rules_evaluated: Vec<String>,
}

impl Decision {
    /// A decision from violations and warnings; `allow` is true when there are no violations.
    pub fn new(
        violations: Vec<Violation>,
        warnings: Vec<Violation>,
        rules_evaluated: Vec<String>,
    ) -> Self {
        Self {
            allow: violations.is_empty(),
            violations,
            warnings,
            rules_evaluated,
        }
    }
}

/// Options for [`PolicyGate::evaluate`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EvaluateOptions {
    /// Environment whose thresholds apply.
    pub environment: Option<Environment>,
}

impl EvaluateOptions {
    /// Evaluate for `environment`.
    pub fn for_environment(environment: Environment) -> Self {
        Self {
            environment: Some(environment),
        }
    }
}

/// Evaluates a document (a model manifest, a deployment request) against policy.
#[async_trait]
pub trait PolicyGate: fmt::Debug + Send + Sync + 'static {
    /// Evaluate `input`. A policy that cannot be evaluated is an error, never an allow.
    async fn evaluate(&self, input: &serde_json::Value, opts: &EvaluateOptions)
    -> Result<Decision>;
}
