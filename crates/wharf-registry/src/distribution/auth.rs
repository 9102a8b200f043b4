//! Credentials, `WWW-Authenticate` challenges, and the bearer-token flow with its cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Authentication state of one client: credentials, the scheme the registry asked for, and
/// cached tokens per scope.
pub(crate) struct Auth {
    creds: Credentials,
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
            .field("credentials", &self.creds)
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
    pub(crate) fn new(base: &Url, creds: Credentials, unusable: Option<RegistryError>) -> Self {
        Self {
            creds,
            unusable,
            origin: origin(base),
            host: host_of(base),
            https: base.scheme() == "https",
            scheme: Mutex::new(Scheme::Unknown),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            extra_scopes: Mutex::new(HashMap::new()),
        }
    }

    /// The configured credentials.
    pub(crate) fn credentials(&self) -> &Credentials {
        &self.creds
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

    /// The `Authorization` value for a request to `url` needing `scope`, fetching a token
    /// when the registry uses bearer tokens and none is cached (or it is about to expire).
    pub(crate) async fn header_for(
        &self,
        http: &reqwest::Client,
        retry: &RetryPolicy,
        scope: &Scope,
        url: &Url,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        if origin(url) != self.origin {
            return Ok(None); // never send credentials to another host (redirects, uploads)
        }
        if let Credentials::Bearer(token) = &self.creds {
            return Ok(sensitive(&format!("Bearer {}", token.expose())));
        }
        match self.scheme() {
            Scheme::Unknown => Ok(None),
            Scheme::Basic => Ok(self.creds.basic_header()),
            Scheme::Bearer { realm, service } => {
                let token = self
                    .token(http, retry, &realm, service.as_deref(), scope, false)
                    .await?;
                Ok(sensitive(&format!("Bearer {}", token.expose())))
            }
        }
    }

    /// Learns from a 401's challenges and decides whether a retry can succeed.
    pub(crate) async fn on_unauthorized(
        &self,
        http: &reqwest::Client,
        retry: &RetryPolicy,
        scope: &Scope,
        headers: &HeaderMap,
    ) -> Retry {
        let challenges: Vec<Challenge> = headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        if let Credentials::Bearer(_) = self.creds {
            return Retry::Fail(self.unauthorized(
                "the configured bearer token was rejected; it may have expired: get a new one",
            ));
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
            // The token we sent (if any) was not good enough: get a fresh one now.
            return match self
                .token(http, retry, &realm, service.as_deref(), scope, true)
                .await
            {
                Ok(_) => Retry::Again,
                Err(e) => Retry::Fail(e),
            };
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let already_basic = self.scheme() == Scheme::Basic;
            self.set_scheme(Scheme::Basic);
            if let Some(unusable) = self.unusable_error() {
                return Retry::Fail(unusable);
            }
            return match self.creds {
                Credentials::Basic { .. } if !already_basic => Retry::Again,
                _ => Retry::Fail(self.final_unauthorized(scope, headers)),
            };
        }
        Retry::Fail(self.final_unauthorized(scope, headers))
    }

    /// The error for a request still refused after authenticating.
    pub(crate) fn final_unauthorized(&self, scope: &Scope, headers: &HeaderMap) -> RegistryError {
        let insufficient = headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .any(|c| c.param("error") == Some("insufficient_scope"));
        if let Some(unusable) = self.unusable_error() {
            return unusable;
        }
        match &self.creds {
            Credentials::Anonymous => self.unauthorized(&format!(
                "it needs credentials for {}: pass Credentials::Basic to the client builder or add an `auths` entry for {} to the docker config.json (`docker login {}`)",
                scope.action(),
                self.host,
                self.host
            )),
            creds if insufficient => RegistryError::Denied {
                registry: self.host.clone(),
                action: format!("{} to {}", scope.action(), creds.describe()),
            },
            creds => self.unauthorized(&format!(
                "{} was not accepted for {}: check the user name and password and that they are not expired",
                creds.describe(),
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
        if self.creds != Credentials::Anonymous {
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
    /// same scope share one token.
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
        let (token, lifetime) = self
            .fetch_token(http, retry, realm, service, &scopes, scope)
            .await?;
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

    /// `GET realm?service=…&scope=…` with Basic credentials when configured.
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        retry: &RetryPolicy,
        realm: &Url,
        service: Option<&str>,
        scopes: &[String],
        scope: &Scope,
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
        if let Some(basic) = self.creds.basic_header() {
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
            let hint = match &self.creds {
                Credentials::Anonymous => format!(
                    "its token server refused anonymous access for {}: configure credentials",
                    scope.action()
                ),
                creds => format!(
                    "its token server ({}) did not accept {} for {}: check the user name and password",
                    show_url(realm),
                    creds.describe(),
                    scope.action()
                ),
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
    }
}
