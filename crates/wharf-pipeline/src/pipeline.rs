//! The pipeline runner: stages in order, every run ends in exactly one audit record.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use time::OffsetDateTime;
use tracing::{Instrument, info, info_span, warn};
use wharf_core::audit::AppendOptions;
use wharf_core::{
    Actor, AuditEvent, AuditLog, AuditReceipt, Digest, Environment, EnvironmentPolicy, ErrorKind,
    Evidence, RunOutcome, RunRecord, StageRecord, StageStatus,
};

use crate::{PipelineError, RunContext, Stage};

/// What one stage did, for people (the run record holds the same, for machines).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StageReport {
    /// The record stored in the audit log.
    pub record: StageRecord,
    /// Detail lines (violations, findings) shown under the summary.
    pub details: Vec<String>,
    /// The error kind, when the stage failed with an error rather than a gate decision.
    pub error_kind: Option<ErrorKind>,
}

/// A finished run: the record, where the audit log stored it, and per-stage detail.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunReport {
    /// The run record, as stored.
    pub record: RunRecord,
    /// The audit log's receipt.
    pub receipt: AuditReceipt,
    /// Per-stage detail, in order.
    pub stages: Vec<StageReport>,
}

impl RunReport {
    /// The error kind of the stage that failed with an error, if one did.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.stages.iter().find_map(|s| s.error_kind)
    }
}

/// A sequence of stages with the run's identity and an audit log.
///
/// ```
/// use std::sync::Arc;
/// use wharf_core::{Actor, Environment, RunOutcome, memory::MemoryAuditLog};
/// use wharf_pipeline::{Pipeline, RunContext, Stage, StageOutcome};
///
/// struct Hello;
/// #[async_trait::async_trait]
/// impl Stage for Hello {
///     fn name(&self) -> &str { "hello" }
///     async fn run(&self, _ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
///         Ok(StageOutcome::passed("said hello"))
///     }
/// }
///
/// let log = Arc::new(MemoryAuditLog::new());
/// let pipeline = Pipeline::builder("demo", Environment::Dev, Actor::local("me"))
///     .stage(Hello)
///     .audit_log(log.clone())
///     .build()?;
/// let report = futures::executor::block_on(pipeline.run())?;
/// assert_eq!(report.record.outcome, RunOutcome::Passed);
/// assert_eq!(log.records().len(), 1);
/// # Ok::<(), wharf_pipeline::PipelineError>(())
/// ```
pub struct Pipeline {
    project: String,
    environment: Environment,
    policy: EnvironmentPolicy,
    actor: Actor,
    source_commit: Option<String>,
    stages: Vec<Box<dyn Stage>>,
    audit: Arc<dyn AuditLog>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("project", &self.project)
            .field("environment", &self.environment)
            .field(
                "stages",
                &self.stages.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field("audit", &self.audit)
            .finish()
    }
}

/// Builds a [`Pipeline`].
#[must_use]
pub struct PipelineBuilder {
    project: String,
    environment: Environment,
    policy: Option<EnvironmentPolicy>,
    actor: Actor,
    source_commit: Option<String>,
    stages: Vec<Box<dyn Stage>>,
    audit: Option<Arc<dyn AuditLog>>,
}

