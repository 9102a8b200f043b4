//! The embedded scanner's data: a local OSV database (a directory of OSV JSON records, or
//! the ZIP of one, as OSV's exports are) matched against an inventory of packages with each
//! ecosystem's own version ordering.
//!
//! Matching follows the OSV schema's evaluation: `ECOSYSTEM` and `SEMVER` ranges with their
//! events sorted by version (`introduced`, `fixed`, `last_affected`, `limit`), or the
//! version listed in `versions`. `GIT` ranges describe commits, not releases, and are not
//! used for packages; withdrawn advisories never match. Advisories that alias each other
//! (`PYSEC-2023-74`, `GHSA-j8r2-6x86-q33q`, `CVE-2023-32681`) become one finding per package.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use wharf_core::{DatabaseInfo, Finding, FixState, Package, Rating, Severity};

use crate::version::{Scheme, Version, normalize_pypi_name};
use crate::{Error, Result};

/// One OSV record, as much of it as matching and reporting need.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Record {
    id: String,
    #[serde(default)]
    modified: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    severity: Option<Vec<SeverityEntry>>,
    #[serde(default)]
    affected: Option<Vec<Affected>>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
    #[serde(default)]
    database_specific: Option<Specific>,
}

#[derive(Debug, Clone, Deserialize)]
struct SeverityEntry {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Reference {
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<PackageRef>,
    #[serde(default)]
    severity: Option<Vec<SeverityEntry>>,
    #[serde(default)]
    ranges: Option<Vec<RawRange>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
    #[serde(default)]
    database_specific: Option<Specific>,
    #[serde(default)]
    ecosystem_specific: Option<Specific>,
}

/// `database_specific` / `ecosystem_specific`: only the qualitative severity is read
/// (GHSA's `MODERATE`, Debian's urgency as some exporters write it).
#[derive(Debug, Clone, Default, Deserialize)]
struct Specific {
    #[serde(default)]
    severity: Option<serde_json::Value>,
}

impl Specific {
    fn severity(&self) -> Option<&str> {
        self.severity.as_ref().and_then(|s| s.as_str())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PackageRef {
    #[serde(default)]
    ecosystem: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<RawEvent>,
}

/// One event: exactly one of its fields is set.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawEvent {
    #[serde(default)]
    introduced: Option<String>,
    #[serde(default)]
    fixed: Option<String>,
    #[serde(default)]
    last_affected: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

/// A range event's kind, in the order events at one version are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

/// An event with its version parsed (`None` for introduced `0`, below everything).
#[derive(Debug, Clone)]
struct Event {
    kind: EventKind,
    text: String,
    version: Option<Version>,
}

/// One affected package of one advisory, compiled for matching.
#[derive(Debug, Clone)]
struct Entry {
    record: usize,
    ecosystem: String,
    scheme: Scheme,
    /// Each range's events, sorted.
    ranges: Vec<Vec<Event>>,
    versions: BTreeSet<String>,
    /// A rating given for this package only (Debian urgency, Ubuntu priority, …).
    ratings: Vec<Rating>,
}

/// A local OSV database, loaded and indexed.
#[derive(Debug, Default)]
pub struct OsvDatabase {
    records: Vec<Record>,
    entries: Vec<Entry>,
    /// (ecosystem base, normalized name) → entries.
    index: HashMap<(String, String), Vec<usize>>,
    problems: Vec<String>,
    info: DatabaseInfo,
}

fn parse_record(bytes: &[u8], source: &str) -> Result<Record> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::Database(format!(
            "{source}: not an OSV record: {e}: replace the file from a fresh OSV export"
        ))
    })
}

/// How a source file or archive entry is named in messages.
fn source_name(path: &Path, entry: Option<&str>) -> String {
    match entry {
        Some(e) => format!("{}!{e}", path.display()),
        None => path.display().to_string(),
    }
}

