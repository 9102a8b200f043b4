#![allow(clippy::unwrap_used)]
//! Sigstore bundles from sigstore-conformance (tests/fixtures/README.md says where each comes
//! from): all versions parse; the keyed bundle verifies offline against the production trust
//! root (signature, log entry, SET, inclusion proof, signed checkpoint); each `_fail` case and
//! each tampering is rejected, naming the fault.

use std::path::{Path, PathBuf};

use wharf_core::ErrorKind;
use wharf_sign::PublicKey;
use wharf_sign::bundle::{
    Artifact, Bundle, SignedBy, VerifiedBundle, verify, verify_with_identity, verify_with_key,
};
use wharf_sign::fulcio::Identity;
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
    assert_eq!(v.log_index, Some(771488337));
    assert_eq!(v.integrated_time, Some(1766077479));
    assert_eq!(v.key_id, key.key_id());
}

/// A bundle without a log entry (a key or one's own PKI, never logged) verifies only when
/// the trust root says to do without the log, as cosign's `--insecure-ignore-tlog`, and the
/// result says the log was not checked. A keyless one is then checked at the time of
/// verification: a ten-minute Fulcio certificate from 2025 has expired.
#[tokio::test]
async fn a_bundle_without_a_log_entry_verifies_only_when_the_log_is_ignored_explicitly() {
    let (mut bundle, key) = managed();
    bundle.verification_material.tlog_entries.clear();
    let err = verify_with_key(&bundle, &read("a.txt"), Some(&key), &production())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("has no transparency-log entry"),
        "{err}"
    );
    let v = verify_with_key(
        &bundle,
        &read("a.txt"),
        Some(&key),
        &production().insecure_ignore_tlog(),
    )
    .await
    .unwrap();
    assert_eq!((v.log_index, v.integrated_time), (None, None));
    // The signature is still checked.
    let err = verify_with_key(
        &bundle,
        b"another artifact",
        Some(&key),
        &production().insecure_ignore_tlog(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("signs another artifact"), "{err}");

    let mut keyless =
        Bundle::parse(&read("happy-path-v0.3/bundle.sigstore.json"), "bundle").unwrap();
    keyless.verification_material.tlog_entries.clear();
    let err = verify_with_identity(
        &keyless,
        &read("a.txt"),
        &beacon(),
        &production().insecure_ignore_tlog(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the certificate was not valid now (the transparency log is ignored"),
        "{err}"
    );
}

/// The same checks as plain functions, on a plain thread: no executor.
#[test]
fn offline_verification_is_a_plain_function() {
    let (bundle, key) = managed();
    let v = wharf_sign::bundle::verify_with_key_blocking(
        &bundle,
        &read("a.txt"),
        Some(&key),
        &production(),
    )
    .unwrap();
    assert_eq!(v.log_index, Some(771488337));
    let err = wharf_sign::bundle::verify_with_key_blocking(
        &bundle,
        b"not a.txt",
        Some(&key),
        &production(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), wharf_core::ErrorKind::Integrity, "{err}");
    let path = "sigstore/happy-path-v0.3/bundle.sigstore.json";
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
    .unwrap();
    let keyless = Bundle::parse(&bytes, path).unwrap();
    let v = wharf_sign::bundle::verify_with_identity_blocking(
        &keyless,
        &read("a.txt"),
        &beacon(),
        &production(),
    )
    .unwrap();
    assert_eq!(v.certificate.unwrap().subject, BEACON);
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

/// sigstore-conformance's default identity (tests/fixtures/sigstore/README.md).
const BEACON: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ACTIONS: &str = "https://token.actions.githubusercontent.com";

fn beacon() -> Identity {
    Identity::exact(BEACON, ACTIONS)
}

async fn keyless(
    path: &str,
    artifact: &[u8],
    id: &Identity,
    root: &TrustedRoot,
) -> Result<VerifiedBundle, wharf_core::Error> {
    let b = Bundle::parse(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(path),
        )
        .unwrap(),
        path,
    )?;
    verify_with_identity(&b, artifact, id, root).await
}

fn staging() -> TrustedRoot {
    TrustedRoot::parse(&read("staging_trusted_root.json"), "staging").unwrap()
}

#[tokio::test]
async fn keyless_conformance_bundles_verify_by_identity() {
    for dir in [
        "happy-path-v0.1",
        "happy-path-v0.3",
        "happy-path-v0.3-new-mediaType",
    ] {
        let v = keyless(
            &format!("sigstore/{dir}/bundle.sigstore.json"),
            &read("a.txt"),
            &beacon(),
            &production(),
        )
        .await
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
        let cert = v.certificate.unwrap();
        assert_eq!(cert.subject, BEACON, "{dir}");
        assert_eq!(cert.issuer, ACTIONS, "{dir}");
        assert_eq!(cert.authority, "https://fulcio.sigstore.dev");
        assert!(cert.scts >= 1, "{dir}");
    }
    // DSSE: the statement names a.txt's digest.
    let v = keyless(
        "sigstore/happy-path-intoto-in-dsse-v3/bundle.sigstore.json",
        &read("a.txt"),
        &beacon(),
        &production(),
    )
    .await
    .unwrap();
    assert_eq!(
        v.statement.unwrap().predicate_type,
        "https://slsa.dev/provenance/v1"
    );
}

#[tokio::test]
async fn keyless_bundles_from_other_clients_verify() {
    // sigstore-python, signed on staging with an email identity.
    let py = |f: &str| format!("sigstore-python/{f}");
    let raw = |f: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(f),
        )
        .unwrap()
    };
    let (oauth, v) = (
        "https://github.com/login/oauth",
        Identity::exact("a@tny.town", "https://github.com/login/oauth"),
    );
    keyless(
        &py("bundle.txt.sigstore"),
        &raw(&py("bundle.txt")),
        &v,
        &staging(),
    )
    .await
    .unwrap();
    let william = Identity::exact("william@yossarian.net", oauth);
    for f in ["bundle_v3.txt", "bundle_v3_alt.txt"] {
        keyless(
            &py(&format!("{f}.sigstore")),
            &raw(&py(f)),
            &william,
            &staging(),
        )
        .await
        .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    // Against production, staging's certificates and logs are not trusted.
    let err = keyless(
        &py("bundle_v3.txt.sigstore"),
        &raw(&py("bundle_v3.txt")),
        &william,
        &production(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not in the trusted root"), "{err}");
    // sigstore-rs: cosign 3's DSSE image signature (statement sigstore.dev/cosign/sign/v1).
    let subject: wharf_core::Digest =
        "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172"
            .parse()
            .unwrap();
    let b = Bundle::parse(&raw("sigstore-rs/bundle_v03.json"), "bundle_v03.json").unwrap();
    let kubewarden = Identity::exact(
        "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
        ACTIONS,
    );
    let v = verify(
        &b,
        Artifact::Digest(&subject),
        Some(SignedBy::Identity(&kubewarden)),
        &production(),
    )
    .await
    .unwrap();
    assert_eq!(
        v.statement.unwrap().predicate_type,
        wharf_sign::bundle::COSIGN_SIGN_PREDICATE
    );
    let other: wharf_core::Digest = wharf_core::Digest::sha256_of(b"another image");
    let err = verify(
        &b,
        Artifact::Digest(&other),
        Some(SignedBy::Identity(&kubewarden)),
        &production(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("statement is not about"), "{err}");
}

#[tokio::test]
async fn keyless_fail_cases_are_rejected_with_the_reason() {
    let fail = |dir: &str| format!("sigstore/{dir}/bundle.sigstore.json");
    let err = keyless(
        &fail("signature-mismatch_fail"),
        &read("a.txt"),
        &beacon(),
        &production(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not verify with the signing certificate"),
        "{err}"
    );
    let err = keyless(
        &fail("wrong-material_fail"),
        &read("wrong-material_fail/artifact"),
        &beacon(),
        &production(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("signs another artifact"), "{err}");
    let err = keyless(
        &fail("bundle-negative-log-index_fail"),
        &read("a.txt"),
        &beacon(),
        &production(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
    // Another identity, another issuer, a pattern that does not match the whole subject.
    for id in [
        Identity::exact(
            "https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main",
            ACTIONS,
        ),
        Identity::exact(BEACON, "https://accounts.google.com"),
        Identity::matching("https://github.com/sigstore-conformance/", ACTIONS).unwrap(),
    ] {
        let err = keyless(&fail("happy-path-v0.3"), &read("a.txt"), &id, &production())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not to the required identity"),
            "{err}"
        );
    }
    Identity::matching("https://github.com/sigstore-conformance/.*", ACTIONS)
        .map(|id| async move {
            keyless(&fail("happy-path-v0.3"), &read("a.txt"), &id, &production())
                .await
                .unwrap();
        })
        .unwrap()
        .await;
    // sigstore-python's fail cases.
    let raw = |f: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sigstore-python")
                .join(f),
        )
        .unwrap()
    };
    let err = Bundle::parse(&raw("bundle_no_cert_v1.txt.sigstore"), "no-cert")
        .unwrap()
        .certificate_chain()
        .unwrap_err();
    assert!(
        err.to_string().contains("x509CertificateChain is empty"),
        "{err}"
    );
    let err =
        Bundle::parse(&raw("bundle_invalid_version.txt.sigstore"), "bad-version").unwrap_err();
    assert!(
        err.to_string()
            .contains("not a version this verifier knows"),
        "{err}"
    );
    // A keyless bundle is not accepted with a key, nor a keyed one by identity.
    let (managed, key) = managed();
    let err = verify_with_identity(&managed, &read("a.txt"), &beacon(), &production())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("signed with a key, not with a certificate"),
        "{err}"
    );
    let b = Bundle::parse(&read("happy-path-v0.3/bundle.sigstore.json"), "v0.3").unwrap();
    let err = verify(
        &b,
        Artifact::Bytes(&read("a.txt")),
        Some(SignedBy::Key(&key)),
        &production(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("signed keylessly"), "{err}");
    let err = verify_with_key(&b, &read("a.txt"), None, &production())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no certificate identity and issuer were given"),
        "{err}"
    );
}

/// Tampering with a keyless bundle: the certificate swapped for another real one, the log
/// entry's verifier, the SET's time.
#[tokio::test]
async fn keyless_tampering_is_named() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&read("happy-path-v0.3/bundle.sigstore.json")).unwrap();
    let other: serde_json::Value =
        serde_json::from_slice(&read("happy-path-intoto-in-dsse-v3/bundle.sigstore.json")).unwrap();
    v["verificationMaterial"]["certificate"] = other["verificationMaterial"]["certificate"].clone();
    let b = Bundle::parse(&serde_json::to_vec(&v).unwrap(), "swapped").unwrap();
    let err = verify_with_identity(&b, &read("a.txt"), &beacon(), &production())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not verify with the signing certificate"),
        "{err}"
    );
    // Without the SET, the logged time is unauthenticated: refused for a certificate.
    let mut v: serde_json::Value =
        serde_json::from_slice(&read("happy-path-v0.3/bundle.sigstore.json")).unwrap();
    v["verificationMaterial"]["tlogEntries"][0]
        .as_object_mut()
        .unwrap()
        .remove("inclusionPromise");
    let b = Bundle::parse(&serde_json::to_vec(&v).unwrap(), "no-set").unwrap();
    let err = verify_with_identity(&b, &read("a.txt"), &beacon(), &production())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no signed entry timestamp"),
        "{err}"
    );
}

