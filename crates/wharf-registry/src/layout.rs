//! An OCI image layout on disk as a [`Registry`]: the embedded default.
//!
//! Each repository is its own layout directory, `<root>/<repo>/` with `oci-layout`,
//! `index.json` and `blobs/<alg>/<hex>`, so `skopeo copy oci:<root>/<repo>:<tag> …`,
//! `umoci` and `trivy image --input <root>/<repo>` read what wharf writes. Tags are the
//! `org.opencontainers.image.ref.name` annotation of `index.json` entries; untagged
//! manifests (referrers such as signatures) are listed too, so referrers can be found.
//!
//! Blobs are written to a temporary file while being hashed, checked against their digest,
//! synced, and renamed into place: a blob either exists complete or not at all. `index.json`
//! is replaced atomically under a lock file, so concurrent writers (threads or processes)
//! never lose a tag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use wharf_core::registry::{
    BlobStream, ListTagsOptions, ManifestBytes, PushBlobOptions, PushManifestOptions,
    ReferrersOptions, validate_tag,
};
use wharf_core::{Descriptor, Digest, Hasher, ImageIndex, ImageManifest, Registry, media_types};

use crate::RegistryError;

/// The annotation holding a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Largest manifest read into memory.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A directory of OCI image layouts, one per repository.
///
/// ```no_run
/// # async fn demo() -> wharf_core::Result<()> {
/// use wharf_core::Registry;
/// let reg = wharf_registry::layout::LayoutRegistry::open(".wharf/oci")?;
/// let tags = reg.list_tags("models/fraud-detector", &Default::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LayoutRegistry {
    root: PathBuf,
    lock: tokio::sync::Mutex<()>,
    verify_reused: bool,
    /// One layout at the root that every repository name maps to ([`LayoutRegistry::open_layout`]).
    single: bool,
}

/// Temp files (blobs being written, staged layers) live here, under the root but outside
/// every layout's `blobs/`, so `umoci gc` and other readers of a layout never see them.
pub const TEMP_DIR: &str = ".wharf-tmp";
/// Where the pipeline stages packaged layers, under the root (outside every layout):
/// [`crate::package::package_modelpack`]'s files there are named for their process, so
/// `fsck` and later runs remove those of killed runs.
pub const STAGING_DIR: &str = ".staging";
/// Existing blobs up to this size are re-hashed before being reused (cheap); larger ones
/// are checked by size, and re-hashed only with [`LayoutRegistry::verify_reused_blobs`].
pub const REHASH_REUSED_UP_TO: u64 = 4 << 20;

impl std::fmt::Display for LayoutRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci:{}", self.root.display())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl Default for IndexFile {
    fn default() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.to_owned()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

