//! The OCI distribution API over HTTP(S), streaming.
//!
//! [`DistributionClient`] implements [`wharf_core::Registry`] for any registry that speaks
//! the [OCI distribution spec] (GHCR, Docker Hub, Harbor, the CNCF distribution registry,
//! …):
//!
//! - **Uploads stream.** A blob whose stream ends within one chunk (default 16 MiB) is
//!   hashed in memory first and sent with one `PUT`; a larger one goes up in `PATCH` chunks,
//!   one chunk held in memory at a time, hashed on the way. When a chunk upload breaks off
//!   (dropped connection, 5xx) the client asks the registry how much it holds and sends the
//!   rest. Bytes that do not hash to the digest are never committed: the upload session is
//!   deleted and the push fails with [`wharf_core::ErrorKind::Integrity`]. Files
//!   ([`DistributionClient::push_blob_from_file`]) stream from disk and resume from any
//!   offset; [`DistributionClient::push_blobs`] uploads several in parallel.
//! - **Nothing is uploaded twice.** Every push starts with a `HEAD`: re-pushing an
//!   unchanged image costs one `HEAD` per blob. With [`PushBlobOptions::mount_from`] the
//!   registry is asked to mount the blob from another repository first.
//! - **Everything fetched is verified.** Blob streams end with an `Integrity` error when the
//!   bytes do not match the digest and a `Transient` one when the body breaks off;
//!   manifests are hashed over their exact bytes (the `Docker-Content-Digest` header is not
//!   trusted) and limited to 4 MiB.
//! - **Tags are set last.** A tag is only ever written by the final manifest `PUT`, so
//!   nothing half-pushed is tagged.
//! - **Auth:** anonymous, Basic, and the bearer-token flow of the `WWW-Authenticate`
//!   challenge (a token per repository scope, cached and refreshed before it expires);
//!   credentials from a docker `config.json`, or from a [`CredentialsProvider`] for
//!   credentials that expire or rotate during a run (ECR's 12-hour passwords): the provider
//!   is asked when credentials are first needed, again when the validity it gave has passed,
//!   and again after a 401 (the request is repeated once, only with other credentials).
//!   Credentials are only sent to the registry's own origin and its token server, and never
//!   appear in errors or logs.
//! - **Retries** with exponential backoff and full jitter for 5xx, 429, 408 and connection
//!   errors, honouring `Retry-After` ([`RetryPolicy`]).
//! - **Referrers:** the OCI 1.1 referrers API, and the `sha256-<hex>` tag schema when the
//!   registry answers 404 (distribution 2.8 does).
//!
//! **Plain HTTP** is used only when the URL says `http://`, or when the registry is given
//! without a scheme and its host is loopback (`127.0.0.1:5000`, `localhost:5000`, `[::1]`).
//! Everything else is HTTPS.
//!
//! ```no_run
//! use wharf_core::{Digest, Registry};
//! use wharf_registry::distribution::{Credentials, DistributionClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = DistributionClient::builder("https://ghcr.io")
//!     .credentials(Credentials::basic("ci-bot", std::env::var("GHCR_TOKEN")?))
//!     .build()?;
//! let layer: Digest = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".parse()?;
//! registry
//!     .push_blob_from_file("acme/fraud-model", "model.safetensors".as_ref(), &layer)
//!     .await?;
//! let image = registry.resolve_tag("acme/fraud-model", "3f2a9c1").await?;
//! println!("{}", image.digest);
//! # Ok(()) }
//! ```
//!
//! [OCI distribution spec]: https://github.com/opencontainers/distribution-spec/blob/main/spec.md

mod auth;
mod blobs;
mod docker_config;
mod manifests;
mod transport;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use reqwest::{Method, Response, StatusCode, Url};
use wharf_core::registry::{
    ListTagsOptions, ManifestBytes, PushBlobOptions, PushManifestOptions, ReferrersOptions,
};
use wharf_core::{BlobStream, Descriptor, Digest, Registry};

pub use auth::{Credentials, CredentialsProvider, ProvidedCredentials};
pub use transport::RetryPolicy;

use auth::{Auth, Retry, Scope, Source};
use transport::ReqBody;

use crate::RegistryError;

