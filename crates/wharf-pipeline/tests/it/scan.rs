//! The standard pipeline's scan stage on the example project: the pushed image's layers
//! scanned offline against an OSV database, the environment's gate (dev warns, prod fails
//! on HIGH or CVSS ≥ 7), VEX and waivers from `wharf.toml`, reports on disk, results
//! attested; a scan that cannot run warns in dev and fails in prod, saying which.

use std::path::Path;

use wharf_core::{Actor, Environment, RunOutcome, Secret, StageStatus};
use wharf_pipeline::{Config, Pipeline, RunOptions};

use crate::standard::{project, refused};

async fn run(config: &Config, env: Environment) -> wharf_pipeline::RunReport {
    // One password in every environment: prod signs only with a protected key.
    let options = RunOptions::new().key_password(Secret::new("scan-test-key-password"));
    Pipeline::standard(config, env, Actor::local("u"), options)
        .await
        .unwrap()
        .builder
        .build()
        .unwrap()
        .run()
        .await
        .unwrap()
}

fn stage<'a>(report: &'a wharf_pipeline::RunReport, name: &str) -> &'a wharf_core::StageRecord {
    report
        .record
        .stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} stage: {:?}", report.record.stages))
}

/// An OSV database where numpy 1.21.0 has a HIGH (CVSS 7.5) advisory.
fn high_numpy_db(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("osv-high");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("GHSA-TEST-HIGH.json"),
        serde_json::to_vec(&serde_json::json!({
            "id": "GHSA-TEST-HIGH", "modified": "2026-11-30T00:00:00Z", "aliases": ["CVE-2099-0001"],
            "summary": "test: numpy denial of service",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
            "affected": [{"package": {"ecosystem": "PyPI", "name": "numpy"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.26.0"}]}]}],
        }))
        .unwrap(),
    )
    .unwrap();
    db
}

#[tokio::test]
async fn dev_warns_with_the_examples_findings_and_attests_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = project(dir.path());
    let report = run(&config, Environment::Dev).await;
    assert_eq!(
        report.record.outcome,
        RunOutcome::Passed,
        "{:?}",
        report.record.stages
    );
    let scan = stage(&report, "scan");
    assert_eq!(scan.status, StageStatus::Warned, "{scan:?}");
    assert!(
        scan.summary
            .starts_with("2 findings (1 CRITICAL, 1 MEDIUM) in 2 packages by osv"),
        "{}",
        scan.summary
    );
    let data = &scan.details;
    assert_eq!(data["warnings"][0]["id"], "CVE-2021-34141");
    assert_eq!(data["suppressed"][0]["id"], "CVE-2022-21797");
    assert!(
        data["suppressed"][0]["by"]
            .as_str()
            .unwrap()
            .contains("VEX not_affected (vulnerable_code_not_in_execute_path)")
    );
    // Reports on disk, pinned as evidence.
    let digest = report.record.image_digest.as_ref().unwrap();
    let reports = dir.path().join("scan").join(digest.hex());
    for (file, kind) in [
        ("report.json", "scan-report"),
        ("report.sarif", "sarif"),
        ("sbom.cdx.json", "sbom"),
    ] {
        let bytes = std::fs::read(reports.join(file)).unwrap();
        let ev = scan.evidence.iter().find(|e| e.kind == kind).unwrap();
        assert_eq!(ev.digest, wharf_core::Digest::sha256_of(&bytes), "{file}");
    }
    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 2);
    // The attest stage attested the scan results and the SBOM.
    let attest = stage(&report, "attest");
    assert!(
        attest.summary.contains("CycloneDX SBOM + scan results"),
        "{}",
        attest.summary
    );
    // A second scan of the same image keeps each finding's first-seen time.
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.json")).unwrap()).unwrap();
    let again = run(&config, Environment::Dev).await;
    assert_eq!(again.record.image_digest.as_ref(), Some(digest));
    let second: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        first["report"]["findings"][0]["first_seen"],
        second["report"]["findings"][0]["first_seen"]
    );
}

#[tokio::test]
async fn prod_blocks_on_high_and_waivers_let_it_through_until_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = project(dir.path());
    config.scan.osv_db = Some(high_numpy_db(dir.path()));
    let report = run(&config, Environment::Prod).await;
    assert_eq!(
        report.record.outcome,
        RunOutcome::Blocked,
        "{:?}",
        report.record.stages
    );
    let scan = stage(&report, "scan");
    assert_eq!(scan.status, StageStatus::Blocked);
    assert!(
        scan.summary
            .contains("1 finding block (fail on HIGH or CVSS ≥ 7.0"),
        "{}",
        scan.summary
    );
    assert_eq!(scan.details["blocking"][0]["id"], "CVE-2099-0001");
    assert!(
        report
            .record
            .stages
            .iter()
            .all(|s| s.name != "deploy" || s.status == StageStatus::Skipped)
    );

    // The same image in dev: a warning.
    let dev = run(&config, Environment::Dev).await;
    assert_eq!(stage(&dev, "scan").status, StageStatus::Warned);

    // A waiver with an owner and an expiry lets prod through; an expired one does not.
    let waivers = dir.path().join("waivers.toml");
    for (expires, outcome) in [
        ("2999-01-01", RunOutcome::Passed),
        ("2020-01-01", RunOutcome::Blocked),
    ] {
        std::fs::write(&waivers, format!("[[waiver]]\nid = \"GHSA-TEST-HIGH\"\npackage = \"numpy\"\nreason = \"the model server never parses untrusted arrays\"\nowner = \"risk-ml@acme.example\"\nexpires = {expires}\n")).unwrap();
        config.scan.waivers = Some(waivers.clone());
        let r = run(&config, Environment::Prod).await;
        assert_eq!(
            r.record.outcome,
            outcome,
            "{expires}: {:?}",
            stage(&r, "scan")
        );
        if outcome == RunOutcome::Blocked {
            assert_eq!(
                stage(&r, "scan").details["expired_waivers"][0],
                "waiver for GHSA-TEST-HIGH (numpy) by risk-ml@acme.example expired on 2020-01-01: it no longer suppresses"
            );
        }
    }
}

