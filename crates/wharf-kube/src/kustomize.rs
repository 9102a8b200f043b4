//! Kustomize overlays over wharf's rendered objects: a directory with a
//! `kustomization.yaml`, built as `kubectl kustomize` builds an overlay whose `resources`
//! list wharf's objects first — its own resources added, then its patches and transformers
//! applied to all of them. Both targets deploy the result (the GitOps repository gets the
//! built objects, so Argo CD and Flux apply exactly what the cluster target would).
//!
//! What it builds: `resources` (files, and directories that are kustomizations),
//! `patches` (strategic merge or JSON 6902, with `target` selectors), `patchesStrategicMerge`,
//! `patchesJson6902`, `commonLabels`, `labels`, `commonAnnotations`, `namespace`,
//! `replicas`; in kustomize's order. Anything else (generators, `images`, name prefixes,
//! components, remote bases, Helm charts) is refused by name, as is an overlay that changes
//! the image wharf verified — build such an overlay with kustomize and list its output in
//! `[deploy] manifests`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::{Map, Value};
use wharf_core::{Error, Result};

use crate::render::Manifest;

/// The kustomization fields wharf builds.
const SUPPORTED: &[&str] = &[
    "apiVersion",
    "kind",
    "resources",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "namespace",
    "replicas",
];

