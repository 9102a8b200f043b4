//! Sigstore bundles on images, as cosign 3 stores them: each signature or attestation a
//! bundle in an OCI 1.1 artifact whose `subject` is the image, found through the referrers
//! API or, on registries without it (distribution 2.8), the `sha256-<hex>` tag-schema index.
//! The bundle format and its offline verification are `bundle`; this is where bundles live.

use wharf_core::registry::{ManifestBytes, PushManifestOptions, TagPrecondition};
use wharf_core::sign::Verifier;
use wharf_core::{Digest, Error, ErrorKind, Result};

use crate::Trust;
use crate::bundle::{Artifact, BUNDLE_V03, Bundle, COSIGN_SIGN_PREDICATE, SignedBy, verify};
use crate::dsse::{Envelope, Statement};

const EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";

/// A keyed v0.3 bundle holding `envelope` (no log entry: keyed signing without a log).
fn keyed_bundle(envelope: &crate::dsse::Envelope, key_id: &str) -> serde_json::Value {
    serde_json::json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "publicKey": {"hint": key_id},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": envelope.payload,
            "payloadType": envelope.payload_type,
            "signatures": envelope.signatures.iter().map(|s| serde_json::json!({"sig": s.sig, "keyid": s.keyid})).collect::<Vec<_>>(),
        },
    })
}

/// The statements of `image`'s bundle referrers that verify with `trust` and are about the
/// image, with who signed each (key id or certificate subject), and each failure's reason.
async fn bundle_statements(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    trust: Trust<'_>,
) -> Result<(Vec<(Statement, String)>, Vec<String>)> {
    let referrers = registry
        .referrers(
            repo,
            image,
            &wharf_core::registry::ReferrersOptions::of_type(BUNDLE_V03),
        )
        .await?;
    let (mut ok, mut failures) = (Vec::new(), Vec::new());
    for (i, r) in referrers.iter().enumerate() {
        let result = async {
            let m = registry.fetch_manifest(repo, &r.digest).await?;
            let manifest = wharf_core::ImageManifest::from_slice(&m.bytes, "bundle referrer")?;
            let layer = manifest
                .layers
                .first()
                .ok_or_else(|| Error::invalid("the bundle referrer has no layer"))?;
            let blob = registry.fetch_blob(repo, &layer.digest).await?;
            let bytes = wharf_core::registry::collect_blob(blob, 4 << 20).await?;
            let bundle = Bundle::parse(&bytes, "bundle referrer")?;
            match trust {
                Trust::Keyless { identity, root } => {
                    let v = verify(
                        &bundle,
                        Artifact::Digest(image),
                        Some(SignedBy::Identity(identity)),
                        root,
                    )
                    .await?;
                    let who = v.certificate.map(|c| c.subject).unwrap_or_default();
                    let statement = v.statement.ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unsupported,
                            "message-signature image bundles are not read: cosign signs images with DSSE statements",
                        )
                    })?;
                    Ok((statement, who))
                }
                Trust::Key(verifier) => {
                    if bundle.certificate_chain()?.is_some() {
                        return Err(Error::integrity(
                            "the bundle is signed keylessly (a Fulcio certificate), not with the given key",
                        ));
                    }
                    let env: Envelope =
                        serde_json::from_value(bundle.dsse_envelope.clone().ok_or_else(|| {
                            Error::new(
                                ErrorKind::Unsupported,
                                "message-signature image bundles are not read: cosign signs images with DSSE statements",
                            )
                        })?)
                        .map_err(|e| Error::invalid(format!("the bundle's DSSE envelope: {e}")))?;
                    let (statement, key_id) =
                        crate::dsse::verify_envelope(&env, verifier).await?;
                    if !statement.is_about(image) {
                        return Err(Error::integrity(format!(
                            "the bundle's statement is not about {image}"
                        )));
                    }
                    Ok((statement, key_id))
                }
            }
        }
        .await;
        match result {
            Ok(s) => ok.push(s),
            Err(e) => failures.push(format!("bundle {}: {e}", i + 1)),
        }
    }
    Ok((ok, failures))
}

