//! Each ecosystem's own version ordering: PEP 440 for PyPI, dpkg for Debian and Ubuntu,
//! apk-tools for Alpine, SemVer for the rest (npm, Go, crates.io, …).

mod apk;
mod dpkg;
mod pep440;
mod semver;

use std::cmp::Ordering;

pub use pep440::normalize_name as normalize_pypi_name;

/// How an ecosystem orders its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// PEP 440 (PyPI).
    Pep440,
    /// dpkg (`Debian:*`, `Ubuntu:*`).
    Dpkg,
    /// apk-tools (`Alpine:*`, Wolfi, Chainguard).
    Apk,
    /// Semantic versioning (npm, Go, crates.io, Packagist, NuGet, Hex, Pub, SwiftURL, and
    /// every `SEMVER` range).
    SemVer,
}

impl Scheme {
    /// The ordering of an OSV ecosystem name (`PyPI`, `Debian:12`, `Alpine:v3.19`);
    /// `None` for ecosystems wharf cannot order (Maven, RubyGems, …).
    pub fn of_ecosystem(ecosystem: &str) -> Option<Scheme> {
        let base = ecosystem.split(':').next().unwrap_or(ecosystem);
        Some(match base {
            "PyPI" => Scheme::Pep440,
            "Debian" | "Ubuntu" => Scheme::Dpkg,
            "Alpine" | "Wolfi" | "Chainguard" => Scheme::Apk,
            "npm" | "Go" | "crates.io" | "Packagist" | "NuGet" | "Hex" | "Pub" | "SwiftURL" => {
                Scheme::SemVer
            }
            _ => return None,
        })
    }

    /// Parse `text` in this scheme.
    pub fn parse(self, text: &str) -> Option<Version> {
        Some(match self {
            Scheme::Pep440 => Version(Inner::Pep440(pep440::Pep440::parse(text)?)),
            Scheme::Dpkg => Version(Inner::Dpkg(dpkg::Dpkg::parse(text)?)),
            Scheme::Apk => Version(Inner::Apk(apk::Apk::parse(text)?)),
            Scheme::SemVer => Version(Inner::SemVer(semver::SemVer::parse(text)?)),
        })
    }

    /// Compare two version strings; `None` when either does not parse.
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        self.parse(a)?.partial_cmp(&self.parse(b)?)
    }

    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Pep440 => "PEP 440",
            Scheme::Dpkg => "Debian",
            Scheme::Apk => "Alpine",
            Scheme::SemVer => "SemVer",
        }
    }
}

/// A version parsed in its ecosystem's scheme; versions of different schemes do not compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Inner);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inner {
    Pep440(pep440::Pep440),
    Dpkg(dpkg::Dpkg),
    Apk(apk::Apk),
    SemVer(semver::SemVer),
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (&self.0, &other.0) {
            (Inner::Pep440(a), Inner::Pep440(b)) => Some(a.cmp(b)),
            (Inner::Dpkg(a), Inner::Dpkg(b)) => Some(a.cmp(b)),
            (Inner::Apk(a), Inner::Apk(b)) => Some(a.cmp(b)),
            (Inner::SemVer(a), Inner::SemVer(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystems_map_to_their_schemes() {
        assert_eq!(Scheme::of_ecosystem("PyPI"), Some(Scheme::Pep440));
        assert_eq!(Scheme::of_ecosystem("Debian:12"), Some(Scheme::Dpkg));
        assert_eq!(Scheme::of_ecosystem("Alpine:v3.19"), Some(Scheme::Apk));
        assert_eq!(Scheme::of_ecosystem("Go"), Some(Scheme::SemVer));
        assert_eq!(Scheme::of_ecosystem("Maven"), None);
        assert_eq!(
            Scheme::Pep440.compare("1.19.0", "1.19.0rc1"),
            Some(Ordering::Greater)
        );
        assert_eq!(Scheme::Pep440.compare("1.19", "bogus"), None);
        assert!(
            Scheme::Dpkg
                .parse("1.0")
                .partial_cmp(&Scheme::Apk.parse("1.0"))
                .is_none()
        );
    }
}
