use std::sync::Arc;

use async_trait::async_trait;
use futures::executor::block_on;
use wharf_core::audit::{AppendOptions, AuditReceipt, ChainReport, StoredRecord, VerifyRange};
use wharf_core::memory::MemoryAuditLog;
use wharf_core::{
    Actor, AuditEvent, AuditLog, Environment, Error, ErrorKind, Evidence, RunOutcome, StageStatus,
};
use wharf_pipeline::{Pipeline, PipelineError, RunContext, Stage, StageOutcome};

/// A stage that does what it is told.
struct Scripted {
    name: &'static str,
    behaviour: Behaviour,
}

#[derive(Clone, Copy)]
enum Behaviour {
    Pass,
    Warn,
    Block,
    Error(ErrorKind),
    Panic,
}

#[async_trait]
impl Stage for Scripted {
    fn name(&self) -> &str {
        self.name
    }
    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        ctx.outputs
            .insert(self.name.into(), serde_json::json!(true));
        match self.behaviour {
            Behaviour::Pass => {
                Ok(StageOutcome::passed("fine").with_evidence(Evidence::of_bytes("note", b"fine")))
            }
            Behaviour::Warn => Ok(StageOutcome::warned("look at this")),
            Behaviour::Block => {
                Ok(StageOutcome::blocked("gate says no").with_details(vec!["rule x".into()]))
            }
            Behaviour::Error(kind) => Err(Error::new(kind, "backend unreachable")),
            Behaviour::Panic => panic!("stage bug"),
        }
    }
}

fn stage(name: &'static str, behaviour: Behaviour) -> Scripted {
    Scripted { name, behaviour }
}

fn run(stages: Vec<Scripted>) -> (wharf_pipeline::RunReport, Arc<MemoryAuditLog>) {
    let log = Arc::new(MemoryAuditLog::new());
    let mut b = Pipeline::builder("demo", Environment::Prod, Actor::local("tester"))
        .source_commit("0123456789abcdef0123456789abcdef01234567")
        .audit_log(log.clone());
    for s in stages {
        b = b.stage(s);
    }
    let report = block_on(b.build().unwrap().run()).unwrap();
    (report, log)
}

fn statuses(report: &wharf_pipeline::RunReport) -> Vec<StageStatus> {
    report.record.stages.iter().map(|s| s.status).collect()
}

#[test]
fn a_passing_run_is_recorded_with_its_evidence() {
    let (report, log) = run(vec![
        stage("a", Behaviour::Pass),
        stage("b", Behaviour::Warn),
    ]);
    assert_eq!(
        report.record.outcome,
        RunOutcome::Passed,
        "a warning does not fail the run"
    );
    assert_eq!(
        statuses(&report),
        [StageStatus::Passed, StageStatus::Warned]
    );
    let records = log.records();
    assert_eq!(records.len(), 1);
    let AuditEvent::Run(stored) = &records[0].event else {
        panic!("a run event")
    };
    assert_eq!(stored, &report.record);
    assert_eq!(stored.actor, Actor::local("tester"));
    assert_eq!(stored.environment, Environment::Prod);
    assert_eq!(
        stored.source_commit.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(
        stored.stages[0].evidence[0].digest,
        wharf_core::Digest::sha256_of(b"fine")
    );
    assert!(stored.finished_at >= stored.started_at);
    assert_eq!(report.receipt.sequence, 0);
}

#[test]
fn a_blocking_gate_skips_the_rest_and_is_recorded_as_blocked() {
    let (report, log) = run(vec![
        stage("gate", Behaviour::Block),
        stage("deploy", Behaviour::Pass),
    ]);
    assert_eq!(report.record.outcome, RunOutcome::Blocked);
    // Recorded as blocked, not failed: an auditor tells a gate's "no" from an error.
    assert_eq!(
        statuses(&report),
        [StageStatus::Blocked, StageStatus::Skipped]
    );
    assert_eq!(report.stages[0].details, ["rule x"]);
    assert_eq!(report.error_kind(), None);
    assert_eq!(log.records().len(), 1);
}

#[test]
fn an_erroring_stage_fails_the_run_with_its_kind() {
    let (report, log) = run(vec![
        stage("push", Behaviour::Error(ErrorKind::Transient)),
        stage("after", Behaviour::Pass),
    ]);
    assert_eq!(report.record.outcome, RunOutcome::Failed);
    assert_eq!(report.error_kind(), Some(ErrorKind::Transient));
    assert_eq!(
        statuses(&report),
        [StageStatus::Failed, StageStatus::Skipped]
    );
    assert_eq!(
        report.record.stages[0].summary,
        "error: backend unreachable"
    );
    assert_eq!(report.record.stages[0].details["error_kind"], "transient");
    assert_eq!(log.records().len(), 1);
}

#[test]
fn a_panicking_stage_is_recorded_not_lost() {
    let (report, log) = run(vec![
        stage("ok", Behaviour::Pass),
        stage("bug", Behaviour::Panic),
        stage("never", Behaviour::Pass),
    ]);
    assert_eq!(report.record.outcome, RunOutcome::Failed);
    assert_eq!(
        statuses(&report),
        [
            StageStatus::Passed,
            StageStatus::Failed,
            StageStatus::Skipped
        ]
    );
    assert_eq!(report.record.stages[1].summary, "stage panicked: stage bug");
    assert_eq!(report.error_kind(), Some(ErrorKind::Internal));
    assert_eq!(log.records().len(), 1, "exactly one record");
}

#[test]
fn an_empty_pipeline_still_records_the_run() {
    let (report, log) = run(vec![]);
    assert_eq!(report.record.outcome, RunOutcome::Passed);
    assert_eq!(log.records().len(), 1);
}

#[test]
fn a_pipeline_without_an_audit_log_cannot_be_built() {
    let err = Pipeline::builder("demo", Environment::Dev, Actor::local("u"))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline is missing an audit log: every run must end in an audit record; pass one with .audit_log(..)"
    );
}

