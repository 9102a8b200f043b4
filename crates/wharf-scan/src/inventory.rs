//! The packages in an image, read from its layers as they stream past — never unpacked to
//! disk: dpkg's `status` and `status.d/`, apk's `installed`, Python's `*.dist-info/METADATA`
//! and `*.egg-info/PKG-INFO`, and pinned requirements and lock files (`requirements*.txt`,
//! `poetry.lock`, `uv.lock`). Later layers win, whiteouts delete, as a container runtime
//! would see the filesystem.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use wharf_core::Package;

use crate::version::normalize_pypi_name;
use crate::{Error, Result};

/// The largest package-database file read (a Debian `status` with thousands of packages is
/// a few MiB).
const MAX_DB_FILE: u64 = 64 << 20;
/// How much of a Python `METADATA` is read: the headers come first, the long description
/// after them.
const MAX_METADATA: u64 = 1 << 20;

/// What kind of package record a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dpkg,
    Apk,
    PythonMetadata,
    Requirements,
    PoetryLock,
    UvLock,
    OsRelease,
}

fn kind_of(path: &str) -> Option<Kind> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if path == "var/lib/dpkg/status" || path.starts_with("var/lib/dpkg/status.d/") {
        // status.d holds one file per package (distroless); skip its *.md5sums lists.
        return (!name.ends_with(".md5sums") && !name.is_empty()).then_some(Kind::Dpkg);
    }
    if path == "lib/apk/db/installed" {
        return Some(Kind::Apk);
    }
    if path == "etc/os-release" || path == "usr/lib/os-release" {
        return Some(Kind::OsRelease);
    }
    let parent = path.rsplit('/').nth(1).unwrap_or("");
    if (name == "METADATA" && parent.ends_with(".dist-info"))
        || (name == "PKG-INFO" && parent.ends_with(".egg-info"))
        || (name.ends_with(".egg-info") && !path.contains("/EGG-INFO/"))
    {
        return Some(Kind::PythonMetadata);
    }
    if name.starts_with("requirements") && name.ends_with(".txt") {
        return Some(Kind::Requirements);
    }
    match name {
        "poetry.lock" => Some(Kind::PoetryLock),
        "uv.lock" => Some(Kind::UvLock),
        _ => None,
    }
}

/// One package-database file as found in a layer.
#[derive(Debug, Clone)]
struct Found {
    kind: Kind,
    layer: String,
    packages: Vec<Package>,
    os: Option<(String, String)>,
}

/// Reads layers in order and keeps what the final filesystem holds.
#[derive(Debug, Default)]
pub struct Inventory {
    files: BTreeMap<String, Found>,
    notes: Vec<String>,
    layers: usize,
}

/// What the image's layers hold.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct InventoryReport {
    /// Every package, sorted by ecosystem, name and version.
    pub packages: Vec<Package>,
    /// The operating system (`debian 12`), when an `os-release` names one.
    pub os: Option<(String, String)>,
    /// What could not be read, one line each.
    pub notes: Vec<String>,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read one layer (a tar, gzip- or uncompressed; zstd is refused by name) with digest
    /// `layer`, after all layers below it.
    pub fn add_layer(&mut self, layer: &str, blob: impl Read) -> Result<()> {
        let files = read_layer(layer, blob)?;
        self.apply(files);
        Ok(())
    }

    /// Apply a layer read with [`read_layer`], on top of those applied before: its
    /// whiteouts hide lower layers' files, then its files land on top.
    pub fn apply(&mut self, layer: LayerFiles) {
        self.layers += 1;
        for dir in &layer.opaque {
            let prefix = format!("{dir}/");
            self.files.retain(|p, _| !p.starts_with(&prefix));
        }
        for gone in &layer.whiteouts {
            let prefix = format!("{gone}/");
            self.files
                .retain(|p, _| p != gone && !p.starts_with(&prefix));
        }
        self.files.extend(layer.added);
        self.notes.extend(layer.notes);
    }
}

/// What one layer holds, read on its own (so layers can be read side by side) and applied
/// in order with [`Inventory::apply`].
#[derive(Debug, Default)]
pub struct LayerFiles {
    added: BTreeMap<String, Found>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
    notes: Vec<String>,
}

