//! The identity contracts: OIDC ID tokens and the short-lived cloud credentials they buy.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{Actor, Result, Secret};

/// An OIDC ID token and the claims wharf uses. The token itself is a [`Secret`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IdToken {
    /// The raw JWT.
    pub token: Secret,
    /// `iss` claim.
    pub issuer: String,
    /// `sub` claim.
    pub subject: String,
    /// `aud` claim (the first, when several).
    pub audience: String,
    /// `exp` claim.
    pub expires_at: OffsetDateTime,
    /// What the token says about the run (`repository`, `ref`, `workflow`, `run_id`,
    /// `environment`, `triggered_by`), for [`IdToken::actor`]; not secret.
    pub context: BTreeMap<String, String>,
}

impl IdToken {
    /// A token with its claims.
    pub fn new(
        token: Secret,
        issuer: impl Into<String>,
        subject: impl Into<String>,
        audience: impl Into<String>,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            token,
            issuer: issuer.into(),
            subject: subject.into(),
            audience: audience.into(),
            expires_at,
            context: BTreeMap::new(),
        }
    }

    /// The actor this token identifies, for run records: its subject, issuer and context.
    pub fn actor(&self) -> Actor {
        let mut actor = Actor::oidc(self.subject.clone(), self.issuer.clone());
        actor.context = self.context.clone();
        actor
    }
}

/// Where OIDC ID tokens come from (GitHub Actions, GitLab, a Kubernetes projected token, a
/// file).
#[async_trait]
pub trait IdTokenSource: fmt::Debug + Send + Sync + 'static {
    /// A fresh token for `audience`.
    async fn id_token(&self, audience: &str) -> Result<IdToken>;
}

/// Short-lived cloud credentials. Secrets are [`Secret`]s; nothing here prints them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Credentials {
    /// Which cloud (`aws`, `azure`, `gcp`).
    pub provider: String,
    /// Access key id, client id, or account (not secret).
    pub principal: String,
    /// The secret part (secret access key, access token).
    pub secret: Secret,
    /// Session token, where the cloud has one.
    pub session_token: Option<Secret>,
    /// When they stop working.
    pub expires_at: OffsetDateTime,
    /// Who the cloud says these credentials act as, for people to read: an assumed-role
    /// ARN, an Entra application, a Google service account. Not secret.
    pub identity: Option<String>,
}

impl Credentials {
    /// Credentials of `provider`.
    pub fn new(
        provider: impl Into<String>,
        principal: impl Into<String>,
        secret: Secret,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            provider: provider.into(),
            principal: principal.into(),
            secret,
            session_token: None,
            expires_at,
            identity: None,
        }
    }

    /// True when they expire within `margin` of `now`.
    pub fn expires_within(&self, now: OffsetDateTime, margin: time::Duration) -> bool {
        self.expires_at - now <= margin
    }
}

/// Options for [`CloudCredentials::credentials`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CredentialOptions {
    /// Requested lifetime; the provider may grant less.
    pub duration: Option<std::time::Duration>,
    /// What the credentials are for, where the cloud issues tokens per audience: an Entra
    /// scope (`6dae42f8-4368-4678-94ff-3960e28e3630/.default` for AKS) or a Google OAuth
    /// scope (`https://www.googleapis.com/auth/cloud-platform`). AWS ignores it.
    pub scope: Option<String>,
}

impl CredentialOptions {
    /// Credentials for `scope` (see [`CredentialOptions::scope`]).
    pub fn for_scope(scope: impl Into<String>) -> Self {
        Self {
            scope: Some(scope.into()),
            ..Self::default()
        }
    }
}

/// Exchanges an identity for short-lived credentials (STS AssumeRoleWithWebIdentity, Azure
/// or GCP workload identity federation).
#[async_trait]
pub trait CloudCredentials: fmt::Debug + Send + Sync + 'static {
    /// Credentials valid now; implementations cache and refresh before expiry.
    async fn credentials(&self, opts: &CredentialOptions) -> Result<Credentials>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let canary = "wharf-canary-8f3c";
        let t = IdToken::new(
            Secret::new(canary),
            "https://token.actions.githubusercontent.com",
            "repo:acme/m:ref:refs/heads/main",
            "sts.amazonaws.com",
            OffsetDateTime::UNIX_EPOCH,
        );
        let mut c = Credentials::new(
            "aws",
            "ASIAEXAMPLE",
            Secret::new(canary),
            OffsetDateTime::UNIX_EPOCH,
        );
        c.session_token = Some(Secret::new(canary));
        let shown = format!("{t:?} {c:?} {}", t.actor());
        assert!(!shown.contains(canary), "{shown}");
        assert!(shown.contains("repo:acme/m"));
    }
}