/// A kustomize overlay, read and checked; [`apply`](Overlay::apply) builds it over objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// The kustomization file, for messages.
    file: PathBuf,
    /// Its own resources, bases already built.
    resources: Vec<Manifest>,
    strategic: Vec<Patch>,
    patches: Vec<Patch>,
    namespace: Option<String>,
    labels: Vec<Labels>,
    annotations: BTreeMap<String, String>,
    json6902: Vec<Patch>,
    replicas: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Patch {
    /// `patches[2] (path set-gpu.yaml)`, for messages.
    name: String,
    body: PatchBody,
    target: Option<Selector>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatchBody {
    Strategic(Value),
    Json6902(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Selector {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    /// `key=value` (`Some`) or `key` exists (`None`); `!=` as `(key, Some(v), negate)`.
    labels: Vec<(String, Option<String>, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Labels {
    pairs: BTreeMap<String, String>,
    selectors: bool,
    templates: bool,
}

/// Read the overlay in `dir` (its `kustomization.yaml`, `.yml` or `Kustomization`, and
/// every file and base it names). Errors name the file and the field.
pub fn load_overlay(dir: &Path) -> Result<Overlay> {
    load(dir, 0)
}

fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

fn load(dir: &Path, depth: usize) -> Result<Overlay> {
    if depth > 20 {
        return Err(Error::invalid(format!(
            "kustomize overlay {}: bases nest more than 20 deep (a cycle?)",
            dir.display()
        )));
    }
    let file = kustomization_file(dir).ok_or_else(|| {
        Error::invalid(format!(
            "kustomize overlay {} has no kustomization.yaml",
            dir.display()
        ))
    })?;
    let shown = file.display().to_string();
    let bad = |field: &str, what: String| Error::invalid(format!("{shown}: {field}: {what}"));
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Error::invalid(format!("cannot read {shown}: {e}")))?;
    let k: Value = serde_yaml::from_str(&text)
        .map_err(|e| Error::invalid(format!("{shown} is not YAML: {e}")))?;
    let Some(k) = k.as_object() else {
        return Err(Error::invalid(format!(
            "{shown} is not a kustomization (a map)"
        )));
    };
    if let Some(field) = k.keys().find(|f| !SUPPORTED.contains(&f.as_str())) {
        return Err(bad(
            field,
            format!(
                "not a field wharf builds (it builds {}): build the overlay with kustomize and list its output in [deploy] manifests",
                SUPPORTED[2..].join(", ")
            ),
        ));
    }
    let list = |field: &str| -> Result<Vec<Value>> {
        match k.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(bad(field, "must be a list".into())),
        }
    };
    let string_map = |field: &str, v: Option<&Value>| -> Result<BTreeMap<String, String>> {
        match v {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(key, v)| match v {
                    Value::String(s) => Ok((key.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((key.clone(), v.to_string())),
                    _ => Err(bad(field, format!("{key} must be a string"))),
                })
                .collect(),
            Some(_) => Err(bad(field, "must be a map of strings".into())),
        }
    };

    let mut resources: Vec<Manifest> = Vec::new();
    for entry in list("resources")? {
        let Some(entry) = entry.as_str() else {
            return Err(bad("resources", "entries must be paths".into()));
        };
        if entry.contains("://") || entry.starts_with("github.com/") || entry.contains("?ref=") {
            return Err(bad(
                "resources",
                format!(
                    "{entry:?} is remote: wharf builds only files beside the overlay (vendor the base into the repository)"
                ),
            ));
        }
        let path = dir.join(entry);
        let found = if path.is_dir() {
            let base = load(&path, depth + 1)?;
            base.apply(Vec::new())?
        } else {
            objects_of(&path).map_err(|e| bad("resources", e))?
        };
        for m in found {
            if resources.iter().any(|r| same_object(&r.value, &m.value)) {
                return Err(bad(
                    "resources",
                    format!("{} is listed twice (again in {entry})", m.object),
                ));
            }
            resources.push(m);
        }
    }

    let mut strategic = Vec::new();
    for (i, entry) in list("patchesStrategicMerge")?.into_iter().enumerate() {
        let (name, body) = match &entry {
            Value::String(s) if !s.contains('\n') && dir.join(s).is_file() => (
                format!("patchesStrategicMerge[{i}] ({s})"),
                read_yaml(&dir.join(s)).map_err(|e| bad("patchesStrategicMerge", e))?,
            ),
            Value::String(s) => (
                format!("patchesStrategicMerge[{i}]"),
                serde_yaml::from_str(s).map_err(|e| {
                    bad(
                        "patchesStrategicMerge",
                        format!("[{i}] is neither a file nor YAML: {e}"),
                    )
                })?,
            ),
            _ => {
                return Err(bad(
                    "patchesStrategicMerge",
                    format!("[{i}] must be a path or inline YAML"),
                ));
            }
        };
        strategic_identity(&body)
            .map_err(|e| bad("patchesStrategicMerge", format!("[{i}]: {e}")))?;
        strategic.push(Patch {
            name,
            body: PatchBody::Strategic(body),
            target: None,
        });
    }

    let mut patches = Vec::new();
    for (i, entry) in list("patches")?.into_iter().enumerate() {
        let field = format!("patches[{i}]");
        let Some(entry) = entry.as_object() else {
            return Err(bad(&field, "must be a map with path or patch".into()));
        };
        if let Some(extra) = entry
            .keys()
            .find(|f| !["path", "patch", "target", "options"].contains(&f.as_str()))
        {
            return Err(bad(&field, format!("unknown field {extra}")));
        }
        if entry.contains_key("options") {
            return Err(bad(
                &field,
                "options (allowNameChange, allowKindChange) are not built by wharf".into(),
            ));
        }
        let (name, body) = patch_source(dir, &field, entry.get("path"), entry.get("patch"))
            .map_err(|e| bad(&field, e))?;
        let target = entry
            .get("target")
            .map(|t| selector(t).map_err(|e| bad(&format!("{field}.target"), e)))
            .transpose()?;
        let body = match body {
            Value::Array(ops) => {
                if target.is_none() {
                    return Err(bad(&field, "a JSON 6902 patch needs a target".into()));
                }
                PatchBody::Json6902(ops)
            }
            Value::Object(_) => {
                strategic_identity(&body).map_err(|e| bad(&field, e))?;
                PatchBody::Strategic(body)
            }
            _ => {
                return Err(bad(
                    &field,
                    "is neither a strategic merge patch (a map) nor a JSON 6902 patch (a list)"
                        .into(),
                ));
            }
        };
        patches.push(Patch { name, body, target });
    }

    let mut json6902 = Vec::new();
    for (i, entry) in list("patchesJson6902")?.into_iter().enumerate() {
        let field = format!("patchesJson6902[{i}]");
        let target = entry
            .get("target")
            .ok_or_else(|| bad(&field, "needs a target".into()))
            .and_then(|t| selector(t).map_err(|e| bad(&format!("{field}.target"), e)))?;
        let (name, body) = patch_source(dir, &field, entry.get("path"), entry.get("patch"))
            .map_err(|e| bad(&field, e))?;
        let Value::Array(ops) = body else {
            return Err(bad(
                &field,
                "a JSON 6902 patch is a list of operations".into(),
            ));
        };
        json6902.push(Patch {
            name,
            body: PatchBody::Json6902(ops),
            target: Some(target),
        });
    }

    let mut labels = Vec::new();
    let common = string_map("commonLabels", k.get("commonLabels"))?;
    if !common.is_empty() {
        labels.push(Labels {
            pairs: common,
            selectors: true,
            templates: true,
        });
    }
    for (i, entry) in list("labels")?.into_iter().enumerate() {
        let field = format!("labels[{i}]");
        let flag = |name: &str| -> Result<bool> {
            match entry.get(name) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(bad(&field, format!("{name} must be true or false"))),
            }
        };
        if let Some(extra) = entry.as_object().and_then(|m| {
            m.keys()
                .find(|f| !["pairs", "includeSelectors", "includeTemplates"].contains(&f.as_str()))
        }) {
            return Err(bad(&field, format!("{extra} is not built by wharf")));
        }
        let selectors = flag("includeSelectors")?;
        labels.push(Labels {
            pairs: string_map(&field, entry.get("pairs"))?,
            selectors,
            templates: selectors || flag("includeTemplates")?,
        });
    }
    let annotations = string_map("commonAnnotations", k.get("commonAnnotations"))?;
    let namespace = match k.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("namespace", "must be a string".into())),
    };
    let mut replicas = Vec::new();
    for (i, entry) in list("replicas")?.into_iter().enumerate() {
        match (
            entry.get("name").and_then(Value::as_str),
            entry.get("count").and_then(Value::as_i64),
        ) {
            (Some(name), Some(count)) if count >= 0 => replicas.push((name.to_owned(), count)),
            _ => {
                return Err(bad(
                    &format!("replicas[{i}]"),
                    "needs name and a count ≥ 0".into(),
                ));
            }
        }
    }
    Ok(Overlay {
        file,
        resources,
        strategic,
        patches,
        namespace,
        labels,
        annotations,
        json6902,
        replicas,
    })
}

/// A strategic merge patch is an object's partial copy: kustomize reads it only with its
/// `apiVersion`, `kind` and `metadata.name` (which, with a `target`, need not match).
fn strategic_identity(patch: &Value) -> std::result::Result<(), String> {
    for (pointer, field) in [
        ("/apiVersion", "apiVersion"),
        ("/kind", "kind"),
        ("/metadata/name", "metadata.name"),
    ] {
        if patch
            .pointer(pointer)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "a strategic merge patch needs {field} (apiVersion, kind and metadata.name, as in the object it patches)"
            ));
        }
    }
    Ok(())
}

