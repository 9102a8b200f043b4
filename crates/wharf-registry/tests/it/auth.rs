//! Authentication against real registries: distribution 2.8 with htpasswd (Basic) and with
//! token auth behind the harness's token server; the token cache and credentials providers
//! against the fake.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use wharf_core::registry::{ListTagsOptions, PushBlobOptions};
use wharf_core::{Digest, ErrorKind, Registry, Secret, display_chain};
use wharf_registry::distribution::{
    Credentials, CredentialsProvider, DistributionClient, ProvidedCredentials,
};

use crate::support::fake::{BasicAuth, Fake, Faults};
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

/// A provider handing out its credentials in turn, one per call (the last one from then on),
/// each valid for `valid_for`; counts its calls.
#[derive(Debug)]
struct Rotating {
    answers: Vec<Credentials>,
    valid_for: Option<Duration>,
    calls: AtomicUsize,
}

impl Rotating {
    /// Basic credentials of `user` with each of `passwords`.
    fn passwords(user: &str, passwords: &[&str], valid_for: Option<Duration>) -> Arc<Self> {
        Self::answers(
            passwords
                .iter()
                .map(|p| Credentials::basic(user, *p))
                .collect(),
            valid_for,
        )
    }

    fn answers(answers: Vec<Credentials>, valid_for: Option<Duration>) -> Arc<Self> {
        Arc::new(Self {
            answers,
            valid_for,
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CredentialsProvider for Rotating {
    async fn credentials(&self) -> wharf_core::Result<ProvidedCredentials> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let creds = self.answers[n.min(self.answers.len() - 1)].clone();
        Ok(match self.valid_for {
            Some(d) => ProvidedCredentials::new(creds).with_valid_for(d),
            None => ProvidedCredentials::new(creds),
        })
    }
}

/// A provider that fails with `kind`; it holds a secret that must never show.
#[derive(Debug)]
struct Failing {
    kind: ErrorKind,
    #[allow(dead_code)] // held to check that it never shows
    vault_token: Secret,
    calls: AtomicUsize,
}

#[async_trait]
impl CredentialsProvider for Failing {
    async fn credentials(&self) -> wharf_core::Result<ProvidedCredentials> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(wharf_core::Error::new(
            self.kind,
            "the vault is sealed:\nunseal it and retry",
        ))
    }
}

/// A fake that wants Basic credentials of user `ci`.
async fn basic_fake(passwords: &[(&str, Option<usize>)]) -> Fake {
    Fake::start(Faults {
        basic: Some(BasicAuth::new("ci", passwords)),
        ..Faults::default()
    })
    .await
}

fn unauthorized(fake: &Fake) -> usize {
    fake.log().iter().filter(|l| l.ends_with("-> 401")).count()
}

fn accepted(fake: &Fake) -> Vec<String> {
    fake.with(|s| s.basic_accepted.clone())
}

#[tokio::test]
async fn a_revoked_password_is_replaced_by_the_providers_next_one_after_a_401() {
    // pw-1 is good for 3 requests, then revoked.
    let fake = basic_fake(&[("pw-1", Some(3)), ("pw-2", None)]).await;
    let provider = Rotating::passwords("ci", &["pw-1", "pw-2"], None);
    let reg = builder(&fake.url())
        .credentials_provider(provider.clone())
        .build()
        .unwrap();
    let d = Digest::sha256_of(b"nothing");
    assert_eq!(
        provider.calls(),
        0,
        "not asked before credentials are needed"
    );

    for _ in 0..3 {
        assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    }
    assert_eq!(
        (provider.calls(), unauthorized(&fake)),
        (1, 1),
        "asked once, at the registry's challenge; pw-1 then serves every request: {:#?}",
        fake.log()
    );
    assert_eq!(accepted(&fake), ["pw-1"; 3]);

    // pw-1 is now revoked: the next request is refused, the provider asked, the request
    // repeated once with pw-2.
    assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!(
        (provider.calls(), unauthorized(&fake)),
        (2, 2),
        "{:#?}",
        fake.log()
    );
    assert_eq!(accepted(&fake).last().map(String::as_str), Some("pw-2"));

    // A whole push and pull on pw-2, without asking again.
    let repo = unique("rotate");
    let image = Image::new(21, &[1000, 2000]);
    image.push(&reg, &repo, "v1").await;
    for (desc, data) in image.blobs() {
        assert_eq!(
            &fetch(&reg, &repo, &desc.digest).await.unwrap()[..],
            &data[..]
        );
    }
    assert_eq!((provider.calls(), unauthorized(&fake)), (2, 2));
    assert!(!format!("{reg:?}").contains("pw-"), "{reg:?}");
}

#[tokio::test]
async fn the_provider_is_asked_once_while_its_credentials_are_valid_and_again_when_they_expire() {
    let fake = basic_fake(&[("pw-1", None), ("pw-2", None)]).await;
    let provider = Rotating::passwords("ci", &["pw-1", "pw-2"], Some(Duration::from_millis(600)));
    let reg = builder(&fake.url())
        .credentials_provider(provider.clone())
        .build()
        .unwrap();
    let d = Digest::sha256_of(b"nothing");

    // Concurrent first requests: all refused without credentials, one call serves them all.
    let first: Vec<_> = futures_util::future::join_all((0..6).map(|_| reg.blob_exists("r", &d)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, [None; 6]);
    assert_eq!(provider.calls(), 1);
    for _ in 0..10 {
        reg.blob_exists("r", &d).await.unwrap();
    }
    assert_eq!(provider.calls(), 1, "not asked per request");
    let refused = unauthorized(&fake);

    // Expired: asked again before the next request, which goes out with pw-2 at once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    fake.with(|s| s.faults.basic.as_mut().unwrap().revoke("pw-1"));
    for _ in 0..5 {
        reg.blob_exists("r", &d).await.unwrap();
    }
    assert_eq!(provider.calls(), 2);
    assert_eq!(
        unauthorized(&fake),
        refused,
        "renewed before it was refused"
    );
    assert_eq!(accepted(&fake).last().map(String::as_str), Some("pw-2"));
}

#[tokio::test]
async fn credentials_the_provider_gives_again_after_a_401_fail_without_a_loop() {
    let canary = "canary-stale-pw-7Qx2";
    let fake = basic_fake(&[("current", None)]).await;
    let provider = Rotating::passwords("ci", &[canary], None);
    let reg = builder(&fake.url())
        .credentials_provider(provider.clone())
        .build()
        .unwrap();
    let d = Digest::sha256_of(b"nothing");

    let err = reg.blob_exists("r", &d).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    // Without credentials, then with them (the one retry of the request answered the
    // challenge): no third request.
    assert_eq!(fake.log().len(), 2, "{:#?}", fake.log());
    assert_eq!(provider.calls(), 1);
    let all = shown(&err);
    assert!(!all.contains(canary), "the password leaked: {all}");
    assert!(
        all.contains("\"ci\"") && all.contains("credentials provider"),
        "{all}"
    );
    assert!(all.contains(&fake.url()), "names the registry: {all}");
    assert!(!err.to_string().contains('\n'));

    // The next request goes out with the credentials, is refused, asks the provider, gets
    // the same ones and fails: one request, one call, no loop.
    let err = reg.blob_exists("r", &d).await.unwrap_err();
    assert_eq!((fake.log().len(), provider.calls()), (3, 2));
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("gave no other"), "{err}");
    assert!(!shown(&err).contains(canary));
}

#[tokio::test]
async fn a_failing_provider_is_unauthenticated_on_one_line_naming_the_registry() {
    let canary = "canary-vault-token-Lp30";
    let fake = basic_fake(&[("pw", None)]).await;
    for (kind, expected) in [
        (ErrorKind::Internal, ErrorKind::Unauthenticated),
        (ErrorKind::Unauthenticated, ErrorKind::Unauthenticated),
        (ErrorKind::Transient, ErrorKind::Transient),
    ] {
        let provider = Arc::new(Failing {
            kind,
            vault_token: Secret::new(canary),
            calls: AtomicUsize::new(0),
        });
        let reg = builder(&fake.url())
            .credentials_provider(provider.clone())
            .build()
            .unwrap();
        let digest = Digest::sha256_of(b"blob");
        for err in [
            reg.blob_exists("r", &digest).await.unwrap_err(),
            reg.ping().await.unwrap_err(),
            reg.push_blob(
                "r",
                &digest,
                stream_of(b"blob", 2),
                &PushBlobOptions::default(),
            )
            .await
            .unwrap_err(),
        ] {
            assert_eq!(err.kind(), expected, "{kind}: {err}");
            let msg = err.to_string();
            assert_eq!(
                msg,
                format!(
                    "the credentials provider for {} failed: the vault is sealed: unseal it and retry",
                    fake.url()
                )
            );
            let all = format!("{} | {reg:?}", shown(&err));
            assert!(!all.contains(canary), "a secret leaked: {all}");
            let source = std::error::Error::source(&err).unwrap();
            assert!(
                source
                    .downcast_ref::<wharf_registry::RegistryError>()
                    .is_some(),
                "the registry error stays reachable"
            );
        }
        assert_eq!(provider.calls.load(Ordering::SeqCst), 3, "once per request");
    }
}

#[tokio::test]
async fn a_token_server_refusing_a_revoked_password_gets_the_providers_next_one() {
    // The token server takes pw-1 once, then only pw-2.
    let fake = Fake::start(Faults {
        bearer: Some(60),
        basic: Some(BasicAuth::new("ci", &[("pw-1", Some(1)), ("pw-2", None)])),
        ..Faults::default()
    })
    .await;
    let provider = Rotating::passwords("ci", &["pw-1", "pw-2"], None);
    let reg = builder(&fake.url())
        .credentials_provider(provider.clone())
        .build()
        .unwrap();
    let d = Digest::sha256_of(b"nothing");

    assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!((provider.calls(), fake.with(|s| s.tokens_issued)), (1, 1));
    assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!((provider.calls(), fake.with(|s| s.tokens_issued)), (1, 1));

    // The token is revoked: a new one is fetched, the token server refuses pw-1, the
    // provider gives pw-2, the token comes, the request is repeated.
    fake.with(|s| s.valid_tokens.clear());
    assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!((provider.calls(), fake.with(|s| s.tokens_issued)), (2, 2));
    assert_eq!(accepted(&fake), ["pw-1", "pw-2"]);
}

#[tokio::test]
async fn bearer_tokens_from_a_provider_are_replaced_after_a_401() {
    let fake = Fake::start(Faults {
        bearer: Some(60),
        ..Faults::default()
    })
    .await;
    fake.with(|s| s.valid_tokens.insert("external-1".to_owned()));
    let provider = Rotating::answers(
        vec![
            Credentials::Bearer(Secret::new("external-1")),
            Credentials::Bearer(Secret::new("external-2")),
        ],
        None,
    );
    let reg = builder(&fake.url())
        .credentials_provider(provider.clone())
        .build()
        .unwrap();
    let d = Digest::sha256_of(b"nothing");

    for _ in 0..3 {
        assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    }
    assert_eq!(provider.calls(), 1);
    assert_eq!(
        unauthorized(&fake),
        1,
        "only the first, credential-less request"
    );

    fake.with(|s| {
        s.valid_tokens.clear();
        s.valid_tokens.insert("external-2".to_owned());
    });
    assert_eq!(reg.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!((provider.calls(), unauthorized(&fake)), (2, 2));
    assert_eq!(
        fake.with(|s| s.tokens_issued),
        0,
        "the token server is not used"
    );
}