/// What a run record may carry. Every run must end in exactly one record, and an audit log
/// refuses records over its size limit (1 MiB by default, wharf-audit's
/// `DEFAULT_MAX_RECORD_BYTES`), so the runner bounds what each stage puts in the record
/// instead of letting a large result (thousands of policy violations, a long error) lose
/// the run's record:
///
/// * a stage's `summary` is cut at [`Pipeline::MAX_SUMMARY_CHARS`], names and evidence
///   locations at 1024 characters, its evidence list at [`Pipeline::MAX_EVIDENCE`];
/// * a stage's `details` over [`Pipeline::MAX_DETAILS_BYTES`] of JSON keep their shape with
///   every array cut to its first [`Pipeline::MAX_LISTED_ITEMS`] items and long strings cut,
///   plus a `capped` object: the full JSON's size and sha256 digest and, by JSON pointer,
///   the length of every array that was cut. The full details are not stored anywhere by
///   the runner; their digest (also added as `stage-details` evidence) pins them, and a
///   stage that needs them kept stores them itself and records them as evidence with a
///   location;
/// * if the whole record still exceeds [`Pipeline::MAX_RECORD_BYTES`] (many stages), the
///   details shrink to their `capped` note, then stages beyond the first 32 are folded
///   into one record saying how many were left out.
impl Pipeline {
    /// The most JSON a run record holds: half the audit log's default limit, leaving room
    /// for the log's own fields.
    pub const MAX_RECORD_BYTES: usize = wharf_audit::DEFAULT_MAX_RECORD_BYTES / 2;
    /// The most JSON one stage's `details` hold before they are capped.
    pub const MAX_DETAILS_BYTES: usize = 64 * 1024;
    /// The items of an array kept when details are capped.
    pub const MAX_LISTED_ITEMS: usize = 20;
    /// The longest stage summary, in characters.
    pub const MAX_SUMMARY_CHARS: usize = 1024;
    /// The most evidence entries one stage records.
    pub const MAX_EVIDENCE: usize = 32;
    /// The most detail lines (for people) one stage shows.
    pub const MAX_DETAIL_LINES: usize = 50;

    /// Start building a pipeline for `project` in `environment`, run by `actor`.
    pub fn builder(
        project: impl Into<String>,
        environment: Environment,
        actor: Actor,
    ) -> PipelineBuilder {
        PipelineBuilder {
            project: project.into(),
            environment,
            policy: None,
            actor,
            source_commit: None,
            stages: Vec::new(),
            audit: None,
        }
    }

