//! Runs the built `xtask backends up|env|status` against the real backends: a CNCF
//! distribution registry and a moto server (installed and started on first use).
//!
//! The backends are left running: other test binaries of the run may use them, and whoever
//! started the run stops them (`cargo xtask backends down`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Runs `xtask ARGS` and returns its output, failing the test with both streams if it fails.
fn xtask(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("running the xtask binary");
    assert!(
        output.status.success(),
        "`xtask {}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `xtask backends up`, then the variables `xtask backends env` exports.
fn up_and_env() -> BTreeMap<String, String> {
    xtask(&["backends", "up"]);
    let stdout =
        String::from_utf8(xtask(&["backends", "env"]).stdout).expect("env output is UTF-8");
    stdout
        .lines()
        .map(|line| {
            let assignment = line
                .strip_prefix("export ")
                .unwrap_or_else(|| panic!("not an export: {line:?}"));
            let (name, value) = assignment
                .split_once('=')
                .unwrap_or_else(|| panic!("no `=` in {line:?}"));
            (name.to_owned(), value.trim_matches('\'').to_owned())
        })
        .collect()
}

/// Backend name → PID, from `xtask backends status`, asserting every service is running and
/// every tool installed.
fn running_pids() -> BTreeMap<String, u32> {
    let stdout =
        String::from_utf8(xtask(&["backends", "status"]).stdout).expect("status output is UTF-8");
    stdout
        .lines()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            // Tools are installed, not run: `skopeo  installed  -  -  program /usr/bin/skopeo`.
            words.get(1) != Some(&"installed")
        })
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.get(1), Some(&"running"), "status line: {line:?}");
            let pid = words
                .iter()
                .position(|word| *word == "pid")
                .and_then(|at| words.get(at + 1))
                .and_then(|pid| pid.parse().ok())
                .unwrap_or_else(|| panic!("no pid in {line:?}"));
            (words[0].to_owned(), pid)
        })
        .collect()
}

/// An HTTP response: status, headers, raw body.
struct Response {
    /// The status code.
    status: u16,
    /// Header names and values.
    headers: Vec<(String, String)>,
    /// Everything after the head (no body for HEAD).
    body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), read to the end.
fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> Response {
    request_with(addr, method, path, &[], body)
}

/// [`request`] with extra headers.
fn request_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|err| panic!("connecting to {addr}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting a read timeout");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .expect("sending the request head");
    stream.write_all(body).expect("sending the request body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reading the response");
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

#[test]
fn registry_answers_v2_and_takes_a_monolithic_blob_upload() {
    let env = up_and_env();
    let registry = env
        .get("WHARF_TEST_REGISTRY")
        .expect("WHARF_TEST_REGISTRY is exported");
    assert!(registry.starts_with("127.0.0.1:"), "{registry}");

    let v2 = request(registry, "GET", "/v2/", b"");
    assert_eq!(v2.status, 200, "{}", String::from_utf8_lossy(&v2.body));
    assert_eq!(
        v2.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let blob = format!("wharf harness blob {nanos}\n").into_bytes();
    let hex: String = Sha256::digest(&blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let digest = format!("sha256:{hex}");

    let started = request(registry, "POST", "/v2/wharf-harness/blobs/uploads/", b"");
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    let location = started
        .header("Location")
        .expect("a 202 upload has a Location");
    let location = location
        .strip_prefix(&format!("http://{registry}"))
        .unwrap_or(location);
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = request(
        registry,
        "PUT",
        &format!("{location}{separator}digest={digest}"),
        &blob,
    );
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    assert_eq!(put.header("Docker-Content-Digest"), Some(digest.as_str()));

    let head = request(
        registry,
        "HEAD",
        &format!("/v2/wharf-harness/blobs/{digest}"),
        b"",
    );
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(blob.len().to_string().as_str())
    );
}

#[test]
fn moto_answers_and_resets() {
    let env = up_and_env();
    let moto = env
        .get("WHARF_TEST_MOTO")
        .expect("WHARF_TEST_MOTO is exported");
    let addr = moto
        .strip_prefix("http://127.0.0.1:")
        .map(|port| format!("127.0.0.1:{port}"));
    let addr = addr.unwrap_or_else(|| panic!("not a loopback http URL: {moto}"));

    let api = request(&addr, "GET", "/moto-api/", b"");
    assert_eq!(api.status, 200);
    let reset = request(&addr, "POST", "/moto-api/reset", b"");
    assert_eq!(
        reset.status,
        200,
        "{}",
        String::from_utf8_lossy(&reset.body)
    );
}

#[test]
fn up_again_reuses_the_running_backends_and_status_says_running() {
    let first = up_and_env();
    let pids = running_pids();
    assert!(
        pids.contains_key("registry") && pids.contains_key("moto"),
        "{pids:?}"
    );

    let started = Instant::now();
    xtask(&["backends", "up"]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "a second `up` took {took:?}");
    assert_eq!(up_and_env(), first, "a second `up` changed the addresses");
    assert_eq!(running_pids(), pids, "a second `up` restarted a backend");
}

/// Standard base64 (for a Basic `Authorization` header).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `127.0.0.1:PORT` from `http://127.0.0.1:PORT`.
fn host_port(url: &str) -> &str {
    url.strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"))
}

#[test]
fn basic_auth_registry_wants_the_test_user() {
    let env = up_and_env();
    let registry = &env["WHARF_TEST_REGISTRY_BASIC"];
    let user = &env["WHARF_TEST_REGISTRY_USER"];
    let password = &env["WHARF_TEST_REGISTRY_PASSWORD"];
    assert_eq!(password.len(), 24, "a generated password");

    let anonymous = request(registry, "GET", "/v2/", b"");
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("WWW-Authenticate"),
        Some("Basic realm=\"wharf-test-basic\"")
    );
    let good = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
    let ok = request_with(registry, "GET", "/v2/", &[("Authorization", &good)], b"");
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let bad = format!("Basic {}", base64(format!("{user}:wrong").as_bytes()));
    let refused = request_with(registry, "GET", "/v2/", &[("Authorization", &bad)], b"");
    assert_eq!(refused.status, 401);
}