/// Read one layer (a tar, gzip- or uncompressed; zstd is refused by name) with digest
/// `layer`: its package databases, whiteouts and notes.
pub fn read_layer(layer: &str, blob: impl Read) -> Result<LayerFiles> {
    let mut blob = BufReader::with_capacity(1 << 20, blob);
    let head = blob
        .fill_buf()
        .map_err(|e| Error::Layer(format!("layer {layer}: {e}")))?;
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(blob))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(Error::Layer(format!(
            "layer {layer} is zstd-compressed, which wharf-scan does not read yet: rebuild the image with gzip layers or scan it with Trivy ([scan] scanners = [\"trivy\"])"
        )));
    } else {
        Box::new(blob)
    };
    let mut archive = tar::Archive::new(reader);
    let mut notes: Vec<String> = Vec::new();
    let mut added: BTreeMap<String, Found> = BTreeMap::new();
    let mut whiteouts: Vec<String> = Vec::new();
    let mut opaque: Vec<String> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| Error::Layer(format!("layer {layer}: not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::Layer(format!("layer {layer}: broken tar entry: {e}")))?;
        let raw = entry.path_bytes();
        let path = normalize(&String::from_utf8_lossy(&raw));
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d.to_owned(), n.to_owned()),
            None => (String::new(), path.clone()),
        };
        if name == ".wh..wh..opq" {
            opaque.push(dir);
            continue;
        }
        if let Some(gone) = name.strip_prefix(".wh.") {
            whiteouts.push(if dir.is_empty() {
                gone.to_owned()
            } else {
                format!("{dir}/{gone}")
            });
            continue;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Some(kind) = kind_of(&path) else {
            continue;
        };
        let limit = if kind == Kind::PythonMetadata {
            MAX_METADATA
        } else {
            MAX_DB_FILE
        };
        let mut text = Vec::new();
        (&mut entry)
            .take(limit)
            .read_to_end(&mut text)
            .map_err(|e| Error::Layer(format!("layer {layer}: {path}: {e}")))?;
        let text = String::from_utf8_lossy(&text);
        let mut found = Found {
            kind,
            layer: layer.to_owned(),
            packages: Vec::new(),
            os: None,
        };
        match kind {
            Kind::Dpkg => found.packages = parse_dpkg(&text),
            Kind::Apk => found.packages = parse_apk(&text),
            Kind::PythonMetadata => match parse_metadata(&text) {
                Some(p) => found.packages.push(p),
                None => notes.push(format!(
                    "{path} (layer {layer}): no Name or Version header; skipped"
                )),
            },
            Kind::Requirements => found.packages = parse_requirements(&text),
            Kind::PoetryLock | Kind::UvLock => match parse_lock(&text) {
                Ok(p) => found.packages = p,
                Err(e) => notes.push(format!("{path} (layer {layer}): {e}; skipped")),
            },
            Kind::OsRelease => found.os = parse_os_release(&text),
        }
        added.insert(path, found);
    }
    Ok(LayerFiles {
        added,
        whiteouts,
        opaque,
        notes,
    })
}

impl Inventory {
    /// The packages the final filesystem holds.
    pub fn finish(self) -> InventoryReport {
        let os = self
            .files
            .iter()
            .filter(|(_, f)| f.kind == Kind::OsRelease)
            .find_map(|(_, f)| f.os.clone());
        let mut notes = self.notes;
        let distro = os
            .as_ref()
            .and_then(|(id, version)| osv_distro(id, version));
        let mut packages = Vec::new();
        for (path, found) in self.files {
            for mut p in found.packages {
                if p.ecosystem.is_empty() {
                    // dpkg and apk records take the distribution's ecosystem.
                    p.ecosystem = match (&found.kind, &distro) {
                        (Kind::Dpkg, Some((eco, "deb"))) | (Kind::Apk, Some((eco, "apk"))) => {
                            eco.clone()
                        }
                        (Kind::Dpkg, _) => "Debian".into(),
                        _ => "Alpine".into(),
                    };
                    let (kind, ns) = if found.kind == Kind::Dpkg {
                        ("deb", os.as_ref().map_or("debian", |(id, _)| id.as_str()))
                    } else {
                        ("apk", os.as_ref().map_or("alpine", |(id, _)| id.as_str()))
                    };
                    p.purl = Some(format!("pkg:{kind}/{ns}/{}@{}", p.name, p.version));
                }
                packages.push(p.found_in(path.clone(), Some(found.layer.clone())));
            }
        }
        if distro.is_none() && packages.iter().any(|p| !p.ecosystem.starts_with("PyPI")) {
            notes.push(
                "no etc/os-release names the distribution: OS packages are matched against every release's advisories".into(),
            );
        }
        packages.sort_by(|a, b| {
            (&a.ecosystem, &a.name, &a.version, &a.location).cmp(&(
                &b.ecosystem,
                &b.name,
                &b.version,
                &b.location,
            ))
        });
        packages.dedup_by(|a, b| {
            a.ecosystem == b.ecosystem
                && a.name == b.name
                && a.version == b.version
                && a.location == b.location
        });
        InventoryReport {
            packages,
            os,
            notes,
        }
    }
}

