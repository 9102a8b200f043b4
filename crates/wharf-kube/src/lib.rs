//! Deploy signed ML model images to Kubernetes by digest.
//!
//! - [`render`]: the workload for one environment — a Deployment and a Service, or a KServe
//!   `InferenceService` — from a [`Workload`](render::Workload) and a
//!   [`DeployRequest`](wharf_core::deploy::DeployRequest), image pinned by digest, labelled
//!   and annotated with the run, model and digest.
//! - [`kustomize`]: users' kustomize overlays (patches, labels, their own resources) built
//!   over the rendered objects, as `kubectl kustomize` builds them.
//! - [`plan`]: field-level differences between what exists and what is rendered.
//! - `cluster::Cluster` (feature `cluster`): a Kubernetes API server through kube-rs —
//!   server-side apply, a rollout watch, rollback to the previous ReplicaSet revision.
//! - `cloud` (feature `cluster`; EKS with feature `eks`): managed clusters — endpoint and CA
//!   from the cloud's API, short-lived bearer tokens from a
//!   [`CloudCredentials`](wharf_core::CloudCredentials) provider, refreshed before expiry.
//! - [`gitops::GitOps`]: the embedded default [`DeployTarget`](wharf_core::DeployTarget) —
//!   a git repository in the `<env>/<app>/` layout Argo CD and Flux sync from, one commit per
//!   deployment, revert commits for rollbacks.
//!
//! ```no_run
//! # async fn run() -> wharf_core::Result<()> {
//! use wharf_core::{DeployTarget, Environment, deploy::DeployRequest};
//! use wharf_kube::{gitops::GitOps, render::Workload};
//!
//! let target = GitOps::open("deploy-repo", Workload::default())?;
//! let image: wharf_core::Reference =
//!     "registry.example/models/fraud@sha256:4f1c0d6e8a9b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f"
//!         .parse()
//!         .expect("a reference");
//! let plan = target.plan(&DeployRequest::new("fraud", image, Environment::Dev)?).await?;
//! println!("{plan}");
//! let deployed = target.apply(&plan).await?;
//! println!("committed {}", deployed.revision);
//! # Ok(()) }
//! ```

#[cfg(feature = "cluster")]
pub mod cloud;
#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(feature = "eks")]
pub mod eks;
pub mod gitops;
pub mod kustomize;
pub mod plan;
pub mod render;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