impl LayoutRegistry {
    /// Open (creating if needed) a directory of layouts.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| RegistryError::io("creating", &root, e))?;
        // Temp files of writers that were killed (their process is gone) take disk forever
        // otherwise: a killed push of a multi-GB layer leaves as much behind.
        crate::tempfiles::remove_stale(&root.join(TEMP_DIR));
        Ok(Self {
            root,
            lock: tokio::sync::Mutex::new(()),
            verify_reused: false,
            single: false,
        })
    }

    /// Open (creating if needed) one OCI image layout directory — as `skopeo copy …
    /// oci:DIR` or `umoci` write it — that every repository name maps to: tags are the
    /// layout's `org.opencontainers.image.ref.name`s, whatever repository a call names.
    pub fn open_layout(dir: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        Ok(Self {
            single: true,
            ..Self::open(dir)?
        })
    }

    /// Re-hash every existing blob before reusing it, whatever its size (by default only
    /// blobs up to [`REHASH_REUSED_UP_TO`] are; larger ones are checked by size).
    pub fn verify_reused_blobs(mut self, yes: bool) -> Self {
        self.verify_reused = yes;
        self
    }

    /// A new temp file path under the root's [`TEMP_DIR`] (created), named for this process.
    fn temp_path(&self, what: &str) -> Result<PathBuf, RegistryError> {
        let dir = self.root.join(TEMP_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| RegistryError::io("creating", &dir, e))?;
        Ok(dir.join(crate::tempfiles::name(what)))
    }

    /// Whether the blob at `path` (`len` bytes) can be reused as `digest`: its size is the
    /// expected one, and where cheap (or asked for) it hashes to `digest`.
    async fn reusable(
        &self,
        path: &Path,
        digest: &Digest,
        len: u64,
        expected: Option<u64>,
    ) -> Result<bool, RegistryError> {
        if expected.is_some_and(|n| n != len) {
            return Ok(false);
        }
        if len > REHASH_REUSED_UP_TO && !self.verify_reused {
            return Ok(true);
        }
        Ok(&hash_file(path, digest.algorithm()).await? == digest)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layout directory of `repo` (what `skopeo oci:` and `trivy --input` take).
    pub fn layout_dir(&self, repo: &str) -> Result<PathBuf, RegistryError> {
        validate_repo(repo)?;
        Ok(if self.single {
            self.root.clone()
        } else {
            self.root.join(repo)
        })
    }

    fn blob_path(&self, repo: &str, digest: &Digest) -> Result<PathBuf, RegistryError> {
        Ok(self
            .layout_dir(repo)?
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex()))
    }

    /// Create the layout skeleton of `repo` if missing.
    async fn ensure_layout(&self, repo: &str) -> Result<PathBuf, RegistryError> {
        let dir = self.layout_dir(repo)?;
        let marker = dir.join("oci-layout");
        if !crate::fs::exists(&marker).await {
            let blobs = dir.join("blobs").join("sha256");
            crate::fs::create_dir_all(&blobs)
                .await
                .map_err(|e| RegistryError::io("creating", &blobs, e))?;
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
        }
        let index = dir.join("index.json");
        if !crate::fs::exists(&index).await {
            let bytes = serde_json::to_vec(&IndexFile::default()).unwrap_or_default();
            write_atomic(&index, &bytes).await?;
        }
        Ok(dir)
    }

    async fn read_index(&self, repo: &str) -> Result<IndexFile, RegistryError> {
        let path = self.layout_dir(repo)?.join("index.json");
        match crate::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                RegistryError::invalid(
                    path.display().to_string(),
                    format!("not an OCI image index: {e}"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RegistryError::NotFound {
                what: format!("repository {repo}"),
                location: self.to_string(),
            }),
            Err(e) => Err(RegistryError::io("reading", path, e)),
        }
    }

    /// Change `index.json` under the in-process lock and a lock file (for other processes).
    async fn update_index<T>(
        &self,
        repo: &str,
        change: impl FnOnce(&mut IndexFile) -> wharf_core::Result<T>,
    ) -> wharf_core::Result<T> {
        let _guard = self.lock.lock().await;
        let dir = self.ensure_layout(repo).await?;
        let _file_lock = FileLock::acquire(dir.join("index.json.lock")).await?;
        let mut index = self.read_index(repo).await?;
        let out = change(&mut index)?;
        let bytes = serde_json::to_vec(&index)
            .map_err(|e| RegistryError::invalid("index.json", format!("cannot serialize: {e}")))?;
        write_atomic(&dir.join("index.json"), &bytes).await?;
        Ok(out)
    }

    async fn read_small(
        &self,
        repo: &str,
        digest: &Digest,
        what: &str,
    ) -> Result<Bytes, RegistryError> {
        let path = self.blob_path(repo, digest)?;
        let bytes = match crate::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::NotFound {
                    what: format!("{what} {digest}"),
                    location: format!("{self}/{repo}"),
                });
            }
            Err(e) => return Err(RegistryError::io("reading", path, e)),
        };
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(RegistryError::invalid(
                format!("{what} {digest}"),
                "larger than the 4 MiB manifest limit",
            ));
        }
        let actual = Digest::sha256_of(&bytes);
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("{what} at {}", path.display()),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(Bytes::from(bytes))
    }

    /// Store a file already on disk as a blob, streaming it (used by packaging).
    pub async fn push_blob_file(
        &self,
        repo: &str,
        path: &Path,
        digest: &Digest,
    ) -> Result<Descriptor, RegistryError> {
        let size = crate::fs::metadata(path)
            .await
            .map_err(|e| RegistryError::io("reading", path, e))?
            .len();
        let mut opts = PushBlobOptions::default();
        opts.size = Some(size);
        self.store_blob(
            repo,
            digest,
            crate::package::file_stream(path).await?,
            &opts,
        )
        .await
    }

    async fn store_blob(
        &self,
        repo: &str,
        digest: &Digest,
        mut data: BlobStream,
        opts: &PushBlobOptions,
    ) -> Result<Descriptor, RegistryError> {
        let dir = self.ensure_layout(repo).await?;
        let final_path = self.blob_path(repo, digest)?;
        if let Ok(meta) = crate::fs::metadata(&final_path).await {
            // Content-addressed: an intact existing blob is the same blob. A damaged one
            // (truncated, or failing its digest where that is checked) is replaced below
            // with the bytes being pushed, which are verified as they are written.
            if self
                .reusable(&final_path, digest, meta.len(), opts.size)
                .await?
            {
                return Ok(Descriptor::new(
                    "application/octet-stream",
                    digest.clone(),
                    meta.len(),
                ));
            }
            tracing::warn!(path = %final_path.display(), "replacing a damaged blob");
        }
        let alg_dir = dir.join("blobs").join(digest.algorithm().as_str());
        crate::fs::create_dir_all(&alg_dir)
            .await
            .map_err(|e| RegistryError::io("creating", &alg_dir, e))?;
        let tmp = self.temp_path(digest.hex())?;
        let result = async {
            let mut file = crate::fs::File::create(&tmp)
                .await
                .map_err(|e| RegistryError::io("creating", &tmp, e))?;
            let mut hasher = Hasher::new(digest.algorithm());
            while let Some(chunk) = data.next().await {
                let chunk = chunk.map_err(|e| RegistryError::Transport {
                    url: format!("blob {digest} source"),
                    source: Box::new(e),
                })?;
                hasher.update(&chunk);
                file.write_all(chunk)
                    .await
                    .map_err(|e| RegistryError::io("writing", &tmp, e))?;
            }
            file.sync_all()
                .await
                .map_err(|e| RegistryError::io("syncing", &tmp, e))?;
            let size = hasher.len();
            let actual = hasher.finish();
            if &actual != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("blob for {repo}"),
                    expected: digest.to_string(),
                    actual: actual.to_string(),
                });
            }
            if let Some(expected) = opts.size
                && expected != size
            {
                return Err(RegistryError::invalid(
                    format!("blob {digest}"),
                    format!("is {size} bytes, not the declared {expected}"),
                ));
            }
            crate::fs::rename(&tmp, &final_path)
                .await
                .map_err(|e| RegistryError::io("renaming", &tmp, e))?;
            Ok(Descriptor::new(
                "application/octet-stream",
                digest.clone(),
                size,
            ))
        }
        .await;
        if result.is_err() {
            let _ = crate::fs::remove_file(&tmp).await;
        }
        result
    }
}

