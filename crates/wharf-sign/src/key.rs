//! ECDSA P-256 keys (the algorithm cosign uses): sign with a private key, verify with its
//! public half. Signatures are ASN.1 DER over SHA-256 of the message; public keys are PEM
//! `PUBLIC KEY` (SubjectPublicKeyInfo), the form `cosign public-key` prints.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, ParsedPublicKey,
};
use wharf_core::sign::{SignOptions, Signature, Signer, Verified, Verifier, VerifyOptions};
use wharf_core::{Digest, Error, ErrorKind, Result, Secret};

use crate::cosign_key::{self, COSIGN_KEY_LABEL, LEGACY_COSIGN_KEY_LABEL};
use crate::pem;

/// The algorithm label of the signatures this crate makes and reads ([`Signature::algorithm`]):
/// a cosign signature (ASN.1 DER for ECDSA). Whatever the label says, the verifying
/// [`PublicKey`] decides how a signature is checked (its kind: ECDSA P-256/P-384/P-521,
/// RSA, Ed25519).
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
    ///
    /// Safe for concurrent first uses (processes too): a new key is written complete to a
    /// temporary file and hard-linked into place only if `path` does not exist yet, so
    /// exactly one key is created and every other caller loads it. A reader never sees a
    /// partial key; a missing (or empty) public key file is written from the private key.
    /// An empty or truncated key file, left by an interrupted first run of an older version,
    /// is an error saying so; it is never overwritten.
    pub fn load_or_generate(path: &Path) -> Result<Self> {
        Self::load_or_generate_with(path, None)
    }

    /// Like [`EcdsaP256Key::load_or_generate`], with a password: an existing cosign.key is
    /// decrypted with it, and a new key is written encrypted as cosign writes `cosign.key`.
    pub fn load_or_generate_with(path: &Path, password: Option<&Secret>) -> Result<Self> {
        let key = match Self::load_file(path, password)? {
            Some(key) => key,
            None => {
                let key = Self::generate()?;
                if key.write_new(path, password)? {
                    key
                } else {
                    // Another process created the key first: use that one.
                    Self::load_file(path, password)?.ok_or_else(|| {
                        Error::internal(format!(
                            "key file {} vanished right after it was created",
                            path.display()
                        ))
                    })?
                }
            }
        };
        key.ensure_public_file(path)?;
        key_file::remove_stale_temps(path);
        key_file::remove_stale_temps(&public_path(path));
        Ok(key)
    }

    /// The existing key file at `path` (a PKCS#8 PEM, or a `cosign.key` decrypted with
    /// `password`); a missing file is a `NotFound` error naming it. Nothing is written.
    pub fn load(path: &Path, password: Option<&Secret>) -> Result<Self> {
        Self::load_file(path, password)?.ok_or_else(|| {
            Error::not_found(format!(
                "no key file at {}: generate one with `cosign generate-key-pair` or load_or_generate",
                path.display()
            ))
        })
    }

    /// The key in the file at `path`, `None` when there is none.
    fn load_file(path: &Path, password: Option<&Secret>) -> Result<Option<Self>> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Denied,
                    format!("cannot read key file {}: {e}", path.display()),
                ));
            }
        };
        let text = key_file::complete_text(&bytes, path)?;
        Self::from_pem(text, password, &path.display().to_string()).map(Some)
    }

    /// Write the public key beside the private key at `path` when it is missing or empty
    /// (a first run that stopped between the two, or a key brought without its `.pub`);
    /// an existing public key of another key is an error. Best effort where the directory
    /// is read-only (a mounted secret): the key itself is what signing needs.
    fn ensure_public_file(&self, path: &Path) -> Result<()> {
        let pub_path = public_path(path);
        let bytes = match fs::read(&pub_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            // There but unreadable to us: not ours to replace.
            Err(_) => return Ok(()),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // Missing or empty: write it. Every writer derives the same bytes from the one
            // private key, so concurrent renames are harmless.
            let _ = key_file::replace(&pub_path, self.public.to_pem().as_bytes());
            return Ok(());
        }
        let origin = pub_path.display().to_string();
        let matches = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| PublicKey::from_pem(text, &origin).ok())
            .is_some_and(|public| public.key_id == self.public.key_id);
        if matches {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "{origin} is not the public key of {} ({}): delete it to have it written again from the private key, or put the matching pair back",
            path.display(),
            self.public.key_id
        )))
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
                        "{origin} is an encrypted cosign key: its password is needed (pass Some(password) to from_pem or load_or_generate_with; cosign itself reads COSIGN_PASSWORD)"
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

    /// Write this key to `path` unless a key is already there: `Ok(true)` when this one
    /// was written, `Ok(false)` when another writer's key was there first. The file appears
    /// complete or not at all (temp file, fsync, hard link), and its public key follows.
    fn write_new(&self, path: &Path, password: Option<&Secret>) -> Result<bool> {
        let fail = |e: std::io::Error| {
            Error::new(
                ErrorKind::Denied,
                format!("cannot write key file {}: {e}", path.display()),
            )
        };
        let text = match password {
            Some(p) => self.to_cosign_key(p)?,
            None => self.to_pkcs8_pem()?,
        };
        if !key_file::create_new(path, text.expose().as_bytes(), true).map_err(fail)? {
            return Ok(false);
        }
        let pub_path = public_path(path);
        key_file::replace(&pub_path, self.public.to_pem().as_bytes()).map_err(|e| {
            Error::new(
                ErrorKind::Denied,
                format!("cannot write public key file {}: {e}", pub_path.display()),
            )
        })?;
        Ok(true)
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

/// Key files on disk: complete or absent, never half-written.
mod key_file {
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime};

    use wharf_core::{Error, Result};

    /// A temp file older than this was left by a writer that is gone: a writer holds its
    /// temp file only while writing, syncing and linking it.
    const STALE_AFTER: Duration = Duration::from_secs(60);

    /// The text of a key file, or an error saying the file is empty or cut short: what an
    /// interrupted write by an older version leaves behind.
    pub(super) fn complete_text<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str> {
        let shown = path.display();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid(format!(
                "key file {shown} is empty, probably left by a first run that was interrupted while creating it: delete it (and its .pub) and run again to generate a new key"
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Error::invalid(format!("key file {shown} is not a PEM key file (not text)"))
        })?;
        let t = text.trim_start();
        if t.starts_with("-----") && !t.contains("-----END ") {
            return Err(Error::invalid(format!(
                "key file {shown} is truncated (no \"-----END\" line), probably by a first run that was interrupted while creating it: restore it from a backup, or delete it (and its .pub) to generate a new key"
            )));
        }
        Ok(text)
    }

    /// Create `path` holding `contents` if it does not exist: `Ok(false)` when it does.
    /// The bytes go to a temp file beside it (mode 0600 from creation when `private`),
    /// fsynced, then hard-linked to `path`, which fails if `path` exists: an atomic
    /// create-new of a complete file.
    pub(super) fn create_new(path: &Path, contents: &[u8], private: bool) -> std::io::Result<bool> {
        let temp = write_temp(path, contents, private)?;
        let linked = fs::hard_link(&temp, path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                sync_dir(path);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Put `contents` at `path` atomically (temp file, fsync, rename), replacing what is
    /// there: for files derived from the key, which every writer writes identically.
    pub(super) fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
        let temp = write_temp(path, contents, false)?;
        let renamed = fs::rename(&temp, path);
        if renamed.is_err() {
            let _ = fs::remove_file(&temp);
        }
        renamed?;
        sync_dir(path);
        Ok(())
    }

    /// A new temp file beside `path` (`.<name>.<pid>.<n>.tmp`) holding `contents`, synced.
    fn write_temp(path: &Path, contents: &[u8], private: bool) -> std::io::Result<PathBuf> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut attempt = 0;
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = temp_path(path, &format!("{}.{nanos:x}{n}", std::process::id()));
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            if private {
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            }
            #[cfg(not(unix))]
            let _ = private;
            let mut file = match opts.open(&temp) {
                Ok(file) => file,
                // A stale file of an earlier process with this pid: take another name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => {
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let written = file.write_all(contents).and_then(|()| file.sync_all());
            if let Err(e) = written {
                drop(file);
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
            return Ok(temp);
        }
    }

    fn temp_path(path: &Path, unique: &str) -> PathBuf {
        let name = path
            .file_name()
            .map_or_else(|| "key".into(), |n| n.to_string_lossy().into_owned());
        path.with_file_name(format!(".{name}.{unique}.tmp"))
    }

    /// Remove temp files of `path` older than [`STALE_AFTER`]: left by a writer that was
    /// killed (a live one holds its temp file for milliseconds). Best effort: errors are
    /// ignored.
    pub(super) fn remove_stale_temps(path: &Path) {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let prefix = format!(".{}.", name.to_string_lossy());
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            let ours = file_name
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest.ends_with(".tmp"));
            let stale = || {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_AFTER)
            };
            if ours && stale() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Make a new directory entry durable (best effort; a no-op off Unix).
    fn sync_dir(path: &Path) {
        #[cfg(unix)]
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = fs::File::open(dir).and_then(|d| d.sync_all());
        }
        #[cfg(not(unix))]
        let _ = path;
    }
}

