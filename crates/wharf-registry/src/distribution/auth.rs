//! Credentials and their providers, `WWW-Authenticate` challenges, and the bearer-token
//! flow with its cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use wharf_core::Secret;

use super::transport::{self, ReqBody, RetryPolicy, sensitive, show_url};
use crate::RegistryError;

/// How the client authenticates to a registry.
///
/// `Debug` never shows a password or token.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials: public content only (the bearer-token flow still runs anonymously,
    /// as registries like Docker Hub require for public pulls).
    #[default]
    Anonymous,
    /// A user name and password (or personal access token), sent as HTTP Basic auth to a
    /// registry that asks for Basic, or to the token server of one that asks for Bearer.
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: Secret,
    },
    /// A bearer token sent as is on every request (a registry token obtained elsewhere).
    Bearer(Secret),
}

impl Credentials {
    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials::Basic {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// A short description for messages: the kind and user name, never the secret.
    fn describe(&self) -> String {
        match self {
            Credentials::Anonymous => "anonymous access".to_owned(),
            Credentials::Basic { username, .. } => format!("user {username:?}"),
            Credentials::Bearer(_) => "the configured bearer token".to_owned(),
        }
    }

    /// The `Authorization: Basic …` value, for Basic credentials.
    fn basic_header(&self) -> Option<HeaderValue> {
        match self {
            Credentials::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                sensitive(&format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            Credentials::Bearer(_) => f.write_str("Bearer([redacted])"),
        }
    }
}

/// A source of credentials that change over time: a token service whose tokens expire (ECR's
/// `GetAuthorizationToken`, a cloud identity), a secret store whose passwords rotate. Give it
/// to [`DistributionClientBuilder::credentials_provider`](super::DistributionClientBuilder::credentials_provider).
///
/// The client asks the provider
///
/// - when it first needs credentials: at the registry's first `Basic` or `Bearer` challenge
///   (requests go out without credentials until then), or before the first request when the
///   provider's last answer was a bearer token;
/// - again once [`ProvidedCredentials::valid_for`] has passed, before the next request that
///   needs credentials (never in between: one call serves every request while the
///   credentials are valid, and concurrent requests share one call);
/// - again when the registry or its token server rejects the credentials with a 401. The
///   request is then sent once more if the provider gave other credentials, and fails with
///   [`wharf_core::ErrorKind::Unauthenticated`] if it gave the same ones; a request is never
///   retried twice for credentials.
///
/// The client caches the answer for as long as the provider says, so the provider need not
/// cache; one that does (like [`crate::ecr::Ecr`]) can return what it holds.
///
/// `Debug` must not show secrets: the client's `Debug` output includes the provider's.
#[async_trait]
pub trait CredentialsProvider: fmt::Debug + Send + Sync {
    /// The credentials to use now, and for how long.
    ///
    /// An error fails the request that needed the credentials, with
    /// [`wharf_core::ErrorKind::Unauthenticated`] (or [`wharf_core::ErrorKind::Transient`]
    /// when the error is transient, so the caller may retry), naming the registry and
    /// quoting the error's message: keep secrets out of it.
    async fn credentials(&self) -> wharf_core::Result<ProvidedCredentials>;
}

/// What a [`CredentialsProvider`] gives: credentials, and how long the client may use them
/// before asking again.
///
/// `Debug` never shows a password or token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvidedCredentials {
    /// The credentials.
    pub credentials: Credentials,
    /// How long the client may use them without asking the provider again, from when the
    /// provider answered; `None`: until the registry rejects them. Say when they should stop
    /// being used (some time before they expire), not when they expire.
    pub valid_for: Option<Duration>,
}

impl ProvidedCredentials {
    /// `credentials`, used until the registry rejects them.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            valid_for: None,
        }
    }

    /// These credentials, used for at most `valid_for` before the provider is asked again.
    #[must_use]
    pub fn with_valid_for(mut self, valid_for: Duration) -> Self {
        self.valid_for = Some(valid_for);
        self
    }
}

/// Where a client's credentials come from.
#[derive(Clone)]
pub(crate) enum Source {
    /// Fixed credentials (given to the builder, or from a docker config).
    Static(Credentials),
    /// A provider, asked when needed.
    Provider(Arc<dyn CredentialsProvider>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Static(creds) => creds.fmt(f),
            Source::Provider(provider) => f.debug_tuple("Provider").field(provider).finish(),
        }
    }
}

