#![allow(clippy::unwrap_used)]
//! Real cosign signatures (tests/fixtures/README.md says where each comes from and what a
//! verifier must conclude) against wharf's verifier: the valid ones verify, each negative
//! case is rejected with the error that names its fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use wharf_core::{Digest, ErrorKind};
use wharf_sign::PublicKey;
use wharf_sign::cosign::{
    ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_CHAIN, ANNOTATION_SIGNATURE,
    ReferenceMatch, Requirements, SimpleSigning, verify_payload,
};
use wharf_sign::rekor::{RekorBundle, verify_bundle};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/containers-image")
        .join(path)
}

fn key(name: &str) -> PublicKey {
    PublicKey::from_file(&fixture(name)).unwrap()
}

/// A containers/image `dir` signature file: 0x00, "sigstore-json\n", JSON.
fn signature_file(path: &str) -> (Vec<u8>, BTreeMap<String, String>) {
    let bytes = std::fs::read(fixture(path)).unwrap();
    let json = bytes
        .strip_prefix(b"\x00sigstore-json\n")
        .expect("a sigstore-json signature file");
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    assert_eq!(
        v["mimeType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = base64::engine::general_purpose::STANDARD
        .decode(v["payload"].as_str().unwrap())
        .unwrap();
    let annotations = serde_json::from_value(v["annotations"].clone()).unwrap();
    (payload, annotations)
}

fn manifest_digest(dir: &str) -> Digest {
    Digest::sha256_of(&std::fs::read(fixture(&format!("{dir}/manifest.json"))).unwrap())
}

#[tokio::test]
async fn key_signed_images_verify_with_their_key_only() {
    let cosign = key("cosign.pub");
    for (dir, sig) in [
        ("dir-img-cosign-valid", "signature-1"),
        ("dir-img-cosign-valid-2", "signature-1"),
        ("dir-img-cosign-valid-2", "signature-2"),
    ] {
        let (payload, ann) = signature_file(&format!("{dir}/{sig}"));
        let digest = manifest_digest(dir);
        let v = verify_payload(&payload, &ann, &digest, &cosign, &Requirements::default())
            .await
            .unwrap_or_else(|e| panic!("{dir}/{sig}: {e}"));
        assert_eq!(v.payload.manifest_digest, digest);
        assert_eq!(
            v.payload.docker_reference,
            "192.168.64.2:5000/cosign-signed-single-sample"
        );
        assert_eq!(v.key_id, cosign.key_id());
        // The same signature with the other key: rejected.
        let err = verify_payload(
            &payload,
            &ann,
            &digest,
            &key("cosign2.pub"),
            &Requirements::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
        assert!(
            err.to_string().contains("does not verify with key"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn an_unknown_key_is_rejected() {
    let (payload, ann) = signature_file("unknown-cosign-key.signature");
    let digest = manifest_digest("dir-img-cosign-valid");
    for k in ["cosign.pub", "cosign2.pub"] {
        let err = verify_payload(&payload, &ann, &digest, &key(k), &Requirements::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{k}: {err}");
    }
}

#[tokio::test]
async fn a_signature_for_another_manifest_is_rejected() {
    // The signature is genuine, but over the digest of a different manifest.
    let (payload, ann) = signature_file("dir-img-cosign-modified-manifest/signature-1");
    let digest = manifest_digest("dir-img-cosign-modified-manifest");
    let err = verify_payload(
        &payload,
        &ann,
        &digest,
        &key("cosign.pub"),
        &Requirements::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(
        err.to_string().contains(&format!(
            "the signature is for sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00, not for {digest}"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_payload_naming_another_repository_is_rejected_when_one_is_required() {
    let (payload, ann) = signature_file("dir-img-cosign-valid/signature-1");
    let digest = manifest_digest("dir-img-cosign-valid");
    let req = Requirements::new().reference(ReferenceMatch::Exact("registry.example/acme/model"));
    let err = verify_payload(&payload, &ann, &digest, &key("cosign.pub"), &req)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("names repository \"192.168.64.2:5000/cosign-signed-single-sample\""),
        "{err}"
    );
}

#[tokio::test]
async fn key_plus_rekor_bundle_verifies_offline_and_each_fault_is_named() {
    let dir = "dir-img-cosign-key-rekor-valid";
    let (payload, ann) = signature_file(&format!("{dir}/signature-1"));
    let digest = manifest_digest(dir);
    let rekor = key("rekor.pub");
    let mut req = Requirements::new().rekor_key(&rekor);
    let v = verify_payload(&payload, &ann, &digest, &key("cosign2.pub"), &req)
        .await
        .unwrap();
    assert_eq!(
        (v.integrated_time, v.log_index),
        (Some(1674251859), Some(11608800))
    );
    // cosign.pub did not make this signature.
    assert!(
        verify_payload(&payload, &ann, &digest, &key("cosign.pub"), &req)
            .await
            .is_err()
    );
    // The wrong key configured as the log's: the bundle is from another log.
    let wrong = key("cosign.pub");
    req.rekor_key = Some(&wrong);
    let err = verify_payload(&payload, &ann, &digest, &key("cosign2.pub"), &req)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is from log c0d23d6a"), "{err}");
    // The bundle removed while a log entry is required.
    req.rekor_key = Some(&rekor);
    let mut stripped = ann.clone();
    stripped.remove("dev.sigstore.cosign/bundle");
    let err = verify_payload(&payload, &stripped, &digest, &key("cosign2.pub"), &req)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no Rekor bundle"), "{err}");
    // A bundle whose signed entry timestamp was tampered with.
    let mut forged = ann.clone();
    let b = forged.get_mut("dev.sigstore.cosign/bundle").unwrap();
    *b = b.replace("\"logIndex\":11608800", "\"logIndex\":11608801");
    let err = verify_payload(&payload, &forged, &digest, &key("cosign2.pub"), &req)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("signed entry timestamp does not verify"),
        "{err}"
    );
}

#[tokio::test]
async fn a_bundle_whose_entry_does_not_match_the_signature_is_rejected() {
    // rekor-set-fixture: the SET verifies with rekor.pub and records rekor-payload/rekor-sig.
    let set = std::fs::read_to_string(fixture("rekor-set-fixture/rekor-set")).unwrap();
    let bundle = RekorBundle::parse(&set).unwrap();
    let payload = std::fs::read(fixture("rekor-set-fixture/rekor-payload")).unwrap();
    let sig = std::fs::read_to_string(fixture("rekor-set-fixture/rekor-sig")).unwrap();
    let rekor = key("rekor.pub");
    verify_bundle(&bundle, &rekor, &payload, sig.trim())
        .await
        .unwrap();
    assert_eq!(
        (bundle.payload.integrated_time, bundle.payload.log_index),
        (1670870899, 8949589)
    );
    // The same bundle for another payload or another signature: the entry does not match.
    let err = verify_bundle(&bundle, &rekor, b"another payload", sig.trim())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not match this signature"),
        "{err}"
    );
    let (_, other) = signature_file("dir-img-cosign-valid/signature-1");
    let other_sig = &other["dev.cosignproject.cosign/signature"];
    let err = verify_bundle(&bundle, &rekor, &payload, other_sig)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not match this signature"),
        "{err}"
    );
}

#[test]
fn payloads_parse_both_digest_spellings_and_round_trip() {
    let (payload, _) = signature_file("dir-img-cosign-valid/signature-1");
    let parsed = SimpleSigning::parse(&payload).unwrap();
    assert_eq!(
        parsed.to_bytes(),
        payload,
        "we write payloads byte for byte as cosign does"
    );
    let old = String::from_utf8(payload)
        .unwrap()
        .replace("docker-manifest-digest", "Docker-manifest-digest");
    assert_eq!(SimpleSigning::parse(old.as_bytes()).unwrap(), parsed);
    for (bad, why) in [
        (&b"{}"[..], "critical.type"),
        (br#"{"critical":{"type":"cosign container image signature","image":{},"identity":{"docker-reference":"x"}}}"#, "docker-manifest-digest"),
        (br#"{"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":"sha256:zz"},"identity":{"docker-reference":"x"}}}"#, "sha256:zz"),
        (b"not json", "not JSON"),
    ] {
        let err = SimpleSigning::parse(bad).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
}

#[tokio::test]
async fn malformed_annotations_are_named() {
    let (payload, mut ann) = signature_file("dir-img-cosign-valid/signature-1");
    let digest = manifest_digest("dir-img-cosign-valid");
    ann.insert(
        "dev.cosignproject.cosign/signature".into(),
        "!!not base64".into(),
    );
    let err = verify_payload(
        &payload,
        &ann,
        &digest,
        &key("cosign.pub"),
        &Requirements::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("is not base64"), "{err}");
    ann.remove("dev.cosignproject.cosign/signature");
    let err = verify_payload(
        &payload,
        &ann,
        &digest,
        &key("cosign.pub"),
        &Requirements::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("no dev.cosignproject.cosign/signature annotation"),
        "{err}"
    );
}

/// containers/image's keyless fixture (Fulcio certificate for mitr@redhat.com via GitHub
/// OAuth, chain, Rekor SET at 1670870899) verifies by identity against the production root,
/// and fails for another identity, without the chain's root, or with the SET removed.
#[tokio::test]
async fn a_keyless_cosign_signature_verifies_by_identity() {
    use wharf_sign::cosign::verify_payload_keyless;
    use wharf_sign::fulcio::Identity;
    use wharf_sign::rekor::TrustedRoot;
    let read = |p: &str| std::fs::read_to_string(fixture(p)).unwrap();
    let payload = std::fs::read(fixture("rekor-set-fixture/rekor-payload")).unwrap();
    let mut ann = BTreeMap::from([
        (
            ANNOTATION_SIGNATURE.to_owned(),
            read("rekor-set-fixture/rekor-sig"),
        ),
        (ANNOTATION_CERTIFICATE.to_owned(), read("fulcio-cert")),
        (ANNOTATION_CHAIN.to_owned(), read("fulcio-chain")),
        (
            ANNOTATION_BUNDLE.to_owned(),
            read("rekor-set-fixture/rekor-set"),
        ),
    ]);
    let root = TrustedRoot::parse(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sigstore/production_trusted_root.json"),
        )
        .unwrap(),
        "production",
    )
    .unwrap();
    let digest = SimpleSigning::parse(&payload).unwrap().manifest_digest;
    let who = Identity::exact("mitr@redhat.com", "https://github.com/login/oauth");
    let v = verify_payload_keyless(&payload, &ann, &digest, &who, &root, ReferenceMatch::Any)
        .await
        .unwrap();
    assert_eq!(v.key_id, "mitr@redhat.com");
    assert_eq!(v.integrated_time, Some(1670870899));
    assert_eq!(v.log_index, Some(8949589));

    let err = |ann: &BTreeMap<String, String>, who: &Identity, digest: &Digest| {
        futures::executor::block_on(verify_payload_keyless(
            &payload,
            ann,
            digest,
            who,
            &root,
            ReferenceMatch::Any,
        ))
        .unwrap_err()
        .to_string()
    };
    let eve = Identity::exact("eve@example.com", "https://github.com/login/oauth");
    assert!(err(&ann, &eve, &digest).contains("not to the required identity"));
    let other = Digest::sha256_of(b"another image");
    assert!(err(&ann, &who, &other).contains("not for"));
    // The signature verifies only with its own certificate.
    let mut swapped = ann.clone();
    let other_key = wharf_sign::EcdsaP256Key::generate().unwrap();
    let forged = wharf_core::Signer::sign(&other_key, &payload, &Default::default())
        .await
        .unwrap();
    swapped.insert(
        ANNOTATION_SIGNATURE.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(&forged.bytes),
    );
    assert!(err(&swapped, &who, &digest).contains("does not verify with the signing certificate"));
    ann.remove(ANNOTATION_BUNDLE);
    let e = err(&ann, &who, &digest);
    assert!(
        e.contains("no dev.sigstore.cosign/bundle annotation"),
        "{e}"
    );
}

/// base64 as Go decodes it: cosign accepts a signature annotation wrapped across lines,
/// so we do; and a Rekor bundle whose SET is wrapped still verifies.
#[tokio::test]
async fn annotations_wrapped_across_lines_decode_as_cosign_decodes_them() {
    let (payload, mut ann) = signature_file("dir-img-cosign-valid/signature-1");
    let digest = manifest_digest("dir-img-cosign-valid");
    let sig = ann[ANNOTATION_SIGNATURE].clone();
    let wrapped: String = sig
        .as_bytes()
        .chunks(16)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    assert_ne!(wrapped, sig);
    ann.insert(ANNOTATION_SIGNATURE.into(), wrapped);
    let v = verify_payload(
        &payload,
        &ann,
        &digest,
        &key("cosign.pub"),
        &Requirements::default(),
    )
    .await
    .unwrap();
    assert_eq!(v.payload.manifest_digest, digest);
    // Not base64 even so: named.
    ann.insert(ANNOTATION_SIGNATURE.into(), "not base64!".into());
    let err = verify_payload(
        &payload,
        &ann,
        &digest,
        &key("cosign.pub"),
        &Requirements::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("annotation is not base64"),
        "{err}"
    );
}

/// A signature layer is read for what it is: cosign's layer parses and verifies; a layer
/// of another media type or without the signature annotation is "not a signature" (Invalid),
/// and a blob that is not the descriptor's is an integrity error — neither is reported as a
/// bad signature.
#[tokio::test]
async fn a_signature_layer_is_parsed_before_it_is_verified() {
    use wharf_sign::cosign::{SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer};
    use wharf_sign::{Trust, wharf_core::Descriptor};
    let (payload, ann) = signature_file("dir-img-cosign-valid/signature-1");
    let digest = manifest_digest("dir-img-cosign-valid");
    let mut desc = Descriptor::new(
        SIMPLE_SIGNING_MEDIA_TYPE,
        Digest::sha256_of(&payload),
        payload.len() as u64,
    );
    desc.annotations = ann.clone();
    let layer = SignatureLayer::parse(&desc, &payload).unwrap();
    assert!(!layer.is_keyless());
    assert_eq!(layer.simple_signing.manifest_digest, digest);
    let key = key("cosign.pub");
    let v = layer
        .verify(&digest, Trust::Key(&key), &Requirements::new())
        .await
        .unwrap();
    assert_eq!(v.key_id, key.key_id());

    let mut other_type = desc.clone();
    other_type.media_type = "application/vnd.dsse.envelope.v1+json".into();
    let err = SignatureLayer::parse(&other_type, &payload).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.to_string()
            .contains("is not a signature: its mediaType"),
        "{err}"
    );
    let mut unsigned = desc.clone();
    unsigned.annotations.remove(ANNOTATION_SIGNATURE);
    let err = SignatureLayer::parse(&unsigned, &payload).unwrap_err();
    assert!(
        err.to_string().contains("is not a signature: it has no"),
        "{err}"
    );
    let err = SignatureLayer::parse(&desc, b"other bytes").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
}

/// A trust root from loose PEM files (cosign's `SIGSTORE_ROOT_FILE`,
/// `SIGSTORE_REKOR_PUBLIC_KEY`, `SIGSTORE_CT_LOG_PUBLIC_KEY_FILE`) verifies the same keyless
/// signature the production `trusted_root.json` does; without the CT log key it fails unless
/// the SCT check is skipped explicitly; a chain without its root is refused.
#[tokio::test]
async fn a_trust_root_from_loose_pem_files_verifies_a_keyless_signature() {
    use base64::engine::general_purpose::STANDARD;
    use wharf_sign::cosign::verify_payload_keyless;
    use wharf_sign::fulcio::Identity;
    use wharf_sign::rekor::TrustedRoot;
    let read = |p: &str| std::fs::read_to_string(fixture(p)).unwrap();
    let production: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sigstore/production_trusted_root.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // The keys as PEM files hold them: the production root's DER, re-encoded.
    let pem_of = |list: &str, i: usize| {
        let der = STANDARD
            .decode(
                production[list][i]["publicKey"]["rawBytes"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        PublicKey::from_spki_der(&der, list).unwrap().to_pem()
    };
    // rekor.sigstore.dev, and ctfe.sigstore.dev/2022: the CT log of late-2022 certificates.
    let (rekor_pem, ct_pem) = (pem_of("tlogs", 0), pem_of("ctlogs", 1));
    let chain = read("fulcio-chain");
    let payload = std::fs::read(fixture("rekor-set-fixture/rekor-payload")).unwrap();
    let ann = BTreeMap::from([
        (
            ANNOTATION_SIGNATURE.to_owned(),
            read("rekor-set-fixture/rekor-sig"),
        ),
        (ANNOTATION_CERTIFICATE.to_owned(), read("fulcio-cert")),
        (ANNOTATION_CHAIN.to_owned(), read("fulcio-chain")),
        (
            ANNOTATION_BUNDLE.to_owned(),
            read("rekor-set-fixture/rekor-set"),
        ),
    ]);
    let digest = SimpleSigning::parse(&payload).unwrap().manifest_digest;
    let who = Identity::exact("mitr@redhat.com", "https://github.com/login/oauth");
    let verify = |root: TrustedRoot| {
        futures::executor::block_on(verify_payload_keyless(
            &payload,
            &ann,
            &digest,
            &who,
            &root,
            ReferenceMatch::Any,
        ))
    };
    let root = TrustedRoot::from_pems(&chain, &rekor_pem, Some(&ct_pem), "sigstore files").unwrap();
    assert_eq!(verify(root).unwrap().key_id, "mitr@redhat.com");
    let no_ct = TrustedRoot::from_pems(&chain, &rekor_pem, None, "sigstore files").unwrap();
    let err = verify(no_ct.clone()).unwrap_err();
    assert!(
        err.to_string()
            .contains("names no certificate-transparency log"),
        "{err}"
    );
    verify(no_ct.insecure_ignore_sct()).unwrap();
    // The intermediate alone: no root to anchor it.
    let intermediate = chain
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .unwrap()
        .to_owned();
    let err =
        TrustedRoot::from_pems(&intermediate, &rekor_pem, None, "sigstore files").unwrap_err();
    assert!(
        err.to_string()
            .contains("the Fulcio chain holds 0 root (self-signed) certificates"),
        "{err}"
    );
}
