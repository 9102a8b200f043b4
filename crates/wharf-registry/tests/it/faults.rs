//! The client against a registry that misbehaves on purpose (the fake in `support::fake`).

use std::time::{Duration, Instant};

use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions};
use wharf_core::{Digest, ErrorKind, ImageManifest, Registry, media_types};
use wharf_registry::distribution::DistributionClient;

use crate::support::fake::{Fake, Faults};
use crate::support::{builder, bytes, fetch, stream_of};

/// A fake with `faults` and a client with 64 KiB chunks.
async fn setup(faults: Faults) -> (Fake, DistributionClient) {
    let fake = Fake::start(faults).await;
    let reg = builder(&fake.url()).chunk_size(64 << 10).build().unwrap();
    (fake, reg)
}

async fn push(reg: &DistributionClient, data: &[u8]) -> wharf_core::Result<wharf_core::Descriptor> {
    reg.push_blob(
        "r",
        &Digest::sha256_of(data),
        stream_of(data, 10_000),
        &PushBlobOptions::default(),
    )
    .await
}

#[tokio::test]
async fn a_blob_with_other_bytes_ends_in_an_integrity_error() {
    let (fake, reg) = setup(Faults::default()).await;
    let data = bytes(100_000, 1);
    push(&reg, &data).await.unwrap();
    fake.with(|s| s.faults.wrong_blob = true);
    let err = fetch(&reg, "r", &Digest::sha256_of(&data))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        err.to_string().contains("does not match its digest"),
        "{err}"
    );
}

#[tokio::test]
async fn an_upload_that_loses_a_race_to_the_same_blob_succeeds() {
    // Pipelines side by side push the same signature payload: the loser's PUT may be
    // answered DIGEST_INVALID while the winner's identical blob is stored.
    let (fake, reg) = setup(Faults {
        put_loses_race: true,
        ..Faults::default()
    })
    .await;
    let data = bytes(1_000, 9);
    let d = push(&reg, &data).await.unwrap();
    assert_eq!(d.digest, Digest::sha256_of(&data));
    assert_eq!(d.size, 1_000);
    assert_eq!(fetch(&reg, "r", &d.digest).await.unwrap(), data);
    // Without the blob stored, the same answer stays an error.
    fake.with(|s| {
        s.faults.put_loses_race = false;
    });
    let other = bytes(1_000, 10);
    let e = reg
        .push_blob(
            "r",
            &Digest::sha256_of(&data[..999]),
            stream_of(&other, 10_000),
            &PushBlobOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("DIGEST_INVALID") || e.to_string().contains("digest"),
        "{e}"
    );
}

#[tokio::test]
async fn a_manifest_put_meeting_a_blob_being_committed_is_asked_again() {
    let (fake, reg) = setup(Faults {
        manifest_blob_moving: 2,
        ..Faults::default()
    })
    .await;
    let config = bytes(100, 11);
    let c = push(&reg, &config).await.unwrap();
    let manifest = ImageManifest::new(
        wharf_core::Descriptor::new(media_types::OCI_CONFIG, c.digest.clone(), c.size),
        vec![],
    );
    let m = ManifestBytes::new(media_types::OCI_MANIFEST, manifest.to_vec());
    reg.push_manifest("r", &m, &PushManifestOptions::default())
        .await
        .unwrap();
    // Past three answers like that, the registry's refusal is the error.
    fake.with(|s| s.faults.manifest_blob_moving = 10);
    let m2 = ManifestBytes::new(
        media_types::OCI_MANIFEST,
        ImageManifest::new(
            wharf_core::Descriptor::new(media_types::OCI_CONFIG, c.digest.clone(), c.size),
            vec![wharf_core::Descriptor::new(
                media_types::OCI_CONFIG,
                c.digest.clone(),
                c.size,
            )],
        )
        .to_vec(),
    );
    let e = reg
        .push_manifest("r", &m2, &PushManifestOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("DIGEST_INVALID"), "{e}");
}

#[tokio::test]
async fn a_truncated_body_is_an_error_not_a_short_blob() {
    let (fake, reg) = setup(Faults::default()).await;
    let data = bytes(100_000, 2);
    push(&reg, &data).await.unwrap();
    fake.with(|s| s.faults.truncate_blob = true);
    let err = fetch(&reg, "r", &Digest::sha256_of(&data))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.to_string().contains("broke off"), "{err}");
}

