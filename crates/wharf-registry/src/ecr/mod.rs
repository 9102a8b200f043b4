//! Amazon ECR: repositories with immutable tags and scan-on-push, registry credentials from
//! `GetAuthorizationToken`, and manifests put through the ECR API.
//!
//! [`Ecr`] wraps an [`aws_sdk_ecr::Client`]:
//!
//! - [`Ecr::ensure_repository`] creates a repository if it is missing and otherwise brings its
//!   tag mutability and scan-on-push setting to the configured policy, reporting what it
//!   changed. The default policy, [`RepositorySettings::default`], makes every tag immutable
//!   except cosign's signature and attestation tags (`sha256-<hex>.sig`, `.att`), which are
//!   rewritten whenever a signature is added, and scans images on push.
//! - [`Ecr::authorization`] gets registry credentials (`AWS` and a 12-hour password), caches
//!   them and fetches new ones once less than [`REFRESH_MARGIN`] of their validity remains.
//!   [`Ecr::registry`] returns a [`DistributionClient`] for blobs and manifests that asks the
//!   `Ecr` for them (it is a [`CredentialsProvider`]) whenever it needs credentials, so one
//!   client keeps working across token expiry, however long the run.
//! - [`Ecr::put_image`] tags a manifest through the `PutImage` API. Pushing an immutable tag
//!   again with the same bytes is an idempotent success; with other bytes it fails with
//!   [`RegistryError::ImmutableTag`] ([`ErrorKind::Conflict`]).
//!
//! Errors are [`RegistryError`]s on one line naming the repository and what to do; failures of
//! the AWS API are [`RegistryError::Ecr`], whose kind follows the service's error code
//! (`RepositoryNotFoundException` is [`ErrorKind::NotFound`], throttling and 5xx are
//! [`ErrorKind::Transient`], …). Neither AWS credentials nor the registry password ever
//! appear in an error or in `Debug` output.
//!
//! ```no_run
//! use wharf_core::registry::ManifestBytes;
//! use wharf_registry::ecr::{Ecr, RepositorySettings};
//!
//! # async fn run(manifest: ManifestBytes) -> Result<(), Box<dyn std::error::Error>> {
//! let config = aws_config::load_from_env().await;
//! let ecr = Ecr::new(&config);
//! let repo = ecr
//!     .ensure_repository("models/fraud", &RepositorySettings::default())
//!     .await?;
//! for change in &repo.changes {
//!     println!("{}: {change}", repo.name);
//! }
//! // Blobs go up through the OCI distribution API with the ECR credentials, renewed as
//! // they expire…
//! let registry = ecr.registry().await?;
//! # let _ = registry;
//! // …and the manifest is tagged with the commit SHA.
//! let pushed = ecr.put_image("models/fraud", "3f2a9c1", &manifest).await?;
//! println!("{}@{}", repo.uri, pushed.digest);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use aws_sdk_ecr::types::{ImageFailureCode, ImageIdentifier, ImageScanningConfiguration};
use base64::Engine as _;
use tokio::sync::Mutex;
use wharf_core::registry::ManifestBytes;
use wharf_core::{Digest, ErrorKind, Secret};

use crate::RegistryError;
use crate::distribution::{
    Credentials, CredentialsProvider, DistributionClient, ProvidedCredentials,
};

mod errors;
mod settings;

use errors::{hint, one_line, sdk_error};
pub use settings::{
    Repository, RepositoryChange, RepositorySettings, SIGNATURE_TAG_FILTER, TagMutability,
};

/// Credentials from [`Ecr::authorization`] are fetched anew once less than this remains of
/// their validity: 5 minutes.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The manifest media types ECR stores, asked for when reading a manifest back so that ECR
/// never converts one (it would turn a Docker schema 2 manifest into schema 1 otherwise).
const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Credentials for an ECR registry's OCI distribution API, from `GetAuthorizationToken`.
///
/// `Debug` shows the endpoint, user name and expiry, never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EcrAuth {
    /// The registry's URL (`https://123456789012.dkr.ecr.eu-west-1.amazonaws.com`).
    pub endpoint: String,
    /// The user name: `AWS`.
    pub username: String,
    /// The password, valid until [`EcrAuth::expires_at`].
    pub password: Secret,
    /// When the password stops working (12 hours after it was issued).
    pub expires_at: SystemTime,
}

