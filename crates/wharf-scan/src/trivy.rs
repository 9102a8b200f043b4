//! Trivy: run the binary on an OCI layout or a registry image, or import a report it wrote.
//! Reports are Trivy's JSON, `SchemaVersion` 2; a result without a `Vulnerabilities` key has
//! no findings, and anything else — SARIF, CycloneDX, another schema version, truncated
//! JSON — is an error, never an empty report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use wharf_core::scan::ScanOptions;
use wharf_core::{
    DatabaseInfo, Finding, FixState, Package, Rating, ScanReport, ScanTarget, Scanner, Severity,
};

use crate::{Error, Result};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    schema_version: Option<serde_json::Value>,
    #[serde(default)]
    trivy: Option<TrivyInfo>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    results: Option<Vec<TResult>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyInfo {
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    #[serde(default, rename = "OS")]
    os: Option<Os>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Os {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TResult {
    target: String,
    #[serde(default, rename = "Type")]
    kind: String,
    #[serde(default)]
    packages: Vec<TPackage>,
    #[serde(default)]
    vulnerabilities: Option<Vec<TVuln>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TPackage {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    identifier: Option<Identifier>,
    #[serde(default)]
    src_name: Option<String>,
    #[serde(default)]
    layer: Option<Layer>,
    #[serde(default)]
    file_path: Option<String>,
}

#[derive(Deserialize)]
struct Identifier {
    #[serde(default, rename = "PURL")]
    purl: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Layer {
    #[serde(default)]
    digest: Option<String>,
    #[serde(default, rename = "DiffID")]
    diff_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TVuln {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    pkg_name: String,
    #[serde(default)]
    pkg_identifier: Option<Identifier>,
    #[serde(default)]
    installed_version: String,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    layer: Option<Layer>,
    #[serde(default)]
    severity_source: Option<String>,
    #[serde(default, rename = "PrimaryURL")]
    primary_url: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    vendor_severity: BTreeMap<String, i64>,
    #[serde(default, rename = "CVSS")]
    cvss: BTreeMap<String, Cvss>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    vendor_i_ds: Vec<String>,
}

#[derive(Deserialize)]
struct Cvss {
    #[serde(default, rename = "V3Vector")]
    v3_vector: Option<String>,
    #[serde(default, rename = "V3Score")]
    v3_score: Option<f64>,
    #[serde(default, rename = "V40Vector")]
    v40_vector: Option<String>,
    #[serde(default, rename = "V40Score")]
    v40_score: Option<f64>,
}

/// Trivy's numeric vendor severities.
fn vendor_severity(n: i64) -> Severity {
    match n {
        1 => Severity::Low,
        2 => Severity::Medium,
        3 => Severity::High,
        4 => Severity::Critical,
        _ => Severity::Unknown,
    }
}

/// The OSV ecosystem of a Trivy result type.
fn ecosystem(kind: &str, os: Option<&Os>) -> String {
    let os_release = |family: &str| {
        let name = os.map_or("", |o| o.name.as_str());
        match family {
            "alpine" => {
                let mm: Vec<&str> = name.split('.').take(2).collect();
                format!("Alpine:v{}", mm.join("."))
            }
            "debian" => format!("Debian:{}", name.split('.').next().unwrap_or(name)),
            "ubuntu" => format!("Ubuntu:{name}"),
            other => other.to_owned(),
        }
    };
    match kind {
        "alpine" | "debian" | "ubuntu" => os_release(kind),
        "python-pkg" | "pip" | "pipenv" | "poetry" | "uv" | "conda-pkg" => "PyPI".into(),
        "npm" | "yarn" | "pnpm" | "node-pkg" | "bun" => "npm".into(),
        "gomod" | "gobinary" => "Go".into(),
        "cargo" | "rustbinary" => "crates.io".into(),
        "jar" | "pom" | "gradle" | "sbt" => "Maven".into(),
        "gemspec" | "bundler" => "RubyGems".into(),
        "composer" | "composer-vendor" => "Packagist".into(),
        "nuget" | "dotnet-core" | "packages-props" => "NuGet".into(),
        other => other.to_owned(),
    }
}

/// Parse a Trivy JSON report; `source` names it in errors.
pub fn parse_report(bytes: &[u8], source: &str) -> Result<ScanReport> {
    let head: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::Report(format!(
            "{source}: not JSON ({e}): a Trivy report is `trivy … --format json` output"
        ))
    })?;
    if head
        .get("$schema")
        .is_some_and(|s| s.as_str().is_some_and(|s| s.contains("sarif")))
        || head.get("runs").is_some()
    {
        return Err(Error::Report(format!(
            "{source}: this is a SARIF file, not a Trivy JSON report: run Trivy with --format json"
        )));
    }
    if head.get("bomFormat").is_some() || head.get("spdxVersion").is_some() {
        return Err(Error::Report(format!(
            "{source}: this is an SBOM, not a Trivy JSON report: run Trivy with --format json"
        )));
    }
    let report: Report = serde_json::from_value(head)
        .map_err(|e| Error::Report(format!("{source}: not a Trivy JSON report: {e}")))?;
    match report
        .schema_version
        .as_ref()
        .and_then(serde_json::Value::as_u64)
    {
        Some(2) => {}
        Some(n) => {
            return Err(Error::Report(format!(
                "{source}: Trivy report SchemaVersion {n}: wharf reads SchemaVersion 2 (Trivy 0.20 and later)"
            )));
        }
        None => {
            return Err(Error::Report(format!(
                "{source}: no SchemaVersion: not a Trivy JSON report (`trivy … --format json` writes one)"
            )));
        }
    }
    let results = report.results.unwrap_or_default();
    let os = report.metadata.as_ref().and_then(|m| m.os.as_ref());
    let mut findings = Vec::new();
    let mut packages = Vec::new();
    for r in &results {
        let eco = ecosystem(&r.kind, os);
        for p in &r.packages {
            let mut pkg = Package::new(&p.name, &p.version, &eco);
            pkg.purl = p.identifier.as_ref().and_then(|i| i.purl.clone());
            pkg.source = p.src_name.clone().filter(|s| *s != p.name);
            let layer = p
                .layer
                .as_ref()
                .and_then(|l| l.digest.clone().or(l.diff_id.clone()));
            packages.push(pkg.found_in(
                p.file_path.clone().unwrap_or_else(|| r.target.clone()),
                layer,
            ));
        }
        for v in r.vulnerabilities.iter().flatten() {
            let severity = match v.severity.as_deref() {
                Some(s) => s.parse::<Severity>().map_err(|e| {
                    Error::Report(format!(
                        "{source}: {} in {}: {e}",
                        v.vulnerability_id, v.pkg_name
                    ))
                })?,
                None => Severity::Unknown,
            };
            let mut f = Finding::new(
                &v.vulnerability_id,
                &v.pkg_name,
                &v.installed_version,
                severity,
            )
            .with_ecosystem(&eco);
            f.purl = v.pkg_identifier.as_ref().and_then(|i| i.purl.clone());
            f.fixed_version = v.fixed_version.clone().filter(|s| !s.is_empty());
            f.fix_state = match v.status.as_deref() {
                Some("fixed") => FixState::Fixed,
                Some("affected" | "fix_deferred" | "under_investigation") => FixState::NotFixed,
                Some("will_not_fix" | "end_of_life") => FixState::WontFix,
                _ if f.fixed_version.is_some() => FixState::Fixed,
                _ => FixState::Unknown,
            };
            f.severity_source = v.severity_source.clone();
            f.title = v.title.clone();
            f.target = Some(r.target.clone());
            f.layer = v
                .layer
                .as_ref()
                .and_then(|l| l.digest.clone().or(l.diff_id.clone()));
            f.aliases = v.vendor_i_ds.clone();
            f.references = v.primary_url.iter().chain(&v.references).cloned().collect();
            for (src, n) in &v.vendor_severity {
                let c = v.cvss.get(src);
                let (score, vector) = c.map_or((None, None), |c| {
                    (
                        c.v3_score.or(c.v40_score),
                        c.v3_vector.clone().or(c.v40_vector.clone()),
                    )
                });
                f.ratings
                    .push(Rating::new(src, vendor_severity(*n)).with_cvss(score, vector));
            }
            for (src, c) in &v.cvss {
                if !v.vendor_severity.contains_key(src)
                    && let Some(score) = c.v3_score
                {
                    f.ratings.push(
                        Rating::new(src, Severity::from_cvss(score).unwrap_or(Severity::Unknown))
                            .with_cvss(Some(score), c.v3_vector.clone()),
                    );
                }
            }
            // The score of the rating Trivy chose, else NVD's.
            let chosen = f
                .severity_source
                .as_deref()
                .and_then(|s| {
                    f.ratings
                        .iter()
                        .find(|r| r.source == s && r.cvss_score.is_some())
                })
                .or_else(|| {
                    f.ratings
                        .iter()
                        .find(|r| r.source == "nvd" && r.cvss_score.is_some())
                });
            if let Some(r) = chosen {
                f.cvss_score = r.cvss_score;
                f.cvss_vector = r.cvss_vector.clone();
            }
            findings.push(f);
        }
    }
    let mut out = ScanReport::new("trivy", findings);
    out.scanner_version = report.trivy.and_then(|t| t.version);
    out.scanned_at = report.created_at;
    out.packages = packages;
    Ok(out)
}

/// Import a Trivy JSON report file.
pub fn read_report(path: &Path) -> Result<ScanReport> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Report(format!("Trivy report {}: {e}", path.display())))?;
    parse_report(&bytes, &path.display().to_string())
}

/// Runs the Trivy binary (`trivy image --format json`) on the scan target.
#[derive(Debug, Clone)]
pub struct TrivyScanner {
    binary: PathBuf,
    timeout: Duration,
    cache_dir: Option<PathBuf>,
    db_repository: Option<String>,
    offline: bool,
    insecure: bool,
    extra_args: Vec<String>,
}

impl TrivyScanner {
    /// Trivy at `binary` (a path, or a name looked up on `PATH`), 10 minutes' timeout.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            timeout: Duration::from_secs(600),
            cache_dir: None,
            db_repository: None,
            offline: false,
            insecure: false,
            extra_args: Vec::new(),
        }
    }
    /// Stop Trivy after `timeout` (also passed as its own `--timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Keep Trivy's database and cache in `dir` (`--cache-dir`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }
    /// Download the vulnerability DB from a mirror (`--db-repository`, e.g. an ECR copy).
    pub fn db_repository(mut self, repo: impl Into<String>) -> Self {
        self.db_repository = Some(repo.into());
        self
    }
    /// Use only the database already in the cache (`--skip-db-update --offline-scan`).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }
    /// Reach the registry over plain HTTP or with an untrusted certificate (`--insecure`).
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }
    /// More arguments, appended as given.
    pub fn args(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.extra_args.extend(args);
        self
    }

    /// The arguments for scanning `target`.
    pub fn command_args(&self, target: &ScanTarget, opts: &ScanOptions) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "image".into(),
            "--quiet".into(),
            "--format".into(),
            "json".into(),
            "--list-all-pkgs".into(),
            "--timeout".into(),
            format!("{}s", self.timeout.as_secs().max(1)),
        ];
        if let Some(d) = &self.cache_dir {
            a.push("--cache-dir".into());
            a.push(d.display().to_string());
        }
        if let Some(r) = &self.db_repository {
            a.push("--db-repository".into());
            a.push(r.clone());
        }
        if self.offline || opts.offline {
            a.extend(["--skip-db-update".into(), "--offline-scan".into()]);
        }
        if self.insecure {
            a.push("--insecure".into());
        }
        a.extend(self.extra_args.iter().cloned());
        match target {
            // A layout holds more than the image (signatures, attestations, earlier
            // builds): pin the one being scanned, as Trivy's `DIR@DIGEST` allows.
            ScanTarget::Layout { path, digest } => {
                a.push("--input".into());
                a.push(format!("{}@{digest}", path.display()));
            }
            ScanTarget::Image { reference, digest } => {
                a.extend(["--image-src".into(), "remote".into()]);
                a.push(format!("{}@{digest}", reference.repository()));
            }
            _ => {}
        }
        a
    }
}

