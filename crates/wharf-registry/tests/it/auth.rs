//! Authentication against real registries: distribution 2.8 with htpasswd (Basic) and with
//! token auth behind the harness's token server; the token cache against the fake.

use base64::Engine as _;
use wharf_core::registry::{ListTagsOptions, PushBlobOptions};
use wharf_core::{Digest, ErrorKind, Registry, display_chain};
use wharf_registry::distribution::{Credentials, DistributionClient};

use crate::support::fake::{Fake, Faults};
use crate::support::{Image, builder, bytes, client, env, fetch, stream_of, unique};

struct Env {
    basic: String,
    token: String,
    token_server: String,
    user: String,
    password: String,
}

fn backends() -> Env {
    Env {
        basic: env("WHARF_TEST_REGISTRY_BASIC"),
        token: env("WHARF_TEST_REGISTRY_TOKEN"),
        token_server: env("WHARF_TEST_TOKEN_SERVER"),
        user: env("WHARF_TEST_REGISTRY_USER"),
        password: env("WHARF_TEST_REGISTRY_PASSWORD"),
    }
}

fn with_creds(addr: &str, user: &str, password: &str) -> DistributionClient {
    builder(addr)
        .credentials(Credentials::basic(user, password))
        .build()
        .unwrap()
}

/// Every way an error can be shown.
fn shown(err: &wharf_core::Error) -> String {
    format!("{err} | {err:?} | {}", display_chain(err))
}

