//! AWS: an ID token exchanged with STS `AssumeRoleWithWebIdentity` for a role's temporary
//! credentials — what `aws-actions/configure-aws-credentials` does, as a provider every
//! aws-sdk client takes.
//!
//! ```no_run
//! # async fn run(source: std::sync::Arc<dyn wharf_core::IdTokenSource>) -> wharf_core::Result<()> {
//! use std::sync::Arc;
//! use wharf_identity::aws::AwsWebIdentity;
//!
//! let role = Arc::new(
//!     AwsWebIdentity::builder(source, "arn:aws:iam::123456789012:role/wharf-ci")
//!         .region("eu-west-1")
//!         .session_name("wharf-run-42")
//!         .build()?,
//! );
//! let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
//!     .credentials_provider(role.provider())
//!     .region(aws_config::Region::new("eu-west-1"))
//!     .load()
//!     .await;
//! // aws_sdk_s3::Client::new(&sdk), aws_sdk_ecr::Client::new(&sdk), …
//! # let _ = sdk; Ok(()) }
//! ```
//!
//! `AssumeRoleWithWebIdentity` takes no session tags (only `AssumeRole` does): tags come from
//! the token's `https://aws.amazon.com/tags` claim, which the token's issuer sets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use time::OffsetDateTime;
use wharf_core::identity::{CredentialOptions, Credentials};
use wharf_core::{CloudCredentials, Error, ErrorKind, IdToken, IdTokenSource, Result, Secret};

use crate::cache::Cache;
use crate::{Clock, REFRESH_MARGIN, diagnose, system_clock};

/// The audience AWS expects by default (`aws-actions/configure-aws-credentials`, EKS IRSA).
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// A role assumed with an ID token; credentials cached and renewed five minutes before
/// they expire.
pub struct AwsWebIdentity {
    source: Arc<dyn IdTokenSource>,
    role_arn: String,
    session_name: String,
    duration: Option<Duration>,
    audience: String,
    endpoint: String,
    sts: aws_sdk_sts::Client,
    cache: Cache<Credentials>,
}

impl fmt::Debug for AwsWebIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsWebIdentity")
            .field("source", &self.source)
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("audience", &self.audience)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AwsWebIdentity`].
#[derive(Debug)]
pub struct Builder {
    source: Arc<dyn IdTokenSource>,
    role_arn: String,
    session_name: Option<String>,
    duration: Option<Duration>,
    audience: String,
    region: Option<String>,
    endpoint: Option<String>,
    fips: bool,
    clock: Arc<dyn Clock>,
}

impl Builder {
    /// STS in `region` (default `us-east-1`); STS's regional endpoint is used.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// STS at `url` instead (a VPC endpoint, a test server).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// STS's FIPS endpoint.
    pub fn fips(mut self, fips: bool) -> Self {
        self.fips = fips;
        self
    }

    /// The role session's name, shown in CloudTrail (default `wharf-<unix time>`); characters
    /// STS does not accept become `-`, and it is cut to 64.
    pub fn session_name(mut self, name: impl Into<String>) -> Self {
        self.session_name = Some(name.into());
        self
    }

    /// Ask for credentials lasting `duration` (STS default one hour; at most the role's
    /// maximum session duration).
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// Ask the source for a token for `audience` (default [`STS_AUDIENCE`]).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Decide expiry by `clock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The provider; an error for a role ARN that is not one, or a duration STS refuses.
    pub fn build(self) -> Result<AwsWebIdentity> {
        check_role_arn(&self.role_arn)?;
        if let Some(d) = self.duration
            && !(900..=43_200).contains(&d.as_secs())
        {
            return Err(Error::invalid(format!(
                "a role session lasts 900 to 43200 seconds, not {}",
                d.as_secs()
            )));
        }
        let region = self.region.unwrap_or_else(|| "us-east-1".to_owned());
        let mut config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .use_fips(self.fips);
        if let Some(url) = &self.endpoint {
            config = config.endpoint_url(url);
        }
        let endpoint = self.endpoint.unwrap_or_else(|| {
            format!(
                "https://sts{}.{region}.amazonaws.com",
                if self.fips { "-fips" } else { "" }
            )
        });
        let session_name = session_name(
            self.session_name
                .unwrap_or_else(|| format!("wharf-{}", self.clock.now().unix_timestamp())),
        );
        Ok(AwsWebIdentity {
            source: self.source,
            role_arn: self.role_arn,
            session_name,
            duration: self.duration,
            audience: self.audience,
            endpoint,
            sts: aws_sdk_sts::Client::from_conf(config.build()),
            cache: Cache::new(self.clock, REFRESH_MARGIN),
        })
    }
}

