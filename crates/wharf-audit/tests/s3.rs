#![allow(clippy::unwrap_used)]
//! [`S3Store`] against moto's S3 with Object Lock (`WHARF_TEST_MOTO`, set by `cargo xtask
//! test`). Each test uses buckets of its own, so tests share one moto and run in parallel.
//!
//! moto's gaps (TESTBED.md): retention can be shortened and `GetObjectRetention` is missing,
//! so locks are checked with HEAD; deletes of locked versions and `If-None-Match: *` behave
//! as S3 does.

#[cfg(not(feature = "s3"))]
#[test]
fn s3_tests_need_the_s3_feature() {
    panic!("these tests need `--features s3`: run them with `cargo xtask test`");
}

#[cfg(feature = "s3")]
mod s3 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use aws_sdk_s3::Client;
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHoldStatus,
        ObjectLockMode, ObjectLockRetentionMode, ObjectLockRule,
    };
    use wharf_audit::s3::{RetentionPolicy, S3Store};
    use wharf_audit::{WormLog, WormStore, record_key};
    use wharf_core::audit::{AppendOptions, ChainProblem, VerifyRange};
    use wharf_core::conformance::run_record;
    use wharf_core::memory::HmacSigner;
    use wharf_core::{AuditLog, ErrorKind};

    /// The AWS secret key the tests sign with: must never show in output.
    const SECRET_KEY_CANARY: &str = "wharf-canary-s3-secret-Pw47Qe";

    fn moto() -> String {
        std::env::var("WHARF_TEST_MOTO").unwrap_or_else(|_| {
            panic!(
                "WHARF_TEST_MOTO is not set: run the tests with `cargo xtask test`, or start the \
                 backends with `cargo xtask backends up` and `eval \"$(cargo xtask backends env)\"` first"
            )
        })
    }

    fn client() -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDWHARFTEST",
                SECRET_KEY_CANARY,
                None,
                None,
                "test",
            ))
            .endpoint_url(moto())
            .force_path_style(true)
            .build();
        Client::from_conf(config)
    }

    /// A fresh bucket name for this test.
    fn bucket(name: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        format!(
            "wharf-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn locked_bucket(client: &Client, name: &str, default_days: Option<i32>) -> String {
        let b = bucket(name);
        client
            .create_bucket()
            .bucket(&b)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .unwrap();
        if let Some(days) = default_days {
            client
                .put_object_lock_configuration()
                .bucket(&b)
                .object_lock_configuration(
                    ObjectLockConfiguration::builder()
                        .object_lock_enabled(ObjectLockEnabled::Enabled)
                        .rule(
                            ObjectLockRule::builder()
                                .default_retention(
                                    DefaultRetention::builder()
                                        .mode(ObjectLockRetentionMode::Compliance)
                                        .days(days)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        b
    }

    async fn log_on(client: &Client, bucket: &str, policy: RetentionPolicy) -> WormLog<S3Store> {
        WormLog::new(
            S3Store::connect(client.clone(), bucket, "audit", policy)
                .await
                .unwrap(),
        )
    }

    async fn append_n(log: &impl AuditLog, from: usize, n: usize) {
        for i in from..from + n {
            log.append(&run_record(&format!("run-{i}")), &AppendOptions::default())
                .await
                .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn conforms_on_a_locked_bucket() {
        let c = client();
        let b = locked_bucket(&c, "conform", None).await;
        let log = log_on(&c, &b, RetentionPolicy::default()).await;
        wharf_core::conformance::audit_log(&log).await;
        let head = log.head().await.unwrap().unwrap();
        assert!(
            head.location
                .starts_with(&format!("s3://{b}/audit/records/")),
            "{}",
            head.location
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn records_are_locked_in_compliance_mode_and_cannot_be_deleted() {
        let c = client();
        let b = locked_bucket(&c, "locked", None).await;
        let log = log_on(&c, &b, RetentionPolicy::default().with_legal_hold()).await;
        append_n(&log, 0, 2).await;
        let key = format!("audit/{}", record_key(1));
        let head = c.head_object().bucket(&b).key(&key).send().await.unwrap();
        assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
        assert_eq!(
            head.object_lock_legal_hold_status(),
            Some(&ObjectLockLegalHoldStatus::On)
        );
        let until = head.object_lock_retain_until_date().unwrap().secs();
        let in_seven_years = time::OffsetDateTime::now_utc().unix_timestamp() + 7 * 365 * 86_400;
        assert!(
            until >= in_seven_years,
            "retained until {until}, not 7 years"
        );
        // Deleting the locked version is refused by the store.
        let version = head.version_id().unwrap().to_owned();
        let err = c
            .delete_object()
            .bucket(&b)
            .key(&key)
            .version_id(&version)
            .send()
            .await
            .unwrap_err();
        let text = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err));
        assert!(text.contains("AccessDenied"), "{text}");
        assert!(
            log.verify_with(&VerifyRange::default(), None)
                .await
                .unwrap()
                .is_intact()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_altered_copy_uploaded_as_a_new_version_is_named() {
        let c = client();
        let b = locked_bucket(&c, "newversion", None).await;
        let log = log_on(&c, &b, RetentionPolicy::compliance_days(1)).await;
        append_n(&log, 0, 4).await;
        let key = format!("audit/{}", record_key(2));
        let original = log.store().get(&record_key(2)).await.unwrap().unwrap();
        let altered = String::from_utf8(original.to_vec())
            .unwrap()
            .replace("run-2", "run-Z");
        // An attacker with s3:PutObject (no If-None-Match) adds a version on top.
        c.put_object()
            .bucket(&b)
            .key(&key)
            .body(ByteStream::from(altered.into_bytes()))
            .send()
            .await
            .unwrap();
        let report = log
            .verify_with(&VerifyRange::default(), None)
            .await
            .unwrap();
        assert!(
            report
                .problems
                .contains(&ChainProblem::HashMismatch { sequence: 2 }),
            "{report}"
        );
        assert!(
            report.problems.contains(&ChainProblem::Overwritten {
                sequence: 2,
                versions: 2
            }),
            "{report}"
        );
        // The locked original is still there, for the auditor to recover.
        let versions = c
            .list_object_versions()
            .bucket(&b)
            .prefix(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(versions.versions().len(), 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_delete_marker_shows_as_a_missing_record() {
        let c = client();
        let b = locked_bucket(&c, "deletemarker", None).await;
        let log = log_on(&c, &b, RetentionPolicy::compliance_days(1)).await;
        append_n(&log, 0, 3).await;
        // A delete without a version id is allowed on a locked bucket: it hides the record.
        c.delete_object()
            .bucket(&b)
            .key(format!("audit/{}", record_key(1)))
            .send()
            .await
            .unwrap();
        let report = log
            .verify_with(&VerifyRange::default(), None)
            .await
            .unwrap();
        assert_eq!(
            report.problems,
            [ChainProblem::Gap { first: 1, last: 1 }],
            "{report}"
        );
    }

    /// A delete marker on the newest record: the next append (a fresh writer, which learns
    /// the head by listing) sees the signed checkpoint beyond it and refuses to reuse the
    /// sequence. The checkpoint is found by a listing that starts after the head's key.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_append_after_a_hidden_newest_record_is_refused() {
        let c = client();
        let b = locked_bucket(&c, "hiddenhead", None).await;
        let signer = Arc::new(HmacSigner::new(b"k"));
        let log = log_on(&c, &b, RetentionPolicy::compliance_days(1))
            .await
            .with_signer(signer.clone())
            .checkpoint_every(1);
        append_n(&log, 0, 3).await;
        assert_eq!(
            log.store()
                .list_after("checkpoints/", "checkpoints/000000000000.json")
                .await
                .unwrap(),
            [
                "checkpoints/000000000001.json",
                "checkpoints/000000000002.json"
            ]
        );
        c.delete_object()
            .bucket(&b)
            .key(format!("audit/{}", record_key(2)))
            .send()
            .await
            .unwrap();
        let fresh = log_on(&c, &b, RetentionPolicy::compliance_days(1))
            .await
            .with_signer(signer)
            .checkpoint_every(1);
        let err = fresh
            .append(&run_record("run-after"), &AppendOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity);
        assert!(
            err.to_string().contains("a checkpoint for record 2 exists")
                && err.to_string().contains(&format!("s3://{b}/audit/")),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_bucket_without_object_lock_is_refused() {
        let c = client();
        let b = bucket("nolock");
        c.create_bucket().bucket(&b).send().await.unwrap();
        let err = S3Store::connect(c.clone(), &b, "", RetentionPolicy::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        let text = err.to_string();
        assert!(
            text.contains(&format!("s3://{b} does not have Object Lock enabled")),
            "{text}"
        );
        assert!(!text.contains(SECRET_KEY_CANARY));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_bucket_with_a_shorter_default_retention_is_refused() {
        let c = client();
        let b = locked_bucket(&c, "short", Some(30)).await;
        let err = S3Store::connect(c.clone(), &b, "", RetentionPolicy::default())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "(30 days, COMPLIANCE) is shorter than the configured audit retention (2557 days)"
            ),
            "{text}"
        );
        // A policy within the bucket's default is accepted.
        S3Store::connect(c.clone(), &b, "", RetentionPolicy::compliance_days(30))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_bucket_is_a_clear_error_without_secrets() {
        let c = client();
        let err = S3Store::connect(c, "wharf-no-such-bucket", "", RetentionPolicy::default())
            .await
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("s3://wharf-no-such-bucket"), "{text}");
        assert!(!text.contains(SECRET_KEY_CANARY), "{text}");
        let store_debug = format!("{:?}", client());
        assert!(!store_debug.contains(SECRET_KEY_CANARY));
    }

    /// Writers racing through conditional creates make one chain: each lost race is a 412
    /// from the store, and the loser appends after the winner.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_writers_make_one_chain() {
        let c = client();
        let b = locked_bucket(&c, "race", None).await;
        let key = Arc::new(HmacSigner::new(b"k"));
        let mut logs = Vec::new();
        for _ in 0..4 {
            logs.push(
                log_on(&c, &b, RetentionPolicy::compliance_days(1))
                    .await
                    .with_signer(key.clone())
                    .checkpoint_every(10),
            );
        }
        let writers: Vec<&dyn AuditLog> = logs.iter().map(|l| l as &dyn AuditLog).collect();
        wharf_core::conformance::audit_log_writers(&writers, 25).await;
        let log = log_on(&c, &b, RetentionPolicy::compliance_days(1)).await;
        let report = log
            .verify_with(&VerifyRange::default(), Some(key.as_ref()))
            .await
            .unwrap();
        assert!(report.is_intact(), "{report}");
        assert_eq!(report.checked, 100);
        assert_eq!(report.checkpoints_verified, 10);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_second_create_of_a_key_is_refused_by_the_store() {
        let c = client();
        let b = locked_bucket(&c, "ifnonematch", None).await;
        let store = S3Store::connect(c, &b, "p/", RetentionPolicy::compliance_days(1))
            .await
            .unwrap();
        use wharf_audit::Created;
        assert_eq!(
            store.create("k", "one".into()).await.unwrap(),
            Created::Stored
        );
        assert_eq!(
            store.create("k", "two".into()).await.unwrap(),
            Created::Exists
        );
        assert_eq!(store.get("k").await.unwrap().unwrap(), "one");
        assert_eq!(store.list("").await.unwrap(), ["k"]);
    }
}