impl EcdsaP256Key {
    /// Sign `payload` (ECDSA P-256 over its SHA-256, ASN.1 DER): plain work, no executor.
    /// [`Signer::sign`] does the same.
    pub fn sign_bytes(&self, payload: &[u8]) -> Result<Signature> {
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

    /// What `cosign sign-blob --key` prints for `blob`: the base64 of the DER signature
    /// over the blob (`cosign verify-blob --key cosign.pub --signature <this>` accepts it).
    pub fn sign_blob(&self, blob: &[u8]) -> Result<String> {
        use base64::Engine as _;
        Ok(base64::engine::general_purpose::STANDARD.encode(self.sign_bytes(blob)?.bytes))
    }
}

#[async_trait]
impl Signer for EcdsaP256Key {
    fn key_id(&self) -> &str {
        &self.public.key_id
    }

    async fn sign(&self, payload: &[u8], _opts: &SignOptions) -> Result<Signature> {
        self.sign_bytes(payload)
    }
}

/// An ECDSA P-256 public key that verifies signatures.
#[derive(Clone)]
pub struct PublicKey {
    /// The key parsed once per signature algorithm it may have signed with.
    keys: std::sync::Arc<Vec<ParsedPublicKey>>,
    kind: KeyKind,
    spki_der: Vec<u8>,
    key_id: String,
}

/// The kinds of public keys cosign verifies with, and the signature algorithms each is
/// checked against: the curve's own hash and SHA-256 for ECDSA (cosign's
/// `--signature-digest-algorithm` defaults to SHA-256 whatever the curve; Sigstore bundles
/// use the curve's hash), PKCS#1 v1.5 and PSS with SHA-256 for RSA of 2048 bits or more,
/// and Ed25519 (pure, and Ed25519ph as cosign signs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa,
    Ed25519,
}