impl EcrAuth {
    /// The endpoint without its scheme (`123456789012.dkr.ecr.eu-west-1.amazonaws.com`), as
    /// image references and docker configs name the registry.
    pub fn registry_host(&self) -> &str {
        let s = self.endpoint.as_str();
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        s.trim_end_matches('/')
    }

    /// Basic credentials for a [`DistributionClient`].
    pub fn credentials(&self) -> Credentials {
        Credentials::Basic {
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }

    /// True when at least [`REFRESH_MARGIN`] of the validity remains at `now`.
    pub fn is_fresh_at(&self, now: SystemTime) -> bool {
        self.expires_at
            .duration_since(now)
            .is_ok_and(|left| left >= REFRESH_MARGIN)
    }
}

/// The result of [`Ecr::put_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushedImage {
    /// The repository.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The manifest's digest (the SHA-256 of its bytes): deploy by this.
    pub digest: Digest,
    /// False when the tag already held exactly these bytes and nothing was written.
    pub created: bool,
}

/// Amazon ECR: repository management, registry credentials and manifest pushes. Cheap to
/// clone; clones share the SDK client and the cached credentials.
///
/// `Debug` shows the region, registry and cached credentials' expiry, never a secret.
#[derive(Clone)]
pub struct Ecr {
    client: aws_sdk_ecr::Client,
    registry_id: Option<String>,
    registry_endpoint: Option<String>,
    auth: Arc<Mutex<Option<EcrAuth>>>,
}

impl fmt::Debug for Ecr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.client.config();
        let mut d = f.debug_struct("Ecr");
        d.field("region", &config.region().map(|r| r.as_ref()))
            .field("registry_id", &self.registry_id);
        match self.auth.try_lock() {
            Ok(auth) => d.field("authorization", &*auth),
            Err(_) => d.field("authorization", &"<being refreshed>"),
        };
        d.finish_non_exhaustive()
    }
}

