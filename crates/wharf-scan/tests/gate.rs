//! The gate: thresholds, only-fixed, whose severity wins, OpenVEX documents written by
//! others (fixtures/PROVENANCE.md), waivers that expire and go stale; every decision names
//! what blocked and why, what was suppressed and by what.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::path::{Path, PathBuf};

use time::macros::date;
use wharf_core::{Digest, Finding, FixState, Rating, ScanGate, ScanReport, Severity};
use wharf_scan::gate::{Gate, GatePolicy, Waiver, read_waivers};
use wharf_scan::vex::{self, Subject};

fn vex_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vex")
        .join(rel)
}

fn digest(hex: &str) -> Digest {
    format!("sha256:{hex}").parse().unwrap()
}

fn subject(name: &str) -> Subject {
    Subject {
        digest: digest(&"a".repeat(64)),
        name: Some(name.into()),
    }
}

fn finding(id: &str, pkg: &str, purl: &str, sev: Severity) -> Finding {
    let mut f = Finding::new(id, pkg, "1.0", sev);
    f.purl = Some(purl.into());
    f
}

#[test]
fn prod_policy_fails_on_high_or_cvss_7_and_names_why() {
    let policy = GatePolicy::from_scan_gate(&ScanGate::fail_on(Severity::High));
    assert_eq!(
        policy.describe(),
        "fail on HIGH or CVSS ≥ 7.0, severity as each scanner chose"
    );
    let mut unknown_but_scored = finding("CVE-3", "c", "pkg:pypi/c@1.0", Severity::Unknown);
    unknown_but_scored.cvss_score = Some(7.5);
    let mut report = ScanReport::new(
        "osv",
        vec![
            finding("CVE-1", "a", "pkg:pypi/a@1.0", Severity::Critical),
            finding("CVE-2", "b", "pkg:pypi/b@1.0", Severity::Medium),
            unknown_but_scored,
        ],
    );
    let d = Gate::new(policy).evaluate(&mut report, &subject("m"), date!(2026 - 12 - 06));
    assert!(!d.passed);
    let why: Vec<(&str, &str)> = d
        .blocking
        .iter()
        .map(|b| (b.finding.id.as_str(), b.reason.as_str()))
        .collect();
    assert_eq!(
        why,
        [("CVE-1", "CRITICAL ≥ HIGH"), ("CVE-3", "HIGH ≥ HIGH")]
    );
    assert_eq!(d.below_threshold, 1);
    assert!(
        d.summary()
            .starts_with("2 findings block (fail on HIGH or CVSS ≥ 7.0"),
        "{}",
        d.summary()
    );

    // Dev: the same findings warn, the run goes on.
    let d = Gate::new(GatePolicy::from_scan_gate(&ScanGate::warn_only())).evaluate(
        &mut report,
        &subject("m"),
        date!(2026 - 12 - 06),
    );
    assert!(d.passed);
    assert_eq!(d.warnings.len(), 2);
    assert!(d.blocking.is_empty());
    // Where every finding counts, the reason is the severity and whose it is.
    let mut every = ScanReport::new(
        "osv",
        vec![finding("CVE-9", "z", "pkg:pypi/z@1.0", Severity::Low)],
    );
    let d = Gate::new(GatePolicy::warn(Severity::Unknown)).evaluate(
        &mut every,
        &subject("m"),
        date!(2026 - 12 - 06),
    );
    assert_eq!(d.warnings[0].reason, "LOW");
    assert_eq!(
        d.policy,
        "warn on any finding, severity as each scanner chose"
    );
}

#[test]
fn cvss_threshold_only_fixed_and_severity_source() {
    let mut a = finding("CVE-A", "a", "pkg:pypi/a@1.0", Severity::Medium);
    a.ratings = vec![
        Rating::new("ghsa", Severity::Medium).with_cvss(Some(6.1), None),
        Rating::new("nvd", Severity::High).with_cvss(Some(7.4), None),
    ];
    a.fix_state = FixState::NotFixed;
    let mut b = finding("CVE-B", "b", "pkg:pypi/b@1.0", Severity::Low);
    b.cvss_score = Some(8.1);
    b.fix_state = FixState::Fixed;
    let base = ScanReport::new("osv", vec![a, b]);

    let cvss_only = GatePolicy::fail(Severity::Critical).with_cvss(8.0);
    let mut r = base.clone();
    let d = Gate::new(cvss_only).evaluate(&mut r, &subject("m"), date!(2026 - 12 - 06));
    assert_eq!(d.blocking.len(), 1);
    assert_eq!(d.blocking[0].reason, "CVSS 8.1 ≥ 8.0");

    let nvd_first = GatePolicy::fail(Severity::High).with_severity_sources(vec!["nvd".into()]);
    let mut r = base.clone();
    let d = Gate::new(nvd_first.clone()).evaluate(&mut r, &subject("m"), date!(2026 - 12 - 06));
    let blocked: Vec<&str> = d.blocking.iter().map(|b| b.reason.as_str()).collect();
    assert_eq!(
        blocked,
        ["HIGH (nvd) ≥ HIGH", "HIGH ≥ HIGH"],
        "CVE-A by NVD's rating, CVE-B by its score"
    );
    let ghsa_first =
        GatePolicy::fail(Severity::High).with_severity_sources(vec!["ghsa".into(), "nvd".into()]);
    let mut r = base.clone();
    let d = Gate::new(ghsa_first).evaluate(&mut r, &subject("m"), date!(2026 - 12 - 06));
    assert_eq!(
        d.blocking.len(),
        1,
        "GHSA rates CVE-A MEDIUM (6.1): it passes"
    );
    assert!(d.policy.contains("severity from ghsa, nvd"));

    let mut r = base.clone();
    let d = Gate::new(nvd_first.with_only_fixed(true)).evaluate(
        &mut r,
        &subject("m"),
        date!(2026 - 12 - 06),
    );
    assert_eq!(d.blocking.len(), 1);
    assert_eq!(d.blocking[0].finding.id, "CVE-B", "CVE-A has no fix");
}

