//! The claims of an OIDC ID token, decoded but not verified. wharf never decides trust from
//! them — the cloud that accepts the token checks its signature — it reads them to name the
//! run's actor, to choose a session name, and to explain a denial.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use wharf_core::{Error, ErrorKind, IdToken, Result, Secret};

/// A token's claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims(Map<String, Value>);

/// The run facts an actor carries, and the claims they come from (GitHub Actions, GitLab
/// CI, Kubernetes service-account tokens), first present wins.
const CONTEXT: &[(&str, &[&str])] = &[
    ("repository", &["repository", "project_path"]),
    ("ref", &["ref"]),
    ("workflow", &["workflow", "ci_config_ref_uri"]),
    ("job_workflow_ref", &["job_workflow_ref"]),
    ("run_id", &["run_id", "pipeline_id"]),
    ("run_attempt", &["run_attempt"]),
    ("environment", &["environment"]),
    ("triggered_by", &["actor", "user_login"]),
    ("namespace", &["kubernetes.io/namespace"]),
    ("service_account", &["kubernetes.io/serviceaccount/name"]),
    ("pod", &["kubernetes.io/pod/name"]),
];

impl Claims {
    /// `iss`.
    pub fn issuer(&self) -> Option<&str> {
        self.0.get("iss").and_then(Value::as_str)
    }

    /// `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.0.get("sub").and_then(Value::as_str)
    }

    /// `aud`: one string or several.
    pub fn audiences(&self) -> Vec<String> {
        match self.0.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `exp`.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.time("exp")
    }

    /// `iat`.
    pub fn issued_at(&self) -> Option<OffsetDateTime> {
        self.time("iat")
    }

    fn time(&self, name: &str) -> Option<OffsetDateTime> {
        let secs = self.0.get(name)?.as_f64()?;
        OffsetDateTime::from_unix_timestamp(secs as i64).ok()
    }

    /// A claim as text: strings as they are, numbers and booleans printed; `a/b` reaches
    /// into objects (`kubernetes.io/namespace`).
    pub fn text(&self, name: &str) -> Option<String> {
        let mut value = self.0.get(name);
        if value.is_none() {
            let mut parts = name.split('/');
            let first = parts.next()?;
            value = self.0.get(first);
            for part in parts {
                value = value?.get(part);
            }
        }
        match value? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// What the token says about the run: `repository`, `ref`, `workflow`, `run_id`,
    /// `environment`, `triggered_by`… from GitHub's, GitLab's or Kubernetes' claims.
    pub fn context(&self) -> BTreeMap<String, String> {
        CONTEXT
            .iter()
            .filter_map(|(key, names)| {
                names
                    .iter()
                    .find_map(|n| self.text(n))
                    .map(|v| ((*key).to_owned(), v))
            })
            .collect()
    }

    /// Every claim, for people to read.
    pub fn all(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// The claims of `token`, which came from `from` (named in errors: "the token in
/// AWS_WEB_IDENTITY_TOKEN_FILE (/var/run/…)").
pub fn decode(token: &str, from: &str) -> Result<Claims> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(Error::invalid(format!(
            "{from} is not a JWT (three base64url parts separated by dots, here {} non-empty): it must hold the ID token itself, not a path, a JSON answer or a quoted string",
            parts.iter().filter(|p| !p.is_empty()).count()
        )));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|_| {
            Error::invalid(format!("{from} is not a JWT: its claims are not base64url"))
        })?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(Claims(map)),
        _ => Err(Error::invalid(format!(
            "{from} is not a JWT: its claims are not a JSON object"
        ))),
    }
}

/// `token` (from `from`) as an [`IdToken`] for `audience`, refused in one line when it is
/// not a JWT, has no `iss`/`sub`/`exp`, has expired by `now`, or — with a non-empty
/// `audience` — was issued for another audience.
pub fn id_token(token: Secret, from: &str, audience: &str, now: OffsetDateTime) -> Result<IdToken> {
    let claims = decode(token.expose(), from)?;
    let missing = |claim: &str| {
        Error::invalid(format!(
            "{from} has no {claim} claim: it is not an OIDC ID token"
        ))
    };
    let issuer = claims.issuer().ok_or_else(|| missing("iss"))?.to_owned();
    let subject = claims.subject().ok_or_else(|| missing("sub"))?.to_owned();
    let expires_at = claims.expires_at().ok_or_else(|| missing("exp"))?;
    if expires_at <= now {
        return Err(Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "{from} expired at {} ({} s ago): get a fresh one — projected tokens are renewed by the kubelet, CI tokens are requested per job",
                crate::diagnose::rfc3339(expires_at),
                (now - expires_at).whole_seconds()
            ),
        ));
    }
    let audiences = claims.audiences();
    if !audience.is_empty() && !audiences.iter().any(|a| a == audience) {
        return Err(Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "{from} is for audience {audiences:?}, not {audience:?}: issue it for {audience:?} (a projected token's `audience`, GitLab's `id_tokens: aud`), or set the exchange's `audience` to what the cloud's trust expects"
            ),
        ));
    }
    let mut out = IdToken::new(
        token,
        issuer,
        subject,
        if audience.is_empty() {
            audiences.first().cloned().unwrap_or_default()
        } else {
            audience.to_owned()
        },
        expires_at,
    );
    out.context = claims.context();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.c2ln",
            b(br#"{"alg":"none"}"#),
            b(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn kubernetes_claims_reach_into_objects() {
        let c = decode(
            &jwt(&serde_json::json!({"sub": "system:serviceaccount:ml:scorer",
                "kubernetes.io": {"namespace": "ml", "serviceaccount": {"name": "scorer"}, "pod": {"name": "p-1"}}})),
            "t",
        )
        .unwrap();
        let ctx = c.context();
        assert_eq!(ctx["namespace"], "ml");
        assert_eq!(ctx["service_account"], "scorer");
        assert_eq!(ctx["pod"], "p-1");
    }

    #[test]
    fn audience_may_be_a_list_and_empty_asks_for_none() {
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let t = jwt(&serde_json::json!({"iss": "i", "sub": "s", "aud": ["a", "b"], "exp": 2000}));
        let tok = id_token(Secret::new(t.clone()), "t", "b", now).unwrap();
        assert_eq!(tok.audience, "b");
        let tok = id_token(Secret::new(t), "t", "", now).unwrap();
        assert_eq!(tok.audience, "a");
    }
}