type VerificationAlgorithm = dyn aws_lc_rs::signature::VerificationAlgorithm;

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::EcdsaP384 => "ECDSA P-384",
            KeyKind::EcdsaP521 => "ECDSA P-521",
            KeyKind::Rsa => "RSA",
            KeyKind::Ed25519 => "Ed25519",
        }
    }

    /// The algorithms, each with whether it hashes the message with SHA-256 (so that a
    /// SHA-256 digest can stand in for the message).
    fn algorithms(self) -> &'static [(&'static VerificationAlgorithm, bool)] {
        use aws_lc_rs::signature as sig;
        match self {
            KeyKind::EcdsaP256 => &[(&sig::ECDSA_P256_SHA256_ASN1, true)],
            KeyKind::EcdsaP384 => &[
                (&sig::ECDSA_P384_SHA384_ASN1, false),
                (&sig::ECDSA_P384_SHA256_ASN1, true),
            ],
            KeyKind::EcdsaP521 => &[
                (&sig::ECDSA_P521_SHA512_ASN1, false),
                (&sig::ECDSA_P521_SHA256_ASN1, true),
            ],
            KeyKind::Rsa => &[
                (&sig::RSA_PKCS1_2048_8192_SHA256, true),
                (&sig::RSA_PSS_2048_8192_SHA256, true),
            ],
            KeyKind::Ed25519 => &[(&sig::ED25519, false)],
        }
    }
}

