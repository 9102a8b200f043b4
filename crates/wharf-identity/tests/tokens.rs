//! ID tokens: claims decoded from a JWT signed by a test key, every bad token refused in
//! one line, the GitHub Actions endpoint asked as `@actions/core` asks it, GitLab
//! `id_tokens` chosen by audience, projected token files re-read, and detection order.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::{
    CANARY, ManualClock, closed_port, github_claims, live_claims, serve, signed_jwt, t0,
};
use wharf_core::record::ActorKind;
use wharf_core::{ErrorKind, IdTokenSource, Secret};
use wharf_identity::jwt;
use wharf_identity::source::{self, Env, GitHubActions, GitLab, TokenFile, TokenVar};

#[test]
fn claims_of_a_signed_github_token_name_the_actor() {
    let token = signed_jwt(&github_claims("sts.amazonaws.com"));
    let t = jwt::id_token(
        Secret::new(token.clone()),
        "test",
        "sts.amazonaws.com",
        t0(),
    )
    .unwrap();
    assert_eq!(t.issuer, "https://token.actions.githubusercontent.com");
    assert_eq!(t.subject, "repo:Acme/models:environment:prod");
    assert_eq!(t.expires_at, t0() + time::Duration::hours(1));
    let actor = t.actor();
    assert_eq!(actor.kind, ActorKind::Oidc);
    assert_eq!(actor.id, "repo:Acme/models:environment:prod");
    let ctx: Vec<(&str, &str)> = actor
        .context
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        ctx,
        [
            ("environment", "prod"),
            (
                "job_workflow_ref",
                "Acme/models/.github/workflows/release.yml@refs/heads/main"
            ),
            ("ref", "refs/heads/main"),
            ("repository", "Acme/models"),
            ("run_attempt", "2"),
            ("run_id", "8812345678"),
            ("triggered_by", "octocat"),
            ("workflow", "release"),
        ]
    );
    let shown = format!("{t:?} {actor:?} {actor}");
    assert!(
        !shown.contains(CANARY) && !shown.contains(&token),
        "{shown}"
    );
    // The record carries the context and no part of the token.
    let record = serde_json::to_string(&actor).unwrap();
    assert!(record.contains("\"run_id\":\"8812345678\"") && !record.contains(CANARY));
}

#[test]
fn gitlab_claims_map_to_the_same_context() {
    // Claims as GitLab's "OpenID Connect (OIDC) Authentication Using ID Tokens" example.
    let claims = json!({"project_path": "my-group/my-project", "user_login": "sample-user",
        "pipeline_id": "574", "ref": "feature-branch-1", "environment": "test-environment2",
        "ci_config_ref_uri": "gitlab.example.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main",
        "iss": "https://gitlab.example.com", "iat": 1_796_551_200, "exp": 1_796_554_800,
        "sub": "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1",
        "aud": "https://vault.example.com"});
    let t = jwt::id_token(Secret::new(signed_jwt(&claims)), "t", "", t0()).unwrap();
    assert_eq!(t.context["repository"], "my-group/my-project");
    assert_eq!(t.context["run_id"], "574");
    assert_eq!(t.context["triggered_by"], "sample-user");
    assert_eq!(t.audience, "https://vault.example.com");
}

/// Every bad token is one line naming where it came from and what to do.
#[test]
fn bad_tokens_are_refused_in_one_line() {
    let from = "the token in AWS_WEB_IDENTITY_TOKEN_FILE (/var/run/t)";
    let good = github_claims("sts.amazonaws.com");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let cases: Vec<(String, &str, ErrorKind)> = vec![
        ("not-a-jwt".into(), "is not a JWT", ErrorKind::Invalid),
        ("a.b".into(), "three base64url parts", ErrorKind::Invalid),
        (
            format!("eyJ.{CANARY}!!.x"),
            "not base64url",
            ErrorKind::Invalid,
        ),
        (
            "eyJhbGciOiJub25lIn0.WzFd.c2ln".into(),
            "not a JSON object",
            ErrorKind::Invalid,
        ),
        (signed_jwt(&no_exp), "has no exp claim", ErrorKind::Invalid),
        (
            signed_jwt(&good),
            "is for audience [\"sts.amazonaws.com\"], not \"sigstore\"",
            ErrorKind::Unauthenticated,
        ),
    ];
    for (token, want, kind) in cases {
        let audience = if want.contains("sigstore") {
            "sigstore"
        } else {
            "sts.amazonaws.com"
        };
        let e = jwt::id_token(Secret::new(token), from, audience, t0()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want) && msg.starts_with(from), "{msg}");
        assert_eq!(e.kind(), kind, "{msg}");
        assert!(!msg.contains('\n') && !msg.contains(CANARY), "{msg}");
    }
    let e = jwt::id_token(
        Secret::new(signed_jwt(&good)),
        from,
        "sts.amazonaws.com",
        t0() + time::Duration::minutes(90),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(
        e.to_string()
            .contains("expired at 2026-12-06T11:00:00Z (1800 s ago)"),
        "{e}"
    );
}