/// Repository names: lowercase path components `[a-z0-9]+([._-][a-z0-9]+)*` joined by `/`.
fn validate_repo(repo: &str) -> Result<(), RegistryError> {
    let ok = !repo.is_empty()
        && repo.len() <= 255
        && repo.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        });
    if ok {
        Ok(())
    } else {
        Err(RegistryError::invalid(
            format!("repository {repo:?}"),
            "use lowercase path components of letters, digits and . _ - (like models/fraud-detector)",
        ))
    }
}

/// The digest of a file, streamed through a fixed buffer (off the executor's threads).
async fn hash_file(path: &Path, algorithm: wharf_core::Algorithm) -> Result<Digest, RegistryError> {
    let p = path.to_path_buf();
    wharf_core::blocking::unblock(move || {
        let f = std::fs::File::open(&p).map_err(|e| RegistryError::io("reading", &p, e))?;
        Digest::from_reader(algorithm, f)
            .map(|(digest, _)| digest)
            .map_err(|e| RegistryError::io("reading", &p, e))
    })
    .await
}

/// Write `bytes` to a temp file beside `path`, sync, and rename over `path`.
async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}", crate::tempfiles::name("tmp")));
    let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
    wharf_core::blocking::unblock(move || {
        use std::io::Write;
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(RegistryError::io("writing", &tmp, e));
        }
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            RegistryError::io("renaming", &tmp, e)
        })
    })
    .await
}

