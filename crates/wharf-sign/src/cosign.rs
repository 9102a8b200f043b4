//! Cosign's legacy signature format: a "simple signing" payload naming the image digest,
//! signed, stored as a layer of an OCI image tagged `sha256-<hex>.sig` in the image's
//! repository, with the signature (and certificate, chain, Rekor bundle) in the layer's
//! annotations. What `cosign sign --key` writes and `cosign verify --key` reads.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions, TagPrecondition};
use wharf_core::sign::{SignOptions, Signer, Verifier};
use wharf_core::{Descriptor, Digest, Error, ErrorKind, ImageManifest, Registry, Result};

use crate::PublicKey;
use crate::Trust;
use crate::fulcio::Identity;
use crate::rekor::TrustedRoot;
use crate::simple_signing::verify_layer;

pub use crate::simple_signing::{
    ANNOTATION_BUNDLE, ANNOTATION_CERTIFICATE, ANNOTATION_CHAIN, ANNOTATION_SIGNATURE,
    ReferenceMatch, Requirements, SIGNATURE_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer,
    SimpleSigning, VerifiedSignature, verify_payload, verify_payload_keyless,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The tag cosign stores an image's signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(image: &Digest) -> String {
    format!("{}.sig", image.tag_form())
}

/// The outcome of [`sign_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignOutcome {
    /// A signature was added; the signature image is now this manifest.
    Added {
        /// The `.sig` manifest's digest.
        signature_manifest: Digest,
        /// Signatures it holds now.
        signatures: usize,
    },
    /// A valid signature by the same key was already there: nothing was written.
    AlreadySigned,
}

/// The outcome of [`crate::attest::attest_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestOutcome {
    /// The attestation was added; the `.att` image is now this manifest.
    Added {
        /// The `.att` manifest's digest.
        manifest: Digest,
        /// Attestations it holds now.
        attestations: usize,
    },
    /// The same key already attested the same predicate for this image: nothing written.
    AlreadyAttested,
}

/// An image to sign or verify: the repository it is in, its manifest digest, and the name
/// signatures give it (`critical.identity.docker-reference`: `host/repository` for a
/// registry; the repository alone by default, as for an OCI layout).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageRef {
    /// The repository (`models/fraud-detector`).
    pub repo: String,
    /// The image manifest's digest.
    pub digest: Digest,
    /// The name signatures carry.
    pub docker_reference: String,
}

impl ImageRef {
    /// `repo@digest`, named `repo` in signatures.
    pub fn new(repo: impl Into<String>, digest: Digest) -> Self {
        let repo = repo.into();
        Self {
            docker_reference: repo.clone(),
            repo,
            digest,
        }
    }

    /// Name the image `reference` in signatures (`registry.example.com/models/fraud`).
    pub fn with_docker_reference(mut self, reference: impl Into<String>) -> Self {
        self.docker_reference = reference.into();
        self
    }
}

impl crate::EcdsaP256Key {
    /// Sign `image` in `registry` as `cosign sign --key` does ([`sign_image`] with this
    /// key's public half as the verifier).
    pub async fn sign_image(
        &self,
        registry: &dyn Registry,
        image: &ImageRef,
    ) -> Result<SignOutcome> {
        sign_image(
            registry,
            &image.repo,
            &image.digest,
            &image.docker_reference,
            self,
            self.public_key(),
        )
        .await
    }
}

impl PublicKey {
    /// The signatures on `image` that this key made and that name the image as
    /// `image.docker_reference` ([`verify_image`]); none is an error saying why.
    pub async fn verify_image(
        &self,
        registry: &dyn Registry,
        image: &ImageRef,
    ) -> Result<Vec<VerifiedSignature>> {
        let req =
            Requirements::new().reference(ReferenceMatch::Repository(&image.docker_reference));
        verify_image(registry, &image.repo, &image.digest, self, &req).await
    }
}

/// Sign `image` in `repo` as cosign does: add a layer holding the simple-signing payload
/// (naming `docker_reference`) and its signature to the image tagged `sha256-<hex>.sig`,
/// keeping the signatures already there. Idempotent: when a signature that `verifier` (the
/// signer's public key) accepts for this image is already there, nothing is written.
pub async fn sign_image(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    docker_reference: &str,
    signer: &dyn Signer,
    verifier: &dyn Verifier,
) -> Result<SignOutcome> {
    sign_image_with(
        registry,
        repo,
        image,
        docker_reference,
        Trust::Key(verifier),
        async |payload: &[u8]| {
            let sig = signer.sign(payload, &SignOptions::default()).await?;
            let mut annotations = BTreeMap::new();
            annotations.insert(ANNOTATION_SIGNATURE.to_owned(), STANDARD.encode(&sig.bytes));
            if let Some(cert) = &sig.certificate {
                annotations.insert(ANNOTATION_CERTIFICATE.to_owned(), cert.clone());
            }
            if let Some(chain) = &sig.chain {
                annotations.insert(ANNOTATION_CHAIN.to_owned(), chain.clone());
            }
            Ok(annotations)
        },
    )
    .await
}

