//! The scan gate: given a report, what blocks, what only warns, what is suppressed and by
//! what. Per environment: warn or fail; a severity threshold and/or a CVSS threshold; only
//! findings with a fix; whose severity wins; OpenVEX statements; waivers with a reason, an
//! owner and an expiry date (expired waivers stop suppressing and say so; waivers matching
//! nothing are reported as stale).

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::Date;
use wharf_core::{Finding, FixState, ScanGate, ScanReport, Severity};

use crate::vex::{self, Statement, Status, Subject};
use crate::{Error, Result};

/// What a gate does with findings at or above its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Report them; the run goes on.
    Warn,
    /// Block the run.
    Fail,
}

/// A gate's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GatePolicy {
    /// Warn or fail.
    pub action: Action,
    /// Findings at or above this severity count (their effective severity: the chosen
    /// rating, raised by its CVSS score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Findings with a CVSS base score at or above this count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<f64>,
    /// Count only findings that have a fix.
    #[serde(default)]
    pub only_fixed: bool,
    /// Whose rating sets a finding's severity, first match wins (`["ghsa", "nvd"]`); empty
    /// keeps each scanner's own choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity_sources: Vec<String>,
}

impl GatePolicy {
    /// Warn on `severity` and worse.
    pub fn warn(severity: Severity) -> Self {
        Self {
            action: Action::Warn,
            severity: Some(severity),
            cvss: None,
            only_fixed: false,
            severity_sources: Vec::new(),
        }
    }

    /// Fail on `severity` and worse.
    pub fn fail(severity: Severity) -> Self {
        Self {
            action: Action::Fail,
            ..Self::warn(severity)
        }
    }

    /// The policy an environment's [`ScanGate`] states: fail at its threshold (and at the
    /// matching CVSS band), or warn on HIGH and worse.
    pub fn from_scan_gate(gate: &ScanGate) -> Self {
        match gate.fail_on {
            Some(s) => {
                let mut p = Self::fail(s);
                p.cvss = cvss_floor(s);
                p
            }
            None => Self::warn(Severity::High),
        }
    }

    /// Also count CVSS ≥ `score`.
    pub fn with_cvss(mut self, score: f64) -> Self {
        self.cvss = Some(score);
        self
    }

    /// Count only fixable findings.
    pub fn with_only_fixed(mut self, only_fixed: bool) -> Self {
        self.only_fixed = only_fixed;
        self
    }

    /// Prefer these rating sources.
    pub fn with_severity_sources(mut self, sources: Vec<String>) -> Self {
        self.severity_sources = sources;
        self
    }

    /// One line: `fail on HIGH or CVSS ≥ 7.0, fixable only, severity from ghsa, nvd`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.severity {
            Some(Severity::Unknown) => parts.push("any finding".to_owned()),
            Some(s) => parts.push(s.to_string()),
            None => {}
        }
        if let Some(c) = self.cvss {
            parts.push(format!("CVSS ≥ {c:.1}"));
        }
        let mut s = format!(
            "{} on {}",
            match self.action {
                Action::Warn => "warn",
                Action::Fail => "fail",
            },
            if parts.is_empty() {
                "nothing".into()
            } else {
                parts.join(" or ")
            }
        );
        if self.only_fixed {
            s.push_str(", fixable only");
        }
        if !self.severity_sources.is_empty() {
            s.push_str(&format!(
                ", severity from {}",
                self.severity_sources.join(", ")
            ));
        } else {
            s.push_str(", severity as each scanner chose");
        }
        s
    }

    fn counts(&self, f: &Finding) -> Option<String> {
        if self.only_fixed && f.fix_state != FixState::Fixed {
            return None;
        }
        let sev = f.effective_severity();
        if let Some(t) = self.severity
            && sev >= t
        {
            let from = f
                .severity_source
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            // Where every finding counts (dev, test), the severity is reason enough.
            return Some(if t == Severity::Unknown {
                format!("{sev}{from}")
            } else {
                format!("{sev}{from} ≥ {t}")
            });
        }
        if let (Some(t), Some(score)) = (self.cvss, f.cvss_score)
            && score >= t
        {
            return Some(format!("CVSS {score:.1} ≥ {t:.1}"));
        }
        None
    }
}

/// The lowest CVSS score of a severity's band.
fn cvss_floor(s: Severity) -> Option<f64> {
    match s {
        Severity::Critical => Some(9.0),
        Severity::High => Some(7.0),
        Severity::Medium => Some(4.0),
        Severity::Low => Some(0.1),
        _ => None,
    }
}

