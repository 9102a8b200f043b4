#![allow(clippy::unwrap_used)]
//! cosign's encrypted key file against an implementation we did not write: Python's scrypt
//! (OpenSSL) and PyNaCl's secretbox (libsodium), following go-securesystemslib's format,
//! which cosign uses. A key sealed there opens here and the other way round; a wrong
//! password is refused. (No cosign binary is installable here: see TESTBED.md.)

use std::path::Path;
use std::process::Command;

use wharf_core::{ErrorKind, Secret, Signer};
use wharf_sign::{EcdsaP256Key, PublicKey, public_path};

/// The test password: it must never show in output.
const PASSWORD_CANARY: &str = "wharf-canary-key-password-Vb52Nq";

fn python() -> String {
    std::env::var("WHARF_TEST_CRYPTO_PYTHON").unwrap_or_else(|_| {
        panic!(
            "WHARF_TEST_CRYPTO_PYTHON is not set: run the tests with `cargo xtask test`, or \
             `cargo xtask backends up` and `eval \"$(cargo xtask backends env)\"` first"
        )
    })
}

const SEAL: &str = r#"
import base64, hashlib, json, os, sys, textwrap, nacl.secret
der = open(sys.argv[1], "rb").read()
salt, nonce = os.urandom(32), os.urandom(24)
key = hashlib.scrypt(os.environ["PW"].encode(), salt=salt, n=32768, r=8, p=1, maxmem=64 << 20, dklen=32)
sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext  # tag || ciphertext
b64 = lambda b: base64.b64encode(b).decode()
doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64(salt)},
       "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)}, "ciphertext": b64(sealed)}
body = "\n".join(textwrap.wrap(b64(json.dumps(doc).encode()), 64))
label = sys.argv[3]
open(sys.argv[2], "w").write(f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
"#;

const OPEN: &str = r#"
import base64, hashlib, json, os, sys, nacl.secret
text = open(sys.argv[1]).read()
assert "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----" in text, text[:60]
body = "".join(l for l in text.splitlines() if not l.startswith("-----"))
doc = json.loads(base64.b64decode(body))
p = doc["kdf"]["params"]
key = hashlib.scrypt(os.environ["PW"].encode(), salt=base64.b64decode(doc["kdf"]["salt"]),
                     n=p["N"], r=p["r"], p=p["p"], maxmem=64 << 20, dklen=32)
der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                         base64.b64decode(doc["cipher"]["nonce"]))
open(sys.argv[2], "wb").write(der)
"#;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl_pkcs8(dir: &Path) -> (std::path::PathBuf, PublicKey) {
    // PKCS#8 DER, as cosign seals it (Go's x509.MarshalPKCS8PrivateKey).
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(dir.join("k.pem")));
    run(Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(dir.join("k.pem"))
        .arg("-out")
        .arg(dir.join("k.der")));
    run(Command::new("openssl")
        .args(["pkey", "-inform", "DER", "-in"])
        .arg(dir.join("k.der"))
        .args(["-pubout", "-out"])
        .arg(dir.join("k.pub")));
    (
        dir.join("k.der"),
        PublicKey::from_file(&dir.join("k.pub")).unwrap(),
    )
}

#[test]
fn a_key_sealed_by_pynacl_opens_here_with_its_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let (der, public) = openssl_pkcs8(dir.path());
    for label in [
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        "ENCRYPTED COSIGN PRIVATE KEY",
    ] {
        let key_file = dir.path().join("cosign.key");
        run(Command::new(python())
            .args(["-c", SEAL])
            .arg(&der)
            .arg(&key_file)
            .arg(label)
            .env("PW", PASSWORD_CANARY));
        let text = std::fs::read_to_string(&key_file).unwrap();
        let key = EcdsaP256Key::from_pem(&text, Some(&Secret::new(PASSWORD_CANARY)), "cosign.key")
            .unwrap();
        assert_eq!(key.key_id(), public.key_id(), "{label}: the same key");

        let err =
            EcdsaP256Key::from_pem(&text, Some(&Secret::new("wrong")), "cosign.key").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied);
        assert_eq!(
            err.to_string(),
            "cosign.key: wrong password (or the key file is damaged)"
        );
        let err = EcdsaP256Key::from_pem(&text, None, "cosign.key").unwrap_err();
        assert!(
            err.to_string()
                .contains("is an encrypted cosign key: its password is needed"),
            "{err}"
        );
        assert!(!format!("{err} {err:?} {key:?}").contains(PASSWORD_CANARY));
    }
}

#[test]
fn a_key_we_seal_opens_with_pynacl_and_is_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cosign.key");
    let key =
        EcdsaP256Key::load_or_generate_with(&path, Some(&Secret::new(PASSWORD_CANARY))).unwrap();
    assert_eq!(
        public_path(&path),
        dir.path().join("cosign.pub"),
        "cosign's pair of names"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(PASSWORD_CANARY));
    run(Command::new(python())
        .args(["-c", OPEN])
        .arg(&path)
        .arg(dir.path().join("out.der"))
        .env("PW", PASSWORD_CANARY));
    run(Command::new("openssl")
        .args(["pkey", "-inform", "DER", "-in"])
        .arg(dir.path().join("out.der"))
        .args(["-pubout", "-out"])
        .arg(dir.path().join("out.pub")));
    let theirs = PublicKey::from_file(&dir.path().join("out.pub")).unwrap();
    assert_eq!(theirs.key_id(), key.key_id());
    // Loading it again needs the password and gives the same key.
    let again =
        EcdsaP256Key::load_or_generate_with(&path, Some(&Secret::new(PASSWORD_CANARY))).unwrap();
    assert_eq!(again.key_id(), key.key_id());
    assert_eq!(
        PublicKey::from_file(&public_path(&path)).unwrap().key_id(),
        key.key_id()
    );
}