#[test]
fn token_server_issues_tokens_the_token_registry_accepts() {
    let env = up_and_env();
    let registry = &env["WHARF_TEST_REGISTRY_TOKEN"];
    let server = &env["WHARF_TEST_TOKEN_SERVER"];
    let user = &env["WHARF_TEST_REGISTRY_USER"];
    let password = &env["WHARF_TEST_REGISTRY_PASSWORD"];

    let challenge = request(registry, "GET", "/v2/harness/tags/list", b"");
    assert_eq!(challenge.status, 401);
    assert_eq!(
        challenge.header("WWW-Authenticate"),
        Some(
            format!(
                "Bearer realm=\"{server}/token\",service=\"wharf-test-registry\",scope=\"repository:harness:pull\""
            )
            .as_str()
        )
    );

    let basic = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
    let path = "/token?service=wharf-test-registry&scope=repository:harness:pull";
    let answer = request_with(
        host_port(server),
        "GET",
        path,
        &[("Authorization", &basic)],
        b"",
    );
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let token = json["token"].as_str().unwrap();
    assert_eq!(json["access_token"].as_str(), Some(token));
    assert_eq!(json["expires_in"].as_u64(), Some(300));
    assert!(json["issued_at"].as_str().unwrap().ends_with('Z'));

    // The registry verifies the RS256 signature against the x5c certificate in its
    // rootcertbundle, the issuer, the audience and the access claim.
    let bearer = format!("Bearer {token}");
    let listed = request_with(
        registry,
        "GET",
        "/v2/harness/tags/list",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(
        listed.status,
        404,
        "authorized, and the repository does not exist: {}",
        String::from_utf8_lossy(&listed.body)
    );
    let other = request_with(
        registry,
        "GET",
        "/v2/other/tags/list",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(other.status, 401, "the token is only for `harness`");
    assert!(
        other
            .header("WWW-Authenticate")
            .is_some_and(|c| c.contains("error=\"insufficient_scope\"")),
        "{:?}",
        other.header("WWW-Authenticate")
    );

    let wrong = format!("Basic {}", base64(format!("{user}:wrong").as_bytes()));
    let refused = request_with(
        host_port(server),
        "GET",
        path,
        &[("Authorization", &wrong)],
        b"",
    );
    assert_eq!(refused.status, 401);
    let stats: serde_json::Value =
        serde_json::from_slice(&request(host_port(server), "GET", "/stats", b"").body).unwrap();
    assert!(stats["issued"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["refused"].as_u64().unwrap() >= 1, "{stats}");
}

#[test]
fn skopeo_is_installed_as_a_tool() {
    let env = up_and_env();
    let skopeo = &env["WHARF_TEST_SKOPEO"];
    let out = Command::new(skopeo)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running {skopeo}: {e}"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("skopeo version"));
}

/// `GET path` from the Sigstore mock, as JSON.
fn sigstore_json(addr: &str, path: &str) -> serde_json::Value {
    let response = request(addr, "GET", path, b"");
    assert_eq!(
        response.status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&response.body)
    );
    serde_json::from_slice(&response.body).unwrap_or_else(|err| panic!("GET {path}: {err}"))
}

/// Lowercase hex.
fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string.
fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap())
        .collect()
}

