//! Several scanners' reports on one artifact as one report: findings deduplicated per
//! package by id and aliases, ratings and references combined, every package once.

use wharf_core::{DatabaseInfo, Finding, ScanReport};

use crate::version::normalize_pypi_name;

fn same_package(a: &Finding, b: &Finding) -> bool {
    let norm = |f: &Finding| {
        if f.ecosystem.as_deref() == Some("PyPI") {
            normalize_pypi_name(&f.package)
        } else {
            f.package.clone()
        }
    };
    norm(a) == norm(b) && a.installed_version == b.installed_version
}

fn absorb(into: &mut Finding, other: Finding) {
    for id in other.ids() {
        if into.ids().all(|i| i != id) {
            into.aliases.push(id.to_owned());
        }
    }
    for r in other.ratings {
        if !into.ratings.iter().any(|x| x.source == r.source) {
            into.ratings.push(r);
        }
    }
    for url in other.references {
        if !into.references.contains(&url) {
            into.references.push(url);
        }
    }
    // The worse stated severity wins, with its source and score.
    if other.severity > into.severity {
        into.severity = other.severity;
        into.severity_source = other.severity_source.clone();
        if other.cvss_score.is_some() {
            into.cvss_score = other.cvss_score;
            into.cvss_vector = other.cvss_vector.clone();
        }
    }
    macro_rules! fill {
        ($($f:ident),*) => { $( if into.$f.is_none() { into.$f = other.$f; } )* };
    }
    fill!(
        ecosystem,
        purl,
        fixed_version,
        cvss_score,
        cvss_vector,
        title,
        target,
        layer,
        first_seen
    );
    if into.fix_state == wharf_core::FixState::Unknown {
        into.fix_state = other.fix_state;
    }
}

/// Merge `reports` (on the same artifact) into one named `a+b`.
pub fn merge(reports: Vec<ScanReport>) -> ScanReport {
    let mut names = Vec::new();
    let mut out = ScanReport::new("", Vec::new());
    let mut sources = Vec::new();
    for r in reports {
        names.push(r.scanner.clone());
        out.artifact = out.artifact.or(r.artifact);
        out.scanned_at = out.scanned_at.or(r.scanned_at);
        if let Some(v) = r.scanner_version {
            out.scanner_version = Some(match out.scanner_version {
                Some(prev) => format!("{prev}; {}: {v}", r.scanner),
                None => format!("{}: {v}", r.scanner),
            });
        }
        if let Some(db) = r.database {
            sources.push((r.scanner.clone(), db));
        }
        for f in r.findings {
            match out
                .findings
                .iter_mut()
                .find(|g| same_package(g, &f) && g.ids().any(|i| f.ids().any(|j| i == j)))
            {
                Some(g) => absorb(g, f),
                None => out.findings.push(f),
            }
        }
        for p in r.packages {
            if !out
                .packages
                .iter()
                .any(|q| q.ecosystem == p.ecosystem && q.name == p.name && q.version == p.version)
            {
                out.packages.push(p);
            }
        }
        out.notes
            .extend(r.notes.into_iter().map(|n| format!("{}: {n}", r.scanner)));
    }
    out.scanner = names.join("+");
    if sources.len() == 1 {
        out.database = sources.pop().map(|(_, d)| d);
    } else if !sources.is_empty() {
        let join = |f: &dyn Fn(&DatabaseInfo) -> Option<String>| {
            let parts: Vec<String> = sources
                .iter()
                .filter_map(|(n, d)| f(d).map(|v| format!("{n}: {v}")))
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        };
        out.database = Some(DatabaseInfo::new(
            join(&|d| d.version.clone()),
            join(&|d| d.updated_at.clone()),
            join(&|d| d.source.clone()),
        ));
    }
    out.packages.sort_by(|a, b| {
        (&a.ecosystem, &a.name, &a.version, &a.location).cmp(&(
            &b.ecosystem,
            &b.name,
            &b.version,
            &b.location,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_core::{Rating, Severity};

    #[test]
    fn aliases_merge_per_package() {
        let mut a = Finding::new("PYSEC-2023-74", "requests", "2.28.0", Severity::Unknown)
            .with_ecosystem("PyPI")
            .with_aliases(vec!["CVE-2023-32681".into()]);
        a.ratings.push(Rating::new("pysec", Severity::Unknown));
        let mut b = Finding::new("CVE-2023-32681", "Requests", "2.28.0", Severity::Medium)
            .with_ecosystem("PyPI");
        b.ratings
            .push(Rating::new("ghsa", Severity::Medium).with_cvss(Some(6.1), None));
        b.fixed_version = Some("2.31.0".into());
        b.cvss_score = Some(6.1);
        let other_pkg = Finding::new("CVE-2023-32681", "requests", "2.31.0", Severity::Medium);
        let merged = merge(vec![
            ScanReport::new("osv", vec![a]),
            ScanReport::new("trivy", vec![b, other_pkg]),
        ]);
        assert_eq!(merged.scanner, "osv+trivy");
        assert_eq!(merged.findings.len(), 2, "{:#?}", merged.findings);
        let f = &merged.findings[0];
        assert_eq!(f.severity, Severity::Medium);
        assert_eq!(f.fixed_version.as_deref(), Some("2.31.0"));
        assert_eq!(f.ratings.len(), 2);
        assert_eq!(f.cvss_score, Some(6.1));
    }
}