/// An exclusive lock file holding the owner's pid; a lock left by a dead process is broken.
struct FileLock {
    path: PathBuf,
}

impl FileLock {
    async fn acquire(path: PathBuf) -> Result<Self, RegistryError> {
        let start = std::time::Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    let dead =
                        owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                    if dead {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if start.elapsed() > LOCK_TIMEOUT {
                        return Err(RegistryError::invalid(
                            path.display().to_string(),
                            format!(
                                "locked by process {} for over 30 s; remove the file if that process is gone",
                                owner.unwrap_or(0)
                            ),
                        ));
                    }
                    wharf_core::blocking::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(RegistryError::io("locking", &path, e)),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn descriptor_for(manifest: &ManifestBytes) -> Descriptor {
    let mut d = manifest.descriptor.clone();
    if let Ok(m) = ImageManifest::from_slice(&manifest.bytes, "manifest") {
        d.artifact_type = m.artifact_type.clone();
    }
    d
}

#[async_trait]
impl Registry for LayoutRegistry {
    async fn blob_exists(&self, repo: &str, digest: &Digest) -> wharf_core::Result<Option<u64>> {
        let path = self.blob_path(repo, digest)?;
        match crate::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::io("reading", path, e).into()),
        }
    }

    async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        data: BlobStream,
        opts: &PushBlobOptions,
    ) -> wharf_core::Result<Descriptor> {
        Ok(self.store_blob(repo, digest, data, opts).await?)
    }

    async fn import_blob_file(
        &self,
        repo: &str,
        desc: &Descriptor,
        path: &Path,
    ) -> wharf_core::Result<Option<Descriptor>> {
        let len = crate::fs::metadata(path)
            .await
            .map_err(|e| RegistryError::io("reading", path, e))?
            .len();
        if len != desc.size {
            return Err(RegistryError::invalid(
                format!("{} (blob {})", path.display(), desc.digest),
                format!("is {len} bytes, not the {} its packager wrote", desc.size),
            )
            .into());
        }
        let dir = self.ensure_layout(repo).await?;
        let alg_dir = dir.join("blobs").join(desc.digest.algorithm().as_str());
        crate::fs::create_dir_all(&alg_dir)
            .await
            .map_err(|e| RegistryError::io("creating", &alg_dir, e))?;
        let final_path = self.blob_path(repo, &desc.digest)?;
        // A second name for the same data (no copy), then renamed over any stored copy: the
        // caller's file stays usable, and a damaged blob is replaced by the fresh one.
        let tmp = self.temp_path(desc.digest.hex())?;
        match crate::fs::hard_link(path, &tmp).await {
            Ok(()) => {}
            // Another filesystem (or one without hard links): the caller streams it.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::CrossesDevices | std::io::ErrorKind::Unsupported
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(RegistryError::io("linking into the layout", path, e).into()),
        }
        if let Err(e) = crate::fs::rename(&tmp, &final_path).await {
            let _ = crate::fs::remove_file(&tmp).await;
            return Err(RegistryError::io("moving into the layout", &tmp, e).into());
        }
        Ok(Some(Descriptor::new(
            "application/octet-stream",
            desc.digest.clone(),
            len,
        )))
    }

