//! Reports written by Trivy and Grype themselves (fixtures/PROVENANCE.md), parsed with the
//! exact counts stated there; reports of other formats, truncated or with unknown
//! severities refused in one line.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wharf_core::{FixState, Severity};
use wharf_scan::{grype, trivy};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn severities(r: &wharf_core::ScanReport) -> Vec<Severity> {
    let mut s: Vec<Severity> = r.findings.iter().map(|f| f.severity).collect();
    s.sort();
    s
}

#[test]
fn trivy_alpine_image_two_findings_one_id() {
    let r = trivy::read_report(&fixture(
        "trivy/aquasecurity-trivy/alpine-39-high-critical.json.golden",
    ))
    .unwrap();
    assert_eq!(r.findings.len(), 2);
    let ids: BTreeSet<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["CVE-2019-14697"]));
    let pkgs: BTreeSet<&str> = r.findings.iter().map(|f| f.package.as_str()).collect();
    assert_eq!(pkgs, BTreeSet::from(["musl", "musl-utils"]));
    let f = &r.findings[0];
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(
        (f.installed_version.as_str(), f.fixed_version.as_deref()),
        ("1.1.20-r4", Some("1.1.20-r5"))
    );
    assert_eq!(f.fix_state, FixState::Fixed);
    assert_eq!(f.ecosystem.as_deref(), Some("Alpine:v3.9"));
    assert_eq!(f.severity_source.as_deref(), Some("nvd"));
    assert_eq!(f.cvss_score, Some(9.8));
    assert_eq!(
        f.cvss_vector.as_deref(),
        Some("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    );
    assert_eq!(
        f.layer.as_deref(),
        Some("sha256:e7c96db7181be991f19a9fb6975cdbbd73c65f4a2681348e63a141a2192a5f10")
    );
    assert!(
        f.purl
            .as_deref()
            .unwrap()
            .starts_with("pkg:apk/alpine/musl@1.1.20-r4")
    );
}

#[test]
fn trivy_pip_poetry_and_a_real_report() {
    let r = trivy::read_report(&fixture("trivy/aquasecurity-trivy/pip.json.golden")).unwrap();
    assert_eq!(severities(&r), [Severity::Medium, Severity::High]);
    assert!(
        r.findings
            .iter()
            .all(|f| f.package == "Werkzeug" && f.ecosystem.as_deref() == Some("PyPI"))
    );
    let high = r
        .findings
        .iter()
        .find(|f| f.severity == Severity::High)
        .unwrap();
    assert_eq!(
        (high.id.as_str(), high.fixed_version.as_deref()),
        ("CVE-2019-14806", Some("0.15.3"))
    );
    assert_eq!(r.packages.len(), 7, "Packages of requirements.txt");

    let r = trivy::read_report(&fixture("trivy/aquasecurity-trivy/poetry.json.golden")).unwrap();
    assert_eq!(severities(&r), [Severity::High]);
    assert_eq!(r.findings[0].id, "CVE-2019-14806");
    assert_eq!(r.packages.len(), 3);

    // A real report: Results[0] has no Vulnerabilities key (zero findings), Results[1] two.
    let r = trivy::read_report(&fixture(
        "trivy/pab1it0-prometheus-mcp-server/trivy-results.json",
    ))
    .unwrap();
    let got: BTreeSet<(&str, &str, Severity)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.package.as_str(), f.severity))
        .collect();
    assert_eq!(
        got,
        BTreeSet::from([
            ("CVE-2025-43859", "h11", Severity::Critical),
            ("CVE-2025-47273", "setuptools", Severity::High),
        ])
    );
}

#[test]
fn trivy_refuses_sarif_sboms_other_schemas_and_truncation() {
    let sarif = fixture("trivy/aquasecurity-trivy/alpine-310.sarif.golden");
    let e = trivy::read_report(&sarif).unwrap_err().to_string();
    assert!(
        e.contains("alpine-310.sarif.golden") && e.contains("SARIF"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");

    let good = std::fs::read(fixture("trivy/aquasecurity-trivy/pip.json.golden")).unwrap();
    let e = trivy::parse_report(&good[..good.len() / 2], "half.json")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("half.json: not JSON"), "{e}");

    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["SchemaVersion"] = 1.into();
    let e = trivy::parse_report(&serde_json::to_vec(&v).unwrap(), "v1.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SchemaVersion 1") && e.contains("SchemaVersion 2"),
        "{e}"
    );

    v["SchemaVersion"] = 2.into();
    v["Results"][0]["Vulnerabilities"][0]["Severity"] = "SEVERE".into();
    let e = trivy::parse_report(&serde_json::to_vec(&v).unwrap(), "sev.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sev.json") && e.contains("\"severe\"") && e.contains("CVE-"),
        "{e}"
    );

    let e = trivy::parse_report(
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
        "bom.json",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("SBOM"), "{e}");
    let e = trivy::parse_report(b"{}", "empty.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no SchemaVersion"), "{e}");
    let e = trivy::read_report(Path::new("/nonexistent/report.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/report.json"), "{e}");
}

