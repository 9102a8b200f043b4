#![cfg(feature = "ecr")]
#![allow(clippy::unwrap_used)]
//! `wharf_registry::ecr` against moto's ECR control plane (`WHARF_TEST_MOTO`, set by
//! `cargo xtask test`). Each test works in repositories of its own, so the tests can share one
//! moto and run in parallel.
//!
//! moto's gaps (TESTBED.md) shape some tests: its authorization tokens expire on 2015-01-01,
//! so the token cache is tested with the client's time source set to the day before; it has no
//! `/v2/` registry API, so the client [`Ecr::registry`] builds is pointed at the integration
//! tests' fake registry (its `GetAuthorizationToken` answer rewritten to name the fake).

#[allow(dead_code, unreachable_pub)]
#[path = "it/support/server.rs"]
mod server;

#[allow(dead_code, unreachable_pub)]
#[path = "it/support/fake.rs"]
mod fake;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::future;
use aws_sdk_ecr::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextMut,
};
use aws_sdk_ecr::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, ProvideCredentials, Region,
    RuntimeComponents,
};
use aws_sdk_ecr::error::BoxError;
use aws_sdk_ecr::operation::get_authorization_token::GetAuthorizationTokenOutput;
use aws_sdk_ecr::primitives::DateTime;
use aws_sdk_ecr::types::{AuthorizationData, ImageIdentifier, ImageTagMutability};
use aws_smithy_async::time::TimeSource;
use base64::Engine as _;
use wharf_core::Registry;
use wharf_core::registry::ManifestBytes;
use wharf_core::{Digest, ErrorKind};
use wharf_registry::RegistryError;
use wharf_registry::distribution::CredentialsProvider;
use wharf_registry::ecr::{
    Ecr, REFRESH_MARGIN, RepositoryChange, RepositorySettings, SIGNATURE_TAG_FILTER, TagMutability,
};

/// The AWS secret access key the tests sign with: must never show in output.
const SECRET_KEY_CANARY: &str = "wharf-canary-aws-secret-Zq81vX";
/// An ECR registry password slipped into a `GetAuthorizationToken` answer: must never show.
const PASSWORD_CANARY: &str = "wharf-canary-ecr-password-Kd93Lm";
/// When moto's authorization tokens expire: 2015-01-01T00:00:00Z.
const MOTO_TOKEN_EXPIRY: u64 = 1_420_070_400;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// moto's address; a missing one fails the test, saying how to get it.
fn moto() -> String {
    std::env::var("WHARF_TEST_MOTO").unwrap_or_else(|_| {
        panic!(
            "WHARF_TEST_MOTO is not set: run the tests with `cargo xtask test`, or start the \
             backends with `cargo xtask backends up` and `eval \"$(cargo xtask backends env)\"` first"
        )
    })
}

/// A repository name no other test (or earlier run against the same moto) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("wharf-test/{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// An SDK config for `endpoint` in us-east-1 with static test credentials.
fn config(endpoint: &str) -> aws_sdk_ecr::config::Builder {
    aws_sdk_ecr::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDWHARFTEST",
            SECRET_KEY_CANARY,
            None,
            None,
            "wharf-test",
        ))
        .endpoint_url(endpoint)
}

/// An [`Ecr`] on moto, and a raw SDK client to arrange and inspect state with.
fn ecr() -> (Ecr, aws_sdk_ecr::Client) {
    let client = aws_sdk_ecr::Client::from_conf(config(&moto()).build());
    (Ecr::from_client(client.clone()), client)
}

/// A test clock: seconds since the epoch, settable.
#[derive(Debug, Clone)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn at(secs: u64) -> Self {
        Self(Arc::new(AtomicU64::new(secs)))
    }
    fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }
}

impl TimeSource for Clock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// Records the ECR operation of every request sent (from its `X-Amz-Target` header).
#[derive(Debug, Default, Clone)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn count(&self, operation: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|o| *o == operation)
            .count()
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("");
        let operation = target.rsplit('.').next().unwrap_or(target);
        self.0.lock().unwrap().push(operation.to_owned());
        Ok(())
    }
}

