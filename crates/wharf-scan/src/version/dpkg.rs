//! Debian package versions (`[epoch:]upstream[-revision]`) and dpkg's ordering
//! (`dpkg --compare-versions`), used for Debian and Ubuntu.

use std::cmp::Ordering;

/// A parsed Debian version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dpkg {
    epoch: u64,
    upstream: String,
    revision: String,
}

impl Dpkg {
    /// Parse as dpkg does (`parseversion`); `None` when dpkg would refuse it.
    pub(crate) fn parse(text: &str) -> Option<Dpkg> {
        let text = text.trim();
        let (epoch, rest) = match text.split_once(':') {
            Some((e, rest)) => (e.parse::<u64>().ok()?, rest),
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        let ok_upstream = upstream.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && upstream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".+~-:".contains(&b));
        let ok_revision = revision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b));
        if !ok_upstream || !ok_revision || (rest.ends_with('-')) {
            return None;
        }
        Some(Dpkg {
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
        })
    }
}

/// dpkg's character order: `~` before everything (even the end), then the end, then
/// letters, then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        while a.get(i).is_some_and(u8::is_ascii_digit) && b.get(j).is_some_and(u8::is_ascii_digit) {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if a.get(i).is_some_and(u8::is_ascii_digit) {
            return Ordering::Greater;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

impl PartialOrd for Dpkg {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Dpkg {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        Dpkg::parse(a).unwrap().cmp(&Dpkg::parse(b).unwrap())
    }

    #[test]
    fn dpkg_compare_versions_cases() {
        // Each pair as `dpkg --compare-versions A lt B` answers (dpkg's own test suite cases).
        for (a, b) in [
            ("1.0~rc1", "1.0"),
            ("1.0", "1.0-1"),
            ("1.0-1", "1.0-2"),
            ("1.0-1", "1.0+1-1"),
            ("1.0~~", "1.0~~a"),
            ("1.0~~a", "1.0~"),
            ("1.0~", "1.0"),
            ("1.0", "1.0a"),
            ("1.0a", "1.0+"),
            ("2.36-9", "2.36-9+deb12u4"),
            ("1.2.1-2.2+wheezy2", "1.2.1-2.2+wheezy3"),
            ("9:1.0", "10:0.1"),
            ("1:0.1", "1:0.1.1"),
            ("0.9", "1:0.1"),
            ("1.9", "1.10"),
        ] {
            assert_eq!(cmp(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(cmp(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(cmp("0:1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(cmp("1.001", "1.1"), Ordering::Equal, "leading zeros");
        assert_eq!(
            cmp("1.0-0", "1.0"),
            Ordering::Equal,
            "no revision is revision 0"
        );
    }

    #[test]
    fn invalid_versions_are_refused() {
        for s in ["", "a1.0", "x:1.0", "1.0-", "1.0 1", "1.0-1_2"] {
            assert!(Dpkg::parse(s).is_none(), "{s:?}");
        }
        assert!(Dpkg::parse("1:2.36-9+deb12u4").is_some());
    }
}
