#![allow(clippy::unwrap_used)]
//! The seeds reach the deep end: with the fixed material the targets use (`data/`), the real
//! signatures, bundles, envelopes and audit records of the corpus verify. Mutations of them
//! then exercise every check on the way, not only the first one that fails.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use wharf_core::Digest;
use wharf_sign::PublicKey;
use wharf_sign::attest::{Envelope, verify_envelope};
use wharf_sign::bundle::{Bundle, verify_with_identity, verify_with_key};
use wharf_sign::cosign::{Requirements, SimpleSigning, verify_payload, verify_payload_keyless};
use wharf_sign::fulcio::Identity;
use wharf_sign::rekor::TrustedRoot;

fn read(p: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)).unwrap()
}

fn key(p: &str) -> PublicKey {
    PublicKey::from_pem(&String::from_utf8(read(p)).unwrap(), p).unwrap()
}

fn production() -> TrustedRoot {
    TrustedRoot::parse(&read("data/production_trusted_root.json"), "production").unwrap()
}

/// A signature seed: its payload and annotations.
fn layer(p: &str) -> (Vec<u8>, BTreeMap<String, String>) {
    let bytes = read(p);
    let v: serde_json::Value =
        serde_json::from_slice(bytes.strip_prefix(b"\x00sigstore-json\n").unwrap()).unwrap();
    let payload = STANDARD.decode(v["payload"].as_str().unwrap()).unwrap();
    (
        payload,
        serde_json::from_value(v["annotations"].clone()).unwrap(),
    )
}

#[test]
fn the_signature_seeds_verify() {
    for (seed, k) in [
        ("dir-img-cosign-valid-signature-1", "data/cosign.pub"),
        ("pipeline-signature", "data/pipeline-cosign.pub"),
    ] {
        let (payload, ann) = layer(&format!("corpus/cosign_signature/{seed}"));
        let digest = SimpleSigning::parse(&payload).unwrap().manifest_digest;
        futures::executor::block_on(verify_payload(
            &payload,
            &ann,
            &digest,
            &key(k),
            &Requirements::default(),
        ))
        .unwrap_or_else(|e| panic!("{seed}: {e}"));
    }
    let (payload, ann) = layer("corpus/cosign_signature/keyless-rekor-set-fixture");
    let digest = SimpleSigning::parse(&payload).unwrap().manifest_digest;
    let mitr = Identity::exact("mitr@redhat.com", "https://github.com/login/oauth");
    let v = futures::executor::block_on(verify_payload_keyless(
        &payload,
        &ann,
        &digest,
        &mitr,
        &production(),
        wharf_sign::cosign::ReferenceMatch::Any,
    ))
    .unwrap();
    assert_eq!(v.key_id, "mitr@redhat.com");
}

#[test]
fn the_bundle_and_envelope_seeds_verify() {
    let a_txt = read("data/a.txt");
    let root = production();
    let b = Bundle::parse(
        &read("corpus/sigstore_bundle/happy-path-v0.3.sigstore.json"),
        "b",
    )
    .unwrap();
    let id = Identity::exact(
        "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
        "https://token.actions.githubusercontent.com",
    );
    futures::executor::block_on(verify_with_identity(&b, &a_txt, &id, &root)).unwrap();
    let b = Bundle::parse(
        &read("corpus/sigstore_bundle/managed-key-happy-path.sigstore.json"),
        "b",
    )
    .unwrap();
    futures::executor::block_on(verify_with_key(
        &b,
        &a_txt,
        Some(&key("data/managed-key.pub")),
        &root,
    ))
    .unwrap();
    for seed in ["model-evaluation", "slsa-provenance"] {
        let env: Envelope =
            serde_json::from_slice(&read(&format!("corpus/dsse/pipeline-{seed}.dsse.json")))
                .unwrap();
        let (st, _) =
            futures::executor::block_on(verify_envelope(&env, &key("data/pipeline-cosign.pub")))
                .unwrap();
        assert!(
            st.is_about(
                &Digest::parse(
                    "sha256:c4e9e342e8862da3afa06ce9b1cef051aaa5ef648807d1142a4a8e10f7699861"
                )
                .unwrap()
            )
        );
    }
}

#[test]
fn the_audit_seeds_are_an_intact_log() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = wharf_audit::FileAuditLog::open(&audit).unwrap();
    for n in ["000000000000.json", "000000000001.json"] {
        std::fs::write(
            audit.join("records").join(n),
            read(&format!("corpus/audit_record/record-{n}")),
        )
        .unwrap();
        std::fs::write(
            audit.join("checkpoints").join(n),
            read(&format!("corpus/audit_record/checkpoint-{n}")),
        )
        .unwrap();
    }
    let key = key("data/pipeline-audit-checkpoint.pem.pub");
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(log.verify_with(&Default::default(), Some(&key)))
        .unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.checked, report.checkpoints_verified), (2, 2));
}
