//! The pipeline runner: stages in order, every run ends in exactly one audit record.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use time::OffsetDateTime;
use tracing::{Instrument, info, info_span, warn};
use wharf_core::audit::AppendOptions;
use wharf_core::{
    Actor, AuditEvent, AuditLog, AuditReceipt, Environment, EnvironmentPolicy, ErrorKind,
    RunOutcome, RunRecord, StageRecord, StageStatus,
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

impl Pipeline {
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
                if report.record.status == StageStatus::Failed {
                    outcome = if report.error_kind.is_some() {
                        RunOutcome::Failed
                    } else {
                        RunOutcome::Blocked
                    };
                }
                reports.push(report);
            }
            let record = RunRecord {
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
            info!(status = %status, duration_ms, "stage finished");
            StageReport {
                record: rec,
                details: outcome.details,
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
            StageReport {
                record: rec,
                details: Vec::new(),
                error_kind: Some(ErrorKind::Internal),
            }
        }
    }
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
