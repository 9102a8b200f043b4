//! `[identity]` end to end, as a user runs `cargo xtask pipeline` and `cargo xtask identity
//! whoami` in a GitHub Actions job: the job's token endpoint and AWS STS are loopback
//! stand-ins (no local binary plays them) answering as the services do — GitHub's as
//! `@actions/core` reads it (actions/toolkit packages/core/src/oidc-utils.ts: GET
//! `<url>&audience=…`, bearer, JSON `value`), STS with the AWS API reference's
//! `AssumeRoleWithWebIdentityResponse` and `ErrorResponse` XML; S3 is moto and Sigstore the
//! harness's. Canary values stand for the request token, the ID tokens' signatures and the
//! STS credentials, and no output, log, record or file of the run may contain one.

#![allow(clippy::unwrap_used)]

mod support;
use support::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

const REQUEST_TOKEN: &str = "wharf-canary-gh-request-Vb52";
/// Base64url, so it can end an ID token's signature part.
const JWT_SIG: &str = "wharfcanaryJwtSig93";
const STS_SECRET: &str = "wharf-canary-sts-secret/Zq81";
const STS_SESSION: &str = "wharf-canary-sts-session-Tp40";
const ROLE: &str = "arn:aws:iam::123456789012:role/wharf-ci";
const SUB: &str = "repo:acme/models:ref:refs/heads/main";

/// Requests a stand-in got: request line and body.
type Seen = Arc<Mutex<Vec<String>>>;

/// A loopback HTTP stand-in; `answer(request line, body)` gives status, content type, body.
fn serve(
    answer: impl Fn(&str, &str) -> (u16, &'static str, String) + Send + Sync + 'static,
) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Seen::default();
    let record = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (record, answer) = (record.clone(), answer.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut line, mut len) = (String::new(), 0usize);
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let body = String::from_utf8_lossy(&body).into_owned();
                let (status, kind, out) = answer(line.trim(), &body);
                record
                    .lock()
                    .unwrap()
                    .push(format!("{} {body}", line.trim()));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                    out.len()
                );
            });
        }
    });
    (url, seen)
}

/// GitHub Actions' token endpoint: a GitHub-shaped token for whatever audience is asked.
fn github() -> (String, Seen) {
    let (url, seen) = serve(|line, _| {
        let aud = line
            .split("audience=")
            .nth(1)
            .and_then(|a| a.split(' ').next())
            .unwrap_or("");
        let aud = aud.replace("%3A", ":").replace("%2F", "/");
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER, "sub": SUB, "aud": aud, "exp": 4_000_000_000u64,
            "iat": 1_796_551_200, "repository": "acme/models", "ref": "refs/heads/main",
            "workflow": "release", "run_id": "8812345678", "run_attempt": "1", "actor": "octocat",
            "email": "ci@acme.example"
        });
        let token = format!(
            "{}.{}.{}",
            base64url(br#"{"alg":"RS256","typ":"JWT"}"#),
            base64url(claims.to_string().as_bytes()),
            JWT_SIG
        );
        (
            200,
            "application/json",
            serde_json::json!({"value": token}).to_string(),
        )
    });
    (
        format!("{url}/_apis/distributedtask/hubs/Actions/plans/p/jobs/j/idtoken?api-version=2.0"),
        seen,
    )
}

/// STS answering every AssumeRoleWithWebIdentity with the canary credentials.
fn sts() -> (String, Seen) {
    serve(|_, body| {
        let session = body
            .split('&')
            .find_map(|p| p.strip_prefix("RoleSessionName="))
            .unwrap_or("s")
            .to_owned();
        (
            200,
            "text/xml",
            format!(
                r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>{SUB}</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/wharf-ci/{session}</Arn><AssumedRoleId>AROACLKWSDQRAOEXAMPLE:{session}</AssumedRoleId></AssumedRoleUser><Credentials><SessionToken>{STS_SESSION}</SessionToken><SecretAccessKey>{STS_SECRET}</SecretAccessKey><Expiration>2099-01-01T00:00:00Z</Expiration><AccessKeyId>ASIAWHARFIDENTITY</AccessKeyId></Credentials><Provider>{TOKEN_ISSUER}</Provider></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"#
            ),
        )
    })
}

