//! Render the workload for one environment: a Deployment and a Service, or a KServe
//! `InferenceService` — always with the image pinned by digest and labelled with what was
//! deployed. Manifests are plain JSON values in the shapes the API server takes, so the
//! GitOps default needs no Kubernetes client.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use wharf_core::deploy::DeployRequest;
use wharf_core::{Error, Result};

/// [`DeployRequest::settings`] key: the pipeline run's id (an annotation on each object).
pub const SETTING_RUN_ID: &str = "run_id";
/// [`DeployRequest::settings`] key: the model's name (a label).
pub const SETTING_MODEL: &str = "model";
/// [`DeployRequest::settings`] key: the model's version (a label).
pub const SETTING_MODEL_VERSION: &str = "model_version";

/// Annotation: the run that deployed the object. Not part of what a plan compares: a
/// second run of the same digest changes nothing.
pub const ANNOTATION_RUN_ID: &str = "wharf.dev/run-id";
/// Annotation: the image digest deployed.
pub const ANNOTATION_DIGEST: &str = "wharf.dev/image-digest";
/// The field manager and `app.kubernetes.io/managed-by` value.
pub const MANAGER: &str = "wharf";

/// What is deployed: a Deployment with a Service, or a KServe InferenceService.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WorkloadKind {
    /// `apps/v1` Deployment and a `v1` Service in front of it.
    #[default]
    Deployment,
    /// `serving.kserve.io/v1beta1` InferenceService with a custom predictor container.
    InferenceService,
}

/// CPU, memory and GPU requests and limits, as Kubernetes quantities (`"500m"`, `"2Gi"`,
/// `nvidia.com/gpu = "1"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Resources {
    /// Requests by resource name.
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    /// Limits by resource name.
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// An HTTP probe on the container's port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Probe {
    /// The path (`/healthz`).
    pub path: String,
    /// Seconds before the first probe.
    #[serde(default)]
    pub initial_delay_seconds: Option<u32>,
    /// Seconds between probes.
    #[serde(default)]
    pub period_seconds: Option<u32>,
}

/// A pod toleration (for GPU nodes' taints).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Toleration {
    /// The taint key.
    pub key: String,
    /// `Equal` (default) or `Exists`.
    #[serde(default)]
    pub operator: Option<String>,
    /// The taint value (with `Equal`).
    #[serde(default)]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; all when absent.
    #[serde(default)]
    pub effect: Option<String>,
}

/// How the model runs in one environment (`[deploy.workload]` and
/// `[environments.<env>.workload]` in `wharf.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Workload {
    /// Deployment (default) or InferenceService.
    #[serde(default)]
    pub kind: WorkloadKind,
    /// Namespace (`default` when absent).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The port the model server listens on (8080 when absent).
    #[serde(default)]
    pub port: Option<u16>,
    /// Replicas; the request's (the environment policy's) when absent.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// Requests and limits.
    #[serde(default)]
    pub resources: Resources,
    /// Environment variables of the model container (debug switches in dev, say).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Readiness probe; none when absent.
    #[serde(default)]
    pub readiness: Option<Probe>,
    /// Liveness probe; none when absent.
    #[serde(default)]
    pub liveness: Option<Probe>,
    /// The pods' service account (the one workload identity binds to).
    #[serde(default)]
    pub service_account: Option<String>,
    /// Node selector (`nvidia.com/gpu.present = "true"`).
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// Extra labels on every object and pod.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on every object.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// InferenceService only: the share of traffic the new revision gets (0-100).
    #[serde(default)]
    pub canary_traffic_percent: Option<u8>,
    /// `progressDeadlineSeconds` of the Deployment (600 when absent).
    #[serde(default)]
    pub progress_deadline_seconds: Option<u32>,
    /// Users' own objects (a ConfigMap, a HorizontalPodAutoscaler, an Ingress…), planned,
    /// committed and applied after the rendered ones; read them with [`load_manifests`].
    #[serde(skip)]
    pub manifests: Vec<Manifest>,
    /// Kustomize overlays built over the rendered objects and `manifests`, in order; read
    /// them with [`load_overlay`](crate::kustomize::load_overlay).
    #[serde(skip)]
    pub overlays: Vec<crate::kustomize::Overlay>,
}

