#![allow(clippy::unwrap_used)]
//! Signing images in a registry as cosign does (unit level, on the in-memory registry; the
//! pipeline's end-to-end tests do it on the OCI layout and a real registry).

mod support;

use wharf_core::memory::MemoryRegistry;
use wharf_core::{Digest, ErrorKind, ImageManifest, Registry};
use wharf_sign::EcdsaP256Key;
use wharf_sign::cosign::{
    ANNOTATION_SIGNATURE, ReferenceMatch, Requirements, SIMPLE_SIGNING_MEDIA_TYPE, SignOutcome,
    SimpleSigning, sign_image, signature_tag, verify_image,
};

const REPO: &str = "models/fraud";
const REFERENCE: &str = "registry.example/models/fraud";

async fn image_with(reg: &MemoryRegistry, content: &[u8], tag: &str) -> Digest {
    support::push_image(reg, REPO, content, tag).await
}

async fn image(reg: &MemoryRegistry) -> Digest {
    image_with(reg, b"weights", "v1").await
}

#[tokio::test]
async fn sign_is_idempotent_keeps_other_signatures_and_verifies() {
    let reg = MemoryRegistry::new();
    let digest = image(&reg).await;
    let a = EcdsaP256Key::generate().unwrap();
    let b = EcdsaP256Key::generate().unwrap();

    let first = sign_image(&reg, REPO, &digest, REFERENCE, &a, a.public_key())
        .await
        .unwrap();
    assert!(
        matches!(first, SignOutcome::Added { signatures: 1, .. }),
        "{first:?}"
    );
    let again = sign_image(&reg, REPO, &digest, REFERENCE, &a, a.public_key())
        .await
        .unwrap();
    assert_eq!(
        again,
        SignOutcome::AlreadySigned,
        "a valid signature by the same key is enough"
    );
    let second = sign_image(&reg, REPO, &digest, REFERENCE, &b, b.public_key())
        .await
        .unwrap();
    assert!(
        matches!(second, SignOutcome::Added { signatures: 2, .. }),
        "{second:?}"
    );

    // The signature image is cosign's: OCI manifest, one simple-signing layer per signature.
    let tag = signature_tag(&digest);
    assert_eq!(tag, format!("sha256-{}.sig", digest.hex()));
    let desc = reg.resolve_tag(REPO, &tag).await.unwrap();
    let m = reg.fetch_manifest(REPO, &desc.digest).await.unwrap();
    let manifest = ImageManifest::from_slice(&m.bytes, "sig").unwrap();
    assert_eq!(manifest.layers.len(), 2);
    for layer in &manifest.layers {
        assert_eq!(layer.media_type, SIMPLE_SIGNING_MEDIA_TYPE);
        assert!(layer.annotations.contains_key(ANNOTATION_SIGNATURE));
    }

    for key in [&a, &b] {
        let verified = verify_image(
            &reg,
            REPO,
            &digest,
            key.public_key(),
            &Requirements::default(),
        )
        .await
        .unwrap();
        assert_eq!(verified.len(), 1, "one signature per key");
        assert_eq!(
            verified[0].payload,
            SimpleSigning::new(REFERENCE, digest.clone())
        );
    }
    let req = Requirements::new().reference(ReferenceMatch::Exact(REFERENCE));
    verify_image(&reg, REPO, &digest, a.public_key(), &req)
        .await
        .unwrap();
}

#[tokio::test]
async fn verification_never_passes_by_default() {
    let reg = MemoryRegistry::new();
    let digest = image(&reg).await;
    let signer = EcdsaP256Key::generate().unwrap();
    let stranger = EcdsaP256Key::generate().unwrap();
    // A digest nobody pushed cannot be signed.
    let missing = Digest::sha256_of(b"never pushed");
    let err = sign_image(
        &reg,
        REPO,
        &missing,
        REFERENCE,
        &signer,
        signer.public_key(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("no such image"), "{err}");
    // Unsigned: not found, saying where it looked.
    let err = verify_image(
        &reg,
        REPO,
        &digest,
        signer.public_key(),
        &Requirements::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains(".sig does not exist"), "{err}");
    // Signed by someone else: an integrity error naming the failure.
    sign_image(
        &reg,
        REPO,
        &digest,
        REFERENCE,
        &stranger,
        stranger.public_key(),
    )
    .await
    .unwrap();
    let err = verify_image(
        &reg,
        REPO,
        &digest,
        signer.public_key(),
        &Requirements::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(
        err.to_string()
            .contains("signature 1: the signature does not verify"),
        "{err}"
    );
    // A different image's signature copied under this image's tag: for another digest.
    let other = image_with(&reg, b"other weights", "v2").await;
    sign_image(&reg, REPO, &other, REFERENCE, &signer, signer.public_key())
        .await
        .unwrap();
    let sig = reg.resolve_tag(REPO, &signature_tag(&other)).await.unwrap();
    reg.tag(REPO, &sig.digest, &signature_tag(&digest))
        .await
        .unwrap();
    let err = verify_image(
        &reg,
        REPO,
        &digest,
        signer.public_key(),
        &Requirements::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("the signature is for {other}, not for {digest}")),
        "{err}"
    );
}

/// The key-level calls: `key.sign_image(&registry, &ImageRef)` and
/// `public.verify_image(…)` — no positional strings to swap, the verifier derived from the
/// key, the docker reference required on verification.
#[test]
fn a_key_signs_and_its_public_half_verifies_an_image_ref_on_any_executor() {
    use wharf_sign::cosign::ImageRef;
    futures::executor::block_on(async {
        let reg = MemoryRegistry::new();
        let digest = image(&reg).await;
        let key = EcdsaP256Key::generate().unwrap();
        let image = ImageRef::new(REPO, digest.clone()).with_docker_reference(REFERENCE);
        let outcome = key.sign_image(&reg, &image).await.unwrap();
        assert!(matches!(outcome, SignOutcome::Added { .. }), "{outcome:?}");
        let verified = key.public_key().verify_image(&reg, &image).await.unwrap();
        assert_eq!(verified.len(), 1);
        assert_eq!(verified[0].payload.docker_reference, REFERENCE);
        // Named otherwise (the repository alone): not this image's signature.
        let err = key
            .public_key()
            .verify_image(&reg, &ImageRef::new(REPO, digest))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    });
}