/// The pinned packages in a requirements or lock file named `name` (`requirements.txt`,
/// `poetry.lock`, `uv.lock`); `None` for any other file.
pub fn pinned_packages(
    name: &str,
    text: &str,
) -> Option<std::result::Result<Vec<Package>, String>> {
    match kind_of(name)? {
        Kind::Requirements => Some(Ok(parse_requirements(text))),
        Kind::PoetryLock | Kind::UvLock => Some(parse_lock(text)),
        _ => None,
    }
}

/// `./usr/lib/x` and `/usr/lib/x` → `usr/lib/x`.
fn normalize(path: &str) -> String {
    let p = path.trim_start_matches("./").trim_start_matches('/');
    p.trim_end_matches('/').to_owned()
}

/// The OSV ecosystem of a distribution and its package format.
fn osv_distro(id: &str, version: &str) -> Option<(String, &'static str)> {
    match id {
        "debian" => {
            let major = version.split('.').next().unwrap_or(version);
            Some((format!("Debian:{major}"), "deb"))
        }
        "ubuntu" => Some((format!("Ubuntu:{version}"), "deb")),
        "alpine" => {
            let mm: Vec<&str> = version.split('.').take(2).collect();
            Some((format!("Alpine:v{}", mm.join(".")), "apk"))
        }
        _ => None,
    }
}

fn parse_os_release(text: &str) -> Option<(String, String)> {
    let mut id = None;
    let mut version = None;
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'').to_owned();
            match k.trim() {
                "ID" => id = Some(v),
                "VERSION_ID" => version = Some(v),
                _ => {}
            }
        }
    }
    Some((id?, version.unwrap_or_default()))
}

/// Debian control paragraphs: installed packages, with their source package.
fn parse_dpkg(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut source = None;
        let mut installed = true;
        for line in para.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => name = Some(v.to_owned()),
                "Version" => version = Some(v.to_owned()),
                // `Source: glibc (2.36-9+deb12u4)` names the source and, for binNMUs, its version.
                "Source" => source = v.split_whitespace().next().map(str::to_owned),
                "Status" => installed = v.ends_with(" installed"),
                _ => {}
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            let mut p = Package::new(n.clone(), v, "");
            p.source = source.filter(|s| *s != n);
            out.push(p);
        }
    }
    out
}

/// apk's `installed`: `P:` name, `V:` version, `o:` origin (the source package).
fn parse_apk(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut origin = None;
        for line in para.lines() {
            match line.split_once(':') {
                Some(("P", v)) => name = Some(v.to_owned()),
                Some(("V", v)) => version = Some(v.to_owned()),
                Some(("o", v)) => origin = Some(v.to_owned()),
                _ => {}
            }
        }
        if let (Some(n), Some(v)) = (name, version) {
            let mut p = Package::new(n.clone(), v, "");
            p.source = origin.filter(|o| *o != n);
            out.push(p);
        }
    }
    out
}

fn pypi(name: &str, version: &str) -> Package {
    Package::new(name, version, "PyPI")
        .with_purl(format!("pkg:pypi/{}@{version}", normalize_pypi_name(name)))
}

/// The `Name` and `Version` headers of core metadata.
fn parse_metadata(text: &str) -> Option<Package> {
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            break; // the body (long description) follows the headers
        }
        match line.split_once(':') {
            Some(("Name", v)) => name = Some(v.trim().to_owned()),
            Some(("Version", v)) => version = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    Some(pypi(&name?, &version?))
}

/// `name==version` pins (extras, markers, hashes and comments dropped); ranges cannot be
/// matched to one version and are left out.
fn parse_requirements(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(" #").next().unwrap_or(line);
        let line = line.split(';').next().unwrap_or(line).trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
            continue;
        }
        let spec = line
            .split(" --")
            .next()
            .unwrap_or(line)
            .trim_end_matches('\\')
            .trim();
        let Some((name, version)) = spec.split_once("==") else {
            continue;
        };
        let name = name.split('[').next().unwrap_or(name).trim();
        let version = version.trim_start_matches('=').trim();
        if !name.is_empty() && !version.is_empty() && !version.contains([',', '*']) {
            out.push(pypi(name, version));
        }
    }
    out
}

