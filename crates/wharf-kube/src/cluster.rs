//! The `cluster` target: deploy to a Kubernetes API server with kube-rs — no kubectl.
//!
//! - **plan**: a server-side apply dry run of every rendered object, compared with the live
//!   object, field by field (the server's defaults and admission included, so the plan is
//!   what apply will do).
//! - **apply**: server-side apply with field manager `wharf`; a conflict names the other
//!   manager and its fields, and is only overridden with
//!   [`force_conflicts`](Cluster::force_conflicts).
//! - **wait**: a watch on the Deployment until `observedGeneration` has caught up and the
//!   updated replicas are all available, or its `Progressing` condition says
//!   `ProgressDeadlineExceeded`, as `kubectl rollout status` decides; a watch the server
//!   closes is resumed from the last `resourceVersion`, and `410 Gone` relists.
//! - **rollback**: as `kubectl rollout undo` does — the previous revision's pod template,
//!   found by its ReplicaSet's `deployment.kubernetes.io/revision` — but by server-side apply
//!   as `wharf`, so the next deployment does not conflict with a rollback manager.
//!
//! ```no_run
//! # async fn run() -> wharf_core::Result<()> {
//! use std::time::Duration;
//! use wharf_core::{DeployTarget, Environment, deploy::{DeployRequest, HealthState}};
//! use wharf_kube::{cluster::Cluster, render::Workload};
//!
//! let target = Cluster::from_kubeconfig(None, Some("prod-eu"), Workload::default()).await?;
//! let image = "registry.example/models/fraud@sha256:4f1c0d6e8a9b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f"
//!     .parse()
//!     .expect("a reference");
//! let plan = target.plan(&DeployRequest::new("fraud", image, Environment::Prod)?).await?;
//! print!("{plan}");
//! let deployed = target.apply(&plan).await?;
//! let health = target.wait(&deployed, Duration::from_secs(600)).await?;
//! if health.state != HealthState::Healthy {
//!     let back = target.rollback(&deployed).await?;
//!     target.wait(&back, Duration::from_secs(600)).await?;
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, Config};
use serde_json::{Value, json};
use wharf_core::deploy::{DeployRequest, Deployment, Health, HealthState, Plan};
use wharf_core::{DeployTarget, Error, ErrorKind, Result};

use crate::plan::diff;
use crate::render::{MANAGER, Manifest, Workload, WorkloadKind, render};

/// The annotation the Deployment controller numbers ReplicaSets (and the Deployment) with.
pub const ANNOTATION_REVISION: &str = "deployment.kubernetes.io/revision";

/// Annotations a ReplicaSet carries that `kubectl rollout undo` does not copy back to the
/// Deployment (kubectl's `annotationsToSkip`).
const ROLLBACK_SKIPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    ANNOTATION_REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// What the deploy identity needs, for the message of a 403.
const RBAC_NEEDED: &str = "wharf needs get, list, watch and patch on deployments.apps (list on replicasets.apps for rollback) and get and patch on services in the namespace";