/// The key names are looked up under: PyPI names are PEP 503-normalized.
fn index_key(ecosystem: &str, name: &str) -> (String, String) {
    let base = ecosystem.split(':').next().unwrap_or(ecosystem);
    let name = if base == "PyPI" {
        normalize_pypi_name(name)
    } else {
        name.to_owned()
    };
    (base.to_owned(), name)
}

/// Whether an advisory for `advisory` (`Debian`, `Debian:12`) covers a package of `package`.
fn ecosystem_covers(advisory: &str, package: &str) -> bool {
    let (a_base, a_rel) = advisory.split_once(':').unwrap_or((advisory, ""));
    let (p_base, p_rel) = package.split_once(':').unwrap_or((package, ""));
    a_base == p_base && (a_rel.is_empty() || p_rel.is_empty() || a_rel == p_rel)
}

impl OsvDatabase {
    /// Load every OSV record under `path`: a directory (searched recursively for `*.json`
    /// and `*.zip`), or one `.zip` export. A missing or empty database, or a record that
    /// does not parse, is an error naming the file.
    pub fn open(path: &Path) -> Result<OsvDatabase> {
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::Database(format!(
                "OSV database {}: {e}: download an export (https://osv-vulnerabilities.storage.googleapis.com/<ecosystem>/all.zip) or point [scan] osv_db at one",
                path.display()
            ))
        })?;
        let mut db = OsvDatabase::default();
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)
                .map_err(|e| Error::Database(format!("OSV database {}: {e}", path.display())))?;
            files.sort();
            for f in files {
                db.load_file(&f)?;
            }
        } else {
            db.load_file(path)?;
        }
        if db.records.is_empty() {
            return Err(Error::Database(format!(
                "OSV database {} holds no advisories: fill it from an OSV export (`cargo xtask osv refresh`) — an empty database would pass every image",
                path.display()
            )));
        }
        db.info = DatabaseInfo::new(
            Some(format!("{} advisories", db.records.len())),
            db.records.iter().filter_map(|r| r.modified.clone()).max(),
            Some(path.display().to_string()),
        );
        Ok(db)
    }

    fn load_file(&mut self, path: &Path) -> Result<()> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext.eq_ignore_ascii_case("zip") {
            let zip = crate::zip::Archive::open(path)
                .map_err(|e| Error::Database(format!("OSV database {}: {e}", path.display())))?;
            let entries: Vec<&crate::zip::Entry> = zip
                .entries
                .iter()
                .filter(|e| e.name.ends_with(".json"))
                .collect();
            // Parse on every core; add in archive order, so the result never depends on timing.
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8);
            let chunk = entries.len().div_ceil(threads).max(1);
            let parsed: Vec<Result<Vec<(Record, String)>>> = std::thread::scope(|scope| {
                let handles: Vec<_> = entries
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            let mut file = std::fs::File::open(path).map_err(|e| {
                                Error::Database(format!("OSV database {}: {e}", path.display()))
                            })?;
                            part.iter()
                                .map(|e| {
                                    let source = source_name(path, Some(&e.name));
                                    let bytes =
                                        crate::zip::read_entry(&mut file, e).map_err(|err| {
                                            Error::Database(format!("OSV database {source}: {err}"))
                                        })?;
                                    Ok((parse_record(&bytes, &source)?, source))
                                })
                                .collect()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::Database(format!(
                                "OSV database {}: a loader thread panicked",
                                path.display()
                            )))
                        })
                    })
                    .collect()
            });
            for part in parsed {
                for (record, source) in part? {
                    self.add(record, &source);
                }
            }
        } else if ext.eq_ignore_ascii_case("json") {
            let bytes = std::fs::read(path)
                .map_err(|e| Error::Database(format!("OSV database {}: {e}", path.display())))?;
            self.add_json(&bytes, &path.display().to_string())?;
        }
        Ok(())
    }

    /// Add one OSV record (JSON); `source` names it in messages.
    pub fn add_json(&mut self, bytes: &[u8], source: &str) -> Result<()> {
        let record = parse_record(bytes, source)?;
        self.add(record, source);
        Ok(())
    }

    fn add(&mut self, mut record: Record, source: &str) {
        // What matching needs is compiled below; the raw ranges are not kept.
        let affected_list = record.affected.take();
        let rix = self.records.len();
        if record.withdrawn.is_some() {
            // Kept for counting; never indexed, so never matched.
            self.records.push(record);
            return;
        }
        for affected in affected_list.iter().flatten() {
            let Some(pkg) = &affected.package else {
                continue;
            };
            let Some(scheme) = Scheme::of_ecosystem(&pkg.ecosystem) else {
                continue;
            };
            let mut ranges = Vec::new();
            for range in affected.ranges.iter().flatten() {
                // SEMVER ranges are SemVer whatever the ecosystem; GIT ranges name commits.
                let range_scheme = match range.kind.as_str() {
                    "ECOSYSTEM" => scheme,
                    "SEMVER" => Scheme::SemVer,
                    _ => continue,
                };
                match compile_events(range, range_scheme) {
                    Ok(events) => ranges.push(events),
                    Err(problem) => self.problems.push(format!(
                        "{source}: {} {} range of {}: {problem}; the range is not used",
                        record.id, range.kind, pkg.name
                    )),
                }
            }
            let mut ratings = Vec::new();
            if let Some(sev) = affected.severity.as_deref() {
                ratings.extend(ratings_of(sev, &record.id));
            }
            if let Some(s) = affected
                .ecosystem_specific
                .as_ref()
                .or(affected.database_specific.as_ref())
                .and_then(Specific::severity)
                && let Ok(sev) = s.parse::<Severity>()
            {
                ratings.push(Rating::new(source_of(&record.id), sev));
            }
            let eix = self.entries.len();
            self.entries.push(Entry {
                record: rix,
                ecosystem: pkg.ecosystem.clone(),
                scheme,
                ranges,
                versions: affected.versions.iter().flatten().cloned().collect(),
                ratings,
            });
            self.index
                .entry(index_key(&pkg.ecosystem, &pkg.name))
                .or_default()
                .push(eix);
        }
        self.records.push(record);
    }

    /// How many advisories it holds (withdrawn ones included).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no advisories.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// What could not be used, one line each (a range without `introduced`, a version its
    /// ecosystem cannot parse).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Where the data came from, how much, and how fresh.
    pub fn info(&self) -> &DatabaseInfo {
        &self.info
    }

    /// The findings for `packages`, one per package and vulnerability, and a note for each
    /// package whose version its ecosystem cannot parse.
    pub fn match_packages(&self, packages: &[Package]) -> (Vec<Finding>, Vec<String>) {
        let mut findings = Vec::new();
        let mut notes = Vec::new();
        for pkg in packages {
            let key = index_key(&pkg.ecosystem, &match_name(pkg));
            let Some(candidates) = self.index.get(&key) else {
                continue;
            };
            let Some(scheme) = Scheme::of_ecosystem(&pkg.ecosystem) else {
                continue;
            };
            let installed = scheme.parse(&pkg.version);
            let mut hits: Vec<Hit<'_>> = Vec::new();
            let mut unparsable = false;
            for &eix in candidates {
                let entry = &self.entries[eix];
                if !ecosystem_covers(&entry.ecosystem, &pkg.ecosystem) {
                    continue;
                }
                let listed = entry.versions.contains(&pkg.version);
                let mut fixed = None;
                let in_range = match &installed {
                    Some(v) => entry.ranges.iter().any(|events| {
                        let (hit, fix) = affected_by(v, events);
                        if hit && fixed.is_none() {
                            fixed = fix;
                        }
                        hit
                    }),
                    None => {
                        unparsable |= !entry.ranges.is_empty();
                        false
                    }
                };
                if listed || in_range {
                    hits.push((entry.record, fixed, entry));
                }
            }
            if unparsable {
                notes.push(format!(
                    "{} {} ({}): the version is not {} — its ranges could not be checked, only listed versions",
                    pkg.name,
                    pkg.version,
                    pkg.ecosystem,
                    scheme.name()
                ));
            }
            findings.extend(self.group(pkg, hits));
        }
        (findings, notes)
    }

    /// One finding per group of advisories that alias each other.
    fn group(&self, pkg: &Package, hits: Vec<Hit<'_>>) -> Vec<Finding> {
        let mut groups: Vec<(BTreeSet<String>, Vec<Hit<'_>>)> = Vec::new();
        for hit in hits {
            let r = &self.records[hit.0];
            let ids: BTreeSet<String> = std::iter::once(r.id.clone())
                .chain(r.aliases.iter().flatten().cloned())
                .collect();
            match groups.iter_mut().find(|(g, _)| !g.is_disjoint(&ids)) {
                Some((g, members)) => {
                    g.extend(ids);
                    members.push(hit);
                }
                None => groups.push((ids, vec![hit])),
            }
        }
        groups
            .into_iter()
            .map(|(ids, members)| self.finding(pkg, ids, members))
            .collect()
    }

    fn finding(&self, pkg: &Package, ids: BTreeSet<String>, members: Vec<Hit<'_>>) -> Finding {
        // The CVE when there is one (what Trivy and Grype report), else the first id.
        let id = ids
            .iter()
            .find(|i| i.starts_with("CVE-"))
            .or_else(|| ids.iter().next())
            .cloned()
            .unwrap_or_default();
        let mut f = Finding::new(id.clone(), &pkg.name, &pkg.version, Severity::Unknown)
            .with_ecosystem(&pkg.ecosystem);
        f.aliases = ids.into_iter().filter(|i| *i != id).collect();
        f.purl = pkg.purl.clone();
        f.target = pkg.location.clone();
        f.layer = pkg.layer.clone();
        let scheme = members[0].2.scheme;
        // The lowest fixed version any member names above the installed one.
        let fixes: Vec<String> = members.iter().filter_map(|m| m.1.clone()).collect();
        let fixed = fixes
            .into_iter()
            .min_by(|a, b| scheme.compare(a, b).unwrap_or(Ordering::Equal));
        f.fix_state = if fixed.is_some() {
            FixState::Fixed
        } else {
            FixState::NotFixed
        };
        f.fixed_version = fixed;
        for (rix, _, entry) in &members {
            let r = &self.records[*rix];
            if f.title.is_none() {
                f.title = r.summary.clone();
            }
            f.ratings.extend(
                r.severity
                    .as_deref()
                    .map(|s| ratings_of(s, &r.id))
                    .into_iter()
                    .flatten(),
            );
            if let Some(s) = r.database_specific.as_ref().and_then(Specific::severity)
                && let Ok(sev) = s.parse::<Severity>()
            {
                // GHSA's qualitative rating sits beside its vector; merge them.
                let source = source_of(&r.id);
                match f.ratings.iter_mut().find(|x| x.source == source) {
                    Some(x) => x.severity = x.severity.max(sev),
                    None => f.ratings.push(Rating::new(source, sev)),
                }
            }
            f.ratings.extend(entry.ratings.iter().cloned());
            for url in r.references.iter().flatten().filter_map(|x| x.url.clone()) {
                if !f.references.contains(&url) {
                    f.references.push(url);
                }
            }
        }
        // Default choice: the highest-scored rating, GHSA before others on ties.
        if let Some(best) = f
            .ratings
            .iter()
            .max_by(|a, b| {
                a.severity
                    .cmp(&b.severity)
                    .then_with(|| (a.source == "ghsa").cmp(&(b.source == "ghsa")))
            })
            .cloned()
        {
            f.severity = best.severity;
            f.severity_source = Some(best.source);
            f.cvss_score = best.cvss_score;
            f.cvss_vector = best.cvss_vector;
        }
        f
    }
}

