//! Alpine package versions (`1.2.3a_rc1_p2-r4`) and apk-tools' ordering.

use std::cmp::Ordering;

/// A parsed Alpine version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Apk {
    numbers: Vec<String>,
    letter: Option<u8>,
    suffixes: Vec<(i8, u64)>,
    revision: u64,
}

/// apk-tools' suffix order: pre-release suffixes before the plain version, the rest after.
const SUFFIXES: [(&str, i8); 10] = [
    ("alpha", -4),
    ("beta", -3),
    ("pre", -2),
    ("rc", -1),
    ("cvs", 1),
    ("svn", 2),
    ("git", 3),
    ("hg", 4),
    ("p", 5),
    ("", 0),
];

impl Apk {
    /// Parse; `None` when apk would call it invalid.
    pub(crate) fn parse(text: &str) -> Option<Apk> {
        let text = text.trim();
        let (body, revision) = match text.rsplit_once("-r") {
            Some((b, r)) => (b, r.parse().ok()?),
            None => (text, 0),
        };
        let (main, suffix_text) = match body.split_once('_') {
            Some((m, s)) => (m, Some(s)),
            None => (body, None),
        };
        let (digits, letter) = match main.as_bytes().last() {
            Some(c) if c.is_ascii_lowercase() => (&main[..main.len() - 1], Some(*c)),
            _ => (main, None),
        };
        let numbers: Vec<String> = digits.split('.').map(str::to_owned).collect();
        if numbers
            .iter()
            .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let mut suffixes = Vec::new();
        if let Some(s) = suffix_text {
            for part in s.split('_') {
                let name_len = part.bytes().take_while(u8::is_ascii_alphabetic).count();
                let (name, num) = part.split_at(name_len);
                let rank = SUFFIXES
                    .iter()
                    .find(|(n, _)| !n.is_empty() && *n == name)?
                    .1;
                let n = if num.is_empty() { 0 } else { num.parse().ok()? };
                suffixes.push((rank, n));
            }
        }
        Some(Apk {
            numbers,
            letter,
            suffixes,
            revision,
        })
    }
}

/// Compare two numeric components as apk does: the first numerically; later ones with a
/// leading zero as decimal fractions (`1.02 < 1.1`).
fn cmp_number(a: &str, b: &str, first: bool) -> Ordering {
    if !first && (a.starts_with('0') || b.starts_with('0')) {
        let (a, b) = (a.trim_end_matches('0'), b.trim_end_matches('0'));
        return a.cmp(b);
    }
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl PartialOrd for Apk {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Apk {
    fn cmp(&self, other: &Self) -> Ordering {
        for (k, (a, b)) in self.numbers.iter().zip(&other.numbers).enumerate() {
            let o = cmp_number(a, b, k == 0);
            if o != Ordering::Equal {
                return o;
            }
        }
        // More numeric components sort later (1.2.1 > 1.2).
        let o = self.numbers.len().cmp(&other.numbers.len());
        if o != Ordering::Equal {
            return o;
        }
        let o = self.letter.cmp(&other.letter);
        if o != Ordering::Equal {
            return o;
        }
        let n = self.suffixes.len().max(other.suffixes.len());
        for k in 0..n {
            let a = self.suffixes.get(k).copied().unwrap_or((0, 0));
            let b = other.suffixes.get(k).copied().unwrap_or((0, 0));
            let o = a.cmp(&b);
            if o != Ordering::Equal {
                return o;
            }
        }
        self.revision.cmp(&other.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(a: &str, b: &str) {
        let (x, y) = (Apk::parse(a).unwrap(), Apk::parse(b).unwrap());
        assert!(x < y, "{a} < {b}");
        assert!(y > x, "{b} > {a}");
    }

    #[test]
    fn apk_version_order() {
        // Pairs as `apk version -t A B` answers.
        lt("1.1.20-r4", "1.1.20-r5");
        lt("1.1.20-r5", "1.1.21-r0");
        lt("1.2", "1.2.1");
        lt("1.2_rc1", "1.2");
        lt("1.2_alpha", "1.2_beta");
        lt("1.2", "1.2_p1");
        lt("1.2_p1", "1.2a");
        lt("1.9", "1.10");
        lt("1.02", "1.1");
        lt("3.0.8-r3", "3.0.10-r0");
        lt("2.41.0-r1", "2.41.0-r2");
        assert_eq!(
            Apk::parse("1.2.3-r0")
                .unwrap()
                .cmp(&Apk::parse("1.2.3").unwrap()),
            Ordering::Equal
        );
    }

    #[test]
    fn invalid_versions_are_refused() {
        for s in ["", "a", "1..2", "1.2-rx", "1.2_foo1", "1.2-r"] {
            assert!(Apk::parse(s).is_none(), "{s:?}");
        }
    }
}
