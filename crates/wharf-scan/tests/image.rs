//! The embedded scanner on a real image layout: packages read from gzip and plain tar
//! layers as they stream, whiteouts honoured, matched offline; the inventory set beside
//! Trivy's own SBOM of the same layout (the real binary from the harness), and Trivy's and
//! Grype's runners failing in one line when their binary is missing, hangs or fails.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wharf_core::scan::ScanOptions;
use wharf_core::{Digest, ScanTarget, Scanner, Severity};
use wharf_scan::OsvScanner;
use wharf_scan::trivy::TrivyScanner;

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

const DPKG_STATUS: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 12986\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library: Shared libraries\n Contains the standard libraries.\n\nPackage: zlib1g\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 168\nMaintainer: Mark Brown <broonie@debian.org>\nArchitecture: amd64\nMulti-Arch: same\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\nDescription: compression library - runtime\n\nPackage: nginx\nStatus: install ok installed\nPriority: optional\nSection: httpd\nInstalled-Size: 1200\nMaintainer: Debian Nginx Maintainers <pkg-nginx-maintainers@alioth-lists.debian.net>\nArchitecture: amd64\nVersion: 1.22.1-9\nDescription: small, powerful, scalable web/proxy server\n";

fn metadata(name: &str, version: &str) -> String {
    format!(
        "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test\n\nLong description: Version: 0.0.0 must not be read\n"
    )
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn put_blob(layout: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256_of(bytes);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    d
}

/// A three-layer Debian 12 image with Python packages and a model's requirements.
fn image(layout: &Path) -> Digest {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let six = metadata("six", "1.16.0");
    let base = gzip(&tar_of(&[
        ("etc/os-release", OS_RELEASE.as_bytes()),
        ("etc/debian_version", b"12.5\n"),
        ("var/lib/dpkg/status", DPKG_STATUS.as_bytes()),
        (
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
            six.as_bytes(),
        ),
        (
            "usr/lib/python3/dist-packages/chardet-5.1.0.dist-info/METADATA",
            metadata("chardet", "5.1.0").as_bytes(),
        ),
    ]));
    let numpy = metadata("numpy", "1.21.0");
    let requests = metadata("requests", "2.28.0");
    // Plain tar; deletes six from the layer below.
    let app = tar_of(&[
        (
            "usr/local/lib/python3.11/site-packages/numpy-1.21.0.dist-info/METADATA",
            numpy.as_bytes(),
        ),
        (
            "usr/local/lib/python3.11/site-packages/requests-2.28.0.dist-info/METADATA",
            requests.as_bytes(),
        ),
        (
            "usr/lib/python3/dist-packages/.wh.six-1.16.0.dist-info",
            b"",
        ),
    ]);
    let model = gzip(&tar_of(&[
        (
            "models/fraud-detector/requirements.txt",
            b"joblib==1.1.0\nscikit-learn>=1.0\n",
        ),
        ("models/fraud-detector/model.safetensors", &[0u8; 4096]),
    ]));
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    let cfg = put_blob(layout, config);
    let layers: Vec<serde_json::Value> = [
        (base, "application/vnd.oci.image.layer.v1.tar+gzip"),
        (app, "application/vnd.oci.image.layer.v1.tar"),
        (model, "application/vnd.oci.image.layer.v1.tar+gzip"),
    ]
    .iter()
    .map(|(bytes, mt)| {
        let d = put_blob(layout, bytes);
        serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": bytes.len()})
    })
    .collect();
    // diff_ids: the uncompressed layers' digests, as a runtime (and Trivy) checks.
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": config.len()},
        "layers": layers,
    });
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let md = put_blob(layout, &mbytes);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": mbytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "test"}}],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    md
}

