//! The [`Registry`] contract: blobs and manifests by digest, tags, and referrers.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;

use crate::{Descriptor, Digest, Result};

/// A stream of blob bytes. Blobs can be gigabytes: pass them as streams, never as one buffer.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// A blob stream over bytes already in memory (small blobs: configs, signatures, tests).
pub fn blob_stream_from(bytes: impl Into<Bytes>) -> BlobStream {
    let b: Bytes = bytes.into();
    Box::pin(futures_util::stream::once(async move { Ok(b) }))
}

/// Collect a blob stream into memory. For small blobs only (manifests, configs, signatures).
pub async fn collect_blob(mut stream: BlobStream, limit: u64) -> Result<Bytes> {
    use futures_util::StreamExt;
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(crate::Error::invalid(format!(
                "blob is larger than the {limit}-byte limit for in-memory reads; stream it instead"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// Options for [`Registry::push_blob`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PushBlobOptions {
    /// The blob's size, when known (lets a registry choose monolithic or chunked upload).
    pub size: Option<u64>,
    /// A repository on the same registry that may already hold the blob (cross-repo mount).
    pub mount_from: Option<String>,
}

/// Options for [`Registry::push_manifest`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PushManifestOptions {
    /// Tag to point at the manifest once it is stored.
    pub tag: Option<String>,
    /// What `tag` must hold for the push to move it: a compare-and-swap on the tag, so
    /// concurrent writers neither move an immutable tag nor drop each other's update.
    pub if_tag: TagPrecondition,
}

impl PushManifestOptions {
    /// Push and tag.
    pub fn tagged(tag: impl Into<String>) -> Self {
        Self {
            tag: Some(tag.into()),
            if_tag: TagPrecondition::Any,
        }
    }

    /// Only move the tag when it satisfies `condition` (see [`TagPrecondition`]).
    pub fn if_tag(mut self, condition: TagPrecondition) -> Self {
        self.if_tag = condition;
        self
    }
}

/// What a tag must hold for [`Registry::push_manifest`] to point it at the pushed manifest.
///
/// A tag that already holds the pushed manifest always satisfies the condition (a re-push is
/// idempotent). Otherwise the push fails with [`crate::ErrorKind::Conflict`], naming what the
/// tag holds. The OCI layout and the in-memory registry check and move the tag in one atomic
/// step; over the distribution API, which has no conditional tag update, the client checks
/// before the push and re-resolves the tag after it, so a concurrent writer is detected but
/// the window between the two is not closed (registries with immutable tags, such as ECR,
/// close it on the server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagPrecondition {
    /// Move the tag whatever it holds.
    #[default]
    Any,
    /// The tag must not exist yet: immutable tags.
    Absent,
    /// The tag must hold this manifest: a read-modify-write (adding a signature layer).
    Holds(Digest),
}

impl TagPrecondition {
    /// The precondition that the tag still holds what was read: `Holds(d)`, or `Absent`
    /// when nothing was there.
    pub fn unchanged_from(read: Option<&Digest>) -> Self {
        match read {
            Some(d) => Self::Holds(d.clone()),
            None => Self::Absent,
        }
    }

    /// Check the tag `repo:tag`, which holds `current`, before pointing it at `pushing`.
    pub fn check(
        &self,
        repo: &str,
        tag: &str,
        current: Option<&Digest>,
        pushing: &Digest,
    ) -> Result<()> {
        if current == Some(pushing) {
            return Ok(());
        }
        let holds = || current.map_or_else(|| "nothing".to_owned(), |d| d.to_string());
        match self {
            Self::Any => Ok(()),
            Self::Absent if current.is_none() => Ok(()),
            Self::Holds(expected) if current == Some(expected) => Ok(()),
            Self::Absent => Err(crate::Error::conflict(format!(
                "tag {repo}:{tag} already holds {} and tags are immutable: not moving it to {pushing}",
                holds()
            ))),
            Self::Holds(expected) => Err(crate::Error::conflict(format!(
                "tag {repo}:{tag} changed while it was being updated (it holds {}, not {expected}): another writer got there first",
                holds()
            ))),
        }
    }
}

/// Options for [`Registry::list_tags`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListTagsOptions {
    /// Return at most this many tags (all when `None`).
    pub limit: Option<usize>,
}

/// Options for [`Registry::referrers`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReferrersOptions {
    /// Only referrers of this artifact type.
    pub artifact_type: Option<String>,
}

impl ReferrersOptions {
    /// Filter by artifact type.
    pub fn of_type(artifact_type: impl Into<String>) -> Self {
        Self {
            artifact_type: Some(artifact_type.into()),
        }
    }
}

