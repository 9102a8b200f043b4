//! [`ObjectStoreStore`]: the audit log on any `object_store` backend that can do create-only
//! puts (`PutMode::Create`): Azure Blob Storage, Google Cloud Storage, local files, memory.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, ObjectStoreScheme, PutMode, PutPayload};
use wharf_core::{Error, ErrorKind, Result};

use crate::store::{Created, WormStore};

/// A [`WormStore`] over any [`ObjectStore`], under a key prefix (`audit/`).
///
/// Records are created with `PutMode::Create` (`If-None-Match: *` on Azure, generation 0 on
/// GCS, a hard link on local files), so concurrent writers never overwrite each other; a
/// backend that cannot do that is refused on the first write. Nothing stops someone holding
/// the storage credentials from overwriting an object afterwards: use immutability policies
/// (Azure) or retention locks (GCS) on the container, and `verify` names what changed.
///
/// ```
/// use std::sync::Arc;
/// use wharf_audit::{ObjectStoreStore, WormLog};
/// use wharf_core::{AuditLog, audit::AppendOptions};
/// # let event = wharf_core::conformance::run_record("run-1");
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let store = ObjectStoreStore::new(Arc::new(object_store::memory::InMemory::new()), "audit/")?;
/// let log = WormLog::new(store);
/// let receipt = log.append(&event, &AppendOptions::default()).await?;
/// assert_eq!(receipt.location, "InMemory/audit/records/000000000000.json");
/// # Ok::<(), wharf_core::Error>(()) })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ObjectStoreStore {
    store: Arc<dyn ObjectStore>,
    /// `""` or `"audit/"`: no leading slash, one trailing slash.
    prefix: String,
    /// What [`WormStore::location`] puts before a key: `az://audit-logs/prod/`.
    base: String,
}

impl fmt::Debug for ObjectStoreStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreStore")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ObjectStoreStore {
    /// A store keeping the log under `prefix` (`"audit/"`, or `""` for the root) of `store`.
    ///
    /// A `LocalFileSystem` should have `with_fsync(true)`, or a record may be lost in a crash
    /// after its append returned.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self> {
        let prefix = normalize_prefix(prefix)?;
        let base = format!("{store}/{prefix}");
        Ok(Self {
            store,
            prefix,
            base,
        })
    }

    /// A store from a URL, the container or bucket and the prefix in it:
    /// `az://container/prefix` (feature `azure`), `gs://bucket/prefix` (feature `gcp`),
    /// `file:///var/audit` (written with fsync), `memory:///`.
    ///
    /// `options` are the backend's configuration keys (`object_store`'s names, such as
    /// `azure_storage_account_name`, `azure_storage_access_key`, `google_service_account`);
    /// unknown keys are ignored, and the backend also reads nothing from the environment
    /// unless you pass `std::env::vars()`.
    pub fn from_url(
        url: &str,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        // The `Url` type comes from `object_store`'s signature (inferred, so wharf-audit needs
        // no direct `url` dependency).
        let parsed = url
            .parse()
            .map_err(|e| Error::invalid(format!("invalid audit store URL {url:?}: {e}")))?;
        let (scheme, path) = ObjectStoreScheme::parse(&parsed).map_err(|e| {
            Error::invalid(format!(
                "unsupported audit store URL {url:?} (use az://, gs://, file:// or memory://): {e}"
            ))
            .with_source(e)
        })?;
        let mut shown = parsed.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        // Fails only for URLs that cannot have a password, which then have none to hide.
        let _ = shown.set_password(None);
        let shown = shown.as_str().trim_end_matches('/').to_owned();
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::Local => {
                Arc::new(object_store::local::LocalFileSystem::new().with_fsync(true))
            }
            ObjectStoreScheme::Memory => Arc::new(object_store::memory::InMemory::new()),
            #[cfg(feature = "azure")]
            ObjectStoreScheme::MicrosoftAzure => open_cloud(&parsed, options, &shown)?,
            #[cfg(not(feature = "azure"))]
            ObjectStoreScheme::MicrosoftAzure => {
                drop(options);
                return Err(needs_feature(&shown, "Azure Blob Storage", "azure"));
            }
            #[cfg(feature = "gcp")]
            ObjectStoreScheme::GoogleCloudStorage => open_cloud(&parsed, options, &shown)?,
            #[cfg(not(feature = "gcp"))]
            ObjectStoreScheme::GoogleCloudStorage => {
                drop(options);
                return Err(needs_feature(&shown, "Google Cloud Storage", "gcp"));
            }
            ObjectStoreScheme::AmazonS3 => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "audit store {shown}: S3 is served by wharf-audit's `S3Store` (cargo \
                         feature `s3`, with Object Lock), not through object_store"
                    ),
                ));
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "audit store {shown}: this kind of store cannot do create-only puts, so \
                         it cannot hold an audit log (use az://, gs://, file:// or memory://)"
                    ),
                ));
            }
        };
        let mut prefix = path.as_ref().to_owned();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let base = format!("{shown}/");
        Ok(Self {
            store,
            prefix,
            base,
        })
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key prefix (`"audit/"`, or `""`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Name the store `name` in [`WormStore::location`] (`az://audit-logs/prod`), instead of
    /// the object store's own description.
    pub fn with_location(mut self, name: &str) -> Self {
        self.base = format!("{}/", name.trim_end_matches('/'));
        self
    }

    /// The object store path of `key`.
    fn path(&self, key: &str) -> Result<Path> {
        Path::parse(format!("{}{key}", self.prefix)).map_err(|e| {
            Error::invalid(format!("invalid audit object key {key:?}: {e}")).with_source(e)
        })
    }
}

