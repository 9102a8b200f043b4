//! Managed clusters — EKS, AKS, GKE — reached with short-lived tokens from a
//! [`CloudCredentials`] provider: the cloud's API gives the cluster's endpoint and CA, the
//! provider's credentials become the bearer token the API server accepts, and the token is
//! fetched again a minute before it expires, for as long as the target lives. No cloud CLI,
//! no kubeconfig, no exec plugin; and no dependency on `wharf-identity`, whose OIDC exchanges
//! are one kind of provider.
//!
//! | cluster | endpoint and CA from | token |
//! |---|---|---|
//! | [`Eks`] (feature `eks`) | `DescribeCluster` (aws-sdk-eks) | [`eks::token`](crate::eks::token): a presigned STS `GetCallerIdentity`, as `aws eks get-token` |
//! | [`Aks`] | ARM `listClusterUserCredential` | an Entra access token for the AKS server application ([`AKS_SCOPE`]) |
//! | [`Gke`] | the GKE API `projects.locations.clusters.get` | a Google access token ([`GOOGLE_CLOUD_PLATFORM_SCOPE`]) |
//!
//! ```no_run
//! # async fn run(azure: std::sync::Arc<dyn wharf_core::CloudCredentials>) -> wharf_core::Result<()> {
//! use wharf_kube::{cloud::Aks, render::Workload};
//!
//! let target = Aks::new("0b1f6471-1bf0-4dda-aec3-cb9272f09590", "ml-prod", "scoring", azure)
//!     .connect(Workload::default())
//!     .await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, header::AUTHORIZATION};
use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use serde_json::Value;
use tower::BoxError;
use tower::buffer::BufferLayer;
use tower::filter::{AsyncFilterLayer, AsyncPredicate};
use wharf_core::identity::{CredentialOptions, Credentials};
use wharf_core::{CloudCredentials, Error, ErrorKind, Result, Secret};

use crate::cluster::Cluster;
use crate::render::Workload;

/// The Entra scope of AKS's API server application (the same in every tenant): the token
/// kubelogin gets for a cluster with Entra ID integration.
pub const AKS_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";
/// The Entra scope of Azure Resource Manager, which lists a cluster's endpoint and CA.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The Google OAuth scope GKE's API and API servers accept.
pub const GOOGLE_CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Fetch a token again when it has less than this left.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The ARM API version of `listClusterUserCredential`.
const AKS_API_VERSION: &str = "2024-09-01";

/// A cluster's API server: its URL and, when it is not in the system's trust store, the CA
/// that signed its certificate (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// `https://host[:port]`.
    pub server: String,
    /// PEM certificates to trust for it.
    pub ca_pem: Option<Vec<u8>>,
}

impl Endpoint {
    /// `server`, trusting `ca_pem` (PEM) for it.
    pub fn new(server: impl Into<String>, ca_pem: Option<Vec<u8>>) -> Self {
        Self {
            server: server.into(),
            ca_pem,
        }
    }
}

/// What a bearer token is made from.
#[derive(Debug)]
enum Kind {
    /// An access token for a scope: the provider's secret is the token.
    Scoped(String),
    /// An EKS token signed with the provider's AWS credentials.
    #[cfg(feature = "eks")]
    Eks { cluster: String, region: String },
}

/// Bearer tokens for an API server from a [`CloudCredentials`] provider, cached and made
/// again a minute before they expire. Put on a kube client, every request
/// carries a valid one.
#[derive(Clone)]
pub struct BearerTokens {
    kind: Arc<Kind>,
    credentials: Arc<dyn CloudCredentials>,
    cached: Arc<tokio::sync::Mutex<Option<(Secret, SystemTime)>>>,
}