#[tokio::test]
async fn a_500_in_the_middle_of_a_chunked_upload_resumes_from_the_reported_range() {
    let (fake, reg) = setup(Faults {
        patch_500_on: Some(2),
        ..Faults::default()
    })
    .await;
    let data = bytes(300 << 10, 3);
    push(&reg, &data).await.unwrap();
    let stored = fake.with(|s| {
        s.blobs
            .get(&("r".into(), Digest::sha256_of(&data).to_string()))
            .cloned()
    });
    assert_eq!(stored.as_deref(), Some(&data[..]));
    let log = fake.log();
    let at = log
        .iter()
        .position(|l| l == "PATCH /v2/r/blobs/uploads/u1 -> 500")
        .unwrap();
    assert_eq!(
        log[at + 1],
        "GET /v2/r/blobs/uploads/u1 -> 204",
        "asks where to resume: {log:#?}"
    );
    assert_eq!(
        log[at + 2],
        "PATCH /v2/r/blobs/uploads/u1 -> 202",
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.ends_with("-> 416")),
        "never re-sends held bytes: {log:#?}"
    );
}

#[tokio::test]
async fn a_connection_dropped_during_a_patch_resumes() {
    let (fake, reg) = setup(Faults {
        patch_hangup_on: Some(3),
        ..Faults::default()
    })
    .await;
    let data = bytes(300 << 10, 4);
    push(&reg, &data).await.unwrap();
    let stored = fake.with(|s| {
        s.blobs
            .get(&("r".into(), Digest::sha256_of(&data).to_string()))
            .cloned()
    });
    assert_eq!(stored.as_deref(), Some(&data[..]));
    let log = fake.log();
    assert!(
        log.contains(&"PATCH /v2/r/blobs/uploads/u1 -> hangup".to_owned()),
        "{log:#?}"
    );
    assert!(
        log.contains(&"GET /v2/r/blobs/uploads/u1 -> 204".to_owned()),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.ends_with("-> 416")), "{log:#?}");
}

#[tokio::test]
async fn files_resume_after_failures_and_even_after_the_registry_lost_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(300 << 10, 5);
    let path = dir.path().join("weights");
    std::fs::write(&path, &data).unwrap();
    let digest = Digest::sha256_of(&data);
    for faults in [
        Faults {
            patch_500_on: Some(2),
            ..Faults::default()
        },
        Faults {
            patch_hangup_on: Some(2),
            ..Faults::default()
        },
        // A file can be re-read from any offset: even losing earlier chunks is recoverable.
        Faults {
            patch_lose_on: Some(3),
            ..Faults::default()
        },
    ] {
        let (fake, reg) = setup(faults.clone()).await;
        let d = reg.push_blob_from_file("r", &path, &digest).await.unwrap();
        assert_eq!(d.size, data.len() as u64);
        let stored = fake.with(|s| s.blobs.get(&("r".into(), digest.to_string())).cloned());
        assert_eq!(
            stored.as_deref(),
            Some(&data[..]),
            "{faults:?}: {:#?}",
            fake.log()
        );
    }
}