#[async_trait]
impl Scanner for TrivyScanner {
    fn name(&self) -> &str {
        "trivy"
    }

    async fn scan(
        &self,
        target: &ScanTarget,
        opts: &ScanOptions,
    ) -> wharf_core::Result<ScanReport> {
        // Trivy stops itself at --timeout; the process is killed a little later if not.
        let out = crate::process::run(
            &self.binary,
            self.command_args(target, opts),
            self.timeout + self.timeout.min(Duration::from_secs(10)),
            Vec::new(),
        )
        .await?;
        let mut report =
            parse_report(&out.stdout, &format!("output of {}", self.binary.display()))?;
        report.artifact = Some(target.digest().clone());
        if let Some(d) = &self.cache_dir {
            report.database = Some(trivy_db_info(d));
        }
        Ok(report)
    }
}

/// What Trivy's `db/metadata.json` in `cache` says about its database.
fn trivy_db_info(cache: &Path) -> DatabaseInfo {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Meta {
        version: Option<u64>,
        updated_at: Option<String>,
    }
    let meta = std::fs::read(cache.join("db/metadata.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Meta>(&b).ok());
    DatabaseInfo::new(
        meta.as_ref()
            .and_then(|m| m.version)
            .map(|v| format!("trivy-db v{v}")),
        meta.and_then(|m| m.updated_at),
        Some(cache.join("db").display().to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_registry_targets_are_pinned_by_digest() {
        let digest = wharf_core::Digest::sha256_of(b"image");
        let t = TrivyScanner::new("trivy")
            .cache_dir("/c")
            .db_repository("mirror.example/trivy-db")
            .offline(true);
        let layout = ScanTarget::Layout {
            path: "/oci/m".into(),
            digest: digest.clone(),
        };
        let a = t.command_args(&layout, &ScanOptions::default());
        assert_eq!(a.last().unwrap(), &format!("/oci/m@{digest}"));
        for flag in [
            "--cache-dir",
            "--db-repository",
            "--skip-db-update",
            "--offline-scan",
            "--list-all-pkgs",
        ] {
            assert!(a.iter().any(|x| x == flag), "{flag} in {a:?}");
        }
        let image = ScanTarget::Image {
            reference: wharf_core::Reference::parse("ghcr.io/acme/m:v1").unwrap(),
            digest: digest.clone(),
        };
        let a = t.command_args(&image, &ScanOptions::default());
        assert_eq!(a.last().unwrap(), &format!("ghcr.io/acme/m@{digest}"));
    }
}