#[async_trait]
impl WormStore for ObjectStoreStore {
    async fn create(&self, key: &str, bytes: Bytes) -> Result<Created> {
        let path = self.path(key)?;
        let put = self
            .store
            .put_opts(&path, PutPayload::from(bytes), PutMode::Create.into())
            .await;
        match put {
            Ok(_) => Ok(Created::Stored),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::Exists),
            Err(
                e @ (object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. }),
            ) => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} cannot do create-only puts (PutMode::Create), so it cannot hold an \
                     audit log: {}",
                    self.store,
                    one_line(&e)
                ),
            )
            .with_source(e)),
            Err(e) => Err(convert(
                e,
                &format!("cannot write audit object {}", self.location(key)),
            )),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key)?;
        let read = async { self.store.get(&path).await?.bytes().await };
        match read.await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(convert(
                e,
                &format!("cannot read audit object {}", self.location(key)),
            )),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        // object_store lists whole path segments: list the directory part of `prefix`, then
        // keep the keys that start with all of it.
        let dir = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let listed = format!("{}{dir}", self.prefix);
        let listed = match listed.trim_end_matches('/') {
            "" => None,
            p => Some(Path::parse(p).map_err(|e| {
                Error::invalid(format!("invalid audit key prefix {prefix:?}: {e}")).with_source(e)
            })?),
        };
        let fail = |e| {
            convert(
                e,
                &format!("cannot list audit objects {}", self.location(prefix)),
            )
        };
        let mut stream = self.store.list(listed.as_ref());
        let mut keys = Vec::new();
        while let Some(meta) = stream.try_next().await.map_err(fail)? {
            if let Some(key) = meta.location.as_ref().strip_prefix(&self.prefix)
                && key.starts_with(prefix)
            {
                keys.push(key.to_owned());
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    fn location(&self, key: &str) -> String {
        format!("{}{key}", self.base)
    }
}

/// `prefix` as `""` or `"a/b/"`, refusing what object_store cannot store as a path.
fn normalize_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let path = Path::parse(trimmed).map_err(|e| {
        Error::invalid(format!("invalid audit key prefix {prefix:?}: {e}")).with_source(e)
    })?;
    Ok(format!("{path}/"))
}

/// A cloud store from its URL and options.
#[cfg(any(feature = "azure", feature = "gcp"))]
fn open_cloud(
    parsed: &object_store::signer::Url,
    options: impl IntoIterator<Item = (String, String)>,
    shown: &str,
) -> Result<Arc<dyn ObjectStore>> {
    let (store, _) = object_store::parse_url_opts(parsed, options)
        .map_err(|e| convert(e, &format!("cannot configure the audit store {shown}")))?;
    Ok(Arc::from(store))
}

#[cfg(any(not(feature = "azure"), not(feature = "gcp")))]
fn needs_feature(shown: &str, what: &str, feature: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "audit store {shown} is on {what}: build wharf-audit with the cargo feature \
             `{feature}`"
        ),
    )
}

