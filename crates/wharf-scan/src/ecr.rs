//! Amazon ECR image scanning: start a scan (or find the one scan-on-push started), wait for
//! it, and page through `DescribeImageScanFindings` — basic findings (`findings`, Clair/ECR's
//! own) and enhanced ones (`enhancedFindings`, Amazon Inspector).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecr::types::{EnhancedImageScanFinding, ImageIdentifier, ImageScanFinding, ScanStatus};
use wharf_core::scan::ScanOptions;
use wharf_core::{
    DatabaseInfo, Finding, FixState, Package, Rating, ScanReport, ScanTarget, Scanner, Severity,
};

use crate::{Error, Result};

/// The ECR client type the scanner takes (re-exported so callers need no direct
/// aws-sdk-ecr dependency).
pub use aws_sdk_ecr::Client;

/// Scans images in ECR with ECR's own scanner.
#[derive(Debug, Clone)]
pub struct EcrScanner {
    client: aws_sdk_ecr::Client,
    registry_id: Option<String>,
    timeout: Duration,
    poll: Duration,
}

impl EcrScanner {
    /// A scanner using `client` (its region and credentials); the registry is the
    /// account's own unless [`registry_id`](Self::registry_id) names another.
    pub fn new(client: aws_sdk_ecr::Client) -> Self {
        Self {
            client,
            registry_id: None,
            timeout: Duration::from_secs(600),
            poll: Duration::from_secs(5),
        }
    }

    /// Scan in the registry of account `id`.
    pub fn registry_id(mut self, id: impl Into<String>) -> Self {
        self.registry_id = Some(id.into());
        self
    }

    /// Wait at most `timeout` for the scan, asking every `poll`.
    pub fn timeout(mut self, timeout: Duration, poll: Duration) -> Self {
        self.timeout = timeout;
        self.poll = poll;
        self
    }
}

fn severity(s: &str, id: &str) -> Result<Severity> {
    match s {
        "UNDEFINED" | "UNTRIAGED" => Ok(Severity::Unknown),
        other => other
            .parse()
            .map_err(|e| Error::Report(format!("ECR finding {id}: {e}"))),
    }
}

fn basic(f: &ImageScanFinding) -> Result<Finding> {
    let id = f.name().unwrap_or_default();
    let attr = |k: &str| {
        f.attributes()
            .iter()
            .find(|a| a.key() == k)
            .and_then(|a| a.value())
            .map(str::to_owned)
    };
    let sev = severity(f.severity().map(|s| s.as_str()).unwrap_or("UNDEFINED"), id)?;
    let mut finding = Finding::new(
        id,
        attr("package_name").unwrap_or_default(),
        attr("package_version").unwrap_or_default(),
        sev,
    );
    let (score, vector) = match attr("CVSS3_SCORE") {
        Some(s) => (s.parse().ok(), attr("CVSS3_VECTOR")),
        None => (
            attr("CVSS2_SCORE").and_then(|s| s.parse().ok()),
            attr("CVSS2_VECTOR"),
        ),
    };
    finding
        .ratings
        .push(Rating::new("ecr", sev).with_cvss(score, vector.clone()));
    finding.severity_source = Some("ecr".into());
    finding.cvss_score = score;
    finding.cvss_vector = vector;
    finding.title = f.description().map(str::to_owned);
    finding.references = f.uri().map(|u| vec![u.to_owned()]).unwrap_or_default();
    Ok(finding)
}

