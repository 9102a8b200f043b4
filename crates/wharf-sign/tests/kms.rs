#![allow(clippy::unwrap_used)]
//! [`KmsKey`] against moto's KMS (`WHARF_TEST_MOTO`, set by `cargo xtask test`): ECC_NIST_P256
//! keys sign, and the signatures verify with the public key from `GetPublicKey`.
//!
//! moto's gap (TESTBED.md): with `MessageType=DIGEST` it hashes the digest again, which real
//! KMS does not. Payloads over 4 KiB go as DIGEST, so that test accepts either signature
//! (over the payload, as real KMS makes it, or over its digest, as moto does): both prove the
//! request carried exactly the payload's SHA-256.

#[cfg(not(feature = "kms"))]
#[test]
fn kms_tests_need_the_kms_feature() {
    panic!("these tests need `--features kms`: run them with `cargo xtask test`");
}

#[cfg(feature = "kms")]
mod kms {
    use aws_sdk_kms::Client;
    use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    use wharf_core::sign::{SignOptions, Signature, VerifyOptions};
    use wharf_core::{Digest, ErrorKind, Signer, Verifier};
    use wharf_sign::EcdsaP256Key;
    use wharf_sign::kms::{KmsKey, MAX_RAW_MESSAGE, parse_reference};

    /// The AWS secret key the tests sign requests with: must never show in output.
    const SECRET_KEY_CANARY: &str = "wharf-canary-kms-secret-Tr61Wd";

    fn client() -> Client {
        let moto = std::env::var("WHARF_TEST_MOTO").unwrap_or_else(|_| {
            panic!(
                "WHARF_TEST_MOTO is not set: run the tests with `cargo xtask test`, or start the \
                 backends with `cargo xtask backends up` and `eval \"$(cargo xtask backends env)\"` first"
            )
        });
        Client::from_conf(
            aws_sdk_kms::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new(
                    "AKIDWHARFTEST",
                    SECRET_KEY_CANARY,
                    None,
                    None,
                    "test",
                ))
                .endpoint_url(moto)
                .build(),
        )
    }

    async fn create_key(c: &Client, spec: KeySpec, usage: KeyUsageType) -> String {
        c.create_key()
            .key_spec(spec)
            .key_usage(usage)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_owned()
    }

    #[tokio::test]
    async fn a_kms_key_conforms_as_signer_and_by_alias() {
        let c = client();
        let id = create_key(&c, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
        let key = KmsKey::connect(c.clone(), &format!("awskms:///{id}"))
            .await
            .unwrap();
        let other = EcdsaP256Key::generate().unwrap();
        wharf_core::conformance::signer_verifier(&key, key.public_key(), &other).await;

        let alias = format!("alias/wharf-test-{}", std::process::id());
        c.create_alias()
            .alias_name(&alias)
            .target_key_id(&id)
            .send()
            .await
            .unwrap();
        let by_alias = KmsKey::connect(c, &format!("awskms:///{alias}"))
            .await
            .unwrap();
        assert_eq!(by_alias.public_key().key_id(), key.public_key().key_id());
        assert!(!format!("{by_alias:?}").contains(SECRET_KEY_CANARY));
    }

    #[tokio::test]
    async fn long_payloads_are_signed_as_their_digest() {
        let c = client();
        let id = create_key(&c, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
        let key = KmsKey::connect(c, &format!("awskms:///{id}"))
            .await
            .unwrap();
        let payload = vec![b'x'; MAX_RAW_MESSAGE + 1];
        let sig = key.sign(&payload, &SignOptions::default()).await.unwrap();
        let digest = Digest::sha256_of(&payload);
        let digest_bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&digest.hex()[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let verify = |msg: &[u8]| {
            let sig = Signature::new(sig.bytes.clone(), wharf_sign::ALGORITHM, "");
            let public = key.public_key().clone();
            let msg = msg.to_vec();
            async move { public.verify(&msg, &sig, &VerifyOptions::default()).await }
        };
        let real_kms = verify(&payload).await.is_ok();
        let moto = verify(&digest_bytes).await.is_ok();
        assert!(
            real_kms || moto,
            "the signature covers neither the payload nor its digest"
        );
    }

    #[tokio::test]
    async fn unusable_keys_and_references_are_named() {
        let c = client();
        let rsa = create_key(&c, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
        let err = KmsKey::connect(c.clone(), &format!("awskms:///{rsa}"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(err.to_string().contains("not ECC_NIST_P256"), "{err}");
        let err = KmsKey::connect(c.clone(), "awskms:///alias/wharf-no-such-key")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(
            err.to_string()
                .contains("looking up KMS key alias/wharf-no-such-key"),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains(SECRET_KEY_CANARY));
        for bad in ["alias/x", "awskms://", "awskms://host"] {
            assert_eq!(
                parse_reference(bad).unwrap_err().kind(),
                ErrorKind::Invalid,
                "{bad}"
            );
        }
        assert_eq!(
            parse_reference("awskms:///arn:aws:kms:us-east-1:1:key/k").unwrap(),
            "arn:aws:kms:us-east-1:1:key/k"
        );
        assert_eq!(
            parse_reference("awskms://kms.local:4566/alias/a").unwrap(),
            "alias/a"
        );
    }
}