/// One rendered object and the file it is written to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Manifest {
    /// File name in the application's directory (`deployment.yaml`).
    pub file: String,
    /// `Kind/name`, as plans name it.
    pub object: String,
    /// The object.
    pub value: Value,
}

/// Render `request` with `workload`: the objects, in the order they are applied. Errors
/// name the field of the workload that is wrong, before anything reaches a cluster.
pub fn render(request: &DeployRequest, workload: &Workload) -> Result<Vec<Manifest>> {
    let digest = request.image.digest().ok_or_else(|| {
        Error::invalid(format!(
            "refusing to deploy {} by tag: pin it by digest (name@sha256:…)",
            request.image
        ))
    })?;
    check_name(&request.name, "the application name")?;
    if let Some(ns) = &workload.namespace {
        check_name(ns, "deploy.workload.namespace")?;
    }
    for (what, map) in [
        ("requests", &workload.resources.requests),
        ("limits", &workload.resources.limits),
    ] {
        for (name, quantity) in map {
            check_quantity(quantity).map_err(|why| {
                Error::invalid(format!(
                    "deploy.workload.resources.{what}.{name} = {quantity:?} is not a Kubernetes quantity ({why}); write e.g. \"500m\", \"2Gi\" or \"1\""
                ))
            })?;
        }
    }
    if let Some(p) = workload.canary_traffic_percent
        && p > 100
    {
        return Err(Error::invalid(format!(
            "deploy.workload.canary_traffic_percent = {p} is not a percentage (0-100)"
        )));
    }
    if workload.canary_traffic_percent.is_some() && workload.kind != WorkloadKind::InferenceService
    {
        return Err(Error::invalid(
            "deploy.workload.canary_traffic_percent applies to kind = \"inference-service\" only",
        ));
    }
    let name = request.name.as_str();
    let namespace = workload.namespace.as_deref().unwrap_or("default");
    let port = workload.port.unwrap_or(8080);
    let setting = |k: &str| request.settings.get(k).cloned();

    let selector = BTreeMap::from([("app.kubernetes.io/name".to_owned(), name.to_owned())]);
    let mut labels = selector.clone();
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    labels.insert(
        "wharf.dev/environment".into(),
        request.environment.to_string(),
    );
    if let Some(model) = setting(SETTING_MODEL) {
        labels.insert("wharf.dev/model".into(), label_value(&model));
    }
    if let Some(version) = setting(SETTING_MODEL_VERSION) {
        labels.insert("app.kubernetes.io/version".into(), label_value(&version));
    }
    labels.extend(workload.labels.clone());
    let mut annotations = workload.annotations.clone();
    annotations.insert(ANNOTATION_DIGEST.into(), digest.to_string());
    if let Some(run) = setting(SETTING_RUN_ID) {
        annotations.insert(ANNOTATION_RUN_ID.into(), run);
    }
    let metadata = json!({
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "annotations": annotations,
    });

    let mut container = json!({
        "name": "model",
        "image": request.image.to_string(),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
    });
    if !workload.env.is_empty() {
        container["env"] = workload
            .env
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
    }
    if !workload.resources.requests.is_empty() || !workload.resources.limits.is_empty() {
        let mut r = json!({});
        if !workload.resources.requests.is_empty() {
            r["requests"] = json!(workload.resources.requests);
        }
        if !workload.resources.limits.is_empty() {
            r["limits"] = json!(workload.resources.limits);
        }
        container["resources"] = r;
    }
    for (field, probe) in [
        ("readinessProbe", &workload.readiness),
        ("livenessProbe", &workload.liveness),
    ] {
        if let Some(p) = probe {
            let mut v = json!({"httpGet": {"path": p.path, "port": "http"}});
            if let Some(d) = p.initial_delay_seconds {
                v["initialDelaySeconds"] = d.into();
            }
            if let Some(s) = p.period_seconds {
                v["periodSeconds"] = s.into();
            }
            container[field] = v;
        }
    }
    let mut pod = json!({});
    if let Some(sa) = &workload.service_account {
        check_name(sa, "deploy.workload.service_account")?;
        pod["serviceAccountName"] = sa.as_str().into();
    }
    if !workload.node_selector.is_empty() {
        pod["nodeSelector"] = json!(workload.node_selector);
    }
    if !workload.tolerations.is_empty() {
        pod["tolerations"] = workload
            .tolerations
            .iter()
            .map(|t| {
                let mut v = json!({"key": t.key});
                for (k, val) in [
                    ("operator", &t.operator),
                    ("value", &t.value),
                    ("effect", &t.effect),
                ] {
                    if let Some(val) = val {
                        v[k] = val.as_str().into();
                    }
                }
                v
            })
            .collect();
    }
    let replicas = workload.replicas.unwrap_or(request.replicas);

    let mut out = match workload.kind {
        WorkloadKind::Deployment => {
            pod["containers"] = json!([container]);
            let deployment = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata,
                "spec": {
                    "replicas": replicas,
                    "progressDeadlineSeconds": workload.progress_deadline_seconds.unwrap_or(600),
                    "selector": {"matchLabels": selector},
                    "template": {
                        "metadata": {
                            "labels": labels,
                            "annotations": {ANNOTATION_DIGEST: digest.to_string()},
                        },
                        "spec": pod,
                    },
                },
            });
            let mut service_meta = metadata.clone();
            service_meta["annotations"]
                .as_object_mut()
                .map(|a| a.remove(ANNOTATION_DIGEST));
            let service = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": service_meta,
                "spec": {
                    "selector": selector,
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                },
            });
            vec![
                Manifest {
                    file: "deployment.yaml".into(),
                    object: format!("Deployment/{name}"),
                    value: deployment,
                },
                Manifest {
                    file: "service.yaml".into(),
                    object: format!("Service/{name}"),
                    value: service,
                },
            ]
        }
        WorkloadKind::InferenceService => {
            container["name"] = "kserve-container".into();
            let mut predictor = pod;
            predictor["containers"] = json!([container]);
            predictor["minReplicas"] = replicas.into();
            if let Some(p) = workload.canary_traffic_percent {
                predictor["canaryTrafficPercent"] = p.into();
            }
            vec![Manifest {
                file: "inferenceservice.yaml".into(),
                object: format!("InferenceService/{name}"),
                value: json!({
                    "apiVersion": "serving.kserve.io/v1beta1",
                    "kind": "InferenceService",
                    "metadata": metadata,
                    "spec": {"predictor": predictor},
                }),
            }]
        }
    };
    for extra in &workload.manifests {
        if let Some(clash) = out
            .iter()
            .find(|m| m.object == extra.object || m.file == extra.file)
        {
            return Err(Error::invalid(format!(
                "the manifest {} is {}, which wharf renders as {}: remove it, or change the rendered object with deploy.workload",
                extra.file, extra.object, clash.object
            )));
        }
        out.push(extra.clone());
    }
    if workload.overlays.is_empty() {
        return Ok(out);
    }
    let main = out[0].value.clone();
    for overlay in &workload.overlays {
        out = overlay.apply(out)?;
        keeps_the_verified_image(&main, &out, overlay.file())?;
    }
    Ok(out)
}