    /// The stage names, in order.
    pub fn stage_names(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Run every stage and append exactly one run record to the audit log, whatever
    /// happens: a blocked gate, an error, or a panicking stage. Only a failure to store that
    /// record is an `Err` (and then the run has failed).
    pub async fn run(&self) -> Result<RunReport, PipelineError> {
        let mut ctx = RunContext::new(self.project.clone(), self.environment, self.actor.clone());
        ctx.policy = self.policy.clone();
        ctx.source_commit = self.source_commit.clone();
        let span = info_span!("run", run_id = %ctx.run_id, env = %self.environment);
        async {
            let mut reports: Vec<StageReport> = Vec::with_capacity(self.stages.len());
            let mut outcome = RunOutcome::Passed;
            for stage in &self.stages {
                let name = stage.name().to_owned();
                if outcome != RunOutcome::Passed {
                    let rec = StageRecord::new(
                        name,
                        StageStatus::Skipped,
                        OffsetDateTime::now_utc(),
                        0,
                        "skipped: an earlier stage did not pass",
                    );
                    reports.push(StageReport {
                        record: rec,
                        details: Vec::new(),
                        error_kind: None,
                    });
                    continue;
                }
                let report = run_stage(stage.as_ref(), &mut ctx)
                    .instrument(info_span!("stage", stage = %name))
                    .await;
                match report.record.status {
                    StageStatus::Blocked => outcome = RunOutcome::Blocked,
                    StageStatus::Failed => outcome = RunOutcome::Failed,
                    _ => {}
                }
                reports.push(report);
            }
            let mut record = RunRecord {
                run_id: ctx.run_id.clone(),
                project: ctx.project.clone(),
                started_at: ctx.started_at,
                finished_at: OffsetDateTime::now_utc(),
                environment: ctx.environment,
                actor: ctx.actor.clone(),
                source_commit: ctx.source_commit.clone(),
                model: ctx.model.clone(),
                image_digest: ctx.image_digest.clone(),
                outcome,
                stages: reports.iter().map(|r| r.record.clone()).collect(),
            };
            bound_record(&mut record);
            let event = AuditEvent::Run(record.clone());
            // The audit write is itself guarded: a panicking log is a failed write, not a lost run.
            let append = AssertUnwindSafe(self.audit.append(&event, &AppendOptions::default()))
                .catch_unwind()
                .await;
            let receipt = match append {
                Ok(Ok(receipt)) => receipt,
                Ok(Err(source)) => {
                    return Err(PipelineError::Audit {
                        record: Box::new(record),
                        source,
                    });
                }
                Err(panic) => {
                    return Err(PipelineError::Audit {
                        record: Box::new(record),
                        source: wharf_core::Error::internal(format!(
                            "audit log panicked: {}",
                            panic_message(&*panic)
                        )),
                    });
                }
            };
            info!(outcome = %outcome, sequence = receipt.sequence, "run recorded");
            Ok(RunReport {
                record,
                receipt,
                stages: reports,
            })
        }
        .instrument(span)
        .await
    }
}

async fn run_stage(stage: &dyn Stage, ctx: &mut RunContext) -> StageReport {
    let started_at = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let result = AssertUnwindSafe(stage.run(ctx)).catch_unwind().await;
    let duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    let name = stage.name();
    match result {
        Ok(Ok(outcome)) => {
            let status = if outcome.status == StageStatus::Skipped {
                StageStatus::Passed
            } else {
                outcome.status
            };
            let mut rec = StageRecord::new(name, status, started_at, duration_ms, outcome.summary);
            rec.evidence = outcome.evidence;
            rec.details = outcome.data;
            bound_stage(&mut rec);
            info!(status = %status, duration_ms, "stage finished");
            StageReport {
                record: rec,
                details: bound_lines(outcome.details),
                error_kind: None,
            }
        }
        Ok(Err(err)) => {
            let msg = wharf_core::display_chain(&err);
            warn!(error = %msg, "stage failed");
            let mut rec = StageRecord::new(
                name,
                StageStatus::Failed,
                started_at,
                duration_ms,
                format!("error: {msg}"),
            );
            rec.details = serde_json::json!({ "error_kind": err.kind().as_str() });
            bound_stage(&mut rec);
            StageReport {
                record: rec,
                details: Vec::new(),
                error_kind: Some(err.kind()),
            }
        }
        Err(panic) => {
            let msg = panic_message(&*panic);
            warn!(panic = %msg, "stage panicked");
            let mut rec = StageRecord::new(
                name,
                StageStatus::Failed,
                started_at,
                duration_ms,
                format!("stage panicked: {msg}"),
            );
            rec.details =
                serde_json::json!({ "error_kind": ErrorKind::Internal.as_str(), "panic": msg });
            bound_stage(&mut rec);
            StageReport {
                record: rec,
                details: Vec::new(),
                error_kind: Some(ErrorKind::Internal),
            }
        }
    }
}

/// The longest name, evidence location or string kept in capped details, in characters.
const MAX_STRING_CHARS: usize = 1024;
/// Stages recorded one by one when a record is still too large after capping.
const MAX_RECORDED_STAGES: usize = 32;

/// Cut `s` to `max` characters, marking the cut with `…`.
fn truncate(s: &mut String, max: usize) {
    if let Some((at, _)) = s.char_indices().nth(max) {
        s.truncate(at);
        s.push('…');
    }
}

fn json_len(v: &impl serde::Serialize) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// Bound what one stage puts in the run record (see [`Pipeline`]'s limits).
fn bound_stage(rec: &mut StageRecord) {
    truncate(&mut rec.name, MAX_STRING_CHARS);
    // A summary is one line.
    if rec.summary.contains(['\n', '\r']) {
        rec.summary = rec
            .summary
            .split(['\n', '\r'])
            .collect::<Vec<_>>()
            .join(" ");
    }
    truncate(&mut rec.summary, Pipeline::MAX_SUMMARY_CHARS);
    let evidence_total = rec.evidence.len();
    rec.evidence.truncate(Pipeline::MAX_EVIDENCE);
    for e in &mut rec.evidence {
        truncate(&mut e.kind, MAX_STRING_CHARS);
        if let Some(location) = &mut e.location {
            truncate(location, MAX_STRING_CHARS);
        }
    }
    let full = serde_json::to_vec(&rec.details).unwrap_or_default();
    if full.len() <= Pipeline::MAX_DETAILS_BYTES && evidence_total <= Pipeline::MAX_EVIDENCE {
        return;
    }
    let digest = Digest::sha256_of(&full);
    let mut note = serde_json::Map::new();
    note.insert("bytes".into(), full.len().into());
    note.insert("digest".into(), digest.to_string().into());
    if evidence_total > Pipeline::MAX_EVIDENCE {
        note.insert("evidence_total".into(), evidence_total.into());
    }
    if full.len() > Pipeline::MAX_DETAILS_BYTES {
        let mut cut = serde_json::Map::new();
        let kept = shrink(&rec.details, String::new(), 0, &mut cut);
        note.insert("truncated".into(), cut.into());
        rec.details = if json_len(&kept) <= Pipeline::MAX_DETAILS_BYTES {
            kept
        } else {
            serde_json::Value::Null
        };
        rec.evidence.truncate(Pipeline::MAX_EVIDENCE - 1);
        rec.evidence.push(Evidence::new("stage-details", digest));
    }
    rec.details = with_note(std::mem::take(&mut rec.details), note);
}

/// `details` with the `capped` note added (an object gains the key; anything else is
/// wrapped as `value`).
fn with_note(
    details: serde_json::Value,
    note: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    match details {
        serde_json::Value::Object(mut map) => {
            map.insert("capped".into(), note.into());
            map.into()
        }
        serde_json::Value::Null => serde_json::json!({ "capped": note }),
        other => serde_json::json!({ "capped": note, "value": other }),
    }
}

/// A copy of `v` with arrays cut to their first items (each cut recorded in `cut` under its
/// JSON pointer, up to the first twenty cuts), objects to their first keys, strings to
/// [`MAX_STRING_CHARS`], and nesting to 16 levels.
fn shrink(
    v: &serde_json::Value,
    pointer: String,
    depth: usize,
    cut: &mut serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    use serde_json::Value;
    let mut note_cut = |pointer: &str, len: usize| {
        if cut.len() < Pipeline::MAX_LISTED_ITEMS {
            cut.insert(pointer.to_owned(), len.into());
        }
    };
    if depth >= 16 && matches!(v, Value::Array(_) | Value::Object(_)) {
        return Value::String("…".into());
    }
    match v {
        Value::String(s) => {
            let mut s = s.clone();
            truncate(&mut s, MAX_STRING_CHARS);
            Value::String(s)
        }
        Value::Array(items) => {
            if items.len() > Pipeline::MAX_LISTED_ITEMS {
                note_cut(&pointer, items.len());
            }
            items
                .iter()
                .take(Pipeline::MAX_LISTED_ITEMS)
                .enumerate()
                .map(|(i, item)| shrink(item, format!("{pointer}/{i}"), depth + 1, cut))
                .collect()
        }
        Value::Object(map) => {
            if map.len() > 4 * Pipeline::MAX_LISTED_ITEMS {
                note_cut(&pointer, map.len());
            }
            map.iter()
                .take(4 * Pipeline::MAX_LISTED_ITEMS)
                .map(|(k, item)| {
                    let mut key = k.clone();
                    truncate(&mut key, MAX_STRING_CHARS);
                    let escaped = k.replace('~', "~0").replace('/', "~1");
                    let item = shrink(item, format!("{pointer}/{escaped}"), depth + 1, cut);
                    (key, item)
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        }
        other => other.clone(),
    }
}

/// Detail lines for people: the first [`Pipeline::MAX_DETAIL_LINES`], each cut to
/// [`MAX_STRING_CHARS`], and a line counting the rest.
fn bound_lines(mut lines: Vec<String>) -> Vec<String> {
    let total = lines.len();
    lines.truncate(Pipeline::MAX_DETAIL_LINES);
    for line in &mut lines {
        truncate(line, MAX_STRING_CHARS);
    }
    if total > Pipeline::MAX_DETAIL_LINES {
        lines.push(format!(
            "… and {} more (not shown)",
            total - Pipeline::MAX_DETAIL_LINES
        ));
    }
    lines
}

/// Bound the whole record: the run's names, then (if it is still over
/// [`Pipeline::MAX_RECORD_BYTES`]) every stage's details down to their `capped` note and
/// evidence to a few entries, then stages beyond the first 32 folded into one.
fn bound_record(record: &mut RunRecord) {
    const NAME: usize = 256;
    truncate(&mut record.project, NAME);
    truncate(&mut record.actor.id, NAME);
    if let Some(issuer) = &mut record.actor.issuer {
        truncate(issuer, NAME);
    }
    if let Some(commit) = &mut record.source_commit {
        truncate(commit, NAME);
    }
    if let Some(model) = &mut record.model {
        truncate(&mut model.name, NAME);
        truncate(&mut model.version, NAME);
    }
    for stage in &mut record.stages {
        bound_stage(stage);
    }
    if json_len(record) <= Pipeline::MAX_RECORD_BYTES {
        return;
    }
    for stage in &mut record.stages {
        // Keep the note of an earlier cap (it describes the full details), else pin these.
        let mut note = match stage.details.get("capped") {
            Some(serde_json::Value::Object(note)) => note.clone(),
            _ => {
                let full = serde_json::to_vec(&stage.details).unwrap_or_default();
                let mut note = serde_json::Map::new();
                if !stage.details.is_null() {
                    note.insert("bytes".into(), full.len().into());
                    note.insert("digest".into(), Digest::sha256_of(&full).to_string().into());
                }
                note
            }
        };
        if stage.evidence.len() > 4 {
            note.entry("evidence_total")
                .or_insert_with(|| stage.evidence.len().into());
            stage.evidence.truncate(4);
        }
        if !note.is_empty() {
            stage.details = with_note(serde_json::Value::Null, note);
        }
    }
    if json_len(record) <= Pipeline::MAX_RECORD_BYTES || record.stages.len() <= MAX_RECORDED_STAGES
    {
        return;
    }
    let rest = record.stages.split_off(MAX_RECORDED_STAGES);
    let failed = rest
        .iter()
        .filter(|s| matches!(s.status, StageStatus::Failed | StageStatus::Blocked))
        .count();
    let first = &rest[0];
    let duration_ms = rest
        .iter()
        .map(|s| s.duration_ms)
        .fold(0u64, u64::saturating_add);
    record.stages.push(StageRecord::new(
        "…",
        rest.iter()
            .map(|s| s.status)
            .find(|s| matches!(s, StageStatus::Failed | StageStatus::Blocked))
            .unwrap_or(first.status),
        first.started_at,
        duration_ms,
        format!(
            "{} more stages ({failed} failed) not recorded one by one: the record size limit",
            rest.len()
        ),
    ));
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

impl PipelineBuilder {
    /// Append a stage.
    pub fn stage(mut self, stage: impl Stage + 'static) -> Self {
        self.stages.push(Box::new(stage));
        self
    }

    /// Append a boxed stage.
    pub fn boxed_stage(mut self, stage: Box<dyn Stage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Where the run record goes (required).
    pub fn audit_log(mut self, log: Arc<dyn AuditLog>) -> Self {
        self.audit = Some(log);
        self
    }

    /// The source commit the run builds.
    pub fn source_commit(mut self, commit: impl Into<String>) -> Self {
        self.source_commit = Some(commit.into());
        self
    }

    /// Replace the environment's default policy (from configuration).
    pub fn environment_policy(mut self, policy: EnvironmentPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Finish; fails when no audit log was given (a run without a record is not allowed).
    pub fn build(self) -> Result<Pipeline, PipelineError> {
        let audit = self.audit.ok_or(PipelineError::Incomplete {
            what: "an audit log",
            hint: "every run must end in an audit record; pass one with .audit_log(..)",
        })?;
        Ok(Pipeline {
            policy: self.policy.unwrap_or_else(|| self.environment.policy()),
            project: self.project,
            environment: self.environment,
            actor: self.actor,
            source_commit: self.source_commit,
            stages: self.stages,
            audit,
        })
    }
}