/// A patch's name for messages and its body, from its `path` (a file beside the
/// kustomization) or inline `patch`.
fn patch_source(
    dir: &Path,
    field: &str,
    path: Option<&Value>,
    inline: Option<&Value>,
) -> std::result::Result<(String, Value), String> {
    match (path, inline) {
        (Some(Value::String(p)), None) => {
            Ok((format!("{field} (path {p})"), read_yaml(&dir.join(p))?))
        }
        (None, Some(Value::String(p))) => Ok((
            field.to_owned(),
            serde_yaml::from_str(p).map_err(|e| format!("patch is not YAML: {e}"))?,
        )),
        _ => Err("needs exactly one of path and patch".into()),
    }
}

fn read_yaml(path: &Path) -> std::result::Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| format!("{} is not YAML: {e}", path.display()))
}

/// The objects of a YAML file (one or more documents).
fn objects_of(path: &Path) -> std::result::Result<Vec<Manifest>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = Value::deserialize(doc)
            .map_err(|e| format!("{} (document {}) is not YAML: {e}", path.display(), i + 1))?;
        if value.is_null() {
            continue;
        }
        let kind = value.pointer("/kind").and_then(Value::as_str);
        let name = value.pointer("/metadata/name").and_then(Value::as_str);
        let (Some(kind), Some(name), Some(_)) = (kind, name, value.get("apiVersion")) else {
            return Err(format!(
                "{} (document {}) is not a Kubernetes object: it needs apiVersion, kind and metadata.name",
                path.display(),
                i + 1
            ));
        };
        out.push(Manifest {
            file: format!("{}-{name}.yaml", kind.to_ascii_lowercase()),
            object: format!("{kind}/{name}"),
            value,
        });
    }
    Ok(out)
}

