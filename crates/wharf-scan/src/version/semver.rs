//! Semantic versions as OSV's `SEMVER` ranges use them (a leading `v` and missing minor or
//! patch parts accepted, as Go and npm data have them).

use std::cmp::Ordering;

/// A parsed semantic version; build metadata is ignored for ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SemVer {
    core: [u64; 3],
    pre: Vec<Ident>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    // Numeric identifiers sort before alphanumeric ones (SemVer 2.0.0, rule 11).
    Num(u64),
    Str(String),
}

impl SemVer {
    /// Parse; `None` when it is not a version.
    pub(crate) fn parse(text: &str) -> Option<SemVer> {
        let t = text.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let t = t.split_once('+').map_or(t, |(v, _)| v);
        let (core, pre) = match t.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (t, None),
        };
        let mut parts = [0u64; 3];
        let fields: Vec<&str> = core.split('.').collect();
        if fields.is_empty() || fields.len() > 3 {
            return None;
        }
        for (k, f) in fields.iter().enumerate() {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            parts[k] = f.parse().ok()?;
        }
        let mut ids = Vec::new();
        if let Some(p) = pre {
            for id in p.split('.') {
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return None;
                }
                ids.push(match id.parse() {
                    Ok(n) if id.bytes().all(|b| b.is_ascii_digit()) => Ident::Num(n),
                    _ => Ident::Str(id.to_owned()),
                });
            }
        }
        Some(SemVer {
            core: parts,
            pre: ids,
        })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_precedence() {
        // SemVer 2.0.0, section 11's example chain.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for w in chain.windows(2) {
            assert!(
                SemVer::parse(w[0]) < SemVer::parse(w[1]),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        // GO-2024-2963's second interval starts at 1.22.0-0, below 1.22.0.
        assert!(SemVer::parse("1.22.0-0") < SemVer::parse("1.22.0"));
        assert_eq!(SemVer::parse("v1.6"), SemVer::parse("1.6.0+build.5"));
        for bad in ["", "1.x", "1.2.3.4", "1.2.3-", "1.2.3-a..b"] {
            assert!(SemVer::parse(bad).is_none(), "{bad:?}");
        }
    }
}
