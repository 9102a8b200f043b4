//! What an ECR repository should look like — tag mutability (immutable except cosign's
//! signature tags, by default) and scan-on-push — and what bringing one to that policy
//! changed.

use std::fmt;

use aws_sdk_ecr::types::{
    ImageTagMutability, ImageTagMutabilityExclusionFilter, ImageTagMutabilityExclusionFilterType,
};

use crate::RegistryError;

/// The exclusion filter that keeps cosign's signature and attestation tags
/// (`sha256-<hex>.sig`, `sha256-<hex>.att`) writable in an immutable repository.
pub const SIGNATURE_TAG_FILTER: &str = "sha256-*";

/// At most this many exclusion filters per repository (an ECR limit).
const MAX_EXCLUSION_FILTERS: usize = 5;

/// The longest exclusion filter ECR accepts.
const MAX_FILTER_LEN: usize = 128;

/// Which tags of a repository can be moved to other content once pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagMutability {
    /// No tag can be overwritten. Cosign signatures cannot be added to or updated on an image
    /// either, since they live in `sha256-<hex>.sig` tags.
    Immutable,
    /// Tags are immutable except those matching one of these wildcard filters (`*` matches
    /// any run of characters; at most 5 filters of `[0-9a-zA-Z._*-]`, 1 to 128 characters
    /// each). The default: `["sha256-*"]` ([`SIGNATURE_TAG_FILTER`]).
    ImmutableWithExclusion(Vec<String>),
    /// Every tag can be overwritten.
    Mutable,
    /// Tags can be overwritten except those matching one of these wildcard filters. Only
    /// ever reported for repositories configured elsewhere; wharf does not recommend it.
    MutableWithExclusion(Vec<String>),
}

impl Default for TagMutability {
    /// [`TagMutability::ImmutableWithExclusion`] of [`SIGNATURE_TAG_FILTER`].
    fn default() -> Self {
        TagMutability::ImmutableWithExclusion(vec![SIGNATURE_TAG_FILTER.to_owned()])
    }
}

impl TagMutability {
    /// The exclusion filters, empty for [`TagMutability::Immutable`] and
    /// [`TagMutability::Mutable`].
    pub fn exclusion_filters(&self) -> &[String] {
        match self {
            TagMutability::Immutable | TagMutability::Mutable => &[],
            TagMutability::ImmutableWithExclusion(f) | TagMutability::MutableWithExclusion(f) => f,
        }
    }

    /// The ECR API's name of the setting (`IMMUTABLE_WITH_EXCLUSION`).
    pub fn as_str(&self) -> &'static str {
        match self {
            TagMutability::Immutable => "IMMUTABLE",
            TagMutability::ImmutableWithExclusion(_) => "IMMUTABLE_WITH_EXCLUSION",
            TagMutability::Mutable => "MUTABLE",
            TagMutability::MutableWithExclusion(_) => "MUTABLE_WITH_EXCLUSION",
        }
    }

    /// True when both name the same setting with the same set of filters (in any order).
    pub(super) fn same_as(&self, other: &TagMutability) -> bool {
        let sorted = |m: &TagMutability| {
            let mut f = m.exclusion_filters().to_vec();
            f.sort();
            f.dedup();
            f
        };
        self.as_str() == other.as_str() && sorted(self) == sorted(other)
    }

    /// The SDK's setting and filters; checks the filters as ECR would.
    pub(super) fn to_sdk(
        &self,
        repo: &str,
    ) -> Result<
        (
            ImageTagMutability,
            Option<Vec<ImageTagMutabilityExclusionFilter>>,
        ),
        RegistryError,
    > {
        let mutability = match self {
            TagMutability::Immutable => ImageTagMutability::Immutable,
            TagMutability::ImmutableWithExclusion(_) => ImageTagMutability::ImmutableWithExclusion,
            TagMutability::Mutable => ImageTagMutability::Mutable,
            TagMutability::MutableWithExclusion(_) => ImageTagMutability::MutableWithExclusion,
        };
        let filters = match self {
            TagMutability::Immutable | TagMutability::Mutable => return Ok((mutability, None)),
            TagMutability::ImmutableWithExclusion(f) | TagMutability::MutableWithExclusion(f) => f,
        };
        let what = || format!("tag mutability {} of repository {repo}", self.as_str());
        if filters.is_empty() || filters.len() > MAX_EXCLUSION_FILTERS {
            return Err(RegistryError::invalid(
                what(),
                format!(
                    "give 1 to {MAX_EXCLUSION_FILTERS} exclusion filters (e.g. {SIGNATURE_TAG_FILTER:?}), or use IMMUTABLE"
                ),
            ));
        }
        let mut out = Vec::with_capacity(filters.len());
        for filter in filters {
            let valid = (1..=MAX_FILTER_LEN).contains(&filter.len())
                && filter
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'*' | b'-'));
            if !valid {
                return Err(RegistryError::invalid(
                    what(),
                    format!(
                        "exclusion filter {filter:?} must be 1 to {MAX_FILTER_LEN} characters of a-z, A-Z, 0-9, '.', '_', '-' and the wildcard '*'"
                    ),
                ));
            }
            let built = ImageTagMutabilityExclusionFilter::builder()
                .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter(filter)
                .build()
                .map_err(|e| RegistryError::invalid(what(), e.to_string()))?;
            out.push(built);
        }
        Ok((mutability, Some(out)))
    }

    /// The setting ECR reports, `None` for a value this version of wharf does not know.
    pub(super) fn from_sdk(
        mutability: Option<&ImageTagMutability>,
        filters: &[ImageTagMutabilityExclusionFilter],
    ) -> Option<Self> {
        let filters = || filters.iter().map(|f| f.filter().to_owned()).collect();
        Some(match mutability {
            // ECR's default when a repository is created without the setting.
            None | Some(ImageTagMutability::Mutable) => TagMutability::Mutable,
            Some(ImageTagMutability::Immutable) => TagMutability::Immutable,
            Some(ImageTagMutability::ImmutableWithExclusion) => {
                TagMutability::ImmutableWithExclusion(filters())
            }
            Some(ImageTagMutability::MutableWithExclusion) => {
                TagMutability::MutableWithExclusion(filters())
            }
            Some(_) => return None,
        })
    }
}

