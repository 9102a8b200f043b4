//! Sigstore bundles (v0.1–v0.3): parsing, and offline verification of bundles signed with a
//! public key — the signature over the artifact, and its transparency-log entry: the entry
//! records this signature and digest, its signed entry timestamp verifies, its inclusion
//! proof leads to the root of a checkpoint the log signed (keys from `trusted_root.json`).
//!
//! Bundles whose verification material is a Fulcio certificate are parsed, and refused for
//! verification with [`ErrorKind::Unsupported`] until certificate chains are checked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use wharf_core::sign::{Signature, Verifier, VerifyOptions};
use wharf_core::{Digest, Error, ErrorKind, Result};

use crate::PublicKey;
use crate::rekor::{
    TrustedRoot, leaf_hash, root_from_inclusion_proof, verify_checkpoint, verify_set,
};

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

/// What a verified bundle established.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedBundle {
    /// The signing key's id.
    pub key_id: String,
    /// The log entry's index.
    pub log_index: u64,
    /// When the log integrated it.
    pub integrated_time: i64,
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

/// Verify a message-signature `bundle` over `artifact`, signed with `key` (`None` when the
/// caller has none: a keyed bundle then fails), its log entry checked offline against
/// `root`'s logs.
pub async fn verify_with_key(
    bundle: &Bundle,
    artifact: &[u8],
    key: Option<&PublicKey>,
    root: &TrustedRoot,
) -> Result<VerifiedBundle> {
    let vm = &bundle.verification_material;
    if vm.certificate.is_some() || vm.x509_certificate_chain.is_some() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "the bundle is signed with a Fulcio certificate: certificate-based verification is not implemented yet",
        ));
    }
    let key = key.ok_or_else(|| {
        Error::invalid("the bundle is signed with a key and no public key was given to verify it")
    })?;
    let ms = bundle.message_signature.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            "the bundle holds a DSSE envelope; keyed DSSE bundles are not verified here yet",
        )
    })?;
    // 1. The artifact is what was signed.
    let digest = Digest::sha256_of(artifact);
    let stated = b64(
        &serde_json::Value::String(ms.message_digest.digest.clone()),
        "messageDigest",
    )?;
    if ms.message_digest.algorithm != "SHA2_256" || hex(&stated) != digest.hex() {
        return Err(Error::integrity(format!(
            "the bundle signs another artifact: messageDigest is not {digest}"
        )));
    }
    let sig = b64(
        &serde_json::Value::String(ms.signature.clone()),
        "signature",
    )?;
    let verified = key
        .verify(
            artifact,
            &Signature::new(sig.clone(), crate::ALGORITHM, ""),
            &VerifyOptions::default(),
        )
        .await?;
    // 2. The log entry records this signature and digest.
    let entry = vm
        .tlog_entries
        .first()
        .ok_or_else(|| Error::integrity("the bundle has no transparency-log entry"))?;
    let log_index = int(&entry.log_index, "logIndex")? as u64;
    let integrated_time = int(&entry.integrated_time, "integratedTime")?;
    let body_bytes = STANDARD
        .decode(&entry.canonicalized_body)
        .map_err(|e| Error::invalid(format!("bundle canonicalizedBody is not base64: {e}")))?;
    let body: serde_json::Value = serde_json::from_slice(&body_bytes)
        .map_err(|e| Error::invalid(format!("bundle log entry body is not JSON: {e}")))?;
    if body["kind"] != "hashedrekord" {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "log entry kind {} is not supported here (hashedrekord is)",
                body["kind"]
            ),
        ));
    }
    let recorded_sig = STANDARD
        .decode(
            body["spec"]["signature"]["content"]
                .as_str()
                .unwrap_or_default(),
        )
        .ok();
    if body["spec"]["data"]["hash"]["value"].as_str() != Some(digest.hex())
        || recorded_sig.as_deref() != Some(&sig[..])
    {
        return Err(Error::integrity(
            "the bundle's log entry does not match its signature: it records another digest or signature",
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
    if let Some(promise) = &entry.inclusion_promise {
        verify_set(
            &entry.canonicalized_body,
            integrated_time,
            log_index,
            &hex(&log_id),
            promise["signedEntryTimestamp"].as_str().unwrap_or_default(),
            &log.key,
        )
        .await?;
    }
    let proof = entry
        .inclusion_proof
        .as_ref()
        .ok_or_else(|| Error::integrity("the bundle's log entry has no inclusion proof"))?;
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
    let computed = root_from_inclusion_proof(index, size, leaf_hash(&body_bytes), &hashes);
    if computed != Some(root_hash) {
        return Err(Error::integrity(
            "the inclusion proof does not lead to the stated root: the entry is not in that tree",
        ));
    }
    let note = proof["checkpoint"]["envelope"]
        .as_str()
        .ok_or_else(|| Error::integrity("the inclusion proof has no checkpoint"))?;
    verify_checkpoint(note, log, size, &root_hash).await?;
    Ok(VerifiedBundle {
        key_id: verified.key_id,
        log_index,
        integrated_time,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