/// Sign `image` unless a signature `trust` accepts is there: `annotate` signs the payload
/// into the layer's annotations, and the layer is added to the `.sig` image.
async fn sign_image_with(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    docker_reference: &str,
    trust: Trust<'_>,
    annotate: impl AsyncFnOnce(&[u8]) -> Result<BTreeMap<String, String>>,
) -> Result<SignOutcome> {
    ensure_image(registry, repo, image).await?;
    let tag = signature_tag(image);
    let existing = existing_layers(registry, repo, &tag, SIMPLE_SIGNING_MEDIA_TYPE).await?;
    if let Some((_, layers)) = &existing {
        for (desc, payload) in layers {
            let unchecked = Requirements::default();
            if verify_layer(payload, &desc.annotations, image, trust, &unchecked)
                .await
                .is_ok()
            {
                return Ok(SignOutcome::AlreadySigned);
            }
        }
    }
    let payload = SimpleSigning::new(docker_reference, image.clone()).to_bytes();
    let annotations = annotate(&payload).await?;
    let (signature_manifest, signatures) = append_layer(
        registry,
        repo,
        &tag,
        existing.map(|(m, _)| m),
        SIMPLE_SIGNING_MEDIA_TYPE,
        payload,
        annotations,
    )
    .await?;
    Ok(SignOutcome::Added {
        signature_manifest,
        signatures,
    })
}

/// Fail unless `image` is a manifest in `repo`: a digest nobody pushed is a mistake upstream.
pub(crate) async fn ensure_image(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
) -> Result<()> {
    registry
        .fetch_manifest(repo, image)
        .await
        .map(|_| ())
        .map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::not_found(format!(
                    "cannot sign {repo}@{image}: no such image in the registry"
                ))
            } else {
                e
            }
        })
}

/// How many times adding a layer re-reads the tag and merges again after losing a race.
const MAX_MERGES: usize = 64;

/// Add a layer (`payload` of `media_type` with `annotations`) to the image tagged `tag`
/// (`existing` is what was read there, if anything), as cosign does: the config is an empty
/// image whose rootfs lists the layers. Returns the new manifest's digest and its number of
/// layers.
///
/// Concurrent signers must not drop each other's layer, so this is a read-modify-write: the
/// manifest is pushed only if the tag still holds what was read
/// ([`TagPrecondition::Holds`], atomic in the OCI layout); when another writer got there
/// first, the tag is read again and the layer merged into what it holds now. After the
/// write the tag is read back, and the merge repeats until the layer is there (a registry
/// without conditional updates can lose a write to a concurrent one).
pub(crate) async fn append_layer(
    registry: &dyn Registry,
    repo: &str,
    tag: &str,
    existing: Option<(Digest, ImageManifest)>,
    media_type: &str,
    payload: Vec<u8>,
    annotations: BTreeMap<String, String>,
) -> Result<(Digest, usize)> {
    let payload_digest = Digest::sha256_of(&payload);
    let payload_len = payload.len() as u64;
    registry
        .push_blob(
            repo,
            &payload_digest,
            wharf_core::registry::blob_stream_from(payload),
            &PushBlobOptions::default(),
        )
        .await?;
    let mut layer = Descriptor::new(media_type, payload_digest, payload_len);
    layer.annotations = annotations;
    let mut read = existing;
    for _ in 0..MAX_MERGES {
        let mut layers: Vec<Descriptor> = read
            .as_ref()
            .map(|(_, m)| m.layers.clone())
            .unwrap_or_default();
        if !layers.contains(&layer) {
            layers.push(layer.clone());
        }
        let manifest = signature_manifest(registry, repo, &layers).await?;
        let digest = manifest.descriptor.digest.clone();
        let condition = TagPrecondition::unchanged_from(read.as_ref().map(|(d, _)| d));
        match registry
            .push_manifest(
                repo,
                &manifest,
                &PushManifestOptions::tagged(tag).if_tag(condition),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {
                read = current_manifest(registry, repo, tag).await?;
                continue;
            }
            Err(e) => return Err(e),
        }
        // Read back: a concurrent writer on a registry without conditional updates may
        // have replaced what was just written.
        read = current_manifest(registry, repo, tag).await?;
        if let Some((now, m)) = &read
            && m.layers.contains(&layer)
        {
            let count = if *now == digest {
                layers.len()
            } else {
                m.layers.len()
            };
            return Ok((now.clone(), count));
        }
    }
    Err(Error::conflict(format!(
        "{repo}:{tag} kept changing: {MAX_MERGES} attempts to add a layer lost the race to other writers; run again"
    )))
}

/// The cosign signature image over `layers`: its config blob pushed, the manifest returned.
async fn signature_manifest(
    registry: &dyn Registry,
    repo: &str,
    layers: &[Descriptor],
) -> Result<ManifestBytes> {
    let config = serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        },
        "config": {},
    });
    let config = serde_json::to_vec(&config)
        .map_err(|e| Error::internal(format!("signature config: {e}")))?;
    let config_digest = Digest::sha256_of(&config);
    let config_len = config.len();
    registry
        .push_blob(
            repo,
            &config_digest,
            wharf_core::registry::blob_stream_from(config),
            &PushBlobOptions::default(),
        )
        .await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config_len, "digest": config_digest.to_string()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest)
        .map_err(|e| Error::internal(format!("signature manifest: {e}")))?;
    Ok(ManifestBytes::new(OCI_MANIFEST, bytes))
}

