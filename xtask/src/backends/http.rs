//! The tiny HTTP/1.1 client of the readiness probes: `GET` on a plain TCP connection.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

/// Connect timeout of [`http_get`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Read and write timeout of [`http_get`].
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest response [`http_get`] reads; probes answer a few bytes.
const MAX_RESPONSE: usize = 4 << 20;

/// An HTTP response as [`http_get`] read it.
#[derive(Debug)]
pub(super) struct HttpResponse {
    /// The status code.
    pub(super) status: u16,
    /// Header names and values, in order, values trimmed.
    headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub(super) body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// How a response's body ends.
#[derive(Debug, PartialEq, Eq)]
enum BodyEnd {
    /// After `Content-Length` bytes.
    Length(usize),
    /// After the last chunk of a `Transfer-Encoding: chunked` body.
    Chunked,
    /// When the server closes the connection.
    Close,
}

/// `GET path` over HTTP/1.1 on a plain TCP connection (`Connection: close`), with connect and
/// read/write timeouts.
pub(super) fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .with_context(|| format!("setting a read timeout on {addr}"))?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .with_context(|| format!("setting a write timeout on {addr}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: wharf-xtask\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("sending GET {path} to {addr}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                bail!(
                    "no answer to GET {path} from {addr} within {} s",
                    IO_TIMEOUT.as_secs()
                )
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("reading the answer to GET {path} from {addr}"));
            }
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        ensure!(
            raw.len() <= MAX_RESPONSE,
            "the answer to GET {path} from {addr} is over {MAX_RESPONSE} bytes"
        );
        if response_complete(&raw) {
            break;
        }
    }
    parse_response(&raw).with_context(|| format!("parsing the answer to GET {path} from {addr}"))
}

/// Whether `raw` holds a whole response (so reading can stop before the server closes).
fn response_complete(raw: &[u8]) -> bool {
    match split_head(raw) {
        Ok(Some((_, headers, body))) => match body_end(&headers) {
            Ok(BodyEnd::Length(len)) => body.len() >= len,
            Ok(BodyEnd::Chunked) => decode_chunked(body).is_ok(),
            Ok(BodyEnd::Close) => false,
            Err(_) => true, // let `parse_response` report it
        },
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Parses a whole HTTP/1.x response: status line, headers and body (by `Content-Length`,
/// chunked, or up to the end).
fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let Some((status, headers, body)) = split_head(raw)? else {
        bail!(
            "the response ended before its headers did ({} bytes)",
            raw.len()
        );
    };
    let body = match body_end(&headers)? {
        BodyEnd::Length(len) => {
            ensure!(
                body.len() >= len,
                "the body has {} of its {len} bytes",
                body.len()
            );
            body[..len].to_vec()
        }
        BodyEnd::Chunked => decode_chunked(body)?,
        BodyEnd::Close => body.to_vec(),
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A response head and the bytes after it (`None` if the head is not complete yet).
type Head<'a> = (u16, Vec<(String, String)>, &'a [u8]);

/// Splits `raw` into status code, headers and the bytes after the blank line.
fn split_head(raw: &[u8]) -> anyhow::Result<Option<Head<'_>>> {
    let Some(end) = raw.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end]).context("the response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    ensure!(
        version.starts_with("HTTP/1."),
        "not an HTTP/1.x status line: {status_line:?}"
    );
    let status = parts
        .next()
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..=999).contains(code))
        .with_context(|| format!("no status code in {status_line:?}"))?;
    let headers = lines
        .map(|line| {
            line.split_once(':')
                .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                .with_context(|| format!("malformed header line {line:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some((status, headers, &raw[end + 4..])))
}

/// How the body after these headers ends.
fn body_end(headers: &[(String, String)]) -> anyhow::Result<BodyEnd> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if value("Transfer-Encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        return Ok(BodyEnd::Chunked);
    }
    match value("Content-Length") {
        Some(len) => Ok(BodyEnd::Length(
            len.parse()
                .with_context(|| format!("bad Content-Length {len:?}"))?,
        )),
        None => Ok(BodyEnd::Close),
    }
}

/// Decodes a `Transfer-Encoding: chunked` body (trailers ignored); an error if it is
/// incomplete or malformed.
fn decode_chunked(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk size line is not terminated")?;
        let line =
            std::str::from_utf8(&data[..line_end]).context("a chunk size line is not UTF-8")?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {line:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(
            data.len() >= size + 2,
            "a chunk of {size} bytes is truncated"
        );
        out.extend_from_slice(&data[..size]);
        ensure!(
            &data[size..size + 2] == b"\r\n",
            "a chunk of {size} bytes is not followed by CRLF"
        );
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::BACKENDS;
    use crate::backends::process::{loopback, pick_free_port};
    use std::net::TcpListener;
    use std::thread::sleep;

    /// Serves one connection on a loopback port with `answer` and returns the address.
    fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind(loopback(0)).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "client closed before sending its request");
                request.extend_from_slice(&buf[..n]);
            }
            let request = String::from_utf8(request).unwrap();
            assert!(request.starts_with("GET /v2/ HTTP/1.1\r\n"), "{request}");
            assert!(request.contains(&format!("Host: {addr}\r\n")), "{request}");
            stream.write_all(answer).unwrap();
            // Keep the connection open a little: the client must stop at Content-Length.
            sleep(Duration::from_millis(200));
        });
        addr
    }

    #[test]
    fn parses_a_response_with_content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ndocker-distribution-api-version:  registry/2.0 \r\n\r\n{}extra";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"{}");
        assert_eq!(
            response.header("Docker-Distribution-API-Version"),
            Some("registry/2.0")
        );
        assert_eq!(response.header("content-length"), Some("2"));
        assert_eq!(response.header("X-Missing"), None);
        assert!(response_complete(raw));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}"
        ));
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\nContent-Len"));
    }

    #[test]
    fn parses_a_chunked_response() {
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwhar\r\n1\r\nf\r\n0\r\n\r\n";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.body, b"wharf");
        assert!(response_complete(raw));
        assert!(!response_complete(&raw[..raw.len() - 5]));
        assert!(parse_response(&raw[..raw.len() - 5]).is_err());
    }

    #[test]
    fn a_body_without_length_runs_to_the_end() {
        let response = parse_response(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of it").unwrap();
        assert_eq!(response.body, b"all of it");
        assert!(!response_complete(b"HTTP/1.0 200 OK\r\n\r\npartial"));
    }

    #[test]
    fn rejects_what_is_not_http() {
        for raw in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            assert!(
                parse_response(raw).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn http_get_and_probe_talk_to_a_server() {
        let answer = b"HTTP/1.1 200 OK\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: 2\r\n\r\n{}";
        let response = http_get(serve_once(answer), "/v2/").unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"{}"[..])
        );

        let probe = BACKENDS[0].probe().unwrap();
        assert_eq!(probe.check(serve_once(answer)), Ok(()));
        let unauthorized = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\n\r\ndenied";
        let why = probe.check(serve_once(unauthorized)).unwrap_err();
        assert!(why.contains("401") && why.contains("denied"), "{why}");
        let no_header = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let why = probe.check(serve_once(no_header)).unwrap_err();
        assert!(why.contains("Docker-Distribution-API-Version"), "{why}");
    }

    #[test]
    fn http_get_reports_a_closed_port() {
        let port = pick_free_port(&[]).unwrap();
        let err = http_get(loopback(port), "/").unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("connecting to 127.0.0.1:{port}")),
            "{err:#}"
        );
    }
}
