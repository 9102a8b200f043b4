//! What the identity tests share: ID tokens signed by a test key, a clock moved by hand,
//! and loopback stand-ins for the token endpoints no local binary can play.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine as _;
use serde_json::Value;
use time::OffsetDateTime;
use wharf_identity::Clock;

/// The canary no output may contain: every test token's signature part ends with it.
pub const CANARY: &str = "wharfcanaryQ7x";

/// A clock that stays where it is put.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn at(t: OffsetDateTime) -> Arc<Self> {
        Arc::new(Self(Mutex::new(t)))
    }

    pub fn advance(&self, by: time::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// 2026-12-06T10:00:00Z, where the tests' clocks start.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_796_551_200).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT over `claims`, signed ES256 by a fresh test key (checked against its public key
/// here, so the token is a real one), with [`CANARY`] appended to the signature part.
pub fn signed_jwt(claims: &Value) -> String {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"ES256","typ":"JWT","kid":"wharf-test"}"#),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref())
        .verify(input.as_bytes(), sig.as_ref())
        .unwrap();
    format!("{input}.{}{CANARY}", b64(sig.as_ref()))
}

/// The claims of a GitHub Actions ID token for a job in environment `prod` (shape from
/// GitHub's "About security hardening with OpenID Connect" example token), for `aud`,
/// expiring an hour after [`t0`] — for tests that read it with a [`ManualClock`].
pub fn github_claims(aud: &str) -> Value {
    claims_issued_at(aud, t0())
}

/// [`github_claims`] issued now, for sources that read the system clock (what
/// `source::detect` builds): a token issued at [`t0`] has long expired by the time CI runs.
pub fn live_claims(aud: &str) -> Value {
    claims_issued_at(aud, OffsetDateTime::now_utc())
}

fn claims_issued_at(aud: &str, iat: OffsetDateTime) -> Value {
    let iat = iat.unix_timestamp();
    serde_json::json!({
        "jti": "example-id",
        "sub": "repo:Acme/models:environment:prod",
        "environment": "prod",
        "aud": aud,
        "ref": "refs/heads/main",
        "sha": "example-sha",
        "repository": "Acme/models",
        "repository_owner": "Acme",
        "actor_id": "12",
        "repository_visibility": "private",
        "repository_id": "74",
        "repository_owner_id": "65",
        "run_id": "8812345678",
        "run_number": "10",
        "run_attempt": "2",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "workflow": "release",
        "head_ref": "",
        "base_ref": "",
        "event_name": "workflow_dispatch",
        "ref_type": "branch",
        "job_workflow_ref": "Acme/models/.github/workflows/release.yml@refs/heads/main",
        "iss": "https://token.actions.githubusercontent.com",
        "nbf": iat - 5,
        "exp": iat + 3600,
        "iat": iat
    })
}

/// A request a stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The form-encoded body's field `name`, decoded.
    pub fn form(&self, name: &str) -> Option<String> {
        self.body.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| decode(v))
        })
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// What a stand-in answers: status, content type, body.
pub type Answer = (u16, &'static str, String);

/// A loopback HTTP stand-in: `answer` decides each response; every request is kept.
pub fn serve(
    answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let record = record.clone();
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let target = parts.next().unwrap_or("").to_owned();
                let mut headers = Vec::new();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 {
                        return;
                    }
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap();
                        }
                        headers.push((k.trim().to_owned(), v.trim().to_owned()));
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let seen = Seen {
                    method,
                    target,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let (status, content_type, body) = answer(&seen);
                record.lock().unwrap().push(seen);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, seen)
}

/// A URL nothing listens on.
pub fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}
