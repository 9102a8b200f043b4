//! Keyless verification: a Fulcio certificate is trusted when it chains to a certificate
//! authority of the trusted root *at the time of signing* (the log's integrated time: the
//! certificate lives ten minutes), carries a valid signed certificate timestamp from a CT log
//! of the root, and names the identity and OIDC issuer the caller requires.

use rustls_pki_types::{CertificateDer, UnixTime};
use wharf_core::{Error, Result};

use crate::rekor::TrustedRoot;
use crate::x509::Certificate;

/// `1.3.6.1.5.5.7.3.3` id-kp-codeSigning, the extended key usage Fulcio issues.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Who must have signed: the certificate's subject (a SAN: email, URI) and the OIDC issuer
/// that vouched for it — cosign's `--certificate-identity[-regexp]` and
/// `--certificate-oidc-issuer[-regexp]`.
#[derive(Debug, Clone)]
pub struct Identity {
    subject: Match,
    issuer: Match,
}

#[derive(Debug, Clone)]
enum Match {
    Exact(String),
    Pattern(regex_lite::Regex),
}

impl Match {
    fn pattern(re: &str, what: &str) -> Result<Self> {
        // Anchored, as cosign's regexps are matched against the whole value.
        regex_lite::Regex::new(&format!("^(?:{re})$"))
            .map(Self::Pattern)
            .map_err(|e| Error::invalid(format!("{what} pattern {re:?} is not a valid regex: {e}")))
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(s) => s == value,
            Self::Pattern(re) => re.is_match(value),
        }
    }
}

impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(s) => write!(f, "{s:?}"),
            Self::Pattern(re) => write!(f, "/{}/", re.as_str()),
        }
    }
}

impl Identity {
    /// Exactly this subject, issued on a token from exactly this issuer.
    pub fn exact(subject: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            subject: Match::Exact(subject.into()),
            issuer: Match::Exact(issuer.into()),
        }
    }

    /// A subject matching `subject_regex` (the whole subject), from exactly `issuer`.
    pub fn matching(subject_regex: &str, issuer: impl Into<String>) -> Result<Self> {
        Ok(Self {
            subject: Match::pattern(subject_regex, "certificate identity")?,
            issuer: Match::Exact(issuer.into()),
        })
    }

    /// A subject and an issuer each matching a pattern (the whole value) — cosign's
    /// `--certificate-identity-regexp` with `--certificate-oidc-issuer-regexp`. A
    /// certificate of one's own PKI carries no OIDC issuer: it matches an issuer pattern
    /// that accepts the empty string, such as `.*`.
    pub fn matching_issuer(subject_regex: &str, issuer_regex: &str) -> Result<Self> {
        Ok(Self {
            subject: Match::pattern(subject_regex, "certificate identity")?,
            issuer: Match::pattern(issuer_regex, "certificate OIDC issuer")?,
        })
    }

    /// Exactly this subject, from an issuer matching `issuer_regex` (the whole issuer) —
    /// cosign's `--certificate-identity` with `--certificate-oidc-issuer-regexp`.
    pub fn exact_with_issuer_pattern(
        subject: impl Into<String>,
        issuer_regex: &str,
    ) -> Result<Self> {
        Ok(Self {
            subject: Match::Exact(subject.into()),
            issuer: Match::pattern(issuer_regex, "certificate OIDC issuer")?,
        })
    }

    /// Whether `other` — an exact identity, as a certificate states it — satisfies this one.
    pub fn accepts(&self, other: &Identity) -> bool {
        match (&other.subject, &other.issuer) {
            (Match::Exact(s), Match::Exact(i)) => self.subject.matches(s) && self.issuer.matches(i),
            _ => false,
        }
    }

    /// The subject and issuer as cosign's flags spell them (for messages).
    pub fn describe(&self) -> String {
        format!("identity {} from issuer {}", self.subject, self.issuer)
    }
}

/// What a verified certificate established.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedCertificate {
    /// The subject that matched.
    pub subject: String,
    /// The OIDC issuer.
    pub issuer: String,
    /// The certificate authority it chains to.
    pub authority: String,
    /// How many embedded SCTs verified.
    pub scts: usize,
    /// The SCTs were not checked: the trust root said so
    /// ([`TrustedRoot::insecure_ignore_sct`]).
    pub sct_ignored: bool,
    /// The leaf.
    pub certificate: Certificate,
}