/// Credentials from a provider, as the client holds them.
struct Held {
    creds: Credentials,
    /// Counts the provider's answers, so that a rejected request can tell whether the
    /// credentials were replaced since it was sent.
    generation: u64,
    /// When to ask the provider again; `None`: only after a rejection.
    until: Option<Deadline>,
}

impl Held {
    fn in_use(&self) -> InUse {
        InUse {
            creds: self.creds.clone(),
            generation: self.generation,
        }
    }

    fn expired(&self) -> bool {
        self.until.as_ref().is_some_and(Deadline::passed)
    }
}

/// A point in time on both clocks: the monotonic one (immune to wall-clock changes) and the
/// wall clock (which, unlike the monotonic one, keeps running while the machine sleeps, as
/// an expiring credential's lifetime does).
struct Deadline {
    instant: Instant,
    wall: SystemTime,
}

impl Deadline {
    /// `d` from now (at most a year: longer is as good as forever, and cannot overflow).
    fn after(d: Duration) -> Self {
        let d = d.min(Duration::from_secs(365 * 24 * 3600));
        Self {
            instant: Instant::now() + d,
            wall: SystemTime::now() + d,
        }
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.instant || SystemTime::now() >= self.wall
    }
}

/// The credentials a request is sent with.
pub(crate) struct InUse {
    creds: Credentials,
    /// Which answer of the provider they are (0 for static credentials).
    generation: u64,
}

/// The `Authorization` of one request.
pub(crate) struct Authorization {
    /// The header value, if any.
    pub(crate) value: Option<HeaderValue>,
    /// The generation of the credentials behind it (see [`Held::generation`]).
    pub(crate) generation: Option<u64>,
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// The scheme, lowercased (`basic`, `bearer`).
    pub(crate) scheme: String,
    /// Parameters, names lowercased.
    pub(crate) params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value: one or more challenges, each a scheme followed by
/// `name=value` parameters whose values may be quoted strings (with commas and `\` escapes).
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let s = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t' || s[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> String {
        let start = *i;
        while *i < s.len() && !matches!(s[*i], b' ' | b'\t' | b',' | b'=' | b'"') {
            *i += 1;
        }
        String::from_utf8_lossy(&s[start..*i]).into_owned()
    };
    loop {
        skip_ws(&mut i);
        if i >= s.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            i += 1; // a stray character: skip it
            continue;
        }
        // `word=` is a parameter of the current challenge; a bare word starts a new one.
        let mut j = i;
        while j < s.len() && (s[j] == b' ' || s[j] == b'\t') {
            j += 1;
        }
        if j < s.len() && s[j] == b'=' && !out.is_empty() {
            i = j + 1;
            while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                i += 1;
            }
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i += 1; // closing quote
                String::from_utf8_lossy(&v).into_owned()
            } else {
                token(&mut i)
            };
            if let Some(last) = out.last_mut() {
                last.params.push((word.to_ascii_lowercase(), value));
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
        }
    }
    out
}

/// What the client must be allowed to do for a request (the token scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The registry itself (`/v2/`): no repository.
    Registry,
    /// Read a repository.
    Pull(String),
    /// Read and write a repository.
    Push(String),
    /// Write `repo` and read `from` (cross-repository mount).
    Mount {
        /// The repository written.
        repo: String,
        /// The repository read.
        from: String,
    },
}

impl Scope {
    /// The `scope` values for the token server.
    pub(crate) fn scopes(&self) -> Vec<String> {
        match self {
            Scope::Registry => Vec::new(),
            Scope::Pull(r) => vec![format!("repository:{r}:pull")],
            Scope::Push(r) => vec![format!("repository:{r}:pull,push")],
            Scope::Mount { repo, from } => vec![
                format!("repository:{repo}:pull,push"),
                format!("repository:{from}:pull"),
            ],
        }
    }

    /// The token-cache key.
    fn key(&self) -> String {
        self.scopes().join(" ")
    }

    /// What is being attempted, for messages.
    pub(crate) fn action(&self) -> String {
        match self {
            Scope::Registry => "access to the registry".to_owned(),
            Scope::Pull(r) => format!("pull from {r}"),
            Scope::Push(r) => format!("push to {r}"),
            Scope::Mount { repo, from } => format!("mount from {from} into {repo}"),
        }
    }
}

