//! AWS KMS asymmetric keys as signers: the private key never leaves KMS. Keys are named as
//! cosign names them, `awskms://[ENDPOINT]/KEY` where KEY is a key id, `alias/NAME` or a key
//! ARN.
//!
//! ```no_run
//! # async fn demo() -> wharf_core::Result<()> {
//! let config = aws_config::load_from_env().await;
//! let key = wharf_sign::kms::KmsKey::connect(
//!     aws_sdk_kms::Client::new(&config),
//!     "awskms:///alias/model-signing",
//! )
//! .await?;
//! # Ok(()) }
//! ```

use std::fmt;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use wharf_core::sign::{SignOptions, Signature, Signer};
use wharf_core::{Digest, Error, ErrorKind, Result};

use crate::PublicKey;

/// The largest message KMS signs as `RAW`; longer payloads are sent as their SHA-256
/// digest (`DIGEST`), which gives the same signature.
pub const MAX_RAW_MESSAGE: usize = 4096;

/// The key id part of an `awskms://[endpoint]/KEY` reference.
pub fn parse_reference(reference: &str) -> Result<&str> {
    let rest = reference.strip_prefix("awskms://").ok_or_else(|| {
        Error::invalid(format!(
            "{reference:?} is not a KMS key reference: write awskms:///KEY-ID, awskms:///alias/NAME or awskms:///arn:aws:kms:…"
        ))
    })?;
    let key = rest.split_once('/').map_or("", |(_, k)| k);
    if key.is_empty() {
        return Err(Error::invalid(format!(
            "{reference:?} names no key: write awskms:///KEY-ID, awskms:///alias/NAME or awskms:///arn:aws:kms:…"
        )));
    }
    Ok(key)
}

/// An ECC_NIST_P256 signing key in AWS KMS.
#[derive(Clone)]
pub struct KmsKey {
    client: Client,
    key: String,
    public: PublicKey,
}

impl fmt::Debug for KmsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsKey")
            .field("key", &self.key)
            .field("public_key", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl KmsKey {
    /// Look the key up (`GetPublicKey`) and check it can sign with ECDSA P-256 / SHA-256.
    pub async fn connect(client: Client, reference: &str) -> Result<Self> {
        let key = parse_reference(reference)?.to_owned();
        let out = client
            .get_public_key()
            .key_id(&key)
            .send()
            .await
            .map_err(|e| kms_error(&format!("looking up KMS key {key}"), e))?;
        // KMS answers KeySpec and the older CustomerMasterKeySpec (some emulators only the
        // latter).
        #[allow(deprecated)]
        let spec = out.key_spec().map(|s| s.as_str().to_owned()).or_else(|| {
            out.customer_master_key_spec()
                .map(|s| s.as_str().to_owned())
        });
        if spec.as_deref() != Some(KeySpec::EccNistP256.as_str()) {
            return Err(Error::invalid(format!(
                "KMS key {key} is {}, not ECC_NIST_P256: create it with --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY",
                spec.as_deref().unwrap_or("of an unknown key spec")
            )));
        }
        if out.key_usage() != Some(&KeyUsageType::SignVerify)
            || !out
                .signing_algorithms()
                .contains(&SigningAlgorithmSpec::EcdsaSha256)
        {
            return Err(Error::invalid(format!(
                "KMS key {key} cannot sign with ECDSA_SHA_256 (usage {:?})",
                out.key_usage().map(|u| u.as_str())
            )));
        }
        let der = out
            .public_key()
            .ok_or_else(|| Error::invalid(format!("KMS returned no public key for {key}")))?;
        let public = PublicKey::from_spki_der(der.as_ref(), &format!("KMS key {key}"))?;
        Ok(Self {
            client,
            key: out.key_id().map_or(key, str::to_owned),
            public,
        })
    }

    /// The public key, to verify what this key signs.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key's ARN (or id) in KMS.
    pub fn kms_key_id(&self) -> &str {
        &self.key
    }
}

#[async_trait]
impl Signer for KmsKey {
    fn key_id(&self) -> &str {
        self.public.key_id()
    }

    async fn sign(&self, payload: &[u8], _opts: &SignOptions) -> Result<Signature> {
        let (message, kind) = if payload.len() <= MAX_RAW_MESSAGE {
            (payload.to_vec(), MessageType::Raw)
        } else {
            let digest = Digest::sha256_of(payload);
            let raw = crate::b64::unhex(digest.hex()).unwrap_or_default();
            (raw, MessageType::Digest)
        };
        let out = self
            .client
            .sign()
            .key_id(&self.key)
            .message(Blob::new(message))
            .message_type(kind)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| kms_error(&format!("signing with KMS key {}", self.key), e))?;
        let sig = out.signature().ok_or_else(|| {
            Error::internal(format!("KMS returned no signature for {}", self.key))
        })?;
        Ok(Signature::new(
            sig.as_ref().to_vec(),
            crate::ALGORITHM,
            self.public.key_id(),
        ))
    }
}

fn kms_error<E, R>(what: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    let kind = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Transient,
        SdkError::ServiceError(s) => match s.err().code() {
            Some("NotFoundException") => ErrorKind::NotFound,
            Some("AccessDeniedException") | Some("UnrecognizedClientException") => {
                ErrorKind::Denied
            }
            Some("DisabledException") | Some("KMSInvalidStateException") => ErrorKind::Invalid,
            Some("KMSInternalException") | Some("ThrottlingException") => ErrorKind::Transient,
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    };
    let detail = match &e {
        SdkError::ServiceError(s) => format!(
            "{}: {}",
            s.err().code().unwrap_or("error"),
            s.err().message().unwrap_or("no message")
        ),
        other => DisplayErrorContext(other).to_string(),
    };
    Error::new(kind, format!("{what}: {detail}"))
}