impl fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerTokens")
            .field("kind", &self.kind)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl BearerTokens {
    /// Access tokens for `scope` ([`AKS_SCOPE`], [`GOOGLE_CLOUD_PLATFORM_SCOPE`]): the
    /// provider's credentials are the token.
    pub fn scoped(credentials: Arc<dyn CloudCredentials>, scope: impl Into<String>) -> Self {
        Self::with_kind(credentials, Kind::Scoped(scope.into()))
    }

    /// EKS tokens for `cluster` in `region`, signed with the provider's AWS credentials.
    #[cfg(feature = "eks")]
    pub fn eks(
        credentials: Arc<dyn CloudCredentials>,
        cluster: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        Self::with_kind(
            credentials,
            Kind::Eks {
                cluster: cluster.into(),
                region: region.into(),
            },
        )
    }

    fn with_kind(credentials: Arc<dyn CloudCredentials>, kind: Kind) -> Self {
        Self {
            kind: Arc::new(kind),
            credentials,
            cached: Arc::default(),
        }
    }

    /// A token valid for at least a minute more.
    pub async fn token(&self) -> Result<Secret> {
        self.token_at(SystemTime::now()).await
    }

    /// [`token`](Self::token) as of `now` (tests drive the clock).
    pub async fn token_at(&self, now: SystemTime) -> Result<Secret> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && now + REFRESH_MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let (token, expires) = self.fresh(now).await?;
        *cached = Some((token.clone(), expires));
        Ok(token)
    }

    #[cfg_attr(not(feature = "eks"), allow(unused_variables))]
    async fn fresh(&self, now: SystemTime) -> Result<(Secret, SystemTime)> {
        match &*self.kind {
            Kind::Scoped(scope) => {
                let c = self
                    .credentials
                    .credentials(&CredentialOptions::for_scope(scope.clone()))
                    .await?;
                Ok((c.secret.clone(), expiry(&c)))
            }
            #[cfg(feature = "eks")]
            Kind::Eks { cluster, region } => {
                let c = self
                    .credentials
                    .credentials(&CredentialOptions::default())
                    .await?;
                let t = crate::eks::token(cluster, region, &c, now)?;
                Ok((t.token, t.expires_at.min(expiry(&c))))
            }
        }
    }
}

fn expiry(c: &Credentials) -> SystemTime {
    SystemTime::from(c.expires_at)
}

impl AsyncPredicate<Request<Body>> for BearerTokens {
    type Future = BoxFuture<'static, std::result::Result<Request<Body>, BoxError>>;
    type Request = Request<Body>;

    fn check(&mut self, mut request: Request<Body>) -> Self::Future {
        let tokens = self.clone();
        Box::pin(async move {
            let token = tokens.token().await?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| {
                    Error::invalid("the credentials provider gave a token that is not a valid HTTP header value")
                })?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
            Ok(request)
        })
    }
}

impl Cluster {
    /// A target on `endpoint` whose requests carry `tokens`; `identity` names them in
    /// errors. Call it inside a Tokio runtime.
    pub fn with_bearer_tokens(
        endpoint: &Endpoint,
        tokens: BearerTokens,
        identity: impl Into<String>,
        workload: Workload,
    ) -> Result<Self> {
        let url = endpoint.server.parse().map_err(|e| {
            Error::invalid(format!(
                "cluster endpoint {:?} is not a URL: {e}",
                endpoint.server
            ))
        })?;
        let mut config = Config::new(url);
        if let Some(pem) = &endpoint.ca_pem {
            config.root_cert = Some(
                pem_certificates(pem)
                    .map_err(|e| Error::invalid(format!("the CA of {}: {e}", endpoint.server)))?,
            );
        }
        let client: Client = ClientBuilder::try_from(config)
            .map_err(|e| {
                Error::invalid(format!(
                    "cannot make a Kubernetes client for {}: {e}",
                    endpoint.server
                ))
            })?
            // The filter clones the service it wraps; kube's boxed stack is not Clone.
            .with_layer(&BufferLayer::<Request<Body>>::new(64))
            .with_layer(&AsyncFilterLayer::new(tokens))
            .build();
        Ok(Self::new(client, endpoint.server.clone(), workload).with_identity(identity))
    }
}

/// The DER certificates of a PEM bundle.
fn pem_certificates(pem: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_owned())?;
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match (&mut body, line) {
            (None, "-----BEGIN CERTIFICATE-----") => body = Some(String::new()),
            (Some(b), "-----END CERTIFICATE-----") => {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|e| format!("a certificate that is not base64: {e}"))?;
                out.push(der);
                body = None;
            }
            (Some(b), line) => b.push_str(line),
            (None, _) => {}
        }
    }
    if body.is_some() {
        return Err("a certificate without its END line".into());
    }
    if out.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(out)
}