#[test]
fn trivys_openvex_suppresses_bash_in_a_debian_image() {
    let statements = vex::read(&vex_fixture("aquasecurity-trivy/openvex-oci.json")).unwrap();
    let bash = finding(
        "CVE-2022-3715",
        "bash",
        "pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64&distro=debian-12",
        Severity::High,
    );
    let other = finding(
        "CVE-2022-3715",
        "bash-static",
        "pkg:deb/debian/bash-static@5.2.15-2+b2",
        Severity::High,
    );
    let gate = Gate::new(GatePolicy::fail(Severity::High)).with_vex(statements);
    let mut r = ScanReport::new("trivy", vec![bash.clone(), other]);
    let d = gate.evaluate(&mut r, &subject("debian"), date!(2026 - 12 - 06));
    assert_eq!(d.suppressed.len(), 1);
    assert_eq!(d.suppressed[0].finding.package, "bash");
    assert!(
        d.suppressed[0]
            .by
            .starts_with("VEX not_affected (vulnerable_code_not_in_execute_path) in "),
        "{}",
        d.suppressed[0].by
    );
    assert_eq!(
        d.blocking.len(),
        1,
        "bash-static is not a listed subcomponent"
    );
    // Another image is not the VEX's product.
    let mut r = ScanReport::new("trivy", vec![bash]);
    let d = gate.evaluate(&mut r, &subject("ubuntu"), date!(2026 - 12 - 06));
    assert!(d.suppressed.is_empty());
}

#[test]
fn openvex_v020_by_digest_and_legacy_v001() {
    let statements = vex::read(&vex_fixture("openvex-go-vex/v0.2.0.json")).unwrap();
    assert_eq!(statements.len(), 5);
    let image = Subject {
        digest: digest("124c7d2707904eea7431fffe91522a01e5a861a624ee31d03372cc1d138a3126"),
        name: None,
    };
    let gate = Gate::new(GatePolicy::fail(Severity::Low)).with_vex(statements);
    let ids = [
        "CVE-2023-1255",
        "CVE-2023-2650",
        "CVE-2023-2975",
        "CVE-2023-3446",
        "CVE-2023-3817",
        "CVE-2099-0001",
    ];
    let findings = ids
        .iter()
        .map(|id| {
            finding(
                id,
                "libssl3",
                "pkg:apk/alpine/libssl3@3.0.8-r3?arch=x86_64",
                Severity::High,
            )
        })
        .collect();
    let mut r = ScanReport::new("osv", findings);
    let d = gate.evaluate(&mut r, &image, date!(2026 - 12 - 06));
    assert_eq!(d.suppressed.len(), 5, "3 fixed + 2 not_affected");
    assert_eq!(d.blocking.len(), 1);
    assert_eq!(d.blocking[0].finding.id, "CVE-2099-0001");
    // The same image under another digest is another product.
    let mut r2 = ScanReport::new(
        "osv",
        vec![finding(
            "CVE-2023-3446",
            "libssl3",
            "pkg:apk/alpine/libssl3@3.0.8-r3",
            Severity::High,
        )],
    );
    let d = gate.evaluate(&mut r2, &subject("alpine"), date!(2026 - 12 - 06));
    assert!(d.suppressed.is_empty());

    // v0.0.1: vulnerability and products as strings; go-vex's Parse refuses it, we read it.
    let legacy = vex::read(&vex_fixture("openvex-go-vex/v0.0.1.json")).unwrap();
    assert_eq!(legacy.len(), 1);
    let gate = Gate::new(GatePolicy::fail(Severity::Low)).with_vex(legacy);
    let mut r = ScanReport::new(
        "osv",
        vec![finding(
            "CVE-2023-12345",
            "git",
            "pkg:apk/wolfi/git@2.39.0-r1",
            Severity::High,
        )],
    );
    assert_eq!(
        gate.evaluate(&mut r, &subject("x"), date!(2026 - 12 - 06))
            .suppressed
            .len(),
        1
    );
}

