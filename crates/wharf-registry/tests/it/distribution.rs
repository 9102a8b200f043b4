//! The client against the real plain registry (`WHARF_TEST_REGISTRY`), with a counting proxy
//! where the requests themselves are the point.

use wharf_core::registry::{
    ListTagsOptions, ManifestBytes, PushBlobOptions, PushManifestOptions, ReferrersOptions,
};
use wharf_core::{Descriptor, Digest, ErrorKind, ImageIndex, ImageManifest, Registry, media_types};
use wharf_registry::distribution::DistributionClient;

use crate::support::fake::{Fake, Faults};
use crate::support::proxy::Proxy;
use crate::support::{Image, builder, bytes, client, fetch, registry, stream_of, unique};

#[tokio::test]
async fn conformance_against_the_real_registry() {
    let reg = client(&registry());
    reg.ping().await.unwrap();
    wharf_core::conformance::registry(&reg, "wharf-it").await;
}

#[tokio::test]
async fn a_large_stream_goes_up_in_chunks_of_the_configured_size() {
    let proxy = Proxy::start(&registry()).await;
    let reg = builder(&proxy.url()).chunk_size(1 << 20).build().unwrap();
    let repo = unique("chunked");
    let data = bytes((5 << 20) + 123, 1);
    let digest = Digest::sha256_of(&data);

    // Odd-sized pieces: chunks are cut across them.
    let pushed = reg
        .push_blob(
            &repo,
            &digest,
            stream_of(&data, 100_003),
            &PushBlobOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        (pushed.digest.clone(), pushed.size),
        (digest.clone(), data.len() as u64)
    );
    let log = proxy.take();
    let count = |prefix: &str| log.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("HEAD "), 1, "{log:#?}");
    assert_eq!(count("POST "), 1, "{log:#?}");
    assert_eq!(
        count("PATCH "),
        6,
        "5 MiB + 123 bytes in 1 MiB chunks: {log:#?}"
    );
    assert_eq!(
        count(&format!("PUT /v2/{repo}/blobs/uploads/")),
        1,
        "{log:#?}"
    );
    assert!(
        log.iter()
            .all(|l| l.ends_with("-> 202") || l.ends_with("-> 201") || l.ends_with("-> 404")),
        "{log:#?}"
    );

    assert_eq!(
        reg.blob_exists(&repo, &digest).await.unwrap(),
        Some(data.len() as u64)
    );
    assert_eq!(&fetch(&reg, &repo, &digest).await.unwrap()[..], &data[..]);
}

#[tokio::test]
async fn files_stream_from_disk_in_parallel_and_a_wrong_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reg = builder(&registry())
        .chunk_size(1 << 20)
        .max_concurrency(2)
        .build()
        .unwrap();
    let repo = unique("files");
    let mut files = Vec::new();
    let mut contents = Vec::new();
    for (i, size) in [(7 << 19) + 5, (1 << 20) + 1, 700 << 10, 0]
        .into_iter()
        .enumerate()
    {
        let data = bytes(size, 10 + i as u64);
        let path = dir.path().join(format!("layer{i}"));
        std::fs::write(&path, &data).unwrap();
        files.push((Digest::sha256_of(&data), path));
        contents.push(data);
    }
    let pushed = reg.push_blobs(&repo, files.clone()).await.unwrap();
    assert_eq!(pushed.len(), 4);
    for ((desc, (digest, _)), data) in pushed.iter().zip(&files).zip(&contents) {
        assert_eq!(
            (&desc.digest, desc.size),
            (digest, data.len() as u64),
            "in the order given"
        );
        assert_eq!(&fetch(&reg, &repo, digest).await.unwrap()[..], &data[..]);
    }

    // A file that does not hash to the digest it is pushed as: nothing is stored.
    let wrong = Digest::sha256_of(b"something else entirely");
    let err = reg
        .push_blob_from_file(&repo, &files[0].1, &wrong)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(reg.blob_exists(&repo, &wrong).await.unwrap(), None);
    let err = reg
        .push_blob_from_file(&repo, &dir.path().join("missing"), &wrong)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn re_pushing_an_unchanged_image_sends_only_heads() {
    let repo = unique("repush");
    let image = Image::new(3, &[300 << 10, 2 << 20, 17, 5000, 1 << 20]);
    let direct = builder(&registry()).chunk_size(1 << 20).build().unwrap();
    image.push(&direct, &repo, "v1").await;

    let proxy = Proxy::start(&registry()).await;
    let reg = builder(&proxy.url()).chunk_size(1 << 20).build().unwrap();
    let started = std::time::Instant::now();
    let again = image.push(&reg, &repo, "v1").await;
    let took = started.elapsed();
    assert_eq!(again.digest, image.manifest.descriptor.digest);
    let log = proxy.take();
    assert_eq!(log.len(), 7, "six blobs and the manifest: {log:#?}");
    assert!(
        log.iter()
            .all(|l| l.starts_with("HEAD ") && l.ends_with("-> 200")),
        "a re-push is HEAD-only: {log:#?}"
    );
    eprintln!(
        "re-push of an unchanged 6-blob image: {} requests in {took:?}",
        log.len()
    );

    // A file blob likewise.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    std::fs::write(&path, &image.layers[1].1).unwrap();
    reg.push_blob_from_file(&repo, &path, &image.layers[1].0.digest)
        .await
        .unwrap();
    let log = proxy.take();
    assert!(log.len() == 1 && log[0].starts_with("HEAD "), "{log:#?}");
}

