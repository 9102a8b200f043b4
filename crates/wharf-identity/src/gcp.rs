//! Google Cloud: workload identity federation — the ID token exchanged at Google's STS for
//! a federated access token, then, optionally, a service account's access token from IAM
//! Credentials `generateAccessToken` — as `google-github-actions/auth` does. No service
//! account key exists anywhere.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use wharf_core::identity::{CredentialOptions, Credentials};
use wharf_core::{CloudCredentials, Error, ErrorKind, IdToken, IdTokenSource, Result, Secret};

use crate::cache::Cache;
use crate::{Clock, REFRESH_MARGIN, diagnose, system_clock};

/// Google's Security Token Service.
pub const STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// Google's IAM Credentials API.
pub const IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com";
/// The scope asked for when the caller names none.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Access tokens for a workload identity pool provider (and, optionally, a service account
/// it may impersonate); one per scope, renewed five minutes before expiry.
pub struct GcpWorkloadIdentity {
    source: Arc<dyn IdTokenSource>,
    provider: String,
    service_account: Option<String>,
    audience: String,
    sts_url: String,
    iam_url: String,
    lifetime: std::time::Duration,
    http: reqwest::Client,
    cache: Cache<Credentials>,
}

impl fmt::Debug for GcpWorkloadIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpWorkloadIdentity")
            .field("source", &self.source)
            .field("provider", &self.provider)
            .field("service_account", &self.service_account)
            .finish_non_exhaustive()
    }
}

impl GcpWorkloadIdentity {
    /// Tokens from `source` for `provider`, the provider's full name
    /// (`//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`;
    /// `projects/…` alone is taken too); an error for anything else.
    pub fn new(source: Arc<dyn IdTokenSource>, provider: &str) -> Result<Self> {
        let path = provider
            .trim_start_matches("//iam.googleapis.com/")
            .trim_start_matches("https://iam.googleapis.com/");
        let segments: Vec<&str> = path.split('/').collect();
        let ok = segments.len() == 8
            && segments[0] == "projects"
            && segments[1].bytes().all(|b| b.is_ascii_digit())
            && !segments[1].is_empty()
            && segments[2] == "locations"
            && segments[3] == "global"
            && segments[4] == "workloadIdentityPools"
            && !segments[5].is_empty()
            && segments[6] == "providers"
            && !segments[7].is_empty();
        if !ok {
            return Err(Error::invalid(format!(
                "workload identity provider {provider:?} is not //iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER (the project's number, not its id: `gcloud iam workload-identity-pools providers describe` prints the name)"
            )));
        }
        Ok(Self {
            source,
            provider: format!("//iam.googleapis.com/{path}"),
            service_account: None,
            // What a provider accepts when it lists no audiences of its own.
            audience: format!("https://iam.googleapis.com/{path}"),
            sts_url: STS_URL.to_owned(),
            iam_url: IAM_CREDENTIALS_URL.to_owned(),
            lifetime: std::time::Duration::from_secs(3600),
            http: crate::http::client(),
            cache: Cache::new(system_clock(), REFRESH_MARGIN),
        })
    }

    /// Impersonate `email` (IAM Credentials `generateAccessToken`) with the federated token.
    pub fn service_account(mut self, email: impl Into<String>) -> Self {
        self.service_account = Some(email.into());
        self
    }

    /// Ask the source for tokens for `audience` (default
    /// `https://iam.googleapis.com/projects/…/providers/PROVIDER`, what a provider accepts
    /// unless it lists audiences of its own).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// STS at `sts` and IAM Credentials at `iam` (Private Service Connect, a test server).
    pub fn endpoints(mut self, sts: impl Into<String>, iam: impl Into<String>) -> Self {
        self.sts_url = sts.into();
        self.iam_url = iam.into().trim_end_matches('/').to_owned();
        self
    }

