//! OIDC workload identity for wharf: where a CI job or a pod gets an ID token, and the
//! short-lived cloud credentials that token buys — never a long-lived key.
//!
//! | piece | what it is |
//! |---|---|
//! | [`source`] | [`IdTokenSource`]s: [`GitHubActions`](source::GitHubActions), [`GitLab`](source::GitLab) `id_tokens`, [`TokenFile`](source::TokenFile) (Kubernetes projected tokens), [`TokenVar`](source::TokenVar); [`detect`](source::detect) picks one in a documented order |
//! | [`jwt`] | the claims of a token, decoded — not verified: the cloud that accepts the token verifies it |
//! | [`aws`] (feature `aws`) | STS `AssumeRoleWithWebIdentity` as a [`CloudCredentials`] and an aws-config credentials provider |
//! | [`azure`] | Entra workload identity: the token as a client assertion for an access token |
//! | [`gcp`] | Google workload identity federation: STS token exchange, then optional service-account impersonation |
//! | [`diagnose`] | what a denial means: the token's `iss`, `aud`, `sub` beside what the trust policy must say |
//!
//! Every exchange caches its credentials and asks again a few minutes before they expire;
//! tokens and credentials are [`Secret`](wharf_core::Secret)s, so no `Debug`, `Display`,
//! log line or error shows them.
//!
//! ```no_run
//! # async fn run() -> wharf_core::Result<()> {
//! use std::sync::Arc;
//! use wharf_core::{CloudCredentials, identity::CredentialOptions};
//! use wharf_identity::{azure::AzureWorkloadIdentity, source};
//!
//! // GitHub Actions, GitLab, a projected token file… whatever this job has.
//! let detected = source::detect(&source::Env::process())?.expect("no OIDC token here");
//! let azure = AzureWorkloadIdentity::new(detected.source, "tenant-id", "client-id");
//! let creds = azure
//!     .credentials(&CredentialOptions::for_scope("https://management.azure.com/.default"))
//!     .await?;
//! println!("{} until {}", creds.principal, creds.expires_at);
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use wharf_core;
pub use wharf_core::{CloudCredentials, IdTokenSource};

#[cfg(feature = "aws")]
pub mod aws;
pub mod azure;
mod cache;
pub mod diagnose;
pub mod gcp;
mod http;
pub mod jwt;
pub mod source;

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

/// What time it is, for deciding when a token or credentials need renewing. Tests pass a
/// clock they move by hand.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The clock every type here uses unless given another.
pub(crate) fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Credentials are asked for again when they have less than this left.
pub const REFRESH_MARGIN: time::Duration = time::Duration::minutes(5);

/// The README's example (it needs the `aws` feature), run as a doctest.
#[cfg(all(doctest, feature = "aws"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