/// An accepted risk: a finding that may pass until `expires`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Waiver {
    /// The vulnerability id or any alias.
    pub id: String,
    /// Only in this package (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Why the risk is accepted.
    pub reason: String,
    /// Who accepted it.
    pub owner: String,
    /// The last day it applies (`2027-03-31`).
    #[serde(with = "day")]
    pub expires: Date,
}

/// Dates as `YYYY-MM-DD`: a TOML date or a string.
mod day {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    const FORMAT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]");

    pub(super) fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.format(FORMAT).map_err(serde::ser::Error::custom)?)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Toml(toml::value::Datetime),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Toml(t) => t.to_string(),
            Raw::Text(t) => t,
        };
        Date::parse(&text, FORMAT).map_err(|e| {
            serde::de::Error::custom(format!(
                "expires = {text:?} is not a date like 2027-03-31: {e}"
            ))
        })
    }
}

impl Waiver {
    /// A waiver.
    pub fn new(
        id: impl Into<String>,
        reason: impl Into<String>,
        owner: impl Into<String>,
        expires: Date,
    ) -> Self {
        Self {
            id: id.into(),
            package: None,
            reason: reason.into(),
            owner: owner.into(),
            expires,
        }
    }

    /// Only for `package`.
    pub fn for_package(mut self, package: impl Into<String>) -> Self {
        self.package = Some(package.into());
        self
    }

    fn covers(&self, f: &Finding) -> bool {
        f.ids().any(|i| i.eq_ignore_ascii_case(&self.id))
            && self.package.as_deref().is_none_or(|p| p == f.package)
    }

    fn check(&self, source: &str) -> Result<()> {
        for (field, v) in [
            ("id", &self.id),
            ("reason", &self.reason),
            ("owner", &self.owner),
        ] {
            if v.trim().is_empty() {
                return Err(Error::Config(format!(
                    "{source}: waiver for {:?} has an empty `{field}`: every waiver needs an id, a reason, an owner and an expiry date",
                    self.id
                )));
            }
        }
        Ok(())
    }
}

/// Read waivers from a TOML file of `[[waiver]]` tables.
pub fn read_waivers(path: &Path) -> Result<Vec<Waiver>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        waiver: Vec<Waiver>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("waivers {}: {e}", path.display())))?;
    let file: File = toml::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "waivers {}: {} (each [[waiver]] needs id, reason, owner, expires = 2027-03-31)",
            path.display(),
            e.message()
        ))
    })?;
    for w in &file.waiver {
        w.check(&path.display().to_string())?;
    }
    Ok(file.waiver)
}

/// A gate: policy, VEX statements and waivers.
#[derive(Debug, Clone)]
pub struct Gate {
    policy: GatePolicy,
    statements: Vec<Statement>,
    waivers: Vec<Waiver>,
}

/// A finding and why the gate counted it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Flagged {
    /// The finding.
    pub finding: Finding,
    /// Why: `CRITICAL (nvd) ≥ HIGH`, `CVSS 7.5 ≥ 7.0`.
    pub reason: String,
}

/// A finding that did not count, and what suppressed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Suppressed {
    /// The finding.
    pub finding: Finding,
    /// What: `VEX not_affected (vulnerable_code_not_in_execute_path) in vex.json`, `waiver by
    /// alice@example.com until 2027-03-31: reason`.
    pub by: String,
}

/// What the gate decided, and every reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Decision {
    /// The policy, in one line.
    pub policy: String,
    /// Whether the run may go on.
    pub passed: bool,
    /// Findings that blocked (when the action is fail).
    pub blocking: Vec<Flagged>,
    /// Findings at or above the thresholds that only warn (when the action is warn).
    pub warnings: Vec<Flagged>,
    /// Findings suppressed by VEX or a waiver.
    pub suppressed: Vec<Suppressed>,
    /// Findings below the thresholds.
    pub below_threshold: usize,
    /// Waivers past their expiry date that would have matched, one line each.
    pub expired_waivers: Vec<String>,
    /// Waivers that match no finding any more, one line each.
    pub stale_waivers: Vec<String>,
}

