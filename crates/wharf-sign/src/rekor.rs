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
    verify_bundle_set(bundle, rekor).await?;
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
        .and_then(|s| crate::b64::decode(s).ok());
    let ours = crate::b64::decode(signature_b64).ok();
    if !hash_ok || recorded.is_none() || recorded != ours {
        return Err(Error::integrity(
            "the Rekor entry does not match this signature: it records another payload hash or signature",
        ));
    }
    Ok(())
}

/// The bundle's `logID` (hex) as bytes, to look its log up in a trust root.
pub(crate) fn log_id_bytes(bundle: &RekorBundle) -> Result<Vec<u8>> {
    crate::b64::unhex(&bundle.payload.log_id)
        .ok_or_else(|| Error::invalid("the Rekor bundle's logID is not hex"))
}

/// Check that a Rekor entry body (base64 JSON, as a bundle carries it) records a DSSE
/// envelope whose payload is `payload` and one of whose signatures is `signature`:
///
/// * `dsse` 0.0.1 (what cosign 2.2+ and sigstore-go log): `spec.payloadHash` and
///   `spec.signatures[].signature` (base64);
/// * `intoto` 0.0.2 (what older cosign `attest` logs): `spec.content.payloadHash` and
///   `spec.content.envelope.signatures[].sig`, which Rekor stores base64-encoded once
///   more (the base64 of the envelope's base64 signature) — either form is accepted.
///
/// Other kinds and versions are an `Unsupported` error naming them.
pub fn check_envelope_entry(body_b64: &str, payload: &[u8], signature: &[u8]) -> Result<()> {
    let body = crate::b64::decode(body_b64.trim())
        .map_err(|e| Error::invalid(format!("the Rekor entry body is not base64: {e}")))?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("the Rekor entry body is not JSON: {e}")))?;
    if envelope_entry_verifiers(&body, payload, signature)?.is_empty() {
        return Err(Error::integrity(
            "the Rekor entry does not match this attestation: it records another payload hash or signature",
        ));
    }
    Ok(())
}

/// The verifiers (base64 of the PEM key or certificate) recorded beside `signature` in a
/// `dsse` 0.0.1 or `intoto` 0.0.2 entry `body` whose payload hash is `payload`'s: empty
/// when the entry records another payload or signature; an `Unsupported` error for other
/// kinds and versions. See [`check_envelope_entry`].
pub(crate) fn envelope_entry_verifiers<'b>(
    body: &'b serde_json::Value,
    payload: &[u8],
    signature: &[u8],
) -> Result<Vec<&'b serde_json::Value>> {
    let payload_hash = Digest::sha256_of(payload).hex().to_owned();
    let hash_is = |h: &serde_json::Value| {
        h["algorithm"] == "sha256" && h["value"].as_str() == Some(payload_hash.as_str())
    };
    let ours_b64 = STANDARD.encode(signature);
    // A recorded signature: base64 of the signature, or (intoto) base64 of that base64.
    let is_ours = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| crate::b64::decode(s.trim()).ok())
            .is_some_and(|d| d == signature || d == ours_b64.as_bytes())
    };
    let spec = &body["spec"];
    let (hash, sigs, sig_field, verifier_field) = match (
        body["kind"].as_str(),
        body["apiVersion"].as_str(),
    ) {
        (Some("dsse"), Some("0.0.1")) => (
            &spec["payloadHash"],
            &spec["signatures"],
            "signature",
            "verifier",
        ),
        (Some("intoto"), Some("0.0.2")) => (
            &spec["content"]["payloadHash"],
            &spec["content"]["envelope"]["signatures"],
            "sig",
            "publicKey",
        ),
        (kind, version) => {
            return Err(Error::new(
                wharf_core::ErrorKind::Unsupported,
                format!(
                    "Rekor entry kind {} version {} is not supported for a DSSE envelope (dsse 0.0.1 and intoto 0.0.2 are)",
                    kind.unwrap_or("(none)"),
                    version.unwrap_or("(none)")
                ),
            ));
        }
    };
    if !hash_is(hash) {
        return Ok(Vec::new());
    }
    Ok(sigs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| is_ours(&s[sig_field]))
        .map(|s| &s[verifier_field])
        .collect())
}

