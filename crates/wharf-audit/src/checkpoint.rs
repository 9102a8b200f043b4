//! Signed checkpoints: a statement "the record at `sequence` has hash `head`", signed through
//! the [`Signer`] trait, so an auditor holding only the public key can verify a range of the
//! log without trusting the store.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wharf_core::audit::canonical_json;
use wharf_core::sign::{SignOptions, Signature, Signer, Verifier, VerifyOptions};
use wharf_core::{Digest, Error, Result};

/// The `type` of a checkpoint statement.
pub const CHECKPOINT_TYPE: &str = "wharf.audit.checkpoint/v1";

/// What a checkpoint states. The signed bytes are its canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Statement {
    /// Always [`CHECKPOINT_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The sequence of the record the checkpoint covers (and every record before it).
    pub sequence: u64,
    /// That record's chain hash.
    pub head: Digest,
    /// When the checkpoint was made.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

impl Statement {
    /// The bytes that are signed.
    pub fn payload(&self) -> Result<Vec<u8>> {
        let value = serde_json::to_value(self)
            .map_err(|e| Error::invalid(format!("checkpoint cannot be serialized: {e}")))?;
        Ok(canonical_json(&value))
    }
}

/// The signature on a checkpoint, as stored (base64 bytes, the signer's key id, and the
/// certificate for keyless signers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StoredSignature {
    /// Algorithm (`ecdsa-p256-sha256`, …).
    pub algorithm: String,
    /// The signing key's id.
    pub key_id: String,
    /// The signature, base64.
    pub value: String,
    /// The signing certificate (PEM), for keyless signers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// A signed checkpoint, as stored at `checkpoints/<sequence>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Checkpoint {
    /// What is stated.
    pub statement: Statement,
    /// The signature over [`Statement::payload`].
    pub signature: StoredSignature,
}

impl Checkpoint {
    /// Sign a statement that record `sequence` has hash `head`.
    pub async fn sign(
        signer: &dyn Signer,
        sequence: u64,
        head: Digest,
        time: OffsetDateTime,
    ) -> Result<Self> {
        let statement = Statement {
            kind: CHECKPOINT_TYPE.to_owned(),
            sequence,
            head,
            time,
        };
        let sig = signer
            .sign(&statement.payload()?, &SignOptions::default())
            .await?;
        Ok(Self {
            statement,
            signature: StoredSignature {
                algorithm: sig.algorithm.clone(),
                key_id: sig.key_id.clone(),
                value: STANDARD.encode(&sig.bytes),
                certificate: sig.certificate.clone(),
            },
        })
    }

    /// Check the signature with `verifier`; an error says why it does not verify.
    pub async fn verify(&self, verifier: &dyn Verifier) -> Result<()> {
        if self.statement.kind != CHECKPOINT_TYPE {
            return Err(Error::integrity(format!(
                "unknown checkpoint type {:?} (expected {CHECKPOINT_TYPE})",
                self.statement.kind
            )));
        }
        let bytes = STANDARD
            .decode(&self.signature.value)
            .map_err(|e| Error::integrity(format!("checkpoint signature is not base64: {e}")))?;
        let mut sig = Signature::new(
            bytes,
            self.signature.algorithm.clone(),
            self.signature.key_id.clone(),
        );
        sig.certificate = self.signature.certificate.clone();
        verifier
            .verify(&self.statement.payload()?, &sig, &VerifyOptions::default())
            .await
            .map(|_| ())
    }

    /// The stored form: canonical JSON and a newline.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let value = serde_json::to_value(self)
            .map_err(|e| Error::invalid(format!("checkpoint cannot be serialized: {e}")))?;
        let mut out = canonical_json(&value);
        out.push(b'\n');
        Ok(out)
    }
}