fn enhanced(f: &EnhancedImageScanFinding) -> Result<Vec<Finding>> {
    let d = f.package_vulnerability_details();
    let id = d
        .and_then(|d| d.vulnerability_id())
        .or(f.title())
        .unwrap_or_default();
    let sev = severity(f.severity().unwrap_or("UNTRIAGED"), id)?;
    let (score, vector) = f
        .score_details()
        .and_then(|s| s.cvss())
        .map_or((Some(f.score()).filter(|s| *s > 0.0), None), |c| {
            (Some(c.score()), c.scoring_vector().map(str::to_owned))
        });
    let mut ratings = vec![Rating::new("inspector", sev).with_cvss(score, vector.clone())];
    if let Some(d) = d {
        for c in d.cvss() {
            let src = c.source().unwrap_or("nvd").to_ascii_lowercase();
            if !ratings.iter().any(|r| r.source == src) {
                let s = c.base_score();
                ratings.push(
                    Rating::new(&src, Severity::from_cvss(s).unwrap_or(Severity::Unknown))
                        .with_cvss(Some(s), c.scoring_vector().map(str::to_owned)),
                );
            }
        }
        // The vendor's own rating replaces the one its score implies.
        if let Some(vendor) = d.vendor_severity()
            && let Ok(v) = vendor.parse::<Severity>()
        {
            let src = d.source().unwrap_or("vendor").to_ascii_lowercase();
            match ratings.iter_mut().find(|r| r.source == src) {
                Some(r) => r.severity = v,
                None => ratings.push(Rating::new(src, v)),
            }
        }
    }
    let packages = d.map(|d| d.vulnerable_packages()).unwrap_or_default();
    let mut out = Vec::new();
    for p in packages {
        let mut finding = Finding::new(
            id,
            p.name().unwrap_or_default(),
            p.version().unwrap_or_default(),
            sev,
        );
        finding.ratings = ratings.clone();
        finding.severity_source = Some("inspector".into());
        finding.cvss_score = score;
        finding.cvss_vector = vector.clone();
        finding.title = f.title().map(str::to_owned);
        finding.fixed_version = p.fixed_in_version().map(str::to_owned);
        finding.fix_state = match (f.fix_available(), &finding.fixed_version) {
            (Some("YES" | "PARTIAL"), _) | (None, Some(_)) => FixState::Fixed,
            (Some("NO"), _) => FixState::NotFixed,
            _ => FixState::Unknown,
        };
        finding.target = p.file_path().map(str::to_owned);
        finding.layer = p.source_layer_hash().map(str::to_owned);
        finding.ecosystem = p.package_manager().map(ecosystem);
        finding.aliases = d
            .map(|d| {
                d.related_vulnerabilities()
                    .iter()
                    .filter(|r| *r != id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        finding.references = d.map(|d| d.reference_urls().to_vec()).unwrap_or_default();
        finding.first_seen = f.first_observed_at().map(|t| t.to_string());
        out.push(finding);
    }
    Ok(out)
}

/// Inspector's package managers as OSV ecosystems.
fn ecosystem(pm: &str) -> String {
    match pm {
        "PIP" | "PYTHONPKG" => "PyPI".into(),
        "NPM" | "NODEPKG" => "npm".into(),
        "GOBINARY" | "GOMOD" => "Go".into(),
        "CARGO" => "crates.io".into(),
        "JAR" | "GRADLE" | "POM" => "Maven".into(),
        "GEMSPEC" | "BUNDLER" => "RubyGems".into(),
        "NUGET" | "DOTNET_CORE" => "NuGet".into(),
        "DPKG" => "Debian".into(),
        "APK" => "Alpine".into(),
        other => other.to_owned(),
    }
}

/// An SDK error in one line: the service's code and message, else the transport's error.
fn one_line<E, R>(e: &aws_sdk_ecr::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(s) => format!(
            "{}: {}",
            s.code().unwrap_or("error"),
            s.message().unwrap_or("(no message)")
        ),
        None => aws_sdk_ecr::error::DisplayErrorContext(e)
            .to_string()
            .replace('\n', " "),
    }
}

/// `acct.dkr.ecr.region.amazonaws.com/repo` → (account, repo).
fn registry_and_repo(target: &ScanTarget) -> Result<(Option<String>, String, wharf_core::Digest)> {
    match target {
        ScanTarget::Image { reference, digest } => {
            let account = reference
                .domain()
                .and_then(|d| d.split('.').next())
                .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned);
            Ok((account, reference.path().to_owned(), digest.clone()))
        }
        other => Err(Error::Config(format!(
            "ECR scans images in ECR, not {other:?}: push first, or use the osv or trivy scanner"
        ))),
    }
}

#[async_trait]
impl Scanner for EcrScanner {
    fn name(&self) -> &str {
        "ecr"
    }

    async fn scan(
        &self,
        target: &ScanTarget,
        _opts: &ScanOptions,
    ) -> wharf_core::Result<ScanReport> {
        let (account, repo, digest) = registry_and_repo(target)?;
        let registry_id = self.registry_id.clone().or(account);
        let image = ImageIdentifier::builder()
            .image_digest(digest.to_string())
            .build();
        let what = format!("{repo}@{digest}");
        // Start a scan; one already running or done today (scan on push) is fine, and
        // enhanced scanning scans continuously.
        let started = self
            .client
            .start_image_scan()
            .set_registry_id(registry_id.clone())
            .repository_name(&repo)
            .image_id(image.clone())
            .send()
            .await;
        if let Err(e) = started {
            use aws_sdk_ecr::error::ProvideErrorMetadata;
            let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
            if !matches!(
                code,
                "LimitExceededException" | "ValidationException" | "UnsupportedImageTypeException"
            ) {
                return Err(Error::Scanner(format!(
                    "ECR StartImageScan for {what}: {}",
                    one_line(&e)
                ))
                .into());
            }
        }
        let deadline = std::time::Instant::now() + self.timeout;
        let mut findings = Vec::new();
        let mut updated = None;
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_image_scan_findings()
                .set_registry_id(registry_id.clone())
                .repository_name(&repo)
                .image_id(image.clone())
                .set_next_token(token.clone())
                .max_results(1000)
                .send()
                .await
                .map_err(|e| {
                    Error::Scanner(format!(
                        "ECR DescribeImageScanFindings for {what}: {}",
                        one_line(&e)
                    ))
                })?;
            let status = page.image_scan_status().and_then(|s| s.status().cloned());
            match status {
                Some(ScanStatus::Complete | ScanStatus::Active) | None => {}
                Some(ScanStatus::InProgress | ScanStatus::Pending) if token.is_none() => {
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::Scanner(format!(
                            "ECR's scan of {what} did not complete within {} s: raise [scan] timeout_seconds",
                            self.timeout.as_secs()
                        ))
                        .into());
                    }
                    wharf_core::blocking::sleep(self.poll).await;
                    continue;
                }
                Some(other) => {
                    let why = page
                        .image_scan_status()
                        .and_then(|s| s.description())
                        .unwrap_or("");
                    return Err(Error::Scanner(format!(
                        "ECR's scan of {what} is {}: {why}",
                        other.as_str()
                    ))
                    .into());
                }
            }
            if let Some(f) = page.image_scan_findings() {
                updated = f.vulnerability_source_updated_at().map(|t| t.to_string());
                for b in f.findings() {
                    findings.push(basic(b)?);
                }
                for e in f.enhanced_findings() {
                    findings.extend(enhanced(e)?);
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut packages: Vec<Package> = Vec::new();
        for f in &findings {
            let p = Package::new(
                &f.package,
                &f.installed_version,
                f.ecosystem.clone().unwrap_or_default(),
            );
            if !packages.contains(&p) {
                packages.push(p);
            }
        }
        let mut report = ScanReport::new("ecr", findings).with_artifact(digest);
        report.database = Some(DatabaseInfo::new(None, updated, Some("ecr".into())));
        report.scanned_at = Some(crate::now_rfc3339());
        report.packages = packages;
        Ok(report)
    }
}