/// Verify `bundle`'s signed entry timestamp with the log's key `rekor`.
pub(crate) async fn verify_bundle_set(bundle: &RekorBundle, rekor: &PublicKey) -> Result<()> {
    verify_set(
        &bundle.payload.body,
        bundle.payload.integrated_time,
        bundle.payload.log_index,
        &bundle.payload.log_id,
        &bundle.signed_entry_timestamp,
        rekor,
    )
    .await
}

/// Verify a signed entry timestamp: the log's signature over the canonical JSON of
/// `{body, integratedTime, logID, logIndex}` (body base64, logID hex).
pub async fn verify_set(
    body_b64: &str,
    integrated_time: i64,
    log_index: u64,
    log_id_hex: &str,
    set_b64: &str,
    key: &PublicKey,
) -> Result<()> {
    let entry = serde_json::json!({
        "body": body_b64,
        "integratedTime": integrated_time,
        "logID": log_id_hex,
        "logIndex": log_index,
    });
    let set = crate::b64::decode(set_b64.trim()).map_err(|e| {
        Error::invalid(format!("the Rekor SignedEntryTimestamp is not base64: {e}"))
    })?;
    key.verify(
        &canonical_json(&entry),
        &Signature::new(set, crate::ALGORITHM, ""),
        &VerifyOptions::default(),
    )
    .await
    .map(|_| ())
    .map_err(|_| {
        Error::integrity(
            "the Rekor bundle's signed entry timestamp does not verify with the log's key",
        )
    })
}

/// A transparency log a trusted root vouches for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransparencyLog {
    /// Its id (SHA-256 of its public key).
    pub log_id: Vec<u8>,
    /// Its public key.
    pub key: PublicKey,
    /// Its URL.
    pub base_url: String,
    /// When the trust root says the log's key was valid (Unix seconds; `None` = open).
    pub valid_for: (Option<i64>, Option<i64>),
}

impl TransparencyLog {
    /// Whether the log's key was valid at `t` (Unix seconds).
    pub fn valid_at(&self, t: i64) -> bool {
        self.valid_for.0.is_none_or(|s| s <= t) && self.valid_for.1.is_none_or(|e| t <= e)
    }
}

/// A certificate authority (Fulcio) a trusted root vouches for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CertificateAuthority {
    /// Its URL.
    pub uri: String,
    /// Its chain: intermediates first, the self-signed root last.
    pub chain: Vec<crate::x509::Certificate>,
    /// When it issued certificates the root trusts (Unix seconds; `None` = open).
    pub valid_for: (Option<i64>, Option<i64>),
}

/// A Sigstore `trusted_root.json`: its transparency logs and certificate-transparency logs
/// (the ECDSA P-256 ones; other key types are listed in [`TrustedRoot::skipped`]) and its
/// certificate authorities.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrustedRoot {
    /// Transparency logs (Rekor).
    pub tlogs: Vec<TransparencyLog>,
    /// Certificate-transparency logs, whose signed timestamps Fulcio embeds.
    pub ctlogs: Vec<TransparencyLog>,
    /// Certificate authorities (Fulcio).
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// Logs whose key type is not supported here, by URL and key type.
    pub skipped: Vec<(String, String)>,
    /// Certificates are accepted without checking their SCTs: set only by
    /// [`TrustedRoot::insecure_ignore_sct`], and reported by every verification.
    pub(crate) ignore_sct: bool,
    /// Certificate-signed signatures are accepted without a transparency-log entry: set
    /// only by [`TrustedRoot::insecure_ignore_tlog`].
    pub(crate) ignore_tlog: bool,
}

