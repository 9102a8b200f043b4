//! Rekor bundles as cosign stores them (`dev.sigstore.cosign/bundle`): the log's signed
//! entry timestamp (SET) over the canonical JSON of the entry, checked offline with the
//! log's public key, and the entry checked against the signature it claims to record.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use wharf_core::audit::canonical_json;
use wharf_core::sign::{Signature, Verifier, VerifyOptions};
use wharf_core::{Digest, Error, Result};

use crate::PublicKey;

/// `dev.sigstore.cosign/bundle`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RekorBundle {
    /// The log's signature over the canonical JSON of [`RekorBundle::payload`], base64.
    #[serde(rename = "SignedEntryTimestamp")]
    pub signed_entry_timestamp: String,
    /// The entry.
    #[serde(rename = "Payload")]
    pub payload: BundlePayload,
}

/// The log entry a bundle vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BundlePayload {
    /// The entry body, base64 JSON (`hashedrekord`).
    pub body: String,
    /// When the log integrated it (seconds since the epoch).
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    /// Its index in the log.
    #[serde(rename = "logIndex")]
    pub log_index: u64,
    /// The log's id: hex SHA-256 of its public key (DER).
    #[serde(rename = "logID")]
    pub log_id: String,
}

impl RekorBundle {
    /// Parse the annotation's JSON.
    pub fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("the Rekor bundle is not valid: {e}")))
    }
}

/// Check `bundle` offline: its SET verifies with `rekor` (the log's key, whose id must be
/// the bundle's `logID`), and its `hashedrekord` entry records exactly this `payload`'s
/// SHA-256 and this signature (`signature_b64`).
pub async fn verify_bundle(
    bundle: &RekorBundle,
    rekor: &PublicKey,
    payload: &[u8],
    signature_b64: &str,
) -> Result<()> {
    let log_id = Digest::sha256_of(rekor.spki_der());
    if bundle.payload.log_id != log_id.hex() {
        return Err(Error::integrity(format!(
            "the Rekor bundle is from log {}, not from the configured log {}",
            bundle.payload.log_id,
            log_id.hex()
        )));
    }
    let entry = serde_json::json!({
        "body": bundle.payload.body,
        "integratedTime": bundle.payload.integrated_time,
        "logID": bundle.payload.log_id,
        "logIndex": bundle.payload.log_index,
    });
    let set = STANDARD
        .decode(bundle.signed_entry_timestamp.trim())
        .map_err(|e| {
            Error::invalid(format!("the Rekor SignedEntryTimestamp is not base64: {e}"))
        })?;
    rekor
        .verify(
            &canonical_json(&entry),
            &Signature::new(set, crate::ALGORITHM, ""),
            &VerifyOptions::default(),
        )
        .await
        .map_err(|_| {
            Error::integrity(
                "the Rekor bundle's signed entry timestamp does not verify with the log's key",
            )
        })?;
    let body = STANDARD
        .decode(bundle.payload.body.trim())
        .map_err(|e| Error::invalid(format!("the Rekor entry body is not base64: {e}")))?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("the Rekor entry body is not JSON: {e}")))?;
    if body["kind"] != "hashedrekord" {
        return Err(Error::new(
            wharf_core::ErrorKind::Unsupported,
            format!(
                "Rekor entry kind {} is not supported here (hashedrekord is)",
                body["kind"]
            ),
        ));
    }
    let spec = &body["spec"];
    let hash_ok = spec["data"]["hash"]["algorithm"] == "sha256"
        && spec["data"]["hash"]["value"].as_str() == Some(Digest::sha256_of(payload).hex());
    let recorded = spec["signature"]["content"]
        .as_str()
        .and_then(|s| STANDARD.decode(s).ok());
    let ours = STANDARD.decode(signature_b64).ok();
    if !hash_ok || recorded.is_none() || recorded != ours {
        return Err(Error::integrity(
            "the Rekor entry does not match this signature: it records another payload hash or signature",
        ));
    }
    Ok(())
}