/// The containers of a workload object and their images: a pod template's, or an
/// InferenceService predictor's.
fn images(obj: &Value) -> Vec<(String, String)> {
    [
        "/spec/template/spec/containers",
        "/spec/predictor/containers",
    ]
    .iter()
    .filter_map(|p| obj.pointer(p).and_then(Value::as_array))
    .flatten()
    .map(|c| {
        let field = |f: &str| {
            c.get(f)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        (field("name"), field("image"))
    })
    .collect()
}

/// An overlay may change anything but what verification vouched for: the main object
/// stays, and each of its containers keeps the image wharf rendered (pinned by digest).
fn keeps_the_verified_image(
    main: &Value,
    out: &[Manifest],
    overlay: &std::path::Path,
) -> Result<()> {
    let id = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let object = format!("{}/{}", id(main, "/kind"), id(main, "/metadata/name"));
    let Some(now) = out.iter().find(|m| {
        id(&m.value, "/kind") == id(main, "/kind")
            && id(&m.value, "/metadata/name") == id(main, "/metadata/name")
            && id(&m.value, "/metadata/namespace") == id(main, "/metadata/namespace")
    }) else {
        return Err(Error::invalid(format!(
            "kustomize overlay {}: {object} is no longer in namespace {:?} after it (renamed or moved): wharf deploys and watches it there; set [deploy] namespace instead",
            overlay.display(),
            id(main, "/metadata/namespace")
        )));
    };
    let after = images(&now.value);
    for (name, image) in images(main) {
        let kept = after
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, i)| i.as_str());
        if kept != Some(image.as_str()) {
            return Err(Error::invalid(format!(
                "kustomize overlay {} changes the image of container {name:?} of {object} ({image} → {}): wharf deploys only the digest it verified",
                overlay.display(),
                kept.unwrap_or("removed")
            )));
        }
    }
    Ok(())
}