#[test]
fn the_latest_statement_wins() {
    let mut both = vex::read(&vex_fixture("openvex-go-vex/v001-2.vex.json")).unwrap();
    both.extend(vex::read(&vex_fixture("openvex-go-vex/v001-1.vex.json")).unwrap());
    let f = finding(
        "CVE-1234-5678",
        "bash",
        "pkg:apk/wolfi/bash@1.0.0",
        Severity::High,
    );
    let s = vex::decide(&both, &f, &subject("x")).unwrap();
    assert_eq!(
        s.status,
        vex::Status::Fixed,
        "20:56 fixed is later than 16:36 under_investigation"
    );
    let gate = Gate::new(GatePolicy::fail(Severity::High)).with_vex(vec![both[1].clone()]);
    let mut r = ScanReport::new("osv", vec![f]);
    assert_eq!(
        gate.evaluate(&mut r, &subject("x"), date!(2026 - 12 - 06))
            .blocking
            .len(),
        1,
        "under_investigation does not suppress"
    );
}

#[test]
fn bad_vex_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.vex.json");
    std::fs::write(
        &p,
        br#"{"@context": "https://example.com/not-vex", "statements": []}"#,
    )
    .unwrap();
    let e = vex::read(&p).unwrap_err().to_string();
    assert!(
        e.contains("bad.vex.json") && e.contains("not OpenVEX"),
        "{e}"
    );
    std::fs::write(&p, br#"{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"vulnerability": {"name": "CVE-1"}, "products": [], "status": "maybe"}]}"#).unwrap();
    let e = vex::read(&p).unwrap_err().to_string();
    assert!(e.contains("bad.vex.json") && !e.contains('\n'), "{e}");
}

#[test]
fn waivers_suppress_until_they_expire_and_go_stale() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("waivers.toml");
    std::fs::write(
        &file,
        r#"
[[waiver]]
id = "GHSA-j8r2-6x86-q33q"
package = "requests"
reason = "proxies are not used by the model server"
owner = "alice@example.com"
expires = 2027-03-31

[[waiver]]
id = "CVE-2021-41495"
reason = "numpy.sort is never called on untrusted input"
owner = "bob@example.com"
expires = 2026-11-30

[[waiver]]
id = "CVE-2000-0001"
reason = "old"
owner = "carol@example.com"
expires = 2030-01-01
"#,
    )
    .unwrap();
    let waivers = read_waivers(&file).unwrap();
    let mut requests = finding(
        "CVE-2023-32681",
        "requests",
        "pkg:pypi/requests@2.28.0",
        Severity::High,
    );
    requests.aliases = vec!["GHSA-j8r2-6x86-q33q".into()];
    let numpy = finding(
        "CVE-2021-41495",
        "numpy",
        "pkg:pypi/numpy@1.21.0",
        Severity::High,
    );
    let gate = Gate::new(GatePolicy::fail(Severity::High))
        .with_waivers(waivers)
        .unwrap();
    let mut r = ScanReport::new("osv", vec![requests, numpy]);
    let d = gate.evaluate(&mut r, &subject("m"), date!(2026 - 12 - 06));
    assert_eq!(d.suppressed.len(), 1);
    assert_eq!(
        d.suppressed[0].by,
        "waiver by alice@example.com until 2027-03-31: proxies are not used by the model server"
    );
    assert_eq!(d.blocking.len(), 1, "the expired waiver stops suppressing");
    assert_eq!(
        d.expired_waivers,
        [
            "waiver for CVE-2021-41495 (numpy) by bob@example.com expired on 2026-11-30: it no longer suppresses"
        ]
    );
    assert_eq!(
        d.stale_waivers,
        ["waiver for CVE-2000-0001 by carol@example.com matches no finding: remove it"]
    );
    assert!(
        d.summary().contains("1 expired waiver; 1 stale waiver"),
        "{}",
        d.summary()
    );
    // On its last day a waiver still holds.
    let mut r = ScanReport::new(
        "osv",
        vec![finding(
            "CVE-2021-41495",
            "numpy",
            "pkg:pypi/numpy@1.21.0",
            Severity::High,
        )],
    );
    assert!(
        gate.evaluate(&mut r, &subject("m"), date!(2026 - 11 - 30))
            .passed
    );

    std::fs::write(
        &file,
        "[[waiver]]\nid = \"CVE-1\"\nreason = \"\"\nowner = \"x\"\nexpires = 2027-01-01\n",
    )
    .unwrap();
    let e = read_waivers(&file).unwrap_err().to_string();
    assert!(
        e.contains("waivers.toml") && e.contains("empty `reason`"),
        "{e}"
    );
    std::fs::write(
        &file,
        "[[waiver]]\nid = \"CVE-1\"\nreason = \"r\"\nowner = \"x\"\n",
    )
    .unwrap();
    let e = read_waivers(&file).unwrap_err().to_string();
    assert!(e.contains("waivers.toml") && e.contains("expires"), "{e}");
    let _ = Waiver::new("CVE-1", "r", "o", date!(2027 - 01 - 01)).for_package("p");
}
