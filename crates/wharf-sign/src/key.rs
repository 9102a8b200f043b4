//! ECDSA P-256 keys (the algorithm cosign uses): sign with a private key, verify with its
//! public half. Signatures are ASN.1 DER over SHA-256 of the message; public keys are PEM
//! `PUBLIC KEY` (SubjectPublicKeyInfo), the form `cosign public-key` prints.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, ParsedPublicKey,
};
use wharf_core::sign::{SignOptions, Signature, Signer, Verified, Verifier, VerifyOptions};
use wharf_core::{Digest, Error, ErrorKind, Result, Secret};

use crate::cosign_key::{self, COSIGN_KEY_LABEL, LEGACY_COSIGN_KEY_LABEL};
use crate::pem;

/// The algorithm name in [`Signature::algorithm`].
pub const ALGORITHM: &str = "ecdsa-p256-sha256";

/// An ECDSA P-256 private key. `Debug` shows only its key id.
pub struct EcdsaP256Key {
    pair: EcdsaKeyPair,
    public: PublicKey,
}

impl fmt::Debug for EcdsaP256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaP256Key")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

impl EcdsaP256Key {
    /// A new random key.
    pub fn generate() -> Result<Self> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .map_err(|_| Error::internal("cannot generate an ECDSA P-256 key"))?;
        Self::from_pkcs8_der(doc.as_ref(), "a generated key")
    }

    /// A key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); `origin` names the source in
    /// errors (a file path).
    pub fn from_pkcs8_pem(pem_text: &str, origin: &str) -> Result<Self> {
        let der = pem::decode(pem_text, "PRIVATE KEY", origin)?;
        Self::from_pkcs8_der(&der, origin)
    }

    fn from_pkcs8_der(der: &[u8], origin: &str) -> Result<Self> {
        // PKCS#8 (what cosign and openssl's pkcs8 write) or SEC1 ECPrivateKey.
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map_err(|e| {
                Error::invalid(format!(
                    "{origin} is not an ECDSA P-256 private key in PKCS#8 form: {e}"
                ))
            })?;
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| Error::internal("cannot encode the public key"))?;
        let public = PublicKey::from_spki_der(spki.as_ref(), origin)?;
        Ok(Self { pair, public })
    }

    /// The private key as PKCS#8 PEM, wrapped so it cannot be logged by accident.
    pub fn to_pkcs8_pem(&self) -> Result<Secret> {
        let doc = self
            .pair
            .to_pkcs8v1()
            .map_err(|_| Error::internal("cannot encode the private key"))?;
        Ok(Secret::new(pem::encode("PRIVATE KEY", doc.as_ref())))
    }

    /// Load the key at `path`, or generate one there on first use: the private key is
    /// written with mode 0600 (PKCS#8 PEM) and its public key beside it (see
    /// [`public_path`]).
    pub fn load_or_generate(path: &Path) -> Result<Self> {
        Self::load_or_generate_with(path, None)
    }

    /// Like [`EcdsaP256Key::load_or_generate`], with a password: an existing cosign.key is
    /// decrypted with it, and a new key is written encrypted as cosign writes `cosign.key`.
    pub fn load_or_generate_with(path: &Path, password: Option<&Secret>) -> Result<Self> {
        match fs::read_to_string(path) {
            Ok(text) => Self::from_pem(&text, password, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                key.write_new(path, password)?;
                Ok(key)
            }
            Err(e) => Err(Error::new(
                ErrorKind::Denied,
                format!("cannot read key file {}: {e}", path.display()),
            )),
        }
    }

    /// A key from PEM: PKCS#8 (`PRIVATE KEY`) or cosign's encrypted key
    /// (`ENCRYPTED SIGSTORE PRIVATE KEY`, `ENCRYPTED COSIGN PRIVATE KEY`), which needs
    /// `password`.
    pub fn from_pem(text: &str, password: Option<&Secret>, origin: &str) -> Result<Self> {
        match pem::label(text) {
            Some("PRIVATE KEY") => Self::from_pkcs8_pem(text, origin),
            Some(label @ (COSIGN_KEY_LABEL | LEGACY_COSIGN_KEY_LABEL)) => {
                let password = password.ok_or_else(|| {
                    Error::invalid(format!(
                        "{origin} is an encrypted cosign key: its password is needed (set the variable [sign] password_env names, COSIGN_PASSWORD by default)"
                    ))
                })?;
                let sealed = pem::decode(text, label, origin)?;
                let der = cosign_key::open(&sealed, password, origin)?;
                Self::from_pkcs8_der(&der, origin)
            }
            Some(other) => Err(Error::invalid(format!(
                "{origin}: a PEM {other}, not an ECDSA private key (PRIVATE KEY or a cosign.key)"
            ))),
            None => Err(Error::invalid(format!("{origin}: not a PEM key file"))),
        }
    }

    /// The key as cosign's encrypted `cosign.key` (PEM), sealed under `password`.
    pub fn to_cosign_key(&self, password: &Secret) -> Result<Secret> {
        let doc = self
            .pair
            .to_pkcs8v1()
            .map_err(|_| Error::internal("cannot encode the private key"))?;
        let sealed = cosign_key::seal(doc.as_ref(), password)?;
        Ok(Secret::new(pem::encode(COSIGN_KEY_LABEL, &sealed)))
    }

    fn write_new(&self, path: &Path, password: Option<&Secret>) -> Result<()> {
        let fail = |e: std::io::Error| {
            Error::new(
                ErrorKind::Denied,
                format!("cannot write key file {}: {e}", path.display()),
            )
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(fail)?;
        let text = match password {
            Some(p) => self.to_cosign_key(p)?,
            None => self.to_pkcs8_pem()?,
        };
        f.write_all(text.expose().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(fail)?;
        fs::write(public_path(path), self.public.to_pem()).map_err(fail)
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// Where [`EcdsaP256Key::load_or_generate`] puts the public key of the key at `path`.
pub fn public_path(path: &Path) -> PathBuf {
    // cosign's pair: cosign.key and cosign.pub.
    if path.extension().is_some_and(|e| e == "key") {
        return path.with_extension("pub");
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

#[async_trait]
impl Signer for EcdsaP256Key {
    fn key_id(&self) -> &str {
        &self.public.key_id
    }

    async fn sign(&self, payload: &[u8], _opts: &SignOptions) -> Result<Signature> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), payload)
            .map_err(|_| Error::internal("ECDSA signing failed"))?;
        Ok(Signature::new(
            sig.as_ref().to_vec(),
            ALGORITHM,
            self.public.key_id.clone(),
        ))
    }
}

/// An ECDSA P-256 public key that verifies signatures.
#[derive(Clone)]
pub struct PublicKey {
    key: std::sync::Arc<ParsedPublicKey>,
    spki_der: Vec<u8>,
    key_id: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl PublicKey {
    /// A key from PEM `PUBLIC KEY` (as `cosign public-key` prints it).
    pub fn from_pem(pem_text: &str, origin: &str) -> Result<Self> {
        let der = pem::decode(pem_text, "PUBLIC KEY", origin)?;
        Self::from_spki_der(&der, origin)
    }

    /// Read a PEM public key file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| {
            Error::not_found(format!("cannot read public key {}: {e}", path.display()))
        })?;
        Self::from_pem(&text, &path.display().to_string())
    }

    /// A key from SubjectPublicKeyInfo DER (as KMS's `GetPublicKey` returns it).
    pub fn from_spki_der(der: &[u8], origin: &str) -> Result<Self> {
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).map_err(|e| {
            Error::invalid(format!("{origin} is not an ECDSA P-256 public key: {e}"))
        })?;
        Ok(Self {
            key: std::sync::Arc::new(key),
            spki_der: der.to_vec(),
            key_id: Digest::sha256_of(der).to_string(),
        })
    }

    /// PEM `PUBLIC KEY`.
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.spki_der)
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key id: `sha256:` of the SubjectPublicKeyInfo DER.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `signature` (ASN.1 DER) over `message` verifies with this key.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