/// `name` as STS accepts a session name: `[\w+=,.@-]`, 2 to 64 characters.
fn session_name(name: String) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while out.len() < 2 {
        out.push('-');
    }
    out
}

/// Refuse what is not an IAM role ARN, saying what is wrong with it.
fn check_role_arn(arn: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "role ARN {arn:?} is not an IAM role's ARN (arn:aws:iam::123456789012:role/NAME): {why}"
        )))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return bad("it needs six parts separated by `:`, starting with `arn`");
    }
    if !["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"].contains(&parts[1]) {
        return bad(&format!("{:?} is not an AWS partition", parts[1]));
    }
    if parts[2] == "sts" {
        return bad(
            "that is an assumed-role session (arn:aws:sts::…:assumed-role/…); use the role's own arn:aws:iam::…:role/… ARN",
        );
    }
    if parts[2] != "iam" {
        return bad(&format!("the service is {:?}, not iam", parts[2]));
    }
    if !parts[3].is_empty() {
        return bad("IAM ARNs have no region (arn:aws:iam::ACCOUNT:…)");
    }
    if parts[4].len() != 12 || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
        return bad(&format!("the account id {:?} is not 12 digits", parts[4]));
    }
    let Some(path) = parts[5].strip_prefix("role/") else {
        return bad(&format!("{:?} is not role/NAME", parts[5]));
    };
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return bad(&format!(
            "the role name {name:?} is not 1-64 of letters, digits and _+=,.@-"
        ));
    }
    Ok(())
}

impl AwsWebIdentity {
    /// Assume `role_arn` with tokens from `source`.
    pub fn builder(source: Arc<dyn IdTokenSource>, role_arn: impl Into<String>) -> Builder {
        Builder {
            source,
            role_arn: role_arn.into(),
            session_name: None,
            duration: None,
            audience: STS_AUDIENCE.to_owned(),
            region: None,
            endpoint: None,
            fips: false,
            clock: system_clock(),
        }
    }

    /// The role.
    pub fn role_arn(&self) -> &str {
        &self.role_arn
    }

