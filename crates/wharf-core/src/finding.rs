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

/// Whether a fix exists for a finding, as its source says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixState {
    /// The source did not say.
    #[default]
    Unknown,
    /// A fixed version exists.
    Fixed,
    /// No fix yet.
    NotFixed,
    /// The vendor will not fix it.
    WontFix,
}

impl FixState {
    /// Lower-case name as reports print it.
    pub fn as_str(self) -> &'static str {
        match self {
            FixState::Unknown => "unknown",
            FixState::Fixed => "fixed",
            FixState::NotFixed => "not-fixed",
            FixState::WontFix => "wont-fix",
        }
    }
}

/// One source's rating of a vulnerability: the vendor (a distribution), NVD, GHSA, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rating {
    /// Who rated it (`nvd`, `ghsa`, `debian`, `alpine`, `redhat`, `osv`, …), lower case.
    pub source: String,
    /// The qualitative severity it gave.
    pub severity: Severity,
    /// The CVSS base score, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    /// The CVSS vector (`CVSS:3.1/AV:N/…`), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_vector: Option<String>,
}

impl Rating {
    /// A rating of `severity` by `source`.
    pub fn new(source: impl Into<String>, severity: Severity) -> Self {
        Self {
            source: source.into(),
            severity,
            cvss_score: None,
            cvss_vector: None,
        }
    }

    /// With a CVSS base score and, when known, its vector.
    pub fn with_cvss(mut self, score: Option<f64>, vector: Option<String>) -> Self {
        self.cvss_score = score;
        self.cvss_vector = vector;
        self
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
    /// The package's ecosystem (`PyPI`, `Debian:12`, `Alpine:v3.19`, `npm`, …), OSV's names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecosystem: Option<String>,
    /// The package URL (`pkg:pypi/numpy@1.21.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// Installed version.
    pub installed_version: String,
    /// First fixed version, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    /// Whether a fix exists.
    #[serde(default)]
    pub fix_state: FixState,
    /// Severity as [`severity_source`](Self::severity_source) rated it.
    pub severity: Severity,
    /// Which rating [`severity`](Self::severity) came from (`nvd`, `ghsa`, `debian`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_source: Option<String>,
    /// CVSS base score, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    /// CVSS vector of that score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_vector: Option<String>,
    /// Every source's rating, so a gate can choose whose wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratings: Vec<Rating>,
    /// One-line title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Where it was found (a file or layer path, an OS package db).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The digest of the image layer the package was found in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Other ids of the same advisory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Advisory and fix URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// When this finding was first seen for this artifact (RFC 3339): the scan's time,
    /// or an earlier report's when carried forward with [`ScanReport::carry_first_seen`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
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
            ecosystem: None,
            purl: None,
            installed_version: installed_version.into(),
            fixed_version: None,
            fix_state: FixState::Unknown,
            severity,
            severity_source: None,
            cvss_score: None,
            cvss_vector: None,
            ratings: Vec::new(),
            title: None,
            target: None,
            layer: None,
            aliases: Vec::new(),
            references: Vec::new(),
            first_seen: None,
        }
    }

    /// Set the CVSS score.
    pub fn with_cvss(mut self, score: f64) -> Self {
        self.cvss_score = Some(score);
        self
    }

    /// Set the fixed version (and the fix state to fixed).
    pub fn with_fixed_version(mut self, v: impl Into<String>) -> Self {
        self.fixed_version = Some(v.into());
        self.fix_state = FixState::Fixed;
        self
    }

    /// Set the ecosystem.
    pub fn with_ecosystem(mut self, ecosystem: impl Into<String>) -> Self {
        self.ecosystem = Some(ecosystem.into());
        self
    }

    /// Set the aliases.
    pub fn with_aliases(mut self, aliases: Vec<String>) -> Self {
        self.aliases = aliases;
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

    /// The id and every alias.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// Choose the rating that sets [`severity`](Self::severity), [`cvss_score`](Self::cvss_score)
    /// and [`severity_source`](Self::severity_source): the first source in `preference`
    /// that rated it (case-insensitive); when none did, the current choice stays.
    pub fn prefer_sources(&mut self, preference: &[impl AsRef<str>]) {
        let chosen = preference.iter().find_map(|p| {
            self.ratings
                .iter()
                .find(|r| r.source.eq_ignore_ascii_case(p.as_ref()))
        });
        if let Some(r) = chosen.cloned() {
            self.severity = r.severity;
            self.severity_source = Some(r.source);
            if r.cvss_score.is_some() {
                self.cvss_score = r.cvss_score;
                self.cvss_vector = r.cvss_vector;
            }
        }
    }
}