/// The default upload chunk size: 16 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 16 << 20;
/// Default `PATCH` size of file uploads: 1 GiB (files stream from disk; no memory cost).
pub const DEFAULT_FILE_CHUNK_SIZE: u64 = 1 << 30;
/// The smallest chunk size the builder accepts: 1 KiB.
pub const MIN_CHUNK_SIZE: usize = 1 << 10;
/// The default number of parallel uploads in [`DistributionClient::push_blobs`].
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;
/// The default page size of tag listings.
pub const DEFAULT_TAG_PAGE_SIZE: usize = 1000;
/// The largest manifest the client reads: 4 MiB, as registries enforce.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may stay silent while a response is read.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A client for one OCI registry. Cheap to clone (clones share connections and tokens).
///
/// Build it with [`DistributionClient::builder`]; see the [module docs](self) for what it
/// does.
#[derive(Clone)]
pub struct DistributionClient {
    inner: Arc<Inner>,
}

/// Configures a [`DistributionClient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct DistributionClientBuilder {
    registry: String,
    credentials: Option<Source>,
    docker_config: Option<PathBuf>,
    chunk_size: usize,
    file_chunk_size: Option<u64>,
    max_concurrency: usize,
    retry: RetryPolicy,
    tag_page_size: usize,
}

impl DistributionClient {
    /// A builder for the registry at `registry`: `https://ghcr.io`, `http://127.0.0.1:5000`,
    /// or a bare `host[:port]` (HTTPS, except for loopback hosts, which get plain HTTP).
    pub fn builder(registry: impl Into<String>) -> DistributionClientBuilder {
        DistributionClientBuilder {
            registry: registry.into(),
            credentials: None,
            docker_config: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            file_chunk_size: None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            retry: RetryPolicy::default(),
            tag_page_size: DEFAULT_TAG_PAGE_SIZE,
        }
    }

    /// The registry's base URL (`https://ghcr.io/`).
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The registry's `host[:port]`, as used in references and docker configs.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Checks that the registry answers the distribution API (`GET /v2/`) and accepts the
    /// credentials, as `docker login` does.
    pub async fn ping(&self) -> wharf_core::Result<()> {
        let url = self.inner.url("");
        let resp = self
            .inner
            .send(Request::new(Method::GET, url.clone(), Scope::Registry))
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self
            .inner
            .error_for(&Method::GET, &url, &Scope::Registry, resp)
            .await
            .into())
    }

    /// Streams the file at `path` into `repo` as the blob `digest`, unless the registry
    /// already has it. Files up to one chunk are sent with one `PUT`; larger ones in `PATCH`
    /// chunks read straight from disk (no chunk is held in memory), resumed from the
    /// registry's reported offset after a failure, and restarted from the beginning if the
    /// registry lost the upload session. Fails with [`wharf_core::ErrorKind::Integrity`],
    /// committing nothing, when the file does not hash to `digest`.
    pub async fn push_blob_from_file(
        &self,
        repo: &str,
        path: &Path,
        digest: &Digest,
    ) -> wharf_core::Result<Descriptor> {
        Ok(self.inner.push_file(repo, path, digest).await?)
    }

    /// Pushes several files as blobs of `repo`, at most `max_concurrency` at a time (see
    /// [`DistributionClient::push_blob_from_file`]; memory stays under `max_concurrency`
    /// chunks). Returns their descriptors in the order given; the first failure stops the
    /// others.
    pub async fn push_blobs(
        &self,
        repo: &str,
        blobs: Vec<(Digest, PathBuf)>,
    ) -> wharf_core::Result<Vec<Descriptor>> {
        use futures_util::{StreamExt, TryStreamExt};
        let inner = &self.inner;
        let mut done: Vec<(usize, Descriptor)> =
            futures_util::stream::iter(blobs.into_iter().enumerate())
                .map(|(i, (digest, path))| async move {
                    inner.push_file(repo, &path, &digest).await.map(|d| (i, d))
                })
                .buffer_unordered(inner.max_concurrency)
                .try_collect()
                .await?;
        done.sort_by_key(|(i, _)| *i);
        Ok(done.into_iter().map(|(_, d)| d).collect())
    }
}

