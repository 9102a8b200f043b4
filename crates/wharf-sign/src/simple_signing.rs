//! Cosign's simple-signing format and its offline verification: the payload naming an image
//! digest, the annotations a signature layer carries (signature, Fulcio certificate and
//! chain, Rekor bundle), what a verifier requires of a signature, and checking one layer
//! against a key or a keyless identity and trust root. Where the layers are stored (the
//! `sha256-<hex>.sig` image) is `cosign`; this module knows nothing of registries.

use std::collections::BTreeMap;

use serde::Serialize;
use wharf_core::sign::{Signature, Verifier, VerifyOptions};
use wharf_core::{Digest, Error, Result};

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

    /// Verify it for `image` with `trust` and `req`, as [`crate::cosign::verify_image_with`] does each layer.
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
    let (leaf, chain) = certificate_and_chain(annotation(ANNOTATION_CERTIFICATE)?, annotations)?;
    crate::fulcio::verify_with_certificate(&leaf, payload, &sig)?;
    let parsed = check_payload(payload, expected, reference)?;
    // The log entry, unless the root says to do without (one's own PKI): then the
    // certificate must be valid now.
    let logged = if root.ignores_tlog() {
        None
    } else {
        let bundle = RekorBundle::parse(annotation(ANNOTATION_BUNDLE)?)?;
        let log = root.log_of(&bundle)?;
        crate::bundle::check_log_valid_at(log, bundle.payload.integrated_time)?;
        verify_bundle(&bundle, &log.key, payload, sig_b64).await?;
        Some(bundle.payload)
    };
    let at = logged
        .as_ref()
        .map_or_else(now_unix, |entry| entry.integrated_time);
    let cert = crate::fulcio::verify_certificate(&leaf, &chain, root, at, identity)?;
    Ok(VerifiedSignature {
        payload: parsed,
        key_id: cert.subject,
        integrated_time: logged.as_ref().map(|entry| entry.integrated_time),
        log_index: logged.as_ref().map(|entry| entry.log_index),
    })
}

/// The signing certificate (the first of the `certificate` annotation's PEM) and the chain
/// the layer's `dev.sigstore.cosign/chain` annotation carries (none: empty).
pub(crate) fn certificate_and_chain(
    certificate: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<(Certificate, Vec<Certificate>)> {
    let leaf = Certificate::from_pem_chain(certificate, ANNOTATION_CERTIFICATE)?.remove(0);
    let chain = match annotations.get(ANNOTATION_CHAIN) {
        Some(pem) => Certificate::from_pem_chain(pem, ANNOTATION_CHAIN)?,
        None => Vec::new(),
    };
    Ok((leaf, chain))
}

/// Now, in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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

/// Verify one signature layer against `trust`.
pub(crate) async fn verify_layer(
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