/// No file under `dir` holds any of `needles`.
fn no_file_holds(dir: &Path, needles: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            no_file_holds(&path, needles);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for n in needles {
                assert!(!text.contains(n), "{n} is in {}", path.display());
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A GitHub Actions job with `permissions: id-token: write` and `[identity.aws]`: the role
/// is assumed with the job's token for the S3 audit log, keyless signing gets its own token
/// (audience `sigstore`) with no variable set, and the record names the workflow run —
/// while no canary shows in stdout, the `-v` log, the S3 objects or any file the run wrote.
#[test]
fn a_github_actions_run_assumes_the_role_signs_keylessly_and_leaks_nothing() {
    let moto = backend("WHARF_TEST_MOTO");
    let sigstore = backend("WHARF_TEST_SIGSTORE");
    let scratch = tempfile::tempdir().unwrap();
    let root = trusted_root(scratch.path(), &sigstore);
    let (gh_url, gh_seen) = github();
    let (sts_url, sts_seen) = sts();
    let bucket = format!("wharf-identity-{}", std::process::id());
    let s3 = moto_s3(&moto);
    let rt = runtime();
    rt.block_on(
        s3.create_bucket()
            .bucket(&bucket)
            .object_lock_enabled_for_bucket(true)
            .send(),
    )
    .unwrap();

    let out = xtask(scratch.path(), "pipeline")
        .arg("-v")
        .env("GITHUB_ACTIONS", "true")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &gh_url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
        .env("WHARF__IDENTITY__AWS__ROLE_ARN", ROLE)
        .env("AWS_ENDPOINT_URL_STS", &sts_url)
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", scratch.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            scratch.path().join("no-aws-credentials"),
        )
        .env("WHARF__AUDIT__URL", format!("s3://{bucket}/runs"))
        .env("WHARF__AUDIT__FORCE_PATH_STYLE", "true")
        .env("WHARF__AUDIT__RETENTION_DAYS", "30")
        .env("WHARF__SIGN__KEY", "keyless")
        .env("WHARF__SIGN__TRUSTED_ROOT", &root)
        .env("WHARF__SIGN__FULCIO_URL", &sigstore)
        .env("WHARF__SIGN__REKOR_URL", &sigstore)
        .output()
        .unwrap();
    assert_exit(
        &out,
        0,
        "a GitHub Actions run with [identity.aws] and keyless signing",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains(&format!("actor {SUB} ({TOKEN_ISSUER})")),
        "{stdout}"
    );

    // The job's endpoint was asked for both audiences, with its request token.
    let asked = gh_seen.lock().unwrap().join("\n");
    assert!(
        asked.contains("&audience=sts.amazonaws.com ") && asked.contains("&audience=sigstore "),
        "{asked}"
    );
    // STS was asked once (the credentials are cached), in the run's name.
    let assumed = sts_seen.lock().unwrap().clone();
    assert_eq!(assumed.len(), 1, "{assumed:?}");
    assert!(
        assumed[0].contains("RoleSessionName=wharf-8812345678-1"),
        "{}",
        assumed[0]
    );
    assert!(
        assumed[0].contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fwharf-ci"),
        "{}",
        assumed[0]
    );

    // The record is in S3, written with the assumed role, and names the workflow run.
    let objects = rt.block_on(async {
        let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
        let mut all = Vec::new();
        for o in listed.contents() {
            let key = o.key().unwrap().to_owned();
            let body = s3
                .get_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            all.push((
                key,
                String::from_utf8(body.body.collect().await.unwrap().to_vec()).unwrap(),
            ));
        }
        all
    });
    let (_, record) = objects
        .iter()
        .find(|(k, _)| k.starts_with("runs/records/"))
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(record).unwrap();
    let actor = &record["event"]["actor"];
    assert_eq!(actor["kind"], "oidc", "{record}");
    assert_eq!(actor["id"], SUB);
    assert_eq!(actor["issuer"], TOKEN_ISSUER);
    assert_eq!(actor["context"]["run_id"], "8812345678");
    assert_eq!(actor["context"]["repository"], "acme/models");
    assert_eq!(actor["context"]["triggered_by"], "octocat");

    let canaries = [REQUEST_TOKEN, JWT_SIG, STS_SECRET, STS_SESSION];
    for c in canaries {
        assert!(
            !stdout.contains(c) && !stderr.contains(c),
            "{c} shows in the output:\n{stdout}{stderr}"
        );
        for (key, body) in &objects {
            assert!(!body.contains(c), "{c} is in s3://{bucket}/{key}");
        }
    }
    no_file_holds(scratch.path(), &canaries);
}

/// `identity whoami`: the source, the claims, and what the role returns — or, when STS
/// denies, the token's iss/aud/sub beside the trust policy it needs, with exit 1.
#[test]
fn whoami_shows_the_token_and_what_each_exchange_returns() {
    let scratch = tempfile::tempdir().unwrap();
    let (gh_url, _) = github();
    let (sts_url, _) = sts();
    let whoami = |sts: &str| {
        xtask(scratch.path(), "identity")
            .arg("whoami")
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", &gh_url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
            .env("WHARF__IDENTITY__AWS__ROLE_ARN", ROLE)
            .env("AWS_ENDPOINT_URL_STS", sts)
            .output()
            .unwrap()
    };
    let out = whoami(&sts_url);
    let all = expect(
        &out,
        0,
        &[
            "source     GitHub Actions",
            &format!("actor      {SUB} ({TOKEN_ISSUER})"),
            "claims     (decoded, not verified: the cloud checks the signature)",
            "  run_id                 8812345678",
            "  aud                    sts.amazonaws.com",
            "aws        role arn:aws:iam::123456789012:role/wharf-ci -> arn:aws:sts::123456789012:assumed-role/wharf-ci/wharf-8812345678-1 until 2099-01-01T00:00:00Z",
        ],
    );
    for c in [REQUEST_TOKEN, JWT_SIG, STS_SECRET, STS_SESSION] {
        assert!(!all.contains(c), "{c}: {all}");
    }

    // STS's AccessDenied, as the AWS API reference shapes it.
    let (denied, _) = serve(|_, _| {
        (403, "text/xml", r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ErrorResponse>"#.to_owned())
    });
    let out = whoami(&denied);
    expect(
        &out,
        1,
        &[
            "AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity",
            &format!(r#"the token has iss "{TOKEN_ISSUER}", aud "sts.amazonaws.com", sub "{SUB}""#),
            r#"StringLike oidc.wharf.test:sub = "repo:acme/models:*""#,
        ],
    );

    // No token at all: said so, nothing fails.
    let out = xtask(scratch.path(), "identity")
        .arg("whoami")
        .output()
        .unwrap();
    expect(&out, 0, &["source     none", "exchanges  none configured"]);
}

/// Bad `[identity]` settings refuse the run in one line naming what to fix, and the
/// refusal is recorded.
#[test]
fn bad_identity_settings_are_refused_in_one_line() {
    let scratch = tempfile::tempdir().unwrap();
    let (gh_url, _) = github();
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = xtask(scratch.path(), "pipeline");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let gh = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", gh_url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
    ];
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            [
                &gh[..],
                &[(
                    "WHARF__IDENTITY__AWS__ROLE_ARN",
                    "arn:aws:iam::12345678901:role/wharf-ci",
                )],
            ]
            .concat(),
            "[identity.aws] role_arn: role ARN \"arn:aws:iam::12345678901:role/wharf-ci\" is not an IAM role's ARN",
        ),
        (
            vec![("WHARF__IDENTITY__AWS__ROLE_ARN", ROLE)],
            "an exchange is configured but this environment has no OIDC ID token",
        ),
        (
            vec![("ACTIONS_ID_TOKEN_REQUEST_URL", gh_url.as_str())],
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set: GitHub Actions sets it only for jobs with `permissions: id-token: write`",
        ),
        (
            [
                &gh[..],
                &[(
                    "WHARF__IDENTITY__GCP__PROVIDER",
                    "projects/models/pools/github",
                )],
            ]
            .concat(),
            "[identity.gcp] provider: workload identity provider \"projects/models/pools/github\" is not //iam.googleapis.com/projects/NUMBER/",
        ),
    ];
    for (vars, want) in cases {
        let out = run(&vars);
        let err = text(&out.stderr);
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{}", show(&out));
        assert!(errors[0].contains(want), "{want:?} not in {}", errors[0]);
        assert!(!err.contains(REQUEST_TOKEN) && !err.contains(JWT_SIG));
        assert_ne!(out.status.code(), Some(0));
    }
    let records = std::fs::read_dir(scratch.path().join("records/records"))
        .unwrap()
        .count();
    assert_eq!(records, 4, "every refusal is recorded");
}

