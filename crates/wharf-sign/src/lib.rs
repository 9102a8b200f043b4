//! wharf-sign: cosign-compatible signing for ML model supply chains.
//!
//! [`EcdsaP256Key`], an ECDSA P-256 key (the algorithm cosign uses) as a
//! [`wharf_core::Signer`], generated on first use and kept as cosign's encrypted
//! `cosign.key` or PKCS#8 PEM, and [`PublicKey`], its public half as a
//! [`wharf_core::Verifier`]; `kms` (feature) for AWS KMS keys. Images are signed and
//! verified in cosign's legacy `.sig` format ([`cosign`]) and as cosign 3's Sigstore bundle
//! referrers ([`referrers`]); [`attest`] writes in-toto attestations (SLSA provenance, model
//! evaluation, SBOM, scan results). Keyless: `keyless` (feature) gets Fulcio certificates
//! for OIDC tokens and logs in Rekor; [`fulcio`] verifies certificates against a trust root
//! ([`rekor::TrustedRoot`]) by identity and issuer; [`rekor`] checks log evidence offline.
//! [`Trust`] says whom an image's signatures must come from.
//!
//! The modules are layers; each uses only those before it:
//!
//! 1. formats — [`dsse`] (in-toto statements in DSSE envelopes);
//! 2. evidence — [`x509`], [`rekor`] (log entries, trust roots), [`fulcio`] (certificate
//!    trust), [`simple_signing`] (cosign's payload and one signature layer checked) and
//!    [`bundle`] (Sigstore bundles checked offline);
//! 3. signers — keys ([`EcdsaP256Key`], [`PublicKey`]), `kms`, [`keyless`] (a Fulcio and
//!    Rekor session);
//! 4. storage on images — [`cosign`] (`.sig` tags), [`attest`] (`.att` tags) and
//!    [`referrers`] (bundles as OCI 1.1 referrers).
//!
//! ```
//! use wharf_core::{Signer, Verifier, sign::{SignOptions, VerifyOptions}};
//! use wharf_sign::EcdsaP256Key;
//! # futures::executor::block_on(async {
//! let key = EcdsaP256Key::generate()?;
//! let sig = key.sign(b"checkpoint", &SignOptions::default()).await?;
//! key.public_key().verify(b"checkpoint", &sig, &VerifyOptions::default()).await?;
//! assert!(key.public_key().verify(b"tampered", &sig, &VerifyOptions::default()).await.is_err());
//! # Ok::<(), wharf_core::Error>(()) }).unwrap();
//! ```

pub mod attest;
mod b64;
pub mod bundle;
pub mod cosign;
mod cosign_key;
pub mod dsse;
pub mod fulcio;
mod key;
pub mod keyless;
#[cfg(feature = "kms")]
pub mod kms;
mod pem;
pub mod referrers;
pub mod rekor;
pub mod simple_signing;
pub mod x509;

pub use cosign_key::{COSIGN_KEY_LABEL, LEGACY_COSIGN_KEY_LABEL};
pub use key::{ALGORITHM, EcdsaP256Key, PublicKey, public_path};

// What call sites need from wharf-core, so depending on this crate alone is enough.
pub use wharf_core;
pub use wharf_core::sign::{SignOptions, VerifyOptions};
pub use wharf_core::{Digest, Registry, Signature, Signer, Verifier};

/// Whom an image's signatures must come from.
#[derive(Clone, Copy)]
pub enum Trust<'a> {
    /// A key: a key file's public half, a KMS key.
    Key(&'a dyn wharf_core::Verifier),
    /// Keyless: a Fulcio certificate issued to `identity` by an authority of `root`, the
    /// signature logged in one of `root`'s transparency logs.
    Keyless {
        /// The required certificate identity and OIDC issuer.
        identity: &'a fulcio::Identity,
        /// The trusted root (Fulcio, Rekor and CT log keys).
        root: &'a rekor::TrustedRoot,
    },
}

impl std::fmt::Debug for Trust<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(_) => f.write_str("Trust::Key"),
            Self::Keyless { identity, .. } => write!(f, "Trust::Keyless({})", identity.describe()),
        }
    }
}

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