/// The SubjectPublicKeyInfo's algorithm, by its DER-encoded OIDs: `Ok(None)` for a kind
/// we do not verify with (DSA, secp256k1, …), an error when it is no SPKI at all.
fn key_kind(spki: &[u8], origin: &str) -> Result<Option<KeyKind>> {
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    let algorithm = crate::x509::spki_algorithm(spki).ok_or_else(|| {
        Error::invalid(format!(
            "{origin} is not a public key (a DER SubjectPublicKeyInfo, PEM `PUBLIC KEY`)"
        ))
    })?;
    Ok(match algorithm {
        (EC_PUBLIC_KEY, Some(P256)) => Some(KeyKind::EcdsaP256),
        (EC_PUBLIC_KEY, Some(P384)) => Some(KeyKind::EcdsaP384),
        (EC_PUBLIC_KEY, Some(P521)) => Some(KeyKind::EcdsaP521),
        (RSA, _) => Some(KeyKind::Rsa),
        (ED25519, _) => Some(KeyKind::Ed25519),
        _ => None,
    })
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

    /// A key from SubjectPublicKeyInfo DER (as KMS's `GetPublicKey` returns it): ECDSA
    /// P-256, P-384 or P-521, RSA of 2048 to 8192 bits, or Ed25519 — the keys cosign
    /// verifies with. Another kind is an `Unsupported` error naming what is supported.
    pub fn from_spki_der(der: &[u8], origin: &str) -> Result<Self> {
        const SUPPORTED: &str = "supported: ECDSA P-256, P-384, P-521; RSA 2048-8192 bits; Ed25519";
        let kind = key_kind(der, origin)?.ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("{origin} is not a public key of a supported kind ({SUPPORTED})"),
            )
        })?;
        if kind == KeyKind::Rsa {
            let bits = crate::x509::rsa_modulus_bits(der).unwrap_or(0);
            if !(2048..=8192).contains(&bits) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("{origin} is an RSA key of {bits} bits ({SUPPORTED})"),
                ));
            }
        }
        let keys = kind
            .algorithms()
            .iter()
            .map(|(alg, _)| ParsedPublicKey::new(*alg, der))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| match kind {
                KeyKind::Rsa => Error::new(
                    ErrorKind::Unsupported,
                    format!("{origin} is an RSA key cosign would refuse or that is malformed ({e}); {SUPPORTED}"),
                ),
                _ => Error::invalid(format!("{origin} is not a valid {} public key: {e}", kind.name())),
            })?;
        Ok(Self {
            keys: std::sync::Arc::new(keys),
            kind,
            spki_der: der.to_vec(),
            key_id: Digest::sha256_of(der).to_string(),
        })
    }

    /// The kind of key: `ECDSA P-256`, `ECDSA P-384`, `ECDSA P-521`, `RSA` or `Ed25519`.
    pub fn kind(&self) -> &'static str {
        self.kind.name()
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

    /// Whether `signature` (ASN.1 DER for ECDSA) over `message` verifies with this key. An
    /// Ed25519 key takes pure Ed25519 and Ed25519ph (RFC 8032 §5.1: SHA-512 of the
    /// message, empty context) — what cosign signs with for Ed25519 keys.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.keys
            .iter()
            .any(|key| key.verify_sig(message, signature).is_ok())
            || (self.kind == KeyKind::Ed25519 && self.verifies_ed25519ph(message, signature))
    }

    fn verifies_ed25519ph(&self, message: &[u8], signature: &[u8]) -> bool {
        use sha2::Digest as _;
        // An Ed25519 SubjectPublicKeyInfo ends with the 32-byte key.
        let Some(raw) = self
            .spki_der
            .len()
            .checked_sub(32)
            .and_then(|at| <[u8; 32]>::try_from(&self.spki_der[at..]).ok())
        else {
            return false;
        };
        let (Ok(key), Ok(sig)) = (
            ed25519_dalek::VerifyingKey::from_bytes(&raw),
            ed25519_dalek::Signature::from_slice(signature),
        ) else {
            return false;
        };
        key.verify_prehashed(sha2::Sha512::new().chain_update(message), None, &sig)
            .is_ok()
    }

    /// Whether `signature` verifies over the message whose SHA-256 is `digest`, with any
    /// SHA-256 algorithm of this key (ECDSA, RSA); Ed25519 and a digest of another
    /// algorithm are an `Unsupported` error (Ed25519 signs the message itself).
    pub(crate) fn verifies_digest(&self, digest: &Digest, signature: &[u8]) -> Result<bool> {
        use aws_lc_rs::digest::{Digest as Sha, SHA256};
        if digest.algorithm() != wharf_core::Algorithm::Sha256 || self.kind == KeyKind::Ed25519 {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "a {} key cannot verify a signature from a {} digest alone: give the whole message",
                    self.kind.name(),
                    digest.algorithm().as_str()
                ),
            ));
        }
        let bytes = crate::b64::unhex(digest.hex())
            .ok_or_else(|| Error::invalid("the digest is not hex"))?;
        let sha = Sha::import_less_safe(&bytes, &SHA256)
            .map_err(|_| Error::invalid("the digest is not 32 bytes"))?;
        // Only the algorithms that hash with SHA-256 can take a SHA-256 digest.
        Ok(self
            .keys
            .iter()
            .zip(self.kind.algorithms())
            .filter(|(_, (_, sha256))| *sha256)
            .any(|(key, _)| key.verify_digest_sig(&sha, signature).is_ok()))
    }

    /// Verify `signature` over `payload`: plain work, no executor. [`Verifier::verify`]
    /// does the same.
    pub fn verify_bytes(
        &self,
        payload: &[u8],
        signature: &Signature,
        opts: &VerifyOptions,
    ) -> Result<Verified> {
        check_signature_meta(signature, opts)?;
        if !self.verifies(payload, &signature.bytes) {
            return Err(Error::integrity(format!(
                "the signature does not verify with key {} ({})",
                self.key_id,
                self.kind.name()
            )));
        }
        Ok(Verified::new(self.key_id.clone()))
    }

    /// Verify a signature as `cosign sign-blob` writes it (base64 of the DER signature;
    /// surrounding whitespace, as in a `.sig` file, is ignored) over `blob`.
    pub fn verify_blob(&self, blob: &[u8], signature_base64: &str) -> Result<Verified> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(signature_base64.trim())
            .map_err(|e| Error::invalid(format!("the blob signature is not base64: {e}")))?;
        self.verify_bytes(
            blob,
            &Signature::new(bytes, ALGORITHM, String::new()),
            &VerifyOptions::default(),
        )
    }
}

