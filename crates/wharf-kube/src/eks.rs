//! The bearer token Amazon EKS accepts, made as `aws eks get-token` and
//! aws-iam-authenticator make it: `k8s-aws-v1.` and, in unpadded base64url, an STS
//! `GetCallerIdentity` URL presigned for 60 seconds with the cluster's name in the signed
//! `x-k8s-aws-id` header. The API server's authenticator calls that URL and maps the
//! caller's IAM identity to a Kubernetes user. The credentials come from any
//! [`CloudCredentials`] (the pipeline's AWS chain today, the
//! OIDC exchange of wharf-identity later); the token needs no AWS SDK (`DescribeCluster`
//! in [`crate::cloud::Eks`] uses aws-sdk-eks).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use wharf_core::identity::{CredentialOptions, Credentials};
use wharf_core::{CloudCredentials, Error, Result, Secret};

/// What every EKS token starts with.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// How long the presigned URL is valid: `aws eks get-token`'s 60 seconds.
pub const URL_LIFETIME: Duration = Duration::from_secs(60);

/// A token for one cluster, and when clients should stop using it (14 minutes after it
/// was made, as `aws eks get-token` reports: the server accepts it for 15).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EksToken {
    /// The bearer token (a secret: it authenticates as the credentials' IAM identity).
    pub token: Secret,
    /// Refresh before this.
    pub expires_at: SystemTime,
}

/// The token for `cluster` (its name, as in `DescribeCluster`) in `region`, signed with
/// `credentials` (provider `aws`: access key id, secret key, session token) at `now`.
pub fn token(
    cluster: &str,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<EksToken> {
    if credentials.provider != "aws" {
        return Err(Error::invalid(format!(
            "an EKS token needs AWS credentials, not {}'s",
            credentials.provider
        )));
    }
    if cluster.is_empty() || region.is_empty() {
        return Err(Error::invalid(
            "an EKS token needs the cluster name and its region ([deploy] cluster, region)",
        ));
    }
    let host = format!("sts.{region}.amazonaws.com");
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let identity = sdk_credentials(credentials).into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| Error::internal(format!("EKS token signing parameters: {e}")))?
        .into();
    let headers = [("host", host.as_str()), ("x-k8s-aws-id", cluster)];
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| Error::internal(format!("EKS token request: {e}")))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| Error::internal(format!("signing the EKS token: {e}")))?
        .into_parts();
    // In the order botocore writes them (the signature last), so the URL is the one
    // `aws eks get-token` makes, byte for byte.
    let (_, query) = instructions.into_parts();
    let value = |name: &str| {
        query
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_ref())
    };
    let mut presigned = url;
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ] {
        if let Some(v) = value(name) {
            presigned.push('&');
            presigned.push_str(name);
            presigned.push('=');
            presigned.push_str(&uri_encode(v));
        }
    }
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned);
    Ok(EksToken {
        token: Secret::new(format!("{TOKEN_PREFIX}{encoded}")),
        expires_at: now + Duration::from_secs(14 * 60),
    })
}

/// SigV4's URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The AWS SDKs' form of `credentials`, expiry included.
fn sdk_credentials(credentials: &Credentials) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        credentials.principal.clone(),
        credentials.secret.expose().to_owned(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
        Some(SystemTime::from(credentials.expires_at)),
        "wharf",
    )
}

/// A [`CloudCredentials`] provider as the AWS SDKs' credentials provider, so an aws-sdk
/// client (`DescribeCluster`) signs with the same credentials as the tokens.
#[derive(Debug, Clone)]
pub struct SdkCredentials(Arc<dyn CloudCredentials>);

impl SdkCredentials {
    /// Credentials from `provider`.
    pub fn new(provider: Arc<dyn CloudCredentials>) -> Self {
        Self(provider)
    }
}

impl ProvideCredentials for SdkCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            let c = self
                .0
                .credentials(&CredentialOptions::default())
                .await
                .map_err(CredentialsError::provider_error)?;
            if c.provider != "aws" {
                return Err(CredentialsError::invalid_configuration(format!(
                    "EKS needs AWS credentials, not {}'s",
                    c.provider
                )));
            }
            Ok(sdk_credentials(&c))
        })
    }
}
