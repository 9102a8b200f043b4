//! Cosign's legacy signature format: a "simple signing" payload naming the image digest,
//! signed, stored as a layer of an OCI image tagged `sha256-<hex>.sig` in the image's
//! repository, with the signature (and certificate, chain, Rekor bundle) in the layer's
//! annotations. What `cosign sign --key` writes and `cosign verify --key` reads.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions, TagPrecondition};
use wharf_core::sign::{SignOptions, Signature, Signer, Verifier, VerifyOptions};
use wharf_core::{Descriptor, Digest, Error, ErrorKind, ImageManifest, Registry, Result};

use crate::PublicKey;
use crate::Trust;
use crate::fulcio::Identity;
use crate::rekor::{RekorBundle, TrustedRoot, verify_bundle};
use crate::x509::Certificate;

/// The payload layer's media type.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The `critical.type` of an image signature payload.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
/// Annotation: the base64 signature over the payload.
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// Annotation: the signing certificate (PEM), keyless.
pub const ANNOTATION_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
/// Annotation: the certificate chain (PEM), keyless.
pub const ANNOTATION_CHAIN: &str = "dev.sigstore.cosign/chain";
/// Annotation: the Rekor bundle (signed entry timestamp and entry).
pub const ANNOTATION_BUNDLE: &str = "dev.sigstore.cosign/bundle";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The tag cosign stores an image's signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(image: &Digest) -> String {
    format!("{}.sig", image.tag_form())
}

/// The simple-signing payload: which image (by digest) under which name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimpleSigning {
    /// `critical.identity.docker-reference`: the repository the image was signed in.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: Digest,
    /// `optional`: extra claims (cosign's `-a key=value`).
    pub optional: BTreeMap<String, serde_json::Value>,
}

impl SimpleSigning {
    /// A payload for `digest` in `docker_reference` (e.g. `ghcr.io/acme/model`).
    pub fn new(docker_reference: impl Into<String>, manifest_digest: Digest) -> Self {
        Self {
            docker_reference: docker_reference.into(),
            manifest_digest,
            optional: BTreeMap::new(),
        }
    }

    /// The bytes cosign signs (its field order; `"optional":null` when empty).
    pub fn to_bytes(&self) -> Vec<u8> {
        let optional = if self.optional.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(&self.optional).unwrap_or(serde_json::Value::Null)
        };
        #[derive(Serialize)]
        struct Critical<'a> {
            identity: Identity<'a>,
            image: Image,
            #[serde(rename = "type")]
            kind: &'a str,
        }
        #[derive(Serialize)]
        struct Identity<'a> {
            #[serde(rename = "docker-reference")]
            docker_reference: &'a str,
        }
        #[derive(Serialize)]
        struct Image {
            #[serde(rename = "docker-manifest-digest")]
            digest: String,
        }
        #[derive(Serialize)]
        struct Payload<'a> {
            critical: Critical<'a>,
            optional: serde_json::Value,
        }
        serde_json::to_vec(&Payload {
            critical: Critical {
                identity: Identity {
                    docker_reference: &self.docker_reference,
                },
                image: Image {
                    digest: self.manifest_digest.to_string(),
                },
                kind: SIGNATURE_TYPE,
            },
            optional,
        })
        .unwrap_or_default()
    }

    /// Parse a payload; accepts `docker-manifest-digest` and the older
    /// `Docker-manifest-digest`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("signature payload is not JSON: {e}")))?;
        let critical = &v["critical"];
        let kind = critical["type"].as_str().unwrap_or_default();
        if kind != SIGNATURE_TYPE {
            return Err(Error::invalid(format!(
                "signature payload critical.type is {kind:?}, not {SIGNATURE_TYPE:?}"
            )));
        }
        let image = &critical["image"];
        let digest = image["docker-manifest-digest"]
            .as_str()
            .or_else(|| image["Docker-manifest-digest"].as_str())
            .ok_or_else(|| {
                Error::invalid("signature payload has no critical.image.docker-manifest-digest")
            })?;
        let manifest_digest: Digest = digest.parse().map_err(|e| {
            Error::invalid(format!(
                "signature payload docker-manifest-digest {digest:?}: {e}"
            ))
        })?;
        let docker_reference = critical["identity"]["docker-reference"]
            .as_str()
            .ok_or_else(|| {
                Error::invalid("signature payload has no critical.identity.docker-reference")
            })?
            .to_owned();
        let optional = match &v["optional"] {
            serde_json::Value::Object(m) => m.clone().into_iter().collect(),
            _ => BTreeMap::new(),
        };
        Ok(Self {
            docker_reference,
            manifest_digest,
            optional,
        })
    }
}

