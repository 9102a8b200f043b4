//! AWS SDK failures as one-line [`RegistryError`]s: the kind follows the service's error
//! code (not found, denied, throttled…), the message names the operation and target and what
//! to do, and no credential ever shows.

use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use wharf_core::ErrorKind;

use crate::RegistryError;

/// The longest service message kept in an error.
const MAX_DETAIL_LEN: usize = 300;

/// Maps a failed SDK call to a [`RegistryError::Ecr`] whose kind follows the service's error
/// code (or the HTTP status, or the kind of connection failure). The message holds the
/// code and the service's message on one line, never the SDK error's `Debug` output.
pub(super) fn sdk_error<E>(
    err: SdkError<E>,
    operation: &'static str,
    target: String,
) -> RegistryError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, detail) = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("no error code");
            let status = service.raw().status().as_u16();
            let kind = kind_of_code(code).unwrap_or(match status {
                401 => ErrorKind::Unauthenticated,
                403 => ErrorKind::Denied,
                404 => ErrorKind::NotFound,
                408 | 429 | 500..=599 => ErrorKind::Transient,
                400..=499 => ErrorKind::Invalid,
                _ => ErrorKind::Internal,
            });
            let detail = match service.err().message() {
                Some(message) => format!("{code}: {message}"),
                None => format!("{code} (HTTP {status})"),
            };
            (kind, detail)
        }
        SdkError::TimeoutError(_) => (ErrorKind::Transient, error_chain(&err)),
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_io() || failure.is_timeout() || failure.as_other().is_some() {
                ErrorKind::Transient
            } else if caused_by_credentials(&err) {
                // The credentials provider failed: none found, expired SSO session, …
                ErrorKind::Unauthenticated
            } else {
                // A request that could not be signed or addressed: no credentials provider,
                // no region, a bad endpoint.
                ErrorKind::Invalid
            };
            (kind, error_chain(&err))
        }
        SdkError::ResponseError(_) => (ErrorKind::Transient, error_chain(&err)),
        _ => (ErrorKind::Invalid, error_chain(&err)),
    };
    RegistryError::Ecr {
        kind,
        operation,
        hint: hint_for(kind, operation, &err),
        target,
        detail: one_line(&detail),
        source: Some(Box::new(err)),
    }
}

/// True when a credentials provider's error is among the causes of `err`.
fn caused_by_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The kind of a service error code, when the code decides it.
fn kind_of_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "RepositoryNotFoundException" | "ImageNotFoundException" => ErrorKind::NotFound,
        "AccessDeniedException" | "AccessDenied" | "KmsException" => ErrorKind::Denied,
        "ExpiredTokenException"
        | "ExpiredToken"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => ErrorKind::Unauthenticated,
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "ServerException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalFailure" => ErrorKind::Transient,
        "InvalidParameterException"
        | "ValidationException"
        | "InvalidTagParameterException"
        | "TooManyTagsException"
        | "LayersNotFoundException"
        | "ReferencedImagesNotFoundException"
        | "LimitExceededException" => ErrorKind::Invalid,
        "ImageTagAlreadyExistsException"
        | "ImageAlreadyExistsException"
        | "RepositoryAlreadyExistsException" => ErrorKind::Conflict,
        "ImageDigestDoesNotMatchException" => ErrorKind::Integrity,
        _ => return None,
    })
}

/// What to do about a failed call.
fn hint_for<E: ProvideErrorMetadata, R>(
    kind: ErrorKind,
    operation: &str,
    err: &SdkError<E, R>,
) -> String {
    match err.code() {
        Some("RepositoryNotFoundException") => {
            "create it with Ecr::ensure_repository, or check the repository name, account and region"
                .to_owned()
        }
        Some("LayersNotFoundException" | "ReferencedImagesNotFoundException") => {
            "push the blobs and manifests it refers to first (see Ecr::registry)".to_owned()
        }
        Some("LimitExceededException") => {
            "an ECR quota is reached: delete unused images or repositories, or ask AWS for a higher quota"
                .to_owned()
        }
        Some("KmsException") => {
            "check that the repository's KMS key exists and the caller may use it".to_owned()
        }
        _ if matches!(err, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))
            && kind == ErrorKind::Transient =>
        {
            "check that the ECR endpoint is reachable and retry".to_owned()
        }
        _ => hint(kind, operation),
    }
}

/// The generic advice for a kind of failure.
pub(super) fn hint(kind: ErrorKind, operation: &str) -> String {
    match kind {
        ErrorKind::NotFound => "check the repository name, account and region".to_owned(),
        ErrorKind::Denied => format!("allow the AWS principal ecr:{operation} on it"),
        ErrorKind::Unauthenticated => {
            "renew the AWS credentials: they are missing, expired or not valid here".to_owned()
        }
        ErrorKind::Transient => "retry later".to_owned(),
        ErrorKind::Conflict => "it already exists with other content".to_owned(),
        ErrorKind::Integrity => {
            "the manifest does not match its digest: rebuild it and push again".to_owned()
        }
        ErrorKind::Invalid => {
            "fix the request as the message says (check the AWS region, endpoint and credentials if it names none)"
                .to_owned()
        }
        _ => "retry; if it persists, report the error code".to_owned(),
    }
}

/// An error and its sources joined with `: `, e.g. `dispatch failure: io error: …:
/// Connection refused (os error 111)`.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = e.source();
    }
    out
}

/// `s` on one line of at most [`MAX_DETAIL_LEN`] characters.
pub(super) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_DETAIL_LEN + 3));
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > MAX_DETAIL_LEN {
        out = out.chars().take(MAX_DETAIL_LEN).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_decide_the_kind() {
        for (code, kind) in [
            ("RepositoryNotFoundException", ErrorKind::NotFound),
            ("AccessDeniedException", ErrorKind::Denied),
            ("ExpiredTokenException", ErrorKind::Unauthenticated),
            ("UnrecognizedClientException", ErrorKind::Unauthenticated),
            ("ThrottlingException", ErrorKind::Transient),
            ("ServerException", ErrorKind::Transient),
            ("InvalidParameterException", ErrorKind::Invalid),
            ("ImageTagAlreadyExistsException", ErrorKind::Conflict),
        ] {
            assert_eq!(kind_of_code(code), Some(kind), "{code}");
        }
        assert_eq!(kind_of_code("SomethingNew"), None);
    }

    #[test]
    fn details_are_one_bounded_line() {
        let long = format!("a\nb\r\n{}", "x".repeat(1000));
        let line = one_line(&long);
        assert!(!line.contains('\n') && !line.contains('\r'));
        assert!(line.chars().count() <= MAX_DETAIL_LEN + 1);
        assert!(line.starts_with("a b x"));
    }
}