/// An audit log whose store is broken (or panics).
#[derive(Debug)]
struct BrokenLog {
    panic: bool,
}

#[async_trait]
impl AuditLog for BrokenLog {
    async fn append(&self, _: &AuditEvent, _: &AppendOptions) -> wharf_core::Result<AuditReceipt> {
        if self.panic {
            panic!("store exploded");
        }
        Err(Error::new(ErrorKind::Denied, "bucket refuses writes"))
    }
    async fn read(&self, _: u64) -> wharf_core::Result<StoredRecord> {
        Err(Error::not_found("empty"))
    }
    async fn head(&self) -> wharf_core::Result<Option<AuditReceipt>> {
        Ok(None)
    }
    async fn verify(&self, _: &VerifyRange) -> wharf_core::Result<ChainReport> {
        Err(Error::not_found("empty"))
    }
}

#[test]
fn a_failed_audit_write_fails_the_run_and_hands_back_the_record() {
    for panic in [false, true] {
        let p = Pipeline::builder("demo", Environment::Dev, Actor::local("u"))
            .stage(stage("a", Behaviour::Pass))
            .audit_log(Arc::new(BrokenLog { panic }))
            .build()
            .unwrap();
        match block_on(p.run()) {
            Err(PipelineError::Audit { record, source }) => {
                assert_eq!(
                    record.outcome,
                    RunOutcome::Passed,
                    "the stages passed; the run still fails"
                );
                assert_eq!(record.stages.len(), 1);
                if panic {
                    assert!(
                        source
                            .to_string()
                            .contains("audit log panicked: store exploded"),
                        "{source}"
                    );
                } else {
                    assert_eq!(source.kind(), ErrorKind::Denied);
                }
            }
            other => panic!("expected an audit error, got {other:?}"),
        }
    }
}

#[test]
fn stages_share_the_context_and_environment_policy() {
    struct Reader;
    #[async_trait]
    impl Stage for Reader {
        fn name(&self) -> &str {
            "reader"
        }
        async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
            assert!(ctx.outputs.contains_key("writer"), "sees earlier outputs");
            assert_eq!(ctx.policy.replicas, 7, "sees the configured policy");
            Ok(StageOutcome::passed("read"))
        }
    }
    let log = Arc::new(MemoryAuditLog::new());
    let p = Pipeline::builder("demo", Environment::Prod, Actor::local("u"))
        .environment_policy(Environment::Prod.policy().with_replicas(7))
        .stage(stage("writer", Behaviour::Pass))
        .stage(Reader)
        .audit_log(log)
        .build()
        .unwrap();
    assert_eq!(p.stage_names(), ["writer", "reader"]);
    let report = block_on(p.run()).unwrap();
    assert_eq!(
        report.record.outcome,
        RunOutcome::Passed,
        "{:?}",
        report.record.stages
    );
}

/// A stage whose result is far larger than an audit record may be.
struct Huge;

#[async_trait]
impl Stage for Huge {
    fn name(&self) -> &str {
        "huge"
    }
    async fn run(&self, _ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let items: Vec<serde_json::Value> = (0..20_000)
            .map(|i| serde_json::json!({ "n": i, "text": "x".repeat(100) }))
            .collect();
        let mut outcome = StageOutcome::blocked(format!("{}\nsecond line", "s".repeat(5000)))
            .with_details((0..5000).map(|i| format!("line {i}")).collect())
            .with_data(
                serde_json::json!({ "items": items, "total": 20_000, "long": "y".repeat(100_000) }),
            );
        for i in 0..100 {
            outcome = outcome.with_evidence(Evidence::of_bytes("part", format!("{i}").as_bytes()));
        }
        Ok(outcome)
    }
}

