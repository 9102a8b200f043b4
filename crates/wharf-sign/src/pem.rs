//! PEM (RFC 7468): one labelled, base64-encoded DER block.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use wharf_core::{Error, Result};

/// `-----BEGIN label-----`, the DER in base64 lines of 64 characters, `-----END label-----`.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label of the first PEM block in `text` (`PRIVATE KEY`, …).
pub(crate) fn label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let end = text[start..].find("-----")? + start;
    Some(&text[start..end])
}

/// The DER of the first `label` block in `text`; `origin` names the source in errors.
pub(crate) fn decode(text: &str, label: &str, origin: &str) -> Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or_else(|| {
        Error::invalid(format!("{origin}: no \"{begin}\" block: not a PEM {label}"))
    })? + begin.len();
    let stop = text[start..].find(&end).ok_or_else(|| {
        Error::invalid(format!(
            "{origin}: \"{begin}\" without \"{end}\": the PEM is cut short"
        ))
    })? + start;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(body).map_err(|e| {
        Error::invalid(format!(
            "{origin}: the {label} PEM is not valid base64: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = encode("PUBLIC KEY", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(decode(&pem, "PUBLIC KEY", "x").unwrap(), der);
        let err = decode(&pem, "PRIVATE KEY", "k.pem").unwrap_err();
        assert!(err.to_string().starts_with("k.pem: no"), "{err}");
        let cut = &pem[..pem.len() - 20];
        assert!(
            decode(cut, "PUBLIC KEY", "k.pem")
                .unwrap_err()
                .to_string()
                .contains("cut short")
        );
    }
}
