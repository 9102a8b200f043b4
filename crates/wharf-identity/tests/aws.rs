//! AWS STS `AssumeRoleWithWebIdentity`: against moto (real STS API shapes; the returned
//! credentials then sign calls to moto's STS, ECR and S3), and against a loopback stand-in
//! answering with STS's documented XML for denials and for refresh under a controlled
//! clock.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::ProvideCredentials;
use support::{CANARY, ManualClock, closed_port, github_claims, serve, signed_jwt, t0};
use wharf_core::identity::CredentialOptions;
use wharf_core::{CloudCredentials, ErrorKind, IdTokenSource, Secret};
use wharf_identity::aws::AwsWebIdentity;
use wharf_identity::source::TokenVar;

const ROLE: &str = "arn:aws:iam::123456789012:role/wharf-ci";

fn moto() -> String {
    std::env::var("WHARF_TEST_MOTO").unwrap_or_else(|_| {
        panic!("WHARF_TEST_MOTO is not set: run the tests with `cargo xtask test`, or `eval \"$(cargo xtask backends env)\"` first")
    })
}

/// A GitHub Actions token for `aud`, judged by a clock at [`t0`].
fn github_token(aud: &str) -> Arc<dyn IdTokenSource> {
    Arc::new(
        TokenVar::new(
            "SIGSTORE_ID_TOKEN",
            Secret::new(signed_jwt(&github_claims(aud))),
        )
        .with_clock(ManualClock::at(t0())),
    )
}

#[tokio::test]
async fn moto_credentials_sign_calls_to_other_services() {
    let moto = moto();
    let session = format!("wharf-run-{}", std::process::id());
    let role = Arc::new(
        AwsWebIdentity::builder(github_token("sts.amazonaws.com"), ROLE)
            .region("us-east-1")
            .endpoint_url(&moto)
            .session_name(&session)
            .duration(Duration::from_secs(1800))
            .build()
            .unwrap(),
    );
    let creds = role
        .credentials(&CredentialOptions::default())
        .await
        .unwrap();
    assert_eq!(creds.provider, "aws");
    assert!(creds.principal.starts_with("ASIA"), "{}", creds.principal);
    assert!(creds.session_token.is_some());
    let assumed = format!("arn:aws:sts::123456789012:assumed-role/wharf-ci/{session}");
    assert_eq!(creds.identity.as_deref(), Some(assumed.as_str()));
    assert!(creds.expires_at > time::OffsetDateTime::now_utc());

    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto)
        .credentials_provider(role.provider())
        .load()
        .await;
    // moto answers GetCallerIdentity by the access key that signed it: the assumed role.
    let me = aws_sdk_sts::Client::new(&sdk)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some(assumed.as_str()));

    let repo = format!("wharf-identity-{}", std::process::id());
    let created = aws_sdk_ecr::Client::new(&sdk)
        .create_repository()
        .repository_name(&repo)
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.repository().unwrap().repository_name(),
        Some(repo.as_str())
    );

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(&repo).send().await.unwrap();
    s3.put_object()
        .bucket(&repo)
        .key("audit/000000000000.json")
        .body(br#"{"sequence":0}"#.to_vec().into())
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(&repo)
        .key("audit/000000000000.json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        br#"{"sequence":0}"#
    );
}

/// STS's XML error, as the AWS API reference and real denials show it
/// (`<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message></Error>
/// <RequestId>…</RequestId></ErrorResponse>`; codes and statuses from botocore's STS model,
/// messages as seen in aws-actions/configure-aws-credentials issues #280 and #721).
fn sts_error(
    status: u16,
    code: &str,
    message: &str,
) -> impl Fn(&support::Seen) -> support::Answer + Send + Sync + 'static {
    let body = format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ErrorResponse>"#
    );
    move |_| (status, "text/xml", body.clone())
}

async fn refused(
    answer: impl Fn(&support::Seen) -> support::Answer + Send + Sync + 'static,
) -> (wharf_core::Error, Vec<support::Seen>) {
    let (url, seen) = serve(answer);
    let role = AwsWebIdentity::builder(github_token("sts.amazonaws.com"), ROLE)
        .endpoint_url(url)
        .build()
        .unwrap();
    let e = role
        .credentials(&CredentialOptions::default())
        .await
        .unwrap_err();
    let seen = seen.lock().unwrap().clone();
    (e, seen)
}

