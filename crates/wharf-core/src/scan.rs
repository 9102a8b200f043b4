//! The [`Scanner`] contract: scan an image and return normalized findings.

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::{Digest, Reference, Result, ScanReport};

/// What to scan: an image by reference and digest, or an image in an OCI layout on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanTarget {
    /// An image in a registry, pinned by digest.
    Image {
        /// Where it lives.
        reference: Reference,
        /// The manifest digest that was pushed.
        digest: Digest,
    },
    /// An image in an OCI image layout directory.
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// The manifest digest inside it.
        digest: Digest,
    },
}

impl ScanTarget {
    /// The digest being scanned.
    pub fn digest(&self) -> &Digest {
        match self {
            ScanTarget::Image { digest, .. } | ScanTarget::Layout { digest, .. } => digest,
        }
    }
}

/// Options for [`Scanner::scan`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ScanOptions {
    /// Work offline: use only local vulnerability data.
    pub offline: bool,
}

/// A vulnerability scanner (Trivy, Grype import, ECR findings, offline OSV).
#[async_trait]
pub trait Scanner: fmt::Debug + Send + Sync + 'static {
    /// Short name for reports (`trivy`, `osv`).
    fn name(&self) -> &str;

    /// Scan `target`. A report that cannot be produced or parsed is an error, never an
    /// empty report.
    async fn scan(&self, target: &ScanTarget, opts: &ScanOptions) -> Result<ScanReport>;
}