/// The root an RFC 6962 inclusion proof (leaf level first) leads to from `leaf` at `index`
/// in a tree of `size` (RFC 9162 §2.1.3.2); `None` if the proof does not fit the tree.
fn merkle_root(leaf: Vec<u8>, index: u64, size: u64, path: &[Vec<u8>]) -> Option<Vec<u8>> {
    let node = |left: &[u8], right: &[u8]| {
        Sha256::new()
            .chain_update([1u8])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .to_vec()
    };
    let (mut fn_, mut sn, mut root) = (index, size.checked_sub(1)?, leaf);
    for hash in path {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            root = node(hash, &root);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            root = node(&root, hash);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (sn == 0).then_some(root)
}

#[test]
fn sigstore_mock_serves_trust_material_logs_entries_and_injects_faults() {
    use ::base64::Engine;
    use ::base64::engine::general_purpose::STANDARD;

    let env = up_and_env();
    let base = env["WHARF_TEST_SIGSTORE"].as_str();
    let addr = host_port(base);

    let root = sigstore_json(addr, "/trusted_root.json");
    assert_eq!(
        root["mediaType"],
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    );
    assert_eq!(root["certificateAuthorities"][0]["uri"], base);
    assert_eq!(root["tlogs"][0]["baseUrl"], base);
    assert_eq!(root["ctlogs"].as_array().map(Vec::len), Some(1));
    let config = sigstore_json(addr, "/client_trust_config.json");
    assert_eq!(
        config["mediaType"],
        "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
    );
    assert_eq!(config["trustedRoot"], root);
    assert_eq!(config["signingConfig"]["caUrls"][0]["url"], base);
    assert_eq!(config["signingConfig"]["rekorTlogUrls"][0]["url"], base);

    // Rekor's key: the trust root's, and the log ID is its SHA-256.
    let pem = request(addr, "GET", "/api/v1/log/publicKey", b"");
    assert_eq!(pem.status, 200);
    let pem = String::from_utf8(pem.body).unwrap();
    let spki: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let tlog = &root["tlogs"][0];
    assert_eq!(tlog["publicKey"]["rawBytes"], spki.as_str());
    let log_id = STANDARD.encode(Sha256::digest(STANDARD.decode(&spki).unwrap()));
    assert_eq!(tlog["logId"]["keyId"], log_id.as_str());

    // A hashedrekord entry (Rekor's own key as the signer's: the mock does not check
    // hashedrekord signatures), proven by an RFC 6962 path to the checkpoint's root.
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let digest = hex(Sha256::digest(format!("wharf backends test {nonce:?}")));
    let entry = serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": { "hash": { "algorithm": "sha256", "value": digest } },
            "signature": {
                "content": "MEUCIQ==",
                "publicKey": { "content": STANDARD.encode(&pem) },
            },
        },
    });
    let body = serde_json::to_vec(&entry).unwrap();
    let created = request(addr, "POST", "/api/v1/log/entries", &body);
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let location = created.header("Location").unwrap().to_owned();
    let created: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    let (uuid, logged) = created.as_object().unwrap().iter().next().unwrap();
    assert_eq!(location, format!("/api/v1/log/entries/{uuid}"));
    let canonical = STANDARD.decode(logged["body"].as_str().unwrap()).unwrap();
    let leaf = Sha256::new()
        .chain_update([0u8])
        .chain_update(&canonical)
        .finalize()
        .to_vec();
    assert!(uuid.len() == 80 && uuid.ends_with(&hex(&leaf)), "{uuid}");
    let proof = &logged["verification"]["inclusionProof"];
    let index = proof["logIndex"].as_u64().unwrap();
    let size = proof["treeSize"].as_u64().unwrap();
    assert!(0 < index && index < size, "{proof}");
    assert_ne!(
        logged["logIndex"].as_u64(),
        Some(index),
        "a sharded log's index"
    );
    let path: Vec<Vec<u8>> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hash| unhex(hash.as_str().unwrap()))
        .collect();
    assert!(!path.is_empty(), "{proof}");
    assert_eq!(
        merkle_root(leaf, index, size, &path).map(hex).as_deref(),
        proof["rootHash"].as_str()
    );
    let checkpoint: Vec<&str> = proof["checkpoint"].as_str().unwrap().lines().collect();
    assert_eq!(checkpoint[0], format!("{addr} - 1193050959916656506"));
    assert_eq!(checkpoint[1], size.to_string());
    let again = request(addr, "POST", "/api/v1/log/entries", &body);
    assert_eq!(again.status, 409, "Rekor refuses an entry it holds");
    assert_eq!(again.header("Location"), Some(location.as_str()));
    assert_eq!(sigstore_json(addr, &location)[uuid]["body"], logged["body"]);

    // Faults: the next request to the path answers the injected status, then it is served.
    let count = || sigstore_json(addr, "/requests")["/api/v1/log/publicKey"].as_u64();
    let before = count().unwrap();
    let fault = br#"{"path":"/api/v1/log/publicKey","status":503,"count":1}"#;
    assert_eq!(request(addr, "POST", "/faults", fault).status, 200);
    let faulted = request(addr, "GET", "/api/v1/log/publicKey", b"");
    assert_eq!(faulted.status, 503);
    let error: serde_json::Value = serde_json::from_slice(&faulted.body).unwrap();
    assert_eq!(error["code"], 503);
    assert_eq!(
        request(addr, "GET", "/api/v1/log/publicKey", b"").status,
        200
    );
    assert_eq!(count(), Some(before + 2), "faulted requests count too");
}

#[test]
fn sigstore_python_is_installed_as_a_tool() {
    let env = up_and_env();
    let sigstore = &env["WHARF_TEST_SIGSTORE_PYTHON"];
    let out = Command::new(sigstore)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running {sigstore}: {e}"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sigstore 4."));
}