#[tokio::test]
async fn a_blob_is_mounted_from_another_repository_without_uploading() {
    let (from, to) = (unique("mount-from"), unique("mount-to"));
    let data = bytes(200 << 10, 7);
    let digest = Digest::sha256_of(&data);
    client(&registry())
        .push_blob(
            &from,
            &digest,
            stream_of(&data, 1 << 16),
            &PushBlobOptions::default(),
        )
        .await
        .unwrap();

    let proxy = Proxy::start(&registry()).await;
    let reg = client(&proxy.url());
    let mut opts = PushBlobOptions::default();
    opts.mount_from = Some(from.clone());
    let d = reg
        .push_blob(&to, &digest, stream_of(&data, 1 << 16), &opts)
        .await
        .unwrap();
    assert_eq!(d.size, data.len() as u64);
    let log = proxy.take();
    let mount = format!(
        "POST /v2/{to}/blobs/uploads/?mount={}&from={} -> 201",
        digest.to_string().replace(':', "%3A"),
        from.replace('/', "%2F")
    );
    assert_eq!(
        log,
        [
            format!("HEAD /v2/{to}/blobs/{digest} -> 404"),
            mount,
            // No size was given: one HEAD learns it.
            format!("HEAD /v2/{to}/blobs/{digest} -> 200"),
        ],
        "mounted, nothing uploaded"
    );
    assert_eq!(
        reg.blob_exists(&to, &digest).await.unwrap(),
        Some(data.len() as u64)
    );
}