impl TrustedRoot {
    /// Accept certificates without checking their signed certificate timestamps, as
    /// cosign's `--insecure-ignore-sct` does: for private deployments without a CT log.
    /// Without it, a root that names no CT log fails every keyless verification (the SCT
    /// is never skipped silently); with it, results say the SCT was not checked
    /// ([`crate::fulcio::VerifiedCertificate::sct_ignored`]).
    pub fn insecure_ignore_sct(mut self) -> Self {
        self.ignore_sct = true;
        self
    }

    /// Accept certificate-signed signatures that were never logged, as cosign's
    /// `--insecure-ignore-tlog` does: for certificates of one's own PKI (see
    /// [`TrustedRoot::from_ca_pems`]). The certificate's validity is then checked at the
    /// time of verification, not at a logged time. Results say so
    /// (`integrated_time` is `None` in `VerifiedSignature` and `VerifiedBundle`). Any log
    /// entry a signature or bundle carries is then not checked either.
    pub fn insecure_ignore_tlog(mut self) -> Self {
        self.ignore_tlog = true;
        self
    }

    /// Whether [`TrustedRoot::insecure_ignore_tlog`] is in force.
    pub fn ignores_tlog(&self) -> bool {
        self.ignore_tlog
    }

    /// A trust root of one's own PKI ("bring your own PKI"): `pem` holds the root
    /// certificates and any intermediates (cosign's `--ca-roots` with `--ca-intermediates`,
    /// or a `--certificate-chain`), each root a certificate authority. It names no logs:
    /// verification needs [`TrustedRoot::insecure_ignore_tlog`] and
    /// [`TrustedRoot::insecure_ignore_sct`] unless the signatures carry evidence for logs
    /// added otherwise.
    pub fn from_ca_pems(pem: &str, origin: &str) -> Result<Self> {
        let certs = crate::x509::Certificate::from_pem_chain(pem, origin)?;
        let (roots, intermediates): (Vec<_>, Vec<_>) = certs
            .into_iter()
            .partition(|c| c.issuer_der() == c.subject_der());
        if roots.is_empty() {
            return Err(Error::invalid(format!(
                "{origin} holds no root (self-signed) certificate to trust"
            )));
        }
        Ok(Self {
            tlogs: Vec::new(),
            ctlogs: Vec::new(),
            certificate_authorities: roots
                .into_iter()
                .enumerate()
                .map(|(i, root)| CertificateAuthority {
                    uri: format!("{origin} (root {})", i + 1),
                    chain: intermediates.iter().cloned().chain([root]).collect(),
                    valid_for: (None, None),
                })
                .collect(),
            skipped: Vec::new(),
            ignore_sct: false,
            ignore_tlog: false,
        })
    }

    /// Whether [`TrustedRoot::insecure_ignore_sct`] is in force.
    pub fn ignores_sct(&self) -> bool {
        self.ignore_sct
    }

    /// A trust root from loose PEM files, as cosign users have them without a
    /// `trusted_root.json`: `fulcio_chain` the certificate authority (its root, and any
    /// intermediates, in any order — cosign's `SIGSTORE_ROOT_FILE`), `rekor_key` the
    /// transparency log's public key (`SIGSTORE_REKOR_PUBLIC_KEY`), `ct_log_key` the CT
    /// log's (`SIGSTORE_CT_LOG_PUBLIC_KEY_FILE`; without one, keyless verification fails
    /// unless [`TrustedRoot::insecure_ignore_sct`]). Validity periods are open; `origin`
    /// names the material in errors.
    pub fn from_pems(
        fulcio_chain: &str,
        rekor_key: &str,
        ct_log_key: Option<&str>,
        origin: &str,
    ) -> Result<Self> {
        let certs = crate::x509::Certificate::from_pem_chain(
            fulcio_chain,
            &format!("{origin}: the Fulcio chain"),
        )?;
        // The chain as a trusted root lists it: intermediates first, the root last.
        let (mut roots, mut chain): (Vec<_>, Vec<_>) = certs
            .into_iter()
            .partition(|c| c.issuer_der() == c.subject_der());
        if roots.len() != 1 {
            return Err(Error::invalid(format!(
                "{origin}: the Fulcio chain holds {} root (self-signed) certificates; it needs exactly one",
                roots.len()
            )));
        }
        chain.append(&mut roots);
        let log = |pem: &str, what: &str| -> Result<TransparencyLog> {
            let key = PublicKey::from_pem(pem, &format!("{origin}: {what}"))?;
            Ok(TransparencyLog {
                log_id: crate::b64::unhex(Digest::sha256_of(key.spki_der()).hex())
                    .unwrap_or_default(),
                key,
                base_url: String::new(),
                valid_for: (None, None),
            })
        };
        Ok(Self {
            tlogs: vec![log(rekor_key, "the Rekor public key")?],
            ctlogs: ct_log_key
                .map(|pem| log(pem, "the CT log public key"))
                .transpose()?
                .into_iter()
                .collect(),
            certificate_authorities: vec![CertificateAuthority {
                uri: format!("{origin} (PEM)"),
                chain,
                valid_for: (None, None),
            }],
            skipped: Vec::new(),
            ignore_sct: false,
            ignore_tlog: false,
        })
    }

