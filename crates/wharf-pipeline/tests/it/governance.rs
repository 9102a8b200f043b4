use std::sync::Arc;

use futures::executor::block_on;
use wharf_core::memory::MemoryAuditLog;
use wharf_core::{Actor, Environment, RunOutcome};
use wharf_pipeline::stages::GovernanceStage;
use wharf_pipeline::{Config, Pipeline};

use crate::examples_dir;

fn run(manifest: &str, env: Environment) -> wharf_pipeline::RunReport {
    let config = Config::load(&examples_dir().join("wharf.toml")).unwrap();
    let manifest = examples_dir().join("models/fraud-detector").join(manifest);
    let p = Pipeline::builder("fraud", env, Actor::local("u"))
        .stage(GovernanceStage::new(config.governance(env), manifest))
        .audit_log(Arc::new(MemoryAuditLog::new()))
        .build()
        .unwrap();
    block_on(p.run()).unwrap()
}

#[test]
fn the_example_passes_and_records_model_and_evidence() {
    let report = run("model.yaml", Environment::Prod);
    assert_eq!(
        report.record.outcome,
        RunOutcome::Passed,
        "{:?}",
        report.stages
    );
    let model = report.record.model.as_ref().unwrap();
    assert_eq!(
        (model.name.as_str(), model.version.as_str()),
        ("fraud-detector", "1.4.0")
    );
    let stage = &report.record.stages[0];
    let kinds: Vec<&str> = stage.evidence.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["model-manifest", "policy-decision"]);
    let manifest = std::fs::read(examples_dir().join("models/fraud-detector/model.yaml")).unwrap();
    assert_eq!(
        stage.evidence[0].digest,
        wharf_core::Digest::sha256_of(&manifest)
    );
    assert_eq!(stage.details["allow"], true);
}

#[test]
fn the_example_config_tightens_accuracy_in_prod_only() {
    // examples/wharf.toml sets min_accuracy 0.88 for prod; 0.87 passes dev and fails prod.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(examples_dir().join("models/fraud-detector/model.yaml"))
        .unwrap()
        .replace("accuracy: 0.903", "accuracy: 0.87");
    let path = dir.path().join("model.yaml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&examples_dir().join("wharf.toml")).unwrap();
    for (env, expected) in [
        (Environment::Dev, RunOutcome::Passed),
        (Environment::Prod, RunOutcome::Blocked),
    ] {
        let p = Pipeline::builder("fraud", env, Actor::local("u"))
            .stage(GovernanceStage::new(config.governance(env), &path))
            .audit_log(Arc::new(MemoryAuditLog::new()))
            .build()
            .unwrap();
        assert_eq!(block_on(p.run()).unwrap().record.outcome, expected, "{env}");
    }
}

#[test]
fn invalid_manifests_block_with_value_and_threshold_in_the_details() {
    let report = run("invalid-max_drift.yaml", Environment::Test);
    assert_eq!(report.record.outcome, RunOutcome::Blocked);
    assert_eq!(
        report.stages[0].details,
        [
            "[max_drift] drift.score = 0.42 (threshold: 0.3): drift score is 0.42, at or above the limit of 0.3 in test: the data has moved since training; retrain on recent data"
        ]
    );
}

#[test]
fn a_broken_manifest_fails_the_run_with_the_file_named_and_is_still_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.yaml");
    std::fs::write(&path, "apiVersion: wharf.dev/v1\nkind: [\n").unwrap();
    let log = Arc::new(MemoryAuditLog::new());
    let p = Pipeline::builder("fraud", Environment::Dev, Actor::local("u"))
        .stage(GovernanceStage::new(Default::default(), &path))
        .audit_log(log.clone())
        .build()
        .unwrap();
    let report = block_on(p.run()).unwrap();
    assert_eq!(report.record.outcome, RunOutcome::Failed);
    assert_eq!(report.error_kind(), Some(wharf_core::ErrorKind::Invalid));
    assert!(
        report.record.stages[0]
            .summary
            .contains(&path.display().to_string()),
        "{}",
        report.record.stages[0].summary
    );
    assert_eq!(log.records().len(), 1);
}

#[test]
fn a_missing_policy_dir_fails_the_stage_with_a_clear_error() {
    let mut g = wharf_policy::GovernanceConfig::default();
    g.policy_dir = Some("/no/such/policies".into());
    let p = Pipeline::builder("fraud", Environment::Dev, Actor::local("u"))
        .stage(GovernanceStage::new(
            g,
            examples_dir().join("models/fraud-detector/model.yaml"),
        ))
        .audit_log(Arc::new(MemoryAuditLog::new()))
        .build()
        .unwrap();
    let report = block_on(p.run()).unwrap();
    assert_eq!(
        report.record.stages[0].summary,
        "error: policy directory /no/such/policies does not exist: create it or fix `governance.policy_dir`"
    );
}