impl fmt::Display for TagMutability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        let filters = self.exclusion_filters();
        if !filters.is_empty() {
            write!(f, " ({})", filters.join(", "))?;
        }
        Ok(())
    }
}

/// The policy [`Ecr::ensure_repository`](super::Ecr::ensure_repository)(super::Ecr::ensure_repository) creates a repository with, or brings an existing
/// one to.
///
/// ```
/// use wharf_registry::ecr::{RepositorySettings, TagMutability};
/// let settings = RepositorySettings::default().with_tag_mutability(TagMutability::Immutable);
/// assert!(settings.scan_on_push);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepositorySettings {
    /// Which tags can be overwritten. Default: immutable except `sha256-*` (cosign's
    /// signature and attestation tags).
    pub tag_mutability: TagMutability,
    /// Scan each image when it is pushed (basic scanning). Default: true. When the registry
    /// has registry-level scanning rules (enhanced scanning), those decide instead.
    pub scan_on_push: bool,
}

impl Default for RepositorySettings {
    fn default() -> Self {
        Self {
            tag_mutability: TagMutability::default(),
            scan_on_push: true,
        }
    }
}

impl RepositorySettings {
    /// These settings with `tag_mutability`.
    #[must_use]
    pub fn with_tag_mutability(mut self, tag_mutability: TagMutability) -> Self {
        self.tag_mutability = tag_mutability;
        self
    }

    /// These settings with `scan_on_push`.
    #[must_use]
    pub fn with_scan_on_push(mut self, scan_on_push: bool) -> Self {
        self.scan_on_push = scan_on_push;
        self
    }
}

/// What [`Ecr::ensure_repository`](super::Ecr::ensure_repository)(super::Ecr::ensure_repository) did to a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepositoryChange {
    /// The repository did not exist and was created with the settings.
    Created,
    /// The tag mutability was changed.
    TagMutability {
        /// The setting before; `None` when ECR reported one this version of wharf does not
        /// know.
        from: Option<TagMutability>,
        /// The setting now.
        to: TagMutability,
    },
    /// Scan-on-push was switched.
    ScanOnPush {
        /// Before.
        from: bool,
        /// Now.
        to: bool,
    },
}

impl fmt::Display for RepositoryChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepositoryChange::Created => f.write_str("created"),
            RepositoryChange::TagMutability {
                from: Some(from),
                to,
            } => {
                write!(f, "tag mutability changed from {from} to {to}")
            }
            RepositoryChange::TagMutability { from: None, to } => {
                write!(f, "tag mutability changed from an unknown setting to {to}")
            }
            RepositoryChange::ScanOnPush { from, to } => {
                write!(f, "scan on push changed from {from} to {to}")
            }
        }
    }
}

/// An ECR repository as [`Ecr::ensure_repository`](super::Ecr::ensure_repository)(super::Ecr::ensure_repository) left it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Repository {
    /// The repository name (`models/fraud`).
    pub name: String,
    /// Its URI, the reference prefix of its images
    /// (`123456789012.dkr.ecr.eu-west-1.amazonaws.com/models/fraud`).
    pub uri: String,
    /// The account (registry) it belongs to.
    pub registry_id: String,
    /// Which tags can be overwritten.
    pub tag_mutability: TagMutability,
    /// Whether images are scanned on push.
    pub scan_on_push: bool,
    /// What this call changed, in order; empty when the repository already matched.
    pub changes: Vec<RepositoryChange>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_core::ErrorKind;

    #[test]
    fn mutability_compares_filters_as_sets() {
        let a = TagMutability::ImmutableWithExclusion(vec!["a*".into(), "sha256-*".into()]);
        let b = TagMutability::ImmutableWithExclusion(vec!["sha256-*".into(), "a*".into()]);
        assert!(a.same_as(&b));
        assert!(!a.same_as(&TagMutability::default()));
        assert!(!TagMutability::Immutable.same_as(&TagMutability::Mutable));
    }

    #[test]
    fn bad_filters_are_refused_before_any_call() {
        for filters in [
            vec![],
            vec!["sha256-(.*)".to_owned()],
            vec!["x".repeat(129)],
        ] {
            let err = TagMutability::ImmutableWithExclusion(filters)
                .to_sdk("models/fraud")
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
            assert!(err.to_string().contains("models/fraud"), "{err}");
        }
        let six = vec!["a*".to_owned(); 6];
        assert!(
            TagMutability::ImmutableWithExclusion(six)
                .to_sdk("r")
                .is_err()
        );
    }
}