/// Users' own manifests: each path a YAML file (one or more documents) or a directory of
/// them (`*.yaml`, `*.yml`, in name order). Each object needs `apiVersion`, `kind` and
/// `metadata.name`; it is written as `<kind>-<name>.yaml` in a GitOps repository.
pub fn load_manifests(paths: &[std::path::PathBuf]) -> Result<Vec<Manifest>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| {
                    Error::invalid(format!(
                        "cannot read deploy.manifests {}: {e}",
                        path.display()
                    ))
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    let mut out: Vec<Manifest> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Error::invalid(format!(
                "cannot read deploy.manifests {}: {e}",
                file.display()
            ))
        })?;
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(doc).map_err(|e| {
                Error::invalid(format!(
                    "{} (document {}) is not YAML: {e}",
                    file.display(),
                    i + 1
                ))
            })?;
            if value.is_null() {
                continue;
            }
            let field = |f: &str| {
                value
                    .pointer(f)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            let (Some(_), Some(kind), Some(name)) = (
                field("/apiVersion"),
                field("/kind"),
                field("/metadata/name"),
            ) else {
                return Err(Error::invalid(format!(
                    "{} (document {}) is not a Kubernetes object: it needs apiVersion, kind and metadata.name",
                    file.display(),
                    i + 1
                )));
            };
            let object = format!("{kind}/{name}");
            if out.iter().any(|m| m.object == object) {
                return Err(Error::invalid(format!(
                    "{object} is defined twice in deploy.manifests (again in {})",
                    file.display()
                )));
            }
            out.push(Manifest {
                file: format!("{}-{name}.yaml", kind.to_ascii_lowercase()),
                object,
                value,
            });
        }
    }
    Ok(out)
}