/// `[[package]]` tables of `poetry.lock` and `uv.lock`.
fn parse_lock(text: &str) -> std::result::Result<Vec<Package>, String> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        #[serde(default)]
        version: Option<String>,
    }
    let lock: Lock =
        toml::from_str(text).map_err(|e| format!("not a lock file: {}", e.message()))?;
    Ok(lock
        .package
        .into_iter()
        .filter_map(|e| Some(pypi(&e.name, &e.version?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_recognized() {
        assert_eq!(kind_of("var/lib/dpkg/status"), Some(Kind::Dpkg));
        assert_eq!(kind_of("var/lib/dpkg/status.d/base"), Some(Kind::Dpkg));
        assert_eq!(kind_of("var/lib/dpkg/status.d/base.md5sums"), None);
        assert_eq!(kind_of("lib/apk/db/installed"), Some(Kind::Apk));
        assert_eq!(
            kind_of("usr/lib/python3/dist-packages/numpy-1.24.2.dist-info/METADATA"),
            Some(Kind::PythonMetadata)
        );
        assert_eq!(
            kind_of("usr/lib/python3/dist-packages/six-1.16.0.egg-info"),
            Some(Kind::PythonMetadata)
        );
        assert_eq!(
            kind_of("models/m/requirements-serve.txt"),
            Some(Kind::Requirements)
        );
        assert_eq!(kind_of("usr/share/doc/METADATA"), None);
    }

    #[test]
    fn dpkg_keeps_installed_packages_and_sources() {
        let status = "Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: x\n continued\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: zlib1g\nStatus: install ok installed\nSource: zlib (1:1.2.13.dfsg-1)\nVersion: 1:1.2.13.dfsg-1\n";
        let p = parse_dpkg(status);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].source.as_deref()),
            ("libc6", Some("glibc"))
        );
        assert_eq!(p[1].source.as_deref(), Some("zlib"));
        assert_eq!(p[1].version, "1:1.2.13.dfsg-1");
    }

    #[test]
    fn apk_installed_with_origins() {
        let db = "C:Q1abc=\nP:musl\nV:1.1.20-r4\nA:x86_64\no:musl\n\nP:musl-utils\nV:1.1.20-r4\no:musl\n\nP:broken\n";
        let p = parse_apk(db);
        assert_eq!(p.len(), 2, "a record without a version is not a package");
        assert_eq!(
            (p[1].name.as_str(), p[1].version.as_str()),
            ("musl-utils", "1.1.20-r4")
        );
        assert_eq!(p[1].source.as_deref(), Some("musl"));
        assert_eq!(p[0].source, None, "origin equal to the name is not kept");
    }

    #[test]
    fn lock_files_and_metadata() {
        let poetry = "[[package]]\nname = \"Werkzeug\"\nversion = \"0.14\"\n\n[[package]]\nname = \"click\"\nversion = \"8.1.7\"\n";
        let p = parse_lock(poetry).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].purl.as_deref(), Some("pkg:pypi/werkzeug@0.14"));
        let uv = "version = 1\n[[package]]\nname = \"h11\"\nversion = \"0.14.0\"\nsource = { registry = \"https://pypi.org/simple\" }\n[[package]]\nname = \"local-app\"\nsource = { editable = \".\" }\n";
        let p = parse_lock(uv).unwrap();
        assert_eq!(p.len(), 1, "an entry without a version is not a pin");
        assert!(
            parse_lock("[[package]\nname=")
                .unwrap_err()
                .starts_with("not a lock file")
        );
        assert_eq!(
            pinned_packages("x/requirements-dev.txt", "a==1\n")
                .unwrap()
                .unwrap()
                .len(),
            1
        );
        assert!(pinned_packages("setup.py", "").is_none());
        let m = parse_metadata(
            "Metadata-Version: 2.1\nName: torch\nVersion: 2.1.0+cu121\n\nVersion: 9\n",
        )
        .unwrap();
        assert_eq!(m.version, "2.1.0+cu121", "the body is not read");
        assert!(parse_metadata("Metadata-Version: 2.1\nName: x\n").is_none());
        assert_eq!(
            parse_os_release("ID=alpine\nVERSION_ID=3.19.1\n"),
            Some(("alpine".to_owned(), "3.19.1".to_owned()))
        );
        assert_eq!(osv_distro("alpine", "3.19.1").unwrap().0, "Alpine:v3.19");
        assert_eq!(osv_distro("debian", "12").unwrap().0, "Debian:12");
    }

    #[test]
    fn requirements_keep_exact_pins_only() {
        let text = "# pinned\nnumpy==1.21.0\nrequests[socks]==2.28.0 ; python_version >= '3.8'\nJoblib===1.1.0 --hash=sha256:abc\nscipy>=1.7\ntorch==2.*\n-r other.txt\n";
        let p = parse_requirements(text);
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("numpy", "1.21.0"),
                ("requests", "2.28.0"),
                ("Joblib", "1.1.0")
            ]
        );
        assert_eq!(p[2].purl.as_deref(), Some("pkg:pypi/joblib@1.1.0"));
    }
}
