#![allow(clippy::unwrap_used)]
//! Attestations (in-toto v1 in DSSE, cosign's `.att` storage) on the in-memory registry,
//! and our DSSE envelopes checked by an independent implementation (Python's
//! `cryptography`, a harness tool, rebuilding the PAE itself).

use std::process::Command;

mod support;

use wharf_core::memory::MemoryRegistry;
use wharf_core::{Digest, ErrorKind, Registry};
use wharf_sign::EcdsaP256Key;
use wharf_sign::attest::{
    AttestOutcome, DSSE_MEDIA_TYPE, Envelope, MODEL_EVALUATION_V1, SLSA_PROVENANCE_V1, Statement,
    attest_image, attestation_tag, sign_statement, verify_attestations, verify_envelope,
};

const REPO: &str = "models/fraud";

async fn image(reg: &MemoryRegistry, content: &[u8], tag: &str) -> Digest {
    support::push_image(reg, REPO, content, tag).await
}

fn evaluation() -> serde_json::Value {
    serde_json::json!({"model": {"name": "fraud", "version": "1.4.0"}, "metrics": {"accuracy": 0.903, "f1": 0.8774}})
}

#[tokio::test]
async fn attest_verify_and_idempotence() {
    let reg = MemoryRegistry::new();
    let img = image(&reg, b"weights", "v1").await;
    let key = EcdsaP256Key::generate().unwrap();
    let out = attest_image(
        &reg,
        REPO,
        &img,
        REPO,
        MODEL_EVALUATION_V1,
        evaluation(),
        &key,
        key.public_key(),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            out,
            AttestOutcome::Added {
                attestations: 1,
                ..
            }
        ),
        "{out:?}"
    );
    let again = attest_image(
        &reg,
        REPO,
        &img,
        REPO,
        MODEL_EVALUATION_V1,
        evaluation(),
        &key,
        key.public_key(),
    )
    .await
    .unwrap();
    assert_eq!(again, AttestOutcome::AlreadyAttested);
    let prov = serde_json::json!({"buildDefinition": {"buildType": "x"}, "runDetails": {"builder": {"id": "y"}}});
    attest_image(
        &reg,
        REPO,
        &img,
        REPO,
        SLSA_PROVENANCE_V1,
        prov.clone(),
        &key,
        key.public_key(),
    )
    .await
    .unwrap();

    let all = verify_attestations(&reg, REPO, &img, key.public_key(), None)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let eval = verify_attestations(
        &reg,
        REPO,
        &img,
        key.public_key(),
        Some(MODEL_EVALUATION_V1),
    )
    .await
    .unwrap();
    assert_eq!(eval.len(), 1);
    assert_eq!(
        eval[0].predicate,
        evaluation(),
        "the predicate comes back for policy to check"
    );
    assert_eq!(eval[0].key_id, key.public_key().key_id());

    // The .att image is cosign's: DSSE layers annotated with their predicate type.
    let desc = reg.resolve_tag(REPO, &attestation_tag(&img)).await.unwrap();
    let m = reg.fetch_manifest(REPO, &desc.digest).await.unwrap();
    let m = wharf_core::ImageManifest::from_slice(&m.bytes, "att").unwrap();
    assert!(m.layers.iter().all(|l| l.media_type == DSSE_MEDIA_TYPE));
    assert_eq!(
        m.layers[0].annotations["predicateType"],
        MODEL_EVALUATION_V1
    );
}