/// One HTTP call to a cloud API with a bearer token; the JSON answer, or an error that
/// names the call, the status and the cloud's own message.
async fn cloud_json(what: &str, request: reqwest::RequestBuilder, token: &Secret) -> Result<Value> {
    let response = request
        .bearer_auth(token.expose())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Transient,
                format!("cannot reach {what}: {}", error_chain(&e)),
            )
        })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| {
        Error::new(
            ErrorKind::Transient,
            format!("{what}: reading the answer: {e}"),
        )
    })?;
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if !status.is_success() {
        // ARM: {"error":{"code","message"}}; Google: {"error":{"code","message","status"}}.
        let message = json
            .as_ref()
            .and_then(|j| j.pointer("/error/message").or_else(|| j.get("message")))
            .and_then(Value::as_str)
            .map_or_else(
                || String::from_utf8_lossy(&body).chars().take(300).collect(),
                str::to_owned,
            );
        // ARM's code is a name (`AuthorizationFailed`); Google's is the number, its name
        // is `status` (`PERMISSION_DENIED`).
        let code = json
            .as_ref()
            .and_then(|j| {
                [j.pointer("/error/code"), j.pointer("/error/status")]
                    .into_iter()
                    .flatten()
                    .find_map(Value::as_str)
            })
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        let kind = match status.as_u16() {
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::Denied,
            404 => ErrorKind::NotFound,
            429 | 500.. => ErrorKind::Transient,
            _ => ErrorKind::Invalid,
        };
        return Err(Error::new(
            kind,
            format!("{what}: {status}{code}: {}", message.replace('\n', " ")),
        ));
    }
    json.ok_or_else(|| Error::internal(format!("{what}: the answer is not JSON")))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text = format!("{text}: {t}");
        }
        source = s.source();
    }
    text
}

/// A cloud API's CA field: base64 of the PEM.
fn decode_ca(what: &str, ca: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(ca)
        .map_err(|e| Error::internal(format!("the CA of {what} is not base64: {e}")))
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::internal(format!("HTTP client: {e}")))
}

/// An AKS cluster: endpoint and CA from Azure Resource Manager's
/// `listClusterUserCredential`, requests authenticated with Entra access tokens for
/// [`AKS_SCOPE`] (clusters with Entra ID integration and Azure RBAC or Kubernetes RBAC).
#[derive(Debug, Clone)]
pub struct Aks {
    subscription: String,
    resource_group: String,
    name: String,
    credentials: Arc<dyn CloudCredentials>,
    management_url: String,
}

impl Aks {
    /// Cluster `name` in `resource_group` of `subscription`; `credentials` (Azure) give
    /// tokens for [`ARM_SCOPE`] and [`AKS_SCOPE`].
    pub fn new(
        subscription: impl Into<String>,
        resource_group: impl Into<String>,
        name: impl Into<String>,
        credentials: Arc<dyn CloudCredentials>,
    ) -> Self {
        Self {
            subscription: subscription.into(),
            resource_group: resource_group.into(),
            name: name.into(),
            credentials,
            management_url: "https://management.azure.com".into(),
        }
    }

    /// Another Resource Manager endpoint (a sovereign cloud's, or a test's).
    pub fn management_url(mut self, url: impl Into<String>) -> Self {
        self.management_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// The cluster's API server and CA, from the user kubeconfig ARM lists for it.
    pub async fn describe(&self) -> Result<Endpoint> {
        let what = format!(
            "AKS cluster {} (resource group {}, subscription {})",
            self.name, self.resource_group, self.subscription
        );
        let token = self
            .credentials
            .credentials(&CredentialOptions::for_scope(ARM_SCOPE))
            .await?
            .secret;
        let url = format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}/listClusterUserCredential?api-version={AKS_API_VERSION}",
            self.management_url, self.subscription, self.resource_group, self.name
        );
        let answer = cloud_json(
            &format!("listClusterUserCredential of {what}"),
            http_client()?.post(url).header("content-length", "0"),
            &token,
        )
        .await?;
        let encoded = answer
            .pointer("/kubeconfigs/0/value")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::internal(format!(
                    "listClusterUserCredential of {what} returned no kubeconfig"
                ))
            })?;
        let kubeconfig = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| Error::internal(format!("the kubeconfig of {what} is not base64: {e}")))?;
        let kubeconfig: Value = serde_yaml::from_slice(&kubeconfig)
            .map_err(|e| Error::internal(format!("the kubeconfig of {what}: {e}")))?;
        let cluster = kubeconfig
            .pointer("/clusters/0/cluster")
            .ok_or_else(|| Error::internal(format!("the kubeconfig of {what} names no cluster")))?;
        let server = cluster
            .get("server")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::internal(format!("the kubeconfig of {what} has no server")))?;
        let ca = cluster
            .get("certificate-authority-data")
            .and_then(Value::as_str)
            .map(|ca| decode_ca(&what, ca))
            .transpose()?;
        Ok(Endpoint::new(server, ca))
    }

    /// The deploy target: [`describe`](Self::describe), then requests with tokens for
    /// [`AKS_SCOPE`].
    pub async fn connect(&self, workload: Workload) -> Result<Cluster> {
        let endpoint = self.describe().await?;
        let identity = format!(
            "the Azure identity of the credentials provider (Entra token for AKS cluster {})",
            self.name
        );
        Cluster::with_bearer_tokens(
            &endpoint,
            BearerTokens::scoped(self.credentials.clone(), AKS_SCOPE),
            identity,
            workload,
        )
    }
}

