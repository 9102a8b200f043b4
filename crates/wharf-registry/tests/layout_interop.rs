//! The OCI layout wharf writes, read by an independent client (skopeo), and the other way
//! round. Needs `WHARF_TEST_SKOPEO` (set by `cargo xtask test`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::path::Path;
use std::process::Command;

use wharf_core::registry::collect_blob;
use wharf_core::{Digest, ImageManifest, Registry};
use wharf_registry::layout::LayoutRegistry;
use wharf_registry::package::{ModelSpec, package_modelpack};

fn skopeo() -> String {
    std::env::var("WHARF_TEST_SKOPEO").unwrap_or_else(|_| {
        panic!("WHARF_TEST_SKOPEO is not set: run the tests with `cargo xtask test`, or `eval \"$(cargo xtask backends env)\"` first")
    })
}

fn run(args: &[&str]) -> String {
    let out = Command::new(skopeo()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn example_model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/fraud-detector")
}

#[tokio::test]
async fn skopeo_reads_and_copies_what_we_packaged() {
    let root = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::open(root.path()).unwrap();
    let packaged = package_modelpack(
        &ModelSpec::new(example_model(), "fraud-detector", "1.4.0"),
        staging.path(),
    )
    .unwrap();
    packaged
        .push(&reg, "models/fraud-detector", Some("3f2a9c1"))
        .await
        .unwrap();
    let layout = reg.layout_dir("models/fraud-detector").unwrap();

    let src = format!("oci:{}:3f2a9c1", layout.display());
    let raw = run(&["inspect", "--raw", &src]);
    assert_eq!(
        Digest::sha256_of(raw.as_bytes()),
        *packaged.digest(),
        "skopeo sees our exact manifest bytes"
    );

    // skopeo copies it into another layout byte for byte (same manifest digest).
    let copy = tempfile::tempdir().unwrap();
    let dst = format!("oci:{}:copied", copy.path().display());
    run(&["copy", "--preserve-digests", &src, &dst]);
    let again = run(&["inspect", "--raw", &dst]);
    assert_eq!(Digest::sha256_of(again.as_bytes()), *packaged.digest());
}

#[tokio::test]
async fn we_read_what_skopeo_wrote() {
    // skopeo writes a layout (from ours, into a fresh directory, re-tagged); we open it as a
    // registry root and verify every blob while reading.
    let root = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::open(root.path()).unwrap();
    let packaged = package_modelpack(
        &ModelSpec::new(example_model(), "fraud-detector", "1.4.0"),
        staging.path(),
    )
    .unwrap();
    packaged.push(&reg, "src", Some("v1")).await.unwrap();

    let other = tempfile::tempdir().unwrap();
    let src = format!("oci:{}:v1", root.path().join("src").display());
    let dst = format!(
        "oci:{}:from-skopeo",
        other.path().join("models/copied").display()
    );
    std::fs::create_dir_all(other.path().join("models")).unwrap();
    run(&["copy", "--preserve-digests", &src, &dst]);

    let theirs = LayoutRegistry::open(other.path()).unwrap();
    let desc = theirs
        .resolve_tag("models/copied", "from-skopeo")
        .await
        .unwrap();
    assert_eq!(&desc.digest, packaged.digest());
    let manifest = theirs
        .fetch_manifest("models/copied", &desc.digest)
        .await
        .unwrap();
    let m = ImageManifest::from_slice(&manifest.bytes, "copied").unwrap();
    for layer in std::iter::once(&m.config).chain(&m.layers) {
        let bytes = collect_blob(
            theirs
                .fetch_blob("models/copied", &layer.digest)
                .await
                .unwrap(),
            1 << 26,
        )
        .await
        .unwrap();
        assert_eq!(Digest::sha256_of(&bytes), layer.digest);
    }
    assert_eq!(
        theirs
            .list_tags("models/copied", &Default::default())
            .await
            .unwrap(),
        ["from-skopeo"]
    );
}

/// One layout directory skopeo wrote, opened as it is (`open_layout`): any repository name
/// reads it, a tag pushed through it lands in that directory, and skopeo reads it back.
#[tokio::test]
async fn one_layout_directory_skopeo_wrote_opens_as_it_is() {
    let root = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::open(root.path()).unwrap();
    let packaged = package_modelpack(
        &ModelSpec::new(example_model(), "fraud-detector", "1.4.0"),
        staging.path(),
    )
    .unwrap();
    packaged.push(&reg, "src", Some("v1")).await.unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let dir = theirs.path().join("image");
    run(&[
        "copy",
        "--preserve-digests",
        &format!("oci:{}:v1", root.path().join("src").display()),
        &format!("oci:{}:from-skopeo", dir.display()),
    ]);

    let single = LayoutRegistry::open_layout(&dir).unwrap();
    let desc = single.resolve_tag("any/name", "from-skopeo").await.unwrap();
    assert_eq!(&desc.digest, packaged.digest());
    single
        .tag("models/fraud", &desc.digest, "v2")
        .await
        .unwrap();
    assert!(dir.join("index.json").is_file() && !dir.join("models").exists());
    let inspected = run(&["inspect", "--raw", &format!("oci:{}:v2", dir.display())]);
    assert_eq!(Digest::sha256_of(inspected.as_bytes()), *packaged.digest());
    assert!(single.fsck(false).await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn umoci_unpacks_the_runnable_image_with_the_model_in_its_rootfs() {
    use wharf_core::registry::{ManifestBytes, PushManifestOptions, blob_stream_from};
    use wharf_core::{Descriptor, media_types};
    use wharf_registry::append::{BaseImage, append_model};
    let umoci = std::env::var("WHARF_TEST_UMOCI").unwrap_or_else(|_| {
        panic!("WHARF_TEST_UMOCI is not set: run the tests with `cargo xtask test`, or `eval \"$(cargo xtask backends env)\"` first")
    });
    let root = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::open(root.path()).unwrap();
    // A base with one empty layer.
    let empty_tar = vec![0u8; 1024];
    let layer = Descriptor::for_bytes(media_types::OCI_LAYER_TAR, &empty_tar);
    reg.push_blob(
        "base",
        &layer.digest,
        blob_stream_from(empty_tar),
        &Default::default(),
    )
    .await
    .unwrap();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]}});
    let config = ManifestBytes::new(
        media_types::OCI_CONFIG,
        serde_json::to_vec(&config).unwrap(),
    );
    reg.push_blob(
        "base",
        &config.descriptor.digest,
        blob_stream_from(config.bytes.clone()),
        &Default::default(),
    )
    .await
    .unwrap();
    let m = ManifestBytes::new(
        media_types::OCI_MANIFEST,
        ImageManifest::new(config.descriptor.clone(), vec![layer]).to_vec(),
    );
    reg.push_manifest("base", &m, &PushManifestOptions::tagged("1"))
        .await
        .unwrap();

    let base = BaseImage::new(&reg, "base", "1");
    let image = append_model(
        &base,
        &ModelSpec::new(example_model(), "fraud-detector", "1.4.0"),
        &root.path().join(".staging"),
    )
    .await
    .unwrap();
    image.push(&base, &reg, "app", Some("v1")).await.unwrap();

    let bundle = tempfile::tempdir().unwrap();
    let bundle_dir = bundle.path().join("bundle");
    let layout = format!("{}:v1", reg.layout_dir("app").unwrap().display());
    let out = Command::new(umoci)
        .args(["unpack", "--rootless", "--image", &layout])
        .arg(&bundle_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let weights = bundle_dir.join("rootfs/models/fraud-detector/model.safetensors");
    assert_eq!(
        std::fs::read(&weights).unwrap(),
        std::fs::read(example_model().join("model.safetensors")).unwrap(),
        "the unpacked rootfs holds the model's weights byte for byte"
    );
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle_dir.join("config.json")).unwrap()).unwrap();
    let env = runtime["process"]["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e == "WHARF_MODEL_DIR=/models/fraud-detector"),
        "{env:?}"
    );
}

#[tokio::test]
async fn trivy_reads_our_layout_with_input() {
    let trivy = std::env::var("WHARF_TEST_TRIVY").unwrap_or_else(|_| {
        panic!("WHARF_TEST_TRIVY is not set: run the tests with `cargo xtask test`, or `eval \"$(cargo xtask backends env)\"` first")
    });
    let root = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::open(root.path()).unwrap();
    let packaged = package_modelpack(
        &ModelSpec::new(example_model(), "fraud-detector", "1.4.0"),
        staging.path(),
    )
    .unwrap();
    packaged
        .push(&reg, "models/fraud-detector", Some("v1"))
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(trivy)
        .args([
            "image",
            "--quiet",
            "--format",
            "cyclonedx",
            "--skip-db-update",
            "--offline-scan",
            "--cache-dir",
        ])
        .arg(cache.path())
        .arg("--input")
        .arg(reg.layout_dir("models/fraud-detector").unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trivy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        bom["bomFormat"], "CycloneDX",
        "trivy produced an SBOM from our layout"
    );
    assert_eq!(bom["metadata"]["tools"]["components"][0]["name"], "trivy");
}
