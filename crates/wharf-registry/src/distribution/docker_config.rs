//! Credentials from a docker `config.json`: `auths` entries (`auth` = base64 `user:pass`, or
//! `username`/`password`, or `registrytoken`), keyed by host or by URL. Credential helpers
//! (`credHelpers`, `credsStore`) are recognised and reported as not supported yet, but only
//! when the registry they cover asks for credentials.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use wharf_core::Secret;

use super::auth::Credentials;
use crate::RegistryError;

/// The parts of a docker `config.json` wharf reads.
#[derive(Debug, Default, serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

/// One `auths` entry.
#[derive(Debug, Default, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<Secret>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
    #[serde(default)]
    identitytoken: Option<Secret>,
    #[serde(default)]
    registrytoken: Option<Secret>,
}

/// What a docker config says about one registry.
#[derive(Debug)]
pub(crate) enum Found {
    /// Nothing: anonymous.
    Nothing,
    /// Usable credentials.
    Credentials(Credentials),
    /// A source wharf cannot use yet (a credential helper, an identity token); the error is
    /// reported when the registry asks for credentials.
    Unusable(RegistryError),
}

/// The default config path: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub(crate) fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

/// Reads `path` and looks up `host` (`host[:port]`). A missing file is `Nothing` when
/// `must_exist` is false.
pub(crate) fn lookup(path: &Path, host: &str, must_exist: bool) -> Result<Found, RegistryError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(Found::Nothing);
        }
        Err(e) => return Err(RegistryError::io("reading docker config", path, e)),
    };
    let config: ConfigFile = serde_json::from_slice(&text).map_err(|e| {
        RegistryError::invalid(
            format!("docker config {}", path.display()),
            format!("not a docker config.json: {e}; fix or remove the file"),
        )
    })?;
    find(&config, host, path)
}

/// Normalises an `auths`/`credHelpers` key (`https://index.docker.io/v1/`, `ghcr.io`,
/// `http://127.0.0.1:5000`) to `host[:port]`, lowercased, with Docker Hub's aliases merged.
fn normalize(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or("").to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "index.docker.io".to_owned()
        }
        _ => host,
    }
}

fn find(config: &ConfigFile, host: &str, path: &Path) -> Result<Found, RegistryError> {
    let want = normalize(host);
    if let Some((_, helper)) = config
        .cred_helpers
        .iter()
        .find(|(k, _)| normalize(k) == want)
    {
        return Ok(Found::Unusable(helper_error(helper, host, path)));
    }
    let entry = config.auths.iter().find(|(k, _)| normalize(k) == want);
    if let Some((key, entry)) = entry {
        if let Some(auth) = &entry.auth
            && !auth.is_empty()
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.expose().trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some((user, pass)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(RegistryError::invalid(
                    format!("docker config {}", path.display()),
                    format!(
                        "the `auth` of entry {key:?} is not base64 of `user:password`; run `docker login {host}` again"
                    ),
                ));
            };
            return Ok(Found::Credentials(Credentials::Basic {
                username: user.to_owned(),
                password: Secret::new(pass),
            }));
        }
        if let (Some(user), Some(pass)) = (&entry.username, &entry.password) {
            return Ok(Found::Credentials(Credentials::Basic {
                username: user.clone(),
                password: pass.clone(),
            }));
        }
        if let Some(token) = &entry.registrytoken
            && !token.is_empty()
        {
            return Ok(Found::Credentials(Credentials::Bearer(token.clone())));
        }
        if entry.identitytoken.as_ref().is_some_and(|t| !t.is_empty()) {
            return Ok(Found::Unusable(RegistryError::Unsupported {
                what: format!(
                    "the identity token for {host} in {} (an OAuth2 refresh token)",
                    path.display()
                ),
                hint: "pass Credentials::Basic with a user name and password or access token to the client builder".to_owned(),
            }));
        }
    }
    if let Some(store) = &config.creds_store
        && !store.is_empty()
    {
        return Ok(Found::Unusable(helper_error(store, host, path)));
    }
    Ok(Found::Nothing)
}