/// What the registry asked for, learned from its challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    /// Not known yet: requests go out without credentials until the first challenge.
    Unknown,
    /// HTTP Basic.
    Basic,
    /// The bearer-token flow.
    Bearer {
        /// The token server.
        realm: Url,
        /// The `service` parameter.
        service: Option<String>,
    },
}

/// A token and when to stop using it.
struct CachedToken {
    token: Secret,
    /// Refresh from this instant on (some time before the token expires).
    refresh_at: Instant,
}

/// How long before its expiry a token is replaced: a tenth of its lifetime, between 1 and
/// 30 seconds.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// The token server's answer.
#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<Secret>,
    #[serde(default)]
    access_token: Option<Secret>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    issued_at: Option<String>,
}

impl TokenResponse {
    /// The token and its lifetime as seen from now (`expires_in` defaults to 60 s; an
    /// `issued_at` in the past shortens it).
    fn into_token(self, now: time::OffsetDateTime) -> Option<(Secret, Duration)> {
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let expires_in = Duration::from_secs(self.expires_in.filter(|s| *s > 0).unwrap_or(60));
        let age = self
            .issued_at
            .as_deref()
            .and_then(|at| {
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|at| now - at)
            .filter(|age| age.is_positive())
            .map_or(Duration::ZERO, |age| age.unsigned_abs());
        Some((token, expires_in.saturating_sub(age)))
    }
}

/// Authentication state of one client: where credentials come from (and the provider's last
/// answer), the scheme the registry asked for, and cached tokens per scope.
pub(crate) struct Auth {
    source: Source,
    /// The provider's last answer (unused for static credentials).
    held: tokio::sync::Mutex<Option<Held>>,
    /// Why the configured credential source cannot be used (a docker credential helper),
    /// reported when the registry asks for credentials.
    unusable: Option<RegistryError>,
    /// The registry's origin: credentials are only sent there (and to its token server).
    origin: Origin,
    /// Registry host for messages.
    host: String,
    /// Whether the registry is reached over https (then the token server must be too).
    https: bool,
    scheme: Mutex<Scheme>,
    tokens: tokio::sync::Mutex<HashMap<String, CachedToken>>,
    /// Scopes a challenge asked for beyond ours, per cache key.
    extra_scopes: Mutex<HashMap<String, Vec<String>>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("credentials", &self.source)
            .finish_non_exhaustive()
    }
}

/// The outcome of handling a 401.
pub(crate) enum Retry {
    /// Send the request again with fresh authorization.
    Again,
    /// Give up with this error.
    Fail(RegistryError),
}

impl Auth {
    /// Auth state for the registry at `base`.
    pub(crate) fn new(base: &Url, source: Source, unusable: Option<RegistryError>) -> Self {
        Self {
            source,
            held: tokio::sync::Mutex::new(None),
            unusable,
            origin: origin(base),
            host: host_of(base),
            https: base.scheme() == "https",
            scheme: Mutex::new(Scheme::Unknown),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            extra_scopes: Mutex::new(HashMap::new()),
        }
    }

