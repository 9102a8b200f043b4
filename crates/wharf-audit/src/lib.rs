//! wharf-audit: a tamper-evident, write-once audit log of ML deployment runs.
//!
//! Every [`wharf_core::AuditEvent`] becomes one write-once object holding the canonical JSON
//! (RFC 8785) of a [`wharf_core::audit::StoredRecord`]: its sequence number, the SHA-256 of
//! the previous record (a hash chain), the time, the event, and its own hash. Signed
//! [`Checkpoint`]s (through any [`wharf_core::Signer`]) let an auditor check a range holding
//! only a public key. [`WormLog::verify_with`] walks the chain and names every problem —
//! altered, missing, reordered, replayed or duplicated records, overwritten versions, a
//! clock that went backwards, a tail truncated after a checkpoint; [`WormLog::export`] writes
//! a range as JSON lines with the report; [`WormLog::query`] finds records by run id, image
//! digest and time.
//!
//! Backends ([`WormStore`]), all create-only so concurrent writers never fork the chain:
//! - [`FileStore`] (the embedded default): files created atomically and exclusively,
//!   read-only, in a directory;
//! - `S3Store` (feature `s3`): S3 Object Lock in COMPLIANCE mode with retention, optional
//!   legal hold, SHA-256 checksums and `If-None-Match: *`;
//! - `ObjectStoreStore` (feature `object-store`, plus `azure`/`gcp`): any `object_store`
//!   backend with `PutMode::Create`.
//!
//! ```
//! use wharf_audit::FileAuditLog;
//! use wharf_core::{AuditLog, audit::{AppendOptions, VerifyRange}};
//! # let dir = tempfile::tempdir()?;
//! # let event = wharf_core::conformance::run_record("run-1");
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let log = FileAuditLog::open(dir.path().join("audit"))?;
//! let receipt = log.append(&event, &AppendOptions::default()).await?;
//! assert_eq!(receipt.sequence, 0);
//! let report = log.verify_with(&VerifyRange::default(), None).await?;
//! assert!(report.is_intact(), "{report}");
//! # Ok::<(), wharf_core::Error>(()) })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoint;
mod log;
#[cfg(feature = "object-store")]
mod object;
#[cfg(feature = "s3")]
pub mod s3;
mod store;

pub use checkpoint::{CHECKPOINT_TYPE, Checkpoint, Statement, StoredSignature};
pub use log::{
    DEFAULT_CHECKPOINT_EVERY, DEFAULT_CLOCK_SKEW, DEFAULT_MAX_RECORD_BYTES, Query,
    VerificationReport, WormLog, record_key,
};
#[cfg(feature = "object-store")]
pub use object::ObjectStoreStore;
#[cfg(feature = "s3")]
pub use s3::S3Store;
pub use store::{Created, FileStore, WormStore};

// What call sites of this crate need from wharf-core, so that depending on wharf-audit alone
// is enough to write and read a log (wharf-core's traits and types, re-exported as they are).
pub use wharf_core;
pub use wharf_core::audit::{AppendOptions, AuditReceipt, ChainProblem, StoredRecord, VerifyRange};
pub use wharf_core::{
    Actor, AuditEvent, AuditLog, Digest, Environment, EventRecord, ModelId, RunOutcome, RunRecord,
    Signer, StageRecord, StageStatus, Verifier,
};

/// The embedded default audit log: write-once files in a directory.
pub type FileAuditLog = WormLog<FileStore>;

impl WormLog<FileStore> {
    /// Open (creating if needed) the file log in `dir`.
    pub fn open(dir: impl Into<std::path::PathBuf>) -> wharf_core::Result<Self> {
        Ok(WormLog::new(FileStore::open(dir)?))
    }

    /// The log's directory.
    pub fn dir(&self) -> &std::path::Path {
        self.store().dir()
    }
}

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
