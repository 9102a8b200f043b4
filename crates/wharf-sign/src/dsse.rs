//! in-toto statements in DSSE envelopes — the attestation format, on its own: statements
//! and predicates, the pre-authentication encoding, signing and verifying an envelope with a
//! key. Where attestations are stored is `attest` (cosign's `.att` image) and `bundle`
//! (Sigstore bundles); this module knows nothing of registries or logs.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use wharf_core::sign::{SignOptions, Signature, Signer, Verifier, VerifyOptions};
use wharf_core::{Digest, Error, Result};

/// The DSSE envelope layer's media type.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// in-toto Statement v0.1 (what cosign 2 writes), read like v1.
pub const STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";

/// SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// wharf's model-evaluation predicate: the metrics the model was evaluated with.
pub const MODEL_EVALUATION_V1: &str = "https://wharf.dev/attestation/model-evaluation/v1";

/// A CycloneDX SBOM (the predicate is the BOM document), as `cosign attest --type cyclonedx`.
pub const CYCLONEDX_BOM: &str = "https://cyclonedx.org/bom";

/// Vulnerability scan results, as `cosign attest --type vuln` (cosign's vuln predicate v1).
pub const VULN_SCAN_V1: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";

/// A vulnerability-scan predicate in cosign's `vuln/v1` shape: the scanner (`uri`,
/// `version`, its database), the scanner's own report as `result`, and when the scan ran.
pub fn vuln_predicate(
    scanner_uri: &str,
    scanner_version: &str,
    db: serde_json::Value,
    result: serde_json::Value,
    started: time::OffsetDateTime,
    finished: time::OffsetDateTime,
) -> serde_json::Value {
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    serde_json::json!({
        "invocation": {"parameters": null, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": scanner_uri,
            "version": scanner_version,
            "db": db,
            "result": result,
        },
        "metadata": {"scanStartedOn": rfc3339(started), "scanFinishedOn": rfc3339(finished)},
    })
}

/// DSSE's pre-authentication encoding: what is actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// An in-toto statement's subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Subject {
    /// The subject's name (the image's repository; may be empty, as cosign 3 writes it).
    #[serde(default)]
    pub name: String,
    /// Its digests by algorithm (`sha256` → hex).
    pub digest: BTreeMap<String, String>,
}

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Statement {
    /// Always [`STATEMENT_V1`] when we write it.
    #[serde(rename = "_type")]
    pub kind: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// The predicate's type URI.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate.
    #[serde(default)]
    pub predicate: serde_json::Value,
}

impl Statement {
    /// A statement that `image` (named `name`) satisfies `predicate` of `predicate_type`.
    pub fn about(
        name: impl Into<String>,
        image: &Digest,
        predicate_type: impl Into<String>,
        predicate: serde_json::Value,
    ) -> Self {
        Self {
            kind: STATEMENT_V1.to_owned(),
            subject: vec![Subject {
                name: name.into(),
                digest: BTreeMap::from([(
                    image.algorithm().as_str().to_owned(),
                    image.hex().to_owned(),
                )]),
            }],
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    /// Read a DSSE payload as a statement: JSON with `_type` in-toto Statement v1 or v0.1
    /// (the same shape). Another `_type` is refused, never read as if it were v1 — its
    /// semantics are unknown.
    pub fn from_payload(payload: &[u8]) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| {
            Error::invalid(format!("the DSSE payload is not an in-toto statement: {e}"))
        })?;
        match v.get("_type").and_then(|t| t.as_str()) {
            Some(STATEMENT_V1 | STATEMENT_V0_1) => {}
            Some(other) => {
                return Err(Error::invalid(format!(
                    "the DSSE payload's statement _type {other:?} is not an in-toto statement this verifier knows ({STATEMENT_V1}, {STATEMENT_V0_1})"
                )));
            }
            None => {
                return Err(Error::invalid(
                    "the DSSE payload's statement has no _type: it is not an in-toto statement",
                ));
            }
        }
        serde_json::from_value(v).map_err(|e| {
            Error::invalid(format!("the DSSE payload is not an in-toto statement: {e}"))
        })
    }

    /// True when one subject has `image`'s digest.
    pub fn is_about(&self, image: &Digest) -> bool {
        self.subject.iter().any(|s| {
            s.digest.get(image.algorithm().as_str()).map(String::as_str) == Some(image.hex())
        })
    }
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Envelope {
    /// The payload's type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload, base64.
    pub payload: String,
    /// Signatures over the PAE of the payload.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EnvelopeSignature {
    /// The key id (may be empty, as cosign writes it).
    #[serde(default)]
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

/// Sign `statement` into a DSSE envelope.
pub async fn sign_statement(statement: &Statement, signer: &dyn Signer) -> Result<Envelope> {
    let payload = serde_json::to_vec(statement)
        .map_err(|e| Error::invalid(format!("statement cannot be serialized: {e}")))?;
    let sig = signer
        .sign(
            &pae(IN_TOTO_PAYLOAD_TYPE, &payload),
            &SignOptions::default(),
        )
        .await?;
    Ok(Envelope {
        payload_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
        payload: STANDARD.encode(payload),
        signatures: vec![EnvelopeSignature {
            keyid: String::new(),
            sig: STANDARD.encode(&sig.bytes),
        }],
    })
}

/// Verify an envelope with `verifier` (one signature that verifies is enough) and return
/// its statement.
pub async fn verify_envelope(
    envelope: &Envelope,
    verifier: &dyn Verifier,
) -> Result<(Statement, String)> {
    verify_envelope_parts(envelope, verifier)
        .await
        .map(|v| (v.statement, v.key_id))
}

/// What [`verify_envelope_parts`] established: the statement, who signed, and the exact
/// payload and signature bytes that verified (for matching a log entry).
pub(crate) struct VerifiedEnvelope {
    pub(crate) statement: Statement,
    pub(crate) key_id: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

/// [`verify_envelope`], keeping the payload and the signature that verified.
pub(crate) async fn verify_envelope_parts(
    envelope: &Envelope,
    verifier: &dyn Verifier,
) -> Result<VerifiedEnvelope> {
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Error::invalid(format!(
            "DSSE payload type {:?} is not {IN_TOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        )));
    }
    let payload = crate::b64::decode(&envelope.payload)
        .map_err(|e| Error::invalid(format!("DSSE payload is not base64: {e}")))?;
    let pae = pae(&envelope.payload_type, &payload);
    let mut last = Error::integrity("the DSSE envelope has no signature");
    for s in &envelope.signatures {
        let Ok(bytes) = crate::b64::decode(s.sig.trim()) else {
            last = Error::invalid("a DSSE signature is not base64");
            continue;
        };
        match verifier
            .verify(
                &pae,
                &Signature::new(bytes.clone(), crate::ALGORITHM, s.keyid.clone()),
                &VerifyOptions::default(),
            )
            .await
        {
            Ok(v) => {
                let statement = Statement::from_payload(&payload)?;
                return Ok(VerifiedEnvelope {
                    statement,
                    key_id: v.key_id,
                    payload,
                    signature: bytes,
                });
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// An attestation that verified.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VerifiedAttestation {
    /// The predicate's type.
    pub predicate_type: String,
    /// The predicate.
    pub predicate: serde_json::Value,
    /// The key that signed it (for keyless, the certificate's subject).
    pub key_id: String,
}

impl VerifiedAttestation {
    pub(crate) fn new(
        predicate_type: String,
        predicate: serde_json::Value,
        key_id: String,
    ) -> Self {
        Self {
            predicate_type,
            predicate,
            key_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_dsse_v1() {
        // The DSSE specification's example encoding.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
