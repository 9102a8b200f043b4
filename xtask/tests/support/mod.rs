//! What every end-to-end test of the `xtask` binary shares: the command as a user runs it,
//! with the project's state in a scratch directory, and a few assertions on its output.
//! Each test binary uses a part of it.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The password of the tests' signing keys: must never show in output or records.
pub(crate) const TEST_KEY_PASSWORD: &str = "wharf-canary-cosign-password-Hd27Kp";

/// The repository root (the example project lives in `examples/`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `xtask <subcommand>` run from the repository root, with the audit log in
/// `scratch/records`, the keys in `scratch/keys` and the OCI layout in `scratch/oci` (so
/// tests share nothing, and nothing is written into the checkout); callers add arguments
/// and environment overrides.
pub(crate) fn xtask(scratch: &Path, subcommand: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg(subcommand)
        .current_dir(root())
        .env("WHARF__AUDIT__DIR", scratch.join("records"))
        .env(
            "WHARF__AUDIT__CHECKPOINT_KEY",
            scratch.join("keys/audit-checkpoint.pem"),
        )
        .env("WHARF__SIGN__KEY", scratch.join("keys/cosign.key"))
        .env("COSIGN_PASSWORD", TEST_KEY_PASSWORD)
        .env("WHARF__REGISTRY__LAYOUT", scratch.join("oci"))
        .env("WHARF__DEPLOY__GITOPS_REPO", scratch.join("gitops"));
    // The test runner's own OIDC identity (a CI job's) is not the runs': each test gives
    // the token sources it means.
    for var in [
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "WHARF_ID_TOKEN",
        "WHARF_ID_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AZURE_FEDERATED_TOKEN_FILE",
        "SIGSTORE_ID_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// The address or program of a harness backend; a missing one fails the test, saying how
/// to get it.
pub(crate) fn backend(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests with `cargo xtask test`"))
}

/// Output bytes as text.
pub(crate) fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// The exit code and both streams, for assertion messages.
pub(crate) fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The command exited with `code`; otherwise fail showing its output (after `context`).
pub(crate) fn assert_exit(out: &Output, code: i32, context: &str) {
    assert_eq!(out.status.code(), Some(code), "{context}: {}", show(out));
}

/// Assert the command exited with `code` and its output (either stream) holds every one
/// of `needles`; returns both streams.
pub(crate) fn expect(out: &Output, code: i32, needles: &[&str]) -> String {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_exit(out, code, "");
    for n in needles {
        assert!(all.contains(n), "expected {n:?} in: {all}");
    }
    all
}

/// The subject and issuer of the tests' OIDC tokens (the harness Fulcio's certificate names
/// them as the SAN URI and the issuer extension).
pub(crate) const TOKEN_SUBJECT: &str =
    "https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main";
pub(crate) const TOKEN_ISSUER: &str = "https://oidc.wharf.test";

pub(crate) fn base64url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// An unsigned OIDC ID token for [`TOKEN_SUBJECT`] (the harness Fulcio reads the claims
/// without checking the signature), with `extra` claims added.
pub(crate) fn id_token(extra: &[(&str, &str)]) -> String {
    let mut claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": TOKEN_SUBJECT,
        "aud": "sigstore",
        "exp": 4_000_000_000u64,
    });
    for (k, v) in extra {
        claims[*k] = serde_json::Value::from(*v);
    }
    format!(
        "{}.{}.{}",
        base64url(br#"{"alg":"RS256","typ":"JWT"}"#),
        base64url(claims.to_string().as_bytes()),
        base64url(b"sig")
    )
}

/// The harness Sigstore's trust root, written to `scratch/trusted_root.json`.
pub(crate) fn trusted_root(scratch: &Path, sigstore: &str) -> PathBuf {
    let path = scratch.join("trusted_root.json");
    let out = Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(&path)
        .arg(format!("{sigstore}/trusted_root.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "downloading the trust root: {}",
        show(&out)
    );
    path
}

/// An S3 client for moto at `moto` (path-style; moto takes any credentials).
pub(crate) fn moto_s3(moto: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .endpoint_url(moto)
            .force_path_style(true)
            .build(),
    )
}