/// The wharf error of a failed bearer-token fetch (`cloud::BearerTokens`) inside a kube
/// service error, if that is what it is.
fn token_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
    let mut current = Some(e);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<Error>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// A Kubernetes cluster as a [`DeployTarget`].
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    server: String,
    identity: String,
    workload: Workload,
    force_conflicts: bool,
    watch_timeout: u32,
    health_url: Option<String>,
    health_timeout: Duration,
    promote: bool,
    resumes: Arc<AtomicU64>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("namespace", &self.namespace())
            .field("force_conflicts", &self.force_conflicts)
            .field("health_url", &self.health_url)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A target on `client` (built from any [`kube::Config`]); `server` names the cluster
    /// in messages.
    pub fn new(client: Client, server: impl Into<String>, workload: Workload) -> Self {
        Self {
            client,
            server: server.into(),
            identity: "the configured credentials".into(),
            workload,
            force_conflicts: false,
            watch_timeout: 290,
            health_url: None,
            health_timeout: Duration::from_secs(120),
            promote: true,
            resumes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The cluster of a kubeconfig: `path` (else `KUBECONFIG`, else `~/.kube/config`), and
    /// `context` (else its current context). Exec plugins and tokens work as with kubectl.
    pub async fn from_kubeconfig(
        path: Option<&Path>,
        context: Option<&str>,
        workload: Workload,
    ) -> Result<Self> {
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let shown = path.map_or_else(
            || "the kubeconfig (KUBECONFIG or ~/.kube/config)".to_owned(),
            |p| p.display().to_string(),
        );
        let file = match path {
            Some(p) => Kubeconfig::read_from(p),
            None => Kubeconfig::read(),
        }
        .map_err(|e| Error::invalid(format!("cannot read {shown}: {e}")))?;
        let context_name = context
            .map(str::to_owned)
            .or_else(|| file.current_context.clone());
        let user = context_name.as_ref().and_then(|c| {
            file.contexts
                .iter()
                .find(|n| &n.name == c)
                .and_then(|n| n.context.as_ref())
                .and_then(|c| c.user.clone())
        });
        let config = Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|e| {
                Error::invalid(format!(
                    "{shown}{}: {e}",
                    context.map_or_else(String::new, |c| format!(", context {c:?}"))
                ))
            })?;
        let identity = format!(
            "user {} of context {} in {shown}",
            user.as_deref().unwrap_or("(none)"),
            context_name.as_deref().unwrap_or("(none)")
        );
        Ok(Self::from_config(config, workload)?.with_identity(identity))
    }

    /// Name the credentials in errors (`user ci of context prod-eu in ~/.kube/config`), so a
    /// refusal says who was refused.
    pub fn with_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = identity.into();
        self
    }

    /// The cluster a pod runs in (its service account token and CA).
    pub fn in_cluster(workload: Workload) -> Result<Self> {
        let config = Config::incluster().map_err(|e| {
            Error::invalid(format!(
                "not running in a Kubernetes pod (or its service account is not mounted): {e}"
            ))
        })?;
        Ok(Self::from_config(config, workload)?
            .with_identity("the pod's service account (in-cluster)"))
    }

    /// A target from a [`kube::Config`]; call it inside a Tokio runtime.
    pub fn from_config(config: Config, workload: Workload) -> Result<Self> {
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| {
            Error::invalid(format!("cannot make a Kubernetes client for {server}: {e}"))
        })?;
        Ok(Self::new(client, server, workload))
    }

    /// Take the fields another field manager owns instead of failing with the conflict
    /// (`kubectl apply --server-side --force-conflicts`).
    pub fn force_conflicts(mut self, force: bool) -> Self {
        self.force_conflicts = force;
        self
    }

    /// How long one watch request lasts before the server closes it and wharf resumes it
    /// (290 s by default, as kube-rs's watcher).
    pub fn watch_timeout(mut self, timeout: Duration) -> Self {
        self.watch_timeout = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX).max(1);
        self
    }

    /// After the rollout, GET `url` (the model server's health endpoint, through its
    /// ingress or service) until it answers 2xx; a rollout whose check has not passed
    /// within [`health_timeout`](Self::health_timeout) is unhealthy. Without it, health is
    /// the pods' readiness.
    pub fn health_url(mut self, url: impl Into<String>) -> Self {
        self.health_url = Some(url.into());
        self
    }

    /// InferenceService with a canary share: once the canary is ready (and the health
    /// check passes), promote it to 100 % (the default), or leave it at its share for a
    /// person to promote (`false`).
    pub fn promote_canary(mut self, promote: bool) -> Self {
        self.promote = promote;
        self
    }

    /// How long the HTTP health check may keep failing (120 s by default).
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// How many times a rollout watch was resumed after the server closed it, since this
    /// target was made.
    pub fn watch_resumes(&self) -> u64 {
        self.resumes.load(Ordering::Relaxed)
    }

    fn namespace(&self) -> &str {
        self.workload.namespace.as_deref().unwrap_or("default")
    }

    fn params(&self) -> PatchParams {
        let p = PatchParams::apply(MANAGER);
        if self.force_conflicts { p.force() } else { p }
    }

    /// The API of `object`'s kind (discovered, so a missing CRD is named) and its name.
    async fn api_for(&self, object: &Value) -> Result<(Api<DynamicObject>, String)> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        // The kinds wharf renders itself need no discovery round trip.
        let known = match (api_version, kind) {
            ("apps/v1", "Deployment") => Some("deployments"),
            ("v1", "Service") => Some("services"),
            ("v1", "ConfigMap") => Some("configmaps"),
            _ => None,
        };
        if let Some(plural) = known {
            let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(self.namespace());
            return Ok((
                Api::namespaced_with(self.client.clone(), ns, &resource),
                name.to_owned(),
            ));
        }
        let (resource, caps) = pinned_kind(&self.client, &gvk).await.map_err(|e| {
            match e {
                kube::Error::Api(s) if s.code == 404 => Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "{} has no {api_version} {kind}: install what serves it{} or choose another deploy.workload.kind",
                        self.server,
                        if group == "serving.kserve.io" { " (KServe)" } else { "" }
                    ),
                ),
                kube::Error::Discovery(_) => Error::new(
                    ErrorKind::Unsupported,
                    format!("{} has no {api_version} {kind}: {e}", self.server),
                ),
                e => self.error("discover", &format!("{api_version} {kind}"), e),
            }
        })?;
        let api = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                self.client.clone(),
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(self.namespace()),
                &resource,
            ),
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        };
        Ok((api, name.to_owned()))
    }

    /// The API of the workload's main object, the one rolled out.
    fn main_api(&self) -> Api<DynamicObject> {
        let resource = match self.workload.kind {
            WorkloadKind::InferenceService => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("serving.kserve.io", "v1beta1", "InferenceService"),
                "inferenceservices",
            ),
            _ => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("apps", "v1", "Deployment"),
                "deployments",
            ),
        };
        Api::namespaced_with(self.client.clone(), self.namespace(), &resource)
    }

    fn main_kind(&self) -> &'static str {
        match self.workload.kind {
            WorkloadKind::InferenceService => "InferenceService",
            _ => "Deployment",
        }
    }

    /// A kube error as a one-line wharf error saying what was being done and what to fix.
    fn error(&self, action: &str, what: &str, e: kube::Error) -> Error {
        let ns = self.namespace();
        match e {
            kube::Error::Api(s) => {
                let msg = s.message.clone();
                let (kind, text) = match s.code {
                    401 => (
                        ErrorKind::Unauthenticated,
                        format!(
                            "{} did not accept {} to {action} {what}: {msg}; refresh the kubeconfig's token or the cloud login",
                            self.server, self.identity
                        ),
                    ),
                    403 => (
                        ErrorKind::Denied,
                        format!(
                            "{} may not {action} {what} in namespace {ns}: {msg}; {RBAC_NEEDED}",
                            self.identity
                        ),
                    ),
                    404 => (
                        ErrorKind::NotFound,
                        format!("cannot {action} {what}: {msg}"),
                    ),
                    409 if action == "apply" => (
                        ErrorKind::Conflict,
                        format!(
                            "server-side apply of {what} in namespace {ns}: {msg}; another field manager owns these fields: stop setting them there, or take them with force_conflicts (deploy.force_conflicts = true)"
                        ),
                    ),
                    409 => (
                        ErrorKind::Conflict,
                        format!("cannot {action} {what}: {msg}"),
                    ),
                    400 | 422 => (
                        ErrorKind::Invalid,
                        format!("{} refused {what} ({action}): {msg}", self.server),
                    ),
                    // What server-side apply answers for a field of the wrong type.
                    500 if msg.contains("failed to create typed patch object") => (
                        ErrorKind::Invalid,
                        format!("{} refused {what} ({action}): {msg}", self.server),
                    ),
                    429 | 500.. => (
                        ErrorKind::Transient,
                        format!(
                            "cannot {action} {what}: {} answered {}: {msg}",
                            self.server, s.code
                        ),
                    ),
                    code => (
                        ErrorKind::Internal,
                        format!(
                            "cannot {action} {what}: {} answered {code}: {msg}",
                            self.server
                        ),
                    ),
                };
                Error::new(kind, text)
            }
            kube::Error::Service(ref boxed) if token_error(boxed.as_ref()).is_some() => {
                let token = token_error(boxed.as_ref()).expect("checked");
                Error::new(
                    token.kind(),
                    format!(
                        "cannot {action} {what} on {}: no bearer token from {}: {token}",
                        self.server, self.identity
                    ),
                )
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                let mut cause = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    let text = s.to_string();
                    if !cause.contains(&text) {
                        cause = format!("{cause}: {text}");
                    }
                    source = s.source();
                }
                Error::new(
                    ErrorKind::Transient,
                    format!(
                        "cannot reach the API server {} to {action} {what} (as {}): {cause}",
                        self.server, self.identity
                    ),
                )
            }
            e => Error::internal(format!("cannot {action} {what} on {}: {e}", self.server)),
        }
    }

    /// The live main object as JSON, `None` when it does not exist.
    async fn live(&self, name: &str) -> Result<Option<Value>> {
        let what = format!("{}/{name}", self.main_kind());
        let obj = self
            .main_api()
            .get_opt(name)
            .await
            .map_err(|e| self.error("get", &what, e))?;
        obj.map(|o| serde_json::to_value(o).map_err(|e| Error::internal(e.to_string())))
            .transpose()
    }

    /// GET `url` once a second until it answers 2xx or the health timeout passes; `last`
    /// keeps the latest failure for the wait's timeout message.
    async fn check_http(&self, url: &str, rolled_out: &Health, last: &mut Health) -> Health {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                return Health::new(
                    HealthState::Unhealthy,
                    format!("cannot make an HTTP client for the health check: {e}"),
                );
            }
        };
        let deadline = tokio::time::Instant::now() + self.health_timeout;
        loop {
            let failure = match client.get(url).send().await {
                Ok(r) if r.status().is_success() => {
                    return Health::new(
                        HealthState::Healthy,
                        format!(
                            "{}; health check GET {url} answered {}",
                            rolled_out.message,
                            r.status()
                        ),
                    );
                }
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => format!("failed: {}", without_url(&e)),
            };
            *last = Health::new(
                HealthState::Unhealthy,
                format!(
                    "{} but the health check GET {url} {failure}",
                    rolled_out.message
                ),
            );
            if tokio::time::Instant::now() >= deadline {
                return Health::new(
                    HealthState::Unhealthy,
                    format!("{} (for {}s)", last.message, self.health_timeout.as_secs()),
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Watch the main object until its rollout of `generation` has finished.
    async fn watch_rollout(
        &self,
        name: &str,
        generation: i64,
        last: &mut Health,
    ) -> Result<Health> {
        let api = self.main_api();
        let what = format!("{}/{name}", self.main_kind());
        let fields = format!("metadata.name={name}");
        'relist: loop {
            let list = api
                .list(&ListParams::default().fields(&fields))
                .await
                .map_err(|e| self.error("list", &what, e))?;
            let mut version = list.metadata.resource_version.unwrap_or_default();
            let Some(obj) = list.items.into_iter().next() else {
                return Err(Error::not_found(format!(
                    "{what} in namespace {} was deleted during its rollout",
                    self.namespace()
                )));
            };
            *last = self.evaluate(&to_json(&obj)?, generation);
            if last.state != HealthState::Progressing {
                return Ok(last.clone());
            }
            loop {
                let params = WatchParams::default()
                    .fields(&fields)
                    .timeout(self.watch_timeout);
                let stream = match api.watch(&params, &version).await {
                    Ok(s) => s,
                    Err(kube::Error::Api(s)) if s.code == 410 => continue 'relist,
                    Err(e) => return Err(self.error("watch", &what, e)),
                };
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                            if let Some(v) = o.metadata.resource_version.clone() {
                                version = v;
                            }
                            *last = self.evaluate(&to_json(&o)?, generation);
                            if last.state != HealthState::Progressing {
                                return Ok(last.clone());
                            }
                        }
                        Ok(WatchEvent::Deleted(_)) => {
                            return Err(Error::not_found(format!(
                                "{what} in namespace {} was deleted during its rollout",
                                self.namespace()
                            )));
                        }
                        Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                        Ok(WatchEvent::Error(s)) if s.code == 410 => continue 'relist,
                        Ok(WatchEvent::Error(s)) => {
                            return Err(self.error("watch", &what, kube::Error::Api(s)));
                        }
                        // A broken connection: resume from the last version seen.
                        Err(_) => break,
                    }
                }
                // The server closed the watch (its timeout, a restart): resume.
                self.resumes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The rollout state of the main object, as `kubectl rollout status` judges it.
    fn evaluate(&self, obj: &Value, generation: i64) -> Health {
        match self.workload.kind {
            WorkloadKind::InferenceService => inference_service_health(obj, generation),
            _ => deployment_health(obj, generation),
        }
    }

    /// Roll a Deployment back to ReplicaSet revision `to`.
    async fn undo(&self, name: &str, to: &str) -> Result<Deployment> {
        let what = format!("Deployment/{name}");
        let live = self.live(name).await?.ok_or_else(|| {
            Error::not_found(format!(
                "{what} is not in namespace {}: nothing to roll back",
                self.namespace()
            ))
        })?;
        let uid = live["metadata"]["uid"].as_str().unwrap_or_default();
        let current = revision_of(&live);
        let selector = live["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let replica_sets: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            self.namespace(),
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("apps", "v1", "ReplicaSet"),
                "replicasets",
            ),
        );
        let list = replica_sets
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.error("list", &format!("the ReplicaSets of {what}"), e))?;
        let mut template = None;
        let mut annotations = None;
        for rs in &list.items {
            let rs = to_json(rs)?;
            let owned = rs["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| o.iter().any(|r| r["uid"] == uid));
            if owned && revision_of(&rs).as_deref() == Some(to) {
                template = Some(rs["spec"]["template"].clone());
                annotations = Some(rs["metadata"]["annotations"].clone());
            }
        }
        let mut template = template.ok_or_else(|| {
            Error::not_found(format!(
                "{what} has no ReplicaSet of revision {to} any more (revisionHistoryLimit?): roll back by deploying the earlier digest"
            ))
        })?;
        if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
            labels.remove("pod-template-hash");
        }
        // As kubectl rollout undo: the Deployment takes that revision's annotations too (the
        // image digest and run id wharf wrote then), without the controller's own.
        let mut annotations = annotations.unwrap_or_default();
        if let Some(a) = annotations.as_object_mut() {
            a.retain(|k, _| !ROLLBACK_SKIPPED_ANNOTATIONS.contains(&k.as_str()));
        }
        let generation = self
            .reapply(name, &live, "roll back", |config| {
                config["spec"]["template"] = template;
                config["metadata"]["annotations"] = annotations;
            })
            .await?;
        Ok(Deployment::new(name, generation.to_string(), current))
    }

    /// What wharf applied last to the main object `live` (its fields in `managedFields`),
    /// changed by `change`, applied again as `wharf`, forced: wharf keeps owning what it
    /// owned, so the next deployment applies cleanly. The new generation.
    async fn reapply(
        &self,
        name: &str,
        live: &Value,
        action: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<i64> {
        let what = format!("{}/{name}", self.main_kind());
        let owned = live["metadata"]["managedFields"]
            .as_array()
            .and_then(|entries| {
                entries
                    .iter()
                    .find(|e| e["manager"] == MANAGER && e["operation"] == "Apply")
            })
            .map(|e| e["fieldsV1"].clone())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{what} was not applied by wharf (no field manager {MANAGER:?}): {action} it with the tool that deployed it"
                ))
            })?;
        let mut config = extract(&owned, live);
        config["apiVersion"] = live["apiVersion"].clone();
        config["kind"] = live["kind"].clone();
        config["metadata"]["name"] = json!(name);
        config["metadata"]["namespace"] = json!(self.namespace());
        change(&mut config);
        let applied = self
            .main_api()
            .patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&config),
            )
            .await
            .map_err(|e| self.error(action, &what, e))?;
        Ok(applied.metadata.generation.unwrap_or_default())
    }

    /// Set the InferenceService's `canaryTrafficPercent` (100 promotes the canary, 0 sends
    /// every request back to the last revision rolled out to all traffic and pins it there).
    /// The new generation.
    pub async fn set_canary_percent(&self, name: &str, percent: u8) -> Result<i64> {
        let live = self.live(name).await?.ok_or_else(|| {
            Error::not_found(format!(
                "InferenceService/{name} is not in namespace {}",
                self.namespace()
            ))
        })?;
        self.reapply(name, &live, "set the canary share of", |config| {
            config["spec"]["predictor"]["canaryTrafficPercent"] = json!(percent);
        })
        .await
    }
}