/// A v0.1 bundle whose x509CertificateChain also carries Fulcio's intermediate and root
/// (taken from the production trust root): refused because of the root — which, were the
/// bundle believed, would otherwise anchor the chain — and not for any other reason.
#[tokio::test]
async fn a_bundle_chain_that_carries_a_root_certificate_is_refused() {
    let root_json: serde_json::Value =
        serde_json::from_slice(&read("production_trusted_root.json")).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_slice(&read("happy-path-v0.1/bundle.sigstore.json")).unwrap();
    let chain = v
        .pointer_mut("/verificationMaterial/x509CertificateChain/certificates")
        .unwrap()
        .as_array_mut()
        .unwrap();
    // The newest Fulcio authority: its intermediate, then its root.
    let fulcio = root_json["certificateAuthorities"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["certChain"]["certificates"]
        .as_array()
        .unwrap()
        .clone();
    assert!(fulcio.len() >= 2, "an intermediate and a root");
    chain.extend(fulcio);
    let bundle = Bundle::parse(&serde_json::to_vec(&v).unwrap(), "with-root").unwrap();
    let err = verify_with_identity(&bundle, &read("a.txt"), &beacon(), &production())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        err.to_string()
            .contains("x509CertificateChain includes a root (self-signed) certificate"),
        "{err}"
    );
    // Without the root (leaf and intermediate only) the same bundle verifies.
    let chain = v
        .pointer_mut("/verificationMaterial/x509CertificateChain/certificates")
        .unwrap()
        .as_array_mut()
        .unwrap();
    chain.pop();
    let bundle = Bundle::parse(&serde_json::to_vec(&v).unwrap(), "with-intermediate").unwrap();
    verify_with_identity(&bundle, &read("a.txt"), &beacon(), &production())
        .await
        .unwrap();
}

