#![allow(clippy::unwrap_used)]
//! [`ObjectStoreStore`](wharf_audit::ObjectStoreStore): the conformance suite on object_store's
//! memory and local-file stores and on Azurite (Azure Blob Storage), concurrent writers on
//! one container, an object overwritten behind the log's back, and the errors.
//!
//! They need wharf-audit's `azure` feature (`cargo xtask test` enables it) and Azurite
//! (`cargo xtask test` starts it; `WHARF_TEST_AZURITE`).

/// Without the feature these tests cannot compile: fail, rather than pass having run nothing.
#[cfg(not(feature = "azure"))]
#[test]
fn needs_the_azure_feature() {
    panic!(
        "tests/object_store.rs needs wharf-audit's `azure` feature: run `cargo xtask test`, or \
         `cargo test -p wharf-audit --features azure --test object_store`"
    );
}

#[cfg(feature = "azure")]
mod stores {
    use std::fmt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime};

    use async_trait::async_trait;
    use base64::Engine as _;
    use bytes::Bytes;
    use futures_util::stream::BoxStream;
    use object_store::azure::MicrosoftAzureBuilder;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        ObjectStoreExt as _, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };
    use wharf_audit::{Created, ObjectStoreStore, WormLog, WormStore, record_key};
    use wharf_core::audit::{AppendOptions, ChainProblem, VerifyRange};
    use wharf_core::conformance::run_record;
    use wharf_core::sign::SignOptions;
    use wharf_core::sign::Signer as _;
    use wharf_core::{AuditLog, ErrorKind};

    /// Azurite's development account and its published key.
    const ACCOUNT: &str = "devstoreaccount1";
    const ACCOUNT_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// Azurite's address; a missing one fails the test, saying how to get it.
    fn azurite() -> String {
        std::env::var("WHARF_TEST_AZURITE").unwrap_or_else(|_| {
            panic!(
                "WHARF_TEST_AZURITE is not set: run the tests with `cargo xtask test`, or start \
                 the backends with `cargo xtask backends up` and \
                 `eval \"$(cargo xtask backends env)\"` first"
            )
        })
    }

    /// A container name no other test (or earlier run against the same Azurite) uses.
    fn unique_container() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("wharf-{}-{nanos}-{n}", std::process::id())
    }

    /// Create `container` in Azurite. object_store cannot create containers, and Azurite
    /// refuses unsigned requests, so this is Create Container signed with the account key
    /// (Shared Key: HMAC-SHA256 over the canonical request, here through wharf-core's
    /// HMAC signer).
    async fn create_container(container: &str) {
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] \
                 [hour]:[minute]:[second] GMT"
            ))
            .unwrap();
        let version = "2021-08-06";
        // Verb, eleven empty standard headers, the x-ms- headers, then the resource; the
        // emulator's path-style URLs name the account twice.
        let to_sign = format!(
            "PUT\n{}x-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{container}\n\
             restype:container",
            "\n".repeat(11)
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(ACCOUNT_KEY)
            .unwrap();
        let mac = wharf_core::memory::HmacSigner::new(&key)
            .sign(to_sign.as_bytes(), &SignOptions::default())
            .await
            .unwrap()
            .bytes;
        let signature = base64::engine::general_purpose::STANDARD.encode(mac);
        let response = reqwest::Client::new()
            .put(format!(
                "{}/{ACCOUNT}/{container}?restype=container",
                azurite()
            ))
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header("authorization", format!("SharedKey {ACCOUNT}:{signature}"))
            .body("")
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            status.as_u16(),
            201,
            "creating container {container}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// object_store's Azure client for `container` in Azurite.
    fn azurite_object_store(container: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            MicrosoftAzureBuilder::new()
                .with_account(ACCOUNT)
                .with_access_key(ACCOUNT_KEY)
                .with_allow_http(true)
                // Not `with_use_emulator`: it ignores the endpoint (object_store 0.14.2).
                .with_endpoint(format!("{}/{ACCOUNT}", azurite()))
                .with_container_name(container)
                .build()
                .unwrap(),
        )
    }

    /// A fresh container in Azurite, as an audit store under `audit/`.
    async fn azurite_store() -> (ObjectStoreStore, Arc<dyn ObjectStore>, String) {
        let container = unique_container();
        create_container(&container).await;
        let raw = azurite_object_store(&container);
        let store = ObjectStoreStore::new(raw.clone(), "audit/").unwrap();
        (store, raw, container)
    }

    fn all() -> VerifyRange {
        VerifyRange::default()
    }

    async fn append_n(log: &impl AuditLog, from: usize, n: usize) {
        for i in from..from + n {
            log.append(&run_record(&format!("run-{i}")), &AppendOptions::default())
                .await
                .unwrap();
        }
    }

    /// Create-only, missing keys, and keys listed relative to the prefix, sorted.
    async fn store_basics(store: &ObjectStoreStore) {
        let key = record_key(0);
        assert_eq!(
            store
                .create(&key, Bytes::from_static(b"other"))
                .await
                .unwrap(),
            Created::Exists,
            "{store:?}: a second create of a key is refused"
        );
        assert!(store.get("records/missing.json").await.unwrap().is_none());
        let keys = store.list("records/").await.unwrap();
        // The conformance suite's 11 runs and one other event.
        assert_eq!(keys.len(), 12, "{keys:?}");
        assert_eq!(keys[0], "records/000000000000.json");
        assert!(keys.is_sorted(), "{keys:?}");
        assert_eq!(
            store.list("records/00000000001").await.unwrap(),
            ["records/000000000010.json", "records/000000000011.json"]
        );
        assert!(store.list("checkpoints/").await.unwrap().is_empty());
        assert!(store.list("nothing/here/").await.unwrap().is_empty());
        let first = store.get(&key).await.unwrap().unwrap();
        assert!(first.starts_with(b"{"), "{first:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn conforms_in_memory() {
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = ObjectStoreStore::new(raw.clone(), "audit/").unwrap();
        let log = WormLog::new(store);
        wharf_core::conformance::audit_log(&log).await;
        store_basics(log.store()).await;
        assert_eq!(log.location(1), "InMemory/audit/records/000000000001.json");
        // Everything lives under the prefix.
        let outside = raw.list_with_delimiter(None).await.unwrap().common_prefixes;
        assert_eq!(outside, [Path::from("audit")]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn conforms_on_local_files_from_a_url() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/audit", dir.path().display());
        let store = ObjectStoreStore::from_url(&url, []).unwrap();
        let log = WormLog::new(store);
        wharf_core::conformance::audit_log(&log).await;
        store_basics(log.store()).await;
        let file = dir.path().join("audit").join(record_key(1));
        assert_eq!(log.location(1), format!("file://{}", file.display()));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"sequence\":1"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn conforms_on_azurite_from_a_url() {
        let container = unique_container();
        create_container(&container).await;
        let options = [
            ("azure_storage_account_name", ACCOUNT),
            ("azure_storage_access_key", ACCOUNT_KEY),
            (
                "azure_storage_endpoint",
                &format!("{}/{ACCOUNT}", azurite()),
            ),
            ("azure_allow_http", "true"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let store =
            ObjectStoreStore::from_url(&format!("az://{container}/audit/prod"), options).unwrap();
        assert_eq!(store.prefix(), "audit/prod/");
        let log = WormLog::new(store);
        wharf_core::conformance::audit_log(&log).await;
        store_basics(log.store()).await;
        assert_eq!(
            log.location(1),
            format!("az://{container}/audit/prod/records/000000000001.json")
        );
        // The objects are where the URL says, seen through a second client.
        let raw = azurite_object_store(&container);
        let bytes = raw
            .get(&Path::from("audit/prod/records/000000000001.json"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(bytes.ends_with(b"}\n"));
    }

    /// Four writers, each with its own log and client, on one container: one chain, no gaps.
    #[tokio::test(flavor = "multi_thread")]
    async fn four_writers_on_azurite_make_one_chain() {
        let (_, _, container) = azurite_store().await;
        let logs: Vec<WormLog<ObjectStoreStore>> = (0..4)
            .map(|_| {
                WormLog::new(
                    ObjectStoreStore::new(azurite_object_store(&container), "audit/").unwrap(),
                )
            })
            .collect();
        let writers: Vec<&dyn AuditLog> = logs.iter().map(|l| l as &dyn AuditLog).collect();
        tokio::time::timeout(
            Duration::from_secs(300),
            wharf_core::conformance::audit_log_writers(&writers, 50),
        )
        .await
        .unwrap();
        let store = ObjectStoreStore::new(azurite_object_store(&container), "audit/").unwrap();
        let log = WormLog::new(store);
        let keys = log.store().list("records/").await.unwrap();
        let expected: Vec<String> = (0..200).map(record_key).collect();
        assert_eq!(keys, expected, "no gaps, no extras");
    }

    /// Someone with the storage key uploads over a record: `verify` names it.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_overwritten_record_on_azurite_is_named() {
        let (store, raw, _) = azurite_store().await;
        let log = WormLog::new(store);
        append_n(&log, 0, 6).await;
        let path = Path::from(format!("audit/{}", record_key(3)));
        let original = raw.get(&path).await.unwrap().bytes().await.unwrap();
        let altered = String::from_utf8(original.to_vec())
            .unwrap()
            .replacen("run-3", "run-X", 1);
        assert_ne!(altered.as_bytes(), &original[..]);
        raw.put_opts(&path, PutPayload::from(altered), PutMode::Overwrite.into())
            .await
            .unwrap();
        let report = log.verify_with(&all(), None).await.unwrap();
        assert_eq!(
            report.problems,
            [ChainProblem::HashMismatch { sequence: 3 }],
            "{report}"
        );
        assert_eq!(report.first_problem, Some(3));
        let err = log.read(3).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    }

    /// Errors keep their kind and name the object, on one line.
    #[tokio::test(flavor = "multi_thread")]
    async fn azurite_errors_are_named() {
        // No such container.
        let store =
            ObjectStoreStore::new(azurite_object_store(&unique_container()), "audit/").unwrap();
        let err = store
            .create(&record_key(0), Bytes::from_static(b"{}"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let message = err.to_string();
        assert!(
            message.contains("audit/records/000000000000.json"),
            "{message}"
        );
        assert!(message.contains("container or bucket"), "{message}");
        assert!(!message.contains('\n'), "{message}");

        // A wrong key.
        let (_, _, container) = azurite_store().await;
        let wrong = MicrosoftAzureBuilder::new()
            .with_account(ACCOUNT)
            .with_access_key(base64::engine::general_purpose::STANDARD.encode([7u8; 64]))
            .with_allow_http(true)
            .with_endpoint(format!("{}/{ACCOUNT}", azurite()))
            .with_container_name(&container)
            .build()
            .unwrap();
        let store = ObjectStoreStore::new(Arc::new(wrong), "").unwrap();
        let err = store.get(&record_key(0)).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Denied | ErrorKind::Unauthenticated),
            "{err}"
        );
        assert!(
            err.to_string().contains("records/000000000000.json"),
            "{err}"
        );

        // Nothing listens.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let gone = MicrosoftAzureBuilder::new()
            .with_account(ACCOUNT)
            .with_access_key(ACCOUNT_KEY)
            .with_allow_http(true)
            .with_endpoint(format!("http://127.0.0.1:{port}/{ACCOUNT}"))
            .with_container_name("c")
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .build()
            .unwrap();
        let store = ObjectStoreStore::new(Arc::new(gone), "").unwrap();
        let err = store.list("records/").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    }

    /// An object store that cannot do create-only puts (as object_store's HTTP store).
    #[derive(Debug)]
    struct NoCreate(InMemory);

    impl fmt::Display for NoCreate {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("NoCreate")
        }
    }

    #[async_trait]
    impl ObjectStore for NoCreate {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            if matches!(opts.mode, PutMode::Create) {
                return Err(object_store::Error::NotImplemented {
                    operation: "`put_opts` with mode `PutMode::Create`".into(),
                    implementer: self.to_string(),
                });
            }
            self.0.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.0.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.0.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.0.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_store_without_create_only_puts_is_refused() {
        let store = ObjectStoreStore::new(Arc::new(NoCreate(InMemory::new())), "audit").unwrap();
        let log = WormLog::new(store);
        let err = log
            .append(&run_record("run-0"), &AppendOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        let message = err.to_string();
        assert!(
            message.contains("NoCreate cannot do create-only puts")
                && message.contains("cannot hold an audit log"),
            "{message}"
        );
        assert!(
            log.store().list("").await.unwrap().is_empty(),
            "nothing written"
        );
    }
}