impl DistributionClientBuilder {
    /// Use these credentials (instead of looking in a docker `config.json`). Replaces a
    /// [`DistributionClientBuilder::credentials_provider`].
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(Source::Static(credentials));
        self
    }

    /// Ask `provider` for credentials when they are needed, and again when they expire or
    /// are rejected (instead of fixed credentials or a docker `config.json`): for credentials
    /// that expire during a long run, such as ECR's ([`crate::ecr::Ecr`] is a provider).
    /// See [`CredentialsProvider`] for when it is asked. Replaces
    /// [`DistributionClientBuilder::credentials`].
    pub fn credentials_provider(mut self, provider: Arc<dyn CredentialsProvider>) -> Self {
        self.credentials = Some(Source::Provider(provider));
        self
    }

    /// Read credentials for this registry from the docker `config.json` at `path` (it must
    /// exist). Without this or [`DistributionClientBuilder::credentials`], the client looks
    /// in `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, and is anonymous when
    /// neither exists or neither has an entry for the registry. Credential helpers
    /// (`credHelpers`, `credsStore`) are not supported yet: the client then fails with a
    /// clear error when the registry asks for credentials.
    pub fn docker_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.docker_config = Some(path.into());
        self
    }

    /// Upload chunk size in bytes (default 16 MiB, at least 1 KiB): the most memory one
    /// upload of a stream holds, and the size of each `PATCH`. Also the `PATCH` size of file
    /// uploads unless [`DistributionClientBuilder::file_chunk_size`] is set.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// `PATCH` size of file uploads (default [`DEFAULT_FILE_CHUNK_SIZE`], 1 GiB). Files are
    /// streamed from disk, so this costs no memory: larger `PATCH`es mean fewer round trips
    /// (a 1 GiB layer in one request, as fast as `curl -T`), smaller ones less to resend
    /// after a failure.
    pub fn file_chunk_size(mut self, bytes: u64) -> Self {
        self.file_chunk_size = Some(bytes);
        self
    }

    /// How many blobs [`DistributionClient::push_blobs`] uploads at once (default 4).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n;
        self
    }

    /// How failed requests are retried (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Tags asked for per page when listing tags (default 1000); pages are followed through
    /// the `Link` header.
    pub fn tag_page_size(mut self, n: usize) -> Self {
        self.tag_page_size = n;
        self
    }

    /// Builds the client. Fails on a malformed registry URL, a chunk size under 1 KiB, a
    /// concurrency or page size of 0, or an unreadable docker config.
    pub fn build(self) -> Result<DistributionClient, RegistryError> {
        let base = parse_registry(&self.registry)?;
        if self.chunk_size < MIN_CHUNK_SIZE {
            return Err(RegistryError::invalid(
                format!("chunk size {}", self.chunk_size),
                format!("use at least {MIN_CHUNK_SIZE} bytes"),
            ));
        }
        if self.max_concurrency == 0 || self.tag_page_size == 0 {
            return Err(RegistryError::invalid(
                "client settings",
                "max_concurrency and tag_page_size must be at least 1",
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(RegistryError::invalid(
                "retry policy",
                "max_attempts must be at least 1 (1 disables retries)",
            ));
        }
        let host = auth::host_of(&base);
        let (source, unusable) = match self.credentials {
            Some(source) => (source, None),
            None => {
                let (path, must_exist) = match self.docker_config {
                    Some(p) => (Some(p), true),
                    None => (docker_config::default_path(), false),
                };
                match path {
                    None => (Source::Static(Credentials::Anonymous), None),
                    Some(path) => match docker_config::lookup(&path, &host, must_exist)? {
                        docker_config::Found::Nothing => {
                            (Source::Static(Credentials::Anonymous), None)
                        }
                        docker_config::Found::Credentials(c) => (Source::Static(c), None),
                        docker_config::Found::Unusable(e) => {
                            (Source::Static(Credentials::Anonymous), Some(e))
                        }
                    },
                }
            }
        };
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("wharf-registry/", env!("CARGO_PKG_VERSION")));
        if is_loopback(base.host_str().unwrap_or("")) {
            http = http.no_proxy();
        }
        let http = http.build().map_err(|e| RegistryError::Transport {
            url: base.to_string(),
            source: Box::new(e),
        })?;
        Ok(DistributionClient {
            inner: Arc::new(Inner {
                auth: Auth::new(&base, source, unusable),
                http,
                host,
                base,
                chunk_size: self.chunk_size,
                // An explicit stream chunk size (tests use small ones) also applies to files
                // unless a file chunk size was given.
                file_chunk_size: self.file_chunk_size.unwrap_or(
                    if self.chunk_size == DEFAULT_CHUNK_SIZE {
                        DEFAULT_FILE_CHUNK_SIZE
                    } else {
                        self.chunk_size as u64
                    },
                ),
                max_concurrency: self.max_concurrency,
                retry: self.retry,
                tag_page_size: self.tag_page_size,
            }),
        })
    }
}

