//! Shared by the integration tests: a small image pushed to a registry, and the harness's
//! tools (each test binary uses a part of this module).
#![allow(dead_code)]

use std::path::PathBuf;

use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions, blob_stream_from};
use wharf_core::{Digest, Registry};

/// Push an image (an empty config and one layer holding `content`) to `repo`, tagged `tag`;
/// its manifest digest.
pub(crate) async fn push_image(
    reg: &dyn Registry,
    repo: &str,
    content: &[u8],
    tag: &str,
) -> Digest {
    let mut d = Vec::new();
    for blob in [&b"{}"[..], content] {
        let digest = Digest::sha256_of(blob);
        reg.push_blob(
            repo,
            &digest,
            blob_stream_from(blob.to_vec()),
            &PushBlobOptions::default(),
        )
        .await
        .expect("push blob");
        d.push((digest, blob.len()));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d[0].0, "size": d[0].1},
        "layers": [{"mediaType": "application/octet-stream", "digest": d[1].0, "size": d[1].1}],
    }))
    .expect("manifest");
    reg.push_manifest(
        repo,
        &ManifestBytes::new(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.clone(),
        ),
        &PushManifestOptions::tagged(tag),
    )
    .await
    .expect("push manifest");
    Digest::sha256_of(&manifest)
}

/// The value of the harness variable `var` (a backend's address or a tool's program).
pub(crate) fn harness(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests with `cargo xtask test`"))
}

/// The `node_modules` of the harness's sigstore-js install (for `NODE_PATH`).
pub(crate) fn sigstore_js_modules() -> PathBuf {
    let mut p = PathBuf::from(harness("WHARF_TEST_SIGSTORE_JS"));
    while p.file_name().is_some_and(|n| n != "node_modules") {
        p.pop();
    }
    p
}
