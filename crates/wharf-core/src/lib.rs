//! wharf-core: the domain types and traits shared by every wharf crate.
//!
//! No network, no async runtime, no cloud SDK: only the vocabulary (digests, references,
//! descriptors, findings, environments, run records) and the contracts that backends
//! implement ([`Registry`], [`Scanner`], [`Signer`]/[`Verifier`], [`AuditLog`],
//! [`IdTokenSource`]/[`CloudCredentials`], [`DeployTarget`], [`PolicyGate`]).
//!
//! ```
//! use wharf_core::{Digest, Environment, Reference, Severity};
//!
//! let r: Reference = "ghcr.io/acme/fraud-model:3f2a9c1".parse()?;
//! assert_eq!(r.domain(), Some("ghcr.io"));
//! let pinned = r.with_digest(Digest::sha256_of(b"manifest bytes"));
//! assert!(pinned.digest().is_some());
//!
//! let prod = Environment::Prod.policy();
//! assert!(prod.scan_gate.blocks(Severity::High));
//! assert!(!Environment::Dev.policy().scan_gate.blocks(Severity::Critical));
//! # Ok::<(), wharf_core::Error>(())
//! ```
//!
//! [`memory`] holds in-memory implementations of every trait for unit tests; the
//! `conformance` feature exposes the suites every backend runs.

pub mod audit;
pub mod blocking;
pub mod deploy;
pub mod descriptor;
pub mod digest;
pub mod environment;
pub mod error;
pub mod finding;
pub mod identity;
pub mod memory;
pub mod policy;
pub mod record;
pub mod reference;
pub mod registry;
pub mod retry;
pub mod scan;
pub mod secret;
pub mod sign;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use audit::{AppendOptions, AuditLog, AuditReceipt, ChainReport, StoredRecord};
pub use deploy::{DeployRequest, DeployTarget, Deployment, Health, HealthState, Plan};
pub use descriptor::{Descriptor, ImageIndex, ImageManifest, media_types};
pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use environment::{Environment, EnvironmentPolicy, ScanGate};
pub use error::{BoxError, Error, ErrorKind, Result, display_chain};
pub use finding::{DatabaseInfo, Finding, FixState, Package, Rating, ScanReport, Severity};
pub use identity::{CloudCredentials, Credentials, IdToken, IdTokenSource};
pub use policy::{Decision, PolicyGate, Violation};
pub use record::{
    Actor, AuditEvent, EventRecord, Evidence, ModelId, RunOutcome, RunRecord, RunRecordBuilder,
    StageRecord, StageStatus,
};
pub use reference::{Reference, ReferenceError};
pub use registry::{BlobStream, Registry};
pub use scan::{ScanTarget, Scanner};
pub use secret::Secret;
pub use sign::{Signature, Signer, Verifier};

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
