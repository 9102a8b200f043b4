//! OpenVEX documents: v0.2.0, and the lenient v0.0.1 shape older tools write (vulnerability
//! and products as plain strings). A statement applies to a finding when it names one of the
//! finding's ids and a product that is the scanned image (with the package among its
//! subcomponents, or no subcomponents) or the package itself, matched by purl. For each
//! vulnerability and product the latest statement wins.

use std::path::Path;

use serde::Deserialize;
use wharf_core::{Digest, Finding};

use crate::version::normalize_pypi_name;
use crate::{Error, Result};

/// A VEX status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The product is not affected (needs a justification or impact statement).
    NotAffected,
    /// The product is affected.
    Affected,
    /// The product contains the fix.
    Fixed,
    /// Not known yet.
    UnderInvestigation,
}

/// One statement, normalized.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The vulnerability id and its aliases.
    pub vulnerability: Vec<String>,
    /// Products (purls), each with its subcomponents (purls).
    pub products: Vec<(String, Vec<String>)>,
    /// Status.
    pub status: Status,
    /// Justification (`vulnerable_code_not_in_execute_path`, …) or impact statement.
    pub justification: Option<String>,
    /// When it was made (the statement's timestamp, else the document's), RFC 3339.
    pub timestamp: Option<time::OffsetDateTime>,
    /// Which document it came from.
    pub document: String,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "@context")]
    context: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    statements: Vec<RawStatement>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawVuln {
    Name(String),
    Object {
        #[serde(default)]
        name: Option<String>,
        #[serde(default, rename = "@id")]
        id: Option<String>,
        #[serde(default)]
        aliases: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawProduct {
    Purl(String),
    Object {
        #[serde(rename = "@id")]
        id: String,
        #[serde(default)]
        subcomponents: Vec<RawProduct>,
    },
}

impl RawProduct {
    fn id(&self) -> &str {
        match self {
            RawProduct::Purl(p) => p,
            RawProduct::Object { id, .. } => id,
        }
    }
}

#[derive(Deserialize)]
struct RawStatement {
    vulnerability: RawVuln,
    #[serde(default)]
    products: Vec<RawProduct>,
    status: Status,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    impact_statement: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

fn parse_time(s: &str, source: &str) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::Config(format!("{source}: timestamp {s:?} is not RFC 3339: {e}")))
}

/// Parse an OpenVEX document; `source` names it in errors.
pub fn parse(bytes: &[u8], source: &str) -> Result<Vec<Statement>> {
    let doc: Doc = serde_json::from_slice(bytes)
        .map_err(|e| Error::Config(format!("VEX {source}: not an OpenVEX document: {e}")))?;
    if !doc.context.starts_with("https://openvex.dev/ns") {
        return Err(Error::Config(format!(
            "VEX {source}: @context {:?} is not OpenVEX (https://openvex.dev/ns/v0.2.0)",
            doc.context
        )));
    }
    let doc_time = doc
        .timestamp
        .as_deref()
        .map(|t| parse_time(t, source))
        .transpose()?;
    let mut out = Vec::new();
    for (k, s) in doc.statements.into_iter().enumerate() {
        let vulnerability = match s.vulnerability {
            RawVuln::Name(n) => vec![n],
            RawVuln::Object { name, id, aliases } => {
                name.into_iter().chain(id).chain(aliases).collect()
            }
        };
        if vulnerability.is_empty() {
            return Err(Error::Config(format!(
                "VEX {source}: statement {k} names no vulnerability"
            )));
        }
        let products = s
            .products
            .iter()
            .map(|p| {
                let subs = match p {
                    RawProduct::Object { subcomponents, .. } => {
                        subcomponents.iter().map(|c| c.id().to_owned()).collect()
                    }
                    RawProduct::Purl(_) => Vec::new(),
                };
                (p.id().to_owned(), subs)
            })
            .collect();
        let timestamp = match s.timestamp.as_deref() {
            Some(t) => Some(parse_time(t, source)?),
            None => doc_time,
        };
        out.push(Statement {
            vulnerability,
            products,
            status: s.status,
            justification: s.justification.or(s.impact_statement),
            timestamp,
            document: source.to_owned(),
        });
    }
    Ok(out)
}

/// Read and parse an OpenVEX file.
pub fn read(path: &Path) -> Result<Vec<Statement>> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::Config(format!("VEX {}: {e}", path.display())))?;
    parse(&bytes, &path.display().to_string())
}

