#![allow(clippy::unwrap_used)]
//! Our ECDSA P-256 signatures and keys against an implementation we did not write: the
//! `openssl` command line verifies what we sign, and we verify what it signs.

use std::process::Command;

use wharf_core::sign::{SignOptions, Signature, VerifyOptions};
use wharf_core::{Signer, Verifier};
use wharf_sign::{ALGORITHM, EcdsaP256Key, PublicKey, public_path};

fn openssl(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line runs")
}

#[tokio::test]
async fn openssl_verifies_our_signature_and_we_verify_openssls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = EcdsaP256Key::load_or_generate(&d.join("k.pem")).unwrap();
    std::fs::write(d.join("msg"), b"checkpoint 42").unwrap();
    let sig = key
        .sign(b"checkpoint 42", &SignOptions::default())
        .await
        .unwrap();
    std::fs::write(d.join("sig.der"), &sig.bytes).unwrap();
    let pubfile = public_path(&d.join("k.pem"));
    let out = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            pubfile.to_str().unwrap(),
            "-signature",
            "sig.der",
            "msg",
        ],
        d,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");

    // openssl's key and signature, verified by us; the private key file reads as ours too.
    assert!(
        openssl(
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec.pem"
            ],
            d
        )
        .status
        .success()
    );
    assert!(
        openssl(
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "ec.pem", "-out", "p8.pem"
            ],
            d
        )
        .status
        .success()
    );
    assert!(
        openssl(&["ec", "-in", "ec.pem", "-pubout", "-out", "ec.pub"], d)
            .status
            .success()
    );
    assert!(
        openssl(
            &["dgst", "-sha256", "-sign", "p8.pem", "-out", "o.sig", "msg"],
            d
        )
        .status
        .success()
    );
    let theirs = PublicKey::from_file(&d.join("ec.pub")).unwrap();
    let sig = Signature::new(
        std::fs::read(d.join("o.sig")).unwrap(),
        ALGORITHM,
        theirs.key_id(),
    );
    theirs
        .verify(b"checkpoint 42", &sig, &VerifyOptions::default())
        .await
        .unwrap();
    let err = theirs
        .verify(b"checkpoint 43", &sig, &VerifyOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), wharf_core::ErrorKind::Integrity);
    let loaded = EcdsaP256Key::from_pkcs8_pem(
        &std::fs::read_to_string(d.join("p8.pem")).unwrap(),
        "p8.pem",
    )
    .unwrap();
    assert_eq!(
        loaded.key_id(),
        theirs.key_id(),
        "same key id from private and public halves"
    );
}