/// What every verification checks before the signature itself: a log entry when one is
/// required, and the algorithm label — signatures read from cosign material carry
/// [`ALGORITHM`] whatever the key's kind; the key decides how they are checked.
fn check_signature_meta(signature: &Signature, opts: &VerifyOptions) -> Result<()> {
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
    Ok(())
}

#[async_trait]
impl Verifier for PublicKey {
    async fn verify(
        &self,
        payload: &[u8],
        signature: &Signature,
        opts: &VerifyOptions,
    ) -> Result<Verified> {
        self.verify_bytes(payload, signature, opts)
    }

    async fn verify_digest(
        &self,
        digest: &Digest,
        signature: &Signature,
        opts: &VerifyOptions,
    ) -> Result<Verified> {
        check_signature_meta(signature, opts)?;
        if self.verifies_digest(digest, &signature.bytes)? {
            Ok(Verified::new(self.key_id.clone()))
        } else {
            Err(Error::integrity(format!(
                "the signature does not verify with key {} ({})",
                self.key_id,
                self.kind.name()
            )))
        }
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

    /// Every kind of public key cosign verifies with: the SPKI each makes, read back, checks
    /// signatures made with the matching private key and refuses others'.
    #[test]
    fn ecdsa_rsa_and_ed25519_public_keys_verify_their_signatures() {
        use aws_lc_rs::rsa::KeySize;
        use aws_lc_rs::signature::{self as sig, Ed25519KeyPair, RsaKeyPair};
        let rng = SystemRandom::new();
        let msg = b"payload";
        let mut cases: Vec<(&str, Vec<u8>, Vec<u8>)> = Vec::new();
        for (name, alg) in [
            ("ECDSA P-384", &sig::ECDSA_P384_SHA384_ASN1_SIGNING),
            ("ECDSA P-521", &sig::ECDSA_P521_SHA512_ASN1_SIGNING),
            ("ECDSA P-521", &sig::ECDSA_P521_SHA256_ASN1_SIGNING),
            ("ECDSA P-256", &ECDSA_P256_SHA256_ASN1_SIGNING),
        ] {
            let key = EcdsaKeyPair::generate(alg).unwrap();
            let spki = key.public_key().as_der().unwrap().as_ref().to_vec();
            cases.push((name, spki, key.sign(&rng, msg).unwrap().as_ref().to_vec()));
        }
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let rsa_spki = rsa.public_key().as_der().unwrap().as_ref().to_vec();
        for padding in [&sig::RSA_PKCS1_SHA256, &sig::RSA_PSS_SHA256] {
            let mut out = vec![0; rsa.public_modulus_len()];
            rsa.sign(padding, &rng, msg, &mut out).unwrap();
            cases.push(("RSA", rsa_spki.clone(), out));
        }
        let ed = Ed25519KeyPair::generate().unwrap();
        let ed_spki = ed.public_key().as_der().unwrap().as_ref().to_vec();
        cases.push(("Ed25519", ed_spki, ed.sign(msg).as_ref().to_vec()));

        for (name, spki, signature) in &cases {
            let key = PublicKey::from_spki_der(spki, name).unwrap();
            assert_eq!(key.kind(), *name);
            let sig = Signature::new(signature.clone(), ALGORITHM, "");
            key.verify_bytes(msg, &sig, &VerifyOptions::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                key.verify_bytes(b"other", &sig, &VerifyOptions::default())
                    .is_err(),
                "{name}: another message"
            );
            let again = PublicKey::from_pem(&key.to_pem(), name).unwrap();
            assert_eq!(again.key_id(), key.key_id());
        }
        // Ed25519ph (what cosign signs with for Ed25519 keys): RFC 8032 §7.3's test vector.
        let unhex = |h: &str| crate::b64::unhex(h).unwrap();
        let spki = [
            unhex("302a300506032b6570032100"),
            unhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf"),
        ]
        .concat();
        let ph = Signature::new(
            unhex(concat!(
                "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41",
                "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
            )),
            ALGORITHM,
            "",
        );
        let key = PublicKey::from_spki_der(&spki, "rfc8032").unwrap();
        key.verify_bytes(b"abc", &ph, &VerifyOptions::default())
            .expect("RFC 8032 Ed25519ph vector");
        let err = key
            .verify_bytes(b"abd", &ph, &VerifyOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("(Ed25519)"), "{err}");

        // One key's signature does not verify with another key of the same kind.
        let other = EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
        let other =
            PublicKey::from_spki_der(other.public_key().as_der().unwrap().as_ref(), "o").unwrap();
        let sig = Signature::new(cases[0].2.clone(), ALGORITHM, "");
        assert!(
            other
                .verify_bytes(msg, &sig, &VerifyOptions::default())
                .is_err()
        );
    }

    /// Keys cosign refuses are refused, naming what is supported: RSA under 2048 bits, and
    /// kinds it does not verify with (here secp256k1).
    #[test]
    fn unsupported_keys_are_named() {
        // openssl genrsa 1024 | openssl rsa -pubout (SPKI of a 1024-bit RSA key).
        const RSA_1024: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1rODGlVu3OlfLgU2KOyPYVfKe
Ibc3dfVC4Fth/YqgEaJuzj+U8WNev/Tymhqu7SeuK+0mLwJUf9w03KkBqynArnKB
AWdix3dRx/7x3g9z5ceZtatN9eBDdVMEDrFjXhkZIuggHNsmcTv5rLmTGaYijHIF
HJsd5ezyPHriLHb8HwIDAQAB
-----END PUBLIC KEY-----
";
        // openssl ecparam -name secp256k1 -genkey | openssl ec -pubout.
        const SECP256K1: &str = "-----BEGIN PUBLIC KEY-----
MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEsH6WwqfaetY7R4t73b0v3a7JgBZiI+mp
pyIyNObTtCnyqDKX00dqBv4gEnbqn2N21pgU5HEDmTIA2z6L1jlDzg==
-----END PUBLIC KEY-----
";
        for (pem, needle) in [
            (RSA_1024, "is an RSA key of 1024 bits"),
            (SECP256K1, "not a public key of a supported kind"),
        ] {
            let err = PublicKey::from_pem(pem, "k.pub").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains(needle)
                    && msg.contains(
                        "supported: ECDSA P-256, P-384, P-521; RSA 2048-8192 bits; Ed25519"
                    ),
                "{msg}"
            );
        }
    }