#[tokio::test]
async fn tags_come_back_sorted_though_distribution_2_8_ignores_the_page_size() {
    let proxy = Proxy::start(&registry()).await;
    let reg = builder(&proxy.url()).tag_page_size(2).build().unwrap();
    let repo = unique("tags");
    let image = Image::new(4, &[10]);
    image.push(&reg, &repo, "e").await;
    for tag in ["c", "a", "d", "b"] {
        reg.tag(&repo, &image.manifest.descriptor.digest, tag)
            .await
            .unwrap();
    }
    proxy.take();
    let tags = reg
        .list_tags(&repo, &ListTagsOptions::default())
        .await
        .unwrap();
    assert_eq!(tags, ["a", "b", "c", "d", "e"]);
    let log = proxy.take();
    assert_eq!(
        log,
        [format!("GET /v2/{repo}/tags/list?n=2 -> 200")],
        "one page: 2.8 sends all tags, unsorted, and no Link"
    );
    let mut opts = ListTagsOptions::default();
    opts.limit = Some(3);
    assert_eq!(reg.list_tags(&repo, &opts).await.unwrap(), ["a", "b", "c"]);
    let err = reg
        .list_tags(&unique("no-such-repo"), &ListTagsOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn tag_pages_are_followed_through_link_headers() {
    // distribution 2.8 does not paginate tags: the fake does, as the spec says.
    let fake = Fake::start(Faults::default()).await;
    let reg = builder(&fake.url()).tag_page_size(2).build().unwrap();
    let image = Image::new(5, &[10]);
    image.push(&reg, "paged", "t4").await;
    for tag in ["t2", "t0", "t3", "t1"] {
        reg.tag("paged", &image.manifest.descriptor.digest, tag)
            .await
            .unwrap();
    }
    let tags = reg
        .list_tags("paged", &ListTagsOptions::default())
        .await
        .unwrap();
    assert_eq!(tags, ["t0", "t1", "t2", "t3", "t4"]);
    assert_eq!(
        fake.count("GET /v2/paged/tags/list"),
        3,
        "pages of 2, 2 and 1: {:#?}",
        fake.log()
    );
}

#[tokio::test]
async fn referrers_fall_back_to_an_index_at_the_digest_tag() {
    let proxy = Proxy::start(&registry()).await;
    let reg = client(&proxy.url());
    let repo = unique("referrers");
    let image = Image::new(6, &[64]);
    let subject = image.push(&reg, &repo, "v1").await;

    // Nothing refers to it yet: the tag does not exist, the list is empty.
    proxy.take();
    assert!(
        reg.referrers(&repo, &subject.digest, &ReferrersOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
    let log = proxy.take();
    assert_eq!(
        log,
        [
            format!("GET /v2/{repo}/referrers/{} -> 404", subject.digest),
            format!(
                "GET /v2/{repo}/manifests/{} -> 404",
                subject.digest.tag_form()
            ),
        ],
        "probe the referrers API, then the tag schema: {log:#?}"
    );

    // Two artifacts refer to it; an index at sha256-<hex> lists them (the OCI 1.1 fallback).
    let mut referrers = Vec::new();
    for (i, artifact_type) in [
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
    ]
    .iter()
    .enumerate()
    {
        let (config, _) = &image.config;
        let mut m = ImageManifest::new(
            Descriptor::new(media_types::OCI_EMPTY, Digest::sha256_of(b"{}"), 2),
            vec![config.clone()],
        );
        reg.push_blob(
            &repo,
            &Digest::sha256_of(b"{}"),
            stream_of(b"{}", 2),
            &PushBlobOptions::default(),
        )
        .await
        .unwrap();
        m.artifact_type = Some((*artifact_type).to_owned());
        m.subject = Some(subject.clone());
        m.annotations.insert("n".into(), i.to_string());
        let bytes = ManifestBytes::new(media_types::OCI_MANIFEST, m.to_vec());
        reg.push_manifest(&repo, &bytes, &PushManifestOptions::default())
            .await
            .unwrap();
        referrers.push(bytes.descriptor.clone().with_artifact_type(*artifact_type));
    }
    let index = ImageIndex::new(referrers.clone());
    let index = ManifestBytes::new(media_types::OCI_INDEX, index.to_vec());
    reg.push_manifest(
        &repo,
        &index,
        &PushManifestOptions::tagged(subject.digest.tag_form()),
    )
    .await
    .unwrap();

    let mut expected = referrers.clone();
    expected.sort_by(|a, b| a.digest.cmp(&b.digest));
    let all = reg
        .referrers(&repo, &subject.digest, &ReferrersOptions::default())
        .await
        .unwrap();
    assert_eq!(all, expected);
    let sigs = reg
        .referrers(
            &repo,
            &subject.digest,
            &ReferrersOptions::of_type("application/vnd.example.sig"),
        )
        .await
        .unwrap();
    assert_eq!(sigs, [referrers[1].clone()], "filtered client-side");
}

#[tokio::test]
async fn docker_schema_2_manifests_are_readable() {
    let reg = client(&registry());
    let repo = unique("docker");
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = Digest::sha256_of(config);
    reg.push_blob(
        &repo,
        &config_digest,
        stream_of(config, 10),
        &PushBlobOptions::default(),
    )
    .await
    .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{config_digest}"}},"layers":[]}}"#,
        media_types::DOCKER_MANIFEST_V2,
        config.len()
    );
    let manifest = ManifestBytes::new(media_types::DOCKER_MANIFEST_V2, manifest.into_bytes());
    reg.push_manifest(&repo, &manifest, &PushManifestOptions::tagged("docker"))
        .await
        .unwrap();
    let resolved = reg.resolve_tag(&repo, "docker").await.unwrap();
    assert_eq!(resolved.media_type, media_types::DOCKER_MANIFEST_V2);
    assert_eq!(resolved.digest, manifest.descriptor.digest);
    assert_eq!(resolved.size, manifest.bytes.len() as u64);
    let back = reg.fetch_manifest(&repo, &resolved.digest).await.unwrap();
    assert_eq!(back, manifest);
    let parsed = ImageManifest::from_slice(&back.bytes, "docker manifest").unwrap();
    assert_eq!(parsed.config.digest, config_digest);
}

#[tokio::test]
async fn bad_names_and_an_unreachable_registry_are_clear_errors() {
    let reg = client(&registry());
    let d = Digest::sha256_of(b"x");
    for repo in ["Upper/case", "../escape", "a//b", ""] {
        let err = reg.blob_exists(repo, &d).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{repo}: {err}");
    }
    let err = reg.resolve_tag("ok", "bad/tag").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");

    // A port nothing listens on: a transient error naming the request, after the retries.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let reg: DistributionClient = client(&closed.to_string());
    let err = reg.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("GET http://{closed}/v2/")) && msg.contains("reachable"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_referrers_api_is_probed_where_signers_choose_a_format() {
    use std::sync::{Arc, Mutex};

    use crate::support::server::{Reply, Request, Response, serve};

    // Distribution 2.8 has no referrers API: one probe, answered 404, means "no".
    let proxy = Proxy::start(&registry()).await;
    let reg = client(&proxy.url());
    let repo = unique("probe");
    proxy.take();
    assert!(!reg.has_referrers_api(&repo).await.unwrap());
    let log = proxy.take();
    let probe = format!("GET /v2/{repo}/referrers/sha256:");
    assert!(
        log.len() == 1 && log[0].starts_with(&probe) && log[0].ends_with(" -> 404"),
        "{log:#?}"
    );

    // A registry that has it answers any subject (even one it never saw) with an empty
    // index; anything else it answers 404.
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = Arc::clone(&seen);
    let addr = serve(Arc::new(move |req: Request| {
        log.lock().unwrap().push(req.clone());
        Box::pin(async move {
            Reply::Send(
                if req.method == "GET" && req.path().contains("/referrers/sha256:") {
                    Response::json(
                        200,
                        &serde_json::json!({
                            "schemaVersion": 2,
                            "mediaType": media_types::OCI_INDEX,
                            "manifests": [],
                        }),
                    )
                    .header("Content-Type", media_types::OCI_INDEX)
                } else if req.path() == "/v2/" {
                    Response::json(200, &serde_json::json!({}))
                } else {
                    Response::error(404, "NOT_FOUND", "not here")
                },
            )
        })
    }))
    .await;
    let fake = client(&addr.to_string());
    assert!(fake.has_referrers_api("models/fraud").await.unwrap());
    let seen = seen.lock().unwrap();
    let probes: Vec<&Request> = seen
        .iter()
        .filter(|r| r.path().starts_with("/v2/models/fraud/referrers/sha256:"))
        .collect();
    assert_eq!(probes.len(), 1, "{seen:#?}");
    assert_eq!(probes[0].method, "GET");
    assert!(
        probes[0]
            .header("accept")
            .is_some_and(|a| a.contains(media_types::OCI_INDEX)),
        "{:?}",
        probes[0]
    );
}
