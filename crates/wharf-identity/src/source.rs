//! Where ID tokens come from, and which one this process has.
//!
//! [`detect`] looks, in this order, for:
//!
//! 1. **GitHub Actions**: `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`
//!    (set when the job has `permissions: id-token: write`) — a token per audience, asked
//!    for again a minute before it expires;
//! 2. **GitLab CI** (`GITLAB_CI`): the job's `id_tokens` variables, each for the audience
//!    its `aud` names;
//! 3. `WHARF_ID_TOKEN_FILE`, then `WHARF_ID_TOKEN`: a token file or variable of your own;
//! 4. `AWS_WEB_IDENTITY_TOKEN_FILE` (EKS IRSA), then `AZURE_FEDERATED_TOKEN_FILE` (AKS
//!    workload identity): Kubernetes projected service-account tokens, read again at every
//!    use because the kubelet rotates them;
//! 5. `SIGSTORE_ID_TOKEN`: cosign's variable.
//!
//! None of them: no token, and runs are recorded as the local user. `[identity] source` in
//! `wharf.toml` pins one ([`pinned`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use wharf_core::{Error, ErrorKind, IdToken, IdTokenSource, Result, Secret};

use crate::cache::Cache;
use crate::{Clock, jwt, system_clock};

/// The GitHub Actions variable with the token endpoint's URL.
pub const GITHUB_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// The GitHub Actions variable with the bearer token for that endpoint.
pub const GITHUB_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// A token file of one's own.
pub const WHARF_TOKEN_FILE_VAR: &str = "WHARF_ID_TOKEN_FILE";
/// A token in a variable of one's own.
pub const WHARF_TOKEN_VAR: &str = "WHARF_ID_TOKEN";
/// The projected token EKS (IRSA) mounts.
pub const AWS_TOKEN_FILE_VAR: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
/// The projected token AKS workload identity mounts.
pub const AZURE_TOKEN_FILE_VAR: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// cosign's variable for keyless signing.
pub const SIGSTORE_TOKEN_VAR: &str = "SIGSTORE_ID_TOKEN";

/// CI tokens are asked for again when they have less than this left (GitHub's live
/// minutes, not hours).
const TOKEN_MARGIN: time::Duration = time::Duration::seconds(60);