fn selector(v: &Value) -> std::result::Result<Selector, String> {
    let Some(m) = v.as_object() else {
        return Err("must be a map (group, version, kind, name, namespace, labelSelector)".into());
    };
    let mut s = Selector::default();
    for (key, value) in m {
        let Some(text) = value.as_str() else {
            return Err(format!("{key} must be a string"));
        };
        let text = Some(text.to_owned());
        match key.as_str() {
            "group" => s.group = text,
            "version" => s.version = text,
            "kind" => s.kind = text,
            "name" => s.name = text,
            "namespace" => s.namespace = text,
            "labelSelector" => {
                for term in text.as_deref().unwrap_or_default().split(',') {
                    let term = term.trim();
                    let parsed = if let Some((k, v)) = term.split_once("!=") {
                        (k.trim().to_owned(), Some(v.trim().to_owned()), true)
                    } else if let Some((k, v)) =
                        term.split_once("==").or_else(|| term.split_once('='))
                    {
                        (k.trim().to_owned(), Some(v.trim().to_owned()), false)
                    } else if term.contains(' ') || term.starts_with('!') || term.is_empty() {
                        return Err(format!(
                            "labelSelector {term:?}: wharf matches key=value, key!=value and key (not set-based selectors)"
                        ));
                    } else {
                        (term.to_owned(), None, false)
                    };
                    s.labels.push(parsed);
                }
            }
            other => return Err(format!("{other} is not a selector field wharf matches")),
        }
    }
    Ok(s)
}

/// A kustomize name or kind pattern: a regular expression matched against the whole value.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    if pattern == value {
        return true;
    }
    regex_lite::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(value))
}

fn group_version(obj: &Value) -> (String, String) {
    let api = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match api.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api.to_owned()),
    }
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl Selector {
    fn matches(&self, obj: &Value) -> bool {
        let (group, version) = group_version(obj);
        let field = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| pattern_matches(w, have))
        };
        field(&self.group, &group)
            && field(&self.version, &version)
            && field(&self.kind, str_at(obj, "/kind"))
            && field(&self.name, str_at(obj, "/metadata/name"))
            && field(&self.namespace, str_at(obj, "/metadata/namespace"))
            && self.labels.iter().all(|(k, v, negate)| {
                let have = obj
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(k))
                    .and_then(Value::as_str);
                match (v, negate) {
                    (None, _) => have.is_some(),
                    (Some(v), false) => have == Some(v.as_str()),
                    (Some(v), true) => have != Some(v.as_str()),
                }
            })
    }
}

fn same_object(a: &Value, b: &Value) -> bool {
    group_version(a).0 == group_version(b).0
        && str_at(a, "/kind") == str_at(b, "/kind")
        && str_at(a, "/metadata/name") == str_at(b, "/metadata/name")
        && str_at(a, "/metadata/namespace") == str_at(b, "/metadata/namespace")
}

