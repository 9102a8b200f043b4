//! Grype: import its JSON reports (`grype -o json`), or run the binary where installed.

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
struct Report {
    matches: Vec<Match>,
    #[serde(default)]
    distro: Option<Distro>,
    #[serde(default)]
    descriptor: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Distro {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    db: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    vulnerability: Vuln,
    #[serde(default)]
    related_vulnerabilities: Vec<Vuln>,
    artifact: Artifact,
}

#[derive(Deserialize)]
struct Vuln {
    id: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    cvss: Vec<Cvss>,
    #[serde(default)]
    fix: Option<Fix>,
}

#[derive(Deserialize)]
struct Cvss {
    #[serde(default)]
    version: String,
    #[serde(default)]
    vector: Option<String>,
    #[serde(default)]
    metrics: Option<Metrics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    base_score: Option<f64>,
}

#[derive(Deserialize)]
struct Fix {
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    state: String,
}

#[derive(Deserialize)]
struct Artifact {
    name: String,
    version: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    locations: Vec<Location>,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    #[serde(default)]
    path: String,
    #[serde(default, rename = "layerID")]
    layer_id: Option<String>,
}

/// Who rated it, from Grype's namespace (`nvd:cpe` → `nvd`, `github:language:python` →
/// `ghsa`, `debian:distro:debian:12` → `debian`).
fn source_of(namespace: &str) -> String {
    let first = namespace.split(':').next().unwrap_or(namespace);
    match first {
        "github" => "ghsa".into(),
        "" => "grype".into(),
        other => other.to_owned(),
    }
}

fn ecosystem(kind: &str, distro: Option<&Distro>) -> String {
    let d = |name: &str| {
        let version = distro.map_or("", |d| d.version.as_str());
        match name {
            "debian" => format!("Debian:{}", version.split('.').next().unwrap_or(version)),
            "ubuntu" => format!("Ubuntu:{version}"),
            "alpine" => {
                let mm: Vec<&str> = version.split('.').take(2).collect();
                format!("Alpine:v{}", mm.join("."))
            }
            other => other.to_owned(),
        }
    };
    match kind {
        "deb" => d(distro.map_or("debian", |x| x.name.as_str())),
        "apk" => d(distro.map_or("alpine", |x| x.name.as_str())),
        "python" => "PyPI".into(),
        "npm" => "npm".into(),
        "go-module" => "Go".into(),
        "rust-crate" => "crates.io".into(),
        "java-archive" => "Maven".into(),
        "gem" => "RubyGems".into(),
        "php-composer" => "Packagist".into(),
        "dotnet" => "NuGet".into(),
        other => other.to_owned(),
    }
}

fn parse_severity(s: Option<&str>, source: &str, id: &str) -> Result<Severity> {
    match s {
        None | Some("") => Ok(Severity::Unknown),
        Some(s) => s
            .parse()
            .map_err(|e| Error::Report(format!("{source}: {id}: {e}"))),
    }
}

fn ratings(v: &Vuln, source: &str) -> Result<Vec<Rating>> {
    let sev = parse_severity(v.severity.as_deref(), source, &v.id)?;
    let src = source_of(&v.namespace);
    let best = v
        .cvss
        .iter()
        .filter(|c| c.version.starts_with('3') || c.version.starts_with('4'))
        .filter_map(|c| Some((c.metrics.as_ref()?.base_score?, c.vector.clone())))
        .fold(None::<(f64, Option<String>)>, |acc, x| match acc {
            Some(a) if a.0 >= x.0 => Some(a),
            _ => Some(x),
        });
    let (score, vector) = best.map_or((None, None), |(s, v)| (Some(s), v));
    Ok(vec![Rating::new(src, sev).with_cvss(score, vector)])
}

/// Parse a Grype JSON report; `source` names it in errors.
pub fn parse_report(bytes: &[u8], source: &str) -> Result<ScanReport> {
    let head: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::Report(format!(
            "{source}: not JSON ({e}): a Grype report is `grype … -o json` output"
        ))
    })?;
    if head.get("matches").is_none() {
        return Err(Error::Report(format!(
            "{source}: no `matches`: not a Grype JSON report (`grype … -o json` writes one)"
        )));
    }
    let report: Report = serde_json::from_value(head)
        .map_err(|e| Error::Report(format!("{source}: not a Grype JSON report: {e}")))?;
    let distro = report.distro.as_ref().filter(|d| !d.name.is_empty());
    let mut findings = Vec::new();
    let mut packages: Vec<Package> = Vec::new();
    for m in &report.matches {
        let a = &m.artifact;
        let eco = ecosystem(&a.kind, distro);
        let v = &m.vulnerability;
        let severity = parse_severity(v.severity.as_deref(), source, &v.id)?;
        let mut f = Finding::new(&v.id, &a.name, &a.version, severity).with_ecosystem(&eco);
        f.purl = a.purl.clone().filter(|p| !p.is_empty());
        f.target = a.locations.first().map(|l| l.path.clone());
        f.layer = a.locations.first().and_then(|l| l.layer_id.clone());
        f.title = v.description.clone();
        f.references = v.urls.clone();
        f.ratings = ratings(v, source)?;
        for r in &m.related_vulnerabilities {
            if r.id != v.id && !f.aliases.contains(&r.id) {
                f.aliases.push(r.id.clone());
            }
            f.ratings.extend(ratings(r, source)?);
        }
        f.severity_source = Some(source_of(&v.namespace));
        if let Some(r) = f.ratings.first() {
            f.cvss_score = r.cvss_score;
            f.cvss_vector = r.cvss_vector.clone();
        }
        if let Some(fix) = &v.fix {
            f.fix_state = match fix.state.as_str() {
                "fixed" => FixState::Fixed,
                "not-fixed" => FixState::NotFixed,
                "wont-fix" => FixState::WontFix,
                _ => FixState::Unknown,
            };
            // The first fix at or above the installed version (Grype lists one per branch).
            let scheme = crate::version::Scheme::of_ecosystem(&eco);
            f.fixed_version = fix
                .versions
                .iter()
                .find(|fv| {
                    scheme.is_none_or(|s| {
                        s.compare(fv, &a.version)
                            .is_none_or(|o| o == std::cmp::Ordering::Greater)
                    })
                })
                .or(fix.versions.first())
                .cloned();
        }
        findings.push(f);
        let pkg = Package::new(&a.name, &a.version, &eco);
        let pkg = match &a.purl {
            Some(p) if !p.is_empty() => pkg.with_purl(p),
            _ => pkg,
        };
        let pkg = pkg.found_in(
            a.locations
                .first()
                .map(|l| l.path.clone())
                .unwrap_or_default(),
            a.locations.first().and_then(|l| l.layer_id.clone()),
        );
        if !packages.contains(&pkg) {
            packages.push(pkg);
        }
    }
    let mut out = ScanReport::new("grype", findings);
    if let Some(d) = &report.descriptor {
        out.scanner_version = d.version.clone();
        out.scanned_at = d.timestamp.clone();
        let _ = &d.name;
        if let Some(db) = &d.db {
            let status = db.get("status").unwrap_or(db);
            let s = |k: &str| status.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            out.database = Some(DatabaseInfo::new(
                s("schemaVersion").or(status.get("schemaVersion").map(|v| v.to_string())),
                s("built"),
                s("from").or(s("path")),
            ));
        }
    }
    out.packages = packages;
    Ok(out)
}

