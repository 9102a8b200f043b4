//! Just enough X.509 (DER, RFC 5280) to read what a Fulcio certificate says: its key, its
//! validity, its subject alternative names, the OIDC issuer extensions and the embedded
//! signed certificate timestamps. Chain building and signature checks are left to
//! `rustls-webpki` (see [`crate::fulcio`]); this reader only takes the certificate apart.

use wharf_core::{Error, Result};

use crate::pem;

/// `2.5.29.17` subjectAltName.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// `1.3.6.1.4.1.57264.1.1`: Fulcio's OIDC issuer (v1: the raw string).
const OID_FULCIO_ISSUER_V1: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x01];
/// `1.3.6.1.4.1.57264.1.8`: Fulcio's OIDC issuer (v2: a DER UTF8String).
const OID_FULCIO_ISSUER_V2: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x08];
/// `1.3.6.1.4.1.11129.2.4.2`: the embedded SCT list (RFC 6962 §3.3).
const OID_SCT_LIST: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];

/// One DER element: its tag, its contents, and the whole encoding.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
    whole: &'a [u8],
}

/// Read one element from the front of `input`; the rest follows.
fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in certificates
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((
        Tlv {
            tag,
            body: &rest[..len],
            whole: &input[..header + len],
        },
        &rest[len..],
    ))
}

/// All elements of a constructed element's contents.
fn children(body: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (tlv, r) = read(rest)?;
        out.push(tlv);
        rest = r;
    }
    Some(out)
}

/// Encode `tag` with `body` (DER definite length).
fn encode(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// A name a certificate is issued to (a subject alternative name).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectName {
    /// `rfc822Name`: an email address.
    Email(String),
    /// `uniformResourceIdentifier`: a URI (CI workflows, SPIFFE ids).
    Uri(String),
    /// `otherName` with a UTF-8 value (Fulcio's username identities).
    Other(String),
}

impl SubjectName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Email(s) | Self::Uri(s) | Self::Other(s) => s,
        }
    }
}