    /// Parse `trusted_root.json`; `origin` names the file in errors.
    pub fn parse(json: &[u8], origin: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| Error::invalid(format!("{origin}: not JSON: {e}")))?;
        let media = v["mediaType"].as_str().unwrap_or_default();
        if !media.starts_with("application/vnd.dev.sigstore.trustedroot") {
            return Err(Error::invalid(format!(
                "{origin}: mediaType {media:?} is not a Sigstore trusted root"
            )));
        }
        let mut root = Self {
            tlogs: Vec::new(),
            ctlogs: Vec::new(),
            certificate_authorities: Vec::new(),
            skipped: Vec::new(),
            ignore_sct: false,
            ignore_tlog: false,
        };
        let b64 = |field: &str, s: &serde_json::Value| {
            STANDARD
                .decode(s.as_str().unwrap_or_default())
                .map_err(|e| Error::invalid(format!("{origin}: {field} is not base64: {e}")))
        };
        for list in ["tlogs", "ctlogs"] {
            for (i, log) in v[list].as_array().into_iter().flatten().enumerate() {
                let url = log["baseUrl"].as_str().unwrap_or_default().to_owned();
                let details = log["publicKey"]["keyDetails"].as_str().unwrap_or_default();
                if details != "PKIX_ECDSA_P256_SHA_256" {
                    root.skipped.push((url, details.to_owned()));
                    continue;
                }
                let field = format!("{list}[{i}]");
                let der = b64(
                    &format!("{field}.publicKey.rawBytes"),
                    &log["publicKey"]["rawBytes"],
                )?;
                let parsed = TransparencyLog {
                    log_id: b64(&format!("{field}.logId.keyId"), &log["logId"]["keyId"])?,
                    key: PublicKey::from_spki_der(&der, &format!("{origin}: {field}"))?,
                    base_url: url,
                    valid_for: valid_for(&log["publicKey"]["validFor"], origin, &field)?,
                };
                if list == "tlogs" {
                    root.tlogs.push(parsed);
                } else {
                    root.ctlogs.push(parsed);
                }
            }
        }
        for (i, ca) in v["certificateAuthorities"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("certificateAuthorities[{i}]");
            let mut chain = Vec::new();
            for (j, c) in ca["certChain"]["certificates"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let what = format!("{field}.certChain.certificates[{j}]");
                let der = b64(&format!("{what}.rawBytes"), &c["rawBytes"])?;
                chain.push(crate::x509::Certificate::from_der(
                    &der,
                    &format!("{origin}: {what}"),
                )?);
            }
            if chain.is_empty() {
                return Err(Error::invalid(format!(
                    "{origin}: {field} has no certificates"
                )));
            }
            root.certificate_authorities.push(CertificateAuthority {
                uri: ca["uri"].as_str().unwrap_or_default().to_owned(),
                chain,
                valid_for: valid_for(&ca["validFor"], origin, &field)?,
            });
        }
        Ok(root)
    }

    /// The log with id `log_id`.
    pub fn log(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }

    /// The log that signed `bundle`; an integrity error naming its log id when the root has
    /// no such log.
    pub fn log_of(&self, bundle: &RekorBundle) -> Result<&TransparencyLog> {
        self.log(&log_id_bytes(bundle)?).ok_or_else(|| {
            Error::integrity(format!(
                "the Rekor bundle is from log {}, which is not in the trusted root",
                bundle.payload.log_id
            ))
        })
    }
}