/// A purl split into what matching compares: type, namespace, name, version.
#[derive(Debug, PartialEq, Eq)]
struct Purl {
    kind: String,
    namespace: String,
    name: String,
    version: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_purl(s: &str) -> Option<Purl> {
    let rest = s.strip_prefix("pkg:")?;
    let rest = rest.split(['?', '#']).next()?;
    let (path, version) = match rest.rsplit_once('@') {
        Some((p, v)) => (p, Some(percent_decode(v))),
        None => (rest, None),
    };
    let mut parts = path.split('/');
    let kind = parts.next()?.to_ascii_lowercase();
    let segs: Vec<String> = parts.map(percent_decode).collect();
    let (name, namespace) = segs.split_last()?;
    let mut name = name.clone();
    if kind == "pypi" {
        name = normalize_pypi_name(&name);
    }
    Some(Purl {
        kind,
        namespace: namespace.join("/").to_ascii_lowercase(),
        name,
        version,
    })
}

/// Whether statement purl `vex` names the package purl `pkg`: same type, namespace and
/// name, and the same version when the statement gives one.
fn purl_matches(vex: &str, pkg: &str) -> bool {
    match (parse_purl(vex), parse_purl(pkg)) {
        (Some(v), Some(p)) => {
            v.kind == p.kind
                && v.namespace == p.namespace
                && v.name == p.name
                && v.version
                    .as_ref()
                    .is_none_or(|x| Some(x) == p.version.as_ref())
        }
        _ => false,
    }
}

/// What is being scanned, for matching `pkg:oci/…` products.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The image digest.
    pub digest: Digest,
    /// The repository's last path component (`fraud-detector`), when known.
    pub name: Option<String>,
}

fn names_subject(product: &str, subject: &Subject) -> bool {
    let Some(p) = parse_purl(product) else {
        return false;
    };
    if p.kind != "oci" {
        return false;
    }
    match &p.version {
        Some(v) => *v == subject.digest.to_string(),
        None => subject.name.as_deref() == Some(p.name.as_str()),
    }
}

/// The statement that decides `finding` for `subject`: among those naming one of its ids
/// and matching its product, the latest.
pub fn decide<'a>(
    statements: &'a [Statement],
    finding: &Finding,
    subject: &Subject,
) -> Option<&'a Statement> {
    let pkg_purl = finding.purl.as_deref();
    statements
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.vulnerability
                .iter()
                .any(|v| finding.ids().any(|i| i == v))
        })
        .filter(|(_, s)| {
            s.products.iter().any(|(product, subs)| {
                let direct = pkg_purl.is_some_and(|p| purl_matches(product, p));
                let via_image = names_subject(product, subject)
                    && (subs.is_empty()
                        || pkg_purl.is_some_and(|p| subs.iter().any(|c| purl_matches(c, p))));
                direct || via_image
            })
        })
        // Latest wins; on equal (or missing) timestamps the later statement.
        .max_by(|(i, a), (j, b)| a.timestamp.cmp(&b.timestamp).then(i.cmp(j)))
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_match_by_type_namespace_name_and_version() {
        assert!(purl_matches(
            "pkg:deb/debian/bash",
            "pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64&distro=debian-12"
        ));
        assert!(purl_matches(
            "pkg:pypi/Requests@2.28.0",
            "pkg:pypi/requests@2.28.0"
        ));
        assert!(!purl_matches(
            "pkg:pypi/requests@2.31.0",
            "pkg:pypi/requests@2.28.0"
        ));
        assert!(!purl_matches(
            "pkg:deb/ubuntu/bash",
            "pkg:deb/debian/bash@5"
        ));
        assert!(!purl_matches("not a purl", "pkg:deb/debian/bash@5"));
        let d: Digest = "sha256:124c7d2707904eea1b7e2c7fdbd46e8d2d6d1f0a5d2a1e0d7c1b1c0f4b6b1a2c"
            .parse()
            .unwrap();
        let s = Subject {
            digest: d.clone(),
            name: Some("alpine".into()),
        };
        assert!(names_subject(
            &format!("pkg:oci/alpine@{}", d.to_string().replace(':', "%3A")),
            &s
        ));
        assert!(names_subject("pkg:oci/alpine", &s));
        assert!(!names_subject("pkg:oci/debian", &s));
    }
}