fn with_diff_ids(layout: &Path, manifest: &Digest) -> Digest {
    // Rewrite the config with the real diff_ids so Trivy accepts the image.
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(manifest.hex())).unwrap(),
    )
    .unwrap();
    let mut diff_ids = Vec::new();
    for l in m["layers"].as_array().unwrap() {
        let d: Digest = l["digest"].as_str().unwrap().parse().unwrap();
        let bytes = std::fs::read(layout.join("blobs/sha256").join(d.hex())).unwrap();
        let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .unwrap();
            out
        } else {
            bytes
        };
        diff_ids.push(Digest::sha256_of(&raw).to_string());
    }
    let config = serde_json::to_vec(&serde_json::json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":diff_ids},"config":{}})).unwrap();
    let cfg = put_blob(layout, &config);
    let mut m = m;
    m["config"]["digest"] = cfg.to_string().into();
    m["config"]["size"] = config.len().into();
    let mbytes = serde_json::to_vec(&m).unwrap();
    let md = put_blob(layout, &mbytes);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": mbytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "test"}}]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    md
}

fn osv_db(dir: &Path) -> PathBuf {
    let db = dir.join("osv");
    std::fs::create_dir_all(&db).unwrap();
    let rec = |id: &str, eco: &str, name: &str, events: serde_json::Value, sev: Option<&str>| {
        let mut r = serde_json::json!({"id": id, "modified": "2026-11-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": eco, "name": name}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}]});
        if let Some(v) = sev {
            r["severity"] = serde_json::json!([{"type": "CVSS_V3", "score": v}]);
        }
        std::fs::write(
            db.join(format!("{id}.json")),
            serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
    };
    rec(
        "GHSA-NUMPY",
        "PyPI",
        "numpy",
        serde_json::json!([{"introduced": "0"}, {"fixed": "1.22.0"}]),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"),
    );
    rec(
        "GHSA-JOBLIB",
        "PyPI",
        "joblib",
        serde_json::json!([{"introduced": "0"}, {"fixed": "1.2.0"}]),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
    );
    rec(
        "GHSA-SIX",
        "PyPI",
        "six",
        serde_json::json!([{"introduced": "0"}]),
        None,
    );
    rec(
        "DEBIAN-CVE-GLIBC",
        "Debian:12",
        "glibc",
        serde_json::json!([{"introduced": "0"}, {"fixed": "2.36-9+deb12u7"}]),
        None,
    );
    rec(
        "DEBIAN-CVE-ZLIB",
        "Debian:11",
        "zlib",
        serde_json::json!([{"introduced": "0"}]),
        None,
    );
    db
}