fn helper_error(helper: &str, host: &str, path: &Path) -> RegistryError {
    RegistryError::Unsupported {
        what: format!(
            "the credential helper docker-credential-{helper} (configured for {host} in {})",
            path.display()
        ),
        hint: format!(
            "pass Credentials::Basic to the client builder, or add an `auths` entry with `auth` for {host} to a config.json given with .docker_config(path)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str, host: &str) -> Found {
        let config: ConfigFile = serde_json::from_str(json).unwrap();
        find(&config, host, Path::new("/tmp/config.json")).unwrap()
    }

    fn basic(found: Found) -> (String, String) {
        match found {
            Found::Credentials(Credentials::Basic { username, password }) => {
                (username, password.expose().to_owned())
            }
            other => panic!("expected basic credentials, got {other:?}"),
        }
    }

    #[test]
    fn auth_entries_by_host_or_url() {
        // "alice:s3cr:et" in base64: the password keeps its colon.
        let json = r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"YWxpY2U6czNjcjpldA=="},
            "http://127.0.0.1:5000":{"username":"bob","password":"pw"},
            "ghcr.io":{"auth":"Y2Fyb2w6dG9rZW4="},
            "registry.example.com":{"registrytoken":"rt"}
        }}"#;
        assert_eq!(
            basic(parse(json, "registry-1.docker.io")),
            ("alice".into(), "s3cr:et".into())
        );
        assert_eq!(
            basic(parse(json, "127.0.0.1:5000")),
            ("bob".into(), "pw".into())
        );
        assert_eq!(
            basic(parse(json, "GHCR.io")),
            ("carol".into(), "token".into())
        );
        assert!(matches!(
            parse(json, "registry.example.com"),
            Found::Credentials(Credentials::Bearer(_))
        ));
        assert!(matches!(parse(json, "quay.io"), Found::Nothing));
        assert!(matches!(parse(json, "127.0.0.1:5001"), Found::Nothing));
    }

    #[test]
    fn helpers_are_unusable_only_for_their_registry() {
        let json = r#"{"auths":{"ghcr.io":{"auth":"Y2Fyb2w6dG9rZW4="}},
            "credHelpers":{"123.dkr.ecr.us-east-1.amazonaws.com":"ecr-login"}}"#;
        assert_eq!(basic(parse(json, "ghcr.io")).0, "carol");
        match parse(json, "123.dkr.ecr.us-east-1.amazonaws.com") {
            Found::Unusable(e) => {
                let msg = e.to_string();
                assert!(msg.contains("docker-credential-ecr-login"), "{msg}");
                assert!(msg.contains("not supported yet"), "{msg}");
                assert!(msg.contains("Credentials::Basic"), "{msg}");
                assert_eq!(e.kind(), wharf_core::ErrorKind::Unsupported);
            }
            other => panic!("{other:?}"),
        }
        let json = r#"{"auths":{"ghcr.io":{"auth":"Y2Fyb2w6dG9rZW4="},"quay.io":{}},"credsStore":"desktop"}"#;
        assert_eq!(basic(parse(json, "ghcr.io")).0, "carol");
        assert!(matches!(parse(json, "quay.io"), Found::Unusable(_)));
    }

    #[test]
    fn bad_auth_is_a_clear_error_without_the_secret() {
        let config: ConfigFile =
            serde_json::from_str(r#"{"auths":{"ghcr.io":{"auth":"bm9jb2xvbg=="}}}"#).unwrap();
        let err = find(&config, "ghcr.io", Path::new("/c.json")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("docker login ghcr.io"), "{msg}");
        assert!(
            !msg.contains("nocolon") && !msg.contains("bm9jb2xvbg"),
            "{msg}"
        );
    }

    #[test]
    fn missing_and_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.json");
        assert!(matches!(
            lookup(&missing, "x", false).unwrap(),
            Found::Nothing
        ));
        assert!(lookup(&missing, "x", true).is_err());
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{ nope").unwrap();
        let err = lookup(&bad, "x", false).unwrap_err().to_string();
        assert!(err.contains("not a docker config.json"), "{err}");
    }
}
