//! The scan stage: the pushed image's findings from every configured scanner, merged,
//! through the environment's gate; the report, SARIF and SBOM written beside the run, and
//! left for the attest stage (cosign's vuln predicate and the CycloneDX SBOM).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use wharf_core::scan::ScanOptions;
use wharf_core::{Evidence, Reference, ScanReport, ScanTarget, Scanner, Severity};
use wharf_scan::gate::{Action, Decision, Gate, GatePolicy};
use wharf_scan::vex::Subject;

use crate::stages::{SBOM_OUTPUT, SCAN_OUTPUT};
use crate::{RunContext, Stage, StageOutcome};

/// The scanners `[scan] scanners` may name.
pub const SCANNERS: [&str; 4] = ["osv", "trivy", "grype", "ecr"];

/// Where the image is read from.
#[derive(Debug, Clone)]
pub enum ScanSource {
    /// An OCI image layout directory (the embedded registry's, for this repository).
    Layout(PathBuf),
    /// A registry repository; the digest comes from the push.
    Registry(Reference),
}

/// Scans the image the package stage pushed and applies the environment's gate.
pub struct ScanStage {
    scanners: Vec<Arc<dyn Scanner>>,
    source: ScanSource,
    gate: Gate,
    reports_dir: PathBuf,
    image_name: String,
    options: ScanOptions,
}

/// How many findings the detail lines list one by one; the report holds them all.
const MAX_LISTED: usize = 20;

impl ScanStage {
    /// Scan with `scanners` (merged into one report), read the image from `source`, decide
    /// with `gate`, write reports under `reports_dir/<digest hex>/`.
    pub fn new(
        scanners: Vec<Arc<dyn Scanner>>,
        source: ScanSource,
        gate: Gate,
        reports_dir: impl Into<PathBuf>,
    ) -> Self {
        let image_name = match &source {
            ScanSource::Layout(p) => p.display().to_string(),
            ScanSource::Registry(r) => r.to_string(),
        };
        Self {
            scanners,
            source,
            gate,
            reports_dir: reports_dir.into(),
            image_name,
            options: ScanOptions::default(),
        }
    }

    /// Name the image in reports (`ghcr.io/acme/fraud-detector`).
    pub fn image_name(mut self, name: impl Into<String>) -> Self {
        self.image_name = name.into();
        self
    }

    /// Scan with `options` (offline).
    pub fn options(mut self, options: ScanOptions) -> Self {
        self.options = options;
        self
    }

    fn subject_name(&self) -> Option<String> {
        self.image_name
            .rsplit('/')
            .next()
            .map(|n| n.split([':', '@']).next().unwrap_or(n).to_owned())
    }

    /// Write `bytes` to `path` whole or not at all: a temporary file renamed into place, so
    /// runs side by side never see half a report.
    fn write(path: &Path, bytes: &[u8]) -> wharf_core::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let fail = |e: std::io::Error| {
            wharf_core::Error::new(
                wharf_core::ErrorKind::Internal,
                format!(
                    "scan report {}: {e}: check that [scan] reports_dir is writable",
                    path.display()
                ),
            )
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        tmp.persist(path).map_err(|e| fail(e.error))?;
        Ok(())
    }
}

fn details(decision: &Decision, report: &ScanReport, failures: &[String]) -> Vec<String> {
    let mut d: Vec<String> = failures
        .iter()
        .map(|f| format!("scan could not run: {f}"))
        .collect();
    let line = |f: &wharf_core::Finding| {
        let fixed = f
            .fixed_version
            .as_deref()
            .map(|v| format!(", fixed in {v}"))
            .unwrap_or_else(|| format!(", {}", f.fix_state.as_str()));
        format!("{} in {} {}{fixed}", f.id, f.package, f.installed_version)
    };
    for b in decision.blocking.iter().take(MAX_LISTED) {
        d.push(format!("blocks: {}: {}", line(&b.finding), b.reason));
    }
    for w in decision.warnings.iter().take(MAX_LISTED) {
        d.push(format!("warning: {}: {}", line(&w.finding), w.reason));
    }
    let listed = decision.blocking.len().min(MAX_LISTED) + decision.warnings.len().min(MAX_LISTED);
    if decision.blocking.len() + decision.warnings.len() > listed {
        d.push(format!(
            "… and {} more (all in the scan report)",
            decision.blocking.len() + decision.warnings.len() - listed
        ));
    }
    for s in &decision.suppressed {
        d.push(format!("suppressed: {}: {}", line(&s.finding), s.by));
    }
    d.extend(decision.expired_waivers.iter().cloned());
    d.extend(decision.stale_waivers.iter().cloned());
    d.extend(
        report
            .notes
            .iter()
            .take(MAX_LISTED)
            .map(|n| format!("note: {n}")),
    );
    d
}