/// Message-signature bundles verify against a file streamed through SHA-256 — the
/// artifact is never read whole — by key and by identity, and another file is refused.
#[tokio::test]
async fn bundles_verify_against_a_file_hashed_as_it_streams() {
    let a_txt = fixture("a.txt");
    let (bundle, key) = managed();
    let v = wharf_sign::bundle::verify_file(&bundle, &a_txt, SignedBy::Key(&key), &production())
        .await
        .unwrap();
    assert_eq!(v.key_id, key.key_id());
    let keyless = Bundle::parse(&read("happy-path-v0.3/bundle.sigstore.json"), "v0.3").unwrap();
    let id = beacon();
    let v =
        wharf_sign::bundle::verify_file(&keyless, &a_txt, SignedBy::Identity(&id), &production())
            .await
            .unwrap();
    assert_eq!(v.certificate.unwrap().subject, BEACON);
    let other = fixture("wrong-material_fail/artifact");
    let err = wharf_sign::bundle::verify_file(&bundle, &other, SignedBy::Key(&key), &production())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("signs another artifact"), "{err}");
    let missing = fixture("no-such-file");
    let err =
        wharf_sign::bundle::verify_file(&bundle, &missing, SignedBy::Key(&key), &production())
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("no-such-file"), "{err}");
}

/// The file digest is the digest of every byte, read in pieces smaller than the file.
#[test]
fn a_file_larger_than_the_read_buffer_hashes_like_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.bin");
    let bytes: Vec<u8> = (0..(5 << 20) + 123).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        wharf_sign::bundle::digest_file(&path).unwrap(),
        wharf_core::Digest::sha256_of(&bytes)
    );
}
