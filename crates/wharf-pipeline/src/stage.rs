//! The [`Stage`] trait and what a stage reports.

use async_trait::async_trait;
use wharf_core::{Evidence, StageStatus};

use crate::RunContext;

/// What a stage concluded. Return `Err` for errors (the run fails, the stage is recorded
/// as [`StageStatus::Failed`]); return [`StageOutcome::blocked`] when a gate says no on
/// purpose (the run is blocked, the stage recorded as [`StageStatus::Blocked`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StageOutcome {
    /// Passed, warned or blocked (failed, when set by hand, fails the run). `Skipped` is
    /// for the runner.
    pub status: StageStatus,
    /// One line for people.
    pub summary: String,
    /// Lines with detail (each violation, each blocking finding), shown under the summary.
    pub details: Vec<String>,
    /// Evidence produced, pinned by digest in the run record.
    pub evidence: Vec<Evidence>,
    /// Structured details for machines (stored in the run record).
    pub data: serde_json::Value,
}

impl StageOutcome {
    /// A passing outcome.
    pub fn passed(summary: impl Into<String>) -> Self {
        Self::new(StageStatus::Passed, summary)
    }

    /// A warning: the run goes on, a person should look.
    pub fn warned(summary: impl Into<String>) -> Self {
        Self::new(StageStatus::Warned, summary)
    }

    /// The stage's work failed — a rollout that was rolled back, say — and the run fails;
    /// unlike an `Err`, the outcome keeps its details and data in the run record.
    pub fn failed(summary: impl Into<String>) -> Self {
        Self::new(StageStatus::Failed, summary)
    }

    /// A gate blocked the run.
    pub fn blocked(summary: impl Into<String>) -> Self {
        Self::new(StageStatus::Blocked, summary)
    }

    fn new(status: StageStatus, summary: impl Into<String>) -> Self {
        Self {
            status,
            summary: summary.into(),
            details: Vec::new(),
            evidence: Vec::new(),
            data: serde_json::Value::Null,
        }
    }

    /// Add detail lines.
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// Add evidence.
    pub fn with_evidence(mut self, evidence: Evidence) -> Self {
        self.evidence.push(evidence);
        self
    }

    /// Attach structured data.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

/// One step of a pipeline (governance gate, package, push, scan, sign, deploy).
///
/// Stages run in order with a shared [`RunContext`]; after a stage fails or blocks, the
/// rest are recorded as skipped.
#[async_trait]
pub trait Stage: Send + Sync {
    /// Short, stable name (`governance`, `package`, `scan`).
    fn name(&self) -> &str;

    /// Do the work.
    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome>;
}
