//! Sigstore bundles (v0.1–v0.3): parsing, and offline verification of bundles signed with a
//! public key — the signature over the artifact, and its transparency-log entry: the entry
//! records this signature and digest, its signed entry timestamp verifies, its inclusion
//! proof leads to the root of a checkpoint the log signed (keys from `trusted_root.json`).
//!
//! Keyless bundles (a Fulcio certificate) verify by certificate identity and issuer: the
//! certificate chains to an authority of the trusted root at the logged time, with an SCT
//! from one of its CT logs (see [`crate::fulcio`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use wharf_core::sign::{Signature, Verifier, VerifyOptions};
use wharf_core::{Digest, Error, ErrorKind, Result};

use crate::PublicKey;
use crate::dsse::{Envelope, Statement, pae};
use crate::fulcio::{Identity, VerifiedCertificate, verify_certificate, verify_with_certificate};
use crate::rekor::{
    TrustedRoot, leaf_hash, root_from_inclusion_proof, verify_checkpoint, verify_set,
};
use crate::x509::Certificate;

/// The bundle versions this module reads.
const MEDIA_TYPES: &[&str] = &[
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
];

/// A parsed Sigstore bundle.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Bundle {
    /// Its media type (version).
    pub media_type: String,
    /// What verifies it.
    pub verification_material: VerificationMaterial,
    /// A signature over an artifact's digest.
    #[serde(default)]
    pub message_signature: Option<MessageSignature>,
    /// A DSSE envelope (attestations).
    #[serde(default)]
    pub dsse_envelope: Option<serde_json::Value>,
}

/// `verificationMaterial`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct VerificationMaterial {
    /// A public-key hint (keyed signing).
    #[serde(default)]
    pub public_key: Option<serde_json::Value>,
    /// A certificate (v0.3).
    #[serde(default)]
    pub certificate: Option<serde_json::Value>,
    /// A certificate chain (v0.1, v0.2).
    #[serde(default)]
    pub x509_certificate_chain: Option<serde_json::Value>,
    /// Transparency-log entries.
    #[serde(default)]
    pub tlog_entries: Vec<TlogEntry>,
}

/// `messageSignature`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MessageSignature {
    /// The artifact's digest.
    pub message_digest: MessageDigest,
    /// The signature, base64.
    pub signature: String,
}

/// `messageDigest`.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct MessageDigest {
    /// `SHA2_256`.
    pub algorithm: String,
    /// The digest, base64.
    pub digest: String,
}

/// A transparency-log entry (protobuf JSON: 64-bit integers are strings).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TlogEntry {
    /// The entry's index in the log.
    pub log_index: String,
    /// `{keyId}`: the log's id, base64.
    pub log_id: serde_json::Value,
    /// `{kind, version}`.
    pub kind_version: serde_json::Value,
    /// When the log integrated the entry.
    pub integrated_time: String,
    /// `{signedEntryTimestamp}`.
    #[serde(default)]
    pub inclusion_promise: Option<serde_json::Value>,
    /// `{logIndex, rootHash, treeSize, hashes, checkpoint}`.
    #[serde(default)]
    pub inclusion_proof: Option<serde_json::Value>,
    /// The entry body, base64 canonical JSON.
    pub canonicalized_body: String,
}

impl Bundle {
    /// Parse a bundle; an unknown version or malformed JSON is an `Invalid` error.
    pub fn parse(json: &[u8], origin: &str) -> Result<Self> {
        let bundle: Bundle = serde_json::from_slice(json)
            .map_err(|e| Error::invalid(format!("{origin}: not a Sigstore bundle: {e}")))?;
        if !MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
            return Err(Error::invalid(format!(
                "{origin}: bundle media type {:?} is not a version this verifier knows (0.1–0.3)",
                bundle.media_type
            )));
        }
        Ok(bundle)
    }
}

