//! The HTTP the token endpoints need: one request, its JSON answer, one-line errors that
//! name the service and URL and never a token.

use std::time::Duration;

use serde_json::Value;
use wharf_core::{Error, ErrorKind, Result, Secret};

/// A client with timeouts: a token endpoint that does not answer fails the run in seconds,
/// not at the CI job's limit. `HTTPS_PROXY` is honoured.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("wharf-identity/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// `text` with every secret's value replaced.
pub(crate) fn redact(mut text: String, secrets: &[&Secret]) -> String {
    for s in secrets {
        if s.expose().len() >= 4 {
            text = text.replace(s.expose(), "[redacted]");
        }
    }
    text
}

/// Send `request` to `service` at `url`; the status and JSON body (`Value::Null` for an
/// empty one). Unreachable endpoints are [`ErrorKind::Transient`]; a body that is not JSON
/// is an error quoting its start, with `secrets` masked.
pub(crate) async fn send(
    service: &str,
    url: &str,
    request: reqwest::RequestBuilder,
    secrets: &[&Secret],
) -> Result<(u16, Value)> {
    let resp = request.send().await.map_err(|e| {
        let mut cause = e.to_string();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = source {
            cause = format!("{cause}: {s}");
            source = s.source();
        }
        Error::new(
            ErrorKind::Transient,
            redact(
                format!("{service} at {url} is unreachable ({cause}): check the URL and that this machine can reach it (proxy: HTTPS_PROXY)"),
                secrets,
            ),
        )
    })?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| {
        Error::new(
            ErrorKind::Transient,
            format!("{service} at {url}: reading the answer: {e}"),
        )
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((status, Value::Null));
    }
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok((status, v)),
        Err(_) => {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            Err(Error::new(
                if status >= 500 {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Invalid
                },
                redact(
                    format!(
                        "{service} at {url} answered HTTP {status} with something that is not JSON: {:?}",
                        text.replace('\n', " ")
                    ),
                    secrets,
                ),
            ))
        }
    }
}

/// The kind of error an HTTP status means.
pub(crate) fn kind_of(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Denied,
        404 => ErrorKind::NotFound,
        408 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Invalid,
    }
}