#[tokio::test]
async fn a_denial_shows_the_token_beside_the_trust_policy_it_needs() {
    let (e, seen) = refused(sts_error(
        403,
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::Denied);
    let msg = e.to_string();
    for want in [
        "AWS STS refused AssumeRoleWithWebIdentity for arn:aws:iam::123456789012:role/wharf-ci: AccessDenied: Not authorized",
        r#"iss "https://token.actions.githubusercontent.com", aud "sts.amazonaws.com", sub "repo:Acme/models:environment:prod""#,
        "Federated arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
        r#"StringEquals token.actions.githubusercontent.com:aud = "sts.amazonaws.com""#,
        r#"StringLike token.actions.githubusercontent.com:sub = "repo:Acme/models:*""#,
        "environments",
        "pull requests",
        "case-sensitive",
    ] {
        assert!(msg.contains(want), "{want:?} not in {msg}");
    }
    assert!(!msg.contains('\n') && !msg.contains(CANARY), "{msg}");
    // The request as the STS query protocol has it, with the token and nothing else secret.
    let req = &seen[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.form("Action").as_deref(),
        Some("AssumeRoleWithWebIdentity")
    );
    assert_eq!(req.form("Version").as_deref(), Some("2011-06-15"));
    assert_eq!(req.form("RoleArn").as_deref(), Some(ROLE));
    assert!(req.form("RoleSessionName").unwrap().starts_with("wharf-"));
    assert!(req.form("WebIdentityToken").unwrap().ends_with(CANARY));
    assert!(
        req.header("authorization").is_none(),
        "the call is unsigned"
    );
}

#[tokio::test]
async fn invalid_tokens_name_the_identity_provider_to_create() {
    let (e, _) = refused(sts_error(400, "InvalidIdentityToken", "No OpenIDConnect provider found in your account for https://token.actions.githubusercontent.com")).await;
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(e.to_string().contains("needs an IAM OIDC identity provider with URL https://token.actions.githubusercontent.com and audience \"sts.amazonaws.com\""), "{e}");
    let (e, _) = refused(sts_error(
        400,
        "InvalidIdentityToken",
        "Incorrect token audience",
    ))
    .await;
    assert!(
        e.to_string()
            .contains("must list \"sts.amazonaws.com\" among its audiences"),
        "{e}"
    );
    let (e, _) = refused(sts_error(400, "ExpiredTokenException", "Token expired: current date/time 1796558400 must be before the expiration date/time 1796554800")).await;
    assert!(e.to_string().contains("check this machine's clock"), "{e}");
    let (e, _) = refused(sts_error(
        400,
        "ValidationError",
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(
        e.to_string()
            .contains("raise the role's maximum session duration"),
        "{e}"
    );
}

#[tokio::test]
async fn bad_settings_and_unreachable_sts_are_one_line() {
    let e = AwsWebIdentity::builder(
        github_token("sts.amazonaws.com"),
        "arn:aws:iam::12345678901:role/wharf-ci",
    )
    .build()
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("the account id \"12345678901\" is not 12 digits"),
        "{e}"
    );
    let e = AwsWebIdentity::builder(github_token("sts.amazonaws.com"), ROLE)
        .duration(Duration::from_secs(60))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("900 to 43200"), "{e}");

    // STS nowhere to be reached; and a token for another audience, which never reaches it.
    let against_closed_port = |aud: &str| {
        let role = AwsWebIdentity::builder(github_token(aud), ROLE)
            .endpoint_url(closed_port())
            .build()
            .unwrap();
        async move {
            role.credentials(&CredentialOptions::default())
                .await
                .unwrap_err()
        }
    };
    let e = against_closed_port("sts.amazonaws.com").await;
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(
        e.to_string().contains("is unreachable") && !e.to_string().contains(CANARY),
        "{e}"
    );
    let e = against_closed_port("sigstore").await;
    assert!(
        e.to_string()
            .contains("is for audience [\"sigstore\"], not \"sts.amazonaws.com\""),
        "{e}"
    );
}

/// Credentials are kept until five minutes before they expire, then assumed again — through
/// the `CloudCredentials` and the aws-config provider alike. The success body is the AWS API
/// reference's example shape with this test's values.
#[tokio::test]
async fn credentials_are_renewed_five_minutes_before_expiry() {
    let clock = ManualClock::at(t0());
    let (url, seen) = serve(move |_| {
        let expiration = "2026-12-06T11:00:00Z";
        (
            200,
            "text/xml",
            format!(
                r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>repo:Acme/models:environment:prod</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/wharf-ci/wharf-8812345678</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:wharf-8812345678</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>session-{CANARY}</SessionToken>
      <SecretAccessKey>secret-{CANARY}</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>ASIAWHARFTEST</AccessKeyId>
    </Credentials>
    <Provider>https://token.actions.githubusercontent.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
            ),
        )
    });
    let role = Arc::new(
        AwsWebIdentity::builder(github_token("sts.amazonaws.com"), ROLE)
            .endpoint_url(url)
            .session_name("wharf-8812345678")
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let calls = || seen.lock().unwrap().len();
    let c = role
        .credentials(&CredentialOptions::default())
        .await
        .unwrap();
    assert_eq!(c.secret.expose(), format!("secret-{CANARY}"));
    assert_eq!(c.expires_at, t0() + time::Duration::hours(1));
    let shown = format!("{c:?} {role:?}");
    assert!(!shown.contains(CANARY), "{shown}");
    role.credentials(&CredentialOptions::default())
        .await
        .unwrap();
    assert_eq!(calls(), 1);
    clock.advance(time::Duration::minutes(54)); // 6 minutes left
    role.credentials(&CredentialOptions::default())
        .await
        .unwrap();
    assert_eq!(calls(), 1);
    clock.advance(time::Duration::minutes(2)); // 4 minutes left
    role.credentials(&CredentialOptions::default())
        .await
        .unwrap();
    assert_eq!(calls(), 2);

    let sdk_creds = role.provider().provide_credentials().await.unwrap();
    assert_eq!(sdk_creds.access_key_id(), "ASIAWHARFTEST");
    assert_eq!(
        sdk_creds.session_token(),
        Some(format!("session-{CANARY}").as_str())
    );
    assert!(!format!("{sdk_creds:?}").contains(CANARY));
}