/// Store `bundle` (a v0.3 bundle holding a statement of `predicate_type`) as an OCI 1.1
/// referrer of `image`; on a registry without the referrers API, list it in the
/// `sha256-<hex>` index too. The referrer manifest's digest.
async fn publish_bundle(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    subject: &wharf_core::registry::ManifestBytes,
    bundle: Vec<u8>,
    predicate_type: &str,
) -> Result<Digest> {
    use wharf_core::registry::{PushBlobOptions, blob_stream_from};
    let bundle_digest = Digest::sha256_of(&bundle);
    let bundle_len = bundle.len();
    registry
        .push_blob(
            repo,
            &bundle_digest,
            blob_stream_from(bundle),
            &PushBlobOptions::default(),
        )
        .await?;
    let empty = Digest::sha256_of(b"{}");
    registry
        .push_blob(
            repo,
            &empty,
            blob_stream_from(&b"{}"[..]),
            &PushBlobOptions::default(),
        )
        .await?;
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let annotations = serde_json::json!({
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": predicate_type,
        "org.opencontainers.image.created": created,
    });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": BUNDLE_V03,
        "config": {"mediaType": EMPTY_JSON, "digest": empty, "size": 2},
        "layers": [{
            "mediaType": BUNDLE_V03,
            "digest": bundle_digest,
            "size": bundle_len,
            "annotations": {"org.opencontainers.image.title": format!("{}.sigstore.json", bundle_digest.tag_form())},
        }],
        "subject": {"mediaType": subject.descriptor.media_type, "digest": image, "size": subject.bytes.len()},
        "annotations": annotations,
    });
    let bytes = serde_json::to_vec(&manifest)
        .map_err(|e| Error::internal(format!("bundle manifest: {e}")))?;
    let digest = Digest::sha256_of(&bytes);
    let size = bytes.len() as u64;
    registry
        .push_manifest(
            repo,
            &ManifestBytes::new("application/vnd.oci.image.manifest.v1+json", bytes),
            &PushManifestOptions::default(),
        )
        .await?;
    // Without the referrers API, list the new referrer in the sha256-<hex> index.
    let listed = registry
        .referrers(
            repo,
            image,
            &wharf_core::registry::ReferrersOptions::of_type(BUNDLE_V03),
        )
        .await?
        .iter()
        .any(|d| d.digest == digest);
    if !listed {
        let entry = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "artifactType": BUNDLE_V03,
            "annotations": annotations,
        });
        add_to_referrers_index(registry, repo, image, &digest, entry).await?;
    }
    Ok(digest)
}

/// List `entry` (the referrer `referrer`) in the `sha256-<hex>` index of `image`, for
/// registries without the referrers API. A read-modify-write like
/// [`crate::cosign::append_layer`]: pushed only if the tag still holds what was read, merged
/// again after losing a race, read back until the entry is there.
async fn add_to_referrers_index(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    referrer: &Digest,
    entry: serde_json::Value,
) -> Result<()> {
    const MAX_MERGES: usize = 64;
    let tag = image.tag_form();
    let listed = |index: &serde_json::Value| {
        index["manifests"].as_array().is_some_and(|list| {
            list.iter()
                .any(|m| m["digest"].as_str() == Some(referrer.to_string().as_str()))
        })
    };
    let mut read = referrers_index(registry, repo, &tag).await?;
    for _ in 0..MAX_MERGES {
        let (held, mut index) = match read {
            Some((d, index)) => (Some(d), index),
            None => (
                None,
                serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [],
                }),
            ),
        };
        if listed(&index) {
            return Ok(());
        }
        match index["manifests"].as_array_mut() {
            Some(list) => list.push(entry.clone()),
            None => {
                return Err(Error::invalid(format!(
                    "{repo}:{tag} is not a referrers index"
                )));
            }
        }
        let bytes =
            serde_json::to_vec(&index).map_err(|e| Error::internal(format!("index: {e}")))?;
        let opts = PushManifestOptions::tagged(tag.clone())
            .if_tag(TagPrecondition::unchanged_from(held.as_ref()));
        match registry
            .push_manifest(
                repo,
                &ManifestBytes::new("application/vnd.oci.image.index.v1+json", bytes),
                &opts,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            Err(e) => return Err(e),
        }
        // Read back (or again, after a lost race) and merge until the entry is there.
        read = referrers_index(registry, repo, &tag).await?;
    }
    match read {
        Some((_, index)) if listed(&index) => Ok(()),
        _ => Err(Error::conflict(format!(
            "{repo}:{tag} kept changing: {MAX_MERGES} attempts to list a referrer lost the race to other writers; run again"
        ))),
    }
}