/// A match: the record, the fix ending the interval the version is in, the entry.
type Hit<'a> = (usize, Option<String>, &'a Entry);

/// The name an advisory lists the package under: Debian and Alpine advisories name the
/// source package.
fn match_name(pkg: &Package) -> String {
    pkg.source.as_deref().unwrap_or(&pkg.name).to_owned()
}

/// Who rated it, from the advisory id's prefix (`GHSA-…` → `ghsa`, `DSA-…` → `debian`).
fn source_of(id: &str) -> String {
    let prefix = id.split('-').next().unwrap_or(id).to_ascii_lowercase();
    match prefix.as_str() {
        "dsa" | "dla" | "dtsa" | "debian" => "debian".into(),
        "usn" | "ubuntu" => "ubuntu".into(),
        "alpine" => "alpine".into(),
        "cve" => "nvd".into(),
        _ => prefix,
    }
}

fn ratings_of(entries: &[SeverityEntry], id: &str) -> Vec<Rating> {
    entries
        .iter()
        .filter_map(|s| match s.kind.as_str() {
            "CVSS_V3" => {
                let score = crate::cvss::base_score_v3(&s.score)?;
                Some(
                    Rating::new(source_of(id), Severity::from_cvss(score)?)
                        .with_cvss(Some(score), Some(s.score.clone())),
                )
            }
            _ => None,
        })
        .collect()
}

