#![cfg(feature = "ecr")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap
//! ECR image scanning against moto's ECR (`WHARF_TEST_MOTO`, from `cargo xtask test`): the
//! basic findings moto returns by default, enhanced (Inspector) findings set through moto's
//! API in the shape of the ECR API reference's `EnhancedImageScanFinding`; and, where moto
//! cannot play it (a scan still in progress, several pages), a loopback stand-in answering
//! `StartImageScan`/`DescribeImageScanFindings` in the awsJson1.1 shape the SDK reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_ecr::config::{BehaviorVersion, Credentials, Region};
use wharf_core::scan::ScanOptions;
use wharf_core::{Digest, FixState, Reference, ScanTarget, Scanner, Severity};
use wharf_scan::ecr::EcrScanner;

fn moto() -> String {
    std::env::var("WHARF_TEST_MOTO").unwrap_or_else(|_| {
        panic!("WHARF_TEST_MOTO is not set: run the tests with `cargo xtask test`, or `eval \"$(cargo xtask backends env)\"` first")
    })
}

fn client(endpoint: &str) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDWHARFTEST",
                "wharf-test-secret",
                None,
                None,
                "wharf-test",
            ))
            .endpoint_url(endpoint)
            .build(),
    )
}

/// A repository with one image in moto; returns the repository and moto's digest for it.
async fn image_in_moto(c: &aws_sdk_ecr::Client, name: &str) -> (String, Digest) {
    let repo = format!(
        "wharf-scan-test/{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    c.create_repository()
        .repository_name(&repo)
        .send()
        .await
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::sha256_of(b"{}").to_string(), "size": 2},
        "layers": [],
    })
    .to_string();
    let out = c
        .put_image()
        .repository_name(&repo)
        .image_manifest(manifest)
        .image_tag("v1")
        .send()
        .await
        .unwrap();
    let digest: Digest = out
        .image()
        .unwrap()
        .image_id()
        .unwrap()
        .image_digest()
        .unwrap()
        .parse()
        .unwrap();
    (repo, digest)
}

fn target(repo: &str, digest: &Digest) -> ScanTarget {
    ScanTarget::Image {
        reference: Reference::parse(&format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}"
        ))
        .unwrap(),
        digest: digest.clone(),
    }
}

