//! Sending requests: retries with backoff and jitter, `Retry-After`, the registry's error
//! bodies, and URLs safe to show.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode, Url};

use crate::RegistryError;

pub use wharf_core::retry::RetryPolicy;

/// Whether a response status is worth retrying: 408, 429 and 5xx.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Whether a transport failure is worth retrying: connection errors, timeouts, a body that
/// broke off. Builder and redirect-policy errors are not.
pub(crate) fn retryable_transport(err: &reqwest::Error) -> bool {
    !(err.is_builder() || err.is_redirect() || err.is_decode())
}

/// The `Retry-After` header as a wait: delay-seconds or an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    wharf_core::retry::parse_retry_after(value, time::OffsetDateTime::now_utc())
}

/// A URL as shown in messages and logs: scheme, host, port and path; no user info and no
/// query (upload-state tokens and the like stay out of errors).
pub(crate) fn show_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

/// What a request carries.
#[derive(Debug)]
pub(crate) enum ReqBody {
    /// Nothing.
    Empty,
    /// Bytes in memory: the request can be repeated.
    Bytes(Bytes),
    /// A stream that can be sent once (taken on the first attempt).
    Once(Option<reqwest::Body>, u64),
}

impl ReqBody {
    /// The body's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            ReqBody::Empty => 0,
            ReqBody::Bytes(b) => b.len() as u64,
            ReqBody::Once(_, len) => *len,
        }
    }

    /// Whether the request can be sent again with the same body.
    pub(crate) fn repeatable(&self) -> bool {
        !matches!(self, ReqBody::Once(..))
    }

    /// The body for one attempt, and its length.
    pub(crate) fn take(&mut self) -> Option<(reqwest::Body, u64)> {
        match self {
            ReqBody::Empty => None,
            ReqBody::Bytes(b) => Some((reqwest::Body::from(b.clone()), b.len() as u64)),
            ReqBody::Once(body, len) => body.take().map(|b| (b, *len)),
        }
    }
}

/// Sends one request (no retries, no auth handling) and maps transport failures.
pub(crate) async fn execute(
    http: &reqwest::Client,
    method: &Method,
    url: &Url,
    headers: &HeaderMap,
    body: &mut ReqBody,
) -> Result<Response, (RegistryError, bool)> {
    let mut rb = http
        .request(method.clone(), url.clone())
        .headers(headers.clone());
    if let Some((b, len)) = body.take() {
        rb = rb.header(reqwest::header::CONTENT_LENGTH, len).body(b);
    } else if method == Method::PUT || method == Method::POST || method == Method::PATCH {
        rb = rb.header(reqwest::header::CONTENT_LENGTH, 0);
    }
    let started = std::time::Instant::now();
    match rb.send().await {
        Ok(resp) => {
            tracing::debug!(
                method = %method,
                url = %show_url(url),
                status = resp.status().as_u16(),
                ms = started.elapsed().as_millis() as u64,
                "registry request"
            );
            Ok(resp)
        }
        Err(err) => {
            let retry = retryable_transport(&err);
            let err = transport_error(method, url, err);
            tracing::debug!(error = %wharf_core::display_chain(&err), "registry request failed");
            Err((err, retry))
        }
    }
}

/// A transport failure as a [`RegistryError::Transport`], without the URL's query.
pub(crate) fn transport_error(method: &Method, url: &Url, err: reqwest::Error) -> RegistryError {
    RegistryError::Transport {
        url: format!("{method} {}", show_url(url)),
        source: Box::new(err.without_url()),
    }
}

/// The parts of a registry error body (`{"errors":[{"code","message","detail"}]}`) worth
/// showing, on one line; the start of the body when it is not in that shape.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body)
        && !parsed.errors.is_empty()
    {
        return parsed
            .errors
            .iter()
            .map(|e| {
                let mut s = if e.code.is_empty() {
                    e.message.clone()
                } else if e.message.is_empty() {
                    e.code.clone()
                } else {
                    format!("{} ({})", e.message, e.code)
                };
                match &e.detail {
                    None | Some(serde_json::Value::Null) => {}
                    Some(serde_json::Value::String(d)) if !d.is_empty() => {
                        s.push_str(&format!(": {d}"));
                    }
                    Some(serde_json::Value::String(_)) => {}
                    Some(other) => s.push_str(&format!(": {other}")),
                }
                one_line(&s, 300)
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = one_line(text.trim(), 200);
    if text.is_empty() {
        "no error details in the response".to_owned()
    } else {
        text
    }
}

/// The registry's error codes in an error body (`MANIFEST_BLOB_UNKNOWN`, `DENIED`, …).
pub(crate) fn error_codes(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Code>,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        #[serde(default)]
        code: String,
    }
    serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors.into_iter().map(|c| c.code).collect())
        .unwrap_or_default()
}

/// `s` on one line, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// Reads at most `limit` bytes of a response body (for error messages and small JSON).
pub(crate) async fn read_limited(resp: Response, limit: usize) -> Result<Bytes, reqwest::Error> {
    use futures_util::StreamExt;
    let mut out = bytes::BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out.freeze())
}

/// A header value as a string, if present and visible ASCII.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A header value marked sensitive (never shown by `Debug`, kept out of HTTP/2 indexes).
pub(crate) fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_become_one_line() {
        let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:abc"},{"code":"DENIED","message":"no\naccess"}]}"#;
        assert_eq!(
            error_message(body),
            "blob unknown to registry (MANIFEST_BLOB_UNKNOWN): sha256:abc; no access (DENIED)"
        );
        assert_eq!(error_codes(body), ["MANIFEST_BLOB_UNKNOWN", "DENIED"]);
        assert_eq!(error_message(b"404 page not found\n"), "404 page not found");
        assert_eq!(error_message(b""), "no error details in the response");
        let detail = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"x"}}]}"#;
        assert_eq!(
            error_message(detail),
            r#"repository name not known to registry (NAME_UNKNOWN): {"name":"x"}"#
        );
    }

    #[test]
    fn shown_urls_have_no_query_or_user_info() {
        let url =
            Url::parse("http://user:pw@127.0.0.1:5000/v2/a/blobs/uploads/x?_state=secret&digest=d")
                .unwrap();
        assert_eq!(show_url(&url), "http://127.0.0.1:5000/v2/a/blobs/uploads/x");
        let url = Url::parse("https://ghcr.io/v2/").unwrap();
        assert_eq!(show_url(&url), "https://ghcr.io/v2/");
    }

    #[test]
    fn classifies_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
