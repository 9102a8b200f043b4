//! The storage contract every backend meets: create-only writes of whole objects by key.
//!
//! [`crate::WormLog`] keeps its records and checkpoints in a [`WormStore`]. A store never
//! overwrites: [`WormStore::create`] either stores the object under a key nobody has used or
//! answers [`Created::Exists`]. That one guarantee is what keeps concurrent writers from
//! forking the chain.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use wharf_core::{Error, ErrorKind, Result};

/// What [`WormStore::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object is stored, durably.
    Stored,
    /// An object already has that key; nothing was written.
    Exists,
}

/// Write-once storage of whole objects by key (`records/000000000042.json`).
///
/// Implement it to put the audit log somewhere new; run
/// `wharf_core::conformance::audit_log` against a `WormLog` over it.
#[async_trait]
pub trait WormStore: fmt::Debug + Send + Sync + 'static {
    /// Store `bytes` under `key` only if no object has that key. Returns only once the
    /// object is durable; a store that cannot guarantee create-only semantics must not
    /// implement this trait.
    async fn create(&self, key: &str, bytes: Bytes) -> Result<Created>;

    /// The object under `key`, `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// Several objects at once, in `keys` order (stores override this to batch or to run
    /// requests concurrently).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        use futures_util::{StreamExt, TryStreamExt};
        let reads: Vec<_> = keys.iter().map(|k| self.get(k)).collect();
        futures_util::stream::iter(reads)
            .buffered(16)
            .try_collect()
            .await
    }

    /// The keys under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// The keys under `prefix` that sort after `after` (a whole key), sorted. Stores that can
    /// start a listing at a key (S3's `StartAfter`) override this so the cost is what is
    /// returned, not the whole prefix.
    async fn list_after(&self, prefix: &str, after: &str) -> Result<Vec<String>> {
        let mut keys = self.list(prefix).await?;
        keys.retain(|k| k.as_str() > after);
        Ok(keys)
    }

    /// Keys under `prefix` for which the store holds more than one version, with the number
    /// of versions (a versioned bucket where someone uploaded over a record). Stores without
    /// versions return nothing.
    async fn overwritten(&self, _prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(Vec::new())
    }

    /// Where `key` lives, for receipts and messages (`/var/audit/records/…`, `s3://b/k`).
    fn location(&self, key: &str) -> String;
}

/// A store chosen at run time (from a URL in a config file).
#[async_trait]
impl WormStore for Box<dyn WormStore> {
    async fn create(&self, key: &str, bytes: Bytes) -> Result<Created> {
        (**self).create(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        (**self).get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        (**self).get_many(keys).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        (**self).list(prefix).await
    }
    async fn list_after(&self, prefix: &str, after: &str) -> Result<Vec<String>> {
        (**self).list_after(prefix, after).await
    }
    async fn overwritten(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        (**self).overwritten(prefix).await
    }
    fn location(&self, key: &str) -> String {
        (**self).location(key)
    }
}

/// The embedded default: files in a directory, each created atomically and exclusively
/// (written to a temporary file, synced, then hard-linked to its name, which fails if the
/// name exists) and made read-only. A crash never leaves a torn record behind.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir`, created if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        for sub in ["", "records", "checkpoints", "ids", ".tmp"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(|e| {
                Error::new(
                    ErrorKind::Denied,
                    format!("cannot create audit directory {}: {e}", d.display()),
                )
                .with_source(e)
            })?;
        }
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    fn create_blocking(&self, key: &str, bytes: &[u8]) -> Result<Created> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.path(key);
        if path.exists() {
            // Taken already: skip writing and syncing a file that cannot be linked.
            return Ok(Created::Exists);
        }
        let tmp = self.dir.join(".tmp").join(format!(
            "{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write_err = |e: std::io::Error| {
            Error::new(
                ErrorKind::Denied,
                format!("cannot write audit record {}: {e}", path.display()),
            )
            .with_source(e)
        };
        let result = (|| {
            let mut f: File = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            let mut perms = f.metadata()?.permissions();
            perms.set_readonly(true);
            f.set_permissions(perms)?;
            f.sync_all()?;
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::hard_link(&tmp, &path)
        })();
        let _ = fs::remove_file(&tmp);
        match result {
            Ok(()) => {
                if let Some(parent) = path.parent()
                    && let Ok(d) = File::open(parent)
                {
                    d.sync_all().map_err(write_err)?;
                }
                Ok(Created::Stored)
            }
            Err(e) if e.kind() == IoKind::AlreadyExists => Ok(Created::Exists),
            Err(e) => Err(write_err(e)),
        }
    }

    fn get_blocking(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key);
        match fs::read(&path) {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => {
                Err(Error::internal(format!("cannot read {}: {e}", path.display())).with_source(e))
            }
        }
    }
}

#[async_trait]
impl WormStore for FileStore {
    async fn create(&self, key: &str, bytes: Bytes) -> Result<Created> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.create_blocking(&key, &bytes)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        // A local read of a few kilobytes: cheaper inline than a hop to the blocking pool.
        self.get_blocking(key)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let this = self.clone();
        let keys = keys.to_vec();
        blocking(move || keys.iter().map(|k| this.get_blocking(k)).collect()).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let (sub, name_prefix) = match prefix.rsplit_once('/') {
            Some((d, p)) => (d, p),
            None => ("", prefix),
        };
        let dir = self.dir.join(sub);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::internal(format!(
                    "cannot list audit directory {}: {e}",
                    dir.display()
                ))
                .with_source(e));
            }
        };
        let mut keys: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(name_prefix))
            .map(|n| {
                if sub.is_empty() {
                    n
                } else {
                    format!("{sub}/{n}")
                }
            })
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }

    fn location(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }
}

/// Run blocking file work on a thread of its own: any executor, never a panic for lack of
/// a runtime, never a stalled one.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    wharf_core::blocking::unblock(f).await
}

#[cfg(test)]
mod tests {
    use super::*;
    /// No runtime: the file store works on any executor.
    fn now<T>(f: impl std::future::Future<Output = T>) -> T {
        futures::executor::block_on(f)
    }

    #[test]
    fn create_is_exclusive_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let key = "records/000000000000.json";
        assert_eq!(
            now(store.create(key, Bytes::from_static(b"one"))).unwrap(),
            Created::Stored
        );
        assert_eq!(
            now(store.create(key, Bytes::from_static(b"two"))).unwrap(),
            Created::Exists
        );
        assert_eq!(now(store.get(key)).unwrap().unwrap(), "one");
        assert!(
            fs::metadata(store.path(key))
                .unwrap()
                .permissions()
                .readonly()
        );
        assert_eq!(now(store.list("records/")).unwrap(), [key]);
        assert!(now(store.get("records/missing")).unwrap().is_none());
        assert_eq!(
            fs::read_dir(dir.path().join(".tmp")).unwrap().count(),
            0,
            "no temporary file is left behind"
        );
    }
}