/// The referrers index under `tag` (its digest and JSON), `None` when there is none.
async fn referrers_index(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    tag: &str,
) -> Result<Option<(Digest, serde_json::Value)>> {
    match registry.resolve_tag(repo, tag).await {
        Ok(d) => {
            let m = registry.fetch_manifest(repo, &d.digest).await?;
            let index = serde_json::from_slice::<serde_json::Value>(&m.bytes)
                .map_err(|e| Error::invalid(format!("{repo}:{tag} is not an index: {e}")))?;
            Ok(Some((d.digest, index)))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The image's manifest, or a not-found error that says what cannot be signed.
async fn subject_manifest(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
) -> Result<wharf_core::registry::ManifestBytes> {
    registry.fetch_manifest(repo, image).await.map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            Error::not_found(format!(
                "cannot sign {repo}@{image}: no such image in the registry"
            ))
        } else {
            e
        }
    })
}

/// Sign `image` in `repo` as cosign 3 does: a v0.3 Sigstore bundle (DSSE, an in-toto
/// statement of type [`COSIGN_SIGN_PREDICATE`] about the image) stored as an OCI 1.1
/// referrer of the image; on a registry without the referrers API, the `sha256-<hex>` index
/// is updated so the referrer can be found. Idempotent like
/// [`crate::cosign::sign_image`].
pub async fn sign_image_bundle(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    signer: &dyn wharf_core::Signer,
    verifier: &dyn Verifier,
) -> Result<crate::cosign::SignOutcome> {
    sign_image_bundle_with(
        registry,
        repo,
        image,
        Trust::Key(verifier),
        async |statement| {
            let envelope = crate::dsse::sign_statement(statement, signer).await?;
            serde_json::to_vec(&keyed_bundle(&envelope, signer.key_id()))
                .map_err(|e| Error::internal(format!("bundle: {e}")))
        },
    )
    .await
}

/// Sign `image` unless a bundle signature `trust` accepts is there: `make` turns the
/// statement into a bundle, which is published as a referrer.
async fn sign_image_bundle_with(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    trust: Trust<'_>,
    make: impl AsyncFnOnce(&Statement) -> Result<Vec<u8>>,
) -> Result<crate::cosign::SignOutcome> {
    let subject = subject_manifest(registry, repo, image).await?;
    let (existing, _) = bundle_statements(registry, repo, image, trust).await?;
    if existing
        .iter()
        .any(|(s, _)| s.predicate_type == COSIGN_SIGN_PREDICATE)
    {
        return Ok(crate::cosign::SignOutcome::AlreadySigned);
    }
    let statement = Statement::about(repo, image, COSIGN_SIGN_PREDICATE, serde_json::json!({}));
    let bundle = make(&statement).await?;
    let digest = publish_bundle(
        registry,
        repo,
        image,
        &subject,
        bundle,
        COSIGN_SIGN_PREDICATE,
    )
    .await?;
    Ok(crate::cosign::SignOutcome::Added {
        signature_manifest: digest,
        signatures: existing.len() + 1,
    })
}

/// Sign `image` keylessly in cosign 3's format (see [`sign_image_bundle`]) as the
/// `session`'s identity: a Fulcio certificate, a `dsse` Rekor entry. Nothing is written when
/// a valid signature by the same identity is already there.
pub async fn sign_image_bundle_keyless(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    session: &crate::keyless::KeylessSession<'_>,
) -> Result<crate::cosign::SignOutcome> {
    let trust = Trust::Keyless {
        identity: session.identity(),
        root: session.root(),
    };
    sign_image_bundle_with(registry, repo, image, trust, async |statement| {
        session.sign_statement(statement).await
    })
    .await
}