#[async_trait]
impl Verifier for PublicKey {
    async fn verify(
        &self,
        payload: &[u8],
        signature: &Signature,
        opts: &VerifyOptions,
    ) -> Result<Verified> {
        if opts.require_log_entry && signature.log_entry.is_none() {
            return Err(Error::integrity(
                "the signature has no transparency-log entry, and one is required",
            ));
        }
        if signature.algorithm != ALGORITHM {
            return Err(Error::integrity(format!(
                "signature algorithm {:?} is not {ALGORITHM}",
                signature.algorithm
            )));
        }
        self.key
            .verify_sig(payload, &signature.bytes)
            .map_err(|_| {
                Error::integrity(format!(
                    "the signature does not verify with key {}",
                    self.key_id
                ))
            })?;
        Ok(Verified::new(self.key_id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn conforms() {
        let key = EcdsaP256Key::generate().unwrap();
        let other = EcdsaP256Key::generate().unwrap();
        block_on(wharf_core::conformance::signer_verifier(
            &key,
            key.public_key(),
            &other,
        ));
    }

    #[test]
    fn pem_round_trips_and_debug_hides_the_key() {
        let key = EcdsaP256Key::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let again = EcdsaP256Key::from_pkcs8_pem(pem.expose(), "test").unwrap();
        assert_eq!(again.key_id(), key.key_id());
        let body = pem.expose().lines().nth(1).unwrap().to_owned();
        assert!(!format!("{key:?} {pem:?}").contains(&body));
        let public = PublicKey::from_pem(&key.public_key().to_pem(), "pub").unwrap();
        assert_eq!(public.key_id(), key.key_id());
    }

    #[test]
    fn load_or_generate_makes_a_private_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.pem");
        let first = EcdsaP256Key::load_or_generate(&path).unwrap();
        let second = EcdsaP256Key::load_or_generate(&path).unwrap();
        assert_eq!(first.key_id(), second.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let public = PublicKey::from_file(&public_path(&path)).unwrap();
        assert_eq!(public.key_id(), first.key_id());
    }

    #[test]
    fn bad_keys_are_named() {
        let err = EcdsaP256Key::from_pkcs8_pem("not pem", "key.pem").unwrap_err();
        assert!(err.to_string().starts_with("key.pem"), "{err}");
        let err = PublicKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
            "cosign.pub",
        )
        .unwrap_err();
        assert!(err.to_string().contains("cosign.pub"), "{err}");
        let err = PublicKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "cosign.pub",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("is not an ECDSA P-256 public key"),
            "{err}"
        );
    }
}