#[test]
fn thousands_of_violations_are_counted_and_the_first_listed() {
    // 3000 unapproved dependencies: 3000 violations of one rule.
    let dir = tempfile::tempdir().unwrap();
    let deps: String = (0..3000)
        .map(|i| format!("  - {{ name: unapproved-{i:05}, version: 1.0.{i} }}\n"))
        .collect();
    let text = std::fs::read_to_string(examples_dir().join("models/fraud-detector/model.yaml"))
        .unwrap()
        .replace(
            "dependencies:\n  - { name: numpy, version: 1.21.0 }\n  - { name: joblib, version: 1.1.0 }\n",
            &format!("dependencies:\n{deps}"),
        );
    assert!(
        text.contains("unapproved-02999"),
        "the example's dependencies changed"
    );
    let path = dir.path().join("model.yaml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&examples_dir().join("wharf.toml")).unwrap();
    let p = Pipeline::builder("fraud", Environment::Prod, Actor::local("u"))
        .stage(GovernanceStage::new(
            config.governance(Environment::Prod),
            &path,
        ))
        .audit_log(Arc::new(MemoryAuditLog::new()))
        .build()
        .unwrap();
    let report = block_on(p.run()).unwrap();
    assert_eq!(report.record.outcome, RunOutcome::Blocked);
    let stage = &report.record.stages[0];
    assert!(
        stage
            .summary
            .starts_with("1 of 10 rules violated (3000 violations) for fraud-detector 1.4.0"),
        "{}",
        stage.summary
    );
    let listed = GovernanceStage::MAX_LISTED_VIOLATIONS;
    assert_eq!(stage.details["violation_count"], 3000);
    assert_eq!(
        stage.details["violations"].as_array().unwrap().len(),
        listed
    );
    assert_eq!(
        stage.details["rules_violated"],
        serde_json::json!(["dependency_allowlist"])
    );
    assert_eq!(
        stage.details["violations"][0]["value"], "unapproved-00000",
        "the first ones, in order"
    );
    let lines = &report.stages[0].details;
    assert_eq!(lines.len(), listed + 1, "{lines:?}");
    let decision = &stage.evidence[1];
    assert_eq!(decision.kind, "policy-decision");
    assert!(
        lines[listed].starts_with(&format!(
            "… and {} more violations (all 3000 in the policy-decision evidence, {})",
            3000 - listed,
            decision.digest
        )),
        "{}",
        lines[listed]
    );
    let size = serde_json::to_vec(&report.record).unwrap().len();
    assert!(size < 64 * 1024, "{size} bytes");
}

/// `Pipeline::from_config`: a project's pipeline in three lines runs on the project's own
/// thresholds (prod's 0.88 from `wharf.toml`, not the 0.85 default) and writes to the audit
/// log `[audit]` names, with a signed checkpoint — the same settings `cargo xtask pipeline`
/// uses.
#[test]
fn from_config_uses_the_projects_thresholds_and_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(examples_dir().join("models/fraud-detector/model.yaml"))
        .unwrap()
        .replace("accuracy: 0.903", "accuracy: 0.87");
    let manifest = dir.path().join("model.yaml");
    std::fs::write(&manifest, text).unwrap();
    let mut config = Config::load(&examples_dir().join("wharf.toml")).unwrap();
    config.model.manifest = manifest; // absolute: replaces the model dir's
    config.audit.dir = Some(dir.path().join("audit"));
    config.audit.checkpoint_key = Some(dir.path().join("checkpoint.pem").display().to_string());
    for (env, expected) in [
        (Environment::Dev, RunOutcome::Passed),
        (Environment::Prod, RunOutcome::Blocked),
    ] {
        let report = block_on(async {
            Pipeline::from_config(&config, env, Actor::local("u"))
                .await?
                .build()?
                .run()
                .await
        })
        .unwrap();
        assert_eq!(report.record.outcome, expected, "{env}");
        assert!(
            report
                .receipt
                .location
                .starts_with(&dir.path().join("audit").display().to_string()),
            "{}",
            report.receipt.location
        );
    }
    let log = block_on(config.open_audit_log()).unwrap();
    let verified = block_on(wharf_core::AuditLog::verify(
        &log,
        &wharf_core::audit::VerifyRange::all(),
    ))
    .unwrap();
    assert!(
        verified.is_intact() && verified.checked == 2,
        "{verified:?}"
    );
    assert!(dir.path().join("checkpoint.pem").exists());
    assert!(
        dir.path()
            .join("audit/checkpoints")
            .read_dir()
            .unwrap()
            .count()
            >= 2
    );
}