#[tokio::test]
async fn attestations_never_verify_by_default() {
    let reg = MemoryRegistry::new();
    let img = image(&reg, b"weights", "v1").await;
    let other = image(&reg, b"other", "v2").await;
    let key = EcdsaP256Key::generate().unwrap();
    let stranger = EcdsaP256Key::generate().unwrap();
    let err = verify_attestations(&reg, REPO, &img, key.public_key(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    attest_image(
        &reg,
        REPO,
        &img,
        REPO,
        MODEL_EVALUATION_V1,
        evaluation(),
        &stranger,
        stranger.public_key(),
    )
    .await
    .unwrap();
    let err = verify_attestations(&reg, REPO, &img, key.public_key(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(
        err.to_string()
            .contains("attestation 1: the signature does not verify"),
        "{err}"
    );
    // Only provenance asked for, only evaluation present.
    attest_image(
        &reg,
        REPO,
        &img,
        REPO,
        MODEL_EVALUATION_V1,
        evaluation(),
        &key,
        key.public_key(),
    )
    .await
    .unwrap();
    let err = verify_attestations(&reg, REPO, &img, key.public_key(), Some(SLSA_PROVENANCE_V1))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no valid https://slsa.dev/provenance/v1 attestation"),
        "{err}"
    );
    // A statement about another image, copied under this image's tag.
    attest_image(
        &reg,
        REPO,
        &other,
        REPO,
        SLSA_PROVENANCE_V1,
        evaluation(),
        &key,
        key.public_key(),
    )
    .await
    .unwrap();
    let att = reg
        .resolve_tag(REPO, &attestation_tag(&other))
        .await
        .unwrap();
    reg.tag(REPO, &att.digest, &attestation_tag(&img))
        .await
        .unwrap();
    let err = verify_attestations(&reg, REPO, &img, key.public_key(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the statement is about"), "{err}");
}

const PY_VERIFY_DSSE: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
env = json.load(open(sys.argv[1]))
key = serialization.load_pem_public_key(open(sys.argv[2], "rb").read())
payload = base64.b64decode(env["payload"])
t = env["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
key.verify(base64.b64decode(env["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256()))
st = json.loads(payload)
assert st["_type"] == "https://in-toto.io/Statement/v1", st["_type"]
print(st["predicateType"], st["subject"][0]["digest"]["sha256"])
"#;

#[tokio::test]
async fn an_independent_dsse_implementation_verifies_our_envelope() {
    let python = support::harness("WHARF_TEST_CRYPTO_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let key = EcdsaP256Key::load_or_generate(&dir.path().join("k.pem")).unwrap();
    let img = Digest::sha256_of(b"an image");
    let st = Statement::about(REPO, &img, MODEL_EVALUATION_V1, evaluation());
    let env = sign_statement(&st, &key).await.unwrap();
    let (back, _) = verify_envelope(&env, key.public_key()).await.unwrap();
    assert_eq!(back, st);
    std::fs::write(
        dir.path().join("env.json"),
        serde_json::to_vec(&env).unwrap(),
    )
    .unwrap();
    let out = Command::new(&python)
        .args(["-c", PY_VERIFY_DSSE])
        .arg(dir.path().join("env.json"))
        .arg(wharf_sign::public_path(&dir.path().join("k.pem")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{MODEL_EVALUATION_V1} {}", img.hex())
    );
    // A changed payload does not verify.
    let mut forged: Envelope = env.clone();
    forged.payload = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        serde_json::to_vec(&Statement::about(
            REPO,
            &img,
            MODEL_EVALUATION_V1,
            serde_json::json!({"metrics": {"accuracy": 0.99}}),
        ))
        .unwrap(),
    );
    assert!(verify_envelope(&forged, key.public_key()).await.is_err());
}

/// A CycloneDX SBOM made by the real Trivy (a harness tool) and a Trivy scan report (a
/// fixture) attested as cosign's `cyclonedx` and `vuln` predicates: each verifies and comes
/// back whole, by its own predicate type.
#[tokio::test]
async fn sbom_and_scan_results_are_attested_as_cosign_predicates() {
    use wharf_sign::attest::{CYCLONEDX_BOM, VULN_SCAN_V1, vuln_predicate};
    let trivy = support::harness("WHARF_TEST_TRIVY");
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(trivy)
        .args([
            "fs",
            "--format",
            "cyclonedx",
            "--scanners",
            "license",
            "--offline-scan",
        ])
        .args(["--skip-db-update", "--quiet"])
        .arg(manifest_dir.join("src"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sbom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(manifest_dir.join("tests/fixtures/trivy/poetry.json.golden")).unwrap(),
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let scan = vuln_predicate(
        "pkg:github/aquasecurity/trivy",
        "0.59.1",
        serde_json::json!({"uri": "pkg:oci/trivy-db"}),
        report.clone(),
        now,
        now,
    );

    let reg = MemoryRegistry::new();
    let img = image(&reg, b"weights", "v1").await;
    let key = EcdsaP256Key::generate().unwrap();
    for (kind, predicate) in [(CYCLONEDX_BOM, &sbom), (VULN_SCAN_V1, &scan)] {
        attest_image(
            &reg,
            REPO,
            &img,
            REPO,
            kind,
            predicate.clone(),
            &key,
            key.public_key(),
        )
        .await
        .unwrap();
    }
    let got = verify_attestations(&reg, REPO, &img, key.public_key(), Some(CYCLONEDX_BOM))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].predicate, sbom);
    let got = verify_attestations(&reg, REPO, &img, key.public_key(), Some(VULN_SCAN_V1))
        .await
        .unwrap();
    assert_eq!(got[0].predicate["scanner"]["result"], report);
    assert_eq!(
        got[0].predicate["scanner"]["result"]["Results"][0]["Vulnerabilities"][0]["VulnerabilityID"],
        "CVE-2019-14806"
    );
    // Another key verifies neither.
    let other = EcdsaP256Key::generate().unwrap();
    assert!(
        verify_attestations(&reg, REPO, &img, other.public_key(), Some(VULN_SCAN_V1))
            .await
            .is_err()
    );
}