    async fn fetch_blob(&self, repo: &str, digest: &Digest) -> wharf_core::Result<BlobStream> {
        let path = self.blob_path(repo, digest)?;
        let (file, len) = match crate::fs::open_with_len(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::NotFound {
                    what: format!("blob {digest}"),
                    location: format!("{self}/{repo}"),
                }
                .into());
            }
            Err(e) => return Err(RegistryError::io("opening", path, e).into()),
        };
        Ok(verified_stream(
            crate::fs::chunks(file, len, 1 << 20),
            digest.clone(),
            path,
        ))
    }

    async fn push_manifest(
        &self,
        repo: &str,
        manifest: &ManifestBytes,
        opts: &PushManifestOptions,
    ) -> wharf_core::Result<Descriptor> {
        let desc = descriptor_for(manifest);
        let actual = Digest::sha256_of(&manifest.bytes);
        if actual != desc.digest {
            return Err(RegistryError::DigestMismatch {
                what: "manifest".into(),
                expected: desc.digest.to_string(),
                actual: actual.to_string(),
            }
            .into());
        }
        if let Some(tag) = &opts.tag {
            validate_tag(tag)?;
        }
        // Everything the manifest names must be stored first: nothing half-pushed is tagged.
        let what = format!("manifest {}", desc.digest);
        let children: Vec<Digest> = if matches!(
            desc.media_type.as_str(),
            media_types::OCI_INDEX | media_types::DOCKER_MANIFEST_LIST
        ) {
            ImageIndex::from_slice(&manifest.bytes, &what)?
                .manifests
                .into_iter()
                .map(|d| d.digest)
                .collect()
        } else {
            let m = ImageManifest::from_slice(&manifest.bytes, &what)?;
            std::iter::once(m.config)
                .chain(m.layers)
                .map(|d| d.digest)
                .collect()
        };
        for child in children {
            if self.blob_exists(repo, &child).await?.is_none() {
                return Err(RegistryError::NotFound {
                    what: format!("{child} (named by {what}; push it first)"),
                    location: format!("{self}/{repo}"),
                }
                .into());
            }
        }
        self.store_blob(
            repo,
            &desc.digest,
            wharf_core::registry::blob_stream_from(manifest.bytes.clone()),
            &PushBlobOptions::default(),
        )
        .await?;
        let tag = opts.tag.clone();
        let entry = desc.clone();
        let condition = opts.if_tag.clone();
        // The precondition is checked and the tag moved under the index lock: one step for
        // every process sharing the layout.
        self.update_index(repo, move |index| {
            if let Some(tag) = tag.as_deref() {
                let current = tagged(index, tag).map(|d| d.digest.clone());
                condition.check(repo, tag, current.as_ref(), &entry.digest)?;
            }
            add_entry(index, entry, tag.as_deref());
            Ok(())
        })
        .await?;
        Ok(desc)
    }

    async fn fetch_manifest(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> wharf_core::Result<ManifestBytes> {
        let bytes = self.read_small(repo, digest, "manifest").await?;
        let index = self.read_index(repo).await?;
        let media_type = index
            .manifests
            .iter()
            .find(|d| &d.digest == digest)
            .map(|d| d.media_type.clone())
            .or_else(|| sniff_media_type(&bytes))
            .ok_or_else(|| RegistryError::NotFound {
                what: format!("manifest {digest}"),
                location: format!("{self}/{repo}"),
            })?;
        Ok(ManifestBytes::new(media_type, bytes))
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> wharf_core::Result<Descriptor> {
        let index = self.read_index(repo).await?;
        let mut d = index
            .manifests
            .into_iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
            .ok_or_else(|| RegistryError::NotFound {
                what: format!("tag {tag}"),
                location: format!("{self}/{repo}"),
            })?;
        d.annotations.remove(REF_NAME);
        Ok(d)
    }

    async fn tag(&self, repo: &str, digest: &Digest, tag: &str) -> wharf_core::Result<()> {
        validate_tag(tag)?;
        let index = self.read_index(repo).await?;
        let mut entry = index
            .manifests
            .into_iter()
            .find(|d| &d.digest == digest)
            .ok_or_else(|| RegistryError::NotFound {
                what: format!("manifest {digest}"),
                location: format!("{self}/{repo}"),
            })?;
        entry.annotations.remove(REF_NAME);
        let tag = tag.to_owned();
        Ok(self
            .update_index(repo, move |index| {
                add_entry(index, entry, Some(&tag));
                Ok(())
            })
            .await?)
    }

    async fn list_tags(
        &self,
        repo: &str,
        opts: &ListTagsOptions,
    ) -> wharf_core::Result<Vec<String>> {
        let index = self.read_index(repo).await?;
        let mut tags: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).cloned())
            .collect();
        tags.sort();
        tags.dedup();
        tags.truncate(opts.limit.unwrap_or(usize::MAX));
        Ok(tags)
    }

    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        opts: &ReferrersOptions,
    ) -> wharf_core::Result<Vec<Descriptor>> {
        let index = match self.read_index(repo).await {
            Ok(i) => i,
            Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for d in index.manifests {
            if !seen.insert(d.digest.clone()) || d.media_type != media_types::OCI_MANIFEST {
                continue;
            }
            let bytes = self.read_small(repo, &d.digest, "manifest").await?;
            let Ok(m) = ImageManifest::from_slice(&bytes, "referrer") else {
                continue;
            };
            if m.subject.as_ref().map(|s| &s.digest) != Some(subject) {
                continue;
            }
            let artifact_type = m.effective_artifact_type().to_owned();
            if opts
                .artifact_type
                .as_ref()
                .is_some_and(|t| *t != artifact_type)
            {
                continue;
            }
            let mut r = Descriptor::new(media_types::OCI_MANIFEST, d.digest, d.size);
            r.artifact_type = Some(artifact_type);
            r.annotations = m.annotations;
            out.push(r);
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }
}

/// The entry `tag` names in the index.
fn tagged<'a>(index: &'a IndexFile, tag: &str) -> Option<&'a Descriptor> {
    index
        .manifests
        .iter()
        .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
}