/// The endpoint is asked as `@actions/core`'s `getIDToken` asks (actions/toolkit
/// packages/core/src/oidc-utils.ts: GET `<ACTIONS_ID_TOKEN_REQUEST_URL>&audience=<aud>`,
/// `Authorization: Bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>`, the token in `value`); tokens
/// are kept per audience until a minute before they expire.
#[tokio::test]
async fn github_actions_tokens_are_requested_per_audience_and_renewed() {
    let (url, seen) = serve(|req| {
        let aud = req
            .target
            .split("audience=")
            .nth(1)
            .unwrap_or("")
            .replace("%3A", ":")
            .replace("%2F", "/");
        let mut claims = github_claims(&aud);
        claims["exp"] = json!(t0().unix_timestamp() + 300); // GitHub's tokens live 5 minutes
        (
            200,
            "application/json",
            json!({"count": 1, "value": signed_jwt(&claims)}).to_string(),
        )
    });
    let request_url =
        format!("{url}/_apis/distributedtask/hubs/Actions/plans/p/jobs/j/idtoken?api-version=2.0");
    let clock = ManualClock::at(t0());
    let gh = GitHubActions::new(&request_url, Secret::new(format!("request-{CANARY}")))
        .with_clock(clock.clone());
    let t = gh.id_token("sts.amazonaws.com").await.unwrap();
    assert_eq!(t.audience, "sts.amazonaws.com");
    gh.id_token("sts.amazonaws.com").await.unwrap();
    gh.id_token("sigstore").await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "one request per audience: {seen:?}");
        assert_eq!(seen[0].method, "GET");
        assert_eq!(
            seen[0].target,
            "/_apis/distributedtask/hubs/Actions/plans/p/jobs/j/idtoken?api-version=2.0&audience=sts.amazonaws.com"
        );
        assert_eq!(
            seen[0].header("authorization"),
            Some(format!("Bearer request-{CANARY}").as_str())
        );
    }
    clock.advance(time::Duration::seconds(250)); // 50 s left: asked again
    gh.id_token("sts.amazonaws.com").await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert!(!format!("{gh:?}").contains(CANARY));
}

#[tokio::test]
async fn github_actions_failures_name_the_variable_and_the_permission() {
    let (url, _) = serve(|_| {
        (
            403,
            "application/json",
            json!({"message": "Forbidden"}).to_string(),
        )
    });
    let e = GitHubActions::new(
        format!("{url}/idtoken?api-version=2.0"),
        Secret::new(CANARY),
    )
    .id_token("sigstore")
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    let msg = e.to_string();
    assert!(
        msg.contains("HTTP 403 Forbidden") && msg.contains("id-token: write"),
        "{msg}"
    );

    let (url, _) = serve(|_| (200, "application/json", "{}".into()));
    let e = GitHubActions::new(format!("{url}/x?a=1"), Secret::new(CANARY))
        .id_token("a")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("without the token (`value`)"), "{e}");

    let e = GitHubActions::new(format!("{}/x?a=1", closed_port()), Secret::new(CANARY))
        .id_token("a")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    let msg = e.to_string();
    assert!(
        msg.contains("ACTIONS_ID_TOKEN_REQUEST_URL is unreachable") && !msg.contains(CANARY),
        "{msg}"
    );

    let env: Env = [("ACTIONS_ID_TOKEN_REQUEST_URL", "http://x")]
        .into_iter()
        .collect();
    let e = GitHubActions::from_env(&env).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set"),
        "{e}"
    );
    let e = source::detect(&env).unwrap_err();
    assert!(
        e.to_string().contains("permissions: id-token: write"),
        "{e}"
    );
}

#[tokio::test]
async fn gitlab_id_tokens_are_chosen_by_audience() {
    let gl = |aud: &str| {
        let mut c = live_claims(aud);
        c["iss"] = json!("https://gitlab.example.com");
        signed_jwt(&c)
    };
    let env: Env = [
        ("GITLAB_CI", "true".to_owned()),
        ("AWS_ID_TOKEN", gl("sts.amazonaws.com")),
        ("SIGSTORE_ID_TOKEN", gl("sigstore")),
        ("CI_JOB_TOKEN", "glcbt-not-a-jwt".to_owned()),
    ]
    .into_iter()
    .collect();
    let detected = source::detect(&env).unwrap().unwrap();
    assert_eq!(
        detected.description,
        "GitLab CI id_tokens (AWS_ID_TOKEN, SIGSTORE_ID_TOKEN)"
    );
    assert_eq!(
        detected.source.id_token("sigstore").await.unwrap().audience,
        "sigstore"
    );
    assert_eq!(
        detected
            .source
            .id_token("sts.amazonaws.com")
            .await
            .unwrap()
            .audience,
        "sts.amazonaws.com"
    );
    let e = detected
        .source
        .id_token("api://AzureADTokenExchange")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no id_tokens variable is for audience \"api://AzureADTokenExchange\"")
            && e.contains("AWS_ID_TOKEN is for [\"sts.amazonaws.com\"]")
            && e.contains("aud: api://AzureADTokenExchange"),
        "{e}"
    );
    let only = GitLab::from_env(&env)
        .unwrap()
        .only(&["SIGSTORE_ID_TOKEN"])
        .unwrap();
    assert!(only.id_token("sts.amazonaws.com").await.is_err());
    assert!(
        GitLab::from_env(&env)
            .unwrap()
            .only(&["CI_JOB_TOKEN"])
            .is_err()
    );

    let bare: Env = [("GITLAB_CI", "true")].into_iter().collect();
    assert!(source::detect(&bare).unwrap().is_none());
    assert!(source::hints(&bare)[0].contains("id_tokens"));
}

