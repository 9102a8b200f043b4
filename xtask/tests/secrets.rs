//! Secrets at the edges of `cargo xtask pipeline`: an empty `COSIGN_PASSWORD` is no
//! password (prod refuses it as it refuses none), and `-v` logs never show a credential the
//! process holds — the AWS SDK's debug output prints the access key id.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod support;
use support::*;

use std::process::Output;

/// The one `error:` line of a refused run.
fn error_line(out: &Output) -> String {
    let err = text(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {}", show(out));
    errors[0].to_owned()
}

/// `COSIGN_PASSWORD=""` is treated as unset: prod refuses it with the one-line error it
/// gives when the variable is missing (no key is made), whether or not a key exists; dev
/// warns and goes on with an unprotected key.
#[test]
fn an_empty_cosign_password_is_no_password() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let out = xtask(dir, "pipeline")
        .args(["--env", "prod"])
        .env("COSIGN_PASSWORD", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let line = error_line(&out);
    assert!(
        line.contains("prod signs only with a password-protected key: set COSIGN_PASSWORD")
            && line.contains("empty"),
        "{line}"
    );
    assert!(
        !dir.join("keys/cosign.key").exists(),
        "no unprotected key was made"
    );

    let out = xtask(dir, "pipeline")
        .env("COSIGN_PASSWORD", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("has no password; set COSIGN_PASSWORD to protect it"),
        "{}",
        show(&out)
    );

    // A project whose key has a real password: an empty variable in prod is still refused
    // for what it is, not tried as a (wrong) password.
    let protected = tempfile::tempdir().unwrap();
    let out = xtask(protected.path(), "pipeline").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = xtask(protected.path(), "pipeline")
        .args(["--env", "prod"])
        .env("COSIGN_PASSWORD", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let line = error_line(&out);
    assert!(
        line.contains("prod signs only with a password-protected key") && !line.contains("wrong"),
        "{line}"
    );
}

/// `-v` against moto with the audit log on S3 Object Lock: the run works and logs its
/// stages, and neither the access key id nor the secret key nor the session token (canary
/// values) appears anywhere in its output.
#[test]
fn verbose_logs_never_show_aws_credentials() {
    let moto = backend("WHARF_TEST_MOTO");
    let scratch = tempfile::tempdir().unwrap();
    let bucket = format!("wharf-e2e-mask-{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s3 = moto_s3(&moto);
    rt.block_on(async {
        s3.create_bucket()
            .bucket(&bucket)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
    });
    let access_key_id = format!("AKIAWHARFCANARY{}", std::process::id() % 10_000);
    let secret_key = "wharf-canary-secret/Kq83+Zm1";
    let session_token = "wharf-canary-session-token-Pw61Ld";
    let out = xtask(scratch.path(), "pipeline")
        .arg("-v")
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", &access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("AWS_SESSION_TOKEN", session_token)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("WHARF__AUDIT__URL", format!("s3://{bucket}/mask"))
        .env("WHARF__AUDIT__FORCE_PATH_STYLE", "true")
        .env("WHARF__AUDIT__RETENTION_DAYS", "30")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains(&format!("-> s3://{bucket}/mask/records/000000000000.json")),
        "{stdout}"
    );
    assert!(
        stderr.contains("stage finished") && stderr.contains("run recorded"),
        "-v still logs the run: {stderr}"
    );
    for secret in [
        access_key_id.as_str(),
        secret_key,
        session_token,
        TEST_KEY_PASSWORD,
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} shows in the output:\n{stdout}{stderr}"
        );
    }
}