/// Who must have signed a bundle.
#[derive(Clone, Copy)]
pub enum SignedBy<'a> {
    /// A key (a key file's public half, a KMS key).
    Key(&'a dyn Verifier),
    /// A Fulcio certificate of the trusted root, issued to this identity (keyless).
    Identity(&'a Identity),
}

/// What a bundle must be about.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact's bytes (a message signature is over them).
    Bytes(&'a [u8]),
    /// The artifact's digest (a DSSE statement names it as a subject; an image by digest).
    Digest(&'a Digest),
}

impl Artifact<'_> {
    fn digest(&self) -> Digest {
        match self {
            Self::Bytes(b) => Digest::sha256_of(b),
            Self::Digest(d) => (*d).clone(),
        }
    }
}

/// What a verified bundle established.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedBundle {
    /// The signing key's id (`sha256:` of its SubjectPublicKeyInfo; for keyless, the
    /// certificate's key).
    pub key_id: String,
    /// The log entry's index; `None` when the trust root does without a log
    /// ([`TrustedRoot::insecure_ignore_tlog`]) and the entry was not checked.
    pub log_index: Option<u64>,
    /// When the log integrated it (Unix seconds); `None` as for `log_index`, and the
    /// certificate was then checked at the time of verification.
    pub integrated_time: Option<i64>,
    /// For keyless bundles: the certificate's identity, issuer and authority.
    pub certificate: Option<VerifiedCertificate>,
    /// For DSSE bundles: the in-toto statement.
    pub statement: Option<Statement>,
}

fn int(v: &str, field: &str) -> Result<i64> {
    let n: i64 = v
        .parse()
        .map_err(|_| Error::invalid(format!("bundle {field} {v:?} is not a number")))?;
    if n < 0 {
        return Err(Error::invalid(format!("bundle {field} {n} is negative")));
    }
    Ok(n)
}

fn b64(v: &serde_json::Value, field: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(v.as_str().unwrap_or_default())
        .map_err(|e| Error::invalid(format!("bundle {field} is not base64: {e}")))
}

fn b64s(v: &str, field: &str) -> Result<Vec<u8>> {
    crate::b64::decode(v).map_err(|e| Error::invalid(format!("bundle {field} is not base64: {e}")))
}

/// Verify a message-signature `bundle` over `artifact`, signed with `key` — any
/// [`Verifier`]: a key file's [`PublicKey`], a KMS key — (`None` when the caller has none:
/// a keyed bundle then fails), its log entry checked offline against `root`'s logs.
pub async fn verify_with_key(
    bundle: &Bundle,
    artifact: &[u8],
    key: Option<&dyn Verifier>,
    root: &TrustedRoot,
) -> Result<VerifiedBundle> {
    if bundle.certificate_chain()?.is_some() {
        return verify(bundle, Artifact::Bytes(artifact), None, root).await;
    }
    let key = key.ok_or_else(|| {
        Error::invalid("the bundle is signed with a key and no public key was given to verify it")
    })?;
    verify(
        bundle,
        Artifact::Bytes(artifact),
        Some(SignedBy::Key(key)),
        root,
    )
    .await
}