/// Attest `image` keylessly: an in-toto statement (subject `repo` + the digest) with
/// `predicate` of `predicate_type`, in a v0.3 bundle stored as a referrer (cosign 3's
/// `attest`). Nothing is written when the same identity already attested the same predicate.
pub async fn attest_image_bundle_keyless(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    predicate_type: &str,
    predicate: serde_json::Value,
    session: &crate::keyless::KeylessSession<'_>,
) -> Result<crate::cosign::AttestOutcome> {
    let subject = subject_manifest(registry, repo, image).await?;
    let trust = Trust::Keyless {
        identity: session.identity(),
        root: session.root(),
    };
    let (existing, _) = bundle_statements(registry, repo, image, trust).await?;
    if existing
        .iter()
        .any(|(s, _)| s.predicate_type == predicate_type && s.predicate == predicate)
    {
        return Ok(crate::cosign::AttestOutcome::AlreadyAttested);
    }
    let statement = Statement::about(repo, image, predicate_type, predicate);
    let bundle = session.sign_statement(&statement).await?;
    let manifest = publish_bundle(registry, repo, image, &subject, bundle, predicate_type).await?;
    Ok(crate::cosign::AttestOutcome::Added {
        manifest,
        attestations: existing
            .iter()
            .filter(|(s, _)| s.predicate_type != COSIGN_SIGN_PREDICATE)
            .count()
            + 1,
    })
}

/// Verify `image`'s cosign 3 bundle signatures (referrers, or the tag-schema fallback):
/// the key ids of those that verify; none is an error naming why each failed.
pub async fn verify_image_bundle(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    verifier: &dyn Verifier,
) -> Result<Vec<String>> {
    verify_image_bundle_with(registry, repo, image, Trust::Key(verifier)).await
}

/// [`verify_image_bundle`] against any [`Trust`]: key ids, or for keyless the certificate
/// subjects, of the signatures that verify.
pub async fn verify_image_bundle_with(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    trust: Trust<'_>,
) -> Result<Vec<String>> {
    let (found, failures) = bundle_statements(registry, repo, image, trust).await?;
    let keys: Vec<String> = found
        .into_iter()
        .filter(|(s, _)| s.predicate_type == COSIGN_SIGN_PREDICATE)
        .map(|(_, k)| k)
        .collect();
    if keys.is_empty() {
        return Err(Error::integrity(format!(
            "no valid bundle signature for {repo}@{image}: {}",
            if failures.is_empty() {
                "no Sigstore bundle refers to it".to_owned()
            } else {
                failures.join("; ")
            }
        )));
    }
    Ok(keys)
}

/// The attestations stored as bundle referrers of `image` that verify with `trust`,
/// optionally only those of `predicate_type`; none is an error naming why each failed.
pub async fn verify_bundle_attestations(
    registry: &dyn wharf_core::Registry,
    repo: &str,
    image: &Digest,
    trust: Trust<'_>,
    predicate_type: Option<&str>,
) -> Result<Vec<crate::dsse::VerifiedAttestation>> {
    let (found, mut failures) = bundle_statements(registry, repo, image, trust).await?;
    let mut out = Vec::new();
    for (s, who) in found {
        if s.predicate_type == COSIGN_SIGN_PREDICATE {
            continue;
        }
        if predicate_type.is_some_and(|t| t != s.predicate_type) {
            failures.push(format!("predicate {}", s.predicate_type));
            continue;
        }
        out.push(crate::dsse::VerifiedAttestation::new(
            s.predicate_type,
            s.predicate,
            who,
        ));
    }
    if out.is_empty() {
        let what = predicate_type.map(|t| format!("{t} ")).unwrap_or_default();
        if failures.is_empty() {
            return Err(Error::not_found(format!(
                "no {what}bundle attestation for {repo}@{image}: no Sigstore bundle refers to it"
            )));
        }
        return Err(Error::integrity(format!(
            "no valid {what}bundle attestation for {repo}@{image}: {}",
            failures.join("; ")
        )));
    }
    Ok(out)
}