#[test]
fn a_huge_stage_result_is_capped_so_the_run_is_still_recorded() {
    let log = Arc::new(MemoryAuditLog::new());
    let mut b =
        Pipeline::builder("demo", Environment::Prod, Actor::local("tester")).audit_log(log.clone());
    for _ in 0..40 {
        b = b.stage(Huge);
    }
    // The first blocks, so the rest are recorded as skipped.
    let report = block_on(b.build().unwrap().run()).unwrap();
    assert_eq!(report.record.outcome, RunOutcome::Blocked);
    assert_eq!(log.records().len(), 1);
    let size = serde_json::to_vec(&AuditEvent::Run(report.record.clone()))
        .unwrap()
        .len();
    assert!(size <= Pipeline::MAX_RECORD_BYTES, "{size} bytes");
    let stage = &report.record.stages[0];
    assert!(!stage.summary.contains('\n'), "one line");
    assert_eq!(
        stage.summary.chars().count(),
        Pipeline::MAX_SUMMARY_CHARS + 1,
        "cut, with a mark"
    );
    assert!(stage.summary.ends_with('…'));
    // Counts plus the first items, and the full details pinned by digest.
    let capped = &stage.details["capped"];
    assert_eq!(capped["truncated"]["/items"], 20_000, "{capped}");
    assert_eq!(capped["evidence_total"], 100);
    assert_eq!(stage.details["total"], 20_000);
    assert_eq!(
        stage.details["items"].as_array().unwrap().len(),
        Pipeline::MAX_LISTED_ITEMS
    );
    assert_eq!(stage.details["items"][3]["n"], 3);
    assert_eq!(
        stage.details["long"].as_str().unwrap().chars().count(),
        1025
    );
    let items: Vec<serde_json::Value> = (0..20_000)
        .map(|i| serde_json::json!({ "n": i, "text": "x".repeat(100) }))
        .collect();
    let full = serde_json::to_vec(
        &serde_json::json!({ "items": items, "total": 20_000, "long": "y".repeat(100_000) }),
    )
    .unwrap();
    let digest = wharf_core::Digest::sha256_of(&full);
    assert_eq!(capped["digest"], digest.to_string());
    assert_eq!(capped["bytes"], full.len());
    assert_eq!(stage.evidence.len(), Pipeline::MAX_EVIDENCE);
    let pinned = stage.evidence.last().unwrap();
    assert_eq!(
        (pinned.kind.as_str(), &pinned.digest),
        ("stage-details", &digest)
    );
    // People see the first lines and a count of the rest.
    let lines = &report.stages[0].details;
    assert_eq!(lines.len(), Pipeline::MAX_DETAIL_LINES + 1);
    assert_eq!(lines.last().unwrap(), "… and 4950 more (not shown)");
}

/// Passes with the most a stage may record, short of capped details: a full summary and
/// evidence list with long locations.
struct Wide;

#[async_trait]
impl Stage for Wide {
    fn name(&self) -> &str {
        "wide"
    }
    async fn run(&self, _ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let mut outcome =
            StageOutcome::passed("s".repeat(2000)).with_data(serde_json::json!({ "n": 1 }));
        for i in 0..40 {
            outcome = outcome.with_evidence(
                Evidence::of_bytes("part", format!("{i}").as_bytes())
                    .with_location("l".repeat(2000)),
            );
        }
        Ok(outcome)
    }
}

#[test]
fn many_stages_with_large_results_still_fit_one_record() {
    let log = Arc::new(MemoryAuditLog::new());
    let mut b =
        Pipeline::builder("demo", Environment::Prod, Actor::local("tester")).audit_log(log.clone());
    for _ in 0..200 {
        b = b.stage(Wide);
    }
    let report = block_on(b.build().unwrap().run()).unwrap();
    assert_eq!(report.record.outcome, RunOutcome::Passed);
    assert_eq!(log.records().len(), 1);
    let size = serde_json::to_vec(&AuditEvent::Run(report.record.clone()))
        .unwrap()
        .len();
    assert!(size <= Pipeline::MAX_RECORD_BYTES, "{size} bytes");
    assert_eq!(report.record.stages.len(), 33);
    assert_eq!(
        report.record.stages[32].summary,
        "168 more stages (0 failed) not recorded one by one: the record size limit"
    );
    let first = &report.record.stages[0];
    assert_eq!(first.evidence.len(), 4);
    assert_eq!(first.details["capped"]["evidence_total"], 40);
    assert!(
        first.details["capped"]["digest"].is_string(),
        "{}",
        first.details
    );
}