fn compile_events(range: &RawRange, scheme: Scheme) -> std::result::Result<Vec<Event>, String> {
    let mut events = Vec::new();
    for e in &range.events {
        let set: Vec<(EventKind, &String)> = [
            (EventKind::Introduced, &e.introduced),
            (EventKind::Fixed, &e.fixed),
            (EventKind::LastAffected, &e.last_affected),
            (EventKind::Limit, &e.limit),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_ref()?)))
        .collect();
        let [(kind, v)] = set[..] else {
            return Err(
                "an event must have exactly one of introduced, fixed, last_affected, limit".into(),
            );
        };
        // `introduced: 0` is below everything, `limit: *` above.
        let unbounded =
            (kind == EventKind::Introduced && v == "0") || (kind == EventKind::Limit && v == "*");
        let version = if unbounded {
            None
        } else {
            Some(
                scheme
                    .parse(v)
                    .ok_or_else(|| format!("{v:?} is not a {} version", scheme.name()))?,
            )
        };
        events.push(Event {
            kind,
            text: v.clone(),
            version,
        });
    }
    if !events.iter().any(|e| e.kind == EventKind::Introduced) {
        return Err("no `introduced` event (OSV requires one)".into());
    }
    // Sort by version, `introduced: 0` first; at one version, introduced before fixed.
    events.sort_by(|a, b| match (&a.version, &b.version) {
        (None, None) => a.kind.cmp(&b.kind),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x
            .partial_cmp(y)
            .unwrap_or(Ordering::Equal)
            .then(a.kind.cmp(&b.kind)),
    });
    Ok(events)
}

