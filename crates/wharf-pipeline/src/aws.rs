//! The AWS SDK's default credentials chain as a [`CloudCredentials`] provider, for the
//! parts of wharf that take credentials through `wharf-core` (EKS tokens).

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use time::OffsetDateTime;
use wharf_core::identity::{CredentialOptions, Credentials};
use wharf_core::{CloudCredentials, Error, ErrorKind, Result, Secret};

use crate::PipelineError;

/// The chain `aws_config::load_from_env` found: environment, profile, web identity
/// (`AWS_WEB_IDENTITY_TOKEN_FILE`), container and instance roles. The chain caches and
/// refreshes what it gets; credentials without an expiry (static keys) are reported as
/// expiring in an hour, so whoever caches them asks again.
#[derive(Debug)]
pub(crate) struct SdkChain(SharedCredentialsProvider);

impl SdkChain {
    pub(crate) fn new(sdk: &aws_config::SdkConfig) -> std::result::Result<Self, PipelineError> {
        sdk.credentials_provider().map(Self).ok_or_else(|| {
            crate::standard::setup(
                "AWS credentials",
                Error::new(
                    ErrorKind::Unauthenticated,
                    "the AWS SDK found no credentials provider",
                ),
            )
        })
    }
}

#[async_trait]
impl CloudCredentials for SdkChain {
    async fn credentials(&self, _opts: &CredentialOptions) -> Result<Credentials> {
        let c = self.0.provide_credentials().await.map_err(|e| {
            Error::new(
                ErrorKind::Unauthenticated,
                format!(
                    "no AWS credentials (environment, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, container or instance role): {e}"
                ),
            )
        })?;
        let expires_at = c.expiry().map_or_else(
            || OffsetDateTime::now_utc() + time::Duration::hours(1),
            OffsetDateTime::from,
        );
        let mut out = Credentials::new(
            "aws",
            c.access_key_id(),
            Secret::new(c.secret_access_key()),
            expires_at,
        );
        out.session_token = c.session_token().map(Secret::new);
        Ok(out)
    }
}