/// One layer of a cosign `.sig` image, read from its descriptor and blob: the
/// simple-signing payload with the signature, certificate and Rekor bundle annotations.
/// [`SignatureLayer::parse`] checks what a layer is before anything is verified, so a
/// layer that is not a signature says so instead of failing as a bad signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureLayer {
    /// The exact bytes that were signed (the layer's blob).
    pub payload: Vec<u8>,
    /// The parsed payload: which image digest and name it signs.
    pub simple_signing: SimpleSigning,
    /// The layer's annotations (`dev.cosignproject.cosign/signature`, and for keyless
    /// signatures `dev.sigstore.cosign/certificate`, `…/chain`, `…/bundle`).
    pub annotations: BTreeMap<String, String>,
}

impl SignatureLayer {
    /// Read the layer `descriptor` describes from its `blob`: an `Invalid` error "not a
    /// signature" when its media type is not cosign's simple signing or it has no
    /// signature annotation; `Integrity` when the blob is not the one the descriptor names.
    pub fn parse(descriptor: &wharf_core::Descriptor, blob: &[u8]) -> Result<Self> {
        let what = format!("layer {}", descriptor.digest);
        if descriptor.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
            return Err(Error::invalid(format!(
                "{what} is not a signature: its mediaType is {:?}, not {SIMPLE_SIGNING_MEDIA_TYPE}",
                descriptor.media_type
            )));
        }
        if !descriptor.annotations.contains_key(ANNOTATION_SIGNATURE) {
            return Err(Error::invalid(format!(
                "{what} is not a signature: it has no {ANNOTATION_SIGNATURE} annotation"
            )));
        }
        let actual = Digest::sha256_of(blob);
        if actual != descriptor.digest || blob.len() as u64 != descriptor.size {
            return Err(Error::integrity(format!(
                "{what}: the blob is {actual} ({} bytes), not the {} bytes its descriptor names",
                blob.len(),
                descriptor.size
            )));
        }
        Ok(Self {
            simple_signing: SimpleSigning::parse(blob)?,
            payload: blob.to_vec(),
            annotations: descriptor.annotations.clone(),
        })
    }

    /// Whether it is a keyless signature (it carries a Fulcio certificate).
    pub fn is_keyless(&self) -> bool {
        self.annotations.contains_key(ANNOTATION_CERTIFICATE)
    }

    /// Verify it for `image` with `trust` and `req`, as [`verify_image_with`] does each layer.
    pub async fn verify(
        &self,
        image: &Digest,
        trust: Trust<'_>,
        req: &Requirements<'_>,
    ) -> Result<VerifiedSignature> {
        verify_layer(&self.payload, &self.annotations, image, trust, req).await
    }
}

/// What a caller requires of a signature beyond a valid signature over the right digest.
/// `Requirements::new()` requires nothing more (any reference, no log entry).
///
/// ```
/// use wharf_sign::cosign::{ReferenceMatch, Requirements};
/// let req = Requirements::new().reference(ReferenceMatch::Repository("ghcr.io/acme/model"));
/// assert!(req.accepts_reference("ghcr.io/acme/model:v1"));
/// assert!(!req.accepts_reference("ghcr.io/evil/model"));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Requirements<'a> {
    /// How the payload's `docker-reference` must match (default: any).
    pub reference: ReferenceMatch<'a>,
    /// A Rekor bundle must be present and its signed entry timestamp verify with this key.
    pub rekor_key: Option<&'a PublicKey>,
}

impl<'a> Requirements<'a> {
    /// Nothing beyond a valid signature over the right digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Require the payload's `docker-reference` to match as `reference` says.
    pub fn reference(mut self, reference: ReferenceMatch<'a>) -> Self {
        self.reference = reference;
        self
    }

    /// Require a Rekor bundle whose signed entry timestamp verifies with `key`.
    pub fn rekor_key(mut self, key: &'a PublicKey) -> Self {
        self.rekor_key = Some(key);
        self
    }

    /// Whether a payload naming `docker_reference` meets [`Requirements::reference`].
    pub fn accepts_reference(&self, docker_reference: &str) -> bool {
        self.reference.accepts(docker_reference)
    }
}