/// A DNS-1123 label: what Kubernetes accepts as a name.
fn check_name(name: &str, what: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} {name:?} is not a Kubernetes name: lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit"
        )))
    }
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`; others become `-`.
fn label_value(v: &str) -> String {
    let mut out: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while out.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        out.pop();
    }
    out
}

/// A Kubernetes resource quantity: a decimal number and an optional suffix.
fn check_quantity(q: &str) -> std::result::Result<(), &'static str> {
    const SUFFIXES: &[&str] = &[
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    if number.is_empty() || number.parse::<f64>().is_err() {
        return Err("no number");
    }
    if !SUFFIXES.contains(&suffix) && !suffix.starts_with(['e', 'E']) {
        return Err("unknown unit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_core::{Digest, Environment, Reference};

    fn request(env: Environment) -> DeployRequest {
        let image: Reference =
            format!("registry.example/models/fraud@{}", Digest::sha256_of(b"v1"))
                .parse()
                .unwrap();
        let mut r = DeployRequest::new("fraud", image, env).unwrap();
        r.settings.insert(SETTING_RUN_ID.into(), "run-1".into());
        r.settings
            .insert(SETTING_MODEL_VERSION.into(), "1.2.0+gpu".into());
        r
    }

    #[test]
    fn a_deployment_pins_the_digest_and_carries_what_was_deployed() {
        let w: Workload = toml_like(
            r#"{"replicas": 3, "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "8Gi"}},
               "env": {"LOG_LEVEL": "debug"}, "readiness": {"path": "/healthz"},
               "service_account": "fraud-model", "node_selector": {"gpu": "true"},
               "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}"#,
        );
        let out = render(&request(Environment::Dev), &w).unwrap();
        assert_eq!(out.len(), 2);
        let d = &out[0].value;
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert!(c["image"].as_str().unwrap().contains("@sha256:"), "{c}");
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
        assert_eq!(c["env"][0]["name"], "LOG_LEVEL");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(
            d["spec"]["template"]["spec"]["serviceAccountName"],
            "fraud-model"
        );
        assert_eq!(d["metadata"]["annotations"][ANNOTATION_RUN_ID], "run-1");
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/version"],
            "1.2.0-gpu"
        );
        // The run id is not in the pod template: a re-run must not restart pods.
        assert!(
            d["spec"]["template"]["metadata"]["annotations"]
                .get(ANNOTATION_RUN_ID)
                .is_none()
        );
        assert_eq!(out[1].value["kind"], "Service");
    }

    #[test]
    fn an_inference_service_carries_the_canary_share() {
        let w: Workload =
            toml_like(r#"{"kind": "inference-service", "canary_traffic_percent": 10}"#);
        let out = render(&request(Environment::Prod), &w).unwrap();
        assert_eq!(out.len(), 1);
        let p = &out[0].value["spec"]["predictor"];
        assert_eq!(p["canaryTrafficPercent"], 10);
        assert_eq!(p["minReplicas"], Environment::Prod.policy().replicas);
        assert_eq!(out[0].value["apiVersion"], "serving.kserve.io/v1beta1");
    }

    #[test]
    fn bad_fields_are_named_before_anything_is_applied() {
        for (json, needle) in [
            (
                r#"{"resources": {"requests": {"memory": "eight gigs"}}}"#,
                "deploy.workload.resources.requests.memory",
            ),
            (r#"{"namespace": "Prod_NS"}"#, "deploy.workload.namespace"),
            (
                r#"{"canary_traffic_percent": 10}"#,
                "applies to kind = \"inference-service\" only",
            ),
            (
                r#"{"kind": "inference-service", "canary_traffic_percent": 150}"#,
                "is not a percentage",
            ),
        ] {
            let err = render(&request(Environment::Dev), &toml_like(json))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
        // A field of the wrong type is refused when the workload is read.
        assert!(serde_json::from_str::<Workload>(r#"{"replicas": "three"}"#).is_err());
    }

    fn toml_like(json: &str) -> Workload {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn users_manifests_follow_the_rendered_ones_and_bad_ones_are_named() {
        let dir = std::env::temp_dir().join(format!("wharf-manifests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fraud-config\ndata:\n  threshold: \"0.8\"\n---\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: fraud\n",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
        let extra = load_manifests(std::slice::from_ref(&dir)).unwrap();
        let names: Vec<_> = extra
            .iter()
            .map(|m| (m.file.as_str(), m.object.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("configmap-fraud-config.yaml", "ConfigMap/fraud-config"),
                (
                    "horizontalpodautoscaler-fraud.yaml",
                    "HorizontalPodAutoscaler/fraud"
                ),
            ]
        );
        let mut w = Workload {
            manifests: extra,
            ..Workload::default()
        };
        let out = render(&request(Environment::Dev), &w).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[2].object, "ConfigMap/fraud-config");

        std::fs::write(
            dir.join("b.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fraud\n",
        )
        .unwrap();
        w.manifests = load_manifests(std::slice::from_ref(&dir)).unwrap();
        let err = render(&request(Environment::Dev), &w)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("b.yaml") || err.contains("deployment-fraud.yaml"),
            "{err}"
        );
        assert!(
            err.contains("which wharf renders as Deployment/fraud"),
            "{err}"
        );

        std::fs::write(dir.join("b.yaml"), "kind: Secret\n").unwrap();
        let err = load_manifests(std::slice::from_ref(&dir))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("b.yaml (document 1) is not a Kubernetes object"),
            "{err}"
        );
        let err = load_manifests(&[dir.join("missing.yaml")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.yaml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