/// A manifest as stored: its descriptor and its exact bytes (the digest is over these bytes,
/// so they are never re-serialized).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestBytes {
    /// Media type, digest and size.
    pub descriptor: Descriptor,
    /// The exact bytes.
    pub bytes: Bytes,
}

impl ManifestBytes {
    /// Wrap bytes with their media type; the digest is computed here.
    pub fn new(media_type: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        Self {
            descriptor: Descriptor::for_bytes(media_type, &bytes),
            bytes,
        }
    }
}

/// An OCI registry, or anything that stores content like one (an on-disk OCI layout, ECR,
/// memory).
///
/// `repo` is a repository path inside the registry (`models/fraud`). Every method that
/// returns content verifies it against its digest. Implementations never tag content that
/// was not completely stored.
#[async_trait]
pub trait Registry: fmt::Debug + fmt::Display + Send + Sync + 'static {
    /// The size of a blob if it exists, `None` if it does not.
    async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<Option<u64>>;

    /// Store a blob whose digest is known in advance, streaming `data`. Fails with
    /// [`crate::ErrorKind::Integrity`] when the bytes do not hash to `digest`, and stores
    /// nothing then.
    async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        data: BlobStream,
        opts: &PushBlobOptions,
    ) -> Result<Descriptor>;

    /// Stream a blob; the stream ends with an [`crate::ErrorKind::Integrity`] error if the
    /// bytes do not match the digest.
    async fn fetch_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream>;

    /// Store a manifest (or index) and optionally tag it. All blobs and manifests it names
    /// must already be stored.
    async fn push_manifest(
        &self,
        repo: &str,
        manifest: &ManifestBytes,
        opts: &PushManifestOptions,
    ) -> Result<Descriptor>;

    /// Fetch a manifest by digest, verified.
    async fn fetch_manifest(&self, repo: &str, digest: &Digest) -> Result<ManifestBytes>;

    /// Resolve a tag to its manifest's descriptor.
    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Descriptor>;

    /// Point `tag` at an already stored manifest.
    async fn tag(&self, repo: &str, digest: &Digest, tag: &str) -> Result<()>;

    /// The repository's tags, sorted.
    async fn list_tags(&self, repo: &str, opts: &ListTagsOptions) -> Result<Vec<String>>;

    /// Manifests whose `subject` is `subject` (OCI 1.1 referrers), falling back to the
    /// `sha256-<hex>` tag schema where the registry has no referrers API.
    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        opts: &ReferrersOptions,
    ) -> Result<Vec<Descriptor>>;

    /// Store the file at `path` as the blob `desc` without copying it, where the registry
    /// keeps blobs as files on the same filesystem (the OCI layout links it in); `Ok(None)`
    /// where it cannot, and the caller streams the file with [`Registry::push_blob`].
    ///
    /// For packagers that hash a blob while writing it: the caller vouches that the file
    /// holds exactly `desc.size` bytes hashing to `desc.digest`, and must not change it
    /// afterwards (it may delete it). The blob replaces a stored copy, so a damaged one is
    /// repaired. This writes each layer once instead of twice. The default answers `Ok(None)`.
    async fn import_blob_file(
        &self,
        repo: &str,
        desc: &Descriptor,
        path: &std::path::Path,
    ) -> Result<Option<Descriptor>> {
        let _ = (repo, desc, path);
        Ok(None)
    }

    /// Whether the registry serves the OCI 1.1 referrers API for `repo`; `false` means
    /// referrers are found through the `sha256-<hex>` tag schema (what clients choosing a
    /// signature format probe). The default answers `false`.
    async fn has_referrers_api(&self, repo: &str) -> Result<bool> {
        let _ = repo;
        Ok(false)
    }
}

/// Validate a tag against the OCI grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        Ok(())
    } else {
        Err(crate::Error::invalid(format!(
            "invalid tag {tag:?}: up to 128 of letters, digits, '_', '.', '-', not starting with '.' or '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        validate_tag("3f2a9c1").unwrap();
        validate_tag("sha256-abc.sig").unwrap();
        validate_tag("_x").unwrap();
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn collect_respects_limit() {
        let got =
            futures::executor::block_on(collect_blob(blob_stream_from(&b"abc"[..]), 3)).unwrap();
        assert_eq!(&got[..], b"abc");
        let err = futures::executor::block_on(collect_blob(blob_stream_from(&b"abcd"[..]), 3))
            .unwrap_err();
        assert!(err.to_string().contains("3-byte limit"));
    }
}