/// One package found in the scanned artifact.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Package {
    /// Name as its ecosystem spells it.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// OSV ecosystem (`PyPI`, `Debian:12`, `Alpine:v3.19`, …).
    pub ecosystem: String,
    /// Package URL, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// The source package it was built from, when that differs (Debian `Source:`, Alpine
    /// `origin`): what distribution advisories are keyed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The file it was read from (`var/lib/dpkg/status`, `…/numpy-1.21.0.dist-info/METADATA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The digest of the layer holding that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

impl Package {
    /// A package of `ecosystem`.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        ecosystem: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            ecosystem: ecosystem.into(),
            purl: None,
            source: None,
            location: None,
            layer: None,
        }
    }

    /// Set the purl.
    pub fn with_purl(mut self, purl: impl Into<String>) -> Self {
        self.purl = Some(purl.into());
        self
    }

    /// Set where it was found.
    pub fn found_in(mut self, location: impl Into<String>, layer: Option<String>) -> Self {
        self.location = Some(location.into());
        self.layer = layer;
        self
    }
}

/// The vulnerability database a report was made with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DatabaseInfo {
    /// Schema or content version (Trivy DB `2`, Grype `v6.0.2`, an OSV export's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When the data was built or last updated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Where it came from (a path, a repository, `ecr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl DatabaseInfo {
    /// Database facts: its version, when it was updated, where it came from.
    pub fn new(
        version: Option<String>,
        updated_at: Option<String>,
        source: Option<String>,
    ) -> Self {
        Self {
            version,
            updated_at,
            source,
        }
    }
}

/// The result of scanning one artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScanReport {
    /// Scanner name (`trivy`, `grype`, `osv`, `ecr`; `a+b` for merged reports).
    pub scanner: String,
    /// Scanner version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner_version: Option<String>,
    /// The digest of what was scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Digest>,
    /// When the scan ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<String>,
    /// The vulnerability database used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseInfo>,
    /// Every finding.
    pub findings: Vec<Finding>,
    /// The packages inventoried, when the scanner reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    /// What the scanner could not do, one line each: a package whose version it could not
    /// compare, an advisory it could not use. Never silent, never a failure by itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ScanReport {
    /// A report from `scanner` with `findings`.
    pub fn new(scanner: impl Into<String>, findings: Vec<Finding>) -> Self {
        Self {
            scanner: scanner.into(),
            scanner_version: None,
            artifact: None,
            scanned_at: None,
            database: None,
            findings,
            packages: Vec::new(),
            notes: Vec::new(),
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

    /// Keep each finding's `first_seen` from `previous` (an earlier report on the same
    /// artifact) when that is earlier: findings are the same when id and package match.
    pub fn carry_first_seen(&mut self, previous: &ScanReport) {
        for f in &mut self.findings {
            let earlier = previous
                .findings
                .iter()
                .filter(|p| p.package == f.package && p.ids().any(|i| f.ids().any(|j| i == j)))
                .filter_map(|p| p.first_seen.as_deref())
                .min();
            if let Some(e) = earlier
                && f.first_seen.as_deref().is_none_or(|mine| e < mine)
            {
                f.first_seen = Some(e.to_owned());
            }
        }
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

    #[test]
    fn preferred_source_sets_severity_and_score() {
        let mut f = Finding::new("CVE-1", "p", "1", Severity::Medium);
        f.ratings = vec![
            Rating::new("debian", Severity::Low),
            Rating::new("nvd", Severity::Critical).with_cvss(Some(9.8), Some("CVSS:3.1/x".into())),
        ];
        f.prefer_sources(&["ghsa", "nvd"]);
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.severity_source.as_deref(), Some("nvd"));
        assert_eq!(f.cvss_score, Some(9.8));
        f.prefer_sources(&["DEBIAN"]);
        assert_eq!(f.severity, Severity::Low);
        assert_eq!(
            f.cvss_score,
            Some(9.8),
            "a rating without a score keeps the score"
        );
        f.prefer_sources(&["redhat"]);
        assert_eq!(
            f.severity,
            Severity::Low,
            "no rating from the source: unchanged"
        );
    }

    #[test]
    fn first_seen_carries_forward_by_alias() {
        let mut old = Finding::new("GHSA-x", "numpy", "1", Severity::High);
        old.aliases = vec!["CVE-9".into()];
        old.first_seen = Some("2026-01-01T00:00:00Z".into());
        let mut new = Finding::new("CVE-9", "numpy", "1", Severity::High);
        new.first_seen = Some("2026-12-01T00:00:00Z".into());
        let mut other = Finding::new("CVE-9", "scipy", "1", Severity::High);
        other.first_seen = Some("2026-12-01T00:00:00Z".into());
        let mut r = ScanReport::new("osv", vec![new, other]);
        r.carry_first_seen(&ScanReport::new("osv", vec![old]));
        assert_eq!(
            r.findings[0].first_seen.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            r.findings[1].first_seen.as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
    }
}