    /// Where the credentials come from.
    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    fn scheme(&self) -> Scheme {
        self.scheme
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_scheme(&self, scheme: Scheme) {
        *self
            .scheme
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = scheme;
    }

    /// The credentials to use now: the static ones, or the provider's last answer while it is
    /// valid, else a new answer.
    async fn current(&self) -> Result<InUse, RegistryError> {
        let provider = match &self.source {
            Source::Static(creds) => {
                return Ok(InUse {
                    creds: creds.clone(),
                    generation: 0,
                });
            }
            Source::Provider(provider) => provider,
        };
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref().filter(|h| !h.expired()) {
            return Ok(h.in_use());
        }
        let answer = self.ask(provider.as_ref()).await?;
        let generation = held.as_ref().map_or(1, |h| h.generation + 1);
        let h = Held {
            creds: answer.credentials,
            generation,
            until: answer.valid_for.map(Deadline::after),
        };
        let in_use = h.in_use();
        *held = Some(h);
        Ok(in_use)
    }

    /// After the credentials of `rejected` (a generation) were refused: the credentials to
    /// try instead, `None` when there are none (static credentials, or the provider gave the
    /// same ones again). Credentials another request already replaced are used without
    /// asking the provider.
    async fn renew(&self, rejected: u64) -> Result<Option<InUse>, RegistryError> {
        let Source::Provider(provider) = &self.source else {
            return Ok(None);
        };
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref()
            && h.generation != rejected
            && !h.expired()
        {
            return Ok(Some(h.in_use()));
        }
        let answer = self.ask(provider.as_ref()).await?;
        let same = held
            .as_ref()
            .filter(|h| h.generation == rejected)
            .is_some_and(|h| h.creds == answer.credentials);
        let generation = match held.as_ref() {
            Some(h) if same => h.generation,
            Some(h) => h.generation + 1,
            None => 1,
        };
        let h = Held {
            creds: answer.credentials,
            generation,
            until: answer.valid_for.map(Deadline::after),
        };
        let in_use = h.in_use();
        *held = Some(h);
        Ok((!same).then_some(in_use))
    }

    /// One call to the provider; its error becomes [`RegistryError::CredentialsProvider`].
    async fn ask(
        &self,
        provider: &dyn CredentialsProvider,
    ) -> Result<ProvidedCredentials, RegistryError> {
        tracing::debug!(registry = %self.host, "asking the credentials provider");
        provider.credentials().await.map_err(|source| {
            let reason = source.to_string();
            RegistryError::CredentialsProvider {
                registry: self.host.clone(),
                reason: reason.split_whitespace().collect::<Vec<_>>().join(" "),
                source,
            }
        })
    }

    /// Whether the credentials are (as far as known) a bearer token, sent before any
    /// challenge. A provider that has not been asked yet is not asked here.
    async fn holds_bearer(&self) -> bool {
        match &self.source {
            Source::Static(creds) => matches!(creds, Credentials::Bearer(_)),
            Source::Provider(_) => self
                .held
                .lock()
                .await
                .as_ref()
                .is_some_and(|h| matches!(h.creds, Credentials::Bearer(_))),
        }
    }

    /// The credentials last used and where they came from, for messages (the provider is
    /// not asked).
    async fn describe(&self) -> (Credentials, String) {
        match &self.source {
            Source::Static(creds) => (creds.clone(), creds.describe()),
            Source::Provider(_) => {
                let creds = self
                    .held
                    .lock()
                    .await
                    .as_ref()
                    .map_or(Credentials::Anonymous, |h| h.creds.clone());
                let shown = match &creds {
                    Credentials::Bearer(_) => {
                        "the bearer token from the credentials provider".to_owned()
                    }
                    other => format!("{} from the credentials provider", other.describe()),
                };
                (creds, shown)
            }
        }
    }

    /// The `Authorization` for a request to `url` needing `scope`, fetching a token when the
    /// registry uses bearer tokens and none is cached (or it is about to expire). Nothing is
    /// sent (and a provider is not asked) before the registry's first challenge, except a
    /// bearer token given as the credentials.
    pub(crate) async fn header_for(
        &self,
        http: &reqwest::Client,
        retry: &RetryPolicy,
        scope: &Scope,
        url: &Url,
    ) -> Result<Authorization, RegistryError> {
        let none = Authorization {
            value: None,
            generation: None,
        };
        if origin(url) != self.origin {
            return Ok(none); // never send credentials to another host (redirects, uploads)
        }
        let scheme = match self.scheme() {
            Scheme::Bearer { realm, service } if !self.holds_bearer().await => {
                // A registry token; the credentials are only needed to fetch a new one.
                let token = self
                    .token(http, retry, &realm, service.as_deref(), scope, false)
                    .await?;
                return Ok(Authorization {
                    value: sensitive(&format!("Bearer {}", token.expose())),
                    generation: None,
                });
            }
            Scheme::Unknown if !self.holds_bearer().await => return Ok(none),
            scheme => scheme,
        };
        let in_use = self.current().await?;
        let value = match (&in_use.creds, scheme) {
            (Credentials::Bearer(token), _) => sensitive(&format!("Bearer {}", token.expose())),
            (creds, Scheme::Basic) => creds.basic_header(),
            // The provider's answer changed from a bearer token: wait for a challenge.
            (_, Scheme::Unknown | Scheme::Bearer { .. }) => None,
        };
        Ok(Authorization {
            generation: value.is_some().then_some(in_use.generation),
            value,
        })
    }

    /// Learns from a 401's challenges and decides whether a retry can succeed. `sent` is the
    /// generation of the credentials the refused request carried, `None` if it carried none.
    pub(crate) async fn on_unauthorized(
        &self,
        http: &reqwest::Client,
        retry: &RetryPolicy,
        scope: &Scope,
        headers: &HeaderMap,
        sent: Option<u64>,
    ) -> Retry {
        let challenges: Vec<Challenge> = headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let in_use = match self.current().await {
            Ok(in_use) => in_use,
            Err(e) => return Retry::Fail(e),
        };
        if let Credentials::Bearer(_) = in_use.creds {
            let Some(sent) = sent else {
                return Retry::Again; // the provider's first answer: not sent yet
            };
            return match self.renew(sent).await {
                Ok(Some(_)) => Retry::Again,
                Ok(None) => Retry::Fail(self.unauthorized(match self.source {
                    Source::Static(_) => {
                        "the configured bearer token was rejected; it may have expired: get a new one"
                    }
                    Source::Provider(_) => {
                        "the bearer token from the credentials provider was rejected, and the provider gave no other: check that it hands out current tokens"
                    }
                })),
                Err(e) => Retry::Fail(e),
            };
        }
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let Some(realm) = bearer.param("realm") else {
                return Retry::Fail(RegistryError::invalid(
                    format!("the bearer challenge of {}", self.host),
                    "it names no realm (token server); the registry is misconfigured",
                ));
            };
            let realm = match Url::parse(realm) {
                Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && !self.https) => u,
                Ok(_) => {
                    return Retry::Fail(RegistryError::invalid(
                        format!("the token server of {}", self.host),
                        "an https registry named a plain-http token server; refusing to send credentials there",
                    ));
                }
                Err(_) => {
                    return Retry::Fail(RegistryError::invalid(
                        format!("the bearer challenge of {}", self.host),
                        "its realm is not a URL; the registry is misconfigured",
                    ));
                }
            };
            if let Some(unusable) = self.unusable_error() {
                return Retry::Fail(unusable);
            }
            let service = bearer.param("service").map(str::to_owned);
            let asked: Vec<String> = bearer
                .param("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let ours = scope.scopes();
            let extra: Vec<String> = asked.into_iter().filter(|s| !ours.contains(s)).collect();
            self.extra_scopes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(scope.key(), extra);
            self.set_scheme(Scheme::Bearer {
                realm: realm.clone(),
                service: service.clone(),
            });
            // The token we sent (if any) was not good enough: get a fresh one now (with fresh
            // credentials if the token server refuses the current ones).
            return match self
                .token(http, retry, &realm, service.as_deref(), scope, true)
                .await
            {
                Ok(_) => Retry::Again,
                Err(e) => Retry::Fail(e),
            };
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            self.set_scheme(Scheme::Basic);
            if let Some(unusable) = self.unusable_error() {
                return Retry::Fail(unusable);
            }
            return match (&in_use.creds, sent) {
                (Credentials::Anonymous, _) => {
                    Retry::Fail(self.final_unauthorized(scope, headers).await)
                }
                // Sent without credentials: send them now.
                (_, None) => Retry::Again,
                // Refused: once more only with other credentials.
                (_, Some(sent)) => match self.renew(sent).await {
                    Ok(Some(_)) => Retry::Again,
                    Ok(None) => Retry::Fail(self.final_unauthorized(scope, headers).await),
                    Err(e) => Retry::Fail(e),
                },
            };
        }
        Retry::Fail(self.final_unauthorized(scope, headers).await)
    }

