//! What people and tools read: a table, JSON, SARIF 2.1.0 (GitHub code scanning), a
//! CycloneDX 1.5 SBOM of the inventory.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use wharf_core::{Finding, ScanReport, Severity};

use crate::gate::Decision;

/// Where each finding stands in a decision.
fn verdicts(decision: Option<&Decision>) -> BTreeMap<(String, String, String), String> {
    let mut m = BTreeMap::new();
    if let Some(d) = decision {
        let key = |f: &Finding| (f.id.clone(), f.package.clone(), f.installed_version.clone());
        for b in &d.blocking {
            m.insert(key(&b.finding), "BLOCKS".to_owned());
        }
        for w in &d.warnings {
            m.insert(key(&w.finding), "warn".to_owned());
        }
        for s in &d.suppressed {
            m.insert(key(&s.finding), "suppressed".to_owned());
        }
    }
    m
}

/// A plain-text table, worst first: severity (and whose), id, package, installed, fixed,
/// and what the gate made of it.
pub fn table(report: &ScanReport, decision: Option<&Decision>) -> String {
    let verdict = verdicts(decision);
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut findings: Vec<&Finding> = report.findings.iter().collect();
    findings.sort_by(|a, b| {
        b.effective_severity()
            .cmp(&a.effective_severity())
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.id.cmp(&b.id))
    });
    for f in findings {
        let sev = match &f.severity_source {
            Some(s) => format!("{} ({s})", f.effective_severity()),
            None => f.effective_severity().to_string(),
        };
        let key = (f.id.clone(), f.package.clone(), f.installed_version.clone());
        rows.push([
            sev,
            f.id.clone(),
            f.package.clone(),
            f.installed_version.clone(),
            f.fixed_version
                .clone()
                .unwrap_or_else(|| f.fix_state.as_str().to_owned()),
            verdict.get(&key).cloned().unwrap_or_default(),
        ]);
    }
    let header = ["SEVERITY", "ID", "PACKAGE", "INSTALLED", "FIXED", "GATE"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (k, (c, w)) in cells.iter().zip(widths).enumerate() {
            if k + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header.map(str::to_owned));
    for r in &rows {
        out.push_str(&line(r));
    }
    let counts: Vec<String> = report
        .counts()
        .iter()
        .rev()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    out.push_str(&format!(
        "{} findings in {} packages ({}) — {}{}\n",
        report.findings.len(),
        report.packages.len(),
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        },
        report.scanner,
        report
            .database
            .as_ref()
            .and_then(|d| d.updated_at.as_deref())
            .map(|u| format!(", data as of {u}"))
            .unwrap_or_default()
    ));
    if let Some(d) = decision {
        out.push_str(&format!("gate: {}\n", d.summary()));
    }
    out
}

/// The report and the decision as one JSON document.
pub fn json(report: &ScanReport, decision: Option<&Decision>) -> Value {
    json!({"report": report, "decision": decision})
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        _ => "note",
    }
}