/// The SHA-256 of the file at `path`, read in 1 MiB pieces: a model file of any size is
/// hashed without being held in memory. Errors name the path.
pub fn digest_file(path: &std::path::Path) -> Result<Digest> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let mut hasher = wharf_core::digest::Hasher::new(wharf_core::Algorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Verify `bundle` over the file at `path` — a message signature (`cosign sign-blob
/// --bundle`, sigstore `sign`) or a DSSE statement about it — hashing the file as it
/// streams, so a multi-gigabyte model is never read into memory; then as [`verify`].
/// Message signatures verify from the digest with ECDSA and RSA keys (not Ed25519).
pub async fn verify_file(
    bundle: &Bundle,
    path: &std::path::Path,
    signed_by: SignedBy<'_>,
    root: &TrustedRoot,
) -> Result<VerifiedBundle> {
    let owned = path.to_owned();
    let digest = wharf_core::blocking::unblock(move || digest_file(&owned)).await?;
    verify(bundle, Artifact::Digest(&digest), Some(signed_by), root).await
}

/// [`verify_with_key`] as a plain function: offline verification does no I/O, so it needs
/// no executor.
pub fn verify_with_key_blocking(
    bundle: &Bundle,
    artifact: &[u8],
    key: Option<&dyn Verifier>,
    root: &TrustedRoot,
) -> Result<VerifiedBundle> {
    wharf_core::blocking::block_on(verify_with_key(bundle, artifact, key, root))
}

/// [`verify_with_identity`] as a plain function: offline verification does no I/O, so it
/// needs no executor.
pub fn verify_with_identity_blocking(
    bundle: &Bundle,
    artifact: &[u8],
    identity: &Identity,
    root: &TrustedRoot,
) -> Result<VerifiedBundle> {
    wharf_core::blocking::block_on(verify_with_identity(bundle, artifact, identity, root))
}

/// Verify a keyless `bundle` over `artifact`: its certificate was issued to `identity` by a
/// certificate authority of `root`, and its log entry is in one of `root`'s logs.
pub async fn verify_with_identity(
    bundle: &Bundle,
    artifact: &[u8],
    identity: &Identity,
    root: &TrustedRoot,
) -> Result<VerifiedBundle> {
    verify(
        bundle,
        Artifact::Bytes(artifact),
        Some(SignedBy::Identity(identity)),
        root,
    )
    .await
}

impl Bundle {
    /// The certificate and chain of a keyless bundle (v0.3 `certificate`, v0.1/v0.2
    /// `x509CertificateChain`); `None` for a keyed one.
    pub fn certificate_chain(&self) -> Result<Option<Vec<Certificate>>> {
        let vm = &self.verification_material;
        if let Some(c) = &vm.certificate {
            let der = b64(&c["rawBytes"], "certificate.rawBytes")?;
            return Ok(Some(vec![Certificate::from_der(
                &der,
                "the bundle's certificate",
            )?]));
        }
        if let Some(chain) = &vm.x509_certificate_chain {
            let mut out = Vec::new();
            for (i, c) in chain["certificates"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let der = b64(&c["rawBytes"], "x509CertificateChain.certificates")?;
                out.push(Certificate::from_der(
                    &der,
                    &format!("the bundle's certificate {}", i + 1),
                )?);
            }
            if out.is_empty() {
                return Err(Error::invalid(
                    "the bundle's x509CertificateChain is empty: there is no certificate to verify",
                ));
            }
            // A bundle carries the leaf and at most intermediates: a root there would be
            // trusted on the bundle's say-so; roots come from the trusted root only.
            if let Some(i) = out
                .iter()
                .skip(1)
                .position(|c| c.issuer_der() == c.subject_der())
            {
                return Err(Error::integrity(format!(
                    "the bundle's x509CertificateChain includes a root (self-signed) certificate, certificate {} of {}: a bundle may carry only the leaf and intermediates; roots come from the trusted root",
                    i + 2,
                    out.len()
                )));
            }
            return Ok(Some(out));
        }
        Ok(None)
    }
}

/// Verify `bundle` offline: it is about `artifact`; its signature verifies with the key or
/// certificate `signed_by` requires (`None`: nothing is trusted, so it fails); its first
/// log entry records that signature and is proven by `root`'s logs (signed entry
/// timestamp, inclusion proof to a signed checkpoint); a certificate chains to one of
/// `root`'s authorities at the logged time and carries a valid SCT.
pub async fn verify(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    signed_by: Option<SignedBy<'_>>,
    root: &TrustedRoot,
) -> Result<VerifiedBundle> {
    let chain = bundle.certificate_chain()?;
    match (&chain, signed_by) {
        (Some(_), Some(SignedBy::Key(_))) => {
            return Err(Error::integrity(
                "the bundle is signed keylessly (a Fulcio certificate), not with the given key: verify it by certificate identity and issuer",
            ));
        }
        (None, Some(SignedBy::Identity(_))) => {
            return Err(Error::integrity(
                "the bundle is signed with a key, not with a certificate: verify it with the public key",
            ));
        }
        (Some(_), None) => {
            return Err(Error::invalid(
                "the bundle is signed keylessly and no certificate identity and issuer were given to verify it",
            ));
        }
        (None, None) => {
            return Err(Error::invalid(
                "the bundle is signed with a key and no public key was given to verify it",
            ));
        }
        _ => {}
    }
    let leaf = chain.as_ref().and_then(|c| c.first());
    let digest = artifact.digest();
    // 1. The content is about the artifact, and its signature verifies.
    let check_sig = async |message: &[u8], sig: &[u8]| -> Result<String> {
        match (leaf, signed_by) {
            (Some(cert), _) => {
                verify_with_certificate(cert, message, sig)?;
                Ok(Digest::sha256_of(cert.spki_der()).to_string())
            }
            (None, Some(SignedBy::Key(key))) => key
                .verify(
                    message,
                    &Signature::new(sig.to_vec(), crate::ALGORITHM, ""),
                    &VerifyOptions::default(),
                )
                .await
                .map(|v| v.key_id),
            (None, _) => Err(Error::internal("no key to verify with")),
        }
    };
    let (signature, key_id, statement, payload) = match (
        &bundle.message_signature,
        &bundle.dsse_envelope,
    ) {
        (Some(ms), _) => {
            let stated = b64s(&ms.message_digest.digest, "messageDigest")?;
            if ms.message_digest.algorithm != "SHA2_256" || hex(&stated) != digest.hex() {
                return Err(Error::integrity(format!(
                    "the bundle signs another artifact: messageDigest is not {digest}"
                )));
            }
            let sig = b64s(&ms.signature, "signature")?;
            let key_id = match artifact {
                Artifact::Bytes(bytes) => check_sig(bytes, &sig).await?,
                // Only the digest is known (a file hashed as it streamed): keys that hash
                // the message with SHA-256 verify from it.
                Artifact::Digest(d) => match (leaf, signed_by) {
                    (Some(cert), _) => {
                        let key = PublicKey::from_spki_der(
                            cert.spki_der(),
                            "the signing certificate's key",
                        )?;
                        if !key.verifies_digest(d, &sig)? {
                            return Err(Error::integrity(
                                "the signature does not verify with the signing certificate's key",
                            ));
                        }
                        Digest::sha256_of(cert.spki_der()).to_string()
                    }
                    (None, Some(SignedBy::Key(key))) => {
                        key.verify_digest(
                            d,
                            &Signature::new(sig.clone(), crate::ALGORITHM, ""),
                            &VerifyOptions::default(),
                        )
                        .await?
                        .key_id
                    }
                    (None, _) => return Err(Error::internal("no key to verify with")),
                },
            };
            (sig, key_id, None, None)
        }
        (None, Some(env)) => {
            let env: Envelope = serde_json::from_value(env.clone())
                .map_err(|e| Error::invalid(format!("the bundle's DSSE envelope: {e}")))?;
            if env.payload_type != crate::dsse::IN_TOTO_PAYLOAD_TYPE {
                return Err(Error::invalid(format!(
                    "DSSE payload type {:?} is not an in-toto statement",
                    env.payload_type
                )));
            }
            let payload = b64s(&env.payload, "dsseEnvelope.payload")?;
            let [s] = env.signatures.as_slice() else {
                return Err(Error::invalid(format!(
                    "the bundle's DSSE envelope has {} signatures; a bundle carries exactly one",
                    env.signatures.len()
                )));
            };
            let sig = b64s(&s.sig, "dsseEnvelope.signatures[0].sig")?;
            let key_id = check_sig(&pae(&env.payload_type, &payload), &sig).await?;
            let statement = Statement::from_payload(&payload)?;
            if !statement.is_about(&digest) {
                return Err(Error::integrity(format!(
                    "the bundle's statement is not about {digest}: it names {}",
                    statement
                        .subject
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            (sig, key_id, Some(statement), Some(payload))
        }
        (None, None) => {
            return Err(Error::invalid(
                "the bundle has neither a message signature nor a DSSE envelope",
            ));
        }
    };
    // 2-3. Unless the trust root does without a log (one's own PKI, cosign's
    // `--insecure-ignore-tlog`): the entry records this signature and is in a trusted log.
    let logged = if root.ignores_tlog() {
        None
    } else {
        // 2. The log entry records this signature (and certificate) over this content.
        let vm = &bundle.verification_material;
        let entry = vm
            .tlog_entries
            .first()
            .ok_or_else(|| Error::integrity("the bundle has no transparency-log entry"))?;
        let log_index = int(&entry.log_index, "logIndex")? as u64;
        let integrated_time = int(&entry.integrated_time, "integratedTime")?;
        let body_bytes = b64s(&entry.canonicalized_body, "canonicalizedBody")?;
        let body: serde_json::Value = serde_json::from_slice(&body_bytes)
            .map_err(|e| Error::invalid(format!("bundle log entry body is not JSON: {e}")))?;
        let same_verifier = |b64_pem: &serde_json::Value| -> bool {
            let Some(cert) = leaf else {
                return true; // keyed: the signature match below binds the key
            };
            b64_pem
                .as_str()
                .and_then(|s| crate::b64::decode(s).ok())
                .and_then(|pem| String::from_utf8(pem).ok())
                .and_then(|pem| Certificate::from_pem_chain(&pem, "log entry").ok())
                .is_some_and(|c| c.first().is_some_and(|c| c == cert))
        };
        // Rekor v2 entries (hashedrekord and dsse 0.0.2, proven by checkpoints and RFC 3161
        // timestamps) have other bodies: name them rather than fail to match.
        let kind = entry.kind_version["kind"].as_str().unwrap_or_default();
        let version = entry.kind_version["version"].as_str().unwrap_or_default();
        if !matches!(
            (kind, version),
            ("hashedrekord" | "dsse", "0.0.1") | ("intoto", "0.0.2")
        ) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "log entry kind {kind} version {version} is not supported (Rekor v1 entries are: hashedrekord 0.0.1, dsse 0.0.1, intoto 0.0.2; Rekor v2 entries are not yet)"
                ),
            ));
        }
        let matches = match (body["kind"].as_str(), &payload) {
            (Some("hashedrekord"), None) => {
                let recorded = body["spec"]["signature"]["content"]
                    .as_str()
                    .and_then(|s| crate::b64::decode(s).ok());
                body["spec"]["data"]["hash"]["value"].as_str() == Some(digest.hex())
                    && recorded.as_deref() == Some(&signature[..])
                    && same_verifier(&body["spec"]["signature"]["publicKey"]["content"])
            }
            // What cosign and sigstore-go log for DSSE (`dsse`), and older cosign `attest`
            // (`intoto` 0.0.2).
            (Some("dsse" | "intoto"), Some(payload)) => {
                crate::rekor::envelope_entry_verifiers(&body, payload, &signature)?
                    .into_iter()
                    .any(same_verifier)
            }
            (kind, _) => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "log entry kind {} is not supported for this bundle content (hashedrekord for message signatures, dsse or intoto for DSSE envelopes)",
                        kind.unwrap_or("(none)")
                    ),
                ));
            }
        };
        if !matches {
            return Err(Error::integrity(
                "the bundle's log entry does not match its signature: it records another digest, signature or signer",
            ));
        }
        // 3. The entry is in a log the trust root names: SET, inclusion proof, checkpoint.
        let log_id = b64(&entry.log_id["keyId"], "logId.keyId")?;
        let log = root.log(&log_id).ok_or_else(|| {
            Error::integrity(format!(
                "the bundle's log ({}) is not in the trusted root",
                STANDARD.encode(&log_id)
            ))
        })?;
        check_log_valid_at(log, integrated_time)?;
        let promised = match &entry.inclusion_promise {
            Some(promise) => {
                verify_set(
                    &entry.canonicalized_body,
                    integrated_time,
                    log_index,
                    &hex(&log_id),
                    promise["signedEntryTimestamp"].as_str().unwrap_or_default(),
                    &log.key,
                )
                .await?;
                true
            }
            None => false,
        };
        if leaf.is_some() && !promised {
            return Err(Error::integrity(
                "the bundle's log entry has no signed entry timestamp: the time the certificate is checked at cannot be trusted",
            ));
        }
        match &entry.inclusion_proof {
            Some(proof) => verify_inclusion(proof, &body_bytes, log).await?,
            // v0.1 bundles may carry only the log's promise.
            None if promised && bundle.media_type.ends_with("version=0.1") => {}
            None => {
                return Err(Error::integrity(
                    "the bundle's log entry has no inclusion proof",
                ));
            }
        }
        Some((log_index, integrated_time))
    };
    // 4. The certificate: chain, time, SCT, identity.
    // Without a logged time the certificate must be valid now.
    let at = logged.map_or_else(crate::simple_signing::now_unix, |(_, t)| t);
    let certificate = match (&chain, signed_by) {
        (Some(chain), Some(SignedBy::Identity(identity))) => Some(verify_certificate(
            &chain[0],
            &chain[1..],
            root,
            at,
            identity,
        )?),
        _ => None,
    };
    Ok(VerifiedBundle {
        key_id,
        log_index: logged.map(|(index, _)| index),
        integrated_time: logged.map(|(_, t)| t),
        certificate,
        statement,
    })
}

