//! Attestations as cosign writes them: an in-toto Statement (v1) about the image, in a DSSE
//! envelope signed over DSSE's pre-authentication encoding, stored as a layer of the image
//! tagged `sha256-<hex>.att`. Predicates: SLSA provenance v1, and wharf's model-evaluation
//! predicate (the metrics a promotion policy checks).

use std::collections::BTreeMap;

use wharf_core::sign::{Signer, Verifier};
use wharf_core::{Digest, Error, ErrorKind, Registry, Result};

use crate::cosign::{ANNOTATION_SIGNATURE, append_layer, ensure_image, existing_layers};

pub use crate::cosign::AttestOutcome;
pub use crate::dsse::{
    CYCLONEDX_BOM, DSSE_MEDIA_TYPE, Envelope, EnvelopeSignature, IN_TOTO_PAYLOAD_TYPE,
    MODEL_EVALUATION_V1, SLSA_PROVENANCE_V1, STATEMENT_V1, Statement, Subject, VULN_SCAN_V1,
    VerifiedAttestation, pae, sign_statement, verify_envelope, vuln_predicate,
};

/// The layer annotation cosign uses for the predicate type.
pub const ANNOTATION_PREDICATE_TYPE: &str = "predicateType";

/// The tag cosign stores an image's attestations under: `sha256-<hex>.att`.
pub fn attestation_tag(image: &Digest) -> String {
    format!("{}.att", image.tag_form())
}

/// Attest `image` in `repo`: sign an in-toto statement (subject `name` + the digest) with
/// `predicate` of `predicate_type` and add it to the image tagged `sha256-<hex>.att`,
/// keeping what is there. When a statement with the same predicate, verified with
/// `verifier`, is already there, nothing is written.
#[allow(clippy::too_many_arguments)]
pub async fn attest_image(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    name: &str,
    predicate_type: &str,
    predicate: serde_json::Value,
    signer: &dyn Signer,
    verifier: &dyn Verifier,
) -> Result<AttestOutcome> {
    ensure_image(registry, repo, image).await?;
    let tag = attestation_tag(image);
    let existing = existing_layers(registry, repo, &tag, DSSE_MEDIA_TYPE).await?;
    if let Some((_, layers)) = &existing {
        for (_, bytes) in layers {
            if let Ok(env) = serde_json::from_slice::<Envelope>(bytes)
                && let Ok((st, _)) = verify_envelope(&env, verifier).await
                && st.is_about(image)
                && st.predicate_type == predicate_type
                && st.predicate == predicate
            {
                return Ok(AttestOutcome::AlreadyAttested);
            }
        }
    }
    let statement = Statement::about(name, image, predicate_type, predicate);
    let envelope = sign_statement(&statement, signer).await?;
    let bytes = serde_json::to_vec(&envelope)
        .map_err(|e| Error::internal(format!("DSSE envelope: {e}")))?;
    // cosign's layer: the signature annotation is empty (the signature is in the envelope).
    let annotations = BTreeMap::from([
        (ANNOTATION_SIGNATURE.to_owned(), String::new()),
        (
            ANNOTATION_PREDICATE_TYPE.to_owned(),
            predicate_type.to_owned(),
        ),
    ]);
    let (manifest, attestations) = append_layer(
        registry,
        repo,
        &tag,
        existing.map(|(m, _)| m),
        DSSE_MEDIA_TYPE,
        bytes,
        annotations,
    )
    .await?;
    Ok(AttestOutcome::Added {
        manifest,
        attestations,
    })
}

/// The attestations of `image` in `repo` that verify with `verifier` and are about this
/// image, optionally only those of `predicate_type`. None is an error naming why each
/// candidate failed.
pub async fn verify_attestations(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    verifier: &dyn Verifier,
    predicate_type: Option<&str>,
) -> Result<Vec<VerifiedAttestation>> {
    let trust = crate::Trust::Key(verifier);
    collect_attestations(registry, repo, image, predicate_type, trust).await
}

/// The keyless attestations in `image`'s `.att` image, as cosign 2 `attest` writes them
/// with a Fulcio certificate: each DSSE layer's signature verifies with the certificate in
/// its `dev.sigstore.cosign/certificate` annotation; its Rekor bundle
/// (`dev.sigstore.cosign/bundle`) is signed by a log of `root` and records this envelope
/// (a `dsse` or `intoto` entry); the certificate chains to an authority of `root` at the
/// logged time, carries a valid SCT and names `identity`; the statement is about `image`.
/// Optionally only `predicate_type`. None is an error naming why each candidate failed.
pub async fn verify_attestations_keyless(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    identity: &crate::fulcio::Identity,
    root: &crate::rekor::TrustedRoot,
    predicate_type: Option<&str>,
) -> Result<Vec<VerifiedAttestation>> {
    let trust = crate::Trust::Keyless { identity, root };
    collect_attestations(registry, repo, image, predicate_type, trust).await
}

