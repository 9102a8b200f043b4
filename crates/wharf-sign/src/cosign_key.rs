//! cosign's encrypted private key file (`cosign.key`): PEM `ENCRYPTED SIGSTORE PRIVATE KEY`
//! (older cosign: `ENCRYPTED COSIGN PRIVATE KEY`) around JSON
//! `{"kdf":{"name":"scrypt","params":{"N","r","p"},"salt"},"cipher":{"name":"nacl/secretbox","nonce"},"ciphertext"}`:
//! the PKCS#8 key sealed with NaCl secretbox (XSalsa20-Poly1305) under a key derived from
//! the password with scrypt — the format of go-securesystemslib's `encrypted` package that
//! cosign uses.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poly1305::Poly1305;
use poly1305::universal_hash::KeyInit;
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};
use wharf_core::{Error, Result, Secret};

/// The PEM label cosign writes.
pub const COSIGN_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The PEM label older cosign versions wrote.
pub const LEGACY_COSIGN_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// scrypt's cost as cosign sets it: N = 2^15, r = 8, p = 1 (32 MiB).
const LOG_N: u8 = 15;
const R: u32 = 8;
const P: u32 = 1;
/// The largest cost a key file may ask for (2^17: 128 MiB), so a crafted file cannot make
/// us allocate without bound.
const MAX_LOG_N: u8 = 17;

#[derive(Serialize, Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
struct KdfParams {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Seal PKCS#8 `der` under `password`, as cosign does; returns the JSON inside the PEM.
pub(crate) fn seal(der: &[u8], password: &Secret) -> Result<Vec<u8>> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    rng.fill(&mut salt)
        .and_then(|()| rng.fill(&mut nonce))
        .map_err(|_| Error::internal("no randomness for the key file"))?;
    let key = derive(password, &salt, LOG_N, R, P)?;
    let boxed = secretbox_seal(&key, &nonce, der);
    let sealed = Sealed {
        kdf: Kdf {
            name: "scrypt".into(),
            params: KdfParams {
                N: 1 << LOG_N,
                r: R,
                p: P,
            },
            salt: STANDARD.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: STANDARD.encode(nonce),
        },
        ciphertext: STANDARD.encode(boxed),
    };
    serde_json::to_vec(&sealed).map_err(|e| Error::internal(format!("key file: {e}")))
}

/// Open the JSON inside a cosign key PEM with `password`; `origin` names the file.
pub(crate) fn open(json: &[u8], password: &Secret, origin: &str) -> Result<Vec<u8>> {
    let sealed: Sealed = serde_json::from_slice(json)
        .map_err(|e| Error::invalid(format!("{origin}: not a cosign encrypted key ({e})")))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(Error::invalid(format!(
            "{origin}: key encrypted with {}/{}, only scrypt/nacl/secretbox (cosign's) is supported",
            sealed.kdf.name, sealed.cipher.name
        )));
    }
    let n = sealed.kdf.params.N;
    if !n.is_power_of_two() || n < 2 || n.trailing_zeros() > u32::from(MAX_LOG_N) {
        return Err(Error::invalid(format!(
            "{origin}: scrypt N = {n} is not a power of two up to 2^{MAX_LOG_N}"
        )));
    }
    let b64 = |field: &str, v: &str| {
        STANDARD
            .decode(v)
            .map_err(|e| Error::invalid(format!("{origin}: {field} is not base64: {e}")))
    };
    let salt = b64("kdf.salt", &sealed.kdf.salt)?;
    let nonce: [u8; 24] = b64("cipher.nonce", &sealed.cipher.nonce)?
        .try_into()
        .map_err(|_| Error::invalid(format!("{origin}: cipher.nonce is not 24 bytes")))?;
    let boxed = b64("ciphertext", &sealed.ciphertext)?;
    let key = derive(
        password,
        &salt,
        n.trailing_zeros() as u8,
        sealed.kdf.params.r,
        sealed.kdf.params.p,
    )?;
    secretbox_open(&key, &nonce, &boxed).ok_or_else(|| {
        Error::new(
            wharf_core::ErrorKind::Denied,
            format!("{origin}: wrong password (or the key file is damaged)"),
        )
    })
}