/// `validFor {start, end}` (RFC 3339) as Unix seconds; absent is open, a `validFor`
/// without `start` is an error (the field is required in Sigstore's `TimeRange`).
fn valid_for(
    v: &serde_json::Value,
    origin: &str,
    field: &str,
) -> Result<(Option<i64>, Option<i64>)> {
    let at = |key: &str| -> Result<Option<i64>> {
        match v[key].as_str() {
            None => Ok(None),
            Some(s) => {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map(|t| Some(t.unix_timestamp()))
                    .map_err(|e| {
                        Error::invalid(format!(
                            "{origin}: {field}.validFor.{key} {s:?} is not a time: {e}"
                        ))
                    })
            }
        }
    };
    // A `validFor` without its required start is a malformed root, not an open bound.
    if v.is_object() && v.get("start").is_none() {
        return Err(Error::invalid(format!(
            "{origin}: {field}.validFor has no start (required): fix the trusted root"
        )));
    }
    Ok((at("start")?, at("end")?))
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = wharf_core::Hasher::new(wharf_core::Algorithm::Sha256);
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 32];
    if let Some(bytes) = crate::b64::unhex(h.finish().hex()) {
        out.copy_from_slice(&bytes);
    }
    out
}

/// The RFC 6962 leaf hash of a log entry body.
pub fn leaf_hash(body: &[u8]) -> [u8; 32] {
    sha256(&[&[0u8], body])
}

