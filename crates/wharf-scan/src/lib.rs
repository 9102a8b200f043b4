//! Vulnerability scanning for model images: one findings model ([`wharf_core::Finding`],
//! [`wharf_core::ScanReport`]) over several sources, a gate that decides per environment,
//! and the outputs people and tools read.
//!
//! - [`OsvScanner`] — the embedded default: the packages in the image's layers
//!   ([`inventory`]) matched against a local [`OsvDatabase`] with each ecosystem's own
//!   version ordering ([`version`]). No network, no daemon.
//! - [`trivy`] — run the Trivy binary, or import its JSON reports; [`grype`] — the same for
//!   Grype; `ecr` (feature `ecr`) — Amazon ECR image scans.
//! - [`merge`] — several scanners' reports as one, deduplicated by id and aliases.
//! - [`gate`] — warn or fail by severity or CVSS, only-fixed, whose severity wins, OpenVEX
//!   statements and expiring waivers; the [`Decision`](gate::Decision) names every finding
//!   that blocked and why, and every one suppressed and by what.
//! - [`output`] — a table, JSON, SARIF 2.1.0, CycloneDX, and cosign's vuln predicate.
//!
//! A report that cannot be produced or parsed is an error, never zero findings.

mod cvss;
#[cfg(feature = "ecr")]
pub mod ecr;
pub mod gate;
pub mod grype;
pub mod image;
pub mod inventory;
pub mod merge;
pub mod osv;
pub mod output;
mod process;
mod scanner;
pub mod trivy;
pub mod version;
pub mod vex;
mod zip;

pub use cvss::base_score_v3;
pub use osv::OsvDatabase;
pub use scanner::OsvScanner;
pub use zip::write_zip;

use wharf_core::ErrorKind;

/// What went wrong in wharf-scan, each a one-line message naming the file, binary or field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vulnerability database is missing, empty or unreadable.
    #[error("{0}")]
    Database(String),
    /// A report is not what it claims to be (wrong format, schema version, truncated).
    #[error("{0}")]
    Report(String),
    /// A layer or manifest of the scanned image cannot be read.
    #[error("{0}")]
    Layer(String),
    /// A scanner binary is missing, timed out or failed.
    #[error("{0}")]
    Scanner(String),
    /// Bad configuration: a gate, VEX document or waiver file.
    #[error("{0}")]
    Config(String),
    /// From wharf-core.
    #[error(transparent)]
    Core(#[from] wharf_core::Error),
}

/// Results of wharf-scan.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for wharf_core::Error {
    fn from(e: Error) -> Self {
        let kind = match e {
            Error::Core(c) => return c,
            Error::Scanner(_) => ErrorKind::Unsupported,
            Error::Database(_) | Error::Layer(_) | Error::Report(_) | Error::Config(_) => {
                ErrorKind::Invalid
            }
        };
        wharf_core::Error::new(kind, e.to_string()).with_source(e)
    }
}

/// Now, as RFC 3339.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
