//! Normalized vulnerability findings and scan reports, whatever scanner produced them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Digest;

/// Severity of a finding, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// The scanner did not say.
    Unknown,
    /// Negligible (Grype) / none.
    Negligible,
    /// Low (CVSS 0.1–3.9).
    Low,
    /// Medium (CVSS 4.0–6.9).
    Medium,
    /// High (CVSS 7.0–8.9).
    High,
    /// Critical (CVSS 9.0–10.0).
    Critical,
}

impl Severity {
    /// All severities, least severe first.
    pub const ALL: [Severity; 6] = [
        Severity::Unknown,
        Severity::Negligible,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The CVSS v3 qualitative rating of a base score; `None` for scores outside 0–10.
    pub fn from_cvss(score: f64) -> Option<Severity> {
        match score {
            s if !(0.0..=10.0).contains(&s) => None,
            s if s >= 9.0 => Some(Severity::Critical),
            s if s >= 7.0 => Some(Severity::High),
            s if s >= 4.0 => Some(Severity::Medium),
            s if s > 0.0 => Some(Severity::Low),
            _ => Some(Severity::Negligible),
        }
    }

    /// Upper-case name as scanners print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "UNKNOWN",
            Severity::Negligible => "NEGLIGIBLE",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = crate::Error;
    /// Case-insensitive; accepts `none`/`info` as negligible and `moderate` as medium.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "unknown" => Severity::Unknown,
            "negligible" | "none" | "info" | "informational" => Severity::Negligible,
            "low" => Severity::Low,
            "medium" | "moderate" => Severity::Medium,
            "high" | "important" => Severity::High,
            "critical" => Severity::Critical,
            other => {
                return Err(crate::Error::invalid(format!(
                    "unknown severity {other:?}: use one of unknown, negligible, low, medium, high, critical"
                )));
            }
        })
    }
}

/// One vulnerability in one package, normalized across Trivy, Grype, ECR and OSV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finding {
    /// Advisory id (`CVE-2024-3094`, `GHSA-…`, `PYSEC-…`).
    pub id: String,
    /// Affected package name.
    pub package: String,
    /// Installed version.
    pub installed_version: String,
    /// First fixed version, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    /// Severity as the source rated it.
    pub severity: Severity,
    /// CVSS base score, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    /// One-line title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Where it was found (a file or layer path, an OS package db).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Other ids of the same advisory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl Finding {
    /// A finding with the required fields.
    pub fn new(
        id: impl Into<String>,
        package: impl Into<String>,
        installed_version: impl Into<String>,
        severity: Severity,
    ) -> Self {
        Self {
            id: id.into(),
            package: package.into(),
            installed_version: installed_version.into(),
            fixed_version: None,
            severity,
            cvss_score: None,
            title: None,
            target: None,
            aliases: Vec::new(),
        }
    }

    /// Set the CVSS score.
    pub fn with_cvss(mut self, score: f64) -> Self {
        self.cvss_score = Some(score);
        self
    }

    /// Set the fixed version.
    pub fn with_fixed_version(mut self, v: impl Into<String>) -> Self {
        self.fixed_version = Some(v.into());
        self
    }

    /// The severity a gate uses: the stated severity, raised to the CVSS rating when the
    /// score says worse (a finding rated UNKNOWN with CVSS 9.8 is critical).
    pub fn effective_severity(&self) -> Severity {
        let from_score = self
            .cvss_score
            .and_then(Severity::from_cvss)
            .unwrap_or(Severity::Unknown);
        self.severity.max(from_score)
    }
}

/// The result of scanning one artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScanReport {
    /// Scanner name (`trivy`, `grype`, `osv`, `ecr`).
    pub scanner: String,
    /// Scanner version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner_version: Option<String>,
    /// The digest of what was scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Digest>,
    /// Every finding.
    pub findings: Vec<Finding>,
}

impl ScanReport {
    /// A report from `scanner` with `findings`.
    pub fn new(scanner: impl Into<String>, findings: Vec<Finding>) -> Self {
        Self {
            scanner: scanner.into(),
            scanner_version: None,
            artifact: None,
            findings,
        }
    }

    /// Set the scanned artifact's digest.
    pub fn with_artifact(mut self, digest: Digest) -> Self {
        self.artifact = Some(digest);
        self
    }

    /// Findings counted by effective severity (every severity present, zero included).
    pub fn counts(&self) -> BTreeMap<Severity, usize> {
        let mut m: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
        for f in &self.findings {
            *m.entry(f.effective_severity()).or_default() += 1;
        }
        m
    }

    /// The highest effective severity, `None` when there are no findings.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(Finding::effective_severity).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss_bands_match_the_cvss_v3_table() {
        assert_eq!(Severity::from_cvss(0.0), Some(Severity::Negligible));
        assert_eq!(Severity::from_cvss(3.9), Some(Severity::Low));
        assert_eq!(Severity::from_cvss(4.0), Some(Severity::Medium));
        assert_eq!(Severity::from_cvss(6.9), Some(Severity::Medium));
        assert_eq!(Severity::from_cvss(7.0), Some(Severity::High));
        assert_eq!(Severity::from_cvss(9.0), Some(Severity::Critical));
        assert_eq!(Severity::from_cvss(10.1), None);
        assert_eq!(Severity::from_cvss(f64::NAN), None);
    }

    #[test]
    fn cvss_raises_but_never_lowers_severity() {
        let f = Finding::new("CVE-1", "openssl", "1.0", Severity::Unknown).with_cvss(9.8);
        assert_eq!(f.effective_severity(), Severity::Critical);
        let f = Finding::new("CVE-2", "zlib", "1.0", Severity::High).with_cvss(2.0);
        assert_eq!(f.effective_severity(), Severity::High);
    }

    #[test]
    fn parses_names_and_rejects_unknown() {
        assert_eq!("moderate".parse::<Severity>().unwrap(), Severity::Medium);
        assert_eq!("CRITICAL".parse::<Severity>().unwrap(), Severity::Critical);
        let e = "severe".parse::<Severity>().unwrap_err();
        assert!(e.to_string().contains("\"severe\""));
        assert_eq!(serde_json::to_string(&Severity::High).unwrap(), "\"HIGH\"");
    }

    #[test]
    fn counts_and_max() {
        let r = ScanReport::new(
            "test",
            vec![
                Finding::new("a", "p", "1", Severity::Low),
                Finding::new("b", "p", "1", Severity::Low),
                Finding::new("c", "p", "1", Severity::Critical),
            ],
        );
        assert_eq!(r.counts()[&Severity::Low], 2);
        assert_eq!(r.counts()[&Severity::High], 0);
        assert_eq!(r.max_severity(), Some(Severity::Critical));
        assert_eq!(ScanReport::new("t", vec![]).max_severity(), None);
    }
}