/// Parses the registry argument of [`DistributionClient::builder`].
fn parse_registry(input: &str) -> Result<Url, RegistryError> {
    let trimmed = input.trim();
    let trimmed = trimmed
        .strip_suffix('/')
        .filter(|t| !t.ends_with('/'))
        .unwrap_or(trimmed);
    // Never echo user info (`user:password@`) back in an error.
    let shown = match (trimmed.find("://"), trimmed.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            format!("{}[redacted]{}", &trimmed[..s + 3], &trimmed[at..])
        }
        (None, Some(at)) => format!("[redacted]{}", &trimmed[at..]),
        _ => trimmed.to_owned(),
    };
    let invalid = |reason: &str| RegistryError::invalid(format!("registry {shown:?}"), reason);
    if trimmed.is_empty() {
        return Err(invalid(
            "empty; give `https://host`, `http://host:port` or `host[:port]`",
        ));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        let host = Url::parse(&format!("http://{trimmed}"))
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let scheme = if is_loopback(&host) { "http" } else { "https" };
        format!("{scheme}://{trimmed}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| {
        invalid(&format!(
            "not a URL ({e}); give `https://host` or `host[:port]`"
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the URL are not accepted; use .credentials(…) on the builder",
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "give only the scheme, host and port; repositories are passed per call",
        ));
    }
    Ok(url)
}

/// Whether `host` is a loopback name or address.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a repository name against the distribution grammar: lowercase path components of
/// `[a-z0-9]` separated by `.`, `_`, `__` or dashes, joined by `/`.
fn check_repo(repo: &str) -> Result<(), RegistryError> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| {
                x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'.' | b'_' | b'-')
            })
            && !c.contains("..")
            && !c.contains("___")
    };
    if repo.len() <= 255 && repo.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(RegistryError::invalid(
            format!("repository {repo:?}"),
            "use lowercase letters, digits and single `.`, `_`, `__` or `-` between them, path parts joined by `/`",
        ))
    }
}