/// A GKE cluster: endpoint and CA from the GKE API, requests authenticated with Google
/// access tokens for [`GOOGLE_CLOUD_PLATFORM_SCOPE`] (what `gke-gcloud-auth-plugin` sends).
#[derive(Debug, Clone)]
pub struct Gke {
    project: String,
    location: String,
    name: String,
    credentials: Arc<dyn CloudCredentials>,
    api_url: String,
}

impl Gke {
    /// Cluster `name` in `location` (a region or zone) of `project`; `credentials`
    /// (Google) give access tokens for [`GOOGLE_CLOUD_PLATFORM_SCOPE`].
    pub fn new(
        project: impl Into<String>,
        location: impl Into<String>,
        name: impl Into<String>,
        credentials: Arc<dyn CloudCredentials>,
    ) -> Self {
        Self {
            project: project.into(),
            location: location.into(),
            name: name.into(),
            credentials,
            api_url: "https://container.googleapis.com".into(),
        }
    }

    /// Another GKE API endpoint (Private Service Connect, or a test's).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// The cluster's API server and CA (`endpoint`, `masterAuth.clusterCaCertificate`).
    pub async fn describe(&self) -> Result<Endpoint> {
        let what = format!(
            "GKE cluster {} (location {}, project {})",
            self.name, self.location, self.project
        );
        let token = self
            .credentials
            .credentials(&CredentialOptions::for_scope(GOOGLE_CLOUD_PLATFORM_SCOPE))
            .await?
            .secret;
        let url = format!(
            "{}/v1/projects/{}/locations/{}/clusters/{}",
            self.api_url, self.project, self.location, self.name
        );
        let answer = cloud_json(&format!("get {what}"), http_client()?.get(url), &token).await?;
        let host = answer
            .get("endpoint")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Transient,
                    format!("{what} has no endpoint yet (is it still being created?)"),
                )
            })?;
        let ca = answer
            .pointer("/masterAuth/clusterCaCertificate")
            .and_then(Value::as_str)
            .map(|ca| decode_ca(&what, ca))
            .transpose()?;
        Ok(Endpoint::new(format!("https://{host}"), ca))
    }

    /// The deploy target: [`describe`](Self::describe), then requests with access tokens.
    pub async fn connect(&self, workload: Workload) -> Result<Cluster> {
        let endpoint = self.describe().await?;
        let identity = format!(
            "the Google identity of the credentials provider (access token for GKE cluster {})",
            self.name
        );
        Cluster::with_bearer_tokens(
            &endpoint,
            BearerTokens::scoped(self.credentials.clone(), GOOGLE_CLOUD_PLATFORM_SCOPE),
            identity,
            workload,
        )
    }
}

/// An EKS cluster: endpoint and CA from `DescribeCluster`, requests authenticated with EKS
/// tokens signed with the provider's AWS credentials (the IAM identity needs an EKS access
/// entry, or an `aws-auth` mapping, on the cluster).
#[cfg(feature = "eks")]
#[derive(Debug, Clone)]
pub struct Eks {
    name: String,
    region: String,
    credentials: Arc<dyn CloudCredentials>,
    endpoint_url: Option<String>,
}

#[cfg(feature = "eks")]
impl Eks {
    /// Cluster `name` in `region`; `credentials` (AWS) sign the calls and the tokens.
    pub fn new(
        name: impl Into<String>,
        region: impl Into<String>,
        credentials: Arc<dyn CloudCredentials>,
    ) -> Self {
        Self {
            name: name.into(),
            region: region.into(),
            credentials,
            endpoint_url: None,
        }
    }

