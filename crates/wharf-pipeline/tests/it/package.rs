use std::sync::Arc;

use wharf_core::memory::{MemoryAuditLog, MemoryRegistry};
use wharf_core::registry::{ManifestBytes, PushManifestOptions, blob_stream_from};
use wharf_core::{
    Actor, Descriptor, Environment, ErrorKind, ImageManifest, Registry, RunOutcome, media_types,
};
use wharf_pipeline::stages::{GovernanceStage, PackageStage, TagPolicy};
use wharf_pipeline::{Config, Pipeline};
use wharf_registry::layout::LayoutRegistry;

use crate::examples_dir;

fn manifest() -> std::path::PathBuf {
    examples_dir().join("models/fraud-detector/model.yaml")
}

async fn run_with(
    registry: Arc<dyn Registry>,
    staging: &std::path::Path,
    tag: TagPolicy,
) -> wharf_pipeline::RunReport {
    let config = Config::load(&examples_dir().join("wharf.toml")).unwrap();
    Pipeline::builder("fraud", Environment::Dev, Actor::local("u"))
        .source_commit("0123456789abcdef0123456789abcdef01234567")
        .stage(GovernanceStage::new(
            config.governance(Environment::Dev),
            manifest(),
        ))
        .stage(PackageStage::new(
            manifest(),
            registry,
            "models/fraud-detector",
            staging,
            tag,
        ))
        .audit_log(Arc::new(MemoryAuditLog::new()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap()
}

#[tokio::test]
async fn packages_the_example_into_a_layout_and_records_the_digest() {
    let root = tempfile::tempdir().unwrap();
    let reg = Arc::new(LayoutRegistry::open(root.path()).unwrap());
    let report = run_with(
        reg.clone(),
        &root.path().join(".staging"),
        TagPolicy::Fixed("0123456789abcdef0123456789abcdef01234567".into()),
    )
    .await;
    assert_eq!(
        report.record.outcome,
        RunOutcome::Passed,
        "{:?}",
        report.stages
    );
    let digest = report
        .record
        .image_digest
        .clone()
        .expect("the run record names the image digest");
    let tagged = reg
        .resolve_tag(
            "models/fraud-detector",
            "0123456789abcdef0123456789abcdef01234567",
        )
        .await
        .unwrap();
    assert_eq!(tagged.digest, digest);
    let m = ImageManifest::from_slice(
        &reg.fetch_manifest("models/fraud-detector", &digest)
            .await
            .unwrap()
            .bytes,
        "m",
    )
    .unwrap();
    assert_eq!(
        m.artifact_type.as_deref(),
        Some(media_types::MODELPACK_MANIFEST)
    );
    let files: Vec<&str> = m
        .layers
        .iter()
        .map(|l| l.annotations["org.cncf.model.filepath"].as_str())
        .collect();
    assert_eq!(
        files,
        [
            "MODEL_CARD.md",
            "model.safetensors",
            "model.yaml",
            "predict.py",
            "requirements.txt",
            "train.py"
        ]
    );
    assert_eq!(
        m.annotations["org.cncf.model.revision"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    let stage = &report.record.stages[1];
    assert_eq!(stage.name, "package");
    assert_eq!(stage.evidence[0].digest, digest);
}

#[tokio::test]
async fn the_same_model_packages_to_the_same_digest_and_content_tags_follow_it() {
    let a = run_with(
        Arc::new(MemoryRegistry::new()),
        tempfile::tempdir().unwrap().path(),
        TagPolicy::ContentDerived,
    )
    .await;
    let b = run_with(
        Arc::new(MemoryRegistry::new()),
        tempfile::tempdir().unwrap().path(),
        TagPolicy::ContentDerived,
    )
    .await;
    let (da, db) = (
        a.record.image_digest.unwrap(),
        b.record.image_digest.unwrap(),
    );
    assert_eq!(da, db, "reproducible");
    assert_eq!(
        a.record.stages[1].details["tag"],
        format!("content-{}", da.short())
    );
}

#[tokio::test]
async fn an_existing_tag_with_other_content_is_never_moved() {
    let reg = Arc::new(MemoryRegistry::new());
    // Someone already pushed different content under the commit tag.
    let cfg = Descriptor::for_bytes(media_types::OCI_EMPTY, b"{}");
    reg.push_blob(
        "models/fraud-detector",
        &cfg.digest,
        blob_stream_from(&b"{}"[..]),
        &Default::default(),
    )
    .await
    .unwrap();
    let other = ManifestBytes::new(
        media_types::OCI_MANIFEST,
        ImageManifest::new(cfg, vec![]).to_vec(),
    );
    reg.push_manifest(
        "models/fraud-detector",
        &other,
        &PushManifestOptions::tagged("abc"),
    )
    .await
    .unwrap();
    let report = run_with(
        reg.clone(),
        tempfile::tempdir().unwrap().path(),
        TagPolicy::Fixed("abc".into()),
    )
    .await;
    assert_eq!(report.record.outcome, RunOutcome::Failed);
    assert_eq!(report.error_kind(), Some(ErrorKind::Conflict));
    assert!(
        report.record.stages[1]
            .summary
            .contains("tags are immutable"),
        "{}",
        report.record.stages[1].summary
    );
    assert_eq!(
        reg.resolve_tag("models/fraud-detector", "abc")
            .await
            .unwrap()
            .digest,
        other.descriptor.digest
    );
    assert!(report.record.image_digest.is_none(), "nothing was pushed");
}