/// Replaces moto's `GetAuthorizationToken` answer with one carrying [`PASSWORD_CANARY`], valid
/// for 12 hours by the system clock.
#[derive(Debug)]
struct CanaryToken;

impl Intercept for CanaryToken {
    fn name(&self) -> &'static str {
        "CanaryToken"
    }

    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Ok(output)) = context.output_or_error_mut()
            && let Some(out) = output.downcast_mut::<GetAuthorizationTokenOutput>()
        {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("AWS:{PASSWORD_CANARY}"));
            let expires = SystemTime::now() + Duration::from_secs(12 * 3600);
            *out = GetAuthorizationTokenOutput::builder()
                .authorization_data(
                    AuthorizationData::builder()
                        .authorization_token(token)
                        .proxy_endpoint("https://123456789012.dkr.ecr.us-east-1.amazonaws.com")
                        .expires_at(DateTime::from(expires))
                        .build(),
                )
                .build();
        }
        Ok(())
    }
}

/// An OCI image manifest whose one layer is named after `seed`.
fn manifest(seed: &str) -> ManifestBytes {
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(seed.as_bytes());
    let json = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
        seed.len()
    );
    ManifestBytes::new(OCI_MANIFEST, json.into_bytes())
}

/// The manifest text `repo:tag` holds in moto.
async fn stored(client: &aws_sdk_ecr::Client, repo: &str, tag: &str) -> String {
    let out = client
        .batch_get_image()
        .repository_name(repo)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await
        .unwrap();
    assert_eq!(out.images().len(), 1, "{repo}:{tag}: {out:?}");
    out.images()[0].image_manifest().unwrap().to_owned()
}

/// A loopback port nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn creates_an_immutable_repository_with_signature_exclusion_and_scan_on_push() {
    let (ecr, client) = ecr();
    let name = unique("create");
    let settings = RepositorySettings::default();
    assert_eq!(
        settings.tag_mutability,
        TagMutability::ImmutableWithExclusion(vec![SIGNATURE_TAG_FILTER.to_owned()])
    );
    assert!(settings.scan_on_push);

    let repo = ecr.ensure_repository(&name, &settings).await.unwrap();
    assert_eq!(repo.changes, vec![RepositoryChange::Created]);
    assert_eq!(repo.name, name);
    assert!(repo.uri.ends_with(&format!("/{name}")), "{}", repo.uri);
    assert!(!repo.registry_id.is_empty());
    assert_eq!(repo.tag_mutability, settings.tag_mutability);
    assert!(repo.scan_on_push);

    let described = client
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .unwrap();
    let r = &described.repositories()[0];
    assert_eq!(
        r.image_tag_mutability(),
        Some(&ImageTagMutability::ImmutableWithExclusion)
    );
    let filters: Vec<_> = r
        .image_tag_mutability_exclusion_filters()
        .iter()
        .map(|f| (f.filter_type().as_str().to_owned(), f.filter().to_owned()))
        .collect();
    assert_eq!(filters, [("WILDCARD".to_owned(), "sha256-*".to_owned())]);
    assert!(r.image_scanning_configuration().unwrap().scan_on_push());

    // A second call finds everything in place and changes nothing.
    let again = ecr.ensure_repository(&name, &settings).await.unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(
        (again.uri, again.registry_id, again.tag_mutability),
        (repo.uri, repo.registry_id, repo.tag_mutability)
    );
}