    /// The audience tokens are asked for.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// This provider as the aws-config credentials provider every aws-sdk client and
    /// `object_store`'s AWS builder take.
    pub fn provider(self: &Arc<Self>) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(Provider(self.clone()))
    }

    async fn assume(&self) -> Result<(Credentials, OffsetDateTime)> {
        let token = self.source.id_token(&self.audience).await?;
        let sent = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .web_identity_token(token.token.expose())
            .set_duration_seconds(self.duration.map(|d| d.as_secs() as i32))
            .send()
            .await
            .map_err(|e| self.explain(&e, &token))?;
        let c = sent.credentials().ok_or_else(|| {
            Error::internal(format!(
                "AWS STS at {} answered without credentials",
                self.endpoint
            ))
        })?;
        let expires_at = OffsetDateTime::from_unix_timestamp(c.expiration().secs())
            .map_err(|e| Error::internal(format!("AWS STS credentials expiry: {e}")))?;
        let mut out = Credentials::new(
            "aws",
            c.access_key_id(),
            Secret::new(c.secret_access_key()),
            expires_at,
        );
        out.session_token = Some(Secret::new(c.session_token()));
        out.identity = sent.assumed_role_user().map(|u| u.arn().to_owned());
        tracing::debug!(role = %self.role_arn, until = %diagnose::rfc3339(expires_at), "aws: assumed role with web identity");
        Ok((out, expires_at))
    }

    /// One line on why STS refused, with what to fix.
    fn explain<E>(
        &self,
        err: &SdkError<E, aws_sdk_sts::config::http::HttpResponse>,
        token: &IdToken,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let role = &self.role_arn;
        let facts = diagnose::token_facts(token);
        let SdkError::ServiceError(service) = err else {
            let kind = match err {
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => ErrorKind::Transient,
                _ => ErrorKind::Internal,
            };
            return Error::new(
                kind,
                format!(
                    "AWS STS at {} is unreachable or answered unexpectedly ({}): check the region and endpoint (VPC/FIPS endpoints: [identity.aws] endpoint_url, fips)",
                    self.endpoint,
                    DisplayErrorContext(err)
                ),
            );
        };
        let e = service.err();
        let code = e.code().unwrap_or("unknown");
        let message = e.message().unwrap_or("");
        let (kind, advice) = match code {
            "AccessDenied" => (
                ErrorKind::Denied,
                format!(
                    "{facts}; {}; usual causes: {}; and check that {role} exists (account and role name)",
                    diagnose::aws_trust(role, token),
                    diagnose::usual_causes(&token.issuer)
                ),
            ),
            "InvalidIdentityToken" if message.contains("audience") => (
                ErrorKind::Unauthenticated,
                format!(
                    "{facts}; the IAM OIDC provider for {} must list {:?} among its audiences (client IDs), or ask for the audience it lists ([identity.aws] audience)",
                    token.issuer, token.audience
                ),
            ),
            "InvalidIdentityToken" => (
                ErrorKind::Unauthenticated,
                format!(
                    "{facts}; the role's account needs an IAM OIDC identity provider with URL {} and audience {:?}",
                    token.issuer, token.audience
                ),
            ),
            "ExpiredTokenException" | "ExpiredToken" => (
                ErrorKind::Unauthenticated,
                format!("{facts}; it expired at {} before STS saw it: check this machine's clock", diagnose::rfc3339(token.expires_at)),
            ),
            "IDPCommunicationError" => (
                ErrorKind::Transient,
                format!("STS could not fetch the signing keys of {}; retry, and check that the issuer's /.well-known/openid-configuration is public", token.issuer),
            ),
            "IDPRejectedClaim" => (ErrorKind::Denied, facts),
            "RegionDisabledException" => (
                ErrorKind::Denied,
                "STS is not activated in this region: use another region or activate it in IAM account settings".to_owned(),
            ),
            _ if message.contains("DurationSeconds") => (
                ErrorKind::Invalid,
                "lower the requested duration, or raise the role's maximum session duration".to_owned(),
            ),
            _ => (crate::http::kind_of(service.raw().status().as_u16()), facts),
        };
        Error::new(
            kind,
            format!(
                "AWS STS refused AssumeRoleWithWebIdentity for {role}: {code}: {message} — {advice}"
            ),
        )
    }
}

#[async_trait]
impl CloudCredentials for AwsWebIdentity {
    async fn credentials(&self, _opts: &CredentialOptions) -> Result<Credentials> {
        self.cache.get("", || self.assume()).await
    }
}

/// [`AwsWebIdentity`] as aws-config's provider.
#[derive(Debug)]
struct Provider(Arc<AwsWebIdentity>);

impl ProvideCredentials for Provider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let c = self
                .0
                .credentials(&CredentialOptions::default())
                .await
                .map_err(CredentialsError::provider_error)?;
            Ok(aws_credential_types::Credentials::new(
                c.principal,
                c.secret.expose(),
                c.session_token.map(|t| t.expose().to_owned()),
                Some(c.expires_at.into()),
                "wharf-identity",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_with_typos_are_named() {
        assert!(check_role_arn("arn:aws:iam::123456789012:role/wharf-ci").is_ok());
        assert!(check_role_arn("arn:aws:iam::123456789012:role/ci/wharf_ci").is_ok());
        for (arn, why) in [
            ("arn:aws:iam::12345678901:role/x", "12 digits"),
            ("arn:aws:sts::123456789012:assumed-role/x/y", "assumed-role"),
            ("arn:aws:iam::123456789012:user/x", "role/NAME"),
            ("arn:aws:iam:eu-west-1:123456789012:role/x", "no region"),
            ("arn:aw:iam::123456789012:role/x", "partition"),
            ("123456789012:role/x", "six parts"),
            ("arn:aws:iam::123456789012:role/bad name", "role name"),
        ] {
            let e = check_role_arn(arn).unwrap_err().to_string();
            assert!(e.contains(why), "{arn}: {e}");
        }
    }

    #[test]
    fn session_names_are_made_acceptable() {
        assert_eq!(session_name("wharf run/42".into()), "wharf-run-42");
        assert_eq!(session_name("x".into()), "x-");
        assert_eq!(session_name("a".repeat(80)).len(), 64);
    }
}
