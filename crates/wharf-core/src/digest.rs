//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and a streaming hasher.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use sha2::Digest as _;

/// A digest algorithm supported by OCI registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256, the default everywhere.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as written before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The length of the hex-encoded value.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("invalid digest {input:?}: expected `sha256:<64 hex>` or `sha512:<128 hex>`")]
    Format {
        /// The rejected input.
        input: String,
    },
    /// An algorithm other than sha256 or sha512.
    #[error("invalid digest {input:?}: unsupported algorithm {algorithm:?} (use sha256 or sha512)")]
    Algorithm {
        /// The rejected input.
        input: String,
        /// The algorithm named in the input.
        algorithm: String,
    },
    /// Wrong length or characters other than lowercase hex.
    #[error("invalid digest {input:?}: {algorithm} needs {expected} lowercase hex characters")]
    Encoding {
        /// The rejected input.
        input: String,
        /// The algorithm.
        algorithm: &'static str,
        /// The number of hex characters that algorithm needs.
        expected: usize,
    },
}

impl From<DigestError> for crate::Error {
    fn from(e: DigestError) -> Self {
        crate::Error::invalid(e.to_string()).with_source(e)
    }
}

/// A validated content digest such as `sha256:2c26b4…`.
///
/// ```
/// use wharf_core::Digest;
/// let d = Digest::sha256_of(b"foo");
/// assert_eq!(d.to_string(), "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae");
/// assert_eq!(d, "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".parse().unwrap());
/// assert!("sha256:XYZ".parse::<Digest>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parse and validate `algorithm:hex`.
    pub fn parse(input: &str) -> Result<Self, DigestError> {
        let (alg, hex) = input.split_once(':').ok_or_else(|| DigestError::Format {
            input: input.to_owned(),
        })?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "" => {
                return Err(DigestError::Format {
                    input: input.to_owned(),
                });
            }
            other => {
                return Err(DigestError::Algorithm {
                    input: input.to_owned(),
                    algorithm: other.to_owned(),
                });
            }
        };
        Self::from_hex(algorithm, hex).map_err(|_| DigestError::Encoding {
            input: input.to_owned(),
            algorithm: algorithm.as_str(),
            expected: algorithm.hex_len(),
        })
    }

    /// Build a digest from an algorithm and its lowercase hex value.
    pub fn from_hex(algorithm: Algorithm, hex: &str) -> Result<Self, DigestError> {
        let ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(DigestError::Encoding {
                input: format!("{}:{hex}", algorithm.as_str()),
                algorithm: algorithm.as_str(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Self {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(bytes);
        h.finish()
    }

    /// Digest everything `reader` yields, streaming in 1 MiB chunks; returns the digest and
    /// the number of bytes read.
    pub fn from_reader(
        algorithm: Algorithm,
        mut reader: impl Read,
    ) -> std::io::Result<(Self, u64)> {
        let mut h = Hasher::new(algorithm);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let len = h.len();
        Ok((h.finish(), len))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex-encoded value, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The cosign tag for this digest: `sha256-<hex>` (used for `.sig`/`.att` and the
    /// referrers tag-schema fallback).
    pub fn tag_form(&self) -> String {
        format!("{}-{}", self.algorithm.as_str(), self.hex)
    }

    /// The first 12 hex characters, for human output.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone)]
enum State {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

/// An incremental hasher that yields a [`Digest`]; feed it chunks as they stream past.
#[derive(Clone)]
pub struct Hasher {
    state: State,
    len: u64,
}

impl Hasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        let state = match algorithm {
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
        };
        Self { state, len: 0 }
    }

    /// Feed more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        match &mut self.state {
            State::Sha256(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.state {
            State::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            State::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_values() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY256);
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"abc");
        assert_eq!(
            h.finish().to_string(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (d, n) = Digest::from_reader(Algorithm::Sha256, &data[..]).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::sha256_of(&data));
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (input, needle) in [
            ("", "expected `sha256:"),
            ("e3b0c442", "expected `sha256:"),
            (":abc", "expected `sha256:"),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                "unsupported algorithm \"md5\"",
            ),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                "64 lowercase hex",
            ),
            ("sha256:abc", "64 lowercase hex"),
            ("sha512:abc", "128 lowercase hex"),
        ] {
            let err = Digest::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn serde_round_trip_and_tag_form() {
        let d: Digest = serde_json::from_str(&format!("\"{EMPTY256}\"")).unwrap();
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!("\"{EMPTY256}\"")
        );
        assert!(d.tag_form().starts_with("sha256-e3b0c442"));
        assert_eq!(d.short(), "e3b0c44298fc");
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
