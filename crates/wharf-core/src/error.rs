//! The error type every trait in this crate returns, and the kinds pipelines decide on.

use std::fmt;

/// A boxed error from a backend, kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure happened, so a pipeline can decide to retry, stop or ask a person
/// without downcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist (blob, manifest, tag, record, key).
    NotFound,
    /// No credentials, or credentials that were not accepted.
    Unauthenticated,
    /// Authenticated, but not allowed.
    Denied,
    /// The input is malformed or fails validation; retrying will not help.
    Invalid,
    /// A gate or policy blocked the operation on purpose.
    PolicyViolation,
    /// The target already holds something different (an immutable tag, a taken sequence number).
    Conflict,
    /// Content does not match its digest or signature: possible tampering or corruption.
    Integrity,
    /// A temporary failure (timeout, 5xx, 429, dropped connection); retrying may help.
    Transient,
    /// The backend does not support the operation.
    Unsupported,
    /// A bug or an unexpected state inside wharf or a backend.
    Internal,
}

impl ErrorKind {
    /// True for failures worth retrying with backoff.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Transient)
    }

    /// A short lowercase name, stable for logs and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Denied => "denied",
            ErrorKind::Invalid => "invalid",
            ErrorKind::PolicyViolation => "policy_violation",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Transient => "transient",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned by the traits in [`crate`]: a kind, a one-line message, and the
/// backend's own error as the source.
///
/// Each SDK crate has its own `#[non_exhaustive]` error enum and converts it into this type
/// at the trait boundary; the original stays reachable through [`std::error::Error::source`].
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a one-line, lowercase message that says what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Shorthand for [`ErrorKind::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// Shorthand for [`ErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// Shorthand for [`ErrorKind::Integrity`].
    pub fn integrity(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Integrity, message)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Error {
    /// An I/O error while doing `what` to `path` (`reading`, `/etc/wharf/key.pem`): the
    /// kind follows the I/O error (missing → NotFound, permission → Denied, interrupted or
    /// timed out → Transient), the message names both.
    pub fn io(what: &str, path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        let kind = io_kind(&source);
        Self::new(
            kind,
            format!("{what} {}: {source}", path.as_ref().display()),
        )
        .with_source(source)
    }
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match e.kind() {
        Io::NotFound => ErrorKind::NotFound,
        Io::PermissionDenied | Io::ReadOnlyFilesystem => ErrorKind::Denied,
        Io::AlreadyExists => ErrorKind::Conflict,
        Io::InvalidInput | Io::InvalidData | Io::IsADirectory | Io::NotADirectory => {
            ErrorKind::Invalid
        }
        Io::Interrupted | Io::TimedOut | Io::WouldBlock => ErrorKind::Transient,
        _ => ErrorKind::Internal,
    }
}

/// `?` on an I/O error in code that returns [`Result`]: the kind follows the I/O error;
/// prefer [`Error::io`], which names the file.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::new(io_kind(&e), e.to_string()).with_source(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats an error and its whole source chain on one line: `a: b: c`.
///
/// Use it where a person reads the error (a CLI, a log line); repeated messages are skipped.
pub fn display_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut last = out.clone();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !msg.is_empty() && !last.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        last = msg;
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_convert_with_their_kind_and_the_path() {
        let missing = std::fs::read("/nonexistent/wharf/key.pem").unwrap_err();
        let e = Error::io("reading", "/nonexistent/wharf/key.pem", missing);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(
            e.to_string()
                .starts_with("reading /nonexistent/wharf/key.pem: "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
        let via_question_mark = || -> Result<Vec<u8>> { Ok(std::fs::read("/nonexistent")?) };
        assert_eq!(via_question_mark().unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn chain_is_one_line_and_skips_repeats() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = Error::not_found("policy directory ./p does not exist").with_source(inner);
        assert_eq!(
            display_chain(&err),
            "policy directory ./p does not exist: no such file"
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(!err.kind().is_retryable());
        assert!(ErrorKind::Transient.is_retryable());
    }
}