impl Overlay {
    /// The kustomization file this overlay was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Build the overlay over `objects` (wharf's rendered ones): its resources added after
    /// them, then its patches and transformers applied to all, in kustomize's order —
    /// `patchesStrategicMerge`, `patches`, `namespace`, labels, `commonAnnotations`,
    /// `patchesJson6902`, `replicas`.
    pub fn apply(&self, objects: Vec<Manifest>) -> Result<Vec<Manifest>> {
        let shown = self.file.display();
        let mut out = objects;
        for r in &self.resources {
            if let Some(clash) = out.iter().find(|m| same_object(&m.value, &r.value)) {
                return Err(Error::invalid(format!(
                    "{shown}: resources: {} is already rendered by wharf (change it with a patch instead)",
                    clash.object
                )));
            }
            out.push(r.clone());
        }
        for p in self.strategic.iter().chain(&self.patches) {
            self.patch(&mut out, p)?;
        }
        if let Some(ns) = &self.namespace {
            for m in &mut out {
                if namespaced(&m.value) {
                    m.value["metadata"]["namespace"] = Value::String(ns.clone());
                }
            }
        }
        for l in &self.labels {
            for m in &mut out {
                add_labels(&mut m.value, l);
            }
        }
        if !self.annotations.is_empty() {
            for m in &mut out {
                add_annotations(&mut m.value, &self.annotations);
            }
        }
        for p in &self.json6902 {
            self.patch(&mut out, p)?;
        }
        for (name, count) in &self.replicas {
            let mut found = false;
            for m in &mut out {
                let kind = str_at(&m.value, "/kind");
                if str_at(&m.value, "/metadata/name") == name
                    && matches!(
                        kind,
                        "Deployment" | "StatefulSet" | "ReplicaSet" | "ReplicationController"
                    )
                {
                    m.value["spec"]["replicas"] = (*count).into();
                    found = true;
                }
            }
            if !found {
                return Err(Error::invalid(format!(
                    "{shown}: replicas: no Deployment, StatefulSet or ReplicaSet is named {name}"
                )));
            }
        }
        for m in &mut out {
            m.object = format!(
                "{}/{}",
                str_at(&m.value, "/kind"),
                str_at(&m.value, "/metadata/name")
            );
        }
        Ok(out)
    }

    fn patch(&self, out: &mut [Manifest], p: &Patch) -> Result<()> {
        let shown = self.file.display();
        let fail = |what: String| Error::invalid(format!("{shown}: {}: {what}", p.name));
        match (&p.body, &p.target) {
            (PatchBody::Strategic(body), None) => {
                // The patch names its target.
                let want = Selector {
                    group: Some(group_version(body).0),
                    kind: Some(str_at(body, "/kind").to_owned()),
                    name: Some(str_at(body, "/metadata/name").to_owned()),
                    namespace: body
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    ..Selector::default()
                };
                let hits: Vec<&mut Manifest> = out
                    .iter_mut()
                    .filter(|m| {
                        str_at(&m.value, "/kind") == want.kind.as_deref().unwrap_or_default()
                            && str_at(&m.value, "/metadata/name")
                                == want.name.as_deref().unwrap_or_default()
                            && want
                                .namespace
                                .as_deref()
                                .is_none_or(|ns| str_at(&m.value, "/metadata/namespace") == ns)
                    })
                    .collect();
                let [target] = <[&mut Manifest; 1]>::try_from(hits).map_err(|hits| {
                    fail(format!(
                        "the patch targets {}/{}, which {}",
                        want.kind.as_deref().unwrap_or("(no kind)"),
                        want.name.as_deref().unwrap_or("(no name)"),
                        if hits.is_empty() {
                            "is not among the objects (wharf's rendered ones and the overlay's resources)"
                        } else {
                            "is ambiguous (name its namespace)"
                        }
                    ))
                })?;
                strategic_merge(&mut target.value, body).map_err(fail)?;
            }
            (PatchBody::Strategic(body), Some(sel)) => {
                for m in out.iter_mut().filter(|m| sel.matches(&m.value)) {
                    let mut body = body.clone();
                    // With a target, the patch's own identity does not matter.
                    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.remove("name");
                        meta.remove("namespace");
                    }
                    if let Some(b) = body.as_object_mut() {
                        b.remove("apiVersion");
                        b.remove("kind");
                    }
                    strategic_merge(&mut m.value, &body).map_err(fail)?;
                }
            }
            (PatchBody::Json6902(ops), Some(sel)) => {
                for m in out.iter_mut().filter(|m| sel.matches(&m.value)) {
                    json6902(&mut m.value, ops)
                        .map_err(|e| fail(format!("on {}: {e}", m.object)))?;
                }
            }
            (PatchBody::Json6902(_), None) => {
                return Err(fail("a JSON 6902 patch needs a target".into()));
            }
        }
        Ok(())
    }
}

