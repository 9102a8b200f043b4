//! wharf-registry: OCI registries for ML model images.
//!
//! - [`layout::LayoutRegistry`]: an OCI image layout on disk (one layout per repository),
//!   readable by skopeo/umoci (`oci:` transport) and Trivy (`--input`): the embedded default.
//! - [`distribution::DistributionClient`]: the OCI distribution API over HTTP(S), streaming.
//! - [`ecr`]: Amazon ECR: repositories with immutable tags and scan-on-push, registry
//!   credentials refreshed before they expire, idempotent manifest pushes.
//! - [`package`]: daemonless, reproducible packaging of a model directory as a CNCF
//!   ModelPack artifact.
//! - [`append`]: a runnable image, the model appended as a layer to a base image.
//!
//! All implement or feed [`wharf_core::Registry`] and pass its conformance suite.

pub mod append;
#[cfg(feature = "distribution")]
pub mod distribution;
#[cfg(feature = "ecr")]
pub mod ecr;
mod error;
mod fs;
pub mod fsck;
mod layer;
pub mod layout;
pub mod package;
mod tempfiles;

pub use error::RegistryError;

// What call sites need from wharf-core, so depending on this crate alone is enough.
pub use wharf_core;
pub use wharf_core::{Descriptor, Digest, Registry};

/// The README's example, run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
