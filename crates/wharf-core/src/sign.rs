//! The [`Signer`] and [`Verifier`] contracts.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

/// A transparency-log entry recorded for a signature (Rekor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogEntry {
    /// The log's URL.
    pub log_url: String,
    /// The entry's index.
    pub log_index: u64,
    /// When it was integrated (seconds since the epoch).
    pub integrated_time: i64,
}

/// A signature over some bytes, with what a verifier needs to trust it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Signature {
    /// The raw signature (ASN.1 DER for ECDSA).
    pub bytes: Vec<u8>,
    /// Algorithm name (`ecdsa-p256-sha256`, …).
    pub algorithm: String,
    /// An identifier of the key (fingerprint, KMS ARN, or certificate subject).
    pub key_id: String,
    /// The signing certificate, PEM, for keyless signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The certificate chain, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The transparency-log entry, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_entry: Option<LogEntry>,
}

impl Signature {
    /// A bare signature.
    pub fn new(bytes: Vec<u8>, algorithm: impl Into<String>, key_id: impl Into<String>) -> Self {
        Self {
            bytes,
            algorithm: algorithm.into(),
            key_id: key_id.into(),
            certificate: None,
            chain: None,
            log_entry: None,
        }
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .field("certificate", &self.certificate.is_some())
            .field("log_entry", &self.log_entry)
            .finish()
    }
}

/// Options for [`Signer::sign`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SignOptions {
    /// Record the signature in a transparency log.
    pub transparency_log: bool,
}

/// Options for [`Verifier::verify`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Require a transparency-log entry.
    pub require_log_entry: bool,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The key or identity that signed.
    pub key_id: String,
}

impl Verified {
    /// Verified as signed by `key_id`.
    pub fn new(key_id: impl Into<String>) -> Self {
        Self {
            key_id: key_id.into(),
        }
    }
}

/// Signs bytes with a key (file, KMS) or an identity (keyless).
#[async_trait]
pub trait Signer: fmt::Debug + Send + Sync + 'static {
    /// The key or identity this signer signs as.
    fn key_id(&self) -> &str;

    /// Sign `payload`.
    async fn sign(&self, payload: &[u8], opts: &SignOptions) -> Result<Signature>;
}

/// Checks signatures. Verification never passes by default: every failure is an error of
/// kind [`crate::ErrorKind::Integrity`] (or `Invalid` for malformed input).
#[async_trait]
pub trait Verifier: fmt::Debug + Send + Sync + 'static {
    /// Verify `signature` over `payload`.
    async fn verify(
        &self,
        payload: &[u8],
        signature: &Signature,
        opts: &VerifyOptions,
    ) -> Result<Verified>;

    /// Verify `signature` over a message of which only the SHA-256 `digest` is known — a
    /// multi-gigabyte file hashed while it streamed past, never held in memory. Keys whose
    /// signatures hash the message themselves can (ECDSA, RSA); the default, for verifiers
    /// that need the whole message, is an `Unsupported` error.
    async fn verify_digest(
        &self,
        digest: &crate::Digest,
        signature: &Signature,
        opts: &VerifyOptions,
    ) -> Result<Verified> {
        let _ = (digest, signature, opts);
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            "this verifier needs the whole message, not its digest",
        ))
    }
}