#[async_trait]
impl Stage for ScanStage {
    fn name(&self) -> &str {
        "scan"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let digest = ctx.image_digest.clone().ok_or_else(|| {
            wharf_core::Error::invalid(
                "the scan stage needs a pushed image: run it after the package stage",
            )
        })?;
        let target = match &self.source {
            ScanSource::Layout(path) => ScanTarget::Layout {
                path: path.clone(),
                digest: digest.clone(),
            },
            ScanSource::Registry(reference) => ScanTarget::Image {
                reference: reference.clone(),
                digest: digest.clone(),
            },
        };
        let started = OffsetDateTime::now_utc();
        let mut reports = Vec::new();
        let mut failures = Vec::new();
        for s in &self.scanners {
            match s.scan(&target, &self.options).await {
                Ok(r) => reports.push(r),
                Err(e) => failures.push(format!("{}: {e}", s.name())),
            }
        }
        let finished = OffsetDateTime::now_utc();
        let fails = self.gate.policy().action == Action::Fail;
        if reports.is_empty() {
            // Nothing to decide on: an error in prod, a loud warning elsewhere.
            let summary = format!(
                "no scan result for {digest}: {}",
                if fails {
                    "the gate cannot pass an image nobody scanned"
                } else {
                    "warning only in this environment"
                }
            );
            let outcome = if fails {
                StageOutcome::failed(summary)
            } else {
                StageOutcome::warned(summary)
            };
            return Ok(outcome
                .with_details(
                    failures
                        .iter()
                        .map(|f| format!("scan could not run: {f}"))
                        .collect(),
                )
                .with_data(serde_json::json!({"errors": failures})));
        }
        let mut report = wharf_scan::merge::merge(reports);
        report.artifact = Some(digest.clone());
        let dir = self.reports_dir.join(digest.hex());
        let report_path = dir.join("report.json");
        // First seen: carried forward from this image's previous report.
        if let Ok(prev) = std::fs::read(&report_path)
            && let Ok(prev) = serde_json::from_slice::<serde_json::Value>(&prev)
            && let Ok(prev) = serde_json::from_value::<ScanReport>(prev["report"].clone())
        {
            report.carry_first_seen(&prev);
        }
        let subject = Subject {
            digest: digest.clone(),
            name: self.subject_name(),
        };
        let today = finished.date();
        let decision = self.gate.evaluate(&mut report, &subject, today);

        let report_json =
            serde_json::to_vec_pretty(&wharf_scan::output::json(&report, Some(&decision)))
                .map_err(|e| wharf_core::Error::internal(format!("scan report: {e}")))?;
        let sarif =
            serde_json::to_vec_pretty(&wharf_scan::output::sarif(&report, &self.image_name))
                .map_err(|e| wharf_core::Error::internal(format!("SARIF: {e}")))?;
        let sbom_value = wharf_scan::output::cyclonedx(&report, &self.image_name);
        let sbom = serde_json::to_vec_pretty(&sbom_value)
            .map_err(|e| wharf_core::Error::internal(format!("SBOM: {e}")))?;
        let (sarif_path, sbom_path) = (dir.join("report.sarif"), dir.join("sbom.cdx.json"));
        Self::write(&report_path, &report_json)?;
        Self::write(&sarif_path, &sarif)?;
        Self::write(&sbom_path, &sbom)?;

        // For the attest stage: cosign's vuln predicate, and the SBOM unless a stage made one.
        let db = serde_json::to_value(&report.database).unwrap_or_default();
        let result = serde_json::to_value(wharf_scan::output::json(&report, Some(&decision)))
            .unwrap_or_default();
        ctx.outputs.insert(
            SCAN_OUTPUT.into(),
            wharf_sign::attest::vuln_predicate(
                &format!(
                    "https://github.com/wharf-rs/wharf/tree/main/crates/wharf-scan#{}",
                    report.scanner
                ),
                report
                    .scanner_version
                    .as_deref()
                    .unwrap_or(env!("CARGO_PKG_VERSION")),
                db,
                result,
                started,
                finished,
            ),
        );
        ctx.outputs.entry(SBOM_OUTPUT.into()).or_insert(sbom_value);

        let counts: Vec<String> = report
            .counts()
            .iter()
            .rev()
            .filter(|(s, n)| **n > 0 && **s >= Severity::Negligible)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let what = format!(
            "{} findings ({}) in {} packages by {}",
            report.findings.len(),
            if counts.is_empty() {
                "none".into()
            } else {
                counts.join(", ")
            },
            report.packages.len(),
            report.scanner
        );
        let failed_line = if failures.is_empty() {
            String::new()
        } else {
            format!("; {} scanner(s) could not run", failures.len())
        };
        let summary = format!("{what}: {}{failed_line}", decision.summary());
        let outcome = if !decision.passed {
            StageOutcome::blocked(summary)
        } else if !failures.is_empty() && fails {
            StageOutcome::failed(summary)
        } else if !decision.warnings.is_empty()
            || !failures.is_empty()
            || !decision.expired_waivers.is_empty()
            || !decision.stale_waivers.is_empty()
        {
            StageOutcome::warned(summary)
        } else {
            StageOutcome::passed(summary)
        };
        let id_list =
            |v: &mut dyn Iterator<Item = &wharf_core::Finding>| -> Vec<serde_json::Value> {
                v.take(MAX_LISTED)
                .map(|f| serde_json::json!({"id": f.id, "package": f.package, "version": f.installed_version, "severity": f.effective_severity()}))
                .collect()
            };
        let data = serde_json::json!({
            "scanner": report.scanner,
            "database": report.database,
            "policy": decision.policy,
            "passed": decision.passed,
            "counts": report.counts().iter().map(|(s, n)| (s.to_string(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
            "blocking": id_list(&mut decision.blocking.iter().map(|b| &b.finding)),
            "warnings": id_list(&mut decision.warnings.iter().map(|b| &b.finding)),
            "suppressed": decision.suppressed.iter().take(MAX_LISTED).map(|s| serde_json::json!({"id": s.finding.id, "package": s.finding.package, "by": s.by})).collect::<Vec<_>>(),
            "expired_waivers": decision.expired_waivers,
            "stale_waivers": decision.stale_waivers,
            "errors": failures,
        });
        Ok(outcome
            .with_details(details(&decision, &report, &failures))
            .with_evidence(
                Evidence::of_bytes("scan-report", &report_json)
                    .with_location(report_path.display().to_string()),
            )
            .with_evidence(
                Evidence::of_bytes("sarif", &sarif).with_location(sarif_path.display().to_string()),
            )
            .with_evidence(
                Evidence::of_bytes("sbom", &sbom).with_location(sbom_path.display().to_string()),
            )
            .with_data(data))
    }
}

/// The gate policy for an environment: its scan gate, with `wharf.toml`'s overrides.
pub fn gate_policy(
    gate: &wharf_core::ScanGate,
    fail_on_cvss: Option<f64>,
    only_fixed: bool,
    severity_sources: Vec<String>,
) -> GatePolicy {
    let mut p = match gate.fail_on {
        Some(_) => GatePolicy::from_scan_gate(gate),
        // Where nothing fails, every finding is a warning a person should see.
        None => GatePolicy::warn(Severity::Unknown),
    };
    if let Some(c) = fail_on_cvss {
        p = p.with_cvss(c);
    }
    p.with_only_fixed(only_fixed)
        .with_severity_sources(severity_sources)
}