/// Cluster-scoped kinds (the ones an overlay might list) keep no namespace.
fn namespaced(obj: &Value) -> bool {
    !matches!(
        str_at(obj, "/kind"),
        "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "PersistentVolume"
            | "StorageClass"
            | "PriorityClass"
            | "IngressClass"
            | "RuntimeClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "APIService"
    )
}

/// The kinds with a pod template at `spec/template` (CronJob's is deeper).
fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "StatefulSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The map at `pointer` (made when missing), to add entries to.
fn map_at<'a>(obj: &'a mut Value, pointer: &str) -> &'a mut Map<String, Value> {
    let mut here = obj;
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if !here.get(part).is_some_and(Value::is_object) {
            here[part] = Value::Object(Map::new());
        }
        here = &mut here[part];
    }
    here.as_object_mut().expect("made a map")
}

fn insert_all(map: &mut Map<String, Value>, pairs: &BTreeMap<String, String>) {
    for (k, v) in pairs {
        map.insert(k.clone(), Value::String(v.clone()));
    }
}

/// kustomize's label transformer: metadata labels; with selectors, a Service's selector
/// and a workload's `matchLabels` (and templates); with templates, pod template labels.
fn add_labels(obj: &mut Value, l: &Labels) {
    insert_all(map_at(obj, "/metadata/labels"), &l.pairs);
    let kind = str_at(obj, "/kind").to_owned();
    if l.selectors {
        match kind.as_str() {
            "Service" => insert_all(map_at(obj, "/spec/selector"), &l.pairs),
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" => {
                insert_all(map_at(obj, "/spec/selector/matchLabels"), &l.pairs);
            }
            _ => {}
        }
    }
    if l.templates
        && let Some(t) = template_pointer(&kind)
    {
        insert_all(map_at(obj, &format!("{t}/metadata/labels")), &l.pairs);
    }
}

/// kustomize's annotations transformer: metadata and pod template annotations.
fn add_annotations(obj: &mut Value, pairs: &BTreeMap<String, String>) {
    insert_all(map_at(obj, "/metadata/annotations"), pairs);
    let kind = str_at(obj, "/kind").to_owned();
    if let Some(t) = template_pointer(&kind) {
        insert_all(map_at(obj, &format!("{t}/metadata/annotations")), pairs);
    }
}

/// Built-in Kubernetes types merge lists by their patch merge keys; custom resources
/// (no schema known) replace lists, as JSON merge patch does.
fn built_in(obj: &Value) -> bool {
    let group = group_version(obj).0;
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

/// The `x-kubernetes-patch-merge-key` of list `field` in the built-in types.
fn merge_key(field: &str, item: &Value) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "imagePullSecrets"
        | "volumes"
        | "env"
        | "resourceClaims" => "name",
        "ports" if item.get("containerPort").is_some() => "containerPort",
        "ports" => "port",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "readinessGates" => "conditionType",
        _ => return None,
    })
}

/// Apply a strategic merge patch (`$patch: replace|delete` understood; lists of built-in
/// types merged by key; custom resources as a JSON merge patch).
fn strategic_merge(obj: &mut Value, patch: &Value) -> std::result::Result<(), String> {
    let strategic = built_in(obj);
    merge_value(obj, patch, strategic)
}

