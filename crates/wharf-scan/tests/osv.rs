//! The OSV matcher on real OSV records (fixtures/PROVENANCE.md): ranges per ecosystem,
//! several intervals, explicit versions, withdrawn records, records without `affected` or
//! without `introduced`, unsorted events, invalid versions, and databases that are ZIPs,
//! missing or empty.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::path::{Path, PathBuf};

use wharf_core::{FixState, Package, Severity};
use wharf_scan::OsvDatabase;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv")
}

fn db() -> OsvDatabase {
    OsvDatabase::open(&fixtures()).unwrap()
}

fn ids(db: &OsvDatabase, p: Package) -> Vec<String> {
    let (found, _) = db.match_packages(&[p]);
    let mut ids: Vec<String> = found.into_iter().map(|f| f.id).collect();
    ids.sort();
    ids
}

#[test]
fn loads_every_record_and_reports_the_broken_range() {
    let db = db();
    assert_eq!(db.len(), 8);
    // nointroduced-CVE-2023-41045 fails the schema (RNG:001); its GIT range is not used for
    // packages anyway, so nothing is reported for it; no ECOSYSTEM range lacks introduced.
    assert!(db.problems().is_empty(), "{:?}", db.problems());
}

#[test]
fn debian_source_package_and_release() {
    let db = db();
    let nginx = |v: &str, eco: &str| Package::new("nginx", v, eco);
    assert_eq!(
        ids(&db, nginx("1.2.1-2.2+wheezy2", "Debian:7")),
        ["CVE-2014-3616"]
    );
    assert!(
        ids(&db, nginx("1.2.1-2.2+wheezy3", "Debian:7")).is_empty(),
        "fixed"
    );
    assert!(
        ids(&db, nginx("1.2.1-2.2+wheezy2", "Debian:8")).is_empty(),
        "another release"
    );
    // A binary package built from nginx matches by its source.
    let mut full = Package::new("nginx-full", "1.2.1-2.2+wheezy1", "Debian:7");
    full.source = Some("nginx".into());
    let (found, _) = db.match_packages(&[full]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].package, "nginx-full");
    assert_eq!(found[0].aliases, ["DSA-3029-1"]);
    assert_eq!(found[0].fixed_version.as_deref(), Some("1.2.1-2.2+wheezy3"));
}

#[test]
fn pypi_two_affected_entries_and_normalized_names() {
    let db = db();
    let c = |v: &str| ids(&db, Package::new("Cryptography", v, "PyPI"));
    assert_eq!(c("3.1"), ["CVE-2020-36242"]);
    assert_eq!(c("3.1.1"), ["CVE-2020-36242"]);
    assert!(c("3.1.2").is_empty());
    assert_eq!(c("3.3.1"), ["CVE-2020-36242"]);
    assert!(c("3.3.2").is_empty());
    assert!(c("3.0").is_empty());
    assert_eq!(
        c("3.2rc1"),
        Vec::<String>::new(),
        "3.2rc1 < 3.2: before the second interval"
    );
}

#[test]
fn requests_pysec_and_its_ranges() {
    let db = db();
    let (found, notes) = db.match_packages(&[Package::new("requests", "2.28.0", "PyPI")]);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(found.len(), 1);
    let f = &found[0];
    assert_eq!(f.id, "CVE-2023-32681", "the CVE names the group");
    assert_eq!(f.aliases, ["GHSA-j8r2-6x86-q33q", "PYSEC-2023-74"]);
    assert_eq!(
        (f.fixed_version.as_deref(), f.fix_state),
        (Some("2.31.0"), FixState::Fixed)
    );
    assert!(
        ids(&db, Package::new("requests", "2.2.1", "PyPI")).is_empty(),
        "before introduced"
    );
    assert!(ids(&db, Package::new("requests", "2.31.0", "PyPI")).is_empty());
}

#[test]
fn go_semver_with_two_intervals() {
    let db = db();
    let s = |v: &str| ids(&db, Package::new("stdlib", v, "Go"));
    assert_eq!(s("1.21.11"), ["CVE-2024-24791"]);
    assert!(s("1.21.12").is_empty());
    assert_eq!(s("1.22.4"), ["CVE-2024-24791"]);
    assert!(s("1.22.5").is_empty());
    assert_eq!(
        ids(&db, Package::new("github.com/gin-gonic/gin", "1.5.0", "Go")),
        ["CVE-2020-36567"]
    );
}

#[test]
fn a_record_without_affected_matches_nothing() {
    let mut db = OsvDatabase::default();
    let rhsa = std::fs::read(fixtures().join("ossf-osv-schema/RHSA-2022_0216.json")).unwrap();
    db.add_json(&rhsa, "RHSA-2022_0216.json").unwrap();
    assert_eq!(db.len(), 1);
    assert!(
        db.match_packages(&[Package::new("anything", "1", "PyPI")])
            .0
            .is_empty()
    );
}

fn record(json: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json).unwrap()
}