/// Import a Grype JSON report file.
pub fn read_report(path: &Path) -> Result<ScanReport> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Report(format!("Grype report {}: {e}", path.display())))?;
    parse_report(&bytes, &path.display().to_string())
}

/// Runs the Grype binary (`grype -o json`) on the scan target.
#[derive(Debug, Clone)]
pub struct GrypeScanner {
    binary: PathBuf,
    timeout: Duration,
    db_dir: Option<PathBuf>,
    offline: bool,
}

impl GrypeScanner {
    /// Grype at `binary`, 10 minutes' timeout.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            timeout: Duration::from_secs(600),
            db_dir: None,
            offline: false,
        }
    }
    /// Stop Grype after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Keep Grype's database in `dir` (`GRYPE_DB_CACHE_DIR`).
    pub fn db_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.db_dir = Some(dir.into());
        self
    }
    /// Never update the database (`GRYPE_DB_AUTO_UPDATE=false`).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }
}

#[async_trait]
impl Scanner for GrypeScanner {
    fn name(&self) -> &str {
        "grype"
    }

    async fn scan(
        &self,
        target: &ScanTarget,
        opts: &ScanOptions,
    ) -> wharf_core::Result<ScanReport> {
        let what = match target {
            ScanTarget::Layout { path, .. } => format!("oci-dir:{}", path.display()),
            ScanTarget::Image { reference, digest } => {
                format!("registry:{}@{digest}", reference.repository())
            }
            other => return Err(Error::Config(format!("grype cannot scan {other:?}")).into()),
        };
        let mut env = vec![("GRYPE_CHECK_FOR_APP_UPDATE".to_owned(), "false".to_owned())];
        if let Some(d) = &self.db_dir {
            env.push(("GRYPE_DB_CACHE_DIR".into(), d.display().to_string()));
        }
        if self.offline || opts.offline {
            env.push(("GRYPE_DB_AUTO_UPDATE".into(), "false".into()));
            env.push(("GRYPE_DB_VALIDATE_AGE".into(), "false".into()));
        }
        let out = crate::process::run(
            &self.binary,
            vec![what, "-o".into(), "json".into(), "-q".into()],
            self.timeout,
            env,
        )
        .await?;
        let mut report =
            parse_report(&out.stdout, &format!("output of {}", self.binary.display()))?;
        report.artifact = Some(target.digest().clone());
        Ok(report)
    }
}