/// The manifest `tag` holds now, with its digest; `None` when there is no such tag.
pub(crate) async fn current_manifest(
    registry: &dyn Registry,
    repo: &str,
    tag: &str,
) -> Result<Option<(Digest, ImageManifest)>> {
    let desc = match registry.resolve_tag(repo, tag).await {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let m = registry.fetch_manifest(repo, &desc.digest).await?;
    let manifest = ImageManifest::from_slice(&m.bytes, &format!("{repo}:{tag}"))?;
    Ok(Some((desc.digest, manifest)))
}

/// What a tag holds (its digest and manifest) and the payload of each of its layers of one
/// media type.
pub(crate) type ExistingLayers = ((Digest, ImageManifest), Vec<(Descriptor, Vec<u8>)>);

/// The manifest under `tag` and the payload of each of its `media_type` layers (digests
/// checked), `None` when there is no such tag.
pub(crate) async fn existing_layers(
    registry: &dyn Registry,
    repo: &str,
    tag: &str,
    media_type: &str,
) -> Result<Option<ExistingLayers>> {
    let Some((digest, manifest)) = current_manifest(registry, repo, tag).await? else {
        return Ok(None);
    };
    let mut layers = Vec::new();
    for layer in &manifest.layers {
        if layer.media_type != media_type {
            continue;
        }
        let blob = registry.fetch_blob(repo, &layer.digest).await?;
        let bytes = wharf_core::registry::collect_blob(blob, 4 << 20).await?;
        if Digest::sha256_of(&bytes) != layer.digest {
            return Err(Error::integrity(format!(
                "layer {} of {repo}:{tag} does not match its digest",
                layer.digest
            )));
        }
        layers.push((layer.clone(), bytes.to_vec()));
    }
    Ok(Some(((digest, manifest), layers)))
}

/// Sign `image` keylessly in cosign's legacy format as the `session`'s identity: the
/// `.sig` layer carries the signature, the Fulcio certificate and chain, and the Rekor
/// bundle of a `hashedrekord` entry. Nothing is written when a valid signature by the same
/// identity is already there.
pub async fn sign_image_keyless(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    docker_reference: &str,
    session: &crate::keyless::KeylessSession<'_>,
) -> Result<SignOutcome> {
    let trust = Trust::Keyless {
        identity: session.identity(),
        root: session.root(),
    };
    sign_image_with(
        registry,
        repo,
        image,
        docker_reference,
        trust,
        async |payload: &[u8]| session.sign_legacy(payload).await,
    )
    .await
}

/// Verify the cosign signatures of `image` in `repo`: every signature layer under
/// `sha256-<hex>.sig` is checked; the ones that verify are returned. No signature, or none
/// that verifies, is an error naming why each failed — verification never passes by default.
pub async fn verify_image(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    verifier: &dyn Verifier,
    req: &Requirements<'_>,
) -> Result<Vec<VerifiedSignature>> {
    verify_image_with(registry, repo, image, Trust::Key(verifier), req).await
}

/// [`verify_image`] for keyless signatures: each is checked with
/// [`verify_payload_keyless`] against `identity` and `root`.
pub async fn verify_image_keyless(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    identity: &Identity,
    root: &TrustedRoot,
    reference: ReferenceMatch<'_>,
) -> Result<Vec<VerifiedSignature>> {
    let req = Requirements::new().reference(reference);
    verify_image_with(
        registry,
        repo,
        image,
        Trust::Keyless { identity, root },
        &req,
    )
    .await
}

/// Verify `image`'s legacy signatures against `trust`.
pub async fn verify_image_with(
    registry: &dyn Registry,
    repo: &str,
    image: &Digest,
    trust: Trust<'_>,
    req: &Requirements<'_>,
) -> Result<Vec<VerifiedSignature>> {
    let tag = signature_tag(image);
    let Some((_, layers)) =
        existing_layers(registry, repo, &tag, SIMPLE_SIGNING_MEDIA_TYPE).await?
    else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("{repo}@{image} has no cosign signature ({repo}:{tag} does not exist)"),
        ));
    };
    let mut verified = Vec::new();
    let mut failures = Vec::new();
    for (i, (desc, payload)) in layers.iter().enumerate() {
        match verify_layer(payload, &desc.annotations, image, trust, req).await {
            Ok(v) => verified.push(v),
            Err(e) => failures.push(format!("signature {}: {e}", i + 1)),
        }
    }
    if verified.is_empty() {
        return Err(Error::integrity(format!(
            "no valid signature for {repo}@{image}: {}",
            if failures.is_empty() {
                "the signature image holds no signature layer".to_owned()
            } else {
                failures.join("; ")
            }
        )));
    }
    Ok(verified)
}