impl Ecr {
    /// A client for the account and region of `config` (from `aws_config::load_from_env`, or
    /// short-lived credentials from `wharf-identity`).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_client(aws_sdk_ecr::Client::new(config))
    }

    /// Wraps an SDK client. The validity of cached credentials is judged by the client's
    /// time source (`aws_sdk_ecr::config::Builder::time_source`; the system clock unless
    /// set).
    pub fn from_client(client: aws_sdk_ecr::Client) -> Self {
        Self {
            client,
            registry_id: None,
            registry_endpoint: None,
            auth: Arc::new(Mutex::new(None)),
        }
    }

    /// Work on the registry of this account (`123456789012`) instead of the caller's own.
    #[must_use]
    pub fn with_registry_id(mut self, registry_id: impl Into<String>) -> Self {
        self.registry_id = Some(registry_id.into());
        self.auth = Arc::new(Mutex::new(None));
        self
    }

    /// Push and pull through this endpoint instead of the `proxyEndpoint` ECR reports: a VPC
    /// interface endpoint (PrivateLink), a pull-through proxy, or a local registry in tests.
    /// Credentials still come from `GetAuthorizationToken`.
    #[must_use]
    pub fn with_registry_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.registry_endpoint = Some(endpoint.into());
        self
    }

    /// The account whose registry this works on, when set with [`Ecr::with_registry_id`].
    pub fn registry_id(&self) -> Option<&str> {
        self.registry_id.as_deref()
    }

    /// The SDK client, for the ECR operations wharf does not wrap.
    pub fn client(&self) -> &aws_sdk_ecr::Client {
        &self.client
    }

    /// Creates repository `name` with `settings` if it is missing; otherwise changes its tag
    /// mutability and scan-on-push setting where they differ from `settings` (exclusion
    /// filters are compared as a set). [`Repository::changes`] says what was done; every
    /// change is also logged at `info`.
    ///
    /// Needs `ecr:DescribeRepositories`, and `ecr:CreateRepository`,
    /// `ecr:PutImageTagMutability`, `ecr:PutImageScanningConfiguration` when something is to
    /// be done.
    pub async fn ensure_repository(
        &self,
        name: &str,
        settings: &RepositorySettings,
    ) -> Result<Repository, RegistryError> {
        crate::error::require_tokio("ECR client")?;
        let (mutability, filters) = settings.tag_mutability.to_sdk(name)?;
        let target = || format!("repository {name}");
        let existing = match self.describe_repository(name).await? {
            Some(existing) => existing,
            None => {
                let created = self
                    .client
                    .create_repository()
                    .repository_name(name)
                    .set_registry_id(self.registry_id.clone())
                    .image_tag_mutability(mutability.clone())
                    .set_image_tag_mutability_exclusion_filters(filters.clone())
                    .image_scanning_configuration(
                        ImageScanningConfiguration::builder()
                            .scan_on_push(settings.scan_on_push)
                            .build(),
                    )
                    .send()
                    .await;
                match created {
                    Ok(out) => {
                        tracing::info!(repository = name, "ecr repository created");
                        let repo = out.repository();
                        return Ok(Repository {
                            name: name.to_owned(),
                            uri: repo
                                .and_then(|r| r.repository_uri())
                                .unwrap_or_default()
                                .to_owned(),
                            registry_id: repo
                                .and_then(|r| r.registry_id())
                                .or(self.registry_id.as_deref())
                                .unwrap_or_default()
                                .to_owned(),
                            tag_mutability: settings.tag_mutability.clone(),
                            scan_on_push: settings.scan_on_push,
                            changes: vec![RepositoryChange::Created],
                        });
                    }
                    // Created by someone else since we looked: bring it to the policy below.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_repository_already_exists_exception()) =>
                    {
                        self.describe_repository(name)
                            .await?
                            .ok_or_else(|| sdk_error(e, "CreateRepository", target()))?
                    }
                    Err(e) => return Err(sdk_error(e, "CreateRepository", target())),
                }
            }
        };

        let mut changes = Vec::new();
        let current = TagMutability::from_sdk(
            existing.image_tag_mutability(),
            existing.image_tag_mutability_exclusion_filters(),
        );
        if !current
            .as_ref()
            .is_some_and(|c| c.same_as(&settings.tag_mutability))
        {
            self.client
                .put_image_tag_mutability()
                .repository_name(name)
                .set_registry_id(self.registry_id.clone())
                .image_tag_mutability(mutability)
                .set_image_tag_mutability_exclusion_filters(filters)
                .send()
                .await
                .map_err(|e| sdk_error(e, "PutImageTagMutability", target()))?;
            changes.push(RepositoryChange::TagMutability {
                from: current,
                to: settings.tag_mutability.clone(),
            });
        }
        let scan_on_push = existing
            .image_scanning_configuration()
            .is_some_and(|c| c.scan_on_push());
        if scan_on_push != settings.scan_on_push {
            self.client
                .put_image_scanning_configuration()
                .repository_name(name)
                .set_registry_id(self.registry_id.clone())
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(settings.scan_on_push)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_error(e, "PutImageScanningConfiguration", target()))?;
            changes.push(RepositoryChange::ScanOnPush {
                from: scan_on_push,
                to: settings.scan_on_push,
            });
        }
        for change in &changes {
            tracing::info!(repository = name, %change, "ecr repository updated");
        }
        Ok(Repository {
            name: name.to_owned(),
            uri: existing.repository_uri().unwrap_or_default().to_owned(),
            registry_id: existing
                .registry_id()
                .or(self.registry_id.as_deref())
                .unwrap_or_default()
                .to_owned(),
            tag_mutability: settings.tag_mutability.clone(),
            scan_on_push: settings.scan_on_push,
            changes,
        })
    }

    /// The repository as ECR describes it, `None` if it does not exist.
    async fn describe_repository(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_ecr::types::Repository>, RegistryError> {
        let out = self
            .client
            .describe_repositories()
            .repository_names(name)
            .set_registry_id(self.registry_id.clone())
            .send()
            .await;
        match out {
            Ok(out) => Ok(out
                .repositories()
                .iter()
                .find(|r| r.repository_name() == Some(name))
                .cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_repository_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(
                e,
                "DescribeRepositories",
                format!("repository {name}"),
            )),
        }
    }

    /// Credentials for the registry's OCI distribution API: the cached ones while at least
    /// [`REFRESH_MARGIN`] of their validity remains, else new ones from
    /// `GetAuthorizationToken` (needs `ecr:GetAuthorizationToken`). Concurrent callers share
    /// one request.
    pub async fn authorization(&self) -> Result<EcrAuth, RegistryError> {
        crate::error::require_tokio("ECR client")?;
        let mut cached = self.auth.lock().await;
        let now = self.now();
        if let Some(auth) = cached.as_ref().filter(|a| a.is_fresh_at(now)) {
            return Ok(auth.clone());
        }
        let fresh = self.fetch_authorization(now).await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// The current time by the client's time source.
    fn now(&self) -> SystemTime {
        self.client
            .config()
            .time_source()
            .map_or_else(SystemTime::now, |t| t.now())
    }

    /// Calls `GetAuthorizationToken` and decodes its `AWS:<password>` token.
    async fn fetch_authorization(&self, now: SystemTime) -> Result<EcrAuth, RegistryError> {
        let target = || match &self.registry_id {
            Some(id) => format!("registry {id}"),
            None => "the account's registry".to_owned(),
        };
        let out = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| sdk_error(e, "GetAuthorizationToken", target()))?;
        let malformed = |what: &str| RegistryError::Ecr {
            kind: ErrorKind::Internal,
            operation: "GetAuthorizationToken",
            target: target(),
            detail: format!("the answer has {what}"),
            hint: "retry; if it persists, check the ECR endpoint configuration".to_owned(),
            source: None,
        };
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| malformed("no authorization data"))?;
        let token = data
            .authorization_token()
            .ok_or_else(|| malformed("no authorization token"))?;
        // Never put the token, or anything decoded from it, into an error.
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or_else(|| malformed("an authorization token that is not base64 text"))?;
        let (username, password) = decoded
            .split_once(':')
            .filter(|(user, password)| !user.is_empty() && !password.is_empty())
            .ok_or_else(|| malformed("an authorization token that is not user:password"))?;
        let endpoint = data
            .proxy_endpoint()
            .ok_or_else(|| malformed("no proxy endpoint"))?;
        let endpoint = match &self.registry_id {
            Some(id) => endpoint_for_account(endpoint, id),
            None => endpoint.trim_end_matches('/').to_owned(),
        };
        // Without an expiry the credentials are not cached: each call fetches new ones.
        let expires_at = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or(now);
        tracing::debug!(endpoint, "ecr authorization token fetched");
        Ok(EcrAuth {
            endpoint,
            username: username.to_owned(),
            password: Secret::new(password),
            expires_at,
        })
    }

    /// A [`DistributionClient`] for the registry's OCI distribution API (blobs, manifests,
    /// tags, referrers) that gets its credentials from this `Ecr` (see the
    /// [`CredentialsProvider`] implementation): from [`Ecr::authorization`] when it first
    /// needs them, and again whenever less than [`REFRESH_MARGIN`] of their validity remains.
    /// One client serves a run of any length; clones of it and of this `Ecr` share the
    /// cached credentials.
    ///
    /// The registry's endpoint comes from `GetAuthorizationToken`: the first call of an
    /// `Ecr` (or of one changed with [`Ecr::with_registry_id`]) fetches an authorization,
    /// which the client then uses; later calls make no request, even when the cached
    /// credentials have expired (the client renews them when it needs them).
    pub async fn registry(&self) -> Result<DistributionClient, RegistryError> {
        let endpoint = match &self.registry_endpoint {
            Some(e) => e.clone(),
            None => self.endpoint().await?,
        };
        DistributionClient::builder(endpoint)
            .credentials_provider(Arc::new(self.clone()))
            .build()
    }

    /// The registry endpoint of the cached authorization, valid or not (it does not change),
    /// else of a new one.
    async fn endpoint(&self) -> Result<String, RegistryError> {
        if let Some(auth) = self.auth.lock().await.as_ref() {
            return Ok(auth.endpoint.clone());
        }
        Ok(self.authorization().await?.endpoint)
    }

    /// Tags `manifest` as `repo:tag` with `PutImage` (needs `ecr:PutImage` and
    /// `ecr:BatchGetImage`). The blobs the manifest refers to must be in the repository
    /// already (push them with [`Ecr::registry`]).
    ///
    /// When the tag already holds exactly these bytes, nothing is written and the result
    /// says `created: false`. When it holds other content and the tag is immutable, fails
    /// with [`RegistryError::ImmutableTag`] ([`ErrorKind::Conflict`]); a mutable tag (say a
    /// `sha256-<hex>.sig` tag excluded from immutability) is moved.
    pub async fn put_image(
        &self,
        repo: &str,
        tag: &str,
        manifest: &ManifestBytes,
    ) -> Result<PushedImage, RegistryError> {
        crate::error::require_tokio("ECR client")?;
        let text = std::str::from_utf8(&manifest.bytes).map_err(|_| {
            RegistryError::invalid(
                format!("manifest {} for {repo}:{tag}", manifest.descriptor.digest),
                "ECR stores manifests as text: the manifest must be UTF-8 JSON",
            )
        })?;
        let pushed = |created| PushedImage {
            repository: repo.to_owned(),
            tag: tag.to_owned(),
            digest: manifest.descriptor.digest.clone(),
            created,
        };
        // Compare the stored manifest's bytes, not digests: the bytes are what a digest
        // names, and they settle the question on any ECR-like service. (moto, our test
        // stand-in, reports a made-up digest for manifests put without `imageDigest`, so a
        // digest comparison would call identical content different.)
        if self
            .stored_manifest(repo, tag)
            .await?
            .is_some_and(|stored| stored.matches(manifest))
        {
            return Ok(pushed(false));
        }
        let put = self
            .client
            .put_image()
            .repository_name(repo)
            .set_registry_id(self.registry_id.clone())
            .image_tag(tag)
            .image_manifest(text)
            .image_manifest_media_type(manifest.descriptor.media_type.clone())
            .image_digest(manifest.descriptor.digest.to_string())
            .send()
            .await;
        match put {
            Ok(_) => Ok(pushed(true)),
            // ECR answers ImageTagAlreadyExists when an immutable tag holds other content,
            // and ImageAlreadyExists when this very manifest already has the tag (pushed
            // concurrently since we looked); moto answers ImageAlreadyExists for both. Look
            // at what the tag holds now to tell them apart.
            Err(e)
                if e.as_service_error().is_some_and(|e| {
                    e.is_image_tag_already_exists_exception()
                        || e.is_image_already_exists_exception()
                }) =>
            {
                match self.stored_manifest(repo, tag).await? {
                    Some(stored) if stored.matches(manifest) => Ok(pushed(false)),
                    Some(stored) => Err(RegistryError::ImmutableTag {
                        repo: repo.to_owned(),
                        tag: tag.to_owned(),
                        existing: stored.digest.to_string(),
                    }),
                    None => Err(sdk_error(e, "PutImage", format!("{repo}:{tag}"))),
                }
            }
            Err(e) => Err(sdk_error(e, "PutImage", format!("{repo}:{tag}"))),
        }
    }

    /// The manifest `repo:tag` holds, `None` if the tag does not exist.
    async fn stored_manifest(
        &self,
        repo: &str,
        tag: &str,
    ) -> Result<Option<StoredManifest>, RegistryError> {
        let target = || format!("{repo}:{tag}");
        let out = self
            .client
            .batch_get_image()
            .repository_name(repo)
            .set_registry_id(self.registry_id.clone())
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .set_accepted_media_types(Some(
                MANIFEST_MEDIA_TYPES
                    .iter()
                    .map(|m| (*m).to_owned())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| sdk_error(e, "BatchGetImage", target()))?;
        let image = out.images().iter().find(|image| {
            image
                .image_id()
                .and_then(|id| id.image_tag())
                .is_none_or(|t| t == tag)
        });
        if let Some(image) = image {
            let bytes = image.image_manifest().unwrap_or_default().as_bytes();
            return Ok(Some(StoredManifest {
                digest: Digest::sha256_of(bytes),
                media_type: image.image_manifest_media_type().map(str::to_owned),
                bytes: bytes.to_vec(),
            }));
        }
        match out.failures().first() {
            None => Ok(None),
            Some(f) => match f.failure_code() {
                None | Some(ImageFailureCode::ImageNotFound) => Ok(None),
                Some(code) => {
                    let kind = match code {
                        ImageFailureCode::InvalidImageTag
                        | ImageFailureCode::InvalidImageDigest
                        | ImageFailureCode::MissingDigestAndTag => ErrorKind::Invalid,
                        ImageFailureCode::UpstreamTooManyRequests
                        | ImageFailureCode::UpstreamUnavailable => ErrorKind::Transient,
                        ImageFailureCode::KmsError | ImageFailureCode::UpstreamAccessDenied => {
                            ErrorKind::Denied
                        }
                        _ => ErrorKind::Internal,
                    };
                    Err(RegistryError::Ecr {
                        kind,
                        operation: "BatchGetImage",
                        target: target(),
                        detail: one_line(&format!(
                            "{}: {}",
                            code.as_str(),
                            f.failure_reason().unwrap_or("no reason given")
                        )),
                        hint: hint(kind, "BatchGetImage"),
                        source: None,
                    })
                }
            },
        }
    }
}