/// The OSV schema's evaluation of one range: whether `v` is affected, and the fix that
/// ends the interval it is in.
fn affected_by(v: &Version, events: &[Event]) -> (bool, Option<String>) {
    let ge = |e: &Event| match &e.version {
        None => true,
        Some(x) => v.partial_cmp(x).is_some_and(|o| o != Ordering::Less),
    };
    let mut affected = false;
    for e in events {
        match e.kind {
            EventKind::Introduced if ge(e) => affected = true,
            EventKind::Fixed if ge(e) => affected = false,
            EventKind::LastAffected
                if e.version
                    .as_ref()
                    .is_some_and(|x| v.partial_cmp(x) == Some(Ordering::Greater)) =>
            {
                affected = false
            }
            _ => {}
        }
    }
    // `limit`: the range covers only versions below one of its limits.
    let limits: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == EventKind::Limit)
        .collect();
    if affected
        && !limits.is_empty()
        && !limits.iter().any(|l| {
            l.version
                .as_ref()
                .is_none_or(|x| v.partial_cmp(x) == Some(Ordering::Less))
        })
    {
        affected = false;
    }
    if !affected {
        return (false, None);
    }
    // The first fix above the installed version.
    let fix = events
        .iter()
        .filter(|e| e.kind == EventKind::Fixed)
        .find(|e| {
            e.version
                .as_ref()
                .is_some_and(|x| v.partial_cmp(x) == Some(Ordering::Less))
        })
        .map(|e| e.text.clone());
    (true, fix)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("zip"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Copy, verbatim, every OSV record in `exports` (OSV export ZIPs such as
/// `PyPI/all.zip`, or directories of records) that names one of `packages` (by ecosystem
/// and name, PyPI names normalized) into `out` as `<id>.json`, after removing the `*.json`
/// already there: how a small snapshot (the example's) is refreshed from a full export.
/// Returns how many records were written.
pub fn extract(exports: &[PathBuf], packages: &[Package], out: &Path) -> Result<usize> {
    #[derive(Deserialize)]
    struct Names {
        id: String,
        #[serde(default)]
        affected: Option<Vec<NameOnly>>,
    }
    #[derive(Deserialize)]
    struct NameOnly {
        #[serde(default)]
        package: Option<PackageRef>,
    }
    let wanted: BTreeSet<(String, String)> = packages
        .iter()
        .map(|p| index_key(&p.ecosystem, p.source.as_deref().unwrap_or(&p.name)))
        .collect();
    let mut keep: Vec<(String, Vec<u8>)> = Vec::new();
    let mut consider = |bytes: Vec<u8>, source: &str| -> Result<()> {
        let names: Names = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Database(format!("{source}: not an OSV record: {e}")))?;
        let hit = names
            .affected
            .iter()
            .flatten()
            .filter_map(|a| a.package.as_ref())
            .any(|p| wanted.contains(&index_key(&p.ecosystem, &p.name)));
        if hit {
            if names.id.contains(['/', '\\']) || names.id.starts_with('.') {
                return Err(Error::Database(format!(
                    "{source}: record id {:?} is not a file name",
                    names.id
                )));
            }
            keep.push((names.id, bytes));
        }
        Ok(())
    };
    for export in exports {
        let mut files = Vec::new();
        if export.is_dir() {
            walk(export, &mut files)
                .map_err(|e| Error::Database(format!("OSV export {}: {e}", export.display())))?;
            files.sort();
        } else {
            files.push(export.clone());
        }
        for f in files {
            let is_zip = f.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"));
            if is_zip {
                let zip = crate::zip::Archive::open(&f)
                    .map_err(|e| Error::Database(format!("OSV export {}: {e}", f.display())))?;
                let mut file = std::fs::File::open(&f)
                    .map_err(|e| Error::Database(format!("OSV export {}: {e}", f.display())))?;
                for e in zip.entries.iter().filter(|e| e.name.ends_with(".json")) {
                    let source = source_name(&f, Some(&e.name));
                    let bytes = crate::zip::read_entry(&mut file, e)
                        .map_err(|err| Error::Database(format!("OSV export {source}: {err}")))?;
                    consider(bytes, &source)?;
                }
            } else {
                let bytes = std::fs::read(&f)
                    .map_err(|e| Error::Database(format!("OSV export {}: {e}", f.display())))?;
                consider(bytes, &f.display().to_string())?;
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::Database(format!("{}: {e}", out.display())))?;
    let old =
        std::fs::read_dir(out).map_err(|e| Error::Database(format!("{}: {e}", out.display())))?;
    for entry in old.flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(&p)
                .map_err(|e| Error::Database(format!("{}: {e}", p.display())))?;
        }
    }
    for (id, bytes) in &keep {
        let p = out.join(format!("{id}.json"));
        std::fs::write(&p, bytes).map_err(|e| Error::Database(format!("{}: {e}", p.display())))?;
    }
    Ok(keep.len())
}