/// How a signature payload's `docker-reference` (the name the signer gave the image) must
/// match, after containers/image's `signedIdentity` rules. The digest is always checked
/// separately: these only decide which *names* a signature may carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReferenceMatch<'a> {
    /// Any name (cosign's behaviour: the digest is what is signed).
    #[default]
    Any,
    /// Exactly this string (`ghcr.io/acme/model`, or with a tag or digest if the signer
    /// wrote one) — containers/image `matchExact`.
    Exact(&'a str),
    /// The same repository, whatever tag or digest follows it: `ghcr.io/acme/model` accepts
    /// `ghcr.io/acme/model`, `…:v1` and `…@sha256:…` (cosign 3 writes the digest) —
    /// containers/image `matchRepository`.
    Repository(&'a str),
}

impl ReferenceMatch<'_> {
    /// Whether `docker_reference` matches.
    pub fn accepts(&self, docker_reference: &str) -> bool {
        match self {
            ReferenceMatch::Any => true,
            ReferenceMatch::Exact(r) => docker_reference == *r,
            ReferenceMatch::Repository(r) => repository_of(docker_reference) == repository_of(r),
        }
    }
}

/// `host/path` of a reference: without `@digest` and without a `:tag` after the last `/`.
fn repository_of(reference: &str) -> &str {
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

/// One signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedSignature {
    /// The payload it signs.
    pub payload: SimpleSigning,
    /// The key or identity that signed.
    pub key_id: String,
    /// The Rekor entry's integrated time (seconds since the epoch), when a bundle verified.
    pub integrated_time: Option<i64>,
    /// The Rekor entry's log index.
    pub log_index: Option<u64>,
}

/// Verify one signature: `payload` (the exact signed bytes) and its layer `annotations`,
/// for the image `expected`. Fails with a specific error for a bad signature, a payload
/// for another digest or repository, or a bundle that does not verify or match.
pub async fn verify_payload(
    payload: &[u8],
    annotations: &BTreeMap<String, String>,
    expected: &Digest,
    verifier: &dyn Verifier,
    req: &Requirements<'_>,
) -> Result<VerifiedSignature> {
    let sig_b64 = annotations.get(ANNOTATION_SIGNATURE).ok_or_else(|| {
        Error::invalid(format!(
            "the signature layer has no {ANNOTATION_SIGNATURE} annotation"
        ))
    })?;
    let sig_bytes = crate::b64::decode(sig_b64.trim()).map_err(|e| {
        Error::invalid(format!(
            "the {ANNOTATION_SIGNATURE} annotation is not base64: {e}"
        ))
    })?;
    let sig = Signature::new(sig_bytes, crate::ALGORITHM, "");
    let verified = verifier
        .verify(payload, &sig, &VerifyOptions::default())
        .await?;
    let parsed = check_payload(payload, expected, req.reference)?;
    let (mut integrated_time, mut log_index) = (None, None);
    match (annotations.get(ANNOTATION_BUNDLE), req.rekor_key) {
        (Some(bundle), Some(rekor)) => {
            let bundle = RekorBundle::parse(bundle)?;
            verify_bundle(&bundle, rekor, payload, sig_b64.trim()).await?;
            integrated_time = Some(bundle.payload.integrated_time);
            log_index = Some(bundle.payload.log_index);
        }
        (None, Some(_)) => {
            return Err(Error::integrity(
                "the signature has no Rekor bundle, and a transparency-log entry is required",
            ));
        }
        _ => {}
    }
    Ok(VerifiedSignature {
        payload: parsed,
        key_id: verified.key_id,
        integrated_time,
        log_index,
    })
}