#[tokio::test]
async fn a_mutable_repository_made_elsewhere_is_brought_to_the_policy() {
    let calls = Calls::default();
    let client = aws_sdk_ecr::Client::from_conf(config(&moto()).interceptor(calls.clone()).build());
    let ecr = Ecr::from_client(client.clone());
    let name = unique("switch");
    client
        .create_repository()
        .repository_name(&name)
        .image_tag_mutability(ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();

    let settings = RepositorySettings::default();
    let repo = ecr.ensure_repository(&name, &settings).await.unwrap();
    assert_eq!(
        repo.changes,
        vec![
            RepositoryChange::TagMutability {
                from: Some(TagMutability::Mutable),
                to: settings.tag_mutability.clone(),
            },
            RepositoryChange::ScanOnPush {
                from: false,
                to: true
            },
        ]
    );
    assert_eq!(
        repo.changes[0].to_string(),
        "tag mutability changed from MUTABLE to IMMUTABLE_WITH_EXCLUSION (sha256-*)"
    );
    let described = client
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .unwrap();
    let r = &described.repositories()[0];
    assert_eq!(
        r.image_tag_mutability(),
        Some(&ImageTagMutability::ImmutableWithExclusion)
    );
    assert_eq!(
        r.image_tag_mutability_exclusion_filters()[0].filter(),
        "sha256-*"
    );
    assert!(r.image_scanning_configuration().unwrap().scan_on_push());

    // Now in place: no update is sent.
    let updates = calls.count("PutImageTagMutability");
    assert!(
        ecr.ensure_repository(&name, &settings)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
    assert_eq!(calls.count("PutImageTagMutability"), updates);
    assert_eq!(calls.count("PutImageScanningConfiguration"), 1);

    // A stricter policy drops the exclusion filters.
    let strict = RepositorySettings::default().with_tag_mutability(TagMutability::Immutable);
    let repo = ecr.ensure_repository(&name, &strict).await.unwrap();
    assert_eq!(
        repo.changes,
        vec![RepositoryChange::TagMutability {
            from: Some(settings.tag_mutability),
            to: TagMutability::Immutable,
        }]
    );
    let described = client
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .unwrap();
    let r = &described.repositories()[0];
    assert_eq!(
        r.image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    assert!(r.image_tag_mutability_exclusion_filters().is_empty());
}

#[tokio::test]
async fn invalid_settings_fail_before_any_call() {
    let calls = Calls::default();
    let client = aws_sdk_ecr::Client::from_conf(config(&moto()).interceptor(calls.clone()).build());
    let ecr = Ecr::from_client(client);
    let name = unique("invalid");
    let bad = RepositorySettings::default().with_tag_mutability(
        TagMutability::ImmutableWithExclusion(vec!["v1.(.*)".into()]),
    );
    let err = ecr.ensure_repository(&name, &bad).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    assert!(calls.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn authorization_is_decoded_cached_and_refreshed_before_expiry() {
    let calls = Calls::default();
    // moto's tokens expire on 2015-01-01: start the clock a day before.
    let clock = Clock::at(MOTO_TOKEN_EXPIRY - 24 * 3600);
    let client = aws_sdk_ecr::Client::from_conf(
        config(&moto())
            .interceptor(calls.clone())
            .time_source(clock.clone())
            .build(),
    );
    let ecr = Ecr::from_client(client);

    let auth = ecr.authorization().await.unwrap();
    assert_eq!(auth.username, "AWS");
    assert!(!auth.password.is_empty());
    assert!(
        auth.endpoint.starts_with("https://") && auth.endpoint.contains(".dkr.ecr.us-east-1."),
        "{}",
        auth.endpoint
    );
    assert_eq!(
        auth.expires_at,
        SystemTime::UNIX_EPOCH + Duration::from_secs(MOTO_TOKEN_EXPIRY)
    );
    assert_eq!(calls.count("GetAuthorizationToken"), 1);

    // Within the validity: served from the cache.
    assert_eq!(ecr.authorization().await.unwrap(), auth);
    clock.set(MOTO_TOKEN_EXPIRY - REFRESH_MARGIN.as_secs() - 60);
    assert_eq!(ecr.authorization().await.unwrap(), auth);
    assert_eq!(calls.count("GetAuthorizationToken"), 1);

    // Less than the margin left: fetched anew.
    clock.set(MOTO_TOKEN_EXPIRY - REFRESH_MARGIN.as_secs() + 60);
    ecr.authorization().await.unwrap();
    assert_eq!(calls.count("GetAuthorizationToken"), 2);
    // Expired: fetched anew.
    clock.set(MOTO_TOKEN_EXPIRY + 3600);
    ecr.authorization().await.unwrap();
    assert_eq!(calls.count("GetAuthorizationToken"), 3);

    // A distribution client for the registry endpoint, built without a request even while
    // the cached token is expired: the client asks for credentials when it needs them.
    let registry = ecr.registry().await.unwrap();
    assert_eq!(registry.host(), auth.registry_host());
    ecr.registry().await.unwrap();
    assert_eq!(calls.count("GetAuthorizationToken"), 3);

    // What the client gets: the cached credentials while fresh, to be used until the margin
    // before their expiry by the SDK client's clock…
    clock.set(MOTO_TOKEN_EXPIRY - 3600);
    let provided = ecr.credentials().await.unwrap();
    assert_eq!(
        provided.credentials,
        ecr.authorization().await.unwrap().credentials()
    );
    assert_eq!(
        provided.valid_for,
        Some(Duration::from_secs(3600) - REFRESH_MARGIN)
    );
    assert_eq!(calls.count("GetAuthorizationToken"), 3);
    // …and new ones once within the margin (moto's expire at once: used for one request).
    clock.set(MOTO_TOKEN_EXPIRY - 60);
    let provided = ecr.credentials().await.unwrap();
    assert_eq!(provided.valid_for, Some(Duration::ZERO));
    assert_eq!(calls.count("GetAuthorizationToken"), 4);
    assert!(!format!("{provided:?}").contains(provided_password(&provided)));
}

/// The password of Basic provided credentials.
fn provided_password(p: &wharf_registry::distribution::ProvidedCredentials) -> &str {
    match &p.credentials {
        wharf_registry::distribution::Credentials::Basic { password, .. } => password.expose(),
        other => panic!("expected Basic credentials, got {other:?}"),
    }
}

/// Replaces moto's `GetAuthorizationToken` answers with tokens for the fake registry at
/// `endpoint`: `AWS:ecr-pw-<n>` for the n-th call, usable for `usable_for` (expiring that
/// long after [`REFRESH_MARGIN`] from now, by the system clock).
#[derive(Debug)]
struct FakeRegistryTokens {
    endpoint: String,
    usable_for: Duration,
    issued: AtomicUsize,
}

impl Intercept for FakeRegistryTokens {
    fn name(&self) -> &'static str {
        "FakeRegistryTokens"
    }

    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Ok(output)) = context.output_or_error_mut()
            && let Some(out) = output.downcast_mut::<GetAuthorizationTokenOutput>()
        {
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:ecr-pw-{n}"));
            let expires = SystemTime::now() + REFRESH_MARGIN + self.usable_for;
            *out = GetAuthorizationTokenOutput::builder()
                .authorization_data(
                    AuthorizationData::builder()
                        .authorization_token(token)
                        .proxy_endpoint(&self.endpoint)
                        .expires_at(DateTime::from(expires))
                        .build(),
                )
                .build();
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_registry_client_asks_for_credentials_when_it_needs_them_and_renews_them() {
    use fake::{BasicAuth, Fake, Faults};
    let usable_for = Duration::from_secs(2);
    let wait = usable_for + Duration::from_millis(400);
    let fake = Fake::start(Faults {
        basic: Some(BasicAuth::new(
            "AWS",
            &[("ecr-pw-1", None), ("ecr-pw-2", None), ("ecr-pw-3", None)],
        )),
        ..Faults::default()
    })
    .await;
    let calls = Calls::default();
    let client = aws_sdk_ecr::Client::from_conf(
        config(&moto())
            .interceptor(calls.clone())
            .interceptor(FakeRegistryTokens {
                endpoint: format!("http://{}", fake.url()),
                usable_for,
                issued: AtomicUsize::new(0),
            })
            .build(),
    );
    let ecr = Ecr::from_client(client);
    let auths = || calls.count("GetAuthorizationToken");
    let accepted = || fake.with(|s| s.basic_accepted.clone());
    let refused = || fake.log().iter().filter(|l| l.ends_with("-> 401")).count();
    let d = Digest::sha256_of(b"nothing");

    // The first client: one authorization tells the endpoint, and serves the requests.
    let registry = ecr.registry().await.unwrap();
    assert_eq!(registry.host(), fake.url());
    assert_eq!(auths(), 1);
    for _ in 0..3 {
        assert_eq!(registry.blob_exists("r", &d).await.unwrap(), None);
    }
    assert_eq!(auths(), 1, "no authorization per request");
    assert_eq!(accepted(), ["ecr-pw-1"; 3]);
    assert_eq!(refused(), 1, "the registry's challenge");

    // Past the refresh margin the same client gets a new token before its next request (ECR
    // refuses an expired one with 403, so a 401 would never come).
    tokio::time::sleep(wait).await;
    fake.with(|s| s.faults.basic.as_mut().unwrap().revoke("ecr-pw-1"));
    assert_eq!(registry.blob_exists("r", &d).await.unwrap(), None);
    assert_eq!(auths(), 2);
    assert_eq!(accepted().last().map(String::as_str), Some("ecr-pw-2"));
    assert_eq!(refused(), 1);

    // Another client, built while the cached token is due for renewal: no request until it
    // needs credentials.
    tokio::time::sleep(wait).await;
    let second = ecr.registry().await.unwrap();
    assert_eq!(auths(), 2, "registry() does not renew the token");
    second.ping().await.unwrap();
    assert_eq!(auths(), 3);
    assert_eq!(accepted().last().map(String::as_str), Some("ecr-pw-3"));
    assert!(!format!("{second:?}").contains("ecr-pw-"), "{second:?}");
}

#[tokio::test]
async fn put_image_is_idempotent_and_immutable_tags_refuse_other_content() {
    let (ecr, client) = ecr();
    let repo = unique("push");
    ecr.ensure_repository(&repo, &RepositorySettings::default())
        .await
        .unwrap();
    let a = manifest(&format!("{repo} a"));
    let b = manifest(&format!("{repo} b"));
    let tag = "3f2a9c1";

    let first = ecr.put_image(&repo, tag, &a).await.unwrap();
    assert!(first.created);
    assert_eq!(first.digest, a.descriptor.digest);
    assert_eq!(
        (first.repository.as_str(), first.tag.as_str()),
        (repo.as_str(), tag)
    );
    let second = ecr.put_image(&repo, tag, &a).await.unwrap();
    assert!(!second.created, "the same bytes again are a no-op");
    assert_eq!(second.digest, a.descriptor.digest);

    let err = ecr.put_image(&repo, tag, &b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    match &err {
        RegistryError::ImmutableTag {
            repo: r,
            tag: t,
            existing,
        } => {
            assert_eq!((r.as_str(), t.as_str()), (repo.as_str(), tag));
            assert_eq!(existing, &a.descriptor.digest.to_string());
        }
        other => panic!("expected ImmutableTag, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&repo) && message.contains(tag),
        "{message}"
    );
    assert!(!message.contains('\n'));
    assert_eq!(
        stored(&client, &repo, tag).await.as_bytes(),
        a.bytes.as_ref()
    );

    // The same content under a second tag is fine.
    assert!(ecr.put_image(&repo, "v1.0.0", &a).await.unwrap().created);

    // Two pushes of the same content racing for a new tag both succeed; one created it.
    let c = manifest(&format!("{repo} c"));
    let (x, y) = tokio::join!(
        ecr.put_image(&repo, "race", &c),
        ecr.put_image(&repo, "race", &c)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert!(x.created != y.created, "{x:?} {y:?}");
}

#[tokio::test]
async fn signature_tags_stay_writable_in_an_immutable_repository() {
    let (ecr, client) = ecr();
    let repo = unique("sig");
    ecr.ensure_repository(&repo, &RepositorySettings::default())
        .await
        .unwrap();
    let image = manifest(&format!("{repo} image"));
    ecr.put_image(&repo, "3f2a9c1", &image).await.unwrap();
    let sig_tag = format!("sha256-{}.sig", image.descriptor.digest.hex());
    let one_signature = manifest(&format!("{repo} signature 1"));
    let two_signatures = manifest(&format!("{repo} signatures 1 and 2"));

    assert!(
        ecr.put_image(&repo, &sig_tag, &one_signature)
            .await
            .unwrap()
            .created
    );
    let moved = ecr
        .put_image(&repo, &sig_tag, &two_signatures)
        .await
        .unwrap();
    assert!(moved.created);
    assert_eq!(moved.digest, two_signatures.descriptor.digest);
    assert_eq!(
        stored(&client, &repo, &sig_tag).await.as_bytes(),
        two_signatures.bytes.as_ref()
    );
    assert!(
        !ecr.put_image(&repo, &sig_tag, &two_signatures)
            .await
            .unwrap()
            .created
    );
}

#[tokio::test]
async fn a_missing_repository_is_not_found_and_named() {
    let (ecr, _) = ecr();
    let repo = unique("missing");
    let err = ecr
        .put_image(&repo, "3f2a9c1", &manifest("x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let message = err.to_string();
    assert!(message.contains(&repo), "{message}");
    assert!(message.contains("ensure_repository"), "{message}");
    assert!(message.contains("RepositoryNotFoundException"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    // Through the core error type too.
    let core: wharf_core::Error = err.into();
    assert_eq!(core.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient_on_one_line() {
    let endpoint = closed_port();
    let ecr = Ecr::from_client(aws_sdk_ecr::Client::from_conf(config(&endpoint).build()));
    let err = ecr.authorization().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.kind().is_retryable());
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("GetAuthorizationToken"), "{message}");
    assert!(message.contains("reachable"), "{message}");

    let repo = unique("down");
    let err = ecr
        .ensure_repository(&repo, &RepositorySettings::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.to_string().contains(&repo), "{err}");
}

/// A credentials provider that finds none, as the default chain does on a bare machine.
#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "no profile, environment variables or web identity token",
        )))
    }
}

#[tokio::test]
async fn missing_aws_credentials_are_unauthenticated() {
    let client =
        aws_sdk_ecr::Client::from_conf(config(&moto()).credentials_provider(NoCredentials).build());
    let err = Ecr::from_client(client).authorization().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(
        err.to_string().contains("renew the AWS credentials"),
        "{err}"
    );
}

#[tokio::test]
async fn secrets_never_reach_debug_output_or_errors() {
    fn assert_clean(what: &str, text: &str) {
        for canary in [SECRET_KEY_CANARY, PASSWORD_CANARY] {
            assert!(!text.contains(canary), "{what} shows a secret: {text}");
        }
    }

    // The registry password arrives through a real GetAuthorizationToken round trip.
    let client = aws_sdk_ecr::Client::from_conf(config(&moto()).interceptor(CanaryToken).build());
    let ecr = Ecr::from_client(client);
    let auth = ecr.authorization().await.unwrap();
    assert_eq!(
        auth.password.expose(),
        PASSWORD_CANARY,
        "the canary must be in use"
    );
    assert_clean("EcrAuth", &format!("{auth:?}"));
    assert_clean("Ecr with a cached token", &format!("{ecr:?}"));
    assert!(format!("{ecr:?}").contains("us-east-1"));
    let registry = ecr.registry().await.unwrap();
    assert_clean("DistributionClient", &format!("{registry:?}"));

    // Errors from the service and from a dead endpoint, signed with the canary secret key.
    let repo = unique("canary");
    let err = ecr
        .put_image(&repo, "3f2a9c1", &manifest("x"))
        .await
        .unwrap_err();
    assert_clean("a service error", &format!("{err} {err:?}"));
    let down = Ecr::from_client(aws_sdk_ecr::Client::from_conf(
        config(&closed_port()).build(),
    ));
    for err in [
        down.authorization().await.unwrap_err(),
        down.registry().await.unwrap_err(),
        down.ensure_repository(&repo, &RepositorySettings::default())
            .await
            .unwrap_err(),
    ] {
        assert_clean("a connection error", &format!("{err} {err:?}"));
        let core: wharf_core::Error = err.into();
        assert_clean("a core error", &format!("{core} {core:?}"));
    }
    assert_clean("Ecr", &format!("{down:?}"));
}