#[tokio::test]
async fn a_scan_that_cannot_run_warns_in_dev_and_fails_in_prod() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = project(dir.path());
    config.scan.osv_db = Some(dir.path().join("no-such-db"));
    let dev = run(&config, Environment::Dev).await;
    assert_eq!(dev.record.outcome, RunOutcome::Passed);
    let scan = stage(&dev, "scan");
    assert_eq!(scan.status, StageStatus::Warned);
    assert!(
        scan.summary.contains("no scan result") && scan.summary.contains("warning only"),
        "{}",
        scan.summary
    );
    let err = scan.details["errors"][0].as_str().unwrap();
    assert!(
        err.starts_with("osv: OSV database") && err.contains("no-such-db"),
        "{err}"
    );

    let prod = run(&config, Environment::Prod).await;
    assert_eq!(prod.record.outcome, RunOutcome::Failed);
    let scan = stage(&prod, "scan");
    assert_eq!(scan.status, StageStatus::Failed);
    assert!(
        scan.summary
            .contains("the gate cannot pass an image nobody scanned"),
        "{}",
        scan.summary
    );

    // A missing scanner binary beside a working scanner: the run says which could not run.
    let mut config = project(dir.path());
    config.scan.scanners = Some(vec!["osv".into(), "trivy".into()]);
    config.scan.trivy = Some(dir.path().join("no-trivy"));
    let dev = run(&config, Environment::Dev).await;
    let scan = stage(&dev, "scan");
    assert_eq!(scan.status, StageStatus::Warned);
    assert!(
        scan.summary.ends_with("1 scanner(s) could not run"),
        "{}",
        scan.summary
    );
    assert!(
        scan.details["errors"][0]
            .as_str()
            .unwrap()
            .contains("no-trivy not found")
    );
    let prod = run(&config, Environment::Prod).await;
    assert_eq!(stage(&prod, "scan").status, StageStatus::Failed);
}

#[tokio::test]
async fn bad_scan_settings_refuse_the_run_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = project(dir.path());
    config.scan.vex = vec![dir.path().join("missing.vex.json")];
    let e = refused(&config).await;
    assert!(
        e.contains("[scan] vex") && e.contains("missing.vex.json"),
        "{e}"
    );
    let mut config = project(dir.path());
    let w = dir.path().join("w.toml");
    std::fs::write(
        &w,
        "[[waiver]]\nid = \"CVE-1\"\nowner = \"x\"\nexpires = 2027-01-01\n",
    )
    .unwrap();
    config.scan.waivers = Some(w);
    let e = refused(&config).await;
    assert!(e.contains("[scan] waivers") && e.contains("reason"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[tokio::test]
async fn trivy_beside_the_osv_matcher_merges_into_one_report() {
    let var = |n: &str| {
        std::env::var(n).unwrap_or_else(|_| {
            panic!("{n} is not set: run the tests with `cargo xtask test`, or `eval \"$(cargo xtask backends env)\"` first")
        })
    };
    let dir = tempfile::tempdir().unwrap();
    // A Trivy database (written by Trivy's own DB module) with numpy's advisory.
    let spec = dir.path().join("spec.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&serde_json::json!({
            "updated_at": "2026-11-01T00:00:00Z",
            "lang": [{"ecosystem": "pip", "package": "numpy", "id": "CVE-2021-34141", "vulnerable": ["<1.22"], "patched": ["1.22"]}],
            "vulnerabilities": [{"id": "CVE-2021-34141", "severity": "MEDIUM"}],
        }))
        .unwrap(),
    )
    .unwrap();
    let cache = dir.path().join("trivy-cache");
    let out = std::process::Command::new(var("WHARF_TEST_TRIVYDB_FIXTURE"))
        .arg(&spec)
        .arg(&cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut config = project(dir.path());
    config.scan.scanners = Some(vec!["osv".into(), "trivy".into()]);
    config.scan.trivy = Some(var("WHARF_TEST_TRIVY").into());
    config.scan.trivy_cache_dir = Some(cache);
    config.scan.offline = Some(true);
    // Twice: the second scan finds the layout holding the first run's signature and
    // attestations too, and Trivy must still read the image by its digest.
    for _ in 0..2 {
        let report = run(&config, Environment::Dev).await;
        let scan = stage(&report, "scan");
        assert_eq!(scan.status, StageStatus::Warned, "{scan:?}");
        assert_eq!(scan.details["scanner"], "osv+trivy", "{scan:?}");
        assert!(
            scan.summary
                .starts_with("2 findings (1 CRITICAL, 1 MEDIUM)"),
            "numpy's finding from both scanners is one: {}",
            scan.summary
        );
        assert_eq!(scan.details["errors"], serde_json::json!([]));
    }
}