    /// A service account's tokens last `lifetime` (default and usual maximum: one hour).
    pub fn lifetime(mut self, lifetime: std::time::Duration) -> Self {
        self.lifetime = lifetime;
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

    /// The pool part of the provider's name (`projects/N/locations/global/workloadIdentityPools/POOL`).
    fn pool(&self) -> &str {
        let path = self.provider.trim_start_matches("//iam.googleapis.com/");
        path.rsplit_once("/providers/")
            .map_or(path, |(pool, _)| pool)
    }

    async fn fetch(&self, scope: &str) -> Result<(Credentials, OffsetDateTime)> {
        let token = self.source.id_token(&self.audience).await?;
        let now = self.cache.clock().now();
        // As google-auth-library's sts.Client: an RFC 8693 token exchange, form-encoded.
        let form = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", self.provider.as_str()),
            ("scope", scope),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", token.token.expose()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ];
        let request = self.http.post(&self.sts_url).form(&form);
        let (status, body) =
            crate::http::send("Google STS", &self.sts_url, request, &[&token.token]).await?;
        if status != 200 {
            return Err(self.explain_sts(status, &body, &token));
        }
        let federated = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Google STS at {} answered without access_token",
                    self.sts_url
                ))
            })?;
        let federated = Secret::new(federated);
        let Some(email) = &self.service_account else {
            let expires_in = body
                .get("expires_in")
                .and_then(Value::as_i64)
                .unwrap_or(3600);
            let expires_at = now + time::Duration::seconds(expires_in);
            let principal = format!(
                "principal://iam.googleapis.com/{}/subject/{}",
                self.pool(),
                token.subject
            );
            let mut creds = Credentials::new("gcp", &principal, federated, expires_at);
            creds.identity = Some(principal);
            return Ok((creds, expires_at));
        };
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
            self.iam_url
        );
        let request =
            self.http.post(&url).bearer_auth(federated.expose()).json(
                &json!({"scope": [scope], "lifetime": format!("{}s", self.lifetime.as_secs())}),
            );
        let (status, body) = crate::http::send(
            "Google IAM Credentials",
            &url,
            request,
            &[&token.token, &federated],
        )
        .await?;
        if status != 200 {
            return Err(self.explain_iam(status, &body, &token, email));
        }
        let access = body.get("accessToken").and_then(Value::as_str);
        let expires = body
            .get("expireTime")
            .and_then(Value::as_str)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        let (Some(access), Some(expires_at)) = (access, expires) else {
            return Err(Error::invalid(format!(
                "Google IAM Credentials at {url} answered without accessToken and expireTime"
            )));
        };
        let mut creds = Credentials::new("gcp", email, Secret::new(access), expires_at);
        creds.identity = Some(format!("service account {email}"));
        Ok((creds, expires_at))
    }

    fn explain_sts(&self, status: u16, body: &Value, token: &IdToken) -> Error {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("error");
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let facts = diagnose::token_facts(token);
        let context: Vec<String> = token
            .context
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let advice = if description.contains("attribute condition") {
            format!(
                "{facts} and {}; the provider's attribute condition (e.g. assertion.repository_owner == 'acme') must hold for these claims; usual causes: {}",
                if context.is_empty() {
                    "no run claims".to_owned()
                } else {
                    context.join(", ")
                },
                diagnose::usual_causes(&token.issuer)
            )
        } else if description.contains("audience") {
            format!(
                "{facts}; the provider accepts {:?} unless it lists allowed audiences of its own: ask for one of those ([identity.gcp] token_audience)",
                self.audience
            )
        } else if description.contains("issuer") || description.contains("iss") {
            format!(
                "{facts}; the provider's issuer URI must be exactly {:?}",
                token.issuer
            )
        } else {
            format!(
                "{facts}; check [identity.gcp] provider {:?} (project number, pool and provider ids)",
                self.provider
            )
        };
        Error::new(
            if status >= 500 {
                ErrorKind::Transient
            } else {
                ErrorKind::Unauthenticated
            },
            format!(
                "Google STS refused the token exchange for {} (HTTP {status} {error}): {description} — {advice}",
                self.provider
            ),
        )
    }

    fn explain_iam(&self, status: u16, body: &Value, token: &IdToken, email: &str) -> Error {
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("");
        let advice = match status {
            403 => format!(
                "grant roles/iam.workloadIdentityUser on {email} to principal://iam.googleapis.com/{}/subject/{} (or a principalSet:// for its repository), and check the service account's email",
                self.pool(),
                token.subject
            ),
            404 => format!("no service account {email}: check [identity.gcp] service_account"),
            _ => "retry later".to_owned(),
        };
        Error::new(
            crate::http::kind_of(status),
            format!(
                "Google IAM Credentials refused generateAccessToken for {email} (HTTP {status}): {message} — {advice}"
            ),
        )
    }
}

#[async_trait]
impl CloudCredentials for GcpWorkloadIdentity {
    async fn credentials(&self, opts: &CredentialOptions) -> Result<Credentials> {
        let scope = opts.scope.as_deref().unwrap_or(CLOUD_PLATFORM_SCOPE);
        self.cache.get(scope, || self.fetch(scope)).await
    }
}