/// The tree root an inclusion proof leads to from `leaf` at `index` in a tree of `size`
/// (RFC 9162 §2.1.3.2); `None` when the proof has the wrong shape.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    proof: &[[u8; 32]],
) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, leaf);
    for p in proof {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = sha256(&[&[1u8], p, &r]);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = sha256(&[&[1u8], &r, p]);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

/// Verify a log checkpoint (a signed note: `origin\nsize\nroot\n\n— name base64(hint‖sig)`)
/// with the log's key, and that it commits to `size` and `root`.
pub async fn verify_checkpoint(
    note: &str,
    log: &TransparencyLog,
    size: u64,
    root: &[u8; 32],
) -> Result<()> {
    let (body, sigs) = note
        .split_once("\n\n")
        .ok_or_else(|| Error::invalid("the checkpoint is not a signed note"))?;
    let body = format!("{body}\n");
    let mut lines = body.lines();
    let _origin = lines.next();
    let note_size: u64 = lines
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::invalid("the checkpoint has no tree size"))?;
    let note_root = lines
        .next()
        .and_then(|s| crate::b64::decode(s).ok())
        .ok_or_else(|| Error::invalid("the checkpoint has no root hash"))?;
    if note_size != size || note_root != root {
        return Err(Error::integrity(
            "the checkpoint commits to another tree than the inclusion proof",
        ));
    }
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((_, b64)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(raw) = crate::b64::decode(b64) else {
            continue;
        };
        if raw.len() < 5 || raw[..4] != log.log_id[..4.min(log.log_id.len())] {
            continue;
        }
        let sig = Signature::new(raw[4..].to_vec(), crate::ALGORITHM, "");
        if log
            .key
            .verify(body.as_bytes(), &sig, &VerifyOptions::default())
            .await
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(Error::integrity(format!(
        "the checkpoint carries no valid signature by {}",
        log.base_url
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_proofs_follow_rfc_9162() {
        // A 5-leaf tree built by hand: leaves l0..l4.
        let l: Vec<[u8; 32]> = (0u8..5).map(|i| leaf_hash(&[i])).collect();
        let n = |a: &[u8; 32], b: &[u8; 32]| sha256(&[&[1u8], a, b]);
        let (n01, n23) = (n(&l[0], &l[1]), n(&l[2], &l[3]));
        let n0123 = n(&n01, &n23);
        let root = n(&n0123, &l[4]);
        assert_eq!(
            root_from_inclusion_proof(2, 5, l[2], &[l[3], n01, l[4]]),
            Some(root)
        );
        assert_eq!(root_from_inclusion_proof(4, 5, l[4], &[n0123]), Some(root));
        assert_eq!(
            root_from_inclusion_proof(0, 5, l[0], &[l[1], n23, l[4]]),
            Some(root)
        );
        assert_ne!(
            root_from_inclusion_proof(2, 5, l[2], &[l[3], n23, l[4]]),
            Some(root)
        );
        assert_eq!(
            root_from_inclusion_proof(5, 5, l[4], &[n0123]),
            None,
            "index past the tree"
        );
        assert_eq!(
            root_from_inclusion_proof(4, 5, l[4], &[n0123, n01]),
            None,
            "proof too long"
        );
    }

    /// An entry body as a bundle carries it: base64 of the JSON.
    fn body(v: serde_json::Value) -> String {
        STANDARD.encode(v.to_string())
    }

    #[test]
    fn dsse_and_intoto_entries_record_an_envelope_and_others_are_named() {
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let sig = b"\x30\x45signature-bytes".to_vec();
        let hash = Digest::sha256_of(payload).hex().to_owned();
        let sig_b64 = STANDARD.encode(&sig);
        let dsse = |hash: &str, sig_b64: &str| {
            body(serde_json::json!({
                "apiVersion": "0.0.1", "kind": "dsse",
                "spec": {
                    "envelopeHash": {"algorithm": "sha256", "value": "00"},
                    "payloadHash": {"algorithm": "sha256", "value": hash},
                    "signatures": [{"signature": sig_b64, "verifier": "LS0t"}],
                },
            }))
        };
        check_envelope_entry(&dsse(&hash, &sig_b64), payload, &sig).unwrap();
        // Rekor's intoto 0.0.2 stores the envelope's base64 signature base64-encoded again.
        let intoto = |sig_field: &str| {
            body(serde_json::json!({
                "apiVersion": "0.0.2", "kind": "intoto",
                "spec": {"content": {
                    "envelope": {
                        "payloadType": "application/vnd.in-toto+json",
                        "signatures": [{"publicKey": "LS0t", "sig": sig_field}],
                    },
                    "hash": {"algorithm": "sha256", "value": "00"},
                    "payloadHash": {"algorithm": "sha256", "value": hash},
                }},
            }))
        };
        check_envelope_entry(&intoto(&STANDARD.encode(&sig_b64)), payload, &sig).unwrap();
        check_envelope_entry(&intoto(&sig_b64), payload, &sig).unwrap();
        // Another payload or another signature: not this attestation's entry.
        let other_hash = Digest::sha256_of(b"other").hex().to_owned();
        let e = check_envelope_entry(&dsse(&other_hash, &sig_b64), payload, &sig).unwrap_err();
        assert_eq!(e.kind(), wharf_core::ErrorKind::Integrity, "{e}");
        let e =
            check_envelope_entry(&dsse(&hash, &STANDARD.encode(b"x")), payload, &sig).unwrap_err();
        assert_eq!(e.kind(), wharf_core::ErrorKind::Integrity, "{e}");
        let e = check_envelope_entry(&intoto(&STANDARD.encode(b"x")), payload, &sig).unwrap_err();
        assert_eq!(e.kind(), wharf_core::ErrorKind::Integrity, "{e}");
        // A kind that does not record envelopes, or a version we do not read: named.
        let rekord =
            body(serde_json::json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {}}));
        let e = check_envelope_entry(&rekord, payload, &sig).unwrap_err();
        assert_eq!(e.kind(), wharf_core::ErrorKind::Unsupported);
        assert!(
            e.to_string().contains("kind hashedrekord version 0.0.1"),
            "{e}"
        );
        let e = check_envelope_entry("%%%", payload, &sig).unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
    }
}