/// The shared state behind a [`DistributionClient`].
struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port]/`.
    base: Url,
    /// `host[:port]`.
    host: String,
    auth: Auth,
    chunk_size: usize,
    /// `PATCH` size of file uploads.
    file_chunk_size: u64,
    max_concurrency: usize,
    retry: RetryPolicy,
    tag_page_size: usize,
}

/// One request as the retry and auth loop sends it.
struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: ReqBody,
    scope: Scope,
    /// Whether sending it twice is harmless (with a repeatable body, it is retried).
    idempotent: bool,
}

impl Request {
    fn new(method: Method, url: Url, scope: Scope) -> Self {
        let idempotent = method != Method::POST && method != Method::PATCH;
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: ReqBody::Empty,
            scope,
            idempotent,
        }
    }

    fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    fn body(mut self, body: ReqBody) -> Self {
        self.body = body;
        self
    }

    fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }
}

impl Inner {
    /// `/v2/<path>` on the registry.
    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("/v2/{path}"));
        url
    }

    /// `host/repo`, for messages.
    fn location(&self, repo: &str) -> String {
        format!("{}/{repo}", self.host)
    }

    /// Sends a request: authorization for its scope (answering the registry's challenge, or
    /// renewing refused credentials, once), retries of temporary failures when the request
    /// is safe to repeat.
    async fn send(&self, mut req: Request) -> Result<Response, RegistryError> {
        crate::error::require_tokio("OCI distribution client")?;
        let mut attempt = 0u32;
        let mut auth_retried = false;
        loop {
            attempt += 1;
            let may_retry =
                req.idempotent && req.body.repeatable() && attempt < self.retry.max_attempts;
            let mut headers = req.headers.clone();
            let authorization = self
                .auth
                .header_for(&self.http, &self.retry, &req.scope, &req.url)
                .await?;
            if let Some(value) = authorization.value {
                headers.insert(AUTHORIZATION, value);
            }
            match transport::execute(&self.http, &req.method, &req.url, &headers, &mut req.body)
                .await
            {
                Err((err, retryable)) => {
                    if retryable && may_retry {
                        tokio::time::sleep(self.retry.backoff(attempt)).await;
                        continue;
                    }
                    return Err(err);
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if auth_retried || !req.body.repeatable() {
                        return Err(self
                            .auth
                            .final_unauthorized(&req.scope, resp.headers())
                            .await);
                    }
                    auth_retried = true;
                    match self
                        .auth
                        .on_unauthorized(
                            &self.http,
                            &self.retry,
                            &req.scope,
                            resp.headers(),
                            authorization.generation,
                        )
                        .await
                    {
                        Retry::Again => attempt -= 1,
                        Retry::Fail(err) => return Err(err),
                    }
                }
                Ok(resp) if transport::retryable_status(resp.status()) && may_retry => {
                    let wait = self
                        .retry
                        .delay(attempt, transport::retry_after(resp.headers()));
                    tracing::debug!(
                        status = resp.status().as_u16(),
                        wait_ms = wait.as_millis() as u64,
                        "retrying"
                    );
                    drop(resp);
                    tokio::time::sleep(wait).await;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    /// The error for an unexpected response: the registry's message, 403 as
    /// [`RegistryError::Denied`].
    async fn error_for(
        &self,
        method: &Method,
        url: &Url,
        scope: &Scope,
        resp: Response,
    ) -> RegistryError {
        let status = resp.status();
        let body = transport::read_limited(resp, 64 << 10)
            .await
            .unwrap_or_default();
        let message = transport::error_message(&body);
        if status == StatusCode::FORBIDDEN {
            return RegistryError::Denied {
                registry: self.host.clone(),
                action: format!("{} ({message})", scope.action()),
            };
        }
        RegistryError::Http {
            method: method.to_string(),
            url: transport::show_url(url),
            status: status.as_u16(),
            message,
        }
    }
}

impl fmt::Debug for DistributionClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributionClient")
            .field("registry", &self.inner.base.as_str())
            .field("credentials", self.inner.auth.source())
            .field("chunk_size", &self.inner.chunk_size)
            .field("max_concurrency", &self.inner.max_concurrency)
            .field("retry", &self.inner.retry)
            .finish()
    }
}

impl fmt::Display for DistributionClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "registry {}", self.inner.host)
    }
}

#[async_trait]
impl Registry for DistributionClient {
    async fn blob_exists(&self, repo: &str, digest: &Digest) -> wharf_core::Result<Option<u64>> {
        check_repo(repo)?;
        Ok(self
            .inner
            .blob_head(repo, digest, Scope::Pull(repo.to_owned()))
            .await?)
    }

    async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        data: BlobStream,
        opts: &PushBlobOptions,
    ) -> wharf_core::Result<Descriptor> {
        Ok(self.inner.push_stream(repo, digest, data, opts).await?)
    }

    async fn fetch_blob(&self, repo: &str, digest: &Digest) -> wharf_core::Result<BlobStream> {
        Ok(self.inner.fetch_blob(repo, digest).await?)
    }

    async fn push_manifest(
        &self,
        repo: &str,
        manifest: &ManifestBytes,
        opts: &PushManifestOptions,
    ) -> wharf_core::Result<Descriptor> {
        self.inner.push_manifest(repo, manifest, opts).await
    }

    async fn fetch_manifest(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> wharf_core::Result<ManifestBytes> {
        check_repo(repo)?;
        Ok(self
            .inner
            .fetch_manifest(repo, digest, Scope::Pull(repo.to_owned()))
            .await?)
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> wharf_core::Result<Descriptor> {
        self.inner.resolve_tag(repo, tag).await
    }

    async fn tag(&self, repo: &str, digest: &Digest, tag: &str) -> wharf_core::Result<()> {
        self.inner.tag(repo, digest, tag).await
    }

    async fn list_tags(
        &self,
        repo: &str,
        opts: &ListTagsOptions,
    ) -> wharf_core::Result<Vec<String>> {
        check_repo(repo)?;
        Ok(self.inner.list_tags(repo, opts).await?)
    }

    async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        opts: &ReferrersOptions,
    ) -> wharf_core::Result<Vec<Descriptor>> {
        check_repo(repo)?;
        Ok(self.inner.referrers(repo, subject, opts).await?)
    }

    async fn has_referrers_api(&self, repo: &str) -> wharf_core::Result<bool> {
        check_repo(repo)?;
        Ok(self.inner.has_referrers_api(repo).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_urls() {
        let ok = |s: &str| parse_registry(s).unwrap().to_string();
        assert_eq!(ok("https://ghcr.io"), "https://ghcr.io/");
        assert_eq!(ok("ghcr.io"), "https://ghcr.io/");
        assert_eq!(ok("ghcr.io/"), "https://ghcr.io/");
        assert_eq!(ok("http://127.0.0.1:5000"), "http://127.0.0.1:5000/");
        assert_eq!(ok("127.0.0.1:5000"), "http://127.0.0.1:5000/");
        assert_eq!(ok("localhost:5000"), "http://localhost:5000/");
        assert_eq!(ok("[::1]:5000"), "http://[::1]:5000/");
        assert_eq!(ok("registry.local:5000"), "https://registry.local:5000/");
        assert_eq!(
            ok("http://registry.local:5000"),
            "http://registry.local:5000/"
        );
        for bad in [
            "",
            "ftp://x",
            "https://u:p@ghcr.io",
            "https://ghcr.io/acme/model",
            "https://",
        ] {
            let err = parse_registry(bad).unwrap_err();
            assert_eq!(err.kind(), wharf_core::ErrorKind::Invalid, "{bad}: {err}");
        }
        let err = parse_registry("https://u:hunter2@ghcr.io")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "user info is never echoed: {err}");
        assert!(err.contains("https://[redacted]@ghcr.io"), "{err}");
    }

    #[test]
    fn repository_names() {
        for ok in ["a", "models/fraud", "a-b/c_d/e.f", "x__y", "a--b", "0/1"] {
            check_repo(ok).unwrap();
        }
        for bad in [
            "", "A", "a//b", "/a", "a/", "-a", "a-", "a/../b", "a?b", "a b", "a:b", "a___b",
        ] {
            assert!(check_repo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builder_checks_settings() {
        assert!(
            DistributionClient::builder("127.0.0.1:1")
                .chunk_size(10)
                .build()
                .is_err()
        );
        assert!(
            DistributionClient::builder("127.0.0.1:1")
                .max_concurrency(0)
                .build()
                .is_err()
        );
        assert!(
            DistributionClient::builder("127.0.0.1:1")
                .retry(RetryPolicy::new(0, Duration::ZERO, Duration::ZERO))
                .build()
                .is_err()
        );
        let client = DistributionClient::builder("127.0.0.1:5000")
            .credentials(Credentials::basic("u", "canary-secret"))
            .build()
            .unwrap();
        let shown = format!("{client:?} {client}");
        assert!(!shown.contains("canary-secret"), "{shown}");

        #[derive(Debug)]
        struct Vault;
        #[async_trait]
        impl CredentialsProvider for Vault {
            async fn credentials(&self) -> wharf_core::Result<ProvidedCredentials> {
                Ok(ProvidedCredentials::new(Credentials::basic("u", "canary")))
            }
        }
        let client = DistributionClient::builder("127.0.0.1:5000")
            .credentials(Credentials::basic("u", "canary-secret"))
            .credentials_provider(Arc::new(Vault))
            .build()
            .unwrap();
        assert!(
            format!("{client:?}").contains("credentials: Provider(Vault)"),
            "the provider replaces static credentials: {client:?}"
        );
        assert_eq!(client.to_string(), "registry 127.0.0.1:5000");
        assert_eq!(client.base_url(), "http://127.0.0.1:5000/");
    }
}
