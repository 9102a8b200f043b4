#![allow(clippy::unwrap_used)]
//! The `cluster` target against the harness's real control plane — kube-apiserver 1.37 on
//! etcd, kube-controller-manager, kube-scheduler, and kwok playing a node with 8 GPUs and
//! its kubelet (pods become Running and Ready without containers): a clean rollout, a
//! rollout that cannot become available rolled back to the previous ReplicaSet revision, a
//! conflict with another field manager, and RBAC refusing a service account. Each test works
//! in a namespace of its own.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment as KubeDeployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use wharf_core::deploy::{Change, DeployRequest, HealthState, Plan};
use wharf_core::{DeployTarget, Digest, Environment, ErrorKind, Reference};
use wharf_kube::cluster::{ANNOTATION_REVISION, Cluster};
use wharf_kube::render::{SETTING_RUN_ID, Workload};

const WAIT: Duration = Duration::from_secs(90);

fn kubeconfig() -> PathBuf {
    std::env::var_os("WHARF_TEST_KUBECONFIG")
        .expect("WHARF_TEST_KUBECONFIG is not set: run `cargo xtask test`, or `cargo xtask backends up` and eval \"$(cargo xtask backends env)\"")
        .into()
}

fn image(content: &[u8]) -> Reference {
    format!(
        "registry.example/models/fraud@{}",
        Digest::sha256_of(content)
    )
    .parse()
    .unwrap()
}

fn request(content: &[u8], run: &str) -> DeployRequest {
    let mut r = DeployRequest::new("fraud", image(content), Environment::Dev).unwrap();
    r.replicas = 2;
    r.settings.insert(SETTING_RUN_ID.into(), run.into());
    r
}

fn workload(namespace: &str, extra: serde_json::Value) -> Workload {
    let mut w = json!({"namespace": namespace, "progress_deadline_seconds": 4});
    w.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(w).unwrap()
}

/// Deletes the test's namespace when the test ends, passed or not (without waiting).
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(kubectl) = std::env::var_os("WHARF_TEST_KUBECTL") {
            let _ = std::process::Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(kubeconfig())
                .args(["delete", "namespace", &self.0, "--wait=false"])
                .output();
        }
    }
}

/// The test user's client (system:masters) and a fresh namespace, deleted when the
/// returned guard drops.
async fn admin(prefix: &str) -> (kube::Client, String, Cleanup) {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig()).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let name = format!(
        "{prefix}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    (client, name.clone(), Cleanup(name))
}

async fn target(namespace: &str, extra: serde_json::Value) -> Cluster {
    Cluster::from_kubeconfig(Some(&kubeconfig()), None, workload(namespace, extra))
        .await
        .unwrap()
}

/// Plan, apply and wait for `req` on `target`; the rollout must end `expected`.
async fn deploy_until(
    target: &Cluster,
    req: &DeployRequest,
    expected: HealthState,
) -> wharf_core::deploy::Deployment {
    let deployed = target
        .apply(&target.plan(req).await.unwrap())
        .await
        .unwrap();
    let health = target.wait(&deployed, WAIT).await.unwrap();
    assert_eq!(health.state, expected, "{}", health.message);
    deployed
}

/// A target in `ns` that also applies the user's manifest `yaml` (written as `file`).
async fn with_manifest(ns: &str, file: &str, yaml: &str) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), yaml).unwrap();
    let mut w = workload(ns, json!({}));
    w.manifests = wharf_kube::render::load_manifests(&[dir.path().to_owned()]).unwrap();
    Cluster::from_kubeconfig(Some(&kubeconfig()), None, w)
        .await
        .unwrap()
}

