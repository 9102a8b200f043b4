//! The registry crate's error type.

use std::path::PathBuf;

use wharf_core::{BoxError, ErrorKind};

/// Everything that can go wrong talking to a registry, an OCI layout, or packaging a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A blob, manifest, tag or repository does not exist.
    #[error("{what} not found in {location}")]
    NotFound {
        /// What was looked for (`blob sha256:…`, `tag v1`).
        what: String,
        /// Where (`registry.example.com/models/fraud`, a layout path).
        location: String,
    },
    /// Content does not hash to the digest it was named by.
    #[error("{what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// Content is not the size it was declared with.
    #[error(
        "{what} is {actual} bytes, not the declared {expected}; check the size given with the digest"
    )]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// The declared size.
        expected: u64,
        /// The size seen.
        actual: u64,
    },
    /// A tag is immutable and already points at other content.
    #[error(
        "tag {tag} in {repo} is immutable and points at {existing}; push under a new tag (e.g. the commit SHA)"
    )]
    ImmutableTag {
        /// Repository.
        repo: String,
        /// Tag.
        tag: String,
        /// What it points at now.
        existing: String,
    },
    /// No or rejected credentials.
    #[error("{registry} rejected the credentials: {hint}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// What to do.
        hint: String,
    },
    /// The client's credentials provider could not give credentials.
    #[error("the credentials provider for {registry} failed: {reason}")]
    CredentialsProvider {
        /// Registry host.
        registry: String,
        /// The provider's message, on one line.
        reason: String,
        /// The provider's error.
        source: wharf_core::Error,
    },
    /// Authenticated but not allowed.
    #[error("{registry} denied {action}: check the credentials' permissions")]
    Denied {
        /// Registry host.
        registry: String,
        /// What was attempted.
        action: String,
    },
    /// Bad input: a malformed manifest, reference, config, or a path escaping the model dir.
    #[error("{what}: {reason}")]
    Invalid {
        /// The input.
        what: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An HTTP client was called outside a Tokio runtime (reqwest runs on Tokio).
    #[error(
        "the {client} needs a Tokio runtime: call it inside #[tokio::main] or Runtime::block_on (the OCI layout works on any executor)"
    )]
    NoRuntime {
        /// Which client (`OCI distribution client`, `ECR client`).
        client: &'static str,
    },
    /// A file-system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`writing`, `reading`).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url} answered {status}: {message}")]
    Http {
        /// HTTP method.
        method: String,
        /// URL (no credentials).
        url: String,
        /// Status code.
        status: u16,
        /// The registry's error message, or the body's start.
        message: String,
    },
    /// The request could not be made or the connection broke.
    #[error("request {url} failed; check that the registry is reachable and retry")]
    Transport {
        /// Method and URL (no credentials, no query).
        url: String,
        /// The cause.
        source: BoxError,
    },
    /// A response body ended before all of its bytes arrived.
    #[error("{what} from {url} broke off after {received} of {expected} bytes; retry the download")]
    Incomplete {
        /// What was being read (`blob sha256:…`).
        what: String,
        /// URL (no credentials, no query).
        url: String,
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The registry lost (part of) an upload, and it cannot be continued.
    #[error("the registry lost the upload of {digest} to {repo} ({detail}); push the blob again")]
    UploadLost {
        /// Repository.
        repo: String,
        /// The blob's digest.
        digest: String,
        /// What was lost.
        detail: String,
    },
    /// The caller's blob stream failed while being uploaded; nothing was stored.
    #[error("the blob stream for {digest} failed while being uploaded; nothing was stored")]
    Stream {
        /// The blob's digest.
        digest: String,
        /// The stream's error (its kind is kept).
        source: wharf_core::Error,
    },
    /// Something wharf does not support (yet).
    #[error("{what} is not supported yet; {hint}")]
    Unsupported {
        /// The feature or input.
        what: String,
        /// What to do instead.
        hint: String,
    },
    /// An Amazon ECR API call failed; the kind follows the service's error code.
    #[error("ecr {operation} for {target} failed: {detail}; {hint}")]
    Ecr {
        /// What kind of failure it is.
        kind: ErrorKind,
        /// The API operation (`PutImage`).
        operation: &'static str,
        /// What it was about (`repository models/fraud`, `models/fraud:3f2a9c1`).
        target: String,
        /// The service's error code and message, or the connection failure, on one line.
        detail: String,
        /// What to do.
        hint: String,
        /// The SDK error, if any.
        source: Option<BoxError>,
    },
}

#[cfg(feature = "distribution")]
/// `Err(NoRuntime)` unless called inside a Tokio runtime (the HTTP and AWS clients run on
/// one; calling them elsewhere would panic).
pub(crate) fn require_tokio(client: &'static str) -> Result<(), RegistryError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(RegistryError::NoRuntime { client }),
    }
}

impl RegistryError {
    /// The core error kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::NotFound { .. } => ErrorKind::NotFound,
            RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. } => {
                ErrorKind::Integrity
            }
            RegistryError::ImmutableTag { .. } => ErrorKind::Conflict,
            RegistryError::Unauthorized { .. } => ErrorKind::Unauthenticated,
            // Without credentials nothing can be done, unless the provider's failure is
            // temporary: then a retry may succeed.
            RegistryError::CredentialsProvider { source, .. } => match source.kind() {
                ErrorKind::Transient => ErrorKind::Transient,
                _ => ErrorKind::Unauthenticated,
            },
            RegistryError::Denied { .. } => ErrorKind::Denied,
            RegistryError::Invalid { .. } | RegistryError::NoRuntime { .. } => ErrorKind::Invalid,
            RegistryError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::Denied,
                _ => ErrorKind::Internal,
            },
            RegistryError::Http { status, .. } => match status {
                401 => ErrorKind::Unauthenticated,
                403 => ErrorKind::Denied,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                400 | 405 | 413 | 415 | 422 => ErrorKind::Invalid,
                408 | 429 | 500..=599 => ErrorKind::Transient,
                _ => ErrorKind::Internal,
            },
            RegistryError::Transport { .. }
            | RegistryError::Incomplete { .. }
            | RegistryError::UploadLost { .. } => ErrorKind::Transient,
            RegistryError::Unsupported { .. } => ErrorKind::Unsupported,
            RegistryError::Stream { source, .. } => source.kind(),
            RegistryError::Ecr { kind, .. } => *kind,
        }
    }

    /// Shorthand for [`RegistryError::Invalid`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        RegistryError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`RegistryError::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<RegistryError> for wharf_core::Error {
    fn from(e: RegistryError) -> Self {
        wharf_core::Error::new(e.kind(), e.to_string()).with_source(e)
    }
}