/// The managed-cluster targets take their cloud's exchange: EKS signs with the role STS
/// returned (asked once; moto's EKS answers that the cluster does not exist), AKS asks Entra
/// and GKE asks Google STS with the job's token — each stand-in here refusing as the real
/// service does (AADSTS700213 as in Azure/login#482; the attribute condition as in
/// google-github-actions/auth#211), and the refusal reaching the user in one line.
#[test]
fn managed_clusters_use_the_configured_exchange() {
    let scratch = tempfile::tempdir().unwrap();
    let (gh_url, gh_seen) = github();
    let (sts_url, sts_seen) = sts();
    let pipeline = || {
        let mut cmd = xtask(scratch.path(), "pipeline");
        cmd.env("ACTIONS_ID_TOKEN_REQUEST_URL", &gh_url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
            .env("WHARF__DEPLOY__CLUSTER", "scoring")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    };
    let out = pipeline()
        .env("WHARF__DEPLOY__TARGET", "eks")
        .env("WHARF__DEPLOY__REGION", "eu-west-1")
        .env("WHARF__DEPLOY__ENDPOINT_URL", backend("WHARF_TEST_MOTO"))
        .env("WHARF__IDENTITY__AWS__ROLE_ARN", ROLE)
        .env("AWS_ENDPOINT_URL_STS", &sts_url)
        .output()
        .unwrap();
    let all = show(&out);
    assert!(
        all.contains(
            "DescribeCluster of EKS cluster scoring in eu-west-1: ResourceNotFoundException"
        ),
        "{all}"
    );
    assert_eq!(
        sts_seen.lock().unwrap().len(),
        1,
        "the role was assumed for EKS"
    );
    assert!(
        !all.contains(STS_SECRET) && !all.contains(STS_SESSION),
        "{all}"
    );

    let (entra, entra_seen) = serve(|_, _| {
        (401, "application/json; charset=utf-8", serde_json::json!({
        "error": "invalid_client",
        "error_description": format!("AADSTS700213: No matching federated identity record found for presented assertion subject '{SUB}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation Trace ID: 4ef9c26a-e731-4572-b4d3-f8c0e6362200 Correlation ID: 731cf9a5-5359-45d2-b058-4f8f2570e1fc Timestamp: 2026-12-06 10:00:00Z"),
        "error_codes": [700213], "timestamp": "2026-12-06 10:00:00Z",
        "trace_id": "4ef9c26a-e731-4572-b4d3-f8c0e6362200", "correlation_id": "731cf9a5-5359-45d2-b058-4f8f2570e1fc",
        "error_uri": "https://login.microsoftonline.com/error?code=700213"}).to_string())
    });
    let out = pipeline()
        .env("WHARF__DEPLOY__TARGET", "aks")
        .env(
            "WHARF__DEPLOY__SUBSCRIPTION",
            "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
        )
        .env("WHARF__DEPLOY__RESOURCE_GROUP", "ml-prod")
        .env(
            "WHARF__IDENTITY__AZURE__TENANT_ID",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
        )
        .env(
            "WHARF__IDENTITY__AZURE__CLIENT_ID",
            "6e9e3b26-6c3a-4b8f-9a4e-0c5d1f1f1a11",
        )
        .env("WHARF__IDENTITY__AZURE__AUTHORITY_HOST", &entra)
        .output()
        .unwrap();
    let all = show(&out);
    assert!(
        all.contains("AADSTS700213") && all.contains(&format!("subject \"{SUB}\" (exact match)")),
        "{all}"
    );
    assert!(
        entra_seen.lock().unwrap()[0].contains("client_assertion="),
        "Entra got the job's token"
    );

    let (google, google_seen) = serve(|_, _| {
        (400, "application/json; charset=UTF-8",
        r#"{"error":"unauthorized_client","error_description":"The given credential is rejected by the attribute condition."}"#.to_owned())
    });
    let out = pipeline()
        .env("WHARF__DEPLOY__TARGET", "gke")
        .env("WHARF__DEPLOY__PROJECT", "acme-ml")
        .env("WHARF__DEPLOY__LOCATION", "europe-west4")
        .env("WHARF__IDENTITY__GCP__PROVIDER", "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ci/providers/github")
        .env("WHARF__IDENTITY__GCP__STS_URL", format!("{google}/v1/token"))
        .output()
        .unwrap();
    let all = show(&out);
    assert!(
        all.contains("rejected by the attribute condition")
            && all.contains("repository=acme/models"),
        "{all}"
    );
    assert!(google_seen.lock().unwrap()[0].contains("subject_token="));
    let asked = gh_seen.lock().unwrap().join("\n");
    for aud in [
        "audience=api%3A%2F%2FAzureADTokenExchange",
        "audience=https%3A%2F%2Fiam.googleapis.com%2Fprojects%2F123456",
    ] {
        assert!(asked.contains(aud), "{aud} not asked: {asked}");
    }
    assert!(!all.contains(REQUEST_TOKEN) && !all.contains(JWT_SIG));
}
