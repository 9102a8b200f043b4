#![allow(clippy::unwrap_used)]
//! The failure classes of sigstore-conformance's `bundle-verify` suite that the copied cases
//! (tests/fixtures/sigstore, covered by sigstore_bundles.rs) do not already exercise, each
//! rebuilt here from upstream's stated reason on the material we have: the case is named
//! after the upstream directory it mirrors, and each must fail for that reason — the error
//! is checked — or, for the happy paths, verify. The suite itself cannot be copied whole
//! (it is not published to a package registry; tests/README.md says so).

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf_core::ErrorKind;
use wharf_sign::bundle::{Bundle, verify_with_identity};
use wharf_sign::dsse::{self, Statement};
use wharf_sign::fulcio::Identity;
use wharf_sign::rekor::TrustedRoot;
use wharf_sign::{EcdsaP256Key, Signer as _};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sigstore")
        .join(p)
}

fn json(p: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(p)).unwrap()).unwrap()
}

fn artifact() -> Vec<u8> {
    std::fs::read(fixture("a.txt")).unwrap()
}

fn root_from(v: &serde_json::Value) -> wharf_core::Result<TrustedRoot> {
    TrustedRoot::parse(&serde_json::to_vec(v).unwrap(), "trusted_root.json")
}

fn bundle_from(v: &serde_json::Value) -> Bundle {
    Bundle::parse(&serde_json::to_vec(v).unwrap(), "bundle.sigstore.json").unwrap()
}

/// sigstore-conformance's default identity.
fn beacon() -> Identity {
    Identity::exact(
        "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
        "https://token.actions.githubusercontent.com",
    )
}

async fn keyless(bundle: &Bundle, root: &TrustedRoot) -> wharf_core::Result<()> {
    verify_with_identity(bundle, &artifact(), &beacon(), root)
        .await
        .map(|_| ())
}

fn expect_err(r: wharf_core::Result<impl std::fmt::Debug>, case: &str, why: &str) {
    let err = r.expect_err(case).to_string();
    assert!(err.contains(why), "{case}: expected {why:?}, got: {err}");
}

/// `cve-2022-36056-swapped-tlog-entry_fail`: the log entry of another valid signing of
/// the same artifact, swapped into a valid bundle. The entry and its proofs are genuine;
/// it just records another signature and certificate.
#[tokio::test]
async fn cve_2022_36056_swapped_tlog_entry_fail() {
    let production = root_from(&json("production_trusted_root.json")).unwrap();
    let mut v = json("happy-path-v0.3/bundle.sigstore.json");
    keyless(&bundle_from(&v), &production).await.unwrap();
    // Another keyless signing of a.txt by the same identity, logged at another index.
    let other = json("happy-path-v0.1/bundle.sigstore.json");
    keyless(&bundle_from(&other), &production).await.unwrap();
    assert_ne!(
        v["verificationMaterial"]["tlogEntries"], other["verificationMaterial"]["tlogEntries"],
        "the two signings must differ for the swap to mean anything"
    );
    v["verificationMaterial"]["tlogEntries"] = other["verificationMaterial"]["tlogEntries"].clone();
    expect_err(
        keyless(&bundle_from(&v), &production).await,
        "swapped entry",
        "log entry does not match its signature",
    );
}

/// `trust-root-tlog-missing-validity-start_fail`: a log key whose `validFor` lacks its
/// required start is a malformed trust root, not an open bound.
#[test]
fn trust_root_tlog_missing_validity_start_fail() {
    let mut root = json("production_trusted_root.json");
    root["tlogs"][0]["publicKey"]["validFor"]
        .as_object_mut()
        .unwrap()
        .remove("start");
    expect_err(
        root_from(&root),
        "no start",
        "tlogs[0].validFor has no start (required)",
    );
    // Without any validFor the key is open-ended, as the specification allows.
    root["tlogs"][0]["publicKey"]
        .as_object_mut()
        .unwrap()
        .remove("validFor");
    root_from(&root).unwrap();
}