fn template_image(d: &KubeDeployment) -> String {
    let v = serde_json::to_value(d).unwrap();
    v["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A first rollout that kwok's node makes ready, a plan of nothing for the same digest,
/// then a rollout whose pods can never be scheduled (100 GPUs asked of a node with 8) past
/// its progress deadline: the wait says so, with watches the server closed every second
/// resumed on the way, and the rollback returns to revision 1's pod template — read back
/// from the ReplicaSets — rolls out, and leaves the next deployment free of conflicts.
#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_rollout_is_rolled_back_to_the_previous_replica_set() {
    let (client, ns, _cleanup_ns) = admin("rollout").await;
    let good = target(&ns, json!({}))
        .await
        .watch_timeout(Duration::from_secs(1));
    let plan = good.plan(&request(b"v1", "run-1")).await.unwrap();
    assert!(
        plan.to_string()
            .contains("+ Deployment/fraud (object): created with image"),
        "{plan}"
    );
    let first = good.apply(&plan).await.unwrap();
    assert_eq!(first.previous_revision, None);
    let health = good.wait(&first, WAIT).await.unwrap();
    assert_eq!(health.state, HealthState::Healthy, "{}", health.message);
    assert!(
        health.message.contains("2 of 2 replicas available"),
        "{}",
        health.message
    );

    let again = good.plan(&request(b"v1", "run-2")).await.unwrap();
    assert!(again.is_noop(), "{again}");

    let greedy = target(
        &ns,
        json!({"resources": {"requests": {"nvidia.com/gpu": "100"}, "limits": {"nvidia.com/gpu": "100"}}}),
    )
    .await
    .watch_timeout(Duration::from_secs(1));
    let plan = greedy.plan(&request(b"v2", "run-3")).await.unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("spec.template.spec.containers[0].image")
            && text.contains(&image(b"v2").to_string()),
        "{text}"
    );
    let second = greedy.apply(&plan).await.unwrap();
    assert_eq!(second.previous_revision.as_deref(), Some("1"));
    let health = greedy.wait(&second, WAIT).await.unwrap();
    assert_eq!(health.state, HealthState::Unhealthy, "{}", health.message);
    assert!(
        health.message.contains("exceeded its progress deadline"),
        "{}",
        health.message
    );
    assert!(greedy.watch_resumes() >= 1, "the server closed no watch");

    let back = greedy.rollback(&second).await.unwrap();
    assert_eq!(back.previous_revision.as_deref(), Some("2"));
    let health = greedy.wait(&back, WAIT).await.unwrap();
    assert_eq!(health.state, HealthState::Healthy, "{}", health.message);

    let deployments: Api<KubeDeployment> = Api::namespaced(client.clone(), &ns);
    let live = deployments.get("fraud").await.unwrap();
    assert_eq!(template_image(&live), image(b"v1").to_string());
    // As with `kubectl rollout undo`: revision 1's ReplicaSet becomes revision 3 and
    // carries the pods again; revision 2's is scaled to zero.
    let sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let by_revision: Vec<(String, String, i64)> = sets
        .items
        .iter()
        .map(|rs| {
            let v = serde_json::to_value(rs).unwrap();
            (
                v["metadata"]["annotations"][ANNOTATION_REVISION]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                v["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                v["spec"]["replicas"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        by_revision.contains(&("3".into(), image(b"v1").to_string(), 2)),
        "{by_revision:?}"
    );
    assert!(
        by_revision.contains(&("2".into(), image(b"v2").to_string(), 0)),
        "{by_revision:?}"
    );

    // The rollback was applied as wharf: the next deployment has no conflict to force.
    let third = good
        .apply(&good.plan(&request(b"v3", "run-4")).await.unwrap())
        .await
        .unwrap();
    let health = good.wait(&third, WAIT).await.unwrap();
    assert_eq!(health.state, HealthState::Healthy, "{}", health.message);
    assert_eq!(
        template_image(&deployments.get("fraud").await.unwrap()),
        image(b"v3").to_string()
    );
}

/// Another field manager took `spec.replicas`: the plan and the apply both refuse, naming
/// that manager and the field; with force_conflicts wharf takes the field back.
#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_names_the_other_field_manager_and_force_takes_the_field() {
    let (client, ns, _cleanup_ns) = admin("conflict").await;
    let wharf = target(&ns, json!({})).await;
    deploy_until(&wharf, &request(b"v1", "r1"), HealthState::Healthy).await;
    let deployments: Api<KubeDeployment> = Api::namespaced(client, &ns);
    deployments
        .patch(
            "fraud",
            &PatchParams::apply("platform-autoscaler").force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "fraud"}, "spec": {"replicas": 5}})),
        )
        .await
        .unwrap();

    let err = wharf.plan(&request(b"v2", "r2")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("platform-autoscaler") && text.contains(".spec.replicas"),
        "{text}"
    );
    assert!(text.contains("force_conflicts"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    // Applied without a plan (one made before the other manager took the field).
    let change = Change::new(
        "Deployment/fraud",
        "spec.template.spec.containers[0].image",
        None,
        "v2",
    );
    let plan = Plan::new(request(b"v2", "r2"), vec![change]);
    let err = wharf.apply(&plan).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

    let forced = target(&ns, json!({})).await.force_conflicts(true);
    let plan = forced.plan(&request(b"v2", "r2")).await.unwrap();
    assert!(plan.to_string().contains("spec.replicas: 5 -> 2"), "{plan}");
    forced.apply(&plan).await.unwrap();
    let live = deployments.get("fraud").await.unwrap();
    assert_eq!(serde_json::to_value(&live).unwrap()["spec"]["replicas"], 2);
}

/// A service account that may read Deployments but not patch them: the plan fails with
/// Denied, and the message says which verb on which resource is missing and what wharf
/// needs.
#[tokio::test(flavor = "multi_thread")]
async fn rbac_refusal_names_the_missing_verb_and_resource() {
    let (client, ns, _cleanup_ns) = admin("rbac").await;
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("deployer".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    accounts.create(&PostParams::default(), &sa).await.unwrap();
    let role = Role {
        metadata: ObjectMeta {
            name: Some("read-only".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["apps".into(), String::new()]),
            resources: Some(vec!["deployments".into(), "services".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("deployer-read-only".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "read-only".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "deployer".into(),
            namespace: Some(ns.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let token = accounts
        .create_token_request(
            "deployer",
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    audiences: None,
                    expiration_seconds: Some(600),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .unwrap();

    // The test kubeconfig with the service account's token as its user.
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig()).unwrap()).unwrap();
    config["users"][0]["user"] = serde_yaml::to_value(json!({"token": token})).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    let limited = Cluster::from_kubeconfig(Some(&path), None, workload(&ns, json!({})))
        .await
        .unwrap();

    let err = limited.plan(&request(b"v1", "r1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("system:serviceaccount:{ns}:deployer"))
            && text.contains("cannot patch resource \"deployments\""),
        "{text}"
    );
    assert!(
        text.contains("wharf needs get, list, watch and patch on deployments.apps"),
        "{text}"
    );
    assert!(!text.contains(&token), "the token leaked: {text}");
}

/// A kubeconfig that does not exist, and a context it does not have: one-line errors that
/// name the file and the context.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_kubeconfig_or_context_is_named() {
    let err = Cluster::from_kubeconfig(
        Some("/nonexistent/kubeconfig".as_ref()),
        None,
        Workload::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
    let err = Cluster::from_kubeconfig(Some(&kubeconfig()), Some("prod-eu"), Workload::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("prod-eu"), "{err}");
    assert!(!err.contains('\n'), "{err}");

    // A cluster that does not answer: the error names the endpoint and who was asking.
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig()).unwrap()).unwrap();
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    let target = Cluster::from_kubeconfig(Some(&path), None, Workload::default())
        .await
        .unwrap();
    let err = target.plan(&request(b"v1", "r1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("cannot reach the API server https://127.0.0.1:9")
            && text.contains("(as user wharf-test of context wharf-test in"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

/// A manifest field of the wrong type (replicas as a word, through a user's manifest) is
/// refused by the server's dry run at plan time, naming the object: nothing is applied.
#[tokio::test(flavor = "multi_thread")]
async fn a_field_of_the_wrong_type_is_refused_at_plan_time() {
    let (client, ns, _cleanup_ns) = admin("badfield").await;
    let target = with_manifest(&ns, "hpa.yaml", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: fraud\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: fraud}\n  minReplicas: two\n  maxReplicas: 4\n").await;
    let err = target.plan(&request(b"v1", "r1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("HorizontalPodAutoscaler/fraud") && text.contains("minReplicas"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    let deployments: Api<KubeDeployment> = Api::namespaced(client, &ns);
    assert!(
        deployments.get_opt("fraud").await.unwrap().is_none(),
        "nothing applied"
    );
}

/// A model server's health endpoint: answers each GET with the status `status` holds, and
/// counts the requests.
fn health_server(
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    hits: std::sync::Arc<std::sync::atomic::AtomicU32>,
) -> String {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            hits.fetch_add(1, Ordering::SeqCst);
            let code = status.load(Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    url
}

/// With a health URL, a rollout is healthy only once the endpoint answers 2xx (it may fail
/// at first, as a model loads); one that keeps failing past the health timeout is unhealthy
/// — its message says what the endpoint answered — and is rolled back.
#[tokio::test(flavor = "multi_thread")]
async fn the_http_health_check_decides_and_a_failing_one_is_rolled_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
    let (client, ns, _cleanup_ns) = admin("health").await;
    let status = Arc::new(AtomicU16::new(503));
    let hits = Arc::new(AtomicU32::new(0));
    let url = health_server(status.clone(), hits.clone());
    let target = target(&ns, json!({}))
        .await
        .health_url(&url)
        .health_timeout(Duration::from_secs(20));
    // Ready after three failed checks, as a model server loading its weights.
    let flip = {
        let (status, hits) = (status.clone(), hits.clone());
        tokio::spawn(async move {
            while hits.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            status.store(200, Ordering::SeqCst);
        })
    };
    let first = target
        .apply(&target.plan(&request(b"v1", "r1")).await.unwrap())
        .await
        .unwrap();
    let health = target.wait(&first, WAIT).await.unwrap();
    flip.await.unwrap();
    assert_eq!(health.state, HealthState::Healthy, "{}", health.message);
    assert!(
        health
            .message
            .contains(&format!("health check GET {url} answered 200")),
        "{}",
        health.message
    );
    assert!(hits.load(Ordering::SeqCst) >= 4);

    status.store(503, Ordering::SeqCst);
    let strict = target.health_timeout(Duration::from_secs(2));
    let second = strict
        .apply(&strict.plan(&request(b"v2", "r2")).await.unwrap())
        .await
        .unwrap();
    let health = strict.wait(&second, WAIT).await.unwrap();
    assert_eq!(health.state, HealthState::Unhealthy, "{}", health.message);
    assert!(
        health.message.contains("answered 503") && health.message.contains("(for 2s)"),
        "{}",
        health.message
    );
    status.store(200, Ordering::SeqCst);
    let back = strict.rollback(&second).await.unwrap();
    assert_eq!(
        strict.wait(&back, WAIT).await.unwrap().state,
        HealthState::Healthy
    );
    let live = Api::<KubeDeployment>::namespaced(client, &ns)
        .get("fraud")
        .await
        .unwrap();
    assert_eq!(template_image(&live), image(b"v1").to_string());
}

/// The InferenceService CRD (tests/fixtures/inferenceservice-crd.yaml), applied once and
/// established.
async fn install_inference_service_crd(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crd: serde_json::Value =
        serde_yaml::from_str(include_str!("fixtures/inferenceservice-crd.yaml")).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "inferenceservices.serving.kserve.io";
    crds.patch(
        name,
        &PatchParams::apply("wharf-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    for _ in 0..100 {
        let c = serde_json::to_value(crds.get(name).await.unwrap()).unwrap();
        let established = c["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        });
        if established {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the InferenceService CRD was not established");
}

/// Plays KServe's controller for the InferenceServices of `ns`: for each new generation,
/// the status KServe writes (ComponentStatusSpec in kserve's pkg/apis/serving/v1beta1) — a
/// revision per predictor image; an image of `bad` content fails (Ready False,
/// RevisionFailed); otherwise the canary share splits traffic between the new revision and
/// the last one rolled out to 100 %, 100 % rolls the new one out, and 0 % pins traffic to
/// the last rolled-out revision.
fn play_kserve(client: kube::Client, ns: String, bad: String) -> tokio::task::JoinHandle<()> {
    use kube::api::DynamicObject;
    use kube::core::{ApiResource, GroupVersionKind};
    tokio::spawn(async move {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("serving.kserve.io", "v1beta1", "InferenceService"),
            "inferenceservices",
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &resource);
        loop {
            for isvc in api.list(&ListParams::default()).await.unwrap().items {
                let v = serde_json::to_value(&isvc).unwrap();
                let generation = v["metadata"]["generation"].as_i64().unwrap();
                if v["status"]["observedGeneration"].as_i64() == Some(generation) {
                    continue;
                }
                let name = v["metadata"]["name"].as_str().unwrap().to_owned();
                let predictor = &v["spec"]["predictor"];
                let image = predictor["containers"][0]["image"].as_str().unwrap();
                let digest = image.rsplit(':').next().unwrap();
                let revision = format!("{name}-predictor-{}", &digest[..8]);
                let canary = predictor["canaryTrafficPercent"].as_i64().unwrap_or(100);
                let old = &v["status"]["components"]["predictor"];
                let rolled = old["latestRolledoutRevision"].as_str().map(str::to_owned);
                let mut component = old.clone();
                if component.is_null() {
                    component = json!({});
                }
                component["latestCreatedRevision"] = json!(revision);
                let (ready, traffic) = if image.contains(&bad) && canary > 0 {
                    (
                        json!({"type": "Ready", "status": "False", "reason": "RevisionFailed",
                            "message": format!("Revision \"{revision}\" failed with message: Back-off pulling image.")}),
                        old["traffic"].clone(),
                    )
                } else if canary == 0 {
                    let to = rolled.clone().unwrap();
                    (
                        json!({"type": "Ready", "status": "True"}),
                        json!([{"revisionName": to, "percent": 100, "latestRevision": false, "tag": "prev"}]),
                    )
                } else {
                    component["latestReadyRevision"] = json!(revision);
                    match &rolled {
                        Some(prev) if canary < 100 && *prev != revision => (
                            json!({"type": "Ready", "status": "True"}),
                            json!([
                                {"revisionName": revision, "percent": canary, "latestRevision": true, "tag": "latest"},
                                {"revisionName": prev, "percent": 100 - canary, "latestRevision": false, "tag": "prev"}]),
                        ),
                        _ => {
                            if rolled.as_deref() != Some(revision.as_str()) {
                                component["previousRolledoutRevision"] = json!(rolled);
                            }
                            component["latestRolledoutRevision"] = json!(revision);
                            (
                                json!({"type": "Ready", "status": "True"}),
                                json!([{"revisionName": revision, "percent": 100, "latestRevision": true}]),
                            )
                        }
                    }
                };
                component["traffic"] = traffic;
                let status = json!({"status": {
                    "observedGeneration": generation,
                    "url": format!("http://{name}.{ns}.example.com"),
                    "conditions": [ready],
                    "components": {"predictor": component},
                }});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn isvc_request(content: &[u8], run: &str) -> DeployRequest {
    let mut r = request(content, run);
    r.name = "scorer".into();
    r
}

/// A KServe InferenceService with a 10 % canary: the first model rolls out; the second is
/// ready at 10 % beside it and promoted to 100 %; a third that fails is rolled back by
/// setting the canary share to 0 %, which leaves all traffic pinned to the second.
#[tokio::test(flavor = "multi_thread")]
async fn an_inference_service_canary_is_promoted_or_rolled_back() {
    let (client, ns, _cleanup_ns) = admin("kserve").await;
    install_inference_service_crd(&client).await;
    let bad = Digest::sha256_of(b"bad").to_string();
    let kserve = play_kserve(
        client.clone(),
        ns.clone(),
        bad["sha256:".len()..].to_owned(),
    );
    let target = target(
        &ns,
        json!({"kind": "inference-service", "canary_traffic_percent": 10}),
    )
    .await;
    let spec = |client: kube::Client, ns: String| async move {
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            client,
            &ns,
            &kube::core::ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk(
                    "serving.kserve.io",
                    "v1beta1",
                    "InferenceService",
                ),
                "inferenceservices",
            ),
        );
        serde_json::to_value(api.get("scorer").await.unwrap()).unwrap()
    };

    let plan = target.plan(&isvc_request(b"v1", "r1")).await.unwrap();
    assert!(
        plan.to_string()
            .contains("+ InferenceService/scorer (object): created with image"),
        "{plan}"
    );
    let first = target.apply(&plan).await.unwrap();
    assert_eq!(first.previous_revision, None);
    let health = target.wait(&first, WAIT).await.unwrap();
    assert_eq!(health.state, HealthState::Healthy, "{}", health.message);

    let plan = target.plan(&isvc_request(b"v2", "r2")).await.unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("spec.predictor.canaryTrafficPercent: 100 -> 10"),
        "{text}"
    );
    assert!(
        text.contains("spec.predictor.containers[0].image"),
        "{text}"
    );
    let second = target.apply(&plan).await.unwrap();
    let v1_revision = second.previous_revision.clone().unwrap();
    assert!(
        v1_revision.starts_with("scorer-predictor-"),
        "{v1_revision}"
    );
    let health = target.wait(&second, WAIT).await.unwrap();
    assert_eq!(health.state, HealthState::Healthy, "{}", health.message);
    assert!(
        health.message.contains("canary passed at 10%")
            && health.message.contains("promoted to 100%"),
        "{}",
        health.message
    );
    let live = spec(client.clone(), ns.clone()).await;
    assert_eq!(live["spec"]["predictor"]["canaryTrafficPercent"], 100);
    let v2_revision = live["status"]["components"]["predictor"]["latestRolledoutRevision"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(v2_revision, v1_revision);

    let third = target
        .apply(&target.plan(&isvc_request(b"bad", "r3")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        third.previous_revision.as_deref(),
        Some(v2_revision.as_str())
    );
    let health = target.wait(&third, WAIT).await.unwrap();
    assert_eq!(health.state, HealthState::Unhealthy, "{}", health.message);
    assert!(
        health.message.contains("RevisionFailed"),
        "{}",
        health.message
    );
    let back = target.rollback(&third).await.unwrap();
    let health = target.wait(&back, WAIT).await.unwrap();
    assert_eq!(health.state, HealthState::Healthy, "{}", health.message);
    let live = spec(client.clone(), ns.clone()).await;
    assert_eq!(live["spec"]["predictor"]["canaryTrafficPercent"], 0);
    assert_eq!(
        live["status"]["components"]["predictor"]["traffic"],
        json!([{"revisionName": v2_revision, "percent": 100, "latestRevision": false, "tag": "prev"}])
    );
    kserve.abort();
}

/// Users' own objects (here a ConfigMap the model reads) are planned and applied with the
/// rendered ones, as field manager wharf.
#[tokio::test(flavor = "multi_thread")]
async fn users_manifests_are_planned_and_applied_with_the_workload() {
    let (client, ns, _cleanup_ns) = admin("extra").await;
    let target = with_manifest(&ns, "config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fraud-thresholds\ndata:\n  block: \"0.92\"\n").await;
    let plan = target.plan(&request(b"v1", "r1")).await.unwrap();
    assert!(
        plan.to_string()
            .contains("+ ConfigMap/fraud-thresholds (object): created"),
        "{plan}"
    );
    let deployed = target.apply(&plan).await.unwrap();
    assert_eq!(
        target.wait(&deployed, WAIT).await.unwrap().state,
        HealthState::Healthy
    );
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, &ns)
        .get("fraud-thresholds")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["block"], "0.92");
    let managers: Vec<_> = cm
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["wharf"]);
    assert!(target.plan(&request(b"v1", "r2")).await.unwrap().is_noop());
}

/// kubectl from the same Kubernetes release, as the peer.
fn kubectl(args: &[&str]) -> std::process::Output {
    std::process::Command::new(std::env::var("WHARF_TEST_KUBECTL").expect(
        "WHARF_TEST_KUBECTL is not set: run `cargo xtask test`, or `cargo xtask backends up` and eval \"$(cargo xtask backends env)\"",
    ))
    .arg("--kubeconfig")
    .arg(kubeconfig())
    .args(args)
    .output()
    .unwrap()
}

/// `kubectl ARGS`, which must succeed.
fn kubectl_ok(args: &[&str]) {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Deployment as JSON, without what differs between two copies of the same history
/// (names, uids, times, resource versions, field managers).
async fn deployment_shape(client: &kube::Client, ns: &str) -> serde_json::Value {
    let d = Api::<KubeDeployment>::namespaced(client.clone(), ns)
        .get("fraud")
        .await
        .unwrap();
    let mut v = serde_json::to_value(d).unwrap();
    let meta = v["metadata"].as_object_mut().unwrap();
    for k in [
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        meta.remove(k);
    }
    v.as_object_mut().unwrap().remove("status");
    v
}

/// The same history in two namespaces — v1, then v2 that cannot be scheduled — undone by
/// wharf's rollback in one and by `kubectl rollout undo` in the other: the Deployments
/// are the same (pod template, revision, annotations, spec), and so are the ReplicaSets'
/// revisions.
#[tokio::test(flavor = "multi_thread")]
async fn our_rollback_leaves_the_deployment_as_kubectl_rollout_undo_does() {
    let (client, ours, _cleanup_ours) = admin("undo-wharf").await;
    let (_, theirs, _cleanup_theirs) = admin("undo-kubectl").await;
    let stuck = json!({"node_selector": {"pool": "gpu-a100"}});
    let mut second = std::collections::BTreeMap::new();
    for ns in [&ours, &theirs] {
        let good = target(ns, json!({})).await;
        deploy_until(&good, &request(b"v1", "r1"), HealthState::Healthy).await;
        let bad = target(ns, stuck.clone()).await;
        let d = deploy_until(&bad, &request(b"v2", "r2"), HealthState::Unhealthy).await;
        second.insert(ns.clone(), (bad, d));
    }
    let (bad, d) = &second[&ours];
    let back = bad.rollback(d).await.unwrap();
    assert_eq!(
        bad.wait(&back, WAIT).await.unwrap().state,
        HealthState::Healthy
    );
    kubectl_ok(&["-n", &theirs, "rollout", "undo", "deployment/fraud"]);
    kubectl_ok(&[
        "-n",
        &theirs,
        "rollout",
        "status",
        "deployment/fraud",
        "--timeout=60s",
    ]);

    let (a, b) = (
        deployment_shape(&client, &ours).await,
        deployment_shape(&client, &theirs).await,
    );
    assert_eq!(a, b, "wharf's rollback and kubectl rollout undo differ");
    assert_eq!(a["metadata"]["annotations"][ANNOTATION_REVISION], "3");
    let revisions = |ns: String| {
        let client = client.clone();
        async move {
            let mut r: Vec<(String, i64)> = Api::<ReplicaSet>::namespaced(client, &ns)
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .map(|rs| {
                    let v = serde_json::to_value(rs).unwrap();
                    (
                        v["metadata"]["annotations"][ANNOTATION_REVISION]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                        v["spec"]["replicas"].as_i64().unwrap_or(0),
                    )
                })
                .collect();
            r.sort();
            r
        }
    };
    assert_eq!(
        revisions(ours.clone()).await,
        revisions(theirs.clone()).await
    );
}

/// The plan and `kubectl diff --server-side` (same field manager) on the same change: every
/// line kubectl shows changed is a field the plan names, with the same old and new value.
#[tokio::test(flavor = "multi_thread")]
async fn our_plan_agrees_with_kubectl_diff_server_side() {
    let (_, ns, _cleanup_ns) = admin("diff").await;
    let base = target(&ns, json!({})).await;
    deploy_until(&base, &request(b"v1", "r1"), HealthState::Healthy).await;

    let changed =
        json!({"env": {"LOG_LEVEL": "debug"}, "resources": {"limits": {"memory": "2Gi"}}});
    let next = target(&ns, changed.clone()).await;
    let req = request(b"v2", "r2");
    let plan = next.plan(&req).await.unwrap();
    let manifests = wharf_kube::render::render(&req, &workload(&ns, changed)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    let docs: Vec<String> = manifests
        .iter()
        .map(|m| serde_yaml::to_string(&m.value).unwrap())
        .collect();
    std::fs::write(&file, docs.join("---\n")).unwrap();
    let out = kubectl(&[
        "diff",
        "--server-side",
        "--field-manager=wharf",
        "-f",
        file.to_str().unwrap(),
    ]);
    // kubectl diff exits 1 when there are differences.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8(out.stdout).unwrap();
    let values: Vec<String> = plan
        .changes
        .iter()
        .flat_map(|c| c.from.clone().into_iter().chain([c.to.clone()]))
        .collect();
    let mut checked = 0;
    for line in diff.lines() {
        let Some(body) = line.strip_prefix('+').or_else(|| line.strip_prefix('-')) else {
            continue;
        };
        if line.starts_with("+++") || line.starts_with("---") {
            continue;
        }
        // Bookkeeping the server changes on every write, and the run id the plan skips.
        if [
            "generation:",
            "wharf.dev/run-id:",
            "time:",
            "resourceVersion:",
        ]
        .iter()
        .any(|k| body.trim_start().starts_with(k))
        {
            continue;
        }
        let item = body.trim().trim_start_matches("- ");
        // Structure only: a key that opens a map or list, an empty one.
        let Some((_, value)) = item.split_once(": ") else {
            continue;
        };
        let value = value.trim_matches('"');
        if value == "{}" || value == "[]" {
            continue;
        }
        assert!(
            values.iter().any(|v| v == value),
            "kubectl diff changes {line:?}, which the plan does not name:\n{plan}\n{diff}"
        );
        checked += 1;
    }
    assert!(checked >= 4, "too little compared: {diff}");
    for field in [
        "spec.template.spec.containers[0].image",
        "spec.template.spec.containers[0].resources.limits.memory",
    ] {
        assert!(
            plan.changes.iter().any(|c| c.field == field),
            "{field} not in:\n{plan}"
        );
    }
}

/// The GitOps output applied with `kubectl apply --server-side -k` and the cluster target
/// give the same Deployment and Service.
#[tokio::test(flavor = "multi_thread")]
async fn gitops_output_and_the_cluster_target_give_the_same_objects() {
    let (client, direct, _cleanup_direct) = admin("direct").await;
    let (_, synced, _cleanup_synced) = admin("synced").await;
    let w = json!({"replicas": 2, "readiness": {"path": "/healthz"}});
    let cluster = target(&direct, w.clone()).await;
    deploy_until(&cluster, &request(b"v1", "r1"), HealthState::Healthy).await;

    let dir = tempfile::tempdir().unwrap();
    let gitops =
        wharf_kube::gitops::GitOps::open(dir.path().join("repo"), workload(&synced, w)).unwrap();
    let plan = gitops.plan(&request(b"v1", "r1")).await.unwrap();
    gitops.apply(&plan).await.unwrap();
    kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=wharf",
        "-k",
        dir.path().join("repo/dev/fraud").to_str().unwrap(),
    ]);
    kubectl_ok(&[
        "-n",
        &synced,
        "rollout",
        "status",
        "deployment/fraud",
        "--timeout=60s",
    ]);

    let mut a = deployment_shape(&client, &direct).await;
    let mut b = deployment_shape(&client, &synced).await;
    for v in [&mut a, &mut b] {
        v["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(ANNOTATION_REVISION);
        v["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("wharf.dev/environment");
    }
    assert_eq!(a, b);
    let service = |ns: String| {
        let client = client.clone();
        async move {
            let s = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client, &ns)
                .get("fraud")
                .await
                .unwrap();
            let mut v = serde_json::to_value(s).unwrap()["spec"].clone();
            for k in ["clusterIP", "clusterIPs"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        }
    };
    assert_eq!(service(direct.clone()).await, service(synced.clone()).await);
}

/// The harness API server as a cloud would describe it: its URL, its CA (PEM) and the test
/// user's token (in the server's static token file).
fn harness_cluster() -> (String, Vec<u8>, String) {
    let file: serde_json::Value =
        serde_yaml::from_slice(&std::fs::read(kubeconfig()).unwrap()).unwrap();
    let cluster = &file["clusters"][0]["cluster"];
    let ca = std::fs::read(cluster["certificate-authority"].as_str().unwrap()).unwrap();
    (
        cluster["server"].as_str().unwrap().to_owned(),
        ca,
        file["users"][0]["user"]["token"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// A request a cloud API stand-in received: method, path and query, `Authorization`.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// A cloud API stand-in on loopback: `answer(method, target, authorization)` gives status
/// and JSON body; every request is recorded.
fn cloud_api(
    answer: impl Fn(&str, &str, &str) -> (u16, serde_json::Value) + Send + 'static,
) -> (String, Seen) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Seen::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (method, target) = (
                parts.next().unwrap_or_default().to_owned(),
                parts.next().unwrap_or_default().to_owned(),
            );
            let mut auth = String::new();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some((k, v)) = header.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    auth = v.trim().to_owned();
                }
            }
            record
                .lock()
                .unwrap()
                .push((method.clone(), target.clone(), auth.clone()));
            let (status, body) = answer(&method, &target, &auth);
            let body = body.to_string();
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

/// Azure or Google credentials: a fixed token per scope, an error for any other scope;
/// the scopes asked for are recorded.
#[derive(Debug)]
struct PerScope {
    provider: &'static str,
    tokens: Vec<(&'static str, String)>,
    asked: std::sync::Mutex<Vec<String>>,
}

impl PerScope {
    fn new(provider: &'static str, tokens: Vec<(&'static str, String)>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            provider,
            tokens,
            asked: Default::default(),
        })
    }
}

#[async_trait::async_trait]
impl wharf_core::CloudCredentials for PerScope {
    async fn credentials(
        &self,
        opts: &wharf_core::identity::CredentialOptions,
    ) -> wharf_core::Result<wharf_core::identity::Credentials> {
        let scope = opts.scope.clone().unwrap_or_default();
        self.asked.lock().unwrap().push(scope.clone());
        let token = self
            .tokens
            .iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| {
                wharf_core::Error::new(
                    ErrorKind::Unauthenticated,
                    format!("AADSTS700016: no token for scope {scope} (test provider)"),
                )
            })?;
        Ok(wharf_core::identity::Credentials::new(
            self.provider,
            "wharf-deployer",
            wharf_core::Secret::new(token),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

/// AKS: Resource Manager's `listClusterUserCredential` gives the API server and its CA
/// (answered as ARM does, shape from the AKS REST reference: `{"kubeconfigs":[{"name":
/// "clusterUser","value":<base64 kubeconfig>}]}`, the kubeconfig with kubelogin's exec
/// user that wharf does not run); the Entra token for the AKS scope then travels to the real
/// API server, which accepts it, and the deployment rolls out. A refused ARM token, and a
/// provider that cannot give the AKS token, are one-line errors naming what failed.
#[tokio::test(flavor = "multi_thread")]
async fn aks_endpoint_from_resource_manager_and_an_entra_token_deploy() {
    use base64::Engine as _;
    use wharf_kube::cloud::{AKS_SCOPE, ARM_SCOPE, Aks};
    let (_client, ns, _cleanup_ns) = admin("aks").await;
    let (server, ca, token) = harness_cluster();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: scoring\ncontexts:\n- context:\n    cluster: scoring\n    user: clusterUser_ml-prod_scoring\n  name: scoring\ncurrent-context: scoring\nusers:\n- name: clusterUser_ml-prod_scoring\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args: [get-token, --login, devicecode, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]\n",
        b64(&ca)
    );
    let path = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/ml-prod/providers/Microsoft.ContainerService/managedClusters/scoring/listClusterUserCredential?api-version=2024-09-01";
    let (arm, seen) = cloud_api(move |method, target, auth| match (method, target, auth) {
        ("POST", t, "Bearer arm-token") if t == path => (
            200,
            json!({"kubeconfigs": [{"name": "clusterUser", "value": b64(kubeconfig.as_bytes())}]}),
        ),
        ("POST", t, _) if t == path => (
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}}),
        ),
        _ => (
            404,
            json!({"error": {"code": "ResourceNotFound", "message": "The Resource was not found."}}),
        ),
    });
    let aks = |creds: std::sync::Arc<PerScope>| {
        Aks::new(
            "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
            "ml-prod",
            "scoring",
            creds,
        )
        .management_url(&arm)
    };
    let creds = PerScope::new(
        "azure",
        vec![(ARM_SCOPE, "arm-token".into()), (AKS_SCOPE, token.clone())],
    );
    let target = aks(creds.clone())
        .connect(workload(&ns, json!({})))
        .await
        .unwrap();
    deploy_until(&target, &request(b"aks", "run-aks"), HealthState::Healthy).await;
    let asked = creds.asked.lock().unwrap().clone();
    assert_eq!(asked[0], ARM_SCOPE);
    assert!(asked[1..].iter().all(|s| s == AKS_SCOPE), "{asked:?}");
    // Cached: one token for all the requests of plan, apply and wait.
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(seen.lock().unwrap()[0].2, "Bearer arm-token");

    // ARM refuses the management token.
    let refused = PerScope::new("azure", vec![(ARM_SCOPE, "expired".into())]);
    let err = aks(refused).connect(Workload::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    let text = err.to_string();
    assert!(
        text.contains("listClusterUserCredential of AKS cluster scoring (resource group ml-prod")
            && text.contains("InvalidAuthenticationToken")
            && !text.contains('\n'),
        "{text}"
    );
    // The provider has no AKS token: the first request says so, and who was asked.
    let no_aks = PerScope::new("azure", vec![(ARM_SCOPE, "arm-token".into())]);
    let target = aks(no_aks).connect(workload(&ns, json!({}))).await.unwrap();
    let err = target
        .plan(&request(b"aks-2", "run-aks-2"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    let text = err.to_string();
    assert!(
        text.contains("no bearer token from the Azure identity")
            && text.contains("AADSTS700016")
            && text.contains(AKS_SCOPE),
        "{text}"
    );
    // A token the API server does not accept: 401, naming the identity.
    let wrong = PerScope::new(
        "azure",
        vec![
            (ARM_SCOPE, "arm-token".into()),
            (AKS_SCOPE, "not-a-cluster-token".into()),
        ],
    );
    let target = aks(wrong).connect(workload(&ns, json!({}))).await.unwrap();
    let err = target
        .plan(&request(b"aks-3", "run-aks-3"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(
        err.to_string()
            .contains("Entra token for AKS cluster scoring"),
        "{err}"
    );
}

/// GKE: the GKE API's `projects.locations.clusters.get` gives `endpoint` (an address, no
/// scheme) and `masterAuth.clusterCaCertificate` (base64 of the PEM), as GKE's REST
/// reference shows; the same Google access token (as `gke-gcloud-auth-plugin` sends it)
/// then travels to the real API server, which accepts it, and the deployment rolls out.
/// Google's refusal (`{"error":{"code":403,"message",…,"status":"PERMISSION_DENIED"}}`) is
/// one line naming the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn gke_endpoint_from_the_gke_api_and_a_google_token_deploy() {
    use base64::Engine as _;
    use wharf_kube::cloud::{GOOGLE_CLOUD_PLATFORM_SCOPE, Gke};
    let (_client, ns, _cleanup_ns) = admin("gke").await;
    let (server, ca, token) = harness_cluster();
    let endpoint = server.trim_start_matches("https://").to_owned();
    let ca = base64::engine::general_purpose::STANDARD.encode(&ca);
    let accepted = format!("Bearer {token}");
    let (api, seen) = cloud_api(move |method, target, auth| match (method, target) {
        ("GET", "/v1/projects/ml-platform/locations/europe-west4/clusters/scoring")
            if auth == accepted =>
        {
            (
                200,
                json!({
                    "name": "scoring",
                    "location": "europe-west4",
                    "status": "RUNNING",
                    "endpoint": endpoint,
                    "masterAuth": {"clusterCaCertificate": ca},
                    "currentMasterVersion": "1.37.0-gke.1",
                }),
            )
        }
        ("GET", path) => (
            403,
            json!({"error": {"code": 403, "message": format!("Required \"container.clusters.get\" permission(s) for \"{}\".", path.trim_start_matches("/v1/")), "status": "PERMISSION_DENIED"}}),
        ),
        _ => (404, json!({})),
    });
    let gke = |creds: std::sync::Arc<PerScope>| {
        Gke::new("ml-platform", "europe-west4", "scoring", creds).api_url(&api)
    };
    let creds = PerScope::new("gcp", vec![(GOOGLE_CLOUD_PLATFORM_SCOPE, token.clone())]);
    let target = gke(creds.clone())
        .connect(workload(&ns, json!({})))
        .await
        .unwrap();
    deploy_until(&target, &request(b"gke", "run-gke"), HealthState::Healthy).await;
    let asked = creds.asked.lock().unwrap().clone();
    assert!(
        asked.iter().all(|s| s == GOOGLE_CLOUD_PLATFORM_SCOPE),
        "{asked:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    let other = PerScope::new(
        "gcp",
        vec![(GOOGLE_CLOUD_PLATFORM_SCOPE, "ya29.other".into())],
    );
    let err = gke(other).connect(Workload::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    let text = err.to_string();
    assert!(
        text.contains("get GKE cluster scoring (location europe-west4, project ml-platform)")
            && text.contains("PERMISSION_DENIED")
            && text.contains("container.clusters.get")
            && !text.contains('\n'),
        "{text}"
    );
}

/// EKS against moto (the EKS API's real shapes): `DescribeCluster` gives the endpoint and
/// CA moto made for the cluster; a missing cluster is `NotFound`, naming cluster and region.
#[cfg(feature = "eks")]
#[tokio::test(flavor = "multi_thread")]
async fn eks_describe_cluster_gives_endpoint_and_ca() {
    use base64::Engine as _;
    use wharf_kube::cloud::Eks;
    let moto = std::env::var("WHARF_TEST_MOTO").expect("WHARF_TEST_MOTO: run `cargo xtask test`");
    let creds = aws_credentials();
    let sdk = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .region(aws_sdk_eks::config::Region::new("eu-west-1"))
            .credentials_provider(wharf_kube::eks::SdkCredentials::new(creds.clone()))
            .endpoint_url(&moto)
            .build(),
    );
    let name = format!("scoring-{}", std::process::id());
    sdk.create_cluster()
        .name(&name)
        .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-0a1b2c3d")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let described = sdk.describe_cluster().name(&name).send().await.unwrap();
    let cluster = described.cluster().unwrap();
    let endpoint = Eks::new(&name, "eu-west-1", creds.clone())
        .endpoint_url(&moto)
        .describe()
        .await
        .unwrap();
    assert_eq!(endpoint.server, cluster.endpoint().unwrap());
    assert_eq!(
        endpoint.ca_pem.unwrap(),
        base64::engine::general_purpose::STANDARD
            .decode(cluster.certificate_authority().unwrap().data().unwrap())
            .unwrap()
    );
    let err = Eks::new("no-such-cluster", "eu-west-1", creds)
        .endpoint_url(&moto)
        .describe()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string()
            .contains("DescribeCluster of EKS cluster no-such-cluster in eu-west-1"),
        "{err}"
    );
}

#[cfg(feature = "eks")]
fn aws_credentials() -> std::sync::Arc<wharf_core::memory::StaticCredentials> {
    let mut c = wharf_core::identity::Credentials::new(
        "aws",
        "AKIAWHARFDEPLOYER01",
        wharf_core::Secret::new("wharf-canary-secret-key"),
        time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    );
    c.session_token = Some(wharf_core::Secret::new("wharf-canary-session-token"));
    std::sync::Arc::new(wharf_core::memory::StaticCredentials::new(c))
}

/// EKS tokens travel as the bearer of every request: an API server stand-in (no EKS
/// authenticator runs here) answers 401 as kube-apiserver does, and the token it got is
/// exactly [`eks::token`](wharf_kube::eks::token) for the cluster, region, credentials and
/// the signing time in it — the token proven equal to `aws eks get-token`'s in
/// `tests/eks.rs`. The refusal names the IAM identity; no secret appears in it.
#[cfg(feature = "eks")]
#[tokio::test(flavor = "multi_thread")]
async fn eks_tokens_are_the_bearer_and_a_refusal_names_the_iam_identity() {
    use base64::Engine as _;
    use wharf_kube::cloud::{BearerTokens, Endpoint};
    let (api, seen) = cloud_api(|_, _, _| {
        (
            401,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        )
    });
    let creds = aws_credentials();
    let target = Cluster::with_bearer_tokens(
        &Endpoint::new(&api, None),
        BearerTokens::eks(creds.clone(), "scoring", "eu-west-1"),
        "the IAM identity of AWS access key AKIAWHARFDEPLOYER01 (EKS cluster scoring)",
        workload("models", json!({})),
    )
    .unwrap();
    let err = target.plan(&request(b"eks", "run-eks")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    let text = err.to_string();
    assert!(text.contains("AKIAWHARFDEPLOYER01"), "{text}");
    assert!(!text.contains("wharf-canary"), "{text}");
    let seen = seen.lock().unwrap().clone();
    let bearer = seen[0].2.strip_prefix("Bearer ").unwrap();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(bearer.strip_prefix(wharf_kube::eks::TOKEN_PREFIX).unwrap())
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    let date = url
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Date="))
        .unwrap();
    let signed = time::PrimitiveDateTime::parse(
        date,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .unwrap()
    .assume_utc();
    let c = wharf_core::CloudCredentials::credentials(creds.as_ref(), &Default::default())
        .await
        .unwrap();
    let expected = wharf_kube::eks::token("scoring", "eu-west-1", &c, signed.into()).unwrap();
    assert_eq!(bearer, expected.token.expose());
    // Every request carried one (the same, cached).
    assert!(seen.iter().all(|(_, _, a)| a == &seen[0].2));
}

/// The kustomization of the overlay the kustomize tests use; `first` is put before its
/// own resources (the peer's `../base`, wharf's rendered objects as files).
fn overlay_kustomization(first: &str) -> String {
    format!(
        r#"apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
{first}- hpa.yaml
- ../shared
patches:
- path: gpu.yaml
- target:
    kind: Deployment
    name: fraud.*
  patch: |-
    - op: add
      path: /spec/template/spec/tolerations
      value:
      - key: nvidia.com/gpu
        operator: Exists
        effect: NoSchedule
    - op: replace
      path: /spec/revisionHistoryLimit
      value: 5
- target:
    kind: Service
  patch: |-
    apiVersion: v1
    kind: Service
    metadata:
      name: any
      annotations:
        service.beta.kubernetes.io/aws-load-balancer-internal: "true"
patchesJson6902:
- target:
    group: autoscaling
    version: v2
    kind: HorizontalPodAutoscaler
    name: fraud
  patch: |-
    - op: replace
      path: /spec/maxReplicas
      value: 6
commonLabels:
  team: risk
labels:
- pairs:
    cost-center: ml-42
  includeTemplates: true
commonAnnotations:
  owner: ml-platform@example.com
replicas:
- name: fraud
  count: 3
"#
    )
}

/// Write the overlay's files under `root` (`overlay/`, `shared/`).
fn write_overlay(root: &std::path::Path, ns: &str) {
    let write = |rel: &str, text: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("overlay/kustomization.yaml", &overlay_kustomization(""));
    write(
        "overlay/gpu.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fraud\n  namespace: {ns}\nspec:\n  template:\n    spec:\n      containers:\n      - name: model\n        env:\n        - name: OMP_NUM_THREADS\n          value: \"4\"\n        resources:\n          limits:\n            nvidia.com/gpu: \"1\"\n      - name: metrics\n        image: registry.example/metrics-exporter@sha256:{}\n",
            "ab".repeat(32)
        ),
    );
    write(
        "overlay/hpa.yaml",
        &format!(
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: fraud\n  namespace: {ns}\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: fraud\n  minReplicas: 1\n  maxReplicas: 3\n"
        ),
    );
    write(
        "shared/kustomization.yaml",
        &format!(
            "resources:\n- settings.yaml\nnamespace: {ns}\ncommonAnnotations:\n  shared: \"yes\"\n"
        ),
    );
    write(
        "shared/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: model-settings\ndata:\n  threshold: \"0.7\"\n",
    );
}

fn by_object(
    objects: impl IntoIterator<Item = serde_json::Value>,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    objects
        .into_iter()
        .map(|v| {
            (
                format!(
                    "{}/{}",
                    v["kind"].as_str().unwrap(),
                    v["metadata"]["name"].as_str().unwrap()
                ),
                v,
            )
        })
        .collect()
}

/// A kustomize overlay over wharf's objects builds to exactly what `kubectl kustomize`
/// (kustomize v5, inside the harness's kubectl) builds from the same overlay with the
/// rendered objects as its first base — strategic merge patches by file and by target, JSON
/// 6902 patches both ways, a nested base with its own namespace and annotations, labels
/// with and without selectors, annotations, replicas — and the cluster target deploys it.
#[tokio::test(flavor = "multi_thread")]
async fn a_kustomize_overlay_builds_as_kubectl_kustomize_and_deploys() {
    let (client, ns, _cleanup_ns) = admin("kustomize").await;
    let dir = tempfile::tempdir().unwrap();
    write_overlay(dir.path(), &ns);
    // The peer's copy: the same overlay with wharf's rendered objects as a base.
    let req = request(b"kustomize", "run-k");
    let rendered = wharf_kube::render::render(&req, &workload(&ns, json!({}))).unwrap();
    let docs: Vec<String> = rendered
        .iter()
        .map(|m| serde_yaml::to_string(&m.value).unwrap())
        .collect();
    std::fs::create_dir_all(dir.path().join("base")).unwrap();
    std::fs::write(dir.path().join("base/rendered.yaml"), docs.join("---\n")).unwrap();
    std::fs::write(
        dir.path().join("base/kustomization.yaml"),
        "resources:\n- rendered.yaml\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("peer")).unwrap();
    for f in ["gpu.yaml", "hpa.yaml"] {
        std::fs::copy(
            dir.path().join("overlay").join(f),
            dir.path().join("peer").join(f),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("peer/kustomization.yaml"),
        overlay_kustomization("- ../base\n"),
    )
    .unwrap();
    let peer = kubectl(&["kustomize", dir.path().join("peer").to_str().unwrap()]);
    assert!(
        peer.status.success(),
        "{}",
        String::from_utf8_lossy(&peer.stderr)
    );
    let peer = by_object(
        serde_yaml::Deserializer::from_slice(&peer.stdout)
            .map(|d| <serde_json::Value as serde::Deserialize>::deserialize(d).unwrap()),
    );

    let mut w = workload(&ns, json!({}));
    w.overlays = vec![wharf_kube::kustomize::load_overlay(&dir.path().join("overlay")).unwrap()];
    let ours = by_object(
        wharf_kube::render::render(&req, &w)
            .unwrap()
            .into_iter()
            .map(|m| m.value),
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        peer.keys().collect::<Vec<_>>()
    );
    for (object, value) in &ours {
        assert_eq!(
            value, &peer[object],
            "{object} differs from kubectl kustomize's"
        );
    }
    // What the overlay did, checked on one field of each part.
    let d = &ours["Deployment/fraud"];
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["team"], "risk");
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["cost-center"],
        "ml-42"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["name"],
        "metrics"
    );
    assert_eq!(
        ours["ConfigMap/model-settings"]["metadata"]["annotations"]["shared"],
        "yes"
    );

    // Deployed: every object is there, the Deployment with the overlay's changes.
    let target = Cluster::from_kubeconfig(Some(&kubeconfig()), None, w)
        .await
        .unwrap();
    deploy_until(&target, &req, HealthState::Healthy).await;
    let live = Api::<KubeDeployment>::namespaced(client.clone(), &ns)
        .get("fraud")
        .await
        .unwrap();
    let live = serde_json::to_value(&live).unwrap();
    assert_eq!(live["spec"]["revisionHistoryLimit"], 5);
    assert_eq!(
        live["metadata"]["annotations"]["owner"],
        "ml-platform@example.com"
    );
    kubectl_ok(&["-n", &ns, "get", "configmap/model-settings", "hpa/fraud"]);
}

/// An overlay that does not build is refused on one line naming its file and what is wrong
/// — where `kubectl kustomize` also refuses it, and where it would build something wharf
/// must not deploy (another image than the verified digest) or does not build (generators).
#[tokio::test(flavor = "multi_thread")]
async fn an_overlay_that_does_not_build_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    let req = request(b"kustomize-bad", "run-kb");
    let build = |kustomization: &str, patch: &str| {
        std::fs::write(overlay.join("kustomization.yaml"), kustomization).unwrap();
        std::fs::write(overlay.join("patch.yaml"), patch).unwrap();
        let mut w = workload("models", json!({}));
        wharf_kube::kustomize::load_overlay(&overlay).and_then(|o| {
            w.overlays = vec![o];
            wharf_kube::render::render(&req, &w)
        })
    };
    let cases = [
        (
            "patches:\n- path: patch.yaml\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: not-rendered\nspec:\n  replicas: 1\n",
            "targets Deployment/not-rendered, which is not among the objects",
        ),
        (
            "configMapGenerator:\n- name: x\n  literals: [a=b]\n",
            "",
            "configMapGenerator: not a field wharf builds",
        ),
        (
            "patches:\n- path: patch.yaml\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fraud\n  namespace: models\nspec:\n  template:\n    spec:\n      containers:\n      - name: model\n        image: registry.example/models/fraud:latest\n",
            "wharf deploys only the digest it verified",
        ),
        (
            "resources:\n- https://github.com/acme/base?ref=v1\n",
            "",
            "is remote",
        ),
        (
            "patches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: replace\n      path: /spec/nope/x\n      value: 1\n",
            "",
            "/spec/nope/x does not exist",
        ),
        ("patches: [\n", "", "is not YAML"),
    ];
    for (kustomization, patch, expected) in cases {
        let err = build(kustomization, patch).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{text}");
        assert!(text.contains(expected), "{kustomization}: {text}");
        assert!(text.contains("overlay"), "names the overlay: {text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }
    // The first case: kubectl kustomize refuses it too.
    std::fs::write(overlay.join("patch.yaml"), cases[0].1).unwrap();
    std::fs::write(
        overlay.join("rendered.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fraud\n",
    )
    .unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!("resources:\n- rendered.yaml\n{}", cases[0].0),
    )
    .unwrap();
    let peer = kubectl(&["kustomize", overlay.to_str().unwrap()]);
    assert!(!peer.status.success(), "kubectl kustomize built it");
}
