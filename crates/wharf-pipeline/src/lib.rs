//! wharf-pipeline: composes wharf's stages into runs that always end in an audit record.
//!
//! A [`Pipeline`] runs [`Stage`]s in order with a shared [`RunContext`] (run id,
//! environment and its policy, actor, source commit, what earlier stages produced). Each
//! stage passes, warns, blocks or fails; after a block or failure the rest are skipped. Every
//! run — passed, blocked, failed, or with a stage that panicked — ends in exactly one
//! [`wharf_core::RunRecord`] appended to the [`wharf_core::AuditLog`]; if that append fails,
//! the run fails.
//!
//! ```
//! use std::sync::Arc;
//! use wharf_core::{Actor, Environment, RunOutcome, memory::MemoryAuditLog};
//! use wharf_pipeline::{Pipeline, RunContext, Stage, StageOutcome};
//!
//! struct Explode;
//! #[async_trait::async_trait]
//! impl Stage for Explode {
//!     fn name(&self) -> &str { "explode" }
//!     async fn run(&self, _: &mut RunContext) -> wharf_core::Result<StageOutcome> {
//!         panic!("boom")
//!     }
//! }
//!
//! let log = Arc::new(MemoryAuditLog::new());
//! let run = Pipeline::builder("demo", Environment::Prod, Actor::local("ci"))
//!     .stage(Explode)
//!     .audit_log(log.clone())
//!     .build()?;
//! let report = futures::executor::block_on(run.run())?;
//! assert_eq!(report.record.outcome, RunOutcome::Failed);
//! assert_eq!(log.records().len(), 1, "the panic is recorded, not lost");
//! # Ok::<(), wharf_pipeline::PipelineError>(())
//! ```
//!
//! [`Config`] reads `wharf.toml`; [`FileAuditLog`] (from `wharf-audit`) is the embedded
//! write-once audit log;
//! [`stages`] holds the stages wharf ships.

#[cfg(feature = "eks")]
mod aws;
pub mod config;
mod context;
mod error;
pub mod identity;
mod pipeline;
mod project;
mod stage;
pub mod stages;
mod standard;

pub use config::Config;
pub use context::{RunContext, new_run_id};
pub use error::PipelineError;
pub use identity::Identity;
pub use pipeline::{Pipeline, PipelineBuilder, RunReport, StageReport};
pub use project::ProjectAuditLog;
pub use stage::{Stage, StageOutcome};
pub use standard::{
    DEFAULT_GITOPS_REPO, DEFAULT_OSV_DB, DEFAULT_PASSWORD_ENV, DEFAULT_SCAN_REPORTS,
    DEFAULT_SIGNING_KEY, DEFAULT_TOKEN_ENV, RunOptions, StandardPipeline,
};
pub use wharf_audit::FileAuditLog;

// What a pipeline of one's own needs beside this crate: `#[async_trait]` to implement
// [`Stage`], wharf-core's types, and the governance config.
pub use async_trait::async_trait;
pub use wharf_core;
#[cfg(feature = "identity")]
pub use wharf_identity;
pub use wharf_policy::GovernanceConfig;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
