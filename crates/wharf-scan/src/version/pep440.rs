//! PEP 440 versions (PyPI): parsing with the spec's normalizations, and its total order.

use std::cmp::Ordering;

/// Epoch, release (trailing zeros dropped), pre, post, dev: packaging's `_cmpkey`.
type SortKey = (u64, Vec<u64>, (i8, u8, u64), (i8, u64), (i8, u64));

/// A parsed PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pep440 {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<LocalPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LocalPart {
    Num(u64),
    Str(String),
}

impl PartialOrd for LocalPart {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for LocalPart {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (LocalPart::Num(a), LocalPart::Num(b)) => a.cmp(b),
            (LocalPart::Str(a), LocalPart::Str(b)) => a.cmp(b),
            // Numeric segments sort after alphanumeric ones.
            (LocalPart::Num(_), LocalPart::Str(_)) => Ordering::Greater,
            (LocalPart::Str(_), LocalPart::Num(_)) => Ordering::Less,
        }
    }
}

/// A cursor over the lower-cased version text.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn number(&mut self) -> Option<u64> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if start == self.i {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    fn separator(&mut self) -> bool {
        if matches!(self.peek(), Some(b'.' | b'-' | b'_')) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Consume the first of `words` found here.
    fn word(&mut self, words: &[&str]) -> Option<usize> {
        let rest = &self.s[self.i..];
        let (k, w) = words
            .iter()
            .enumerate()
            .filter(|(_, w)| rest.starts_with(w.as_bytes()))
            .max_by_key(|(_, w)| w.len())?;
        self.i += w.len();
        Some(k)
    }
}

impl Pep440 {
    /// Parse `text`; `None` when it is not a PEP 440 version.
    pub(crate) fn parse(text: &str) -> Option<Pep440> {
        let lower = text.trim().to_ascii_lowercase();
        let lower = lower.strip_prefix('v').unwrap_or(&lower);
        let mut c = Cursor {
            s: lower.as_bytes(),
            i: 0,
        };
        let first = c.number()?;
        let (epoch, mut release) = if c.peek() == Some(b'!') {
            c.i += 1;
            (first, vec![c.number()?])
        } else {
            (0, vec![first])
        };
        while c.peek() == Some(b'.') && c.s.get(c.i + 1).is_some_and(u8::is_ascii_digit) {
            c.i += 1;
            release.push(c.number()?);
        }
        let mut v = Pep440 {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        };
        // Pre-release: [sep](a|alpha|b|beta|c|rc|pre|preview)[sep][N]
        let save = c.i;
        c.separator();
        const PRE: [&str; 8] = ["a", "alpha", "b", "beta", "c", "rc", "pre", "preview"];
        if let Some(k) = c.word(&PRE) {
            let kind = match PRE[k] {
                "a" | "alpha" => 0,
                "b" | "beta" => 1,
                _ => 2,
            };
            let save_n = c.i;
            c.separator();
            let n = c.number().unwrap_or_else(|| {
                c.i = save_n;
                0
            });
            v.pre = Some((kind, n));
        } else {
            c.i = save;
        }
        // Post-release: -N, or [sep](post|rev|r)[sep][N]
        let save = c.i;
        if c.peek() == Some(b'-') && c.s.get(c.i + 1).is_some_and(u8::is_ascii_digit) {
            c.i += 1;
            v.post = c.number();
        } else {
            c.separator();
            if c.word(&["post", "rev", "r"]).is_some() {
                let save_n = c.i;
                c.separator();
                v.post = Some(c.number().unwrap_or_else(|| {
                    c.i = save_n;
                    0
                }));
            } else {
                c.i = save;
            }
        }
        // Dev release: [sep]dev[sep][N]
        let save = c.i;
        c.separator();
        if c.word(&["dev"]).is_some() {
            let save_n = c.i;
            c.separator();
            v.dev = Some(c.number().unwrap_or_else(|| {
                c.i = save_n;
                0
            }));
        } else {
            c.i = save;
        }
        // Local version: +seg[.seg]*
        if c.peek() == Some(b'+') {
            let local = std::str::from_utf8(&c.s[c.i + 1..]).ok()?;
            for part in local.split(['.', '-', '_']) {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return None;
                }
                v.local.push(match part.parse() {
                    Ok(n) => LocalPart::Num(n),
                    Err(_) => LocalPart::Str(part.to_owned()),
                });
            }
            c.i = c.s.len();
        }
        (c.i == c.s.len()).then_some(v)
    }

    /// The sort key of PEP 440 (packaging's `_cmpkey`).
    fn key(&self) -> SortKey {
        let mut release = self.release.clone();
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        // A dev release of a final version sorts before its pre-releases: 1.0.dev0 < 1.0a0.
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0, 0),
            (None, _, _) => (1, 0, 0),
            (Some((k, n)), _, _) => (0, k, n),
        };
        let post = self.post.map_or((-1, 0), |p| (0, p));
        let dev = self.dev.map_or((1, 0), |d| (0, d));
        (self.epoch, release, pre, post, dev)
    }
}

impl PartialOrd for Pep440 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pep440 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| self.local.cmp(&other.local))
    }
}

/// PEP 503 name normalization: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for ch in name.trim().chars() {
        if matches!(ch, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(ch.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Pep440 {
        Pep440::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn the_specs_ordering_example() {
        // PEP 440, "Summary of permitted suffixes and relative ordering".
        let order = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn normalizations_compare_equal() {
        for (a, b) in [
            ("1.0", "1.0.0"),
            ("1.0alpha1", "1.0a1"),
            ("1.0-beta.2", "1.0b2"),
            ("1.0c1", "1.0rc1"),
            ("1.0-1", "1.0.post1"),
            ("1.0.rev2", "1.0.post2"),
            ("1.0dev", "1.0.dev0"),
            ("v2.31.0", "2.31.0"),
            ("1!0.5", "1!0.5.0"),
            ("1.0RC1", "1.0rc1"),
        ] {
            assert_eq!(v(a).cmp(&v(b)), Ordering::Equal, "{a} == {b}");
        }
        assert!(v("1!0.1") > v("2.0"), "epochs first");
        assert!(v("1.10") > v("1.9"), "numeric, not lexical");
    }

    #[test]
    fn invalid_versions_are_refused() {
        for s in [
            "", "abc", "1.0-", "1.0+", "1.0+a..b", "1.0 beta", "1.0.x", "=1.0",
        ] {
            assert!(Pep440::parse(s).is_none(), "{s:?} is not PEP 440");
        }
    }

    #[test]
    fn names_normalize_per_pep_503() {
        assert_eq!(normalize_name("Friendly-Bard"), "friendly-bard");
        assert_eq!(normalize_name("FRIENDLY__bard"), "friendly-bard");
        assert_eq!(normalize_name("friendly.-_bard"), "friendly-bard");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
    }
}