/// The registry credentials of [`Ecr::authorization`] (user `AWS` and the password, as
/// [`Credentials::Basic`]), valid until [`REFRESH_MARGIN`] before they expire by the SDK
/// client's time source. The client built by [`Ecr::registry`] uses this.
///
/// A failure of `GetAuthorizationToken` keeps its kind here (a throttled or unreachable ECR
/// is [`ErrorKind::Transient`]); the distribution client reports it as
/// [`RegistryError::CredentialsProvider`].
#[async_trait]
impl CredentialsProvider for Ecr {
    async fn credentials(&self) -> wharf_core::Result<ProvidedCredentials> {
        let auth = self.authorization().await?;
        let usable_for = auth
            .expires_at
            .duration_since(self.now())
            .unwrap_or_default()
            .saturating_sub(REFRESH_MARGIN);
        Ok(ProvidedCredentials::new(auth.credentials()).with_valid_for(usable_for))
    }
}

/// A manifest as ECR holds it.
struct StoredManifest {
    /// The SHA-256 of its bytes (not the digest ECR reports).
    digest: Digest,
    media_type: Option<String>,
    bytes: Vec<u8>,
}

impl StoredManifest {
    /// True when it is exactly `manifest`: the same bytes, and the same media type when ECR
    /// reports one.
    fn matches(&self, manifest: &ManifestBytes) -> bool {
        self.bytes == manifest.bytes.as_ref()
            && self
                .media_type
                .as_deref()
                .is_none_or(|m| m == manifest.descriptor.media_type)
    }
}

