//! Sending requests: retries with backoff and jitter, `Retry-After`, the registry's error
//! bodies, and URLs safe to show.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode, Url};

use crate::RegistryError;

/// How requests that failed for a temporary reason are retried: exponential backoff with
/// full jitter (a random delay between zero and `base_delay * 2^attempt`, capped at
/// `max_delay`), or the registry's `Retry-After` when it sends one (capped at `max_delay`).
///
/// Only requests that are safe to repeat are retried: `HEAD`, `GET`, `DELETE`, manifest
/// `PUT`s and uploads of bytes held in memory. An interrupted chunk upload is not repeated
/// blindly: the client asks the registry how much it received and sends the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included; `1` disables retries.
    pub max_attempts: u32,
    /// The backoff before the second attempt (before jitter).
    pub base_delay: Duration,
    /// The longest wait between two attempts, `Retry-After` included.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// A policy with these limits.
    pub fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts,
            base_delay,
            max_delay,
        }
    }

    /// No retries: every request is sent once.
    pub fn none() -> Self {
        Self::new(1, Duration::ZERO, Duration::ZERO)
    }

    /// The jittered backoff before attempt `attempt + 1` (`attempt` counts from 1).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random_u64() % (nanos + 1))
    }

    /// The wait before the next attempt: the registry's `Retry-After` if it sent one, else
    /// the jittered backoff; never more than `max_delay`.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_delay),
            None => self.backoff(attempt),
        }
    }
}

impl Default for RetryPolicy {
    /// Four attempts, 200 ms base delay, at most 10 s between attempts.
    fn default() -> Self {
        Self::new(4, Duration::from_millis(200), Duration::from_secs(10))
    }
}

/// A xorshift64* generator seeded from the clock and a counter: jitter only, not for secrets.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x = now ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D;
    // A few rounds so that close seeds give unrelated outputs.
    for _ in 0..4 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
    }
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

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
    parse_retry_after(value, time::OffsetDateTime::now_utc())
}

/// Parses a `Retry-After` value relative to `now`.
fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = at - now;
    Some(if wait.is_negative() {
        Duration::ZERO
    } else {
        wait.unsigned_abs()
    })
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
    fn backoff_is_jittered_and_capped() {
        let policy = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(350));
        for attempt in 1..10 {
            for _ in 0..50 {
                let d = policy.backoff(attempt);
                let cap = (100u64 << (attempt - 1).min(20)).min(350);
                assert!(d <= Duration::from_millis(cap), "{attempt}: {d:?}");
            }
        }
        let spread: std::collections::BTreeSet<_> =
            (0..20).map(|_| policy.backoff(3).as_nanos()).collect();
        assert!(spread.len() > 10, "jitter must vary: {spread:?}");
        assert_eq!(RetryPolicy::none().backoff(1), Duration::ZERO);
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(30))),
            Duration::from_millis(350),
            "Retry-After is capped at max_delay"
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_millis(5))),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = time::macros::datetime!(1994-11-06 08:49:30 UTC);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

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