    /// The error for a request still refused after authenticating.
    pub(crate) async fn final_unauthorized(
        &self,
        scope: &Scope,
        headers: &HeaderMap,
    ) -> RegistryError {
        let insufficient = headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .any(|c| c.param("error") == Some("insufficient_scope"));
        if let Some(unusable) = self.unusable_error() {
            return unusable;
        }
        let (creds, shown) = self.describe().await;
        let from_provider = matches!(self.source, Source::Provider(_));
        match creds {
            Credentials::Anonymous if from_provider => self.unauthorized(&format!(
                "it needs credentials for {}, and the credentials provider gave none",
                scope.action()
            )),
            Credentials::Anonymous => self.unauthorized(&format!(
                "it needs credentials for {}: pass Credentials::Basic to the client builder or add an `auths` entry for {} to the docker config.json (`docker login {}`)",
                scope.action(),
                self.host,
                self.host
            )),
            _ if insufficient => RegistryError::Denied {
                registry: self.host.clone(),
                action: format!("{} to {shown}", scope.action()),
            },
            _ if from_provider => self.unauthorized(&format!(
                "{shown} was not accepted for {}, and the provider gave no other: check that it hands out current credentials",
                scope.action()
            )),
            _ => self.unauthorized(&format!(
                "{shown} was not accepted for {}: check the user name and password and that they are not expired",
                scope.action()
            )),
        }
    }

