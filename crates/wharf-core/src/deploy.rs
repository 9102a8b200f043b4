//! The [`DeployTarget`] contract: plan, apply, watch health, roll back — always by digest.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Environment, Reference, Result};

/// What to deploy. The image must be pinned by digest: wharf never deploys by tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeployRequest {
    /// Application (Deployment, Endpoint) name.
    pub name: String,
    /// The image, pinned by digest.
    pub image: Reference,
    /// Target environment.
    pub environment: Environment,
    /// Replicas.
    pub replicas: u32,
    /// Extra settings (env vars, labels) passed to the target.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl DeployRequest {
    /// A request for `image`, which must carry a digest; replicas come from the
    /// environment's policy.
    pub fn new(
        name: impl Into<String>,
        image: Reference,
        environment: Environment,
    ) -> Result<Self> {
        if image.digest().is_none() {
            return Err(crate::Error::invalid(format!(
                "refusing to deploy {image} by tag: pin it by digest (name@sha256:…)"
            )));
        }
        Ok(Self {
            name: name.into(),
            image,
            environment,
            replicas: environment.policy().replicas,
            settings: BTreeMap::new(),
        })
    }
}

/// One change a plan would make, in words a person can review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// The object changed (`Deployment/fraud`, `Endpoint/fraud-prod`).
    pub object: String,
    /// The field (`spec.template.spec.containers[0].image`).
    pub field: String,
    /// Old value (`None` when created).
    pub from: Option<String>,
    /// New value.
    pub to: String,
}

impl Change {
    /// `object`'s `field` goes `from` (`None`: it is created) `to`.
    pub fn new(
        object: impl Into<String>,
        field: impl Into<String>,
        from: Option<String>,
        to: impl Into<String>,
    ) -> Self {
        Self {
            object: object.into(),
            field: field.into(),
            from,
            to: to.into(),
        }
    }
}

/// A readable diff of what [`DeployTarget::apply`] would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Plan {
    /// The request planned.
    pub request: DeployRequest,
    /// Every change; empty when already deployed.
    pub changes: Vec<Change>,
}

impl Plan {
    /// A plan with `changes`.
    pub fn new(request: DeployRequest, changes: Vec<Change>) -> Self {
        Self { request, changes }
    }

    /// True when nothing would change.
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return write!(f, "{}: no changes", self.request.name);
        }
        for c in &self.changes {
            match &c.from {
                Some(from) => writeln!(f, "~ {} {}: {from} -> {}", c.object, c.field, c.to)?,
                None => writeln!(f, "+ {} {}: {}", c.object, c.field, c.to)?,
            }
        }
        Ok(())
    }
}

/// A deployment that was applied: what a status check or rollback refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Deployment {
    /// Name.
    pub name: String,
    /// Revision after apply (Deployment revision, EndpointConfig name, commit SHA).
    pub revision: String,
    /// The revision before, for rollback (`None` for a first deploy).
    pub previous_revision: Option<String>,
}

impl Deployment {
    /// A deployment record.
    pub fn new(
        name: impl Into<String>,
        revision: impl Into<String>,
        previous: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            revision: revision.into(),
            previous_revision: previous,
        }
    }
}

/// Health of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HealthState {
    /// Rolled out and ready.
    Healthy,
    /// Rolling out.
    Progressing,
    /// Failed (deadline exceeded, crash loop, endpoint Failed).
    Unhealthy,
}

/// Health with an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// State.
    pub state: HealthState,
    /// Why, in words.
    pub message: String,
}

impl Health {
    /// A health report.
    pub fn new(state: HealthState, message: impl Into<String>) -> Self {
        Self {
            state,
            message: message.into(),
        }
    }
}

/// A place models are deployed to (EKS/AKS/GKE, SageMaker, a GitOps repo).
#[async_trait]
pub trait DeployTarget: fmt::Debug + Send + Sync + 'static {
    /// Short name (`kubernetes`, `sagemaker`, `gitops`).
    fn name(&self) -> &str;

    /// Compute what would change, without changing anything.
    async fn plan(&self, request: &DeployRequest) -> Result<Plan>;

    /// Apply a plan.
    async fn apply(&self, plan: &Plan) -> Result<Deployment>;

    /// Current health.
    async fn status(&self, deployment: &Deployment) -> Result<Health>;

    /// Health once the rollout of `deployment` has finished — rolled out, or failed — or
    /// `timeout` has passed (then [`HealthState::Progressing`], saying how far it got).
    /// The default returns [`status`](Self::status) at once, right for targets whose
    /// `apply` finishes the rollout itself (a GitOps commit); clusters and endpoints that
    /// roll out asynchronously override it.
    async fn wait(&self, deployment: &Deployment, timeout: std::time::Duration) -> Result<Health> {
        let _ = timeout;
        self.status(deployment).await
    }

    /// Return to the previous revision; an error when there is none.
    async fn rollback(&self, deployment: &Deployment) -> Result<Deployment>;
}