#[tokio::test]
async fn basic_findings_from_moto() {
    let c = client(&moto());
    let (repo, digest) = image_in_moto(&c, "basic").await;
    let scanner = EcrScanner::new(c.clone());
    let report = scanner
        .scan(&target(&repo, &digest), &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(report.scanner, "ecr");
    assert_eq!(report.artifact.as_ref(), Some(&digest));
    assert_eq!(report.findings.len(), 1);
    let f = &report.findings[0];
    assert_eq!(
        (
            f.id.as_str(),
            f.package.as_str(),
            f.installed_version.as_str()
        ),
        ("CVE-9999-9999", "moto_fake", "9.9.9")
    );
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.cvss_score, Some(7.5));
    assert_eq!(f.cvss_vector.as_deref(), Some("AV:N/AC:L/Au:N/C:P/I:P/A:P"));
    // A second scan the same day: ECR refuses a new scan (LimitExceeded); the findings of the
    // day's scan are read all the same.
    let again = scanner
        .scan(&target(&repo, &digest), &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(again.findings.len(), 1);
    // An image that is not there: one line naming it.
    let missing = Digest::sha256_of(b"not pushed");
    let e = scanner
        .scan(&target(&repo, &missing), &ScanOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{repo}@{missing}")) && e.contains("ImageNotFoundException"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

#[tokio::test]
async fn enhanced_findings_set_through_motos_api() {
    let c = client(&moto());
    let (repo, digest) = image_in_moto(&c, "enhanced").await;
    // The shape of DescribeImageScanFindings with enhanced scanning (ECR API reference,
    // EnhancedImageScanFinding / PackageVulnerabilityDetails / VulnerablePackage).
    let response = serde_json::json!({
        "registryId": "000000000000",
        "repositoryName": repo,
        "imageId": {"imageDigest": digest.to_string()},
        "imageScanStatus": {"status": "ACTIVE", "description": "Continuous scan is selected for image."},
        "imageScanFindings": {
            "enhancedFindings": [{
                "awsAccountId": "000000000000",
                "description": "joblib before 1.2.0 evaluates pre_dispatch with eval()",
                "findingArn": "arn:aws:inspector2:us-east-1:000000000000:finding/0123",
                "firstObservedAt": 1764979200.0,
                "lastObservedAt": 1764979200.0,
                "packageVulnerabilityDetails": {
                    "cvss": [{"baseScore": 9.8, "scoringVector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "source": "NVD", "version": "3.1"}],
                    "referenceUrls": ["https://github.com/advisories/GHSA-6hrg-qmvc-2xh8"],
                    "relatedVulnerabilities": ["GHSA-6hrg-qmvc-2xh8"],
                    "source": "NVD",
                    "sourceUrl": "https://nvd.nist.gov/vuln/detail/CVE-2022-21797",
                    "vendorSeverity": "CRITICAL",
                    "vulnerabilityId": "CVE-2022-21797",
                    "vulnerablePackages": [{"name": "joblib", "version": "1.1.0", "packageManager": "PYTHONPKG",
                        "filePath": "usr/local/lib/python3.11/site-packages/joblib-1.1.0.dist-info/METADATA",
                        "fixedInVersion": "1.2.0", "sourceLayerHash": "sha256:aaaa"}]
                },
                "score": 9.8,
                "scoreDetails": {"cvss": {"score": 9.8, "scoreSource": "NVD", "scoringVector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "version": "3.1"}},
                "severity": "CRITICAL",
                "status": "ACTIVE",
                "title": "CVE-2022-21797 - joblib",
                "type": "PACKAGE_VULNERABILITY",
                "fixAvailable": "YES"
            }],
            "findingSeverityCounts": {"CRITICAL": 1}
        }
    });
    let http = reqwest_free_post(
        &format!("{}/moto-api/static/ecr/scan-finding-results", moto()),
        &serde_json::json!({"results": [response], "region": "us-east-1"}),
    );
    assert!(http.starts_with("HTTP/1.1 2"), "{http}");
    let scanner = EcrScanner::new(c);
    let report = scanner
        .scan(&target(&repo, &digest), &ScanOptions::default())
        .await
        .unwrap();
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!(
        (f.id.as_str(), f.package.as_str(), f.ecosystem.as_deref()),
        ("CVE-2022-21797", "joblib", Some("PyPI"))
    );
    assert_eq!((f.severity, f.cvss_score), (Severity::Critical, Some(9.8)));
    assert_eq!(
        (f.fixed_version.as_deref(), f.fix_state),
        (Some("1.2.0"), FixState::Fixed)
    );
    assert_eq!(f.aliases, ["GHSA-6hrg-qmvc-2xh8"]);
    assert_eq!(f.layer.as_deref(), Some("sha256:aaaa"));
    assert!(
        f.ratings
            .iter()
            .any(|r| r.source == "nvd" && r.cvss_score == Some(9.8))
    );
}

/// A plain HTTP/1.1 POST of JSON (the test needs no HTTP client for moto's own API).
fn reqwest_free_post(url: &str, body: &serde_json::Value) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let body = body.to_string();
    write!(s, "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A stand-in for ECR's JSON API: the scan is in progress for the first `busy` describes,
/// then the findings come in two pages.
fn stand_in(busy: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut target, mut len) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    return;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("x-amz-target:") {
                    target = v.trim().to_owned();
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let finding = |id: &str, pkg: &str| {
                serde_json::json!({"name": id, "severity": "MEDIUM", "uri": format!("https://nvd.nist.gov/vuln/detail/{id}"),
                "attributes": [{"key": "package_name", "value": pkg}, {"key": "package_version", "value": "1.0"}, {"key": "CVSS3_SCORE", "value": "5.3"}, {"key": "CVSS3_VECTOR", "value": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}]})
            };
            let answer = if target.ends_with(".startimagescan") {
                serde_json::json!({"imageScanStatus": {"status": "IN_PROGRESS"}})
            } else {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                if n < busy {
                    serde_json::json!({"imageScanStatus": {"status": "IN_PROGRESS", "description": "scanning"}})
                } else if body.get("nextToken").is_none() {
                    serde_json::json!({"imageScanStatus": {"status": "COMPLETE"}, "nextToken": "page-2",
                        "imageScanFindings": {"findings": [finding("CVE-2000-0001", "a")]}})
                } else {
                    assert_eq!(body["nextToken"], "page-2");
                    serde_json::json!({"imageScanStatus": {"status": "COMPLETE"},
                        "imageScanFindings": {"findings": [finding("CVE-2000-0002", "b")], "vulnerabilitySourceUpdatedAt": 1764979200.0}})
                }
            };
            let text = answer.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, calls)
}

#[tokio::test]
async fn waits_for_the_scan_and_reads_every_page() {
    let (url, calls) = stand_in(2);
    let digest = Digest::sha256_of(b"paged");
    let scanner =
        EcrScanner::new(client(&url)).timeout(Duration::from_secs(30), Duration::from_millis(50));
    let report = scanner
        .scan(&target("models/paged", &digest), &ScanOptions::default())
        .await
        .unwrap();
    let ids: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["CVE-2000-0001", "CVE-2000-0002"]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "two polls while in progress, then two pages"
    );
    assert_eq!(report.findings[0].cvss_score, Some(5.3));

    // A scan that never completes: stopped at the timeout, saying so.
    let (url, _) = stand_in(usize::MAX);
    let scanner = EcrScanner::new(client(&url))
        .timeout(Duration::from_millis(300), Duration::from_millis(50));
    let e = scanner
        .scan(&target("models/slow", &digest), &ScanOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("did not complete within") && e.contains("models/slow@"),
        "{e}"
    );
}
