#![allow(clippy::unwrap_used)]
//! Sigstore bundles from sigstore-conformance (tests/fixtures/README.md says where each comes
//! from): all versions parse; the keyed bundle verifies offline against the production trust
//! root (signature, log entry, SET, inclusion proof, signed checkpoint); each `_fail` case and
//! each tampering is rejected, naming the fault.

use std::path::{Path, PathBuf};

use wharf_core::ErrorKind;
use wharf_sign::PublicKey;
use wharf_sign::bundle::{Bundle, verify_with_key};
use wharf_sign::rekor::TrustedRoot;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sigstore")
        .join(p)
}

fn read(p: &str) -> Vec<u8> {
    std::fs::read(fixture(p)).unwrap()
}

fn production() -> TrustedRoot {
    TrustedRoot::parse(
        &read("production_trusted_root.json"),
        "production_trusted_root.json",
    )
    .unwrap()
}

fn managed() -> (Bundle, PublicKey) {
    (
        Bundle::parse(
            &read("managed-key-happy-path/bundle.sigstore.json"),
            "bundle",
        )
        .unwrap(),
        PublicKey::from_file(&fixture("managed-key-happy-path/key.pub")).unwrap(),
    )
}

#[test]
fn every_version_parses_and_broken_ones_are_named() {
    for dir in [
        "happy-path-v0.1",
        "happy-path-v0.3",
        "happy-path-v0.3-new-mediaType",
        "happy-path-intoto-in-dsse-v3",
        "managed-key-happy-path",
    ] {
        Bundle::parse(&read(&format!("{dir}/bundle.sigstore.json")), dir).unwrap();
    }
    let err = Bundle::parse(
        &read("bundle-malformed-json_fail/bundle.sigstore.json"),
        "malformed",
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.to_string()
            .starts_with("malformed: not a Sigstore bundle"),
        "{err}"
    );
    let err = Bundle::parse(
        &read("bundle-unknown-version_fail/bundle.sigstore.json"),
        "v99",
    )
    .unwrap_err();
    assert!(err.to_string().contains("version=99.9"), "{err}");
}

#[tokio::test]
async fn the_keyed_bundle_verifies_offline() {
    let (bundle, key) = managed();
    let v = verify_with_key(&bundle, &read("a.txt"), Some(&key), &production())
        .await
        .unwrap();
    assert_eq!(v.log_index, 771488337);
    assert_eq!(v.integrated_time, 1766077479);
    assert_eq!(v.key_id, key.key_id());
}

#[tokio::test]
async fn without_the_key_or_against_another_root_it_fails() {
    let (bundle, key) = managed();
    // managed-key-no-key_fail: the same bundle with no key supplied.
    let no_key = Bundle::parse(&read("managed-key-no-key_fail/bundle.sigstore.json"), "b").unwrap();
    let err = verify_with_key(&no_key, &read("a.txt"), None, &production())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no public key was given"), "{err}");
    // Staging's root does not know production's log.
    let staging = TrustedRoot::parse(&read("staging_trusted_root.json"), "staging").unwrap();
    let err = verify_with_key(&bundle, &read("a.txt"), Some(&key), &staging)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not in the trusted root"),
        "{err}"
    );
    // Another artifact.
    let err = verify_with_key(&bundle, b"not a.txt", Some(&key), &production())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("signs another artifact"), "{err}");
    // Another key.
    let other = wharf_sign::EcdsaP256Key::generate().unwrap();
    let err = verify_with_key(
        &bundle,
        &read("a.txt"),
        Some(other.public_key()),
        &production(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
}

/// Edit the bundle's JSON and expect `verify` to fail with `why`.
async fn tampered(edit: impl Fn(&mut serde_json::Value), why: &str) {
    let (_, key) = managed();
    let mut v: serde_json::Value =
        serde_json::from_slice(&read("managed-key-happy-path/bundle.sigstore.json")).unwrap();
    edit(&mut v);
    let bundle = Bundle::parse(&serde_json::to_vec(&v).unwrap(), "tampered").unwrap();
    let err = verify_with_key(&bundle, &read("a.txt"), Some(&key), &production())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(why), "{why}: {err}");
}

/// Set the value at `pointer` inside the first log entry.
fn set(pointer: &'static str, value: &'static str) -> impl Fn(&mut serde_json::Value) {
    move |v| {
        *v.pointer_mut(&format!("/verificationMaterial/tlogEntries/0{pointer}"))
            .unwrap() = value.into();
    }
}

#[tokio::test]
async fn each_tampering_of_the_log_evidence_is_named() {
    tampered(set("/logIndex", "-1"), "logIndex -1 is negative").await;
    tampered(
        set("/integratedTime", "1766077480"),
        "signed entry timestamp does not verify",
    )
    .await;
    tampered(
        set(
            "/inclusionProof/hashes/3",
            "ysxPntoDCEDAQGR1QIbE4DwK5KtnNrdkP22LEmq0lCI=",
        ),
        "inclusion proof does not lead to the stated root",
    )
    .await;
    tampered(
        set("/inclusionProof/treeSize", "649584077"),
        "does not lead to the stated root",
    )
    .await;
    tampered(
        |v| {
            let p = "/verificationMaterial/tlogEntries/0/inclusionProof/checkpoint/envelope";
            let note = v
                .pointer(p)
                .unwrap()
                .as_str()
                .unwrap()
                .replace("rekor.sigstore.dev - ", "rekor.example - ");
            *v.pointer_mut(p).unwrap() = note.into();
        },
        "checkpoint carries no valid signature",
    )
    .await;
}

/// Certificate-based bundles are not verified yet: refused as unsupported, never passed.
#[tokio::test]
async fn certificate_bundles_are_refused_not_passed() {
    for dir in [
        "happy-path-v0.1",
        "happy-path-v0.3",
        "happy-path-intoto-in-dsse-v3",
    ] {
        let b = Bundle::parse(&read(&format!("{dir}/bundle.sigstore.json")), dir).unwrap();
        let err = verify_with_key(&b, &read("a.txt"), None, &production())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{dir}: {err}");
    }
}