/// The size in bits of an RSA SubjectPublicKeyInfo's modulus (`BIT STRING` holding
/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`).
pub(crate) fn rsa_modulus_bits(spki: &[u8]) -> Option<usize> {
    let (outer, _) = read(spki)?;
    let parts = children(outer.body)?;
    let bits = parts.get(1).filter(|t| t.tag == 0x03)?.body;
    let (&unused, key) = bits.split_first()?;
    if unused != 0 {
        return None;
    }
    let (rsa, _) = read(key)?;
    let fields = children(rsa.body)?;
    let modulus = fields.first().filter(|t| t.tag == 0x02)?.body;
    let modulus = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => return Some(0),
    };
    Some(modulus.len() * 8 - modulus[0].leading_zeros() as usize)
}

/// The algorithm of a SubjectPublicKeyInfo (DER): its OID and, when the parameters are an
/// OID (an EC key's curve), that one; `None` when it is not an SPKI.
pub(crate) fn spki_algorithm(spki: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (outer, _) = read(spki)?;
    let parts = children(outer.body)?;
    let alg = children(parts.first()?.body)?;
    let oid = alg.first().filter(|t| t.tag == 0x06)?.body;
    let param = alg.get(1).filter(|t| t.tag == 0x06).map(|t| t.body);
    Some((oid, param))
}

/// An X.509 certificate, kept as its DER with the parts wharf reads located in it.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    not_before: i64,
    not_after: i64,
    issuer: (usize, usize),
    subject: (usize, usize),
    spki: (usize, usize),
    extensions: Vec<Extension>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject_names", &self.subject_names())
            .field("oidc_issuer", &self.oidc_issuer())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Where an extension's OID and value lie in the certificate's DER.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Extension {
    oid: (usize, usize),
    value: (usize, usize),
}

fn range(outer: &[u8], inner: &[u8]) -> (usize, usize) {
    let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
    (start, start + inner.len())
}

/// `UTCTime` (`YYMMDDHHMMSSZ`) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn parse_time(tlv: &Tlv<'_>) -> Option<i64> {
    let s = std::str::from_utf8(tlv.body).ok()?;
    let s = s.strip_suffix('Z')?;
    // Digits only: anything else is not a time, and slicing it could split a character.
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match tlv.tag {
        0x17 if s.len() == 12 => {
            let yy: i32 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        0x18 if s.len() == 14 => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let n = |i: usize| rest.get(i..i + 2)?.parse::<u8>().ok();
    let month = time::Month::try_from(n(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, n(2)?).ok()?;
    let t = time::Time::from_hms(n(4)?, n(6)?, n(8)?).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

impl Certificate {
    /// Parse a DER certificate; `origin` names it in errors.
    pub fn from_der(der: &[u8], origin: &str) -> Result<Self> {
        Self::parse(der.to_vec())
            .ok_or_else(|| Error::invalid(format!("{origin} is not a DER X.509 certificate")))
    }

    /// Every `CERTIFICATE` block of a PEM text, in order (a leaf, then its chain).
    pub fn from_pem_chain(text: &str, origin: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
            let block = &rest[start..];
            let der = pem::decode(block, "CERTIFICATE", origin)?;
            out.push(Self::from_der(&der, origin)?);
            let end = block
                .find("-----END CERTIFICATE-----")
                .map_or(block.len(), |e| e + "-----END CERTIFICATE-----".len());
            rest = &block[end..];
        }
        if out.is_empty() {
            return Err(Error::invalid(format!(
                "{origin}: no \"-----BEGIN CERTIFICATE-----\" block: not a PEM certificate"
            )));
        }
        Ok(out)
    }

    fn parse(der: Vec<u8>) -> Option<Self> {
        let (cert, rest) = read(&der)?;
        if cert.tag != 0x30 || !rest.is_empty() {
            return None;
        }
        let parts = children(cert.body)?;
        let tbs = parts.first().filter(|t| t.tag == 0x30)?;
        let mut fields = children(tbs.body)?.into_iter().peekable();
        if fields.peek()?.tag == 0xa0 {
            fields.next(); // version
        }
        let _serial = fields.next()?;
        let _sig_alg = fields.next()?;
        let issuer = fields.next()?;
        let validity = children(fields.next()?.body)?;
        let subject = fields.next()?;
        let spki = fields.next()?;
        let mut extensions = Vec::new();
        for field in fields {
            if field.tag != 0xa3 {
                continue; // issuer/subject unique ids
            }
            let (seq, _) = read(field.body)?;
            for ext in children(seq.body)? {
                let ext_parts = children(ext.body)?;
                let oid = ext_parts.first().filter(|t| t.tag == 0x06)?;
                // [critical BOOLEAN,] extnValue OCTET STRING; criticality is webpki's concern.
                let value = match ext_parts.get(1)? {
                    b if b.tag == 0x01 => ext_parts.get(2)?,
                    v => v,
                };
                if value.tag != 0x04 {
                    return None;
                }
                extensions.push(Extension {
                    oid: range(&der, oid.body),
                    value: range(&der, value.body),
                });
            }
        }
        let not_before = parse_time(validity.first()?)?;
        let not_after = parse_time(validity.get(1)?)?;
        let (issuer, subject, spki) = (
            range(&der, issuer.whole),
            range(&der, subject.whole),
            range(&der, spki.whole),
        );
        Some(Self {
            der,
            not_before,
            not_after,
            issuer,
            subject,
            spki,
            extensions,
        })
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate as PEM.
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    /// Its SubjectPublicKeyInfo (DER).
    pub fn spki_der(&self) -> &[u8] {
        &self.der[self.spki.0..self.spki.1]
    }

    /// Its issuer's distinguished name (DER), byte for byte.
    pub fn issuer_der(&self) -> &[u8] {
        &self.der[self.issuer.0..self.issuer.1]
    }

    /// Its subject's distinguished name (DER), byte for byte.
    pub fn subject_der(&self) -> &[u8] {
        &self.der[self.subject.0..self.subject.1]
    }

    /// `notBefore` and `notAfter`, Unix seconds.
    pub fn validity(&self) -> (i64, i64) {
        (self.not_before, self.not_after)
    }

    fn extension(&self, oid: &[u8]) -> Option<&[u8]> {
        self.extensions
            .iter()
            .find(|e| &self.der[e.oid.0..e.oid.1] == oid)
            .map(|e| &self.der[e.value.0..e.value.1])
    }

    /// The key purposes of its extended-key-usage extension (each the OID's DER value);
    /// `None` when it has no such extension.
    pub(crate) fn extended_key_usages(&self) -> Option<Vec<&[u8]>> {
        const OID_EKU: &[u8] = &[0x55, 0x1d, 0x25];
        let (seq, _) = read(self.extension(OID_EKU)?)?;
        Some(
            children(seq.body)?
                .into_iter()
                .filter(|t| t.tag == 0x06)
                .map(|t| t.body)
                .collect(),
        )
    }

    /// The subject alternative names (the identities the certificate was issued to).
    pub fn subject_names(&self) -> Vec<SubjectName> {
        let Some(names) = self
            .extension(OID_SAN)
            .and_then(|v| read(v))
            .and_then(|(seq, _)| children(seq.body))
        else {
            return Vec::new();
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        names
            .iter()
            .filter_map(|n| match n.tag {
                0x81 => Some(SubjectName::Email(text(n.body))),
                0x86 => Some(SubjectName::Uri(text(n.body))),
                // otherName: [0] { type-id OID, [0] EXPLICIT UTF8String }
                0xa0 => children(n.body)
                    .and_then(|p| read(p.get(1)?.body))
                    .filter(|(s, _)| s.tag == 0x0c)
                    .map(|(s, _)| SubjectName::Other(text(s.body))),
                _ => None,
            })
            .collect()
    }

    /// The OIDC issuer Fulcio recorded (extension `1.3.6.1.4.1.57264.1.8`, else the
    /// deprecated `….1.1`).
    pub fn oidc_issuer(&self) -> Option<String> {
        if let Some(v) = self.extension(OID_FULCIO_ISSUER_V2) {
            let (s, _) = read(v)?;
            return (s.tag == 0x0c).then(|| String::from_utf8_lossy(s.body).into_owned());
        }
        self.extension(OID_FULCIO_ISSUER_V1)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The TLS-encoded SignedCertificateTimestampList embedded in the certificate.
    pub(crate) fn sct_list(&self) -> Option<&[u8]> {
        let (inner, _) = read(self.extension(OID_SCT_LIST)?)?;
        (inner.tag == 0x04).then_some(inner.body)
    }

    /// The TBSCertificate as the CT log saw it before the SCTs were embedded: the
    /// certificate's TBS without the SCT-list extension (RFC 6962 §3.2).
    pub(crate) fn precert_tbs(&self) -> Option<Vec<u8>> {
        let (cert, _) = read(&self.der)?;
        let (tbs, _) = read(cert.body)?;
        let mut body = Vec::new();
        for field in children(tbs.body)? {
            if field.tag != 0xa3 {
                body.extend_from_slice(field.whole);
                continue;
            }
            let (seq, _) = read(field.body)?;
            let mut exts = Vec::new();
            for ext in children(seq.body)? {
                let oid = children(ext.body)?.first()?.body;
                if oid != OID_SCT_LIST {
                    exts.extend_from_slice(ext.whole);
                }
            }
            body.extend(encode(0xa3, &encode(0x30, &exts)));
        }
        Some(encode(0x30, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULCIO_CERT: &str = include_str!("../tests/fixtures/containers-image/fulcio-cert");
    const FULCIO_CHAIN: &str = include_str!("../tests/fixtures/containers-image/fulcio-chain");

    #[test]
    fn reads_what_a_fulcio_certificate_says() {
        let leaf = &Certificate::from_pem_chain(FULCIO_CERT, "fulcio-cert").unwrap()[0];
        assert_eq!(
            leaf.subject_names(),
            vec![SubjectName::Email("mitr@redhat.com".into())]
        );
        assert_eq!(
            leaf.oidc_issuer().as_deref(),
            Some("https://github.com/login/oauth")
        );
        // 2022-12-12T18:48:18Z .. 18:58:18Z
        assert_eq!(leaf.validity(), (1670870898, 1670871498));
        let kind = |c: &Certificate| {
            crate::PublicKey::from_spki_der(c.spki_der(), "")
                .unwrap()
                .kind()
        };
        assert_eq!(kind(leaf), "ECDSA P-256");
        assert!(leaf.sct_list().is_some());
        let chain = Certificate::from_pem_chain(FULCIO_CHAIN, "fulcio-chain").unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(leaf.issuer_der(), chain[0].subject_der());
        assert_eq!(
            chain[1].issuer_der(),
            chain[1].subject_der(),
            "self-signed root"
        );
        assert_eq!(kind(&chain[1]), "ECDSA P-384");
    }

    #[test]
    fn the_precertificate_drops_only_the_sct_list() {
        let leaf = &Certificate::from_pem_chain(FULCIO_CERT, "fulcio-cert").unwrap()[0];
        let pre = leaf.precert_tbs().unwrap();
        let (tbs, _) = read(&pre).unwrap();
        let (orig, _) = read(read(leaf.der()).unwrap().0.body).unwrap();
        let sct_ext_len = {
            let v = leaf.extension(OID_SCT_LIST).unwrap();
            // value + OID + OCTET STRING headers + SEQUENCE header
            v.len()
        };
        assert!(tbs.whole.len() < orig.whole.len());
        assert!(orig.whole.len() - tbs.whole.len() > sct_ext_len);
        // Re-parsing the original TBS through the same path gives back the same bytes.
        let mut reencoded = Vec::new();
        for f in children(orig.body).unwrap() {
            reencoded.extend_from_slice(f.whole);
        }
        assert_eq!(encode(0x30, &reencoded), orig.whole);
    }

    #[test]
    fn a_time_with_non_ascii_digits_is_refused_not_panicked_on() {
        // Found by fuzzing (wharf-fuzz): a UTCTime whose 12 bytes are UTF-8 with a
        // multibyte character across byte 2 was sliced mid-character: a panic on a hostile
        // certificate. The same length keeps the rest of the DER intact.
        let leaf = &Certificate::from_pem_chain(FULCIO_CERT, "fulcio-cert").unwrap()[0];
        let mut der = leaf.der().to_vec();
        let at = der
            .windows(15)
            .position(|w| w == b"\x17\x0d221212184818Z")
            .expect("the fixture's notBefore");
        der[at + 2..at + 15].copy_from_slice("0\u{e9}101000000Z".as_bytes());
        let err = Certificate::from_der(&der, "cert.der").unwrap_err();
        assert_eq!(err.to_string(), "cert.der is not a DER X.509 certificate");
    }

    #[test]
    fn garbage_is_named_not_panicked_on() {
        for bad in [
            &b""[..],
            &[0x30, 0x82, 0xff],
            &[0x30, 0x03, 0x02, 0x01],
            &[0x1f, 0, 0],
        ] {
            let err = Certificate::from_der(bad, "cert.der").unwrap_err();
            assert_eq!(err.to_string(), "cert.der is not a DER X.509 certificate");
        }
        let err = Certificate::from_pem_chain("hello", "cert.pem").unwrap_err();
        assert!(err.to_string().starts_with("cert.pem: no"), "{err}");
        let truncated = &FULCIO_CERT[..FULCIO_CERT.len() / 2];
        assert!(Certificate::from_pem_chain(truncated, "half.pem").is_err());
    }
}