/// The trust root vouches for `log`'s key only within its `validFor` (both ends
/// inclusive): an entry integrated outside it is refused.
pub(crate) fn check_log_valid_at(log: &crate::rekor::TransparencyLog, t: i64) -> Result<()> {
    if log.valid_at(t) {
        return Ok(());
    }
    let end = |t: Option<i64>| t.map_or_else(|| "open".to_owned(), crate::fulcio::rfc3339);
    Err(Error::integrity(format!(
        "the log entry was integrated at {}, outside the time the trusted root vouches for log {} ({} to {})",
        crate::fulcio::rfc3339(t),
        log.base_url,
        end(log.valid_for.0),
        end(log.valid_for.1)
    )))
}

/// An inclusion proof leads from the entry to the root of a checkpoint `log` signed.
async fn verify_inclusion(
    proof: &serde_json::Value,
    body: &[u8],
    log: &crate::rekor::TransparencyLog,
) -> Result<()> {
    let index = int(
        proof["logIndex"].as_str().unwrap_or("-1"),
        "inclusionProof.logIndex",
    )? as u64;
    let size = int(
        proof["treeSize"].as_str().unwrap_or("-1"),
        "inclusionProof.treeSize",
    )? as u64;
    let root_hash: [u8; 32] = b64(&proof["rootHash"], "inclusionProof.rootHash")?
        .try_into()
        .map_err(|_| Error::invalid("bundle inclusionProof.rootHash is not 32 bytes"))?;
    let mut hashes = Vec::new();
    for h in proof["hashes"].as_array().into_iter().flatten() {
        hashes.push(
            <[u8; 32]>::try_from(b64(h, "inclusionProof.hashes")?)
                .map_err(|_| Error::invalid("a bundle inclusion-proof hash is not 32 bytes"))?,
        );
    }
    let computed = root_from_inclusion_proof(index, size, leaf_hash(body), &hashes);
    if computed != Some(root_hash) {
        return Err(Error::integrity(
            "the inclusion proof does not lead to the stated root: the entry is not in that tree",
        ));
    }
    let note = proof["checkpoint"]["envelope"]
        .as_str()
        .ok_or_else(|| Error::integrity("the inclusion proof has no checkpoint"))?;
    verify_checkpoint(note, log, size, &root_hash).await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The media and artifact type of a v0.3 bundle.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type cosign 3 gives an image signature statement.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