    fn unauthorized(&self, hint: &str) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.host.clone(),
            hint: hint.to_owned(),
        }
    }

    fn unusable_error(&self) -> Option<RegistryError> {
        if !matches!(self.source, Source::Static(Credentials::Anonymous)) {
            return None;
        }
        self.unusable.as_ref().map(|e| match e {
            RegistryError::Unsupported { what, hint } => RegistryError::Unsupported {
                what: what.clone(),
                hint: hint.clone(),
            },
            other => RegistryError::invalid("docker config", other.to_string()),
        })
    }

    /// A token for `scope`: the cached one unless `force` or it is due for refresh, else a
    /// new one from the token server. Fetches are serialized, so concurrent requests for the
    /// same scope share one token. When the token server refuses the credentials and a
    /// provider has other ones, the fetch is repeated once with those.
    async fn token(
        &self,
        http: &reqwest::Client,
        retry: &RetryPolicy,
        realm: &Url,
        service: Option<&str>,
        scope: &Scope,
        force: bool,
    ) -> Result<Secret, RegistryError> {
        let key = scope.key();
        let mut tokens = self.tokens.lock().await;
        if !force
            && let Some(cached) = tokens.get(&key)
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let mut scopes = scope.scopes();
        if let Some(extra) = self
            .extra_scopes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
        {
            scopes.extend(extra.iter().cloned());
        }
        // Lock order: tokens, then the provider's answer (never the other way round).
        let in_use = self.current().await?;
        let fetched = self
            .fetch_token(http, retry, realm, service, &scopes, scope, &in_use.creds)
            .await;
        let (token, lifetime) = match fetched {
            Err(refused @ RegistryError::Unauthorized { .. }) => {
                match self.renew(in_use.generation).await? {
                    Some(fresh) => {
                        self.fetch_token(http, retry, realm, service, &scopes, scope, &fresh.creds)
                            .await?
                    }
                    None => return Err(refused),
                }
            }
            other => other?,
        };
        let refresh_at = Instant::now() + lifetime.saturating_sub(refresh_margin(lifetime));
        tokens.insert(
            key,
            CachedToken {
                token: token.clone(),
                refresh_at,
            },
        );
        Ok(token)
    }

    /// `GET realm?service=…&scope=…` with `creds` as Basic credentials when they are Basic.
    /// A 401 or 403 is [`RegistryError::Unauthorized`].
    #[allow(clippy::too_many_arguments)]
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        retry: &RetryPolicy,
        realm: &Url,
        service: Option<&str>,
        scopes: &[String],
        scope: &Scope,
        creds: &Credentials,
    ) -> Result<(Secret, Duration), RegistryError> {
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = service {
                q.append_pair("service", service);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let mut headers = HeaderMap::new();
        if let Some(basic) = creds.basic_header() {
            headers.insert(AUTHORIZATION, basic);
        }
        let method = Method::GET;
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let last = attempt >= retry.max_attempts.max(1);
            match transport::execute(http, &method, &url, &headers, &mut ReqBody::Empty).await {
                Ok(resp) if transport::retryable_status(resp.status()) && !last => {
                    let wait = retry.delay(attempt, transport::retry_after(resp.headers()));
                    tokio::time::sleep(wait).await;
                }
                Ok(resp) => break resp,
                Err((_, true)) if !last => tokio::time::sleep(retry.backoff(attempt)).await,
                Err((e, _)) => return Err(e),
            }
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let hint = match creds {
                Credentials::Anonymous => format!(
                    "its token server refused anonymous access for {}: configure credentials",
                    scope.action()
                ),
                creds => {
                    let shown = match self.source {
                        Source::Static(_) => creds.describe(),
                        Source::Provider(_) => {
                            format!("{} from the credentials provider", creds.describe())
                        }
                    };
                    format!(
                        "its token server ({}) did not accept {shown} for {}: check the user name and password",
                        show_url(realm),
                        scope.action()
                    )
                }
            };
            return Err(self.unauthorized(&hint));
        }
        let body = transport::read_limited(resp, 1 << 20)
            .await
            .map_err(|e| transport::transport_error(&method, realm, e))?;
        if !status.is_success() {
            return Err(RegistryError::Http {
                method: method.to_string(),
                url: show_url(realm),
                status: status.as_u16(),
                message: transport::error_message(&body),
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::invalid(
                format!("the token server's answer ({})", show_url(realm)),
                format!("not a token response: {e}"),
            )
        })?;
        parsed
            .into_token(time::OffsetDateTime::now_utc())
            .ok_or_else(|| {
                RegistryError::invalid(
                    format!("the token server's answer ({})", show_url(realm)),
                    "it holds neither `token` nor `access_token`",
                )
            })
    }
}