fn derive(password: &Secret, salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<[u8; 32]> {
    let params = scrypt::Params::new(log_n, r, p)
        .map_err(|e| Error::invalid(format!("scrypt parameters N=2^{log_n} r={r} p={p}: {e}")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.expose().as_bytes(), salt, &params, &mut key)
        .map_err(|e| Error::internal(format!("scrypt: {e}")))?;
    Ok(key)
}

/// NaCl `crypto_secretbox`: XSalsa20 keystream, its first 32 bytes key Poly1305, the rest
/// encrypts; the output is the 16-byte tag followed by the ciphertext.
fn secretbox_seal(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8]) -> Vec<u8> {
    let mut cipher = XSalsa20::new(key.into(), nonce.into());
    let mut mac_key = [0u8; 32];
    cipher.apply_keystream(&mut mac_key);
    let mut ct = plaintext.to_vec();
    cipher.apply_keystream(&mut ct);
    let tag = Poly1305::new((&mac_key).into()).compute_unpadded(&ct);
    let mut out = tag.to_vec();
    out.extend_from_slice(&ct);
    out
}

fn secretbox_open(key: &[u8; 32], nonce: &[u8; 24], boxed: &[u8]) -> Option<Vec<u8>> {
    let (tag, ct) = boxed.split_at_checked(16)?;
    let mut cipher = XSalsa20::new(key.into(), nonce.into());
    let mut mac_key = [0u8; 32];
    cipher.apply_keystream(&mut mac_key);
    let expected = Poly1305::new((&mac_key).into()).compute_unpadded(ct);
    // Constant time: every byte is compared whatever the earlier ones were.
    let diff = expected
        .iter()
        .zip(tag)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return None;
    }
    let mut pt = ct.to_vec();
    cipher.apply_keystream(&mut pt);
    Some(pt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secretbox_round_trips_and_rejects_tampering() {
        let key = [7u8; 32];
        let nonce = [9u8; 24];
        let boxed = secretbox_seal(&key, &nonce, b"private key bytes");
        assert_eq!(boxed.len(), 16 + 17);
        assert_eq!(
            secretbox_open(&key, &nonce, &boxed).unwrap(),
            b"private key bytes"
        );
        let mut bad = boxed.clone();
        bad[20] ^= 1;
        assert!(secretbox_open(&key, &nonce, &bad).is_none());
        assert!(secretbox_open(&[8u8; 32], &nonce, &boxed).is_none());
        assert!(secretbox_open(&key, &nonce, &boxed[..10]).is_none());
    }

    #[test]
    fn sealed_json_has_cosigns_shape() {
        let json = seal(b"der", &Secret::new("pw")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["kdf"]["name"], "scrypt");
        assert_eq!(v["kdf"]["params"]["N"], 32768);
        assert_eq!(v["kdf"]["params"]["r"], 8);
        assert_eq!(v["kdf"]["params"]["p"], 1);
        assert_eq!(v["cipher"]["name"], "nacl/secretbox");
        assert_eq!(open(&json, &Secret::new("pw"), "k").unwrap(), b"der");
        let err = open(&json, &Secret::new("nope"), "cosign.key").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cosign.key: wrong password (or the key file is damaged)"
        );
    }

    #[test]
    fn a_crafted_cost_is_refused_before_any_work() {
        let json = br#"{"kdf":{"name":"scrypt","params":{"N":1073741824,"r":8,"p":1},"salt":""},"cipher":{"name":"nacl/secretbox","nonce":""},"ciphertext":""}"#;
        let err = open(json, &Secret::new("pw"), "k.key").unwrap_err();
        assert!(
            err.to_string().contains("is not a power of two up to 2^17"),
            "{err}"
        );
    }
}