/// Projected tokens rotate: each use reads the file again.
#[tokio::test]
async fn token_files_are_read_at_every_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let claims = |sub: &str| {
        let mut c = live_claims("sts.amazonaws.com");
        c["iss"] =
            json!("https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE");
        c["sub"] = json!(sub);
        signed_jwt(&c)
    };
    std::fs::write(&path, claims("system:serviceaccount:ml:one") + "\n").unwrap();
    let env: Env = [("AWS_WEB_IDENTITY_TOKEN_FILE", path.to_str().unwrap())]
        .into_iter()
        .collect();
    let detected = source::detect(&env).unwrap().unwrap();
    assert!(
        detected
            .description
            .ends_with("(AWS_WEB_IDENTITY_TOKEN_FILE)")
    );
    let t = detected.source.id_token("sts.amazonaws.com").await.unwrap();
    assert_eq!(t.subject, "system:serviceaccount:ml:one");
    std::fs::write(&path, claims("system:serviceaccount:ml:two")).unwrap();
    let t = detected.source.id_token("sts.amazonaws.com").await.unwrap();
    assert_eq!(t.subject, "system:serviceaccount:ml:two");

    std::fs::remove_file(&path).unwrap();
    let e = detected
        .source
        .id_token("sts.amazonaws.com")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("the token in AWS_WEB_IDENTITY_TOKEN_FILE (")
            && e.contains("is the projected service-account token mounted"),
        "{e}"
    );

    let clock = ManualClock::at(time::OffsetDateTime::now_utc() + time::Duration::hours(2));
    std::fs::write(&path, claims("x")).unwrap();
    let e = TokenFile::new(&path)
        .with_clock(clock)
        .id_token("")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("expired at"), "{e}");
}

#[test]
fn detection_follows_the_documented_order() {
    let tok = signed_jwt(&github_claims("sigstore"));
    let describe = |vars: &[(&str, &str)]| {
        let env: Env = vars.iter().map(|(k, v)| (*k, *v)).collect();
        source::detect(&env).unwrap().map(|d| d.description)
    };
    let all = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", "http://gh"),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "r"),
        ("WHARF_ID_TOKEN_FILE", "/w"),
        ("WHARF_ID_TOKEN", tok.as_str()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/a"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/z"),
        ("SIGSTORE_ID_TOKEN", tok.as_str()),
    ];
    let expected = [
        "GitHub Actions",
        "token file /w (WHARF_ID_TOKEN_FILE)",
        "variable WHARF_ID_TOKEN",
        "token file /a (AWS_WEB_IDENTITY_TOKEN_FILE)",
        "token file /z (AZURE_FEDERATED_TOKEN_FILE)",
        "variable SIGSTORE_ID_TOKEN",
    ];
    // Drop the variables one source at a time: the next in line is found.
    let mut skip = 0;
    for want in expected {
        assert_eq!(describe(&all[skip..]).as_deref(), Some(want));
        skip += if want == "GitHub Actions" { 2 } else { 1 };
    }
    assert_eq!(describe(&[("HOME", "/root")]), None);
    let hints = source::hints(&[("GITHUB_ACTIONS", "true")].into_iter().collect());
    assert!(
        hints[0].contains("permissions: id-token: write"),
        "{hints:?}"
    );

    let env: Env = [("MY_TOKEN", tok.as_str())].into_iter().collect();
    assert_eq!(
        source::pinned("env", None, Some("MY_TOKEN"), &env)
            .unwrap()
            .description,
        "variable MY_TOKEN"
    );
    for (kind, path, var, want) in [
        (
            "env",
            None,
            Some("NOPE"),
            "token_env names NOPE, which is not set",
        ),
        ("file", None, None, "needs token_file"),
        ("vault", None, None, "\"vault\" is not one wharf knows"),
        (
            "github",
            None,
            None,
            "ACTIONS_ID_TOKEN_REQUEST_URL is not set",
        ),
    ] {
        let e = source::pinned(kind, path, var, &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{kind}: {e}");
    }
    let shown = format!(
        "{env:?} {:?}",
        TokenVar::new("MY_TOKEN", Secret::new(tok.clone()))
    );
    assert!(!shown.contains(CANARY), "{shown}");
}
