#![allow(clippy::unwrap_used)]
#![cfg(feature = "keyless")]
//! Keyless signing against a local Sigstore: the harness's `sigstore-mock` backend serves
//! `@sigstore/mock`'s Fulcio (certificates with embedded SCTs) and Rekor (entries with signed
//! entry timestamps, inclusion proofs and signed checkpoints) on loopback, with its
//! `trusted_root.json` (`WHARF_TEST_SIGSTORE`). What we sign is verified by wharf, by
//! sigstore-js (`@sigstore/verify`, default thresholds: one log entry, one SCT) and by
//! sigstore-python (`sigstore verify identity --offline`), and Fulcio/Rekor 5xx are retried.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wharf_core::memory::MemoryRegistry;
use wharf_core::registry::{ReferrersOptions, collect_blob};
use wharf_core::retry::RetryPolicy;
use wharf_core::{Digest, ErrorKind, Registry, Secret};
use wharf_sign::Trust;
use wharf_sign::bundle::{BUNDLE_V03, Bundle, verify_with_identity};
use wharf_sign::cosign::{ReferenceMatch, SignOutcome, sign_image_keyless, verify_image_keyless};
use wharf_sign::fulcio::Identity;
use wharf_sign::keyless::Sigstore;
use wharf_sign::referrers::{
    attest_image_bundle_keyless, sign_image_bundle_keyless, verify_bundle_attestations,
    verify_image_bundle_with,
};
use wharf_sign::rekor::TrustedRoot;

mod support;

const ISSUER: &str = "https://oidc.wharf.test";
const SUBJECT: &str =
    "https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main";
/// A value that must never appear in errors, logs or Debug output.
const CANARY: &str = "canary-7f3d9e1b-token-secret";

/// The mock's fault injection and request counters are shared: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn base() -> String {
    support::harness("WHARF_TEST_SIGSTORE")
}

/// An OIDC ID token as a CI provider issues it (the mock Fulcio reads its claims; the real
/// one also checks its signature against the issuer's keys).
fn token(sub: &str) -> Secret {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": sub, "aud": "sigstore", "exp": 4_000_000_000u64,
        "iat": now, "nbf": now, "nonce": CANARY,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    Secret::new(format!(
        "{header}.{claims}.{}",
        URL_SAFE_NO_PAD.encode(CANARY)
    ))
}

async fn get(path: &str) -> Vec<u8> {
    let resp = reqwest::get(format!("{}{path}", base())).await.unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.bytes().await.unwrap().to_vec()
}

async fn post(path: &str, body: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", base()))
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
}

async fn sigstore() -> Sigstore {
    let root = TrustedRoot::parse(
        &get("/trusted_root.json").await,
        "the mock's trusted_root.json",
    )
    .unwrap();
    Sigstore::new(&base(), &base(), root)
        .unwrap()
        .with_retry(RetryPolicy::new(
            4,
            Duration::from_millis(10),
            Duration::from_millis(50),
        ))
}

async fn requests(path: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&get("/requests").await).unwrap();
    v[path].as_u64().unwrap_or(0)
}

fn who() -> Identity {
    Identity::exact(SUBJECT, ISSUER)
}