#[test]
fn unsorted_events_withdrawn_last_affected_limit_and_invalid_versions() {
    let mut db = OsvDatabase::default();
    // Events out of order: the schema says evaluate them sorted.
    db.add_json(&record(serde_json::json!({
        "id": "TEST-UNSORTED", "modified": "2026-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"},
            "ranges": [{"type": "ECOSYSTEM", "events": [
                {"fixed": "2.0"}, {"introduced": "1.5"}, {"fixed": "1.2"}, {"introduced": "1.0"}]}]}],
    })), "unsorted").unwrap();
    db.add_json(&record(serde_json::json!({
        "id": "TEST-WITHDRAWN", "modified": "2026-01-01T00:00:00Z", "withdrawn": "2026-02-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}],
    })), "withdrawn").unwrap();
    db.add_json(&record(serde_json::json!({
        "id": "TEST-LAST", "modified": "2026-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "busybox"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.36.1-r15"}]}]}],
    })), "last").unwrap();
    db.add_json(&record(serde_json::json!({
        "id": "TEST-LIMIT", "modified": "2026-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"limit": "1.3.0"}]}]}],
    })), "limit").unwrap();
    db.add_json(&record(serde_json::json!({
        "id": "TEST-INVALID", "modified": "2026-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "not a version!"}]}],
            "versions": ["1.9"]}],
    })), "invalid").unwrap();
    assert_eq!(db.problems().len(), 1);
    assert!(
        db.problems()[0].contains("TEST-INVALID")
            && db.problems()[0].contains("\"not a version!\" is not a PEP 440 version"),
        "{:?}",
        db.problems()
    );

    let demo = |v: &str| ids(&db, Package::new("demo", v, "PyPI"));
    assert_eq!(demo("1.1"), ["TEST-UNSORTED"]);
    assert!(demo("1.3").is_empty(), "between the intervals");
    assert_eq!(
        demo("1.9"),
        ["TEST-INVALID", "TEST-UNSORTED"],
        "the invalid range is unused; its versions list still counts"
    );
    assert!(demo("2.0").is_empty(), "withdrawn never matches");

    let bb = |v: &str| ids(&db, Package::new("busybox", v, "Alpine:v3.19"));
    assert_eq!(bb("1.36.1-r15"), ["TEST-LAST"]);
    assert!(bb("1.36.1-r16").is_empty());
    let (found, _) = db.match_packages(&[Package::new("busybox", "1.36.1-r1", "Alpine:v3.19")]);
    assert_eq!(found[0].fix_state, FixState::NotFixed);
    assert_eq!(found[0].severity, Severity::Unknown);

    let lp = |v: &str| ids(&db, Package::new("left-pad", v, "npm"));
    assert_eq!(lp("1.2.9"), ["TEST-LIMIT"]);
    assert!(lp("1.3.0").is_empty());

    // An installed version its ecosystem cannot parse: a note, never a silent pass.
    let (found, notes) = db.match_packages(&[Package::new("demo", "bogus", "PyPI")]);
    assert!(found.is_empty());
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].contains("demo bogus") && notes[0].contains("not PEP 440"),
        "{notes:?}"
    );
}

#[test]
fn ghsa_severity_comes_from_its_vector() {
    let mut db = OsvDatabase::default();
    db.add_json(&record(serde_json::json!({
        "id": "GHSA-j8r2-6x86-q33q", "modified": "2023-09-20T19:19:30Z", "aliases": ["CVE-2023-32681"],
        "summary": "Unintended leak of Proxy-Authorization header in requests",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"}],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}]}]}],
        "database_specific": {"severity": "MODERATE"},
    })), "ghsa").unwrap();
    let (found, _) = db.match_packages(&[Package::new("requests", "2.28.0", "PyPI")]);
    let f = &found[0];
    assert_eq!(
        (f.severity, f.severity_source.as_deref(), f.cvss_score),
        (Severity::Medium, Some("ghsa"), Some(6.1))
    );
    assert_eq!(
        f.title.as_deref(),
        Some("Unintended leak of Proxy-Authorization header in requests")
    );
}

#[test]
fn zip_exports_missing_and_empty_databases() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in [
        "ossf-osv-schema/PYSEC-2023-74.json",
        "google-osv.dev/DSA-3029-1.json",
    ] {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        files.push((name.rsplit('/').next().unwrap().to_owned(), bytes));
    }
    let zip = dir.path().join("all.zip");
    wharf_scan::write_zip(&zip, &files).unwrap();
    let db = OsvDatabase::open(&zip).unwrap();
    assert_eq!(db.len(), 2);
    assert_eq!(
        ids(&db, Package::new("requests", "2.30.0", "PyPI")),
        ["CVE-2023-32681"]
    );

    // A ZIP made by another tool (Python's zipfile, as OSV's exports are made by Go's).
    let py = dir.path().join("py.zip");
    let status = std::process::Command::new("python3")
        .args(["-c", "import sys,zipfile\nz=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED)\nz.write(sys.argv[2],'PYSEC-2023-74.json')\nz.close()"])
        .arg(&py)
        .arg(fixtures().join("ossf-osv-schema/PYSEC-2023-74.json"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(OsvDatabase::open(&py).unwrap().len(), 1);

    let e = OsvDatabase::open(&dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("OSV database") && e.contains("nope") && e.contains("all.zip"),
        "{e}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = OsvDatabase::open(&empty).unwrap_err().to_string();
    assert!(
        e.contains("holds no advisories") && e.contains("would pass every image"),
        "{e}"
    );
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("X-1.json"),
        b"{\"id\": \"X-1\", \"affected\": [",
    )
    .unwrap();
    let e = OsvDatabase::open(&broken).unwrap_err().to_string();
    assert!(
        e.contains("X-1.json") && e.contains("not an OSV record"),
        "{e}"
    );
    std::fs::write(&zip, b"PK\x03\x04 truncated").unwrap();
    let e = OsvDatabase::open(&zip).unwrap_err().to_string();
    assert!(
        e.contains("all.zip") && e.contains("not a readable ZIP"),
        "{e}"
    );
}
