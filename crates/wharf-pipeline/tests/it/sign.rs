//! The sign and verify-signature stages on a real OCI layout: sign after package, verify
//! right after; in prod a missing or foreign signature blocks the run, in dev it warns.

use std::sync::Arc;

use wharf_core::memory::MemoryAuditLog;
use wharf_core::{Actor, Environment, Registry, RunOutcome, StageStatus};
use wharf_pipeline::stages::{PackageStage, SignStage, TagPolicy, VerifySignatureStage};
use wharf_pipeline::{Pipeline, RunReport};
use wharf_registry::layout::LayoutRegistry;
use wharf_sign::EcdsaP256Key;

use crate::examples_dir;

const REPO: &str = "models/fraud-detector";

fn package(reg: Arc<dyn Registry>, root: &std::path::Path) -> PackageStage {
    PackageStage::new(
        examples_dir().join("models/fraud-detector/model.yaml"),
        reg,
        REPO,
        root.join(".staging"),
        TagPolicy::ContentDerived,
    )
}

async fn run(env: Environment, stages: Vec<Box<dyn wharf_pipeline::Stage>>) -> RunReport {
    let mut b = Pipeline::builder("fraud", env, Actor::local("u"));
    for s in stages {
        b = b.boxed_stage(s);
    }
    b.audit_log(Arc::new(MemoryAuditLog::new()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_then_verify_passes_and_a_second_run_adds_nothing() {
    let root = tempfile::tempdir().unwrap();
    let reg: Arc<dyn Registry> = Arc::new(LayoutRegistry::open(root.path()).unwrap());
    let key = Arc::new(EcdsaP256Key::generate().unwrap());
    for round in 0..2 {
        let sign = SignStage::new(
            reg.clone(),
            REPO,
            REPO,
            key.clone(),
            Arc::new(key.public_key().clone()),
        );
        let verify = sign.verify_stage();
        let report = run(
            Environment::Prod,
            vec![
                Box::new(package(reg.clone(), root.path())),
                Box::new(sign),
                Box::new(verify),
            ],
        )
        .await;
        assert_eq!(
            report.record.outcome,
            RunOutcome::Passed,
            "{:?}",
            report.stages
        );
        let summary = &report.record.stages[1].summary;
        if round == 0 {
            assert!(summary.contains("(1 signature)"), "{summary}");
            assert!(
                report.record.stages[1]
                    .evidence
                    .iter()
                    .any(|e| e.kind == "signature-manifest")
            );
        } else {
            assert!(
                summary.contains("already carries a valid signature"),
                "{summary}"
            );
        }
        assert!(
            report.record.stages[2].summary.contains("1 signature on"),
            "{}",
            report.record.stages[2].summary
        );
    }
}

#[tokio::test]
async fn prod_blocks_an_image_without_a_valid_signature_and_dev_warns() {
    let root = tempfile::tempdir().unwrap();
    let reg: Arc<dyn Registry> = Arc::new(LayoutRegistry::open(root.path()).unwrap());
    let ours = EcdsaP256Key::generate().unwrap();
    let verify = || -> Box<dyn wharf_pipeline::Stage> {
        Box::new(VerifySignatureStage::new(
            reg.clone(),
            REPO,
            REPO,
            Arc::new(ours.public_key().clone()),
        ))
    };
    // Unsigned.
    let report = run(
        Environment::Prod,
        vec![Box::new(package(reg.clone(), root.path())), verify()],
    )
    .await;
    assert_eq!(report.record.outcome, RunOutcome::Blocked);
    let s = &report.record.stages[1];
    assert_eq!(s.status, StageStatus::Blocked);
    assert!(
        s.summary.contains("has no cosign signature")
            && s.summary.contains("prod requires a verified signature"),
        "{}",
        s.summary
    );
    let report = run(
        Environment::Dev,
        vec![Box::new(package(reg.clone(), root.path())), verify()],
    )
    .await;
    assert_eq!(report.record.outcome, RunOutcome::Passed);
    assert_eq!(report.record.stages[1].status, StageStatus::Warned);

    // Signed, but by someone else's key.
    let stranger = Arc::new(EcdsaP256Key::generate().unwrap());
    let sign = SignStage::new(
        reg.clone(),
        REPO,
        REPO,
        stranger.clone(),
        Arc::new(stranger.public_key().clone()),
    );
    let report = run(
        Environment::Prod,
        vec![
            Box::new(package(reg.clone(), root.path())),
            Box::new(sign),
            verify(),
        ],
    )
    .await;
    assert_eq!(report.record.outcome, RunOutcome::Blocked);
    assert!(
        report.record.stages[2]
            .summary
            .contains("does not verify with key"),
        "{}",
        report.record.stages[2].summary
    );
}

#[tokio::test]
async fn the_bundle_format_signs_as_a_referrer_and_verifies() {
    use wharf_pipeline::stages::SignFormat;
    let root = tempfile::tempdir().unwrap();
    let reg: Arc<dyn Registry> = Arc::new(LayoutRegistry::open(root.path()).unwrap());
    let key = Arc::new(EcdsaP256Key::generate().unwrap());
    for round in 0..2 {
        let sign = SignStage::new(
            reg.clone(),
            REPO,
            REPO,
            key.clone(),
            Arc::new(key.public_key().clone()),
        )
        .with_format(SignFormat::Bundle);
        let verify = sign.verify_stage();
        let report = run(
            Environment::Prod,
            vec![
                Box::new(package(reg.clone(), root.path())),
                Box::new(sign),
                Box::new(verify),
            ],
        )
        .await;
        assert_eq!(
            report.record.outcome,
            RunOutcome::Passed,
            "{:?}",
            report.stages
        );
        let summary = &report.record.stages[1].summary;
        if round == 0 {
            assert!(summary.contains("Sigstore bundle referrer"), "{summary}");
        } else {
            assert!(
                summary.contains("already carries a valid signature"),
                "{summary}"
            );
        }
    }
}

#[tokio::test]
async fn the_bundle_referrer_names_the_image_as_its_subject() {
    use wharf_pipeline::stages::SignFormat;
    let root = tempfile::tempdir().unwrap();
    let reg: Arc<dyn Registry> = Arc::new(LayoutRegistry::open(root.path()).unwrap());
    let key = Arc::new(EcdsaP256Key::generate().unwrap());
    let sign = SignStage::new(
        reg.clone(),
        REPO,
        REPO,
        key.clone(),
        Arc::new(key.public_key().clone()),
    )
    .with_format(SignFormat::Bundle);
    let report = run(
        Environment::Dev,
        vec![Box::new(package(reg.clone(), root.path())), Box::new(sign)],
    )
    .await;
    let image = report.record.image_digest.clone().unwrap();
    let referrers = reg
        .referrers(
            REPO,
            &image,
            &wharf_core::registry::ReferrersOptions::of_type(wharf_sign::bundle::BUNDLE_V03),
        )
        .await
        .unwrap();
    assert_eq!(referrers.len(), 1);
    let m = reg
        .fetch_manifest(REPO, &referrers[0].digest)
        .await
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    assert_eq!(
        m["artifactType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(m["subject"]["digest"], image.to_string());
    assert_eq!(
        m["annotations"]["dev.sigstore.bundle.content"],
        "dsse-envelope"
    );
    assert_eq!(
        m["annotations"]["dev.sigstore.bundle.predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
}

/// A stage that leaves an SBOM and scan results for the attest stage, as SBOM and scan
/// stages do.
struct Produces;

#[async_trait::async_trait]
impl wharf_pipeline::Stage for Produces {
    fn name(&self) -> &str {
        "produce"
    }

    async fn run(
        &self,
        ctx: &mut wharf_pipeline::RunContext,
    ) -> wharf_core::Result<wharf_pipeline::StageOutcome> {
        ctx.outputs.insert(
            wharf_pipeline::stages::SBOM_OUTPUT.into(),
            serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}),
        );
        ctx.outputs.insert(
            wharf_pipeline::stages::SCAN_OUTPUT.into(),
            serde_json::json!({"scanner": {"uri": "pkg:github/aquasecurity/trivy", "result": {}}}),
        );
        Ok(wharf_pipeline::StageOutcome::passed(
            "produced an SBOM and scan results",
        ))
    }
}

#[tokio::test]
async fn sbom_and_scan_outputs_are_attested_and_provenance_is_not_repeated() {
    use wharf_sign::attest::{
        CYCLONEDX_BOM, SLSA_PROVENANCE_V1, VULN_SCAN_V1, verify_attestations,
    };
    let root = tempfile::tempdir().unwrap();
    let reg: Arc<dyn Registry> = Arc::new(LayoutRegistry::open(root.path()).unwrap());
    let key = Arc::new(EcdsaP256Key::generate().unwrap());
    let mut image = None;
    for round in 0..2 {
        let sign = SignStage::new(
            reg.clone(),
            REPO,
            REPO,
            key.clone(),
            Arc::new(key.public_key().clone()),
        );
        let attest = wharf_pipeline::stages::AttestStage::new(
            &sign,
            examples_dir().join("models/fraud-detector/model.yaml"),
            "https://wharf.dev/test-builder",
        );
        let verify = sign
            .verify_stage()
            .require_attestation(CYCLONEDX_BOM)
            .require_attestation(VULN_SCAN_V1);
        let report = run(
            Environment::Prod,
            vec![
                Box::new(package(reg.clone(), root.path())),
                Box::new(Produces),
                Box::new(sign),
                Box::new(attest),
                Box::new(verify),
            ],
        )
        .await;
        assert_eq!(
            report.record.outcome,
            RunOutcome::Passed,
            "{:?}",
            report.stages
        );
        let summary = &report.record.stages[3].summary;
        if round == 0 {
            assert!(
                summary.contains("CycloneDX SBOM") && summary.contains("scan results"),
                "{summary}"
            );
            assert!(summary.contains("SLSA provenance"), "{summary}");
        } else {
            assert!(summary.contains("nothing added"), "{summary}");
        }
        image = report.record.image_digest.clone();
    }
    let image = image.unwrap();
    for (kind, n) in [
        (SLSA_PROVENANCE_V1, 1),
        (CYCLONEDX_BOM, 1),
        (VULN_SCAN_V1, 1),
    ] {
        let found = verify_attestations(reg.as_ref(), REPO, &image, key.public_key(), Some(kind))
            .await
            .unwrap();
        assert_eq!(found.len(), n, "{kind}");
    }
}