/// `proxy_endpoint` with its first host label (the caller's account) replaced by `account`:
/// the authorization token works for every registry the caller may access, but ECR names
/// only the caller's own.
fn endpoint_for_account(proxy_endpoint: &str, account: &str) -> String {
    let endpoint = proxy_endpoint.trim_end_matches('/');
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    match rest.split_once('.') {
        Some((first, domain)) if first.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{scheme}://{account}.{domain}")
        }
        _ => endpoint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_rewritten_for_another_account() {
        assert_eq!(
            endpoint_for_account(
                "https://111111111111.dkr.ecr.eu-west-1.amazonaws.com/",
                "222222222222"
            ),
            "https://222222222222.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            endpoint_for_account("https://registry.local", "2"),
            "https://registry.local"
        );
    }

    #[test]
    fn freshness_keeps_a_margin() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let auth = |left: u64| EcrAuth {
            endpoint: "https://1.dkr.ecr.us-east-1.amazonaws.com".into(),
            username: "AWS".into(),
            password: Secret::new("p"),
            expires_at: now + Duration::from_secs(left),
        };
        assert!(auth(301).is_fresh_at(now));
        assert!(!auth(299).is_fresh_at(now));
        assert!(!auth(0).is_fresh_at(now + Duration::from_secs(1)));
        assert_eq!(auth(1).registry_host(), "1.dkr.ecr.us-east-1.amazonaws.com");
    }
}