    /// Another EKS API endpoint (a VPC or FIPS endpoint, or a test's).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// The cluster's API server and CA, from `DescribeCluster`.
    pub async fn describe(&self) -> Result<Endpoint> {
        use aws_sdk_eks::error::ProvideErrorMetadata as _;
        let what = format!("EKS cluster {} in {}", self.name, self.region);
        let mut config = aws_sdk_eks::Config::builder()
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .region(aws_sdk_eks::config::Region::new(self.region.clone()))
            .credentials_provider(crate::eks::SdkCredentials::new(self.credentials.clone()));
        if let Some(url) = &self.endpoint_url {
            config = config.endpoint_url(url);
        }
        let client = aws_sdk_eks::Client::from_conf(config.build());
        let answer = client
            .describe_cluster()
            .name(&self.name)
            .send()
            .await
            .map_err(|e| {
                let code = e.code().unwrap_or_default().to_owned();
                let message = e.message().map_or_else(|| error_chain(&e), str::to_owned);
                let kind = match code.as_str() {
                    "ResourceNotFoundException" => ErrorKind::NotFound,
                    "AccessDeniedException" | "AccessDenied" => ErrorKind::Denied,
                    "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException" => ErrorKind::Unauthenticated,
                    ""
                    | "ServiceUnavailableException"
                    | "ServerException"
                    | "ThrottlingException" => ErrorKind::Transient,
                    _ => ErrorKind::Invalid,
                };
                Error::new(kind, format!("DescribeCluster of {what}: {code} {message}"))
            })?;
        let cluster = answer.cluster().ok_or_else(|| {
            Error::internal(format!("DescribeCluster of {what} returned no cluster"))
        })?;
        let server = cluster
            .endpoint()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Transient,
                    format!(
                        "{what} has no endpoint yet (status {})",
                        cluster.status().map_or("unknown", |s| s.as_str())
                    ),
                )
            })?;
        let ca = cluster
            .certificate_authority()
            .and_then(|c| c.data())
            .map(|ca| decode_ca(&what, ca))
            .transpose()?;
        Ok(Endpoint::new(server, ca))
    }

    /// The deploy target: [`describe`](Self::describe), then requests with EKS tokens.
    pub async fn connect(&self, workload: Workload) -> Result<Cluster> {
        let endpoint = self.describe().await?;
        let principal = self
            .credentials
            .credentials(&CredentialOptions::default())
            .await?
            .principal;
        Cluster::with_bearer_tokens(
            &endpoint,
            BearerTokens::eks(self.credentials.clone(), &self.name, &self.region),
            format!(
                "the IAM identity of AWS access key {principal} (EKS cluster {})",
                self.name
            ),
            workload,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use time::OffsetDateTime;

    use super::*;

    /// Hands out `token-N` (N counting calls) for the scope it was asked, valid 10 minutes.
    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicU32,
        scopes: std::sync::Mutex<Vec<Option<String>>>,
    }

    #[async_trait]
    impl CloudCredentials for Counting {
        async fn credentials(&self, opts: &CredentialOptions) -> Result<Credentials> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            self.scopes.lock().unwrap().push(opts.scope.clone());
            Ok(Credentials::new(
                "azure",
                "client",
                Secret::new(format!("token-{n}")),
                OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(10),
            ))
        }
    }

    #[tokio::test]
    async fn tokens_are_cached_and_fetched_again_a_minute_before_expiry() {
        let creds = Arc::new(Counting::default());
        let tokens = BearerTokens::scoped(creds.clone(), AKS_SCOPE);
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(tokens.token_at(at(0)).await.unwrap().expose(), "token-0");
        assert_eq!(tokens.token_at(at(500)).await.unwrap().expose(), "token-0");
        // 59 s before expiry: a new one.
        assert_eq!(tokens.token_at(at(541)).await.unwrap().expose(), "token-1");
        assert_eq!(creds.calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            *creds.scopes.lock().unwrap(),
            vec![Some(AKS_SCOPE.to_owned()); 2]
        );
        assert!(!format!("{tokens:?}").contains("token-"));
    }

    #[test]
    fn pem_bundles_are_read_and_bad_ones_named() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAEC\nAwQ=\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBQY=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_certificates(pem).unwrap(),
            vec![vec![0, 1, 2, 3, 4], vec![5, 6]]
        );
        assert!(
            pem_certificates(b"hello")
                .unwrap_err()
                .contains("no PEM certificate")
        );
        assert!(
            pem_certificates(b"-----BEGIN CERTIFICATE-----\nAAEC\n")
                .unwrap_err()
                .contains("END")
        );
    }
}
