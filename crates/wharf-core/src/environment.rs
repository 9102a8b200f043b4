//! Deployment environments and what each one demands (the dev/test/prod table).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Finding, ScanReport, Severity};

/// A deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Development: scan findings warn, one replica, debug on.
    Dev,
    /// Test: scan findings warn, two replicas.
    Test,
    /// Production: HIGH and CRITICAL findings fail the run, three replicas, signature required.
    Prod,
}

impl Environment {
    /// All environments, in promotion order.
    pub const ALL: [Environment; 3] = [Environment::Dev, Environment::Test, Environment::Prod];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Test => "test",
            Environment::Prod => "prod",
        }
    }

    /// The default policy for this environment (DESIGN.md's table).
    pub fn policy(self) -> EnvironmentPolicy {
        match self {
            Environment::Dev => EnvironmentPolicy {
                scan_gate: ScanGate::warn_only(),
                replicas: 1,
                debug: true,
                require_signature: false,
            },
            Environment::Test => EnvironmentPolicy {
                scan_gate: ScanGate::warn_only(),
                replicas: 2,
                debug: false,
                require_signature: false,
            },
            Environment::Prod => EnvironmentPolicy {
                scan_gate: ScanGate::fail_on(Severity::High),
                replicas: 3,
                debug: false,
                require_signature: true,
            },
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dev" | "development" => Ok(Environment::Dev),
            "test" | "testing" => Ok(Environment::Test),
            "prod" | "production" => Ok(Environment::Prod),
            other => Err(crate::Error::invalid(format!(
                "unknown environment {other:?}: use dev, test or prod"
            ))),
        }
    }
}

/// What an environment demands of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EnvironmentPolicy {
    /// How scan findings are treated.
    pub scan_gate: ScanGate,
    /// Replicas to deploy.
    pub replicas: u32,
    /// Whether the model server runs with debug on.
    pub debug: bool,
    /// Whether promotion needs a verified signature.
    pub require_signature: bool,
}

impl EnvironmentPolicy {
    /// Replace the scan gate.
    pub fn with_scan_gate(mut self, gate: ScanGate) -> Self {
        self.scan_gate = gate;
        self
    }
    /// Replace the replica count.
    pub fn with_replicas(mut self, replicas: u32) -> Self {
        self.replicas = replicas;
        self
    }
    /// Replace the debug flag.
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }
    /// Replace the signature requirement.
    pub fn with_require_signature(mut self, require: bool) -> Self {
        self.require_signature = require;
        self
    }
}

/// The per-environment scan gate: warn only, or fail on findings at or above a severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScanGate {
    /// Findings at or above this effective severity fail the run; `None` means warn only.
    pub fail_on: Option<Severity>,
}

impl ScanGate {
    /// Report findings as warnings; never fail.
    pub fn warn_only() -> Self {
        Self { fail_on: None }
    }

    /// Fail on findings whose effective severity is `threshold` or worse.
    pub fn fail_on(threshold: Severity) -> Self {
        Self {
            fail_on: Some(threshold),
        }
    }

    /// Whether a finding of `severity` blocks.
    pub fn blocks(&self, severity: Severity) -> bool {
        self.fail_on.is_some_and(|t| severity >= t)
    }

    /// Split a report's findings into those that block and those that only warn.
    pub fn evaluate<'a>(&self, report: &'a ScanReport) -> GateResult<'a> {
        let (blocking, warnings) = report
            .findings
            .iter()
            .partition(|f| self.blocks(f.effective_severity()));
        GateResult { blocking, warnings }
    }
}

/// The findings a [`ScanGate`] blocked on and those it only warned about.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GateResult<'a> {
    /// Findings that fail the run.
    pub blocking: Vec<&'a Finding>,
    /// Findings reported but allowed.
    pub warnings: Vec<&'a Finding>,
}

impl GateResult<'_> {
    /// True when nothing blocks.
    pub fn passed(&self) -> bool {
        self.blocking.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ScanReport {
        ScanReport::new(
            "t",
            vec![
                Finding::new("CVE-A", "p", "1", Severity::Medium),
                Finding::new("CVE-B", "p", "1", Severity::High),
                Finding::new("CVE-C", "p", "1", Severity::Unknown).with_cvss(7.0),
                Finding::new("CVE-D", "p", "1", Severity::Critical),
            ],
        )
    }

    #[test]
    fn the_design_table() {
        let dev = Environment::Dev.policy();
        let test = Environment::Test.policy();
        let prod = Environment::Prod.policy();
        assert_eq!((dev.replicas, dev.debug), (1, true));
        assert_eq!((test.replicas, test.debug), (2, false));
        assert_eq!((prod.replicas, prod.debug), (3, false));
        assert!(prod.require_signature && !dev.require_signature);
        let r = report();
        assert!(dev.scan_gate.evaluate(&r).passed());
        assert_eq!(dev.scan_gate.evaluate(&r).warnings.len(), 4);
        assert!(test.scan_gate.evaluate(&r).passed());
        let p = prod.scan_gate.evaluate(&r);
        assert!(!p.passed());
        let ids: Vec<_> = p.blocking.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            ["CVE-B", "CVE-C", "CVE-D"],
            "HIGH, CVSS>=7 and CRITICAL block in prod"
        );
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn names() {
        assert_eq!(
            "Production".parse::<Environment>().unwrap(),
            Environment::Prod
        );
        let e = "staging".parse::<Environment>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown environment \"staging\": use dev, test or prod"
        );
    }
}