/// Verify one keyless signature (cosign `--certificate-identity … --certificate-oidc-issuer
/// …`): the signature verifies with the certificate in the layer's
/// `dev.sigstore.cosign/certificate` annotation; its Rekor bundle verifies with a log of
/// `root` and records this signature; the certificate (with the `…/chain` annotation)
/// chains to an authority of `root` at the logged time, carries a valid SCT and was issued
/// to `identity`. The result's `key_id` is the certificate's subject.
pub async fn verify_payload_keyless(
    payload: &[u8],
    annotations: &BTreeMap<String, String>,
    expected: &Digest,
    identity: &Identity,
    root: &TrustedRoot,
    reference: ReferenceMatch<'_>,
) -> Result<VerifiedSignature> {
    let annotation = |name: &str| {
        annotations.get(name).ok_or_else(|| {
            Error::invalid(format!(
                "the signature layer has no {name} annotation: it is not a keyless signature"
            ))
        })
    };
    let sig_b64 = annotation(ANNOTATION_SIGNATURE)?.trim();
    let sig = crate::b64::decode(sig_b64).map_err(|e| {
        Error::invalid(format!(
            "the {ANNOTATION_SIGNATURE} annotation is not base64: {e}"
        ))
    })?;
    let leaf =
        Certificate::from_pem_chain(annotation(ANNOTATION_CERTIFICATE)?, ANNOTATION_CERTIFICATE)?
            .remove(0);
    let chain = match annotations.get(ANNOTATION_CHAIN) {
        Some(pem) => Certificate::from_pem_chain(pem, ANNOTATION_CHAIN)?,
        None => Vec::new(),
    };
    crate::fulcio::verify_with_certificate(&leaf, payload, &sig)?;
    let parsed = check_payload(payload, expected, reference)?;
    let bundle = RekorBundle::parse(annotation(ANNOTATION_BUNDLE)?)?;
    let log_id = crate::rekor::log_id_bytes(&bundle)?;
    let log = root.log(&log_id).ok_or_else(|| {
        Error::integrity(format!(
            "the Rekor bundle is from log {}, which is not in the trusted root",
            bundle.payload.log_id
        ))
    })?;
    verify_bundle(&bundle, &log.key, payload, sig_b64).await?;
    let cert = crate::fulcio::verify_certificate(
        &leaf,
        &chain,
        root,
        bundle.payload.integrated_time,
        identity,
    )?;
    Ok(VerifiedSignature {
        payload: parsed,
        key_id: cert.subject,
        integrated_time: Some(bundle.payload.integrated_time),
        log_index: Some(bundle.payload.log_index),
    })
}

/// Parse a simple-signing payload and check it names `expected` (and `docker_reference`).
fn check_payload(
    payload: &[u8],
    expected: &Digest,
    reference: ReferenceMatch<'_>,
) -> Result<SimpleSigning> {
    let parsed = SimpleSigning::parse(payload)?;
    if &parsed.manifest_digest != expected {
        return Err(Error::integrity(format!(
            "the signature is for {}, not for {expected}",
            parsed.manifest_digest
        )));
    }
    if !reference.accepts(&parsed.docker_reference) {
        let wanted = match reference {
            ReferenceMatch::Exact(r) => format!("{r:?} exactly"),
            ReferenceMatch::Repository(r) => format!("repository {:?}", repository_of(r)),
            ReferenceMatch::Any => "any".to_owned(),
        };
        return Err(Error::integrity(format!(
            "the signature names repository {:?}, not {wanted}",
            parsed.docker_reference
        )));
    }
    Ok(parsed)
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

/// Verify one signature layer against `trust`.
async fn verify_layer(
    payload: &[u8],
    annotations: &BTreeMap<String, String>,
    image: &Digest,
    trust: Trust<'_>,
    req: &Requirements<'_>,
) -> Result<VerifiedSignature> {
    match trust {
        Trust::Key(verifier) => verify_payload(payload, annotations, image, verifier, req).await,
        Trust::Keyless { identity, root } => {
            verify_payload_keyless(payload, annotations, image, identity, root, req.reference).await
        }
    }
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

#[cfg(test)]
mod tests {
    use super::ReferenceMatch;

    #[test]
    fn references_match_exactly_by_repository_or_at_all() {
        let repo = ReferenceMatch::Repository("127.0.0.1:5000/acme/model");
        for ok in [
            "127.0.0.1:5000/acme/model",
            "127.0.0.1:5000/acme/model:v1",
            "127.0.0.1:5000/acme/model@sha256:0123",
            "127.0.0.1:5000/acme/model:v1@sha256:0123",
        ] {
            assert!(repo.accepts(ok), "{ok}");
        }
        for refused in [
            "127.0.0.1:5000/acme/model2",
            "127.0.0.1:5001/acme/model",
            "127.0.0.1:5000/acme",
            "127.0.0.1:5000/acme/model/sub",
        ] {
            assert!(!repo.accepts(refused), "{refused}");
        }
        // A tag in the required reference is ignored too: it names the repository.
        assert!(ReferenceMatch::Repository("ghcr.io/a/m:latest").accepts("ghcr.io/a/m:v2"));
        let exact = ReferenceMatch::Exact("ghcr.io/a/m");
        assert!(exact.accepts("ghcr.io/a/m"));
        assert!(!exact.accepts("ghcr.io/a/m:v1"));
        assert!(ReferenceMatch::Any.accepts("anything/at/all"));
    }
}