#[tokio::test]
async fn an_artifact_signed_keylessly_verifies_by_identity_only() {
    let _serial = SERIAL.lock().await;
    let sigstore = sigstore().await;
    let session = sigstore.session(&token(SUBJECT)).await.unwrap();
    assert!(!format!("{session:?}").contains(CANARY));
    let bundle = session.sign_artifact(b"model weights").await.unwrap();
    let bundle = Bundle::parse(&bundle, "signed").unwrap();
    let v = verify_with_identity(&bundle, b"model weights", &who(), sigstore.root())
        .await
        .unwrap();
    let cert = v.certificate.unwrap();
    assert_eq!(
        (cert.subject.as_str(), cert.issuer.as_str()),
        (SUBJECT, ISSUER)
    );
    assert_eq!(cert.scts, 1);

    let err = |r: Result<wharf_sign::bundle::VerifiedBundle, wharf_core::Error>| {
        r.unwrap_err().to_string()
    };
    let e = err(verify_with_identity(&bundle, b"other weights", &who(), sigstore.root()).await);
    assert!(e.contains("signs another artifact"), "{e}");
    let eve = Identity::exact(
        "https://github.com/eve/x/.github/workflows/a.yml@refs/heads/main",
        ISSUER,
    );
    let e = err(verify_with_identity(&bundle, b"model weights", &eve, sigstore.root()).await);
    assert!(e.contains("not to the required identity"), "{e}");
    // The public-good root trusts neither this Fulcio nor this Rekor.
    let production = TrustedRoot::parse(
        &std::fs::read(fixture("sigstore/production_trusted_root.json")).unwrap(),
        "production",
    )
    .unwrap();
    let e = err(verify_with_identity(&bundle, b"model weights", &who(), &production).await);
    assert!(e.contains("not in the trusted root"), "{e}");
}

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

#[tokio::test]
async fn images_signed_and_attested_keylessly_in_both_formats_verify_and_resigning_adds_nothing() {
    let _serial = SERIAL.lock().await;
    let reg = MemoryRegistry::new();
    let repo = "models/fraud";
    let image = support::push_image(&reg, repo, b"weights", "v1").await;
    let sigstore = sigstore().await;
    let session = sigstore.session(&token(SUBJECT)).await.unwrap();
    let trust = Trust::Keyless {
        identity: &who(),
        root: sigstore.root(),
    };

    // cosign 3: a DSSE bundle referrer.
    let out = sign_image_bundle_keyless(&reg, repo, &image, &session)
        .await
        .unwrap();
    assert!(
        matches!(out, SignOutcome::Added { signatures: 1, .. }),
        "{out:?}"
    );
    assert_eq!(
        sign_image_bundle_keyless(&reg, repo, &image, &session)
            .await
            .unwrap(),
        SignOutcome::AlreadySigned
    );
    let who_signed = verify_image_bundle_with(&reg, repo, &image, trust)
        .await
        .unwrap();
    assert_eq!(who_signed, vec![SUBJECT.to_owned()]);

    // Legacy: the .sig layer with certificate, chain and Rekor bundle.
    let out = sign_image_keyless(&reg, repo, &image, "registry.local/models/fraud", &session)
        .await
        .unwrap();
    assert!(matches!(out, SignOutcome::Added { .. }), "{out:?}");
    assert_eq!(
        sign_image_keyless(&reg, repo, &image, "registry.local/models/fraud", &session)
            .await
            .unwrap(),
        SignOutcome::AlreadySigned
    );
    let v = verify_image_keyless(
        &reg,
        repo,
        &image,
        &who(),
        sigstore.root(),
        ReferenceMatch::Any,
    )
    .await
    .unwrap();
    assert_eq!(v[0].key_id, SUBJECT);
    assert!(v[0].integrated_time.is_some());

    // An attestation as a referrer; its predicate comes back.
    let predicate = serde_json::json!({"metrics": {"accuracy": 0.97}});
    attest_image_bundle_keyless(
        &reg,
        repo,
        &image,
        wharf_sign::attest::MODEL_EVALUATION_V1,
        predicate.clone(),
        &session,
    )
    .await
    .unwrap();
    let att = verify_bundle_attestations(
        &reg,
        repo,
        &image,
        trust,
        Some(wharf_sign::attest::MODEL_EVALUATION_V1),
    )
    .await
    .unwrap();
    assert_eq!(att[0].predicate, predicate);
    assert_eq!(att[0].key_id, SUBJECT);

    // Another identity finds nothing it trusts, and says why.
    let eve = Identity::exact(
        "https://github.com/eve/x/.github/workflows/a.yml@refs/heads/main",
        ISSUER,
    );
    let e = verify_image_bundle_with(
        &reg,
        repo,
        &image,
        Trust::Keyless {
            identity: &eve,
            root: sigstore.root(),
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("not to the required identity"), "{e}");
    let e = verify_image_keyless(
        &reg,
        repo,
        &image,
        &eve,
        sigstore.root(),
        ReferenceMatch::Any,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("not to the required identity"), "{e}");
    // A key does not stand in for a certificate.
    let key = wharf_sign::EcdsaP256Key::generate().unwrap();
    let e = verify_image_bundle_with(&reg, repo, &image, Trust::Key(key.public_key()))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("signed keylessly"), "{e}");
}