/// Scheme, host and port (the default one when the URL names none).
type Origin = (String, String, Option<u16>);

/// The origin of a URL.
fn origin(url: &Url) -> Origin {
    (
        url.scheme().to_owned(),
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default(),
    )
}

/// `host[:port]` of a URL.
pub(crate) fn host_of(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_quoted_commas() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push repository:other:pull",error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:samalba/my-app:pull,push repository:other:pull")
        );
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn parses_basic_and_several_challenges() {
        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));

        let c = parse_challenges(
            r#"Basic realm="a, b", Bearer realm=https://x/token , service = "s\"q" "#,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://x/token"));
        assert_eq!(c[1].param("service"), Some("s\"q"));
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("Negotiate")[0].scheme, "negotiate");
    }

    #[test]
    fn scopes_and_keys() {
        assert_eq!(Scope::Pull("a/b".into()).scopes(), ["repository:a/b:pull"]);
        assert_eq!(
            Scope::Push("a/b".into()).scopes(),
            ["repository:a/b:pull,push"]
        );
        assert_eq!(
            Scope::Mount {
                repo: "a".into(),
                from: "b".into()
            }
            .key(),
            "repository:a:pull,push repository:b:pull"
        );
        assert!(Scope::Registry.scopes().is_empty());
    }

    #[test]
    fn token_responses() {
        let now = time::macros::datetime!(2026-01-01 00:00:00 UTC);
        let parse = |s: &str| {
            serde_json::from_str::<TokenResponse>(s)
                .unwrap()
                .into_token(now)
        };
        let (t, life) = parse(r#"{"token":"abc"}"#).unwrap();
        assert_eq!((t.expose(), life), ("abc", Duration::from_secs(60)));
        let (t, life) = parse(r#"{"access_token":"xyz","expires_in":300}"#).unwrap();
        assert_eq!((t.expose(), life), ("xyz", Duration::from_secs(300)));
        let (_, life) =
            parse(r#"{"token":"abc","expires_in":300,"issued_at":"2025-12-31T23:59:00Z"}"#)
                .unwrap();
        assert_eq!(life, Duration::from_secs(240), "issued a minute ago");
        let (_, life) =
            parse(r#"{"token":"abc","expires_in":300,"issued_at":"2026-01-01T00:05:00Z"}"#)
                .unwrap();
        assert_eq!(
            life,
            Duration::from_secs(300),
            "a server clock ahead is ignored"
        );
        assert!(parse(r#"{"token":""}"#).is_none());
        assert!(parse(r#"{}"#).is_none());
    }

    #[test]
    fn refresh_margins() {
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(6)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let basic = Credentials::basic("alice", "canary-pw-123");
        let bearer = Credentials::Bearer(Secret::new("canary-token-456"));
        let shown = format!("{basic:?} {bearer:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("alice"));
        let hv = basic.basic_header().unwrap();
        assert!(hv.is_sensitive());
        assert!(!format!("{hv:?}").contains("YWxpY2U"), "{hv:?}");

        let provided = ProvidedCredentials::new(basic.clone()).with_valid_for(Duration::ZERO);
        let shown = format!("{provided:?} {:?}", Source::Static(bearer));
        assert!(!shown.contains("canary"), "{shown}");
        assert!(
            shown.contains("alice") && shown.contains("valid_for"),
            "{shown}"
        );
    }

    #[test]
    fn deadlines_pass() {
        assert!(Deadline::after(Duration::ZERO).passed());
        assert!(!Deadline::after(Duration::from_secs(60)).passed());
        assert!(
            !Deadline::after(Duration::MAX).passed(),
            "capped, not overflowed"
        );
    }
}