/// A reqwest error without the URL it repeats (the message names it already).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn to_json(obj: &DynamicObject) -> Result<Value> {
    serde_json::to_value(obj).map_err(|e| Error::internal(format!("an API object: {e}")))
}

fn revision_of(obj: &Value) -> Option<String> {
    obj["metadata"]["annotations"][ANNOTATION_REVISION]
        .as_str()
        .map(str::to_owned)
}

/// The object without what the server keeps for itself, so plans compare what users set.
fn comparable(mut v: Value) -> Value {
    if let Some(meta) = v["metadata"].as_object_mut() {
        for k in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            meta.remove(k);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(ANNOTATION_REVISION);
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}

/// The part of `obj` that a managed-fields set (`fieldsV1`) names: `f:` fields, `k:` list
/// items by key, `v:` set members; as client-go's `Extract…` does.
fn extract(fields: &Value, obj: &Value) -> Value {
    let Some(set) = fields.as_object() else {
        return obj.clone();
    };
    if set.is_empty() || (set.len() == 1 && set.contains_key(".")) {
        return obj.clone();
    }
    match obj {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, sub) in set {
                if let Some(field) = key.strip_prefix("f:")
                    && let Some(v) = map.get(field)
                {
                    out.insert(field.to_owned(), extract(sub, v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for (key, sub) in set {
                if let Some(k) = key.strip_prefix("k:") {
                    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(k) else {
                        continue;
                    };
                    if let Some(item) = items
                        .iter()
                        .find(|i| want.iter().all(|(wk, wv)| &i[wk] == wv))
                    {
                        out.push(extract(sub, item));
                    }
                } else if let Some(v) = key.strip_prefix("v:")
                    && let Ok(v) = serde_json::from_str::<Value>(v)
                {
                    out.push(v);
                }
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A Deployment's rollout, decided as `kubectl rollout status` does — except that a
/// complete rollout is healthy even while the previous rollout's deadline condition lingers.
pub fn deployment_health(d: &Value, generation: i64) -> Health {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let status = &d["status"];
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let (updated, replicas, available) = (
        int(&status["updatedReplicas"]),
        int(&status["replicas"]),
        int(&status["availableReplicas"]),
    );
    let revision = revision_of(d).unwrap_or_else(|| "?".into());
    let progress = |what: String| Health::new(HealthState::Progressing, what);
    if int(&status["observedGeneration"]) < generation {
        return progress(format!(
            "waiting for the Deployment controller to see generation {generation} of {name}"
        ));
    }
    // Complete first: a rollback to a revision whose pods are all up is done even while
    // the controller still shows the previous rollout's stale ProgressDeadlineExceeded
    // (kubectl rollout status reports that race as a failure).
    if updated >= desired && replicas <= updated && available >= updated {
        return Health::new(
            HealthState::Healthy,
            format!(
                "{name} revision {revision} rolled out: {available} of {desired} replicas available"
            ),
        );
    }
    // A deadline is passed at least a second after the apply that started the rollout;
    // one marked before or in the second of wharf's last apply (server times, RFC 3339 UTC,
    // whole seconds) belongs to an earlier rollout.
    let applied_at = d["metadata"]["managedFields"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|e| e["manager"] == MANAGER && e["operation"] == "Apply")
        })
        .and_then(|e| e["time"].as_str());
    let deadline = status["conditions"].as_array().and_then(|c| {
        c.iter().find(|c| {
            c["type"] == "Progressing"
                && c["reason"] == "ProgressDeadlineExceeded"
                && match (c["lastUpdateTime"].as_str(), applied_at) {
                    (Some(updated), Some(applied)) => updated > applied,
                    _ => true,
                }
        })
    });
    if let Some(c) = deadline {
        return Health::new(
            HealthState::Unhealthy,
            format!(
                "{name} revision {revision} exceeded its progress deadline ({}s): {}; {updated} of {desired} replicas updated, {available} available",
                int(&d["spec"]["progressDeadlineSeconds"]),
                c["message"].as_str().unwrap_or_default()
            ),
        );
    }
    if updated < desired {
        return progress(format!(
            "{name} revision {revision}: {updated} of {desired} replicas updated"
        ));
    }
    if replicas > updated {
        return progress(format!(
            "{name} revision {revision}: {} old replicas pending termination",
            replicas - updated
        ));
    }
    progress(format!(
        "{name} revision {revision}: {available} of {updated} updated replicas available"
    ))
}

/// An InferenceService's readiness: its `Ready` condition once the generation is observed.
pub fn inference_service_health(isvc: &Value, generation: i64) -> Health {
    let name = isvc["metadata"]["name"].as_str().unwrap_or_default();
    let status = &isvc["status"];
    if int(&status["observedGeneration"]) < generation {
        return Health::new(
            HealthState::Progressing,
            format!("waiting for KServe to see generation {generation} of {name}"),
        );
    }
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    match ready {
        Some(c) if c["status"] == "True" => Health::new(
            HealthState::Healthy,
            format!(
                "{name} is ready{}",
                status["url"]
                    .as_str()
                    .map_or_else(String::new, |u| format!(" at {u}"))
            ),
        ),
        Some(c) if c["status"] == "False" && c["severity"] != "Info" => Health::new(
            HealthState::Unhealthy,
            format!(
                "{name} is not ready: {} {}",
                c["reason"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            ),
        ),
        _ => Health::new(HealthState::Progressing, format!("{name} is not ready yet")),
    }
}

#[async_trait]
impl DeployTarget for Cluster {
    fn name(&self) -> &str {
        "kubernetes"
    }

    async fn plan(&self, request: &DeployRequest) -> Result<Plan> {
        let manifests = render(request, &self.workload)?;
        let mut changes = Vec::new();
        for m in &manifests {
            let (api, name) = self.api_for(&m.value).await?;
            let live = api
                .get_opt(&name)
                .await
                .map_err(|e| self.error("get", &m.object, e))?;
            let planned = api
                .patch(&name, &self.params().dry_run(), &Patch::Apply(&m.value))
                .await
                .map_err(|e| self.error("apply", &m.object, e))?;
            let live = live.as_ref().map(to_json).transpose()?.map(comparable);
            changes.extend(diff(
                &m.object,
                live.as_ref(),
                &comparable(to_json(&planned)?),
            ));
        }
        Ok(Plan::new(request.clone(), changes))
    }

    async fn apply(&self, plan: &Plan) -> Result<Deployment> {
        let request = &plan.request;
        let manifests: Vec<Manifest> = render(request, &self.workload)?;
        let before = self.live(&request.name).await?;
        let previous = before.as_ref().and_then(|b| match self.workload.kind {
            WorkloadKind::InferenceService => {
                b["status"]["components"]["predictor"]["latestRolledoutRevision"]
                    .as_str()
                    .map(str::to_owned)
            }
            _ => revision_of(b),
        });
        if plan.is_noop()
            && let Some(live) = &before
        {
            // Nothing to change: the run id stays the one of the run that deployed it.
            let generation = int(&live["metadata"]["generation"]);
            return Ok(Deployment::new(
                &request.name,
                generation.to_string(),
                previous,
            ));
        }
        let mut generation = 0;
        for m in &manifests {
            let (api, name) = self.api_for(&m.value).await?;
            let applied = api
                .patch(&name, &self.params(), &Patch::Apply(&m.value))
                .await
                .map_err(|e| self.error("apply", &m.object, e))?;
            if m.value["kind"] == self.main_kind() {
                generation = applied.metadata.generation.unwrap_or_default();
            }
        }
        Ok(Deployment::new(
            &request.name,
            generation.to_string(),
            previous,
        ))
    }

    async fn status(&self, deployment: &Deployment) -> Result<Health> {
        let live = self.live(&deployment.name).await?.ok_or_else(|| {
            Error::not_found(format!(
                "{}/{} is not in namespace {}",
                self.main_kind(),
                deployment.name,
                self.namespace()
            ))
        })?;
        Ok(self.evaluate(&live, generation_of(deployment)))
    }

    async fn wait(&self, deployment: &Deployment, timeout: Duration) -> Result<Health> {
        let mut last = Health::new(
            HealthState::Progressing,
            "the rollout has not been seen yet",
        );
        let generation = generation_of(deployment);
        let rollout = async {
            let mut health = self
                .watch_rollout(&deployment.name, generation, &mut last)
                .await?;
            if let Some(url) = &self.health_url
                && health.state == HealthState::Healthy
            {
                health = self.check_http(url, &health, &mut last).await;
            }
            // Promote only a canary in progress: after a rollback the share is 0, not ours.
            let canary = match self.workload.canary_traffic_percent {
                Some(p) if p < 100 && self.promote && health.state == HealthState::Healthy => {
                    let live = self.live(&deployment.name).await?;
                    let share = live
                        .as_ref()
                        .and_then(|l| l["spec"]["predictor"]["canaryTrafficPercent"].as_u64());
                    (share == Some(u64::from(p))).then_some(p)
                }
                _ => None,
            };
            match canary {
                Some(p) => {
                    let promoted = self.set_canary_percent(&deployment.name, 100).await?;
                    let after = self
                        .watch_rollout(&deployment.name, promoted, &mut last)
                        .await?;
                    Ok(Health::new(
                        after.state,
                        format!(
                            "canary passed at {p}% ({}); promoted to 100%: {}",
                            health.message, after.message
                        ),
                    ))
                }
                _ => Ok(health),
            }
        };
        match tokio::time::timeout(timeout, rollout).await {
            Ok(health) => health,
            Err(_) if last.state == HealthState::Unhealthy => Ok(Health::new(
                HealthState::Unhealthy,
                format!("{} (for {}s)", last.message, timeout.as_secs()),
            )),
            Err(_) => Ok(Health::new(
                HealthState::Progressing,
                format!(
                    "still rolling out after {}s: {}",
                    timeout.as_secs(),
                    last.message
                ),
            )),
        }
    }

    async fn rollback(&self, deployment: &Deployment) -> Result<Deployment> {
        let to = deployment.previous_revision.as_deref().ok_or_else(|| {
            Error::not_found(format!(
                "{} has no previous revision to roll back to: it was its first deployment",
                deployment.name
            ))
        })?;
        if self.workload.kind == WorkloadKind::InferenceService {
            // As KServe documents it: canaryTrafficPercent 0 sends all traffic back to the
            // revision last rolled out to 100 % and keeps it there.
            let generation = self.set_canary_percent(&deployment.name, 0).await?;
            return Ok(Deployment::new(
                &deployment.name,
                generation.to_string(),
                Some(to.to_owned()),
            ));
        }
        self.undo(&deployment.name, to).await
    }
}

fn generation_of(d: &Deployment) -> i64 {
    d.revision.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_takes_the_fields_a_manager_owns() {
        let obj = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "model", "image": "i", "imagePullPolicy": "IfNotPresent"},
                {"name": "side", "image": "s"}]}}}});
        let fields = json!({"f:metadata": {"f:labels": {"f:x": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"model\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}});
        assert_eq!(
            extract(&fields, &obj),
            json!({"metadata": {"labels": {"x": "1"}},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [
                    {"name": "model", "image": "i"}]}}}})
        );
    }

    #[test]
    fn rollout_states_follow_kubectl_rollout_status() {
        let d = |observed: i64, updated: i64, replicas: i64, available: i64, deadline: bool| {
            let mut conditions = vec![json!({"type": "Available", "status": "True"})];
            if deadline {
                conditions.push(json!({"type": "Progressing", "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "ReplicaSet \"a-5d\" has timed out progressing."}));
            }
            json!({"metadata": {"name": "a", "annotations": {ANNOTATION_REVISION: "2"}},
                "spec": {"replicas": 2, "progressDeadlineSeconds": 5},
                "status": {"observedGeneration": observed, "updatedReplicas": updated,
                    "replicas": replicas, "availableReplicas": available,
                    "conditions": conditions}})
        };
        let state = |v: Value| deployment_health(&v, 3).state;
        assert_eq!(state(d(2, 2, 2, 2, false)), HealthState::Progressing);
        assert_eq!(state(d(3, 1, 2, 1, false)), HealthState::Progressing);
        assert_eq!(state(d(3, 2, 3, 2, false)), HealthState::Progressing);
        assert_eq!(state(d(3, 2, 2, 1, false)), HealthState::Progressing);
        assert_eq!(state(d(3, 2, 2, 2, false)), HealthState::Healthy);
        assert_eq!(
            state(d(3, 2, 2, 2, true)),
            HealthState::Healthy,
            "a stale deadline"
        );
        let mut stale = d(3, 2, 3, 1, true);
        stale["status"]["conditions"][1]["lastUpdateTime"] = json!("2026-12-05T21:51:11Z");
        stale["metadata"]["managedFields"] = json!([{"manager": "wharf", "operation": "Apply",
            "time": "2026-12-05T21:51:11Z"}]);
        assert_eq!(
            state(stale.clone()),
            HealthState::Progressing,
            "an earlier rollout's"
        );
        stale["status"]["conditions"][1]["lastUpdateTime"] = json!("2026-12-05T21:51:15Z");
        assert_eq!(state(stale), HealthState::Unhealthy);
        let h = deployment_health(&d(3, 2, 3, 1, true), 3);
        assert_eq!(h.state, HealthState::Unhealthy);
        assert!(
            h.message.contains("progress deadline (5s)"),
            "{}",
            h.message
        );
    }

    #[test]
    fn plans_compare_without_server_bookkeeping() {
        let v = json!({"metadata": {"name": "a", "resourceVersion": "9", "generation": 3,
            "managedFields": [], "annotations": {ANNOTATION_REVISION: "2"}}, "status": {}});
        assert_eq!(comparable(v), json!({"metadata": {"name": "a"}}));
    }
}