#[tokio::test]
async fn osv_scanner_reads_layers_and_matches_offline() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let digest = image(&layout);
    let scanner = OsvScanner::new(osv_db(dir.path()));
    let target = ScanTarget::Layout {
        path: layout.clone(),
        digest: digest.clone(),
    };
    let report = scanner
        .scan(&target, &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(report.artifact.as_ref(), Some(&digest));
    let pkgs: Vec<(String, String, String)> = report
        .packages
        .iter()
        .map(|p| (p.ecosystem.clone(), p.name.clone(), p.version.clone()))
        .collect();
    let expect = |e: &str, n: &str, v: &str| (e.to_owned(), n.to_owned(), v.to_owned());
    assert_eq!(
        pkgs,
        [
            expect("Debian:12", "libc6", "2.36-9+deb12u4"),
            expect("Debian:12", "nginx", "1.22.1-9"),
            expect("Debian:12", "zlib1g", "1:1.2.13.dfsg-1"),
            expect("PyPI", "chardet", "5.1.0"),
            expect("PyPI", "joblib", "1.1.0"),
            expect("PyPI", "numpy", "1.21.0"),
            expect("PyPI", "requests", "2.28.0"),
        ],
        "six is whited out; the unpinned scikit-learn is not a version"
    );
    let mut found: Vec<(&str, &str, Severity)> = report
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.package.as_str(), f.severity))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("DEBIAN-CVE-GLIBC", "libc6", Severity::Unknown),
            ("GHSA-JOBLIB", "joblib", Severity::Critical),
            ("GHSA-NUMPY", "numpy", Severity::High),
        ],
        "zlib's advisory is for Debian 11; six is gone"
    );
    let numpy = report
        .findings
        .iter()
        .find(|f| f.package == "numpy")
        .unwrap();
    assert_eq!(numpy.cvss_score, Some(7.5));
    assert_eq!(
        numpy.target.as_deref(),
        Some("usr/local/lib/python3.11/site-packages/numpy-1.21.0.dist-info/METADATA")
    );
    assert!(numpy.layer.as_deref().unwrap().starts_with("sha256:"));
    assert_eq!(numpy.purl.as_deref(), Some("pkg:pypi/numpy@1.21.0"));
    let libc = report
        .findings
        .iter()
        .find(|f| f.package == "libc6")
        .unwrap();
    assert_eq!(libc.fixed_version.as_deref(), Some("2.36-9+deb12u7"));
    assert_eq!(
        libc.purl.as_deref(),
        Some("pkg:deb/debian/libc6@2.36-9+deb12u4")
    );
    assert!(report.database.as_ref().unwrap().version.as_deref() == Some("5 advisories"));

    // The outputs people and tools read.
    let sarif = wharf_scan::output::sarif(&report, "models/fraud-detector");
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 3);
    let bom = wharf_scan::output::cyclonedx(&report, "models/fraud-detector");
    assert_eq!(bom["components"].as_array().unwrap().len(), 7);
    let table = wharf_scan::output::table(&report, None);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("CRITICAL (ghsa)  GHSA-JOBLIB"),
        "{table}"
    );
}