fn merge_value(
    orig: &mut Value,
    patch: &Value,
    strategic: bool,
) -> std::result::Result<(), String> {
    let Some(p) = patch.as_object() else {
        *orig = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut p = p.clone();
            p.remove("$patch");
            *orig = Value::Object(p);
            return Ok(());
        }
        Some("delete") => {
            *orig = Value::Null;
            return Ok(());
        }
        Some(other) => return Err(format!("$patch: {other} is not a directive wharf knows")),
        None => {}
    }
    if !orig.is_object() {
        *orig = Value::Object(Map::new());
    }
    let o = orig.as_object_mut().expect("a map");
    for (key, value) in p {
        if key.starts_with('$') {
            return Err(format!(
                "{key} is a strategic merge directive wharf does not build (it builds $patch)"
            ));
        }
        match value {
            Value::Null => {
                o.remove(key);
            }
            Value::Object(_) => {
                let slot = o.entry(key.clone()).or_insert(Value::Null);
                merge_value(slot, value, strategic)?;
                if slot.is_null() {
                    o.remove(key);
                }
            }
            Value::Array(items) => {
                let key_field = items.first().and_then(|i| merge_key(key, i));
                match (strategic, key_field, o.get_mut(key)) {
                    (true, Some(k), Some(Value::Array(existing))) => {
                        merge_list(existing, items, k, strategic)?;
                    }
                    _ => {
                        let kept: Vec<Value> = items
                            .iter()
                            .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                            .cloned()
                            .collect();
                        o.insert(key.clone(), Value::Array(kept));
                    }
                }
            }
            _ => {
                o.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(
    existing: &mut Vec<Value>,
    items: &[Value],
    key: &str,
    strategic: bool,
) -> std::result::Result<(), String> {
    for item in items {
        let id = item
            .get(key)
            .cloned()
            .ok_or_else(|| format!("a list item has no {key}, the key its list is merged by"))?;
        let at = existing.iter().position(|e| e.get(key) == Some(&id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (at, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => merge_value(&mut existing[i], item, strategic)?,
            (None, false) => existing.push(item.clone()),
        }
    }
    Ok(())
}

/// RFC 6901: the reference tokens of a JSON pointer.
fn tokens(pointer: &str) -> std::result::Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("path {pointer:?} must start with /"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// The container at `parent` tokens, for an operation on its child.
fn parent_mut<'a>(
    doc: &'a mut Value,
    parent: &[String],
    path: &str,
) -> std::result::Result<&'a mut Value, String> {
    let mut here = doc;
    for t in parent {
        here = match here {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path {path} does not exist"))?;
    }
    Ok(here)
}

fn add(doc: &mut Value, path: &str, value: Value) -> std::result::Result<(), String> {
    let t = tokens(path)?;
    let Some((last, parent)) = t.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| format!("path {path}: index {last} is out of range"))?
            };
            a.insert(i, value);
        }
        _ => return Err(format!("path {path}: its parent is not a map or list")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> std::result::Result<Value, String> {
    let t = tokens(path)?;
    let Some((last, parent)) = t.split_last() else {
        return Err("cannot remove the whole object".into());
    };
    match parent_mut(doc, parent, path)? {
        Value::Object(m) => m.remove(last),
        Value::Array(a) => last
            .parse::<usize>()
            .ok()
            .filter(|i| *i < a.len())
            .map(|i| a.remove(i)),
        _ => None,
    }
    .ok_or_else(|| format!("path {path} does not exist"))
}

fn get(doc: &Value, path: &str) -> std::result::Result<Value, String> {
    let t = tokens(path)?;
    let mut here = doc;
    for tok in &t {
        here = match here {
            Value::Object(m) => m.get(tok),
            Value::Array(a) => tok.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path {path} does not exist"))?;
    }
    Ok(here.clone())
}

/// Apply RFC 6902 operations.
fn json6902(doc: &mut Value, ops: &[Value]) -> std::result::Result<(), String> {
    for (i, op) in ops.iter().enumerate() {
        let name = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("operation {i} has no path"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("operation {i} ({name} {path}) has no value"))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("operation {i} ({name} {path}) has no from"))
        };
        match name {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                // As kustomize's JSON patch library (json-patch v4): replacing a missing
                // key of a map adds it; a missing parent or list index is an error.
                let value = value()?;
                let t = tokens(path)?;
                let in_map = t.split_last().is_some_and(|(_, parent)| {
                    parent_mut(doc, parent, path).is_ok_and(|p| p.is_object())
                });
                if !in_map {
                    remove(doc, path)?;
                }
                add(doc, path, value)?;
            }
            "move" => {
                let moved = remove(doc, from()?)?;
                add(doc, path, moved)?;
            }
            "copy" => {
                let copied = get(doc, from()?)?;
                add(doc, path, copied)?;
            }
            "test" => {
                if get(doc, path)? != value()? {
                    return Err(format!("operation {i}: test of {path} failed"));
                }
            }
            other => {
                return Err(format!(
                    "operation {i}: {other:?} is not a JSON patch operation"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strategic_merge_merges_containers_by_name_and_deletes_by_directive() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "model", "image": "i@sha256:1", "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "s"}]}}}});
        strategic_merge(&mut d, &json!({"spec": {"template": {"spec": {"containers": [
            {"name": "model", "env": [{"name": "B", "value": "2"}], "resources": {"limits": {"nvidia.com/gpu": "1"}}},
            {"name": "sidecar", "$patch": "delete"},
            {"name": "proxy", "image": "p"}]}}}})).unwrap();
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert_eq!(c[0]["image"], "i@sha256:1");
        assert_eq!(
            c[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(c[0]["resources"]["limits"]["nvidia.com/gpu"], "1");
        assert_eq!(c[1]["name"], "proxy");
    }

    #[test]
    fn custom_resources_replace_lists_and_null_deletes() {
        let mut d = json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "m", "labels": {"a": "1", "b": "2"}},
            "spec": {"predictor": {"containers": [{"name": "kserve-container", "image": "x"}]}}});
        strategic_merge(
            &mut d,
            &json!({"metadata": {"labels": {"b": null}},
            "spec": {"predictor": {"containers": [{"name": "other"}]}}}),
        )
        .unwrap();
        assert_eq!(d["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(
            d["spec"]["predictor"]["containers"],
            json!([{"name": "other"}])
        );
    }

    #[test]
    fn json6902_operations_follow_the_rfc() {
        let mut d = json!({"a": {"b": [1, 2]}, "c": "x"});
        json6902(
            &mut d,
            &[
                json!({"op": "add", "path": "/a/b/-", "value": 3}),
                json!({"op": "add", "path": "/a/b/0", "value": 0}),
                json!({"op": "replace", "path": "/c", "value": "y"}),
                json!({"op": "copy", "from": "/c", "path": "/d"}),
                json!({"op": "move", "from": "/d", "path": "/a/e~1f"}),
                json!({"op": "remove", "path": "/a/b/1"}),
                json!({"op": "test", "path": "/c", "value": "y"}),
            ],
        )
        .unwrap();
        assert_eq!(d, json!({"a": {"b": [0, 2, 3], "e/f": "y"}, "c": "y"}));
        let err = json6902(
            &mut d,
            &[json!({"op": "replace", "path": "/nope/x", "value": 1})],
        )
        .unwrap_err();
        assert!(err.contains("/nope/x does not exist"), "{err}");
        let err =
            json6902(&mut d, &[json!({"op": "test", "path": "/c", "value": "z"})]).unwrap_err();
        assert!(err.contains("test of /c failed"), "{err}");
    }

    #[test]
    fn selectors_match_kind_name_patterns_and_labels() {
        let s = selector(&json!({"kind": "Deploy.*", "name": "fraud-.*", "labelSelector": "tier=model,canary!=true,team"})).unwrap();
        let obj = |labels: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fraud-detector", "labels": labels}});
        assert!(s.matches(&obj(json!({"tier": "model", "team": "risk"}))));
        assert!(!s.matches(&obj(
            json!({"tier": "model", "team": "risk", "canary": "true"})
        )));
        assert!(!s.matches(&obj(json!({"tier": "model"}))));
        assert!(selector(&json!({"labelSelector": "tier in (a,b)"})).is_err());
    }
}