#[tokio::test]
async fn fulcio_and_rekor_5xx_are_retried_and_a_persistent_failure_is_named() {
    let _serial = SERIAL.lock().await;
    let fulcio = "/api/v2/signingCert";
    let before = requests(fulcio).await;
    post(
        "/faults",
        &format!(r#"{{"path":"{fulcio}","status":503,"count":2}}"#),
    )
    .await;
    let sigstore = sigstore().await;
    let session = sigstore.session(&token(SUBJECT)).await.unwrap();
    assert_eq!(
        requests(fulcio).await - before,
        3,
        "two 503s, then a certificate"
    );

    let rekor = "/api/v1/log/entries";
    let before = requests(rekor).await;
    post(
        "/faults",
        &format!(r#"{{"path":"{rekor}","status":502,"count":1}}"#),
    )
    .await;
    session.sign_artifact(b"x").await.unwrap();
    assert_eq!(requests(rekor).await - before, 2);

    // Rekor logged the entry but the answer was lost: the retry meets 409 Conflict and the
    // existing entry is fetched from its Location.
    let before = requests(rekor).await;
    post(
        "/faults",
        &format!(r#"{{"path":"{rekor}","status":504,"count":1,"served":true}}"#),
    )
    .await;
    let bundle = session.sign_artifact(b"y").await.unwrap();
    assert_eq!(requests(rekor).await - before, 2);
    let fetched: u64 = {
        let v: serde_json::Value = serde_json::from_slice(&get("/requests").await).unwrap();
        v.as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("/api/v1/log/entries/"))
            .map(|(_, n)| n.as_u64().unwrap())
            .sum()
    };
    assert!(fetched >= 1, "the existing entry was fetched");
    let bundle = Bundle::parse(&bundle, "after a conflict").unwrap();
    verify_with_identity(&bundle, b"y", &who(), sigstore.root())
        .await
        .unwrap();

    // More failures than attempts: the error names the service, the status, the attempts.
    post(
        "/faults",
        &format!(r#"{{"path":"{fulcio}","status":503,"count":4}}"#),
    )
    .await;
    let err = sigstore.session(&token(SUBJECT)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    let e = err.to_string();
    assert!(
        e.contains("Fulcio at") && e.contains("503") && e.contains("after 4 attempts"),
        "{e}"
    );
    // A refused token is not retried, and the token is never shown.
    let before = requests(fulcio).await;
    post(
        "/faults",
        &format!(r#"{{"path":"{fulcio}","status":401,"count":1}}"#),
    )
    .await;
    let err = sigstore.session(&token(SUBJECT)).await.unwrap_err();
    assert_eq!(requests(fulcio).await - before, 1);
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(!err.to_string().contains(CANARY) && !format!("{err:?}").contains(CANARY));
}

/// Write our keyless bundle for `artifact` to `dir`, as independent verifiers read it.
async fn signed_files(dir: &Path, artifact: &[u8]) -> (PathBuf, PathBuf) {
    let sigstore = sigstore().await;
    let session = sigstore.session(&token(SUBJECT)).await.unwrap();
    let bundle = session.sign_artifact(artifact).await.unwrap();
    let (a, b) = (dir.join("model.bin"), dir.join("model.bin.sigstore.json"));
    std::fs::write(&a, artifact).unwrap();
    std::fs::write(&b, bundle).unwrap();
    (a, b)
}

#[tokio::test]
async fn sigstore_python_verifies_our_keyless_bundle_and_rejects_another_identity() {
    let _serial = SERIAL.lock().await;
    let program = support::harness("WHARF_TEST_SIGSTORE_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let (artifact, bundle) = signed_files(dir.path(), b"weights for python").await;
    let config = dir.path().join("client_trust_config.json");
    std::fs::write(&config, get("/client_trust_config.json").await).unwrap();
    let verify = |identity: &str| {
        Command::new(&program)
            .arg("--trust-config")
            .arg(&config)
            .args(["verify", "identity", "--offline", "--bundle"])
            .arg(&bundle)
            .args(["--cert-identity", identity, "--cert-oidc-issuer", ISSUER])
            .arg(&artifact)
            .output()
            .unwrap()
    };
    let out = verify(SUBJECT);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = verify("https://github.com/eve/x/.github/workflows/a.yml@refs/heads/main");
    assert!(!out.status.success(), "another identity must not verify");
}

/// The other way round: sigstore-python signs with the same local Sigstore (CSR + bearer
/// token, as it talks to Fulcio) and wharf verifies its bundle by identity.
#[tokio::test]
async fn a_bundle_sigstore_python_signed_verifies_with_wharf() {
    let _serial = SERIAL.lock().await;
    let program = support::harness("WHARF_TEST_SIGSTORE_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client_trust_config.json");
    std::fs::write(&config, get("/client_trust_config.json").await).unwrap();
    let artifact = dir.path().join("model.bin");
    std::fs::write(&artifact, b"weights signed by python").unwrap();
    let out = Command::new(&program)
        .arg("--trust-config")
        .arg(&config)
        .args([
            "sign",
            "--identity-token",
            token(SUBJECT).expose(),
            "--overwrite",
        ])
        .arg(&artifact)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(dir.path().join("model.bin.sigstore.json")).unwrap();
    let bundle = Bundle::parse(&bytes, "sigstore-python's bundle").unwrap();
    let sigstore = sigstore().await;
    let v = verify_with_identity(
        &bundle,
        b"weights signed by python",
        &who(),
        sigstore.root(),
    )
    .await
    .unwrap();
    assert_eq!(v.certificate.unwrap().subject, SUBJECT);
    let e = verify_with_identity(&bundle, b"other weights", &who(), sigstore.root())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("signs another artifact"), "{e}");
}

const VERIFY_JS: &str = r#"
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');
const [bundlePath, artifactPath, rootPath, subject, issuer] = process.argv.slice(1);
const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8')));
const trust = toTrustMaterial(root);
const verifier = new Verifier(trust); // defaults: tlogThreshold 1, ctlogThreshold 1
const signer = verifier.verify(toSignedEntity(bundle, fs.readFileSync(artifactPath)), {
  subjectAlternativeName: subject, extensions: { issuer },
});
console.log(signer.identity.subjectAlternativeName, signer.identity.extensions.issuer);
"#;

#[tokio::test]
async fn sigstore_js_verifies_our_keyless_bundle_with_its_default_thresholds() {
    let _serial = SERIAL.lock().await;
    let node_modules = support::sigstore_js_modules();
    let dir = tempfile::tempdir().unwrap();
    let (artifact, bundle) = signed_files(dir.path(), b"weights for js").await;
    let root = dir.path().join("trusted_root.json");
    std::fs::write(&root, get("/trusted_root.json").await).unwrap();
    let node = |subject: &str| {
        Command::new("node")
            .args(["-e", VERIFY_JS])
            .arg(&bundle)
            .arg(&artifact)
            .arg(&root)
            .args([subject, ISSUER])
            .env("NODE_PATH", &node_modules)
            .output()
            .unwrap()
    };
    let out = node(SUBJECT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{SUBJECT} {ISSUER}")
    );
    let out = node("https://github.com/eve/x/.github/workflows/a.yml@refs/heads/main");
    assert!(!out.status.success(), "another identity must not verify");
}

#[tokio::test]
async fn the_bundle_referrer_is_cosign_3_shaped() {
    let _serial = SERIAL.lock().await;
    let reg = MemoryRegistry::new();
    let repo = "models/shape";
    let image = support::push_image(&reg, repo, b"w", "v1").await;
    let sigstore = sigstore().await;
    let session = sigstore.session(&token(SUBJECT)).await.unwrap();
    sign_image_bundle_keyless(&reg, repo, &image, &session)
        .await
        .unwrap();
    let r = &reg
        .referrers(repo, &image, &ReferrersOptions::of_type(BUNDLE_V03))
        .await
        .unwrap()[0];
    let m = reg.fetch_manifest(repo, &r.digest).await.unwrap();
    let m: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    assert_eq!(m["artifactType"], BUNDLE_V03);
    assert_eq!(m["subject"]["digest"], image.to_string());
    let layer: Digest = m["layers"][0]["digest"].as_str().unwrap().parse().unwrap();
    let b = collect_blob(reg.fetch_blob(repo, &layer).await.unwrap(), 1 << 20)
        .await
        .unwrap();
    let b: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert!(b["verificationMaterial"]["certificate"]["rawBytes"].is_string());
    let entry = &b["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["kind"], "dsse");
    assert!(entry["inclusionPromise"]["signedEntryTimestamp"].is_string());
    assert!(entry["inclusionProof"]["checkpoint"]["envelope"].is_string());
}

/// The Rekor answer to a new entry as a bundle `tlogEntries` item (hex hashes as base64,
/// numbers as strings, as protobuf JSON writes them).
fn tlog_entry(answer: &serde_json::Value, kind: &str, version: &str) -> serde_json::Value {
    use base64::engine::general_purpose::STANDARD;
    let (_, e) = answer.as_object().unwrap().iter().next().unwrap();
    let hex_b64 = |v: &serde_json::Value| {
        let hex = v.as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        STANDARD.encode(bytes)
    };
    let proof = &e["verification"]["inclusionProof"];
    serde_json::json!({
        "logIndex": e["logIndex"].to_string(),
        "logId": {"keyId": hex_b64(&e["logID"])},
        "kindVersion": {"kind": kind, "version": version},
        "integratedTime": e["integratedTime"].to_string(),
        "inclusionPromise": {"signedEntryTimestamp": e["verification"]["signedEntryTimestamp"]},
        "inclusionProof": {
            "logIndex": proof["logIndex"].to_string(),
            "rootHash": hex_b64(&proof["rootHash"]),
            "treeSize": proof["treeSize"].to_string(),
            "hashes": proof["hashes"].as_array().unwrap().iter().map(hex_b64).collect::<Vec<_>>(),
            "checkpoint": {"envelope": proof["checkpoint"]},
        },
        "canonicalizedBody": e["body"],
    })
}

/// An attestation logged as an `intoto` 0.0.2 entry (what cosign `attest` logged before
/// `dsse`), in Rekor's canonical form — the envelope without its payload, each signature
/// base64-encoded once more — verifies like a `dsse` one; the same entry recording another
/// payload does not.
#[tokio::test]
async fn a_bundle_whose_attestation_is_logged_as_an_intoto_entry_verifies() {
    use base64::engine::general_purpose::STANDARD;
    let _serial = SERIAL.lock().await;
    let key = wharf_sign::EcdsaP256Key::generate().unwrap();
    let artifact = b"model weights, as a file";
    let statement = wharf_sign::attest::Statement::about(
        "model.safetensors",
        &Digest::sha256_of(artifact),
        "https://slsa.dev/provenance/v1",
        serde_json::json!({"buildDefinition": {"buildType": "https://example.com/b"}}),
    );
    let envelope = wharf_sign::attest::sign_statement(&statement, &key)
        .await
        .unwrap();
    let payload = STANDARD.decode(&envelope.payload).unwrap();
    let envelope_json = serde_json::to_vec(&envelope).unwrap();
    let entry = |payload_hash: String| {
        serde_json::json!({
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": {"content": {
                "envelope": {
                    "payloadType": envelope.payload_type,
                    "signatures": [{
                        "sig": STANDARD.encode(&envelope.signatures[0].sig),
                        "publicKey": STANDARD.encode(key.public_key().to_pem()),
                    }],
                },
                "hash": {"algorithm": "sha256", "value": Digest::sha256_of(&envelope_json).hex()},
                "payloadHash": {"algorithm": "sha256", "value": payload_hash},
            }},
        })
    };
    let root = TrustedRoot::parse(&get("/trusted_root.json").await, "mock root").unwrap();
    let bundle_for = |tlog: serde_json::Value| {
        let json = serde_json::json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "publicKey": {"hint": key.public_key().key_id()},
                "tlogEntries": [tlog],
            },
            "dsseEnvelope": {
                "payload": envelope.payload,
                "payloadType": envelope.payload_type,
                "signatures": [{"sig": envelope.signatures[0].sig, "keyid": ""}],
            },
        });
        Bundle::parse(&serde_json::to_vec(&json).unwrap(), "intoto bundle").unwrap()
    };
    let log = |entry: serde_json::Value| async move {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/log/entries", base()))
            .json(&entry)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json::<serde_json::Value>().await.unwrap()
    };
    let good = log(entry(Digest::sha256_of(&payload).hex().to_owned())).await;
    let v = wharf_sign::bundle::verify_with_key(
        &bundle_for(tlog_entry(&good, "intoto", "0.0.2")),
        artifact,
        Some(key.public_key()),
        &root,
    )
    .await
    .unwrap();
    assert_eq!(v.key_id, key.public_key().key_id());
    // The log vouches for an entry about another payload: refused, for that reason.
    let other = log(entry(
        Digest::sha256_of(b"another statement").hex().to_owned(),
    ))
    .await;
    let err = wharf_sign::bundle::verify_with_key(
        &bundle_for(tlog_entry(&other, "intoto", "0.0.2")),
        artifact,
        Some(key.public_key()),
        &root,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("log entry does not match its signature"),
        "{err}"
    );
}

/// `cosign verify-blob --bundle` (cosign 2 with `--new-bundle-format`, cosign 3 by default)
/// verifies our keyless file bundle by identity against the mock's trust root, and refuses
/// another identity and another file.
#[tokio::test]
async fn cosign_verify_blob_accepts_our_file_bundle() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (artifact, bundle) = signed_files(dir.path(), b"weights for cosign").await;
    let root = dir.path().join("trusted_root.json");
    std::fs::write(&root, get("/trusted_root.json").await).unwrap();
    let other = dir.path().join("other.bin");
    std::fs::write(&other, b"other weights").unwrap();
    for (var, extra) in [
        ("WHARF_TEST_COSIGN", &["--new-bundle-format"][..]),
        ("WHARF_TEST_COSIGN3", &[][..]),
    ] {
        let verify = |identity: &str, file: &Path| {
            Command::new(support::harness(var))
                .args(["verify-blob", "--bundle"])
                .arg(&bundle)
                .args(extra)
                .args(["--certificate-identity", identity])
                .args(["--certificate-oidc-issuer", ISSUER])
                .arg("--trusted-root")
                .arg(&root)
                .arg(file)
                .env("HOME", dir.path())
                .env("TUF_ROOT", dir.path().join("tuf"))
                .output()
                .unwrap()
        };
        let out = verify(SUBJECT, &artifact);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{var}: {said}");
        assert!(said.contains("Verified OK"), "{var}: {said}");
        assert!(
            !verify(
                "https://github.com/evil/x/.github/workflows/x.yml@refs/heads/main",
                &artifact
            )
            .status
            .success(),
            "{var}: another identity"
        );
        assert!(
            !verify(SUBJECT, &other).status.success(),
            "{var}: another file"
        );
    }
}
