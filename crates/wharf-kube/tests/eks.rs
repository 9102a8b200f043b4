#![allow(clippy::unwrap_used)]
//! The EKS token against the one `aws eks get-token` makes: botocore's presigner with the
//! `x-k8s-aws-id` header, clock and credentials fixed — `tests/fixtures/eks/make_token.py`
//! (botocore 1.44.18, the harness's moto virtual environment) wrote `token.txt`.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use wharf_core::Secret;
use wharf_core::identity::Credentials;
use wharf_kube::eks::{TOKEN_PREFIX, token};

/// 2026-01-02T03:04:05Z, the script's clock.
fn then() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045)
}

fn credentials() -> Credentials {
    let mut c = Credentials::new(
        "aws",
        "AKIDEXAMPLE",
        Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        time::OffsetDateTime::UNIX_EPOCH,
    );
    c.session_token = Some(Secret::new("session-token-example"));
    c
}

#[test]
fn the_token_is_byte_for_byte_what_aws_eks_get_token_makes() {
    let expected = include_str!("fixtures/eks/token.txt").trim();
    let made = token("prod-eu", "eu-west-1", &credentials(), then()).unwrap();
    assert_eq!(made.token.expose(), expected);
    assert_eq!(made.expires_at, then() + Duration::from_secs(14 * 60));
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&made.token.expose()[TOKEN_PREFIX.len()..])
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    assert!(url.starts_with("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity"));
    assert!(
        url.contains("X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
        "{url}"
    );
}

#[test]
fn another_cluster_clock_or_key_gives_another_signature_and_secrets_stay_hidden() {
    let base = token("prod-eu", "eu-west-1", &credentials(), then()).unwrap();
    for other in [
        token("prod-us", "eu-west-1", &credentials(), then()).unwrap(),
        token(
            "prod-eu",
            "eu-west-1",
            &credentials(),
            then() + Duration::from_secs(1),
        )
        .unwrap(),
    ] {
        assert_ne!(other.token.expose(), base.token.expose());
    }
    let shown = format!("{base:?}");
    assert!(
        !shown.contains(TOKEN_PREFIX) && !shown.contains("wJalrXUtnFEMI"),
        "{shown}"
    );
    let azure = Credentials::new(
        "azure",
        "client",
        Secret::new("x"),
        time::OffsetDateTime::UNIX_EPOCH,
    );
    let err = token("prod-eu", "eu-west-1", &azure, then())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs AWS credentials"), "{err}");
    let err = token("", "eu-west-1", &credentials(), then())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cluster name"), "{err}");
}