#[test]
fn grype_reports_with_their_counts() {
    let r =
        grype::read_report(&fixture("grype/anchore-grype/TestJsonImgsPresenter.golden")).unwrap();
    assert_eq!(severities(&r), [Severity::Low, Severity::Critical]);
    let low = r.findings.iter().find(|f| f.id == "CVE-1999-0001").unwrap();
    assert_eq!(
        (low.package.as_str(), low.installed_version.as_str()),
        ("package-1", "1.1.1")
    );
    assert_eq!(low.fix_state, FixState::Fixed);
    assert_eq!(
        low.cvss_score,
        Some(8.2),
        "the vector's score travels with the finding"
    );
    assert_eq!(
        low.effective_severity(),
        Severity::High,
        "stated Low, CVSS 8.2: the gate sees HIGH (Grype's snapshot data disagrees with itself)"
    );
    let crit = r.findings.iter().find(|f| f.id == "CVE-1999-0002").unwrap();
    assert_eq!(crit.fix_state, FixState::Unknown, "fix.state '' is unknown");
    assert_eq!(crit.fixed_version, None);

    let r =
        grype::read_report(&fixture("grype/anchore-grype/TestJsonDirsPresenter.golden")).unwrap();
    assert_eq!(severities(&r), [Severity::Low, Severity::Critical]);

    // Real grype 0.65.1 output: two ids, one underlying vulnerability.
    let r = grype::read_report(&fixture("grype/anchore-grype/ghsa-test.json")).unwrap();
    assert_eq!(r.findings.len(), 2);
    assert_eq!(r.scanner_version.as_deref(), Some("0.65.1"));
    assert!(
        r.findings
            .iter()
            .all(|f| f.severity == Severity::Medium && f.package == "httpclient")
    );
    let ghsa = r
        .findings
        .iter()
        .find(|f| f.id == "GHSA-cfh5-3ghh-wfjx")
        .unwrap();
    assert_eq!(ghsa.aliases, ["CVE-2014-3577"]);
    assert_eq!(ghsa.fixed_version.as_deref(), Some("4.3.5"));
    assert_eq!(ghsa.severity_source.as_deref(), Some("ghsa"));
    assert_eq!(ghsa.ecosystem.as_deref(), Some("Maven"));
    // Merged, they are one finding.
    let merged = wharf_scan::merge::merge(vec![r]);
    assert_eq!(merged.findings.len(), 1, "{:#?}", merged.findings);
}

#[test]
fn grype_refuses_other_formats() {
    let e = grype::read_report(&fixture("trivy/aquasecurity-trivy/pip.json.golden"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pip.json.golden") && e.contains("not a Grype JSON report"),
        "{e}"
    );
    let e = grype::parse_report(br#"{"matches": [{"vulnerability": {"id": "CVE-1", "severity": "Awful"}, "artifact": {"name": "a", "version": "1"}}]}"#, "g.json").unwrap_err().to_string();
    assert!(
        e.contains("g.json: CVE-1") && e.contains("\"awful\""),
        "{e}"
    );
    let e = grype::parse_report(b"{\"matches\": [", "cut.json")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cut.json: not JSON"), "{e}");
}

/// Every key path of a JSON value (`runs.tool.driver.rules.id`, arrays flattened).
fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                key_paths(x, &p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                key_paths(x, prefix, out);
            }
        }
        _ => {}
    }
}

#[test]
fn our_sarif_has_the_shape_github_reads_from_trivy() {
    // GitHub code scanning ingests Trivy's SARIF (fixtures/…/alpine-310.sarif.golden); ours
    // carries every key Trivy's rules and results carry, except Trivy's own extras
    // (`fullName`, `columnKind`, `uriBaseId`, rule `name` conventions).
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture("trivy/aquasecurity-trivy/alpine-310.sarif.golden")).unwrap(),
    )
    .unwrap();
    let report = trivy::read_report(&fixture(
        "trivy/aquasecurity-trivy/alpine-39-high-critical.json.golden",
    ))
    .unwrap();
    let ours = wharf_scan::output::sarif(&report, "ghcr.io/acme/model");
    let (mut theirs_keys, mut our_keys) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&golden, "", &mut theirs_keys);
    key_paths(&ours, "", &mut our_keys);
    let extras = [
        // Trivy-specific: its product name, column kind, CVSS v2 and image metadata.
        "runs.tool.driver.fullName",
        "runs.tool.driver.rules.properties.cvssv2_score",
        "runs.tool.driver.rules.properties.cvssv2_vector",
        "runs.columnKind",
        "runs.results.locations.physicalLocation.artifactLocation.uriBaseId",
        "runs.properties.imageName",
        "runs.properties.repoDigests",
        "runs.properties.repoTags",
        "runs.properties.imageID",
    ];
    let missing: Vec<&String> = theirs_keys
        .iter()
        .filter(|k| !our_keys.contains(*k) && !extras.contains(&k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "keys Trivy's SARIF has and ours lacks: {missing:?}"
    );
    assert_eq!(ours["version"], "2.1.0");
    let result = &ours["runs"][0]["results"][0];
    assert_eq!(result["level"], "error", "CRITICAL is an error");
    assert_eq!(
        ours["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["security-severity"],
        "9.8"
    );
    // Two findings of one CVE: one rule, two results.
    assert_eq!(
        ours["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(ours["runs"][0]["results"].as_array().unwrap().len(), 2);
}
