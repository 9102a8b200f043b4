#![allow(clippy::unwrap_used)]
//! The OCI layout and packaging work on any executor: no Tokio runtime at all
//! (`futures::executor::block_on` on a plain thread), a current-thread runtime without
//! timers or I/O, and a multi-thread runtime. The HTTP client, which runs on Tokio, answers
//! outside one with an error naming what to do, never a panic. Before, every layout call
//! panicked outside a runtime (`tokio::fs`).

use wharf_core::Registry;
use wharf_registry::layout::LayoutRegistry;
use wharf_registry::package::{ModelSpec, package_modelpack};

/// The registry conformance suite on a layout, then a model packaged, pushed, read back
/// and checked by fsck.
async fn exercise(dir: std::path::PathBuf) {
    let reg = LayoutRegistry::open(dir.join("oci")).unwrap();
    wharf_core::conformance::registry(&reg, "wharf").await;

    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("weights.bin"), vec![7u8; 3 << 20]).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    let packaged =
        package_modelpack(&ModelSpec::new(&model, "m", "1.0.0"), &dir.join("staging")).unwrap();
    let pushed = packaged.push(&reg, "models/m", Some("v1")).await.unwrap();
    assert_eq!(&pushed.digest, packaged.digest());
    let resolved = reg.resolve_tag("models/m", "v1").await.unwrap();
    assert_eq!(&resolved.digest, packaged.digest());
    let report = reg.fsck(false).await.unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
}

#[test]
fn layout_without_any_runtime() {
    let dir = tempfile::tempdir().unwrap();
    futures::executor::block_on(exercise(dir.path().to_path_buf()));
}

#[test]
fn layout_on_a_current_thread_runtime_without_timers_or_io() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(exercise(dir.path().to_path_buf()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_on_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    exercise(dir.path().to_path_buf()).await;
}

#[cfg(feature = "distribution")]
#[test]
fn the_http_client_outside_a_runtime_is_an_error_not_a_panic() {
    use wharf_core::ErrorKind;
    use wharf_registry::distribution::DistributionClient;
    let client = DistributionClient::builder("http://127.0.0.1:9")
        .build()
        .unwrap();
    let digest = wharf_core::Digest::sha256_of(b"x");
    let err = futures::executor::block_on(client.blob_exists("models/m", &digest)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let msg = err.to_string();
    assert!(msg.contains("needs a Tokio runtime"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}