#[tokio::test]
async fn anonymous_access_to_a_basic_auth_registry_says_how_to_log_in() {
    let e = backends();
    let reg = client(&e.basic);
    for err in [
        reg.ping().await.unwrap_err(),
        reg.blob_exists("x/y", &Digest::sha256_of(b"x"))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("Credentials::Basic") && msg.contains("docker login"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

#[tokio::test]
async fn basic_credentials_pass_the_conformance_suite() {
    let e = backends();
    let reg = with_creds(&e.basic, &e.user, &e.password);
    reg.ping().await.unwrap();
    wharf_core::conformance::registry(&reg, "wharf-it-basic").await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_never_shown() {
    let e = backends();
    let canary = format!(
        "canary-{}",
        &Digest::sha256_of(unique("pw").as_bytes()).hex()[..16]
    );
    for addr in [&e.basic, &e.token] {
        let reg = with_creds(addr, &e.user, &canary);
        assert!(!format!("{reg:?} {reg}").contains(&canary));
        let digest = Digest::sha256_of(b"blob");
        let errors = vec![
            reg.ping().await.unwrap_err(),
            reg.blob_exists("wharf-it/x", &digest).await.unwrap_err(),
            reg.push_blob(
                "wharf-it/x",
                &digest,
                stream_of(b"blob", 2),
                &PushBlobOptions::default(),
            )
            .await
            .unwrap_err(),
            reg.fetch_manifest("wharf-it/x", &digest).await.unwrap_err(),
            reg.list_tags("wharf-it/x", &ListTagsOptions::default())
                .await
                .unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{addr}: {err}");
            let all = shown(&err);
            assert!(!all.contains(&canary), "the password leaked: {all}");
            assert!(
                all.contains(&format!("{:?}", e.user)),
                "names the user: {all}"
            );
            let b64 =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{canary}", e.user));
            assert!(!all.contains(&b64), "{all}");
        }
    }
}

#[tokio::test]
async fn credentials_come_from_a_docker_config() {
    let e = backends();
    let dir = tempfile::tempdir().unwrap();
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", e.user, e.password));
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        serde_json::json!({"auths": {format!("http://{}", e.basic): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let reg = DistributionClient::builder(&e.basic)
        .docker_config(&path)
        .build()
        .unwrap();
    reg.ping().await.unwrap();
    let repo = unique("docker-config");
    let data = bytes(1000, 3);
    let digest = Digest::sha256_of(&data);
    reg.push_blob(
        &repo,
        &digest,
        stream_of(&data, 100),
        &PushBlobOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(&fetch(&reg, &repo, &digest).await.unwrap()[..], &data[..]);

    // A credential helper for this registry: a clear error once the registry asks.
    std::fs::write(
        &path,
        serde_json::json!({"auths": {}, "credHelpers": {e.basic.clone(): "pass"}}).to_string(),
    )
    .unwrap();
    let reg = DistributionClient::builder(&e.basic)
        .docker_config(&path)
        .build()
        .unwrap();
    let err = reg.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("docker-credential-pass") && msg.contains("not supported yet"),
        "{msg}"
    );

    // An explicit config that does not exist is an error at build time.
    let err = DistributionClient::builder(&e.basic)
        .docker_config(dir.path().join("missing.json"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn the_token_flow_passes_the_conformance_suite() {
    let e = backends();
    let reg = with_creds(&e.token, &e.user, &e.password);
    reg.ping().await.unwrap();
    wharf_core::conformance::registry(&reg, "wharf-it-token").await;
}

/// Tokens the token server issued whose scope names `repo`.
async fn issued_for(server: &str, repo: &str) -> u64 {
    let body = reqwest::get(format!("{server}/stats"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
    stats["repositories"][repo].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn tokens_are_cached_per_repository_scope() {
    let e = backends();
    let reg = with_creds(&e.token, &e.user, &e.password);
    let repo = unique("token-cache");
    let image = Image::new(8, &[1000, 2000, 3000]);

    // Writes: three blobs (HEAD + POST + PUT each) and the manifest, all on one push token.
    image.push(&reg, &repo, "v1").await;
    // Reads: all on one pull token.
    let d = reg.resolve_tag(&repo, "v1").await.unwrap();
    reg.fetch_manifest(&repo, &d.digest).await.unwrap();
    for (desc, data) in image.blobs() {
        assert_eq!(
            &fetch(&reg, &repo, &desc.digest).await.unwrap()[..],
            &data[..]
        );
        assert!(
            reg.blob_exists(&repo, &desc.digest)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(
        reg.list_tags(&repo, &ListTagsOptions::default())
            .await
            .unwrap(),
        ["v1"]
    );

    assert_eq!(
        issued_for(&e.token_server, &repo).await,
        2,
        "one token for pull,push and one for pull, for some 25 requests"
    );
}

#[tokio::test]
async fn token_registry_refuses_a_wrong_password_and_anonymous_clients() {
    let e = backends();
    let reg = with_creds(&e.token, &e.user, "wrong-password");
    let err = reg
        .blob_exists("wharf-it/t", &Digest::sha256_of(b"t"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("token server"), "{err}");

    // Anonymous clients get a token without access: the registry still refuses.
    let reg = client(&e.token);
    let err = reg
        .blob_exists("wharf-it/t", &Digest::sha256_of(b"t"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("Credentials::Basic"), "{err}");
}

#[tokio::test]
async fn bearer_tokens_are_refreshed_before_expiry_and_after_a_new_401() {
    let fake = Fake::start(Faults {
        bearer: Some(4), // the margin for a 4 s token is 1 s: refreshed after 3 s
        ..Faults::default()
    })
    .await;
    let reg = client(&fake.url());
    let d = Digest::sha256_of(b"nothing");
    let unauthorized = || fake.log().iter().filter(|l| l.ends_with("-> 401")).count();

    assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!(
        (fake.with(|s| s.tokens_issued), unauthorized()),
        (1, 1),
        "challenge, token, retry"
    );
    assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!(fake.with(|s| s.tokens_issued), 1, "cached");

    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!(
        (fake.with(|s| s.tokens_issued), unauthorized()),
        (2, 1),
        "refreshed before expiry, without a 401"
    );

    fake.with(|s| s.valid_tokens.clear()); // revoked
    assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!(
        (fake.with(|s| s.tokens_issued), unauthorized()),
        (3, 2),
        "a new 401 fetches a new token and retries once: {:#?}",
        fake.log()
    );
}
