//! Azure: Entra workload identity federation — the ID token as a client assertion for an
//! application's access token to a scope (ARM, AKS, ACR, Storage), as azure-identity's
//! `WorkloadIdentityCredential` does. No client secret exists anywhere.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use wharf_core::identity::{CredentialOptions, Credentials};
use wharf_core::{CloudCredentials, Error, ErrorKind, IdToken, IdTokenSource, Result, Secret};

use crate::cache::Cache;
use crate::source::Env;
use crate::{Clock, REFRESH_MARGIN, diagnose, system_clock};

/// The audience Entra expects federated tokens to have.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Entra's public-cloud authority.
pub const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

/// An Entra application's access tokens, bought with ID tokens; one per scope, renewed five
/// minutes before expiry.
pub struct AzureWorkloadIdentity {
    source: Arc<dyn IdTokenSource>,
    tenant_id: String,
    client_id: String,
    authority: String,
    audience: String,
    http: reqwest::Client,
    cache: Cache<Credentials>,
}

impl fmt::Debug for AzureWorkloadIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureWorkloadIdentity")
            .field("source", &self.source)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl AzureWorkloadIdentity {
    /// Application `client_id` of `tenant_id`, with tokens from `source`.
    pub fn new(
        source: Arc<dyn IdTokenSource>,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            source,
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            authority: PUBLIC_AUTHORITY.to_owned(),
            audience: TOKEN_EXCHANGE_AUDIENCE.to_owned(),
            http: crate::http::client(),
            cache: Cache::new(system_clock(), REFRESH_MARGIN),
        }
    }

    /// With tenant, client and authority from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_AUTHORITY_HOST` (what AKS workload identity's webhook sets), `tenant_id` and
    /// `client_id` taking precedence; an error naming what is missing.
    pub fn from_env(
        source: Arc<dyn IdTokenSource>,
        tenant_id: Option<&str>,
        client_id: Option<&str>,
        env: &Env,
    ) -> Result<Self> {
        let get = |given: Option<&str>, var: &str, field: &str| {
            given.or_else(|| env.get(var)).map(str::to_owned).ok_or_else(|| {
                Error::invalid(format!(
                    "Azure workload identity needs the {field}: set [identity.azure] {field} or {var}"
                ))
            })
        };
        let mut me = Self::new(
            source,
            get(tenant_id, "AZURE_TENANT_ID", "tenant_id")?,
            get(client_id, "AZURE_CLIENT_ID", "client_id")?,
        );
        if let Some(host) = env.get("AZURE_AUTHORITY_HOST") {
            me = me.authority_host(host);
        }
        Ok(me)
    }

    /// Entra at `url` (a sovereign cloud, a test server) instead of the public one.
    pub fn authority_host(mut self, url: impl Into<String>) -> Self {
        self.authority = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Ask the source for tokens for `audience` (default [`TOKEN_EXCHANGE_AUDIENCE`]).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Decide expiry by `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.cache = Cache::new(clock, REFRESH_MARGIN);
        self
    }

    /// The audience tokens are asked for.
    pub fn token_audience(&self) -> &str {
        &self.audience
    }

    async fn fetch(&self, scope: &str) -> Result<(Credentials, OffsetDateTime)> {
        let token = self.source.id_token(&self.audience).await?;
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant_id);
        let form = [
            ("client_id", self.client_id.as_str()),
            ("scope", scope),
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", token.token.expose()),
        ];
        let request = self.http.post(&url).form(&form);
        let (status, body) = crate::http::send("Entra", &url, request, &[&token.token]).await?;
        if status != 200 {
            return Err(self.explain(status, &body, &token, scope));
        }
        let access = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::invalid(format!("Entra at {url} answered without access_token"))
            })?;
        let expires_in = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| Error::invalid(format!("Entra at {url} answered without expires_in")))?;
        let expires_at = self.cache.clock().now() + time::Duration::seconds(expires_in);
        let mut creds = Credentials::new("azure", &self.client_id, Secret::new(access), expires_at);
        creds.identity = Some(format!(
            "Entra application {} in tenant {}",
            self.client_id, self.tenant_id
        ));
        Ok((creds, expires_at))
    }

    /// One line on why Entra refused, with what to fix.
    fn explain(&self, status: u16, body: &Value, token: &IdToken, scope: &str) -> Error {
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        // Entra appends trace and correlation ids (after a newline in older answers, a
        // space in newer ones): noise in a one-line error.
        let description = description
            .split("Trace ID:")
            .next()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .trim();
        let code = body
            .get("error_codes")
            .and_then(|c| c.get(0))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let facts = diagnose::token_facts(token);
        let app = &self.client_id;
        let advice = match code {
            700_213 | 7_002_138 => format!(
                "{facts}; application {app} needs a federated identity credential with issuer {:?}, subject {:?} (exact match) and audience {:?}; usual causes: {}",
                token.issuer,
                token.subject,
                token.audience,
                diagnose::usual_causes(&token.issuer)
            ),
            700_212 => format!(
                "{facts}; the federated credential's audience must be {:?} (Entra's default is {TOKEN_EXCHANGE_AUDIENCE})",
                token.audience
            ),
            700_211 => format!(
                "{facts}; the federated credential's issuer must be exactly {:?}",
                token.issuer
            ),
            700_016 => format!(
                "no application {app} in tenant {}: check [identity.azure] client_id (AZURE_CLIENT_ID) and tenant_id",
                self.tenant_id
            ),
            90_002 => format!(
                "no tenant {}: check [identity.azure] tenant_id (AZURE_TENANT_ID)",
                self.tenant_id
            ),
            700_024 => {
                format!("{facts}; the token is outside its valid time: check this machine's clock")
            }
            70_011 | 1_002_012 => {
                format!("the scope {scope:?} is not valid: scopes end in /.default")
            }
            _ => facts,
        };
        let kind = match code {
            700_213 | 7_002_138 | 700_212 | 700_211 | 700_024 => ErrorKind::Unauthenticated,
            700_016 | 90_002 => ErrorKind::NotFound,
            _ => crate::http::kind_of(status),
        };
        let error = body.get("error").and_then(Value::as_str).unwrap_or("error");
        Error::new(
            kind,
            format!(
                "Entra refused a token for {scope} (HTTP {status} {error}): {description} — {advice}"
            ),
        )
    }
}

#[async_trait]
impl CloudCredentials for AzureWorkloadIdentity {
    async fn credentials(&self, opts: &CredentialOptions) -> Result<Credentials> {
        let scope = opts.scope.as_deref().ok_or_else(|| {
            Error::invalid(
                "Azure access tokens are per scope: ask with CredentialOptions::for_scope (https://management.azure.com/.default for ARM)",
            )
        })?;
        self.cache.get(scope, || self.fetch(scope)).await
    }
}