    /// Errors name paths as the caller gave them: a relative path stays relative, nothing
    /// of the working directory or home is added.
    #[test]
    fn errors_carry_only_the_paths_the_caller_gave() {
        let cwd = std::env::current_dir().unwrap();
        let cwd = cwd.to_string_lossy();
        for err in [
            PublicKey::from_file(Path::new("missing-dir/cosign.pub")).unwrap_err(),
            EcdsaP256Key::load(Path::new("missing-dir/cosign.key"), None).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(msg.contains("missing-dir/cosign."), "{msg}");
            assert!(!msg.contains(cwd.as_ref()), "{msg}");
            assert_eq!(err.kind(), ErrorKind::NotFound, "{msg}");
        }
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

    /// A key file an interrupted first run (of an older version) left empty or cut short is
    /// named as such, with what to do, and left as it is: it may be a real key.
    #[test]
    fn an_empty_or_truncated_key_file_says_so_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cosign.key");
        let password = Secret::new("pw");
        fs::write(&path, "").unwrap();
        for password in [None, Some(&password)] {
            let err = EcdsaP256Key::load_or_generate_with(&path, password).unwrap_err();
            let msg = err.to_string();
            assert_eq!(err.kind(), ErrorKind::Invalid);
            assert!(
                msg.starts_with(&format!("key file {} is empty", path.display()))
                    && msg.contains("interrupted")
                    && msg.contains("delete it"),
                "{msg}"
            );
            assert!(!msg.contains("not a PEM"), "{msg}");
            assert_eq!(msg.lines().count(), 1);
        }
        assert_eq!(fs::metadata(&path).unwrap().len(), 0, "not overwritten");
        assert!(!public_path(&path).exists());

        let whole = EcdsaP256Key::generate()
            .unwrap()
            .to_cosign_key(&password)
            .unwrap();
        let whole = whole.expose();
        for cut in [whole.len() / 2, 20, 5] {
            fs::write(&path, &whole[..cut]).unwrap();
            let msg = EcdsaP256Key::load_or_generate_with(&path, Some(&password))
                .unwrap_err()
                .to_string();
            assert!(
                msg.starts_with(&format!("key file {} is truncated", path.display()))
                    && msg.contains("delete it"),
                "cut at {cut}: {msg}"
            );
            assert_eq!(fs::read_to_string(&path).unwrap(), &whole[..cut]);
        }
    }