/// An object_store error as a [`wharf_core::Error`]: `context`, then why, on one line.
fn convert(e: object_store::Error, context: &str) -> Error {
    use object_store::Error as E;
    let (kind, why) = match &e {
        E::NotFound { .. } => (
            ErrorKind::NotFound,
            "not found (does the container or bucket exist?)".to_owned(),
        ),
        E::PermissionDenied { .. } => (ErrorKind::Denied, "permission denied".to_owned()),
        E::Unauthenticated { .. } => (
            ErrorKind::Unauthenticated,
            "the credentials were not accepted".to_owned(),
        ),
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => {
            (ErrorKind::Invalid, one_line(&e))
        }
        E::NotImplemented { .. } | E::NotSupported { .. } => (ErrorKind::Unsupported, one_line(&e)),
        E::AlreadyExists { .. } | E::Precondition { .. } => (ErrorKind::Conflict, one_line(&e)),
        _ if is_transient(&e) => (ErrorKind::Transient, one_line(&e)),
        _ => (ErrorKind::Internal, one_line(&e)),
    };
    Error::new(kind, format!("{context}: {why}")).with_source(e)
}

/// True when the failure is the network's (refused, reset, timed out), after object_store's
/// own retries.
fn is_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind as Io;
    let mut cur = Some(e);
    while let Some(e) = cur {
        #[cfg(any(feature = "azure", feature = "gcp"))]
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as H;
            if matches!(
                http.kind(),
                H::Connect | H::Request | H::Timeout | H::Interrupted
            ) {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                Io::ConnectionRefused
                    | Io::ConnectionReset
                    | Io::ConnectionAborted
                    | Io::NotConnected
                    | Io::BrokenPipe
                    | Io::TimedOut
                    | Io::Interrupted
                    | Io::UnexpectedEof
            )
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// `e`'s message with its line breaks (an XML error body) folded into spaces.
fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalized_and_validated() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("audit").unwrap(), "audit/");
        assert_eq!(normalize_prefix("/a/b/").unwrap(), "a/b/");
        assert!(normalize_prefix("a//b").is_err());
        assert!(normalize_prefix("a/../b").is_err());
    }

    #[test]
    fn urls_choose_the_backend_and_the_prefix() {
        let store = ObjectStoreStore::from_url("memory:///audit/prod/", []).unwrap();
        assert_eq!(store.prefix(), "audit/prod/");
        assert_eq!(
            store.location("records/000000000001.json"),
            "memory:///audit/prod/records/000000000001.json"
        );
        let store = ObjectStoreStore::from_url("file:///var/audit", []).unwrap();
        assert_eq!(store.prefix(), "var/audit/");
        assert_eq!(store.location("k"), "file:///var/audit/k");

        let err = ObjectStoreStore::from_url("s3://bucket/audit", []).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("`s3`"), "{err}");
        let err = ObjectStoreStore::from_url("https://example.com/audit", []).unwrap_err();
        assert!(err.to_string().contains("create-only"), "{err}");
        let err = ObjectStoreStore::from_url("ftp://host/x", []).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        let err = ObjectStoreStore::from_url("not a url", []).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        #[cfg(not(feature = "azure"))]
        {
            let err = ObjectStoreStore::from_url("az://container/audit", []).unwrap_err();
            assert!(err.to_string().contains("feature `azure`"), "{err}");
        }
        #[cfg(not(feature = "gcp"))]
        {
            let err = ObjectStoreStore::from_url("gs://bucket/audit", []).unwrap_err();
            assert!(err.to_string().contains("feature `gcp`"), "{err}");
        }
    }

    #[cfg(feature = "azure")]
    #[test]
    fn a_url_location_hides_secrets() {
        let store = ObjectStoreStore::from_url(
            "https://acct.blob.core.windows.net/logs/audit?sv=2022&sig=secret",
            [(
                "azure_storage_access_key".to_owned(),
                "a2V5".to_owned(), // "key"
            )],
        )
        .unwrap();
        assert_eq!(store.prefix(), "audit/");
        assert_eq!(
            store.location("records/x.json"),
            "https://acct.blob.core.windows.net/logs/audit/records/x.json"
        );
    }
}
