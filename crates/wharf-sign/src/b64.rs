//! Text encodings of binary material. base64 as cosign and Rekor (Go's `encoding/base64` `StdEncoding`) decode it: the
//! standard alphabet with padding, line breaks (`\r`, `\n`) ignored wherever they are, and
//! non-zero trailing bits accepted (Go's decoder is not strict by default). Material from
//! Go tools — signature annotations, Rekor bodies and timestamps — is decoded with this,
//! so what cosign accepts we accept.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Decode `input` as Go's `base64.StdEncoding.DecodeString` does.
pub(crate) fn decode(input: impl AsRef<[u8]>) -> Result<Vec<u8>, base64::DecodeError> {
    let input = input.as_ref();
    if input.iter().any(|b| matches!(b, b'\r' | b'\n')) {
        let joined: Vec<u8> = input
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect();
        GO_STD.decode(joined)
    } else {
        GO_STD.decode(input)
    }
}

/// Lowercase or uppercase hex as bytes; `None` when it is not hex.
pub(crate) fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{decode, unhex};

    #[test]
    fn hex_decodes_or_is_refused() {
        assert_eq!(unhex("00ffA0").unwrap(), [0, 255, 160]);
        assert_eq!(unhex("").unwrap(), Vec::<u8>::new());
        assert!(unhex("abc").is_none() && unhex("zz").is_none() && unhex("é0").is_none());
    }

    #[test]
    fn decodes_what_gos_std_encoding_accepts() {
        assert_eq!(decode("aGVsbG8=").unwrap(), b"hello");
        // Line breaks anywhere, as PEM-style wrapped annotations carry them.
        assert_eq!(decode("aGVs\nbG8=\r\n").unwrap(), b"hello");
        assert_eq!(decode("a\r\nG\nVsbG8=").unwrap(), b"hello");
        // Non-zero trailing bits: Go's default decoder takes them ("aGVsbG9=" is "hello").
        assert_eq!(decode("aGVsbG9=").unwrap(), b"hello");
        // What Go refuses, we refuse: missing padding, other alphabets, spaces.
        assert!(decode("aGVsbG8").is_err());
        assert!(decode("aGVs_G8=").is_err());
        assert!(decode("aGVs bG8=").is_err());
    }
}