/// Environment variables, read once: the process's, or a map a test gives.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values include tokens.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Env {
    /// This process's environment (variables that are not UTF-8 are skipped).
    pub fn process() -> Self {
        Self(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    /// The variable `name`, when set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// A token source found by [`detect`] or named by [`pinned`], and what it is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Detected {
    /// The source.
    pub source: Arc<dyn IdTokenSource>,
    /// What it is, for people: `GitHub Actions`, `token file /var/run/… (AWS_WEB_IDENTITY_TOKEN_FILE)`.
    pub description: String,
}

impl Detected {
    fn new(source: impl IdTokenSource, description: impl Into<String>) -> Self {
        Self {
            source: Arc::new(source),
            description: description.into(),
        }
    }
}

/// The token source this environment offers, in the order the [module](self) documents;
/// `None` when it has none. An error only for a source that is there but broken (GitLab CI
/// with variables that are not tokens is not one: GitLab without `id_tokens` is `None`).
pub fn detect(env: &Env) -> Result<Option<Detected>> {
    if env.get(GITHUB_URL_VAR).is_some() || env.get(GITHUB_TOKEN_VAR).is_some() {
        let gh = GitHubActions::from_env(env)?;
        return Ok(Some(Detected::new(gh, "GitHub Actions")));
    }
    if env.get("GITLAB_CI").is_some()
        && let Ok(gl) = GitLab::from_env(env)
    {
        let names = gl.names().join(", ");
        return Ok(Some(Detected::new(
            gl,
            format!("GitLab CI id_tokens ({names})"),
        )));
    }
    if let Some(path) = env.get(WHARF_TOKEN_FILE_VAR) {
        return Ok(Some(file(path, WHARF_TOKEN_FILE_VAR)));
    }
    if let Some(token) = env.get(WHARF_TOKEN_VAR) {
        return Ok(Some(var(WHARF_TOKEN_VAR, token)));
    }
    for name in [AWS_TOKEN_FILE_VAR, AZURE_TOKEN_FILE_VAR] {
        if let Some(path) = env.get(name) {
            return Ok(Some(file(path, name)));
        }
    }
    Ok(env
        .get(SIGSTORE_TOKEN_VAR)
        .map(|t| var(SIGSTORE_TOKEN_VAR, t)))
}

fn file(path: &str, var: &str) -> Detected {
    Detected::new(
        TokenFile::new(path).named(format!("the token in {var} ({path})")),
        format!("token file {path} ({var})"),
    )
}

fn var(name: &str, token: &str) -> Detected {
    Detected::new(
        TokenVar::new(name, Secret::new(token)),
        format!("variable {name}"),
    )
}

/// What is wrong with this environment's identity that a person should hear about, though
/// nothing fails yet: a GitHub Actions job without `permissions: id-token: write`, GitLab CI
/// without `id_tokens`.
pub fn hints(env: &Env) -> Vec<String> {
    let mut out = Vec::new();
    if env.get("GITHUB_ACTIONS") == Some("true") && env.get(GITHUB_URL_VAR).is_none() {
        out.push(format!(
            "GitHub Actions without {GITHUB_URL_VAR}: give the job (or workflow) `permissions: id-token: write` to get OIDC tokens"
        ));
    }
    if env.get("GITLAB_CI").is_some() && GitLab::from_env(env).is_err() {
        out.push(
            "GitLab CI without an ID token: add `id_tokens: { WHARF_ID_TOKEN: { aud: <audience> } }` to the job".to_owned(),
        );
    }
    out
}

/// The source `[identity] source` names: `github`, `gitlab`, `file` (with `path`), `env`
/// (with `variable`).
pub fn pinned(
    kind: &str,
    path: Option<&Path>,
    variable: Option<&str>,
    env: &Env,
) -> Result<Detected> {
    match kind {
        "github" => Ok(Detected::new(
            GitHubActions::from_env(env)?,
            "GitHub Actions",
        )),
        "gitlab" => {
            let gl = match variable {
                Some(v) => GitLab::from_env(env)?.only(&[v])?,
                None => GitLab::from_env(env)?,
            };
            let names = gl.names().join(", ");
            Ok(Detected::new(gl, format!("GitLab CI id_tokens ({names})")))
        }
        "file" => {
            let path = path.ok_or_else(|| {
                Error::invalid("[identity] source = \"file\" needs token_file, the token's path")
            })?;
            let shown = path.display().to_string();
            Ok(Detected::new(
                TokenFile::new(path).named(format!("the token in [identity] token_file ({shown})")),
                format!("token file {shown}"),
            ))
        }
        "env" => {
            let name = variable.ok_or_else(|| {
                Error::invalid(
                    "[identity] source = \"env\" needs token_env, the variable holding the token",
                )
            })?;
            let token = env.get(name).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    format!("[identity] token_env names {name}, which is not set: export the ID token there"),
                )
            })?;
            Ok(var(name, token))
        }
        other => Err(Error::invalid(format!(
            "[identity] source {other:?} is not one wharf knows: use \"auto\" (the default), \"github\", \"gitlab\", \"file\", \"env\" or \"none\""
        ))),
    }
}

/// GitHub Actions' token endpoint: a token per audience, cached until a minute before it
/// expires.
pub struct GitHubActions {
    url: String,
    bearer: Secret,
    http: reqwest::Client,
    cache: Cache<IdToken>,
}

impl fmt::Debug for GitHubActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubActions")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl GitHubActions {
    /// The endpoint at `url` (`ACTIONS_ID_TOKEN_REQUEST_URL`), asked with `bearer`
    /// (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    pub fn new(url: impl Into<String>, bearer: Secret) -> Self {
        Self {
            url: url.into(),
            bearer,
            http: crate::http::client(),
            cache: Cache::new(system_clock(), TOKEN_MARGIN),
        }
    }

    /// From the job's variables; an error naming the one missing.
    pub fn from_env(env: &Env) -> Result<Self> {
        let get = |name: &str| {
            env.get(name).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    format!("{name} is not set: GitHub Actions sets it only for jobs with `permissions: id-token: write`"),
                )
            })
        };
        Ok(Self::new(
            get(GITHUB_URL_VAR)?,
            Secret::new(get(GITHUB_TOKEN_VAR)?),
        ))
    }

    /// Decide expiry by `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.cache = Cache::new(clock, TOKEN_MARGIN);
        self
    }

    async fn fetch(&self, audience: &str) -> Result<(IdToken, time::OffsetDateTime)> {
        let service = "GitHub Actions' token endpoint";
        // As @actions/core's getIDToken: the audience appended as a query parameter, the
        // request token as a bearer, the JWT in the answer's `value`.
        let mut request = self
            .http
            .get(&self.url)
            .bearer_auth(self.bearer.expose())
            .header("Accept", "application/json");
        if !audience.is_empty() {
            request = request.query(&[("audience", audience)]);
        }
        let (status, body) =
            crate::http::send(service, GITHUB_URL_VAR, request, &[&self.bearer]).await?;
        if status != 200 {
            let detail = body.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(Error::new(
                crate::http::kind_of(status),
                format!(
                    "{service} ({GITHUB_URL_VAR}) answered HTTP {status} {detail}: {GITHUB_TOKEN_VAR} is valid only in the job that got it, and the job needs `permissions: id-token: write`"
                ),
            ));
        }
        let value = body.get("value").and_then(Value::as_str).ok_or_else(|| {
            Error::invalid(format!("{service} answered without the token (`value`)"))
        })?;
        let token = jwt::id_token(
            Secret::new(value),
            "GitHub Actions' ID token",
            audience,
            self.cache.clock().now(),
        )?;
        let exp = token.expires_at;
        Ok((token, exp))
    }
}