/// Add `entry` to the index: with a tag, the tag moves here; without, an untagged entry is
/// added once.
fn add_entry(index: &mut IndexFile, mut entry: Descriptor, tag: Option<&str>) {
    entry.annotations.remove(REF_NAME);
    match tag {
        Some(tag) => {
            index
                .manifests
                .retain(|d| d.annotations.get(REF_NAME).map(String::as_str) != Some(tag));
            // An untagged entry of the same manifest is superseded by the tagged one.
            index
                .manifests
                .retain(|d| d.digest != entry.digest || d.annotations.contains_key(REF_NAME));
            entry
                .annotations
                .insert(REF_NAME.to_owned(), tag.to_owned());
            index.manifests.push(entry);
        }
        None => {
            if !index.manifests.iter().any(|d| d.digest == entry.digest) {
                index.manifests.push(entry);
            }
        }
    }
}

fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    Some(p.media_type.unwrap_or_else(|| {
        if p.manifests.is_some() {
            media_types::OCI_INDEX
        } else {
            media_types::OCI_MANIFEST
        }
        .to_owned()
    }))
}

/// Wrap a byte stream so it is hashed as it flows; a mismatch ends it with an Integrity
/// error instead of a clean end.
pub(crate) fn verified_stream<S>(inner: S, digest: Digest, origin: PathBuf) -> BlobStream
where
    S: futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    let state = (
        Box::pin(inner),
        Some(Hasher::new(digest.algorithm())),
        digest,
        origin,
    );
    Box::pin(futures_util::stream::unfold(
        state,
        |(mut inner, hasher, digest, origin)| async move {
            let mut hasher = hasher?;
            match inner.next().await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    Some((Ok(chunk), (inner, Some(hasher), digest, origin)))
                }
                Some(Err(e)) => Some((
                    Err(RegistryError::io("reading", origin.clone(), e).into()),
                    (inner, None, digest, origin),
                )),
                None => {
                    let actual = hasher.finish();
                    if actual == digest {
                        None
                    } else {
                        let err = RegistryError::DigestMismatch {
                            what: format!("blob at {}", origin.display()),
                            expected: digest.to_string(),
                            actual: actual.to_string(),
                        };
                        Some((Err(err.into()), (inner, None, digest, origin)))
                    }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_core::ErrorKind;

    #[tokio::test]
    async fn layout_registry_conforms() {
        let root = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::open(root.path()).unwrap();
        wharf_core::conformance::registry(&reg, "wharf").await;
    }

    #[tokio::test]
    async fn writes_a_valid_oci_layout() {
        let root = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::open(root.path()).unwrap();
        let cfg = Descriptor::for_bytes(media_types::OCI_EMPTY, b"{}");
        reg.push_blob(
            "a/b",
            &cfg.digest,
            wharf_core::registry::blob_stream_from(&b"{}"[..]),
            &Default::default(),
        )
        .await
        .unwrap();
        let m = ManifestBytes::new(
            media_types::OCI_MANIFEST,
            ImageManifest::new(cfg, vec![]).to_vec(),
        );
        reg.push_manifest("a/b", &m, &PushManifestOptions::tagged("v1"))
            .await
            .unwrap();
        let dir = root.path().join("a/b");
        assert_eq!(
            std::fs::read_to_string(dir.join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["manifests"][0]["annotations"][REF_NAME], "v1");
        assert_eq!(
            index["manifests"][0]["digest"],
            m.descriptor.digest.to_string()
        );
        assert!(
            dir.join("blobs/sha256")
                .join(m.descriptor.digest.hex())
                .is_file()
        );
        // Moving the tag keeps one entry per tag and no temp files behind.
        reg.tag("a/b", &m.descriptor.digest, "v2").await.unwrap();
        reg.tag("a/b", &m.descriptor.digest, "v2").await.unwrap();
        assert_eq!(
            reg.list_tags("a/b", &Default::default()).await.unwrap(),
            ["v1", "v2"]
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                n.starts_with('.').then_some(n)
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn concurrent_tagging_loses_nothing() {
        let root = tempfile::tempdir().unwrap();
        let reg = std::sync::Arc::new(LayoutRegistry::open(root.path()).unwrap());
        let cfg = Descriptor::for_bytes(media_types::OCI_EMPTY, b"{}");
        reg.push_blob(
            "r",
            &cfg.digest,
            wharf_core::registry::blob_stream_from(&b"{}"[..]),
            &Default::default(),
        )
        .await
        .unwrap();
        let mut handles = Vec::new();
        for i in 0..16 {
            let reg = reg.clone();
            let cfg = cfg.clone();
            handles.push(tokio::spawn(async move {
                let mut m = ImageManifest::new(cfg, vec![]);
                m.annotations.insert("i".into(), i.to_string());
                let m = ManifestBytes::new(media_types::OCI_MANIFEST, m.to_vec());
                reg.push_manifest("r", &m, &PushManifestOptions::tagged(format!("t{i}")))
                    .await
                    .unwrap();
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(
            reg.list_tags("r", &Default::default()).await.unwrap().len(),
            16
        );
    }

    #[tokio::test]
    async fn a_corrupted_blob_is_caught_on_read() {
        let root = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::open(root.path()).unwrap();
        let data = b"weights".to_vec();
        let d = Digest::sha256_of(&data);
        reg.push_blob(
            "r",
            &d,
            wharf_core::registry::blob_stream_from(data),
            &Default::default(),
        )
        .await
        .unwrap();
        std::fs::write(
            root.path().join("r/blobs/sha256").join(d.hex()),
            b"tampered",
        )
        .unwrap();
        let err = wharf_core::registry::collect_blob(reg.fetch_blob("r", &d).await.unwrap(), 1024)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    }

    #[tokio::test]
    async fn a_damaged_stored_blob_is_replaced_by_the_next_push_not_reused() {
        let root = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::open(root.path()).unwrap();
        let data = vec![9u8; 100_000];
        let d = Digest::sha256_of(&data);
        let push = |bytes: Vec<u8>| {
            let mut opts = PushBlobOptions::default();
            opts.size = Some(100_000);
            let reg = &reg;
            let d = d.clone();
            async move {
                reg.push_blob(
                    "r",
                    &d,
                    wharf_core::registry::blob_stream_from(bytes),
                    &opts,
                )
                .await
                .unwrap()
            }
        };
        push(data.clone()).await;
        let path = root.path().join("r/blobs/sha256").join(d.hex());
        // Truncated (size differs), then one byte flipped (size equal, small: re-hashed).
        for damage in [vec![], {
            let mut x = data.clone();
            x[500] ^= 1;
            x
        }] {
            std::fs::write(&path, &damage).unwrap();
            push(data.clone()).await;
            assert_eq!(std::fs::read(&path).unwrap(), data);
        }
        // Nothing left in the temp dir, nothing but blobs in blobs/.
        assert_eq!(
            std::fs::read_dir(root.path().join(TEMP_DIR))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(root.path().join("r/blobs/sha256"))
                .unwrap()
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn an_imported_file_is_linked_in_and_replaces_a_stored_copy() {
        let root = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::open(root.path()).unwrap();
        let data = b"layer bytes".to_vec();
        let desc = Descriptor::for_bytes(media_types::OCI_LAYER_TAR, &data);
        let staged = root.path().join("staged.tar");
        std::fs::write(&staged, &data).unwrap();
        let blob = root.path().join("r/blobs/sha256").join(desc.digest.hex());
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, b"damaged!!!!").unwrap();
        assert!(
            reg.import_blob_file("r", &desc, &staged)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(std::fs::read(&blob).unwrap(), data);
        // The caller's file is still there (linked, not moved), and a wrong size is refused.
        assert!(staged.is_file());
        let mut wrong = desc.clone();
        wrong.size += 1;
        let err = reg
            .import_blob_file("r", &wrong, &staged)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    }

    #[tokio::test]
    async fn bad_repository_names_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::open(root.path()).unwrap();
        for bad in ["../escape", "/abs", "Upper/case", "a//b", "", "a/./b"] {
            let err = reg
                .blob_exists(bad, &Digest::sha256_of(b"x"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid, "{bad}");
            assert!(
                err.to_string().contains("lowercase path components"),
                "{err}"
            );
        }
        let err = reg
            .list_tags("never/pushed", &Default::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_stale_lock_from_a_dead_process_is_broken() {
        let root = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::open(root.path()).unwrap();
        reg.ensure_layout("r").await.unwrap();
        // A pid that cannot exist: the lock holder is gone.
        std::fs::write(root.path().join("r/index.json.lock"), "4294967295").unwrap();
        let cfg = Descriptor::for_bytes(media_types::OCI_EMPTY, b"{}");
        reg.push_blob(
            "r",
            &cfg.digest,
            wharf_core::registry::blob_stream_from(&b"{}"[..]),
            &Default::default(),
        )
        .await
        .unwrap();
        let m = ManifestBytes::new(
            media_types::OCI_MANIFEST,
            ImageManifest::new(cfg, vec![]).to_vec(),
        );
        reg.push_manifest("r", &m, &PushManifestOptions::tagged("t"))
            .await
            .unwrap();
    }
}