impl Decision {
    /// One line for people: `2 findings block (fail on HIGH or CVSS ≥ 7.0); 1 suppressed`.
    pub fn summary(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let mut s = if !self.blocking.is_empty() {
            format!(
                "{} block ({})",
                plural(self.blocking.len(), "finding"),
                self.policy
            )
        } else if !self.warnings.is_empty() {
            format!(
                "{} at or above the threshold, warning only ({})",
                plural(self.warnings.len(), "finding"),
                self.policy
            )
        } else {
            format!("nothing at or above the threshold ({})", self.policy)
        };
        if !self.suppressed.is_empty() {
            s.push_str(&format!("; {} suppressed", self.suppressed.len()));
        }
        if !self.expired_waivers.is_empty() {
            s.push_str(&format!(
                "; {}",
                plural(self.expired_waivers.len(), "expired waiver")
            ));
        }
        if !self.stale_waivers.is_empty() {
            s.push_str(&format!(
                "; {}",
                plural(self.stale_waivers.len(), "stale waiver")
            ));
        }
        s
    }
}

impl Gate {
    /// A gate with `policy`, no VEX and no waivers.
    pub fn new(policy: GatePolicy) -> Self {
        Self {
            policy,
            statements: Vec::new(),
            waivers: Vec::new(),
        }
    }

    /// Apply these VEX statements.
    pub fn with_vex(mut self, statements: Vec<Statement>) -> Self {
        self.statements.extend(statements);
        self
    }

    /// Read and apply an OpenVEX file.
    pub fn with_vex_file(self, path: &Path) -> Result<Self> {
        Ok(self.with_vex(vex::read(path)?))
    }

    /// Apply these waivers.
    pub fn with_waivers(mut self, waivers: Vec<Waiver>) -> Result<Self> {
        for w in &waivers {
            w.check("waivers")?;
        }
        self.waivers.extend(waivers);
        Ok(self)
    }

    /// The policy.
    pub fn policy(&self) -> &GatePolicy {
        &self.policy
    }

    /// Decide on `report` about `subject`, as of `today`. The report's findings get the
    /// policy's preferred severity source first.
    pub fn evaluate(&self, report: &mut ScanReport, subject: &Subject, today: Date) -> Decision {
        if !self.policy.severity_sources.is_empty() {
            for f in &mut report.findings {
                f.prefer_sources(&self.policy.severity_sources);
            }
        }
        let mut d = Decision {
            policy: self.policy.describe(),
            passed: true,
            blocking: Vec::new(),
            warnings: Vec::new(),
            suppressed: Vec::new(),
            below_threshold: 0,
            expired_waivers: Vec::new(),
            stale_waivers: Vec::new(),
        };
        let mut used = vec![false; self.waivers.len()];
        for f in &report.findings {
            if let Some(s) = vex::decide(&self.statements, f, subject)
                && let Some(by) = suppresses(s)
            {
                d.suppressed.push(Suppressed {
                    finding: f.clone(),
                    by,
                });
                continue;
            }
            let mut waived = None;
            for (k, w) in self.waivers.iter().enumerate() {
                if !w.covers(f) {
                    continue;
                }
                used[k] = true;
                if w.expires < today {
                    let line = format!(
                        "waiver for {} ({}) by {} expired on {}: it no longer suppresses",
                        w.id, f.package, w.owner, w.expires
                    );
                    if !d.expired_waivers.contains(&line) {
                        d.expired_waivers.push(line);
                    }
                } else if waived.is_none() {
                    waived = Some(format!(
                        "waiver by {} until {}: {}",
                        w.owner, w.expires, w.reason
                    ));
                }
            }
            if let Some(by) = waived {
                d.suppressed.push(Suppressed {
                    finding: f.clone(),
                    by,
                });
                continue;
            }
            match self.policy.counts(f) {
                Some(reason) => {
                    let flagged = Flagged {
                        finding: f.clone(),
                        reason,
                    };
                    match self.policy.action {
                        Action::Fail => d.blocking.push(flagged),
                        Action::Warn => d.warnings.push(flagged),
                    }
                }
                None => d.below_threshold += 1,
            }
        }
        for (w, used) in self.waivers.iter().zip(used) {
            if !used {
                d.stale_waivers.push(format!(
                    "waiver for {}{} by {} matches no finding: remove it",
                    w.id,
                    w.package
                        .as_deref()
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default(),
                    w.owner
                ));
            }
        }
        d.passed = d.blocking.is_empty();
        d
    }
}

/// What a VEX statement suppresses with, if it does: `not_affected` with a justification or
/// impact statement, and `fixed`.
fn suppresses(s: &Statement) -> Option<String> {
    let when = s
        .timestamp
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(|t| format!(" at {t}"))
        .unwrap_or_default();
    match (s.status, &s.justification) {
        (Status::NotAffected, Some(j)) => {
            Some(format!("VEX not_affected ({j}) in {}{when}", s.document))
        }
        (Status::Fixed, _) => Some(format!("VEX fixed in {}{when}", s.document)),
        _ => None,
    }
}