/// SARIF 2.1.0, one rule per vulnerability and one result per finding, with GitHub's
/// `security-severity` so code scanning ranks them; `artifact` is the location shown
/// (the image reference, or the file a package was found in).
pub fn sarif(report: &ScanReport, artifact: &str) -> Value {
    let mut rules: Vec<Value> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut results = Vec::new();
    for f in &report.findings {
        let sev = f.effective_severity();
        let score = f.cvss_score.unwrap_or(match sev {
            Severity::Critical => 9.5,
            Severity::High => 8.0,
            Severity::Medium => 5.5,
            Severity::Low => 2.0,
            _ => 0.0,
        });
        let rule_index = *index.entry(f.id.clone()).or_insert_with(|| {
            let title = f.title.clone().unwrap_or_else(|| f.id.clone());
            let help_uri = f
                .references
                .first()
                .cloned()
                .unwrap_or_else(|| format!("https://osv.dev/vulnerability/{}", f.id));
            let mut properties = json!({
                "security-severity": format!("{score:.1}"),
                "precision": "very-high",
                "tags": ["vulnerability", "security", sev.as_str()],
            });
            if let Some(v) = &f.cvss_vector {
                properties["cvssv3_vector"] = json!(v);
            }
            if let Some(c) = f.cvss_score {
                properties["cvssv3_baseScore"] = json!(c);
            }
            rules.push(json!({
                "id": f.id,
                "name": f.id,
                "shortDescription": {"text": title},
                "fullDescription": {"text": f.title.clone().unwrap_or_else(|| format!("{} in {}", f.id, f.package))},
                "helpUri": help_uri,
                "help": {
                    "text": format!("{}: {title}\nSeverity: {sev}\nFixed version: {}\nLink: {help_uri}", f.id, f.fixed_version.as_deref().unwrap_or("none")),
                    "markdown": format!("**{}**: {title}\n\n| Severity | Fixed version | Link |\n|---|---|---|\n| {sev} | {} | [{}]({help_uri}) |", f.id, f.fixed_version.as_deref().unwrap_or("none"), f.id),
                },
                "defaultConfiguration": {"level": sarif_level(sev)},
                "properties": properties,
            }));
            rules.len() - 1
        });
        let fixed = f
            .fixed_version
            .as_deref()
            .map(|v| format!(", fixed in {v}"))
            .unwrap_or_default();
        let uri = f.target.clone().unwrap_or_else(|| artifact.to_owned());
        results.push(json!({
            "ruleId": f.id,
            "ruleIndex": rule_index,
            "level": sarif_level(sev),
            "message": {"text": format!("{} {} {} is affected by {} ({sev}){fixed}", f.ecosystem.clone().unwrap_or_default(), f.package, f.installed_version, f.id).trim().to_owned()},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": uri.trim_start_matches('/')},
                    "region": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1},
                },
                "message": {"text": format!("{}@{}", f.package, f.installed_version)},
            }],
            "partialFingerprints": {"wharfFinding/v1": format!("{}:{}:{}", f.id, f.package, f.installed_version)},
        }));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "wharf-scan",
                "informationUri": "https://github.com/wharf-rs/wharf",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
            "properties": {"scanner": report.scanner, "artifact": report.artifact},
        }],
    })
}

/// A CycloneDX 1.5 SBOM of the report's inventory, the image as its subject.
pub fn cyclonedx(report: &ScanReport, image_name: &str) -> Value {
    let digest = report
        .artifact
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let serial = wharf_core::Digest::sha256_of(format!("{digest}{image_name}").as_bytes());
    let h = serial.hex();
    let uuid = format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    );
    let components: Vec<Value> = report
        .packages
        .iter()
        .map(|p| {
            let bom_ref = p
                .purl
                .clone()
                .unwrap_or_else(|| format!("{}:{}@{}", p.ecosystem, p.name, p.version));
            let mut c = json!({
                "type": "library",
                "bom-ref": bom_ref,
                "name": p.name,
                "version": p.version,
            });
            if let Some(purl) = &p.purl {
                c["purl"] = json!(purl);
            }
            let mut props = vec![json!({"name": "wharf:ecosystem", "value": p.ecosystem})];
            if let Some(l) = &p.location {
                props.push(json!({"name": "wharf:location", "value": l}));
            }
            if let Some(l) = &p.layer {
                props.push(json!({"name": "wharf:layer", "value": l}));
            }
            c["properties"] = json!(props);
            c
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{uuid}"),
        "version": 1,
        "metadata": {
            "timestamp": report.scanned_at.clone().unwrap_or_else(crate::now_rfc3339),
            "tools": {"components": [{"type": "application", "name": "wharf-scan", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"type": "container", "bom-ref": digest, "name": image_name, "version": digest},
        },
        "components": components,
    })
}