#[async_trait]
impl IdTokenSource for GitHubActions {
    async fn id_token(&self, audience: &str) -> Result<IdToken> {
        self.cache.get(audience, || self.fetch(audience)).await
    }
}

/// GitLab CI's `id_tokens`: variables the job defines, each a token for one audience.
pub struct GitLab {
    tokens: BTreeMap<String, Secret>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for GitLab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitLab")
            .field("variables", &self.names())
            .finish()
    }
}

impl GitLab {
    /// Every variable of `env` that holds an ID token (a JWT with an issuer); an error
    /// when none does.
    pub fn from_env(env: &Env) -> Result<Self> {
        let tokens: BTreeMap<String, Secret> = env
            .0
            .iter()
            .filter(|(_, v)| v.starts_with("eyJ") && v.matches('.').count() == 2)
            .filter(|(k, v)| {
                jwt::decode(v, k).is_ok_and(|c| c.issuer().is_some() && !c.audiences().is_empty())
            })
            .map(|(k, v)| (k.clone(), Secret::new(v.as_str())))
            .collect();
        if tokens.is_empty() {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "GitLab CI: no variable holds an ID token: add `id_tokens: { WHARF_ID_TOKEN: { aud: <audience> } }` to the job",
            ));
        }
        Ok(Self {
            tokens,
            clock: system_clock(),
        })
    }

    /// Only the variables `names`; an error naming one that holds no token.
    pub fn only(mut self, names: &[&str]) -> Result<Self> {
        for n in names {
            if !self.tokens.contains_key(*n) {
                return Err(Error::new(
                    ErrorKind::Unauthenticated,
                    format!(
                        "GitLab CI: {n} holds no ID token: define it under the job's `id_tokens`"
                    ),
                ));
            }
        }
        self.tokens.retain(|k, _| names.contains(&k.as_str()));
        Ok(self)
    }

    /// Decide expiry by `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The variables holding tokens.
    pub fn names(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }
}

#[async_trait]
impl IdTokenSource for GitLab {
    async fn id_token(&self, audience: &str) -> Result<IdToken> {
        let mut seen = Vec::new();
        for (name, token) in &self.tokens {
            let auds = jwt::decode(token.expose(), name)?.audiences();
            if audience.is_empty() || auds.iter().any(|a| a == audience) {
                return jwt::id_token(
                    token.clone(),
                    &format!("GitLab's ID token in {name}"),
                    audience,
                    self.clock.now(),
                );
            }
            seen.push(format!("{name} is for {auds:?}"));
        }
        Err(Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "GitLab CI: no id_tokens variable is for audience {audience:?} ({}): add one with `aud: {audience}` to the job's id_tokens",
                seen.join(", ")
            ),
        ))
    }
}

/// A token in a file, read again at every use (the kubelet rewrites projected tokens
/// before they expire).
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    name: String,
    clock: Arc<dyn Clock>,
}

impl TokenFile {
    /// The token in `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Self {
            name: format!("the token in {}", path.display()),
            path,
            clock: system_clock(),
        }
    }

    /// Call it `name` in errors ("the token in AWS_WEB_IDENTITY_TOKEN_FILE (…)").
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Decide expiry by `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl IdTokenSource for TokenFile {
    async fn id_token(&self, audience: &str) -> Result<IdToken> {
        let text = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
            Error::new(
                ErrorKind::Unauthenticated,
                format!(
                    "{} cannot be read ({e}): is the projected service-account token mounted there?",
                    self.name
                ),
            )
        })?;
        jwt::id_token(
            Secret::new(text.trim()),
            &self.name,
            audience,
            self.clock.now(),
        )
    }
}

/// A token held in a variable (read when the source was made).
pub struct TokenVar {
    name: String,
    token: Secret,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVar")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TokenVar {
    /// `token`, which came from the variable `name`.
    pub fn new(name: impl Into<String>, token: Secret) -> Self {
        Self {
            name: name.into(),
            token,
            clock: system_clock(),
        }
    }

    /// Decide expiry by `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl IdTokenSource for TokenVar {
    async fn id_token(&self, audience: &str) -> Result<IdToken> {
        jwt::id_token(
            self.token.clone(),
            &format!("the token in {}", self.name),
            audience,
            self.clock.now(),
        )
    }
}