#[tokio::test]
async fn inventory_matches_trivys_sbom_of_the_same_layout() {
    let trivy = std::env::var("WHARF_TEST_TRIVY").unwrap_or_else(|_| {
        panic!("WHARF_TEST_TRIVY is not set: run the tests with `cargo xtask test`, or `eval \"$(cargo xtask backends env)\"` first")
    });
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let digest = with_diff_ids(&layout, &image(&layout));
    let target = ScanTarget::Layout {
        path: layout.clone(),
        digest,
    };
    let ours = OsvScanner::new(osv_db(dir.path()))
        .scan(&target, &ScanOptions::default())
        .await
        .unwrap();
    let cache = dir.path().join("cache");
    let out = succeed(
        std::process::Command::new(&trivy)
            .args([
                "image",
                "--quiet",
                "--format",
                "cyclonedx",
                "--skip-db-update",
                "--offline-scan",
                "--cache-dir",
            ])
            .arg(&cache)
            .arg("--input")
            .arg(&layout),
    );
    let bom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut theirs: Vec<(String, String)> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    theirs.sort();
    let mut mine: Vec<(String, String)> = ours
        .packages
        .iter()
        // Trivy's image scan reads installed packages only, not requirements files
        // (its pip analyzer runs for `trivy fs`/`repo`), so joblib from requirements.txt is ours alone.
        .filter(|p| {
            p.location
                .as_deref()
                .is_none_or(|l| !l.ends_with("requirements.txt"))
        })
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    mine.sort();
    assert_eq!(mine, theirs, "same packages and versions as Trivy's SBOM");
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[tokio::test]
async fn scanner_binaries_that_are_missing_hang_or_fail() {
    let dir = tempfile::tempdir().unwrap();
    let target = ScanTarget::Layout {
        path: dir.path().into(),
        digest: Digest::sha256_of(b"x"),
    };
    let opts = ScanOptions::default();
    let e = TrivyScanner::new("/nonexistent/bin/trivy")
        .scan(&target, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("scanner binary /nonexistent/bin/trivy not found") && e.contains("[scan]"),
        "{e}"
    );

    let hang = script(dir.path(), "hang", "sleep 30");
    let t0 = std::time::Instant::now();
    let e = TrivyScanner::new(&hang)
        .timeout(Duration::from_secs(1))
        .scan(&target, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("did not finish within 2 s and was stopped"),
        "{e}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "killed, not waited for"
    );

    let fail = script(
        dir.path(),
        "fail",
        "echo 'INFO starting' >&2\necho 'FATAL failed to download vulnerability DB' >&2\nexit 2",
    );
    let e = TrivyScanner::new(&fail)
        .scan(&target, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("exited with status 2: FATAL failed to download vulnerability DB"),
        "{e}"
    );

    let junk = script(dir.path(), "junk", "echo 'Usage: trivy [command]'");
    let e = TrivyScanner::new(&junk)
        .scan(&target, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("output of") && e.contains("not JSON"), "{e}");

    let e = wharf_scan::grype::GrypeScanner::new("/nonexistent/grype")
        .scan(&target, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("scanner binary /nonexistent/grype not found"),
        "{e}"
    );

    // The embedded scanner on a directory that is not an image.
    let e = OsvScanner::new(osv_db(dir.path()))
        .scan(&target, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not an OCI image layout"), "{e}");
}

/// The vulnerabilities the peers' tests plant, one source of truth for three databases:
/// (OSV ecosystem, advisory package name, CVE, OSV record id, introduced, fixed, severity).
const PLANTED: [(&str, &str, &str, &str, &str, &str, &str); 4] = [
    (
        "Debian:12",
        "glibc",
        "CVE-2099-0001",
        "DEBIAN-CVE-2099-0001",
        "0",
        "2.36-9+deb12u7",
        "HIGH",
    ),
    (
        "PyPI",
        "numpy",
        "CVE-2021-34141",
        "GHSA-fpfv-jqm9-f5jm",
        "0",
        "1.22",
        "MEDIUM",
    ),
    (
        "PyPI",
        "joblib",
        "CVE-2022-21797",
        "GHSA-6hrg-qmvc-2xh8",
        "0",
        "1.2.0",
        "CRITICAL",
    ),
    // six is whited out in the top layer: nobody may report it.
    (
        "PyPI",
        "six",
        "CVE-2099-0006",
        "GHSA-test-six0-0006",
        "0",
        "9.9.9",
        "LOW",
    ),
];

/// The planted vulnerabilities as OSV records in `dir` (flat) and per ecosystem in
/// `dir/osv-scalibr/<Ecosystem>/all.zip`, osv-scanner's offline layout.
fn planted_osv(dir: &Path) -> PathBuf {
    let flat = dir.join("planted-osv");
    std::fs::create_dir_all(&flat).unwrap();
    let mut by_eco: std::collections::BTreeMap<&str, Vec<(String, Vec<u8>)>> = Default::default();
    for (eco, name, cve, id, introduced, fixed, _) in PLANTED {
        let rec = serde_json::to_vec(&serde_json::json!({
            "schema_version": "1.6.0", "id": id, "modified": "2026-11-01T00:00:00Z", "aliases": [cve],
            "affected": [{"package": {"ecosystem": eco, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": introduced}, {"fixed": fixed}]}]}],
        }))
        .unwrap();
        std::fs::write(flat.join(format!("{id}.json")), &rec).unwrap();
        by_eco
            .entry(eco.split(':').next().unwrap())
            .or_default()
            .push((format!("{id}.json"), rec));
    }
    for (eco, files) in by_eco {
        let d = dir.join("osv-scanner-db/osv-scalibr").join(eco);
        std::fs::create_dir_all(&d).unwrap();
        wharf_scan::write_zip(&d.join("all.zip"), &files).unwrap();
    }
    flat
}

/// A Trivy cache directory under `dir` holding the database `spec` describes, written by
/// Trivy's own DB module (`WHARF_TEST_TRIVYDB_FIXTURE`; spec format in its main.go).
fn trivy_db(dir: &Path, spec: &serde_json::Value) -> PathBuf {
    let spec_path = dir.join("trivy-spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(spec).unwrap()).unwrap();
    let cache = dir.join("trivy-cache");
    succeed(
        std::process::Command::new(program("WHARF_TEST_TRIVYDB_FIXTURE"))
            .arg(&spec_path)
            .arg(&cache),
    );
    cache
}

/// Run `cmd`; it must succeed (its stderr in the failure).
fn succeed(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn program(var: &str) -> PathBuf {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests with `cargo xtask test`, or `eval \"$(cargo xtask backends env)\"` first"))
        .into()
}

/// (CVE, package) of a report, the package as its ecosystem's advisories name it.
fn cve_pairs(report: &wharf_core::ScanReport) -> std::collections::BTreeSet<(String, String)> {
    report
        .findings
        .iter()
        .map(|f| {
            let cve = f
                .ids()
                .find(|i| i.starts_with("CVE-"))
                .unwrap_or(&f.id)
                .to_owned();
            (cve, f.package.clone())
        })
        .collect()
}

/// A peer's image scan found the planted vulnerabilities of the installed packages:
/// libc6 (by its source, glibc) and numpy; not joblib (pinned only in requirements.txt) and
/// not six (whited out).
fn assert_installed_findings(report: &wharf_core::ScanReport) {
    assert_eq!(
        cve_pairs(report),
        pairs(&[("CVE-2099-0001", "libc6"), ("CVE-2021-34141", "numpy")]),
        "{}: {:#?}",
        report.scanner,
        report.findings
    );
}

fn pairs(items: &[(&str, &str)]) -> std::collections::BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn trivy_with_a_planted_database_agrees_with_our_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let digest = with_diff_ids(&layout, &image(&layout));
    let target = ScanTarget::Layout {
        path: layout.clone(),
        digest,
    };
    // Trivy's own DB format, written by Trivy's DB module from the planted table.
    let spec = serde_json::json!({
        "updated_at": "2026-11-01T00:00:00Z",
        "os": PLANTED.iter().filter(|p| p.0 == "Debian:12").map(|p| serde_json::json!({"platform": "debian 12", "package": p.1, "id": p.2, "fixed": p.5})).collect::<Vec<_>>(),
        "lang": PLANTED.iter().filter(|p| p.0 == "PyPI").map(|p| serde_json::json!({"ecosystem": "pip", "package": p.1, "id": p.2, "vulnerable": [format!("<{}", p.5)], "patched": [p.5]})).collect::<Vec<_>>(),
        "vulnerabilities": PLANTED.iter().map(|p| serde_json::json!({"id": p.2, "title": format!("planted {}", p.1), "severity": p.6, "vendor_severity": {"debian": p.6, "ghsa": p.6}})).collect::<Vec<_>>(),
    });
    let cache = trivy_db(dir.path(), &spec);

    let trivy = TrivyScanner::new(program("WHARF_TEST_TRIVY"))
        .cache_dir(&cache)
        .offline(true);
    let theirs = trivy.scan(&target, &ScanOptions::default()).await.unwrap();
    assert_eq!(theirs.scanner, "trivy");
    assert_eq!(
        theirs.database.as_ref().unwrap().version.as_deref(),
        Some("trivy-db v2")
    );
    assert_installed_findings(&theirs);
    let libc = theirs
        .findings
        .iter()
        .find(|f| f.package == "libc6")
        .unwrap();
    assert_eq!(
        (libc.severity, libc.fixed_version.as_deref()),
        (Severity::High, Some("2.36-9+deb12u7"))
    );
    assert_eq!(libc.severity_source.as_deref(), Some("debian"));

    let ours = OsvScanner::new(planted_osv(dir.path()))
        .scan(&target, &ScanOptions::default())
        .await
        .unwrap();
    // Trivy's image scan reads installed packages only: joblib, pinned in the model's
    // requirements.txt, is ours alone (Trivy reads requirements files in `trivy fs`).
    assert_eq!(
        cve_pairs(&ours),
        pairs(&[
            ("CVE-2099-0001", "libc6"),
            ("CVE-2021-34141", "numpy"),
            ("CVE-2022-21797", "joblib")
        ])
    );
    // Trivy reads our CycloneDX SBOM of the image (`trivy sbom`) and finds the same
    // Python vulnerability in it. (OS packages need an operating-system component, which
    // our SBOM does not carry: Trivy matches only its language packages.)
    let bom = dir.path().join("ours.cdx.json");
    std::fs::write(
        &bom,
        serde_json::to_vec(&wharf_scan::output::cyclonedx(&ours, "test")).unwrap(),
    )
    .unwrap();
    let out = succeed(
        std::process::Command::new(program("WHARF_TEST_TRIVY"))
            .args([
                "sbom",
                "--quiet",
                "--format",
                "json",
                "--skip-db-update",
                "--offline-scan",
                "--cache-dir",
            ])
            .arg(&cache)
            .arg(&bom),
    );
    let from_bom = wharf_scan::trivy::parse_report(&out.stdout, "trivy sbom").unwrap();
    assert!(
        cve_pairs(&from_bom).contains(&("CVE-2021-34141".to_owned(), "numpy".to_owned())),
        "{:#?}",
        from_bom.findings
    );
    // Merged, Trivy's and ours are one finding per vulnerability and package.
    let merged = wharf_scan::merge::merge(vec![ours, theirs]);
    assert_eq!(merged.findings.len(), 3, "{:#?}", merged.findings);
    assert_eq!(merged.scanner, "osv+trivy");
}

#[tokio::test]
async fn osv_scanner_on_the_same_image_and_data_agrees_with_our_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let digest = with_diff_ids(&layout, &image(&layout));
    // osv-scanner reads `docker save` archives, not OCI layouts: skopeo converts.
    let archive = dir.path().join("image.tar");
    succeed(
        std::process::Command::new(program("WHARF_TEST_SKOPEO"))
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:test", layout.display()))
            .arg(format!("docker-archive:{}:wharf/test:1", archive.display())),
    );
    let flat = planted_osv(dir.path());
    let out = std::process::Command::new(program("WHARF_TEST_OSV_SCANNER"))
        .args([
            "scan",
            "image",
            "--archive",
            "--offline",
            "--format",
            "json",
        ])
        .arg(&archive)
        .env(
            "OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY",
            dir.path().join("osv-scanner-db"),
        )
        .output()
        .unwrap();
    // Exit 1: vulnerabilities found.
    assert_eq!(
        out.status.code(),
        Some(1),
        "osv-scanner: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut theirs = std::collections::BTreeSet::new();
    for r in v["results"].as_array().unwrap() {
        for p in r["packages"].as_array().unwrap() {
            // Debian packages under their source name, with the binary beside it.
            let name = p["package"]["os_package_name"]
                .as_str()
                .or(p["package"]["name"].as_str())
                .unwrap();
            for vuln in p["vulnerabilities"].as_array().into_iter().flatten() {
                theirs.insert((vuln["id"].as_str().unwrap().to_owned(), name.to_owned()));
            }
        }
    }
    let target = ScanTarget::Layout {
        path: layout.clone(),
        digest,
    };
    let ours = OsvScanner::new(flat)
        .scan(&target, &ScanOptions::default())
        .await
        .unwrap();
    let ours: std::collections::BTreeSet<(String, String)> = ours
        .findings
        .iter()
        .map(|f| {
            let osv_id = f.ids().find(|i| !i.starts_with("CVE-")).unwrap().to_owned();
            (osv_id, f.package.clone())
        })
        .collect();
    // The same advisories on the same installed packages: libc6 (by its source, glibc) and
    // numpy from its dist-info; neither reports six, whited out in the top layer. The one
    // difference: osv-scanner's image scan, like Trivy's and Grype's, reads installed
    // packages only, so joblib, pinned in the model's requirements.txt, is ours alone.
    assert_eq!(
        theirs,
        pairs(&[
            ("DEBIAN-CVE-2099-0001", "libc6"),
            ("GHSA-fpfv-jqm9-f5jm", "numpy")
        ])
    );
    assert_eq!(
        ours,
        pairs(&[
            ("DEBIAN-CVE-2099-0001", "libc6"),
            ("GHSA-fpfv-jqm9-f5jm", "numpy"),
            ("GHSA-6hrg-qmvc-2xh8", "joblib")
        ])
    );
}

#[tokio::test]
async fn grype_with_a_planted_database_agrees_with_our_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let digest = with_diff_ids(&layout, &image(&layout));
    // Vunnel-format provider workspaces (what Grype's DB builder reads), from the table.
    let workspace = |provider: &str, schema: &str, items: Vec<(String, serde_json::Value)>| {
        let ws = dir.path().join("grype-ws").join(provider);
        std::fs::create_dir_all(ws.join("results")).unwrap();
        let mut listing = String::new();
        for (ident, item) in items {
            let file = format!("results/{}.json", ident.replace([':', '/'], "_"));
            std::fs::write(
                ws.join(&file),
                serde_json::to_vec(
                    &serde_json::json!({"schema": schema, "identifier": ident, "item": item}),
                )
                .unwrap(),
            )
            .unwrap();
            listing.push_str(&format!("0000000000000000  {file}\n"));
        }
        std::fs::write(ws.join("checksums"), listing).unwrap();
        std::fs::write(ws.join("metadata.json"), serde_json::to_vec(&serde_json::json!({
            "provider": provider, "version": 1, "distribution_version": 1, "processor": "vunnel@wharf-test",
            "schema": {"version": "1.0.2", "url": "https://raw.githubusercontent.com/anchore/vunnel/main/schema/provider-workspace-state/schema-1.0.2.json"},
            "urls": [], "timestamp": "2026-11-01T00:00:00Z", "listing": {"path": "checksums", "digest": "0", "algorithm": "xxh64"},
            "store": "flat-file", "stale": false,
        })).unwrap()).unwrap();
        ws
    };
    let title = |s: &str| {
        let mut c = s.to_ascii_lowercase();
        c[..1].make_ascii_uppercase();
        c
    };
    let github = workspace(
        "github",
        "https://raw.githubusercontent.com/anchore/vunnel/main/schema/vulnerability/github-security-advisory/schema-1.0.1.json",
        PLANTED.iter().filter(|p| p.0 == "PyPI").map(|p| (format!("github:python/{}", p.3), serde_json::json!({"Vulnerability": {}, "Advisory": {
            "Classification": "GENERAL", "Severity": title(p.6),
            "FixedIn": [{"name": p.1, "identifier": p.5, "ecosystem": "python", "namespace": "github:python", "range": format!("< {}", p.5)}],
            "Summary": format!("planted {}", p.1), "url": format!("https://github.com/advisories/{}", p.3),
            "CVE": [p.2], "Metadata": {"CVE": [p.2]}, "ghsaId": p.3, "published": "2026-11-01T00:00:00Z", "updated": "2026-11-01T00:00:00Z",
            "withdrawn": null, "namespace": "github:python"}}))).collect(),
    );
    let debian = workspace(
        "debian",
        "https://raw.githubusercontent.com/anchore/vunnel/main/schema/vulnerability/os/schema-1.0.0.json",
        PLANTED.iter().filter(|p| p.0 == "Debian:12").map(|p| (format!("debian:12/{}", p.2), serde_json::json!({"Vulnerability": {
            "CVSS": [], "Description": format!("planted {}", p.1),
            "FixedIn": [{"Name": p.1, "NamespaceName": "debian:12", "VendorAdvisory": {"AdvisorySummary": [], "NoAdvisory": false}, "Version": p.5, "VersionFormat": "dpkg"}],
            "Link": format!("https://security-tracker.debian.org/tracker/{}", p.2), "Metadata": {}, "Name": p.2, "NamespaceName": "debian:12", "Severity": title(p.6)}}))).collect(),
    );
    let built = dir.path().join("grype-built");
    succeed(
        std::process::Command::new(program("WHARF_TEST_GRYPEDB_FIXTURE"))
            .arg(&built)
            .arg(&github)
            .arg(&debian),
    );
    let db_dir = dir.path().join("grype-db");
    succeed(
        std::process::Command::new(program("WHARF_TEST_GRYPE"))
            .args(["db", "import"])
            .arg(built.join("vulnerability.db"))
            .env("GRYPE_DB_CACHE_DIR", &db_dir)
            .env("GRYPE_CHECK_FOR_APP_UPDATE", "false"),
    );

    let target = ScanTarget::Layout {
        path: layout.clone(),
        digest,
    };
    let grype = wharf_scan::grype::GrypeScanner::new(program("WHARF_TEST_GRYPE"))
        .db_dir(&db_dir)
        .offline(true);
    let theirs = grype.scan(&target, &ScanOptions::default()).await.unwrap();
    assert_eq!(theirs.scanner, "grype");
    // Grype, like Trivy, reads installed packages in an image, not requirements files.
    assert_installed_findings(&theirs);
    let numpy = theirs
        .findings
        .iter()
        .find(|f| f.package == "numpy")
        .unwrap();
    assert_eq!(
        (numpy.id.as_str(), numpy.severity),
        ("GHSA-fpfv-jqm9-f5jm", Severity::Medium)
    );
    assert_eq!(numpy.aliases, ["CVE-2021-34141"]);
    let ours = OsvScanner::new(planted_osv(dir.path()))
        .scan(&target, &ScanOptions::default())
        .await
        .unwrap();
    let merged = wharf_scan::merge::merge(vec![ours, theirs]);
    assert_eq!(
        merged.findings.len(),
        3,
        "deduplicated by id and aliases: {:#?}",
        merged.findings
    );
}

#[tokio::test]
async fn trivy_scans_an_image_in_the_local_registry() {
    let registry = std::env::var("WHARF_TEST_REGISTRY")
        .unwrap_or_else(|_| panic!("WHARF_TEST_REGISTRY is not set: run the tests with `cargo xtask test`, or `eval \"$(cargo xtask backends env)\"` first"));
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let digest = with_diff_ids(&layout, &image(&layout));
    let repo = format!("wharf-scan-test/trivy-{}", std::process::id());
    succeed(
        std::process::Command::new(program("WHARF_TEST_SKOPEO"))
            .args([
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--preserve-digests",
            ])
            .arg(format!("oci:{}:test", layout.display()))
            .arg(format!("docker://{registry}/{repo}:test")),
    );
    // The planted Trivy database, as in the layout test.
    let spec = serde_json::json!({
        "updated_at": "2026-11-01T00:00:00Z",
        "lang": [{"ecosystem": "pip", "package": "numpy", "id": "CVE-2021-34141", "vulnerable": ["<1.22"], "patched": ["1.22"]}],
        "vulnerabilities": [{"id": "CVE-2021-34141", "severity": "MEDIUM"}],
    });
    let cache = trivy_db(dir.path(), &spec);
    let target = ScanTarget::Image {
        reference: wharf_core::Reference::parse(&format!("{registry}/{repo}")).unwrap(),
        digest: digest.clone(),
    };
    let trivy = TrivyScanner::new(program("WHARF_TEST_TRIVY"))
        .cache_dir(&cache)
        .offline(true)
        .insecure(true);
    let report = trivy.scan(&target, &ScanOptions::default()).await.unwrap();
    assert_eq!(report.artifact.as_ref(), Some(&digest));
    assert_eq!(
        cve_pairs(&report),
        pairs(&[("CVE-2021-34141", "numpy")]),
        "{:#?}",
        report.findings
    );
    assert!(
        report.packages.iter().any(|p| p.name == "libc6"),
        "the inventory came along: {:?}",
        report.packages
    );
}
