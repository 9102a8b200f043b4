//! The audit-log operations: appends to the file store and to S3 (moto), and verification.

use std::time::Instant;

use anyhow::Context;
use wharf_audit::WormLog;
use wharf_core::audit::{AppendOptions, VerifyRange};
use wharf_core::{
    Actor, AuditEvent, AuditLog, Digest, Environment, Evidence, ModelId, RunOutcome, RunRecord,
    StageRecord, StageStatus,
};

/// A run record the size of a real one (two stages with evidence and details, ~1.3 KB).
pub(crate) fn record(i: usize) -> AuditEvent {
    let now = time::OffsetDateTime::now_utc();
    let mut governance = StageRecord::new(
        "governance",
        StageStatus::Passed,
        now,
        14,
        "10 rules passed",
    );
    governance.evidence.push(Evidence::of_bytes(
        "policy-decision",
        format!("{i}").as_bytes(),
    ));
    governance.details = serde_json::json!({
        "allow": true, "rules": 10, "warnings": [],
        "metrics": {"accuracy": 0.931, "f1": 0.874, "demographic_parity": 0.041, "drift": 0.12}
    });
    let mut package = StageRecord::new(
        "package",
        StageStatus::Passed,
        now,
        812,
        "pushed models/fraud-detector",
    );
    package.evidence.push(Evidence::of_bytes(
        "image-manifest",
        format!("m{i}").as_bytes(),
    ));
    AuditEvent::Run(RunRecord {
        run_id: format!("run-bench-{}-{i}", std::process::id()),
        project: "fraud-detector".into(),
        started_at: now,
        finished_at: now,
        environment: Environment::Prod,
        actor: Actor::oidc(
            "repo:acme/models:ref:refs/heads/main",
            "https://token.actions.githubusercontent.com",
        ),
        source_commit: Some("3f2a9c1d4e5b6a7980f1e2d3c4b5a69788796a5b".into()),
        model: Some(ModelId::new("fraud-detector", "1.4.2")),
        image_digest: Some(Digest::sha256_of(format!("image{i}").as_bytes())),
        outcome: RunOutcome::Passed,
        stages: vec![governance, package],
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn append_all<L: AuditLog>(log: &L, n: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    for i in 0..n {
        log.append(&record(i), &AppendOptions::default()).await?;
    }
    let s = start.elapsed().as_secs_f64();
    println!("{n} appends in {s:.2} s: {:.0} appends/s", n as f64 / s);
    Ok(())
}

/// Append `n` records.
pub(crate) fn append<S: wharf_audit::WormStore>(log: &WormLog<S>, n: usize) -> anyhow::Result<()> {
    runtime()?.block_on(append_all(log, n))
}

/// Create a bucket with Object Lock at `endpoint` and append `n` records to it.
pub(crate) fn append_s3(endpoint: &str, bucket: &str, n: usize) -> anyhow::Result<()> {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    runtime()?.block_on(async {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        client
            .create_bucket()
            .bucket(bucket)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .context("creating the bucket")?;
        let store = wharf_audit::S3Store::connect(
            client,
            bucket,
            "audit/",
            wharf_audit::s3::RetentionPolicy::compliance_days(1),
        )
        .await?;
        append_all(&WormLog::new(store), n).await
    })
}

/// Verify the whole log.
pub(crate) fn verify<S: wharf_audit::WormStore>(log: &WormLog<S>) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let start = Instant::now();
        let report = log.verify_with(&VerifyRange::default(), None).await?;
        let s = start.elapsed().as_secs_f64();
        anyhow::ensure!(report.is_intact(), "the log does not verify: {report}");
        println!(
            "{} records verified in {s:.2} s: {:.0} records/s",
            report.checked,
            report.checked as f64 / s
        );
        Ok(())
    })
}