/// Each DSSE layer of `image`'s `.att` image checked against `trust`; those of
/// `predicate_type` (all without one) that verify, or an error naming why each failed.
async fn collect_attestations(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    predicate_type: Option<&str>,
    trust: crate::Trust<'_>,
) -> Result<Vec<VerifiedAttestation>> {
    let tag = attestation_tag(image);
    let Some((_, layers)) = existing_layers(registry, repo, &tag, DSSE_MEDIA_TYPE).await? else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("{repo}@{image} has no attestation ({repo}:{tag} does not exist)"),
        ));
    };
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for (i, (layer, bytes)) in layers.iter().enumerate() {
        let checked = match trust {
            crate::Trust::Key(verifier) => check_keyed_layer(bytes, image, verifier).await,
            crate::Trust::Keyless { identity, root } => {
                verify_keyless_layer(bytes, &layer.annotations, image, identity, root).await
            }
        };
        match checked {
            Ok(a) if predicate_type.is_none_or(|t| t == a.predicate_type) => found.push(a),
            Ok(a) => failures.push(format!(
                "attestation {}: predicate {}",
                i + 1,
                a.predicate_type
            )),
            Err(e) => failures.push(format!("attestation {}: {e}", i + 1)),
        }
    }
    if found.is_empty() {
        let kind = match trust {
            crate::Trust::Key(_) => "",
            crate::Trust::Keyless { .. } => "keyless ",
        };
        return Err(Error::integrity(format!(
            "no valid {kind}{}attestation for {repo}@{image}: {}",
            predicate_type.map(|t| format!("{t} ")).unwrap_or_default(),
            failures.join("; ")
        )));
    }
    Ok(found)
}

/// One `.att` layer signed with a key.
async fn check_keyed_layer(
    bytes: &[u8],
    image: &Digest,
    verifier: &dyn Verifier,
) -> Result<VerifiedAttestation> {
    let env: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(format!("not a DSSE envelope: {e}")))?;
    let v = crate::dsse::verify_envelope_parts(&env, verifier).await?;
    about(v.statement, image, v.key_id)
}

/// `statement` as a verified attestation signed by `key_id`, if it is about `image`.
fn about(statement: Statement, image: &Digest, key_id: String) -> Result<VerifiedAttestation> {
    if !statement.is_about(image) {
        return Err(Error::integrity(format!(
            "the statement is about {:?}, not {image}",
            statement
                .subject
                .iter()
                .map(|s| &s.digest)
                .collect::<Vec<_>>()
        )));
    }
    Ok(VerifiedAttestation::new(
        statement.predicate_type,
        statement.predicate,
        key_id,
    ))
}

/// One keyless `.att` layer: see [`verify_attestations_keyless`].
async fn verify_keyless_layer(
    bytes: &[u8],
    annotations: &BTreeMap<String, String>,
    image: &Digest,
    identity: &crate::fulcio::Identity,
    root: &crate::rekor::TrustedRoot,
) -> Result<VerifiedAttestation> {
    use crate::simple_signing::{ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE};
    let annotation = |name: &str| {
        annotations.get(name).ok_or_else(|| {
            Error::invalid(format!(
                "the attestation layer has no {name} annotation: it is not a keyless attestation"
            ))
        })
    };
    let envelope: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(format!("not a DSSE envelope: {e}")))?;
    let (leaf, chain) = crate::simple_signing::certificate_and_chain(
        annotation(ANNOTATION_CERTIFICATE)?,
        annotations,
    )?;
    // The envelope's signature, checked with the certificate's key.
    let cert_key =
        crate::PublicKey::from_spki_der(leaf.spki_der(), "the attestation's certificate key")?;
    let verified = crate::dsse::verify_envelope_parts(&envelope, &cert_key)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Integrity => Error::integrity(
                "the attestation's signature does not verify with its certificate's key",
            ),
            _ => e,
        })?;
    let bundle = crate::rekor::RekorBundle::parse(annotation(ANNOTATION_BUNDLE)?)?;
    let log = root.log_of(&bundle)?;
    crate::rekor::verify_bundle_set(&bundle, &log.key).await?;
    crate::rekor::check_envelope_entry(
        &bundle.payload.body,
        &verified.payload,
        &verified.signature,
    )?;
    let cert = crate::fulcio::verify_certificate(
        &leaf,
        &chain,
        root,
        bundle.payload.integrated_time,
        identity,
    )?;
    about(verified.statement, image, cert.subject)
}

/// The attestations of `image` that `trust` verifies, optionally only `predicate_type`,
/// wherever cosign stores them: the `.att` image (cosign 2, and wharf with a key) and
/// Sigstore bundle referrers (cosign 3, and wharf keylessly). None is an error naming why
/// each candidate in each place failed.
pub async fn verify_image_attestations(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    trust: crate::Trust<'_>,
    predicate_type: Option<&str>,
) -> Result<Vec<VerifiedAttestation>> {
    let legacy = match trust {
        crate::Trust::Key(verifier) => {
            verify_attestations(registry, repo, image, verifier, predicate_type).await
        }
        crate::Trust::Keyless { identity, root } => {
            verify_attestations_keyless(registry, repo, image, identity, root, predicate_type).await
        }
    };
    let bundled =
        crate::referrers::verify_bundle_attestations(registry, repo, image, trust, predicate_type)
            .await;
    match (legacy, bundled) {
        (Ok(mut found), Ok(more)) => {
            found.extend(more);
            Ok(found)
        }
        (Ok(found), Err(_)) | (Err(_), Ok(found)) => Ok(found),
        // Both failed: a backend error (other than "nothing there") wins, else both reasons.
        (Err(a), Err(b)) => {
            for e in [&a, &b] {
                if !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Integrity) {
                    return Err(Error::new(e.kind(), e.to_string()));
                }
            }
            let kind = if a.kind() == ErrorKind::NotFound && b.kind() == ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::Integrity
            };
            Err(Error::new(kind, format!("{a}; {b}")))
        }
    }
}