/// `trust-root-tlog-validity-end-inclusive`: an entry integrated exactly at the end of the
/// log key's validity verifies; one second after, it is refused for that reason.
#[tokio::test]
async fn trust_root_tlog_validity_end_inclusive() {
    let v = json("happy-path-v0.3/bundle.sigstore.json");
    let bundle = bundle_from(&v);
    let integrated: i64 = v["verificationMaterial"]["tlogEntries"][0]["integratedTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let log_id = v["verificationMaterial"]["tlogEntries"][0]["logId"]["keyId"].clone();
    let with_end = |end: i64| {
        let mut root = json("production_trusted_root.json");
        let at = time::OffsetDateTime::from_unix_timestamp(end)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let log = root["tlogs"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|l| l["logId"]["keyId"] == log_id)
            .expect("the bundle's log is in the production root");
        log["publicKey"]["validFor"]["end"] = at.into();
        root_from(&root).unwrap()
    };
    keyless(&bundle, &with_end(integrated)).await.unwrap();
    expect_err(
        keyless(&bundle, &with_end(integrated - 1)).await,
        "after the end",
        "outside the time the trusted root vouches for log",
    );
}

/// A DSSE envelope over `payload`, signed by `key`: the signature is good, so only what the
/// payload says can make verification fail.
async fn envelope(key: &EcdsaP256Key, payload: &[u8]) -> dsse::Envelope {
    use base64::Engine as _;
    let pae = dsse::pae(dsse::IN_TOTO_PAYLOAD_TYPE, payload);
    let sig = key
        .sign(&pae, &wharf_sign::SignOptions::default())
        .await
        .unwrap();
    serde_json::from_value(serde_json::json!({
        "payloadType": dsse::IN_TOTO_PAYLOAD_TYPE,
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
        "signatures": [{
            "keyid": "",
            "sig": base64::engine::general_purpose::STANDARD.encode(&sig.bytes),
        }],
    }))
    .unwrap()
}

/// `dsse-statement-unknown-type_fail` and `dsse-statement-missing-type_fail`: a validly
/// signed envelope whose statement's `_type` is in-toto Statement v2 (unknown semantics)
/// or absent is refused for that, never read as Statement v1. v0.1 (cosign 2's) and v1
/// are read.
#[tokio::test]
async fn dsse_statement_unknown_or_missing_type_fail() {
    let dir = tempfile::tempdir().unwrap();
    let key = EcdsaP256Key::load_or_generate(&dir.path().join("k.key")).unwrap();
    let digest = wharf_core::Digest::sha256_of(&artifact());
    let statement = |kind: Option<&str>| {
        let mut s = serde_json::json!({
            "subject": [{"name": "a.txt", "digest": {"sha256": digest.hex()}}],
            "predicateType": "https://example.com/predicate",
            "predicate": {},
        });
        if let Some(kind) = kind {
            s["_type"] = kind.into();
        }
        serde_json::to_vec(&s).unwrap()
    };
    for (kind, why) in [
        (
            Some("https://in-toto.io/Statement/v2"),
            "statement _type \"https://in-toto.io/Statement/v2\" is not an in-toto statement this verifier knows",
        ),
        (None, "statement has no _type"),
    ] {
        let env = envelope(&key, &statement(kind)).await;
        expect_err(
            dsse::verify_envelope(&env, key.public_key()).await,
            &format!("{kind:?}"),
            why,
        );
    }
    for kind in [dsse::STATEMENT_V1, dsse::STATEMENT_V0_1] {
        let env = envelope(&key, &statement(Some(kind))).await;
        let (st, _): (Statement, _) = dsse::verify_envelope(&env, key.public_key()).await.unwrap();
        assert!(st.is_about(&digest), "{kind}");
    }
}

/// `rekor2-*`: an entry of Rekor v2 (hashedrekord/dsse 0.0.2, proven by checkpoint and
/// RFC 3161 timestamps) is named as not supported, not reported as a mismatch.
#[tokio::test]
async fn rekor_v2_entries_are_named_unsupported() {
    let production = root_from(&json("production_trusted_root.json")).unwrap();
    let mut v = json("happy-path-v0.3/bundle.sigstore.json");
    v["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"] = "0.0.2".into();
    let err = keyless(&bundle_from(&v), &production).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(
        err.to_string()
            .contains("log entry kind hashedrekord version 0.0.2 is not supported"),
        "{err}"
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is on PATH (the harness installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sct-duplicate-intermediate-name`: a decoy intermediate with Fulcio's intermediate's
/// exact subject name but another key sits first in the authority's chain. The SCT is bound
/// to the real issuer's key, so the issuer must come from the verified path, not a lookup by
/// name: the genuine bundle still verifies.
#[tokio::test]
async fn sct_duplicate_intermediate_name() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dir = tempfile::tempdir().unwrap();
    let mut root = json("production_trusted_root.json");
    let bundle = bundle_from(&json("happy-path-v0.3/bundle.sigstore.json"));
    let leaf = bundle.certificate_chain().unwrap().unwrap().remove(0);
    // The authority that issued the bundle's certificate.
    let ca = root["certificateAuthorities"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|ca| {
            let first = &ca["certChain"]["certificates"][0]["rawBytes"];
            let der = b64.decode(first.as_str().unwrap()).unwrap();
            wharf_sign::x509::Certificate::from_der(&der, "ca")
                .unwrap()
                .subject_der()
                == leaf.issuer_der()
        })
        .expect("an authority of the production root issued the happy path");
    let genuine_der = b64
        .decode(
            ca["certChain"]["certificates"][0]["rawBytes"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let genuine = wharf_sign::x509::Certificate::from_der(&genuine_der, "genuine").unwrap();
    // The decoy: same subject (PrintableString, as Fulcio's), another key.
    std::fs::write(
        dir.path().join("decoy.cnf"),
        "[req]\ndistinguished_name=dn\nstring_mask=default\nprompt=no\n[dn]\nO=sigstore.dev\nCN=sigstore-intermediate\n",
    )
    .unwrap();
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "decoy.key",
            "-out",
            "decoy.der",
            "-outform",
            "DER",
            "-days",
            "1",
            "-config",
            "decoy.cnf",
        ],
    );
    let decoy_der = std::fs::read(dir.path().join("decoy.der")).unwrap();
    let decoy = wharf_sign::x509::Certificate::from_der(&decoy_der, "decoy").unwrap();
    assert_eq!(
        decoy.subject_der(),
        genuine.subject_der(),
        "the decoy's subject must be byte-for-byte the intermediate's"
    );
    assert_ne!(decoy.spki_der(), genuine.spki_der());
    ca["certChain"]["certificates"]
        .as_array_mut()
        .unwrap()
        .insert(0, serde_json::json!({"rawBytes": b64.encode(&decoy_der)}));
    keyless(&bundle, &root_from(&root).unwrap()).await.unwrap();
}

fn sigstore_go(p: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sigstore-go")
            .join(p),
    )
    .unwrap()
}

/// sigstore-go's `TestEntityWithOthernameSan`: a certificate issued to an otherName
/// (Fulcio's username identities) verifies for that name and issuer, given only the
/// artifact's digest; an email of the same spelling does not match.
#[tokio::test]
async fn sigstore_go_othername_identity() {
    use wharf_sign::bundle::{Artifact, SignedBy, verify};
    let root = TrustedRoot::parse(&sigstore_go("scaffolding.json"), "scaffolding.json").unwrap();
    let bundle = Bundle::parse(&sigstore_go("othername.sigstore.json"), "othername").unwrap();
    let digest: wharf_core::Digest =
        "sha256:bc103b4a84971ef6459b294a2b98568a2bfb72cded09d4acd1e16366a401f95b"
            .parse()
            .unwrap();
    let check = |subject: &str| {
        let identity = Identity::exact(subject, "http://oidc.local:8080");
        let (bundle, root, digest) = (&bundle, &root, &digest);
        async move {
            verify(
                bundle,
                Artifact::Digest(digest),
                Some(SignedBy::Identity(&identity)),
                root,
            )
            .await
        }
    };
    let v = check("foo!oidc.local").await.unwrap();
    assert_eq!(v.certificate.unwrap().subject, "foo!oidc.local");
    expect_err(
        check("foo@oidc.local").await,
        "an email spelled like it",
        "not to the required identity",
    );
}

/// sigstore-go's `TestSigstoreBundle2Sig`: a DSSE envelope with two signatures is refused
/// for that, before anything else is looked at.
#[tokio::test]
async fn sigstore_go_dsse_with_two_signatures_fail() {
    let root = TrustedRoot::parse(&sigstore_go("public-good.json"), "public-good.json").unwrap();
    let anyone = Identity::matching_issuer(".*", ".*").unwrap();
    // As published its v0.1 chain also carries Fulcio's root, which is refused first (a
    // bundle never brings its own trust anchor).
    let bundle = Bundle::parse(&sigstore_go("dsse-2sigs.sigstore.json"), "dsse-2sigs").unwrap();
    expect_err(
        verify_with_identity(&bundle, b"unused", &anyone, &root).await,
        "with the root in its chain",
        "includes a root (self-signed) certificate",
    );
    // Without the root, the two signatures are the fault named.
    let mut v: serde_json::Value =
        serde_json::from_slice(&sigstore_go("dsse-2sigs.sigstore.json")).unwrap();
    let chain = v["verificationMaterial"]["x509CertificateChain"]["certificates"]
        .as_array_mut()
        .unwrap();
    chain.pop();
    expect_err(
        verify_with_identity(&bundle_from(&v), b"unused", &anyone, &root).await,
        "two signatures",
        "has 2 signatures; a bundle carries exactly one",
    );
}