    /// The public key follows the private key: written when missing or empty, and one of
    /// another key is refused rather than left to make every verification fail.
    #[test]
    fn the_public_key_file_is_written_from_the_private_key_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cosign.key");
        let key = EcdsaP256Key::load_or_generate(&path).unwrap();
        let pub_path = public_path(&path);
        fs::remove_file(&pub_path).unwrap();
        EcdsaP256Key::load_or_generate(&path).unwrap();
        let public = PublicKey::from_file(&pub_path).unwrap();
        assert_eq!(public.key_id(), key.key_id());
        fs::write(&pub_path, "").unwrap();
        EcdsaP256Key::load_or_generate(&path).unwrap();
        assert_eq!(
            PublicKey::from_file(&pub_path).unwrap().key_id(),
            key.key_id()
        );

        let other = EcdsaP256Key::generate().unwrap();
        fs::write(&pub_path, other.public_key().to_pem()).unwrap();
        let msg = EcdsaP256Key::load_or_generate(&path)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("{} is not the public key of", pub_path.display()))
                && msg.contains("delete it"),
            "{msg}"
        );
    }

    /// A writer killed before it linked its key leaves only a temp file: the next run makes
    /// the key as if nothing happened and removes the stale temp file (a recent one, which
    /// may be a live writer's, stays).
    #[test]
    fn a_killed_writers_temp_file_neither_blocks_nor_lingers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit-checkpoint.pem");
        let stale = dir.path().join(".audit-checkpoint.pem.4000000.1f.tmp");
        let live = dir.path().join(".audit-checkpoint.pem.4000001.2a.tmp");
        let pub_stale = dir.path().join(".audit-checkpoint.pem.pub.4000000.3b.tmp");
        for f in [&stale, &live, &pub_stale] {
            fs::write(f, "-----BEGIN PRIVATE KEY-----\nMIGH").unwrap();
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for f in [&stale, &pub_stale] {
            fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let key = EcdsaP256Key::load_or_generate(&path).unwrap();
        assert_eq!(
            EcdsaP256Key::load_or_generate(&path).unwrap().key_id(),
            key.key_id()
        );
        assert!(
            !stale.exists() && !pub_stale.exists(),
            "stale temp files removed"
        );
        assert!(live.exists(), "a recent temp file may be a live writer's");
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            3,
            "the key, its .pub and the live temp: {names:?}"
        );
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
            err.to_string()
                .contains("cosign.pub is not a public key (a DER SubjectPublicKeyInfo"),
            "{err}"
        );
    }

    /// `sign_blob` writes what `cosign sign-blob --key` prints, checked by openssl (an
    /// independent verifier of the same bytes); `verify_blob` reads it back, newline and
    /// all, and refuses another blob, another key and bad base64.
    #[test]
    fn blob_signatures_in_cosigns_format_verify_with_openssl() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let key = EcdsaP256Key::generate().unwrap();
        let blob = b"model weights, or any file";
        let sig = key.sign_blob(blob).unwrap();
        assert!(
            key.public_key()
                .verify_blob(blob, &format!("{sig}\n"))
                .is_ok()
        );
        assert!(key.public_key().verify_blob(b"other", &sig).is_err());
        let other = EcdsaP256Key::generate().unwrap();
        assert!(other.public_key().verify_blob(blob, &sig).is_err());
        let err = key
            .public_key()
            .verify_blob(blob, "not base64!")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);

        std::fs::write(dir.path().join("blob"), blob).unwrap();
        std::fs::write(
            dir.path().join("sig.der"),
            base64::engine::general_purpose::STANDARD
                .decode(&sig)
                .unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("key.pub"), key.public_key().to_pem()).unwrap();
        let out = std::process::Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-verify",
                "key.pub",
                "-signature",
                "sig.der",
                "blob",
            ])
            .current_dir(dir.path())
            .output()
            .expect("openssl is on every machine of this project's kind");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
