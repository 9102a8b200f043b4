//! skopeo (`WHARF_TEST_SKOPEO`), an independent OCI client, both ways through the real
//! registry: it copies what we pushed, and we pull, verified, what it pushed.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions};
use wharf_core::{Descriptor, Digest, ImageManifest, Registry, media_types};

use crate::support::{builder, bytes, env, fetch, registry, stream_of, unique};

fn skopeo(args: &[&str]) -> String {
    let program = env("WHARF_TEST_SKOPEO");
    let out = Command::new(&program)
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A runnable-looking image: one tar layer holding `model/weights.bin`, a config naming it.
fn image(seed: u64, gzip: bool) -> (Vec<(Descriptor, Vec<u8>)>, ManifestBytes) {
    let mut tar = tar::Builder::new(Vec::new());
    let weights = bytes(150 << 10, seed);
    let mut header = tar::Header::new_gnu();
    header.set_size(weights.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    tar.append_data(&mut header, "model/weights.bin", &weights[..])
        .unwrap();
    let layer_tar = tar.into_inner().unwrap();
    let diff_id = Digest::sha256_of(&layer_tar);
    let (layer, layer_type) = if gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer_tar).unwrap();
        (gz.finish().unwrap(), media_types::OCI_LAYER_TAR_GZIP)
    } else {
        (layer_tar, media_types::OCI_LAYER_TAR)
    };
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["MODEL=/model/weights.bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    })
    .to_string()
    .into_bytes();
    let config_desc = Descriptor::for_bytes(media_types::OCI_CONFIG, &config);
    let layer_desc = Descriptor::for_bytes(layer_type, &layer);
    let manifest = ImageManifest::new(config_desc.clone(), vec![layer_desc.clone()]);
    let manifest = ManifestBytes::new(media_types::OCI_MANIFEST, manifest.to_vec());
    (vec![(config_desc, config), (layer_desc, layer)], manifest)
}

fn blob_path(layout: &Path, digest: &Digest) -> std::path::PathBuf {
    layout
        .join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

#[tokio::test]
async fn skopeo_copies_what_we_pushed_byte_for_byte() {
    let host = registry();
    let reg = builder(&host).chunk_size(64 << 10).build().unwrap();
    let repo = unique("to-skopeo");
    let (blobs, manifest) = image(1, false);
    for (d, data) in &blobs {
        reg.push_blob(
            &repo,
            &d.digest,
            stream_of(data, 10_000),
            &PushBlobOptions::default(),
        )
        .await
        .unwrap();
    }
    reg.push_manifest(&repo, &manifest, &PushManifestOptions::tagged("v1"))
        .await
        .unwrap();

    let src = format!("docker://{host}/{repo}:v1");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &src]);
    assert_eq!(
        Digest::sha256_of(raw.as_bytes()),
        manifest.descriptor.digest
    );

    let out = tempfile::tempdir().unwrap();
    let dst = format!("oci:{}:v1", out.path().display());
    // skopeo compresses uncompressed layers for `oci:` unless told not to; with
    // --preserve-digests it fails rather than change a digest.
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-oci-accept-uncompressed-layers",
        "--src-tls-verify=false",
        &src,
        &dst,
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(manifest.descriptor.digest.to_string().as_str()),
        "skopeo's copy has our manifest digest: {index}"
    );
    for (d, data) in &blobs {
        assert_eq!(
            &std::fs::read(blob_path(out.path(), &d.digest)).unwrap(),
            data
        );
    }
}

#[tokio::test]
async fn we_pull_and_verify_what_skopeo_pushed() {
    let host = registry();
    let (blobs, manifest) = image(2, true);
    let layout = tempfile::tempdir().unwrap();
    std::fs::write(
        layout.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::create_dir_all(layout.path().join("blobs/sha256")).unwrap();
    for (d, data) in &blobs {
        std::fs::write(blob_path(layout.path(), &d.digest), data).unwrap();
    }
    std::fs::write(
        blob_path(layout.path(), &manifest.descriptor.digest),
        &manifest.bytes,
    )
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_types::OCI_MANIFEST,
            "digest": manifest.descriptor.digest.to_string(),
            "size": manifest.bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(layout.path().join("index.json"), index.to_string()).unwrap();

    let repo = unique("from-skopeo");
    let src = format!("oci:{}:v1", layout.path().display());
    let dst = format!("docker://{host}/{repo}:v1");
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &src,
        &dst,
    ]);

    let reg = builder(&host).build().unwrap();
    let resolved = reg.resolve_tag(&repo, "v1").await.unwrap();
    assert_eq!(
        resolved.digest, manifest.descriptor.digest,
        "skopeo kept the manifest"
    );
    let fetched = reg.fetch_manifest(&repo, &resolved.digest).await.unwrap();
    assert_eq!(fetched, manifest);
    let parsed = ImageManifest::from_slice(&fetched.bytes, "pulled").unwrap();
    for d in std::iter::once(&parsed.config).chain(&parsed.layers) {
        let data = fetch(&reg, &repo, &d.digest).await.unwrap();
        assert_eq!(data.len() as u64, d.size);
        let expected = &blobs.iter().find(|(b, _)| b.digest == d.digest).unwrap().1;
        assert_eq!(&data[..], &expected[..]);
    }
}