#[tokio::test]
async fn losing_more_than_the_current_chunk_of_a_stream_fails_clearly_and_stores_nothing() {
    let (fake, reg) = setup(Faults {
        patch_lose_on: Some(3),
        ..Faults::default()
    })
    .await;
    let data = bytes(300 << 10, 6);
    let err = push(&reg, &data).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("lost the upload")
            && msg.contains("re-sent from byte")
            && msg.contains("push the blob again"),
        "{msg}"
    );
    assert!(fake.with(|s| s.blobs.is_empty()));
    assert_eq!(
        fake.with(|s| s.cancelled.clone()),
        ["u1"],
        "the session is deleted"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let (fake, reg) = setup(Faults {
        throttle: 1,
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(
        reg.blob_exists("r", &Digest::sha256_of(b"x"))
            .await
            .unwrap(),
        None
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_millis(3000),
        "Retry-After: 1 means about a second, waited {waited:?}"
    );
    assert_eq!(fake.count("HEAD "), 2);
}

#[tokio::test]
async fn bytes_that_do_not_match_the_digest_are_never_committed() {
    let (fake, reg) = setup(Faults::default()).await;
    let data = bytes(300 << 10, 7);
    let wrong = Digest::sha256_of(b"not these bytes");
    let err = reg
        .push_blob(
            "r",
            &wrong,
            stream_of(&data, 10_000),
            &PushBlobOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    let log = fake.log();
    assert_eq!(fake.count("PATCH "), 5, "{log:#?}");
    assert_eq!(fake.count("PUT "), 0, "never completed: {log:#?}");
    assert_eq!(
        fake.count("DELETE /v2/r/blobs/uploads/u1 -> 204"),
        1,
        "{log:#?}"
    );
    assert!(fake.with(|s| s.blobs.is_empty() && s.uploads.is_empty()));

    // A small blob is checked before anything is sent.
    let err = reg
        .push_blob(
            "r",
            &wrong,
            stream_of(b"tiny", 2),
            &PushBlobOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(
        fake.count("POST "),
        1,
        "no session for the small one: {:#?}",
        fake.log()
    );

    // A declared size that does not match.
    let mut opts = PushBlobOptions::default();
    opts.size = Some(3);
    let err = reg
        .push_blob(
            "r",
            &Digest::sha256_of(b"tiny"),
            stream_of(b"tiny", 2),
            &opts,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
}

#[tokio::test]
async fn nothing_half_pushed_is_ever_tagged() {
    let (fake, reg) = setup(Faults {
        patch_always_500: true,
        ..Faults::default()
    })
    .await;
    let layer = bytes(200 << 10, 8);
    let config = b"{}";
    push(&reg, config).await.unwrap();
    let err = push(&reg, &layer).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(
        fake.with(|s| s.uploads.is_empty()),
        "the failed session was deleted"
    );

    let manifest = ImageManifest::new(
        wharf_core::Descriptor::for_bytes(media_types::OCI_EMPTY, config),
        vec![wharf_core::Descriptor::for_bytes(
            media_types::OCI_LAYER_TAR,
            &layer,
        )],
    );
    let manifest = ManifestBytes::new(media_types::OCI_MANIFEST, manifest.to_vec());
    let err = reg
        .push_manifest("r", &manifest, &PushManifestOptions::tagged("v1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("push its blobs"), "{err}");
    let err = reg
        .tag("r", &manifest.descriptor.digest, "v2")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(fake.with(|s| s.tags.is_empty()), "{:#?}", fake.log());
    assert_eq!(
        fake.count("PUT /v2/r/manifests/"),
        1,
        "the manifest PUT is the only tag write, and it was refused: {:#?}",
        fake.log()
    );
}

#[tokio::test]
async fn manifests_that_lie_are_too_large_or_of_unknown_type_are_refused() {
    let (fake, reg) = setup(Faults::default()).await;
    push(&reg, b"{}").await.unwrap();
    let manifest = ImageManifest::new(
        wharf_core::Descriptor::for_bytes(media_types::OCI_EMPTY, b"{}"),
        vec![],
    );
    let manifest = ManifestBytes::new(media_types::OCI_MANIFEST, manifest.to_vec());
    let d = reg
        .push_manifest("r", &manifest, &PushManifestOptions::tagged("v1"))
        .await
        .unwrap();
    assert_eq!(reg.fetch_manifest("r", &d.digest).await.unwrap(), manifest);

    fake.with(|s| s.faults.lie_manifest = true);
    let err = reg.fetch_manifest("r", &d.digest).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Integrity,
        "the header is not trusted: {err}"
    );
    fake.with(|s| s.faults.lie_manifest = false);

    let huge = vec![b' '; (4 << 20) + 1];
    let huge_digest = Digest::sha256_of(&huge);
    let schema1 = br#"{"schemaVersion":1,"name":"r","tag":"old"}"#.to_vec();
    let schema1_digest = Digest::sha256_of(&schema1);
    fake.with(|s| {
        s.manifests.insert(
            ("r".into(), huge_digest.to_string()),
            (media_types::OCI_MANIFEST.into(), huge),
        );
        s.manifests.insert(
            ("r".into(), schema1_digest.to_string()),
            (
                "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
                schema1,
            ),
        );
    });
    let err = reg.fetch_manifest("r", &huge_digest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert!(
        err.to_string().contains("4194304-byte manifest limit"),
        "{err}"
    );
    let err = reg.fetch_manifest("r", &schema1_digest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("prettyjws"), "{err}");
}

#[tokio::test]
async fn a_failing_source_stream_cancels_the_upload_and_keeps_its_error_kind() {
    let (fake, reg) = setup(Faults::default()).await;
    let good = bytes(200 << 10, 9);
    let pieces: Vec<wharf_core::Result<bytes::Bytes>> = vec![
        Ok(bytes::Bytes::from(good[..100 << 10].to_vec())),
        Ok(bytes::Bytes::from(good[100 << 10..].to_vec())),
        Err(wharf_core::Error::new(
            ErrorKind::Transient,
            "the source registry went away",
        )),
    ];
    let err = reg
        .push_blob(
            "r",
            &Digest::sha256_of(&good),
            Box::pin(futures_util::stream::iter(pieces)),
            &PushBlobOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    let chain = wharf_core::display_chain(&err);
    assert!(
        chain.contains("nothing was stored") && chain.contains("went away"),
        "{chain}"
    );
    assert_eq!(fake.with(|s| s.cancelled.clone()), ["u1"]);
    assert!(fake.with(|s| s.blobs.is_empty()));
}