/// Check `leaf` (with any `chain` certificates the signature carried) against `root` at time
/// `at` (Unix seconds: when the log integrated the signature), then its SCTs and `identity`.
pub fn verify_certificate(
    leaf: &Certificate,
    chain: &[Certificate],
    root: &TrustedRoot,
    at: i64,
    identity: &Identity,
) -> Result<VerifiedCertificate> {
    if !leaf
        .extended_key_usages()
        .is_some_and(|ekus| ekus.contains(&EKU_CODE_SIGNING))
    {
        return Err(Error::integrity(
            "the signing certificate is not for code signing (no extended key usage 1.3.6.1.5.5.7.3.3)",
        ));
    }
    let (not_before, not_after) = leaf.validity();
    if at < not_before || at > not_after {
        // Without a log (one's own PKI) `at` is the time of verification.
        let when = if root.ignores_tlog() {
            "now (the transparency log is ignored, so there is no logged time)"
        } else {
            "when the signature was logged"
        };
        return Err(Error::integrity(format!(
            "the certificate was not valid {when}: valid {} to {}, checked at {}",
            rfc3339(not_before),
            rfc3339(not_after),
            rfc3339(at)
        )));
    }
    let end_entity_der = CertificateDer::from(leaf.der());
    let end_entity = webpki::EndEntityCert::try_from(&end_entity_der)
        .map_err(|e| Error::invalid(format!("the signing certificate cannot be read: {e:?}")))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.max(0) as u64));
    let mut why = Vec::new();
    let mut trusted = None;
    for ca in &root.certificate_authorities {
        if ca.valid_for.0.is_some_and(|s| at < s) || ca.valid_for.1.is_some_and(|e| at > e) {
            continue;
        }
        let Some((anchor_cert, intermediates)) = ca.chain.split_last() else {
            continue;
        };
        let anchor_der = CertificateDer::from(anchor_cert.der());
        let Ok(anchor) = webpki::anchor_from_trusted_cert(&anchor_der) else {
            why.push(format!("{}: its root cannot be read", ca.uri));
            continue;
        };
        let inter: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .chain(chain)
            .map(|c| CertificateDer::from(c.der()))
            .collect();
        match end_entity.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &inter,
            time,
            // Intermediates without an EKU extension may issue for any purpose (as Go's
            // x509 and so cosign take them: private CAs rarely set one); the signing
            // certificate itself must be for code signing, checked below.
            webpki::KeyUsage::required_if_present(EKU_CODE_SIGNING),
            None,
            None,
        ) {
            Ok(path) => {
                // The leaf's issuer is the one the verified path went through — never a
                // certificate picked by subject name: two intermediates may share a name
                // (a rotation, a decoy), and the SCT is bound to the real issuer's key.
                let issuer = match path.intermediate_certificates().next() {
                    Some(issuer) => {
                        let der = issuer.der();
                        ca.chain
                            .iter()
                            .chain(chain)
                            .find(|c| c.der() == der.as_ref())
                            .cloned()
                    }
                    None => Some(anchor_cert.clone()),
                };
                trusted = Some((ca, issuer));
                break;
            }
            Err(e) => why.push(format!("{}: {e:?}", ca.uri)),
        }
    }
    let Some((ca, issuer)) = trusted else {
        return Err(Error::integrity(format!(
            "the signing certificate does not chain to a certificate authority of the trusted root at {}{}",
            rfc3339(at),
            if why.is_empty() {
                " (no authority was valid then)".to_owned()
            } else {
                format!(" ({})", why.join("; "))
            }
        )));
    };
    let scts = if root.ignore_sct {
        0
    } else if root.ctlogs.is_empty() {
        return Err(Error::integrity(
            "the trusted root names no certificate-transparency log, so the certificate's SCT cannot be checked: add the deployment's CT logs to the trusted root, or skip the check explicitly (TrustedRoot::insecure_ignore_sct, as cosign's --insecure-ignore-sct)",
        ));
    } else {
        let issuer = issuer.ok_or_else(|| {
            Error::integrity(
                "the certificate's issuer is not in its chain: its SCTs cannot be checked",
            )
        })?;
        let n = verify_scts(leaf, &issuer, root)?;
        if n == 0 {
            return Err(Error::integrity(
                "the certificate carries no signed certificate timestamp from a CT log of the trusted root",
            ));
        }
        n
    };
    // A certificate of one's own PKI names no OIDC issuer: it is the empty string, which
    // only an issuer pattern that accepts it (`.*`) matches.
    let issuer_claim = match leaf.oidc_issuer() {
        Some(issuer) => issuer,
        None if identity.issuer.matches("") => String::new(),
        None => {
            return Err(Error::integrity(format!(
                "the certificate names no OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8), so it cannot be from the required issuer {}; for certificates of your own PKI, require an issuer pattern such as `.*`",
                identity.issuer
            )));
        }
    };
    let names = leaf.subject_names();
    let subject = names
        .iter()
        .map(|n| n.as_str())
        .find(|n| identity.subject.matches(n));
    match subject {
        Some(subject) if identity.issuer.matches(&issuer_claim) => Ok(VerifiedCertificate {
            subject: subject.to_owned(),
            issuer: issuer_claim,
            authority: ca.uri.clone(),
            scts,
            sct_ignored: root.ignore_sct,
            certificate: leaf.clone(),
        }),
        _ => Err(Error::integrity(format!(
            "the certificate was issued to {} by {issuer_claim:?}, not to the required {}",
            names
                .iter()
                .map(|n| format!("{:?}", n.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            identity.describe()
        ))),
    }
}

/// Verify the embedded SCTs of `leaf` (issued by `issuer`) against the root's CT logs; the
/// number that verify. A malformed list is an error; an SCT from an unknown log is skipped.
fn verify_scts(leaf: &Certificate, issuer: &Certificate, root: &TrustedRoot) -> Result<usize> {
    let Some(list) = leaf.sct_list() else {
        return Ok(0);
    };
    let bad = || Error::invalid("the certificate's SCT list is malformed");
    let tbs = leaf.precert_tbs().ok_or_else(bad)?;
    let issuer_key_hash = wharf_core::Digest::sha256_of(issuer.spki_der());
    let issuer_key_hash = hex_bytes(issuer_key_hash.hex());
    let mut r = Reader(list);
    let total = r.u16().ok_or_else(bad)? as usize;
    let mut scts = Reader(r.take(total).ok_or_else(bad)?);
    let mut verified = 0;
    while !scts.0.is_empty() {
        let len = scts.u16().ok_or_else(bad)? as usize;
        let mut sct = Reader(scts.take(len).ok_or_else(bad)?);
        let version = sct.u8().ok_or_else(bad)?;
        let log_id = sct.take(32).ok_or_else(bad)?;
        let timestamp = sct.take(8).ok_or_else(bad)?;
        let ext_len = sct.u16().ok_or_else(bad)? as usize;
        let ext = sct.take(ext_len).ok_or_else(bad)?;
        let (_hash, _alg) = (sct.u8().ok_or_else(bad)?, sct.u8().ok_or_else(bad)?);
        let sig_len = sct.u16().ok_or_else(bad)? as usize;
        let sig = sct.take(sig_len).ok_or_else(bad)?;
        let Some(log) = root.ctlogs.iter().find(|l| l.log_id == log_id) else {
            continue;
        };
        let ms = u64::from_be_bytes(timestamp.try_into().map_err(|_| bad())?);
        if version != 0 || !log.valid_at((ms / 1000) as i64) {
            continue;
        }
        // RFC 6962 §3.2: the digitally-signed struct of a precertificate entry.
        let mut signed = vec![version, 0];
        signed.extend_from_slice(timestamp);
        signed.extend_from_slice(&[0, 1]);
        signed.extend_from_slice(&issuer_key_hash);
        signed.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        signed.extend_from_slice(ext);
        if log.key.verifies(&signed, sig) {
            verified += 1;
        }
    }
    Ok(verified)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    crate::b64::unhex(hex).unwrap_or_default()
}

pub(crate) fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Verify `signature` (ASN.1 DER ECDSA) over `message` with the certificate's key: P-256
/// with SHA-256, or P-384 with SHA-384 or SHA-256 (older Sigstore clients).
pub fn verify_with_certificate(cert: &Certificate, message: &[u8], signature: &[u8]) -> Result<()> {
    // Any key kind cosign verifies with: Fulcio issues ECDSA, a BYO PKI leaf may be RSA.
    let key = crate::PublicKey::from_spki_der(cert.spki_der(), "the signing certificate's key")?;
    if key.verifies(message, signature) {
        return Ok(());
    }
    Err(Error::integrity(
        "the signature does not verify with the signing certificate's key",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(p: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(p),
        )
        .unwrap()
    }

    fn production() -> TrustedRoot {
        TrustedRoot::parse(
            fixture("sigstore/production_trusted_root.json").as_bytes(),
            "production",
        )
        .unwrap()
    }

    /// containers/image's Fulcio fixture: mitr@redhat.com via GitHub OAuth, logged at
    /// 1670870899 (fixtures README).
    fn leaf() -> Certificate {
        Certificate::from_pem_chain(&fixture("containers-image/fulcio-cert"), "fulcio-cert")
            .unwrap()
            .remove(0)
    }

    const AT: i64 = 1670870899;
    const ISSUER: &str = "https://github.com/login/oauth";

    #[test]
    fn a_real_fulcio_certificate_verifies_at_signing_time_with_its_sct() {
        let v = verify_certificate(
            &leaf(),
            &[],
            &production(),
            AT,
            &Identity::exact("mitr@redhat.com", ISSUER),
        )
        .unwrap();
        assert_eq!(v.subject, "mitr@redhat.com");
        assert_eq!(v.issuer, ISSUER);
        assert_eq!(v.scts, 1);
        let re = Identity::matching(".*@redhat\\.com", ISSUER).unwrap();
        verify_certificate(&leaf(), &[], &production(), AT, &re).unwrap();
    }

    /// A trust root without CT logs does not skip the SCT check silently: it fails, naming
    /// the explicit option; with the option the result says the SCT was not checked.
    #[test]
    fn a_root_without_ct_logs_fails_unless_the_sct_is_skipped_explicitly() {
        let mut root = production();
        root.ctlogs.clear();
        let good = Identity::exact("mitr@redhat.com", ISSUER);
        let e = verify_certificate(&leaf(), &[], &root, AT, &good).unwrap_err();
        assert_eq!(e.kind(), wharf_core::ErrorKind::Integrity);
        assert!(
            e.to_string()
                .contains("names no certificate-transparency log")
                && e.to_string().contains("insecure_ignore_sct"),
            "{e}"
        );
        let v = verify_certificate(&leaf(), &[], &root.insecure_ignore_sct(), AT, &good).unwrap();
        assert!(v.sct_ignored);
        assert_eq!(v.scts, 0);
        let checked = verify_certificate(&leaf(), &[], &production(), AT, &good).unwrap();
        assert!(!checked.sct_ignored);
    }

    #[test]
    fn wrong_identity_time_or_root_is_refused_with_the_reason() {
        let err = |at, id: &Identity, root: &TrustedRoot| {
            verify_certificate(&leaf(), &[], root, at, id)
                .unwrap_err()
                .to_string()
        };
        let good = Identity::exact("mitr@redhat.com", ISSUER);
        let e = err(
            AT,
            &Identity::exact("eve@example.com", ISSUER),
            &production(),
        );
        assert!(e.contains("issued to \"mitr@redhat.com\""), "{e}");
        assert!(e.contains("\"eve@example.com\""), "{e}");
        let e = err(
            AT,
            &Identity::exact("mitr@redhat.com", "https://accounts.google.com"),
            &production(),
        );
        assert!(e.contains("not to the required"), "{e}");
        // Substring is not a match: patterns are anchored.
        let e = err(
            AT,
            &Identity::matching("mitr@redhat", ISSUER).unwrap(),
            &production(),
        );
        assert!(e.contains("not to the required"), "{e}");
        // After the ten minutes: expired.
        let e = err(AT + 3600, &good, &production());
        assert!(e.contains("not valid when the signature was logged"), "{e}");
        // The staging root does not trust production's Fulcio.
        let staging = TrustedRoot::parse(
            fixture("sigstore/staging_trusted_root.json").as_bytes(),
            "staging",
        )
        .unwrap();
        let e = err(AT, &good, &staging);
        assert!(
            e.contains("does not chain to a certificate authority"),
            "{e}"
        );
        // A root whose CT logs are not the ones that signed the SCT: a forged SCT fails.
        let mut other_ct = production();
        for log in &mut other_ct.ctlogs {
            log.key = crate::EcdsaP256Key::generate()
                .unwrap()
                .public_key()
                .clone();
        }
        let e = err(AT, &good, &other_ct);
        assert!(e.contains("no signed certificate timestamp"), "{e}");
        assert!(Identity::matching("(", ISSUER).is_err());
    }
}
