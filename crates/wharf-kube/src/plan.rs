//! Field-level differences between the objects that exist and those rendered, as a
//! [`Plan`](wharf_core::deploy::Plan)'s changes: `spec.template.spec.containers[0].image:
//! old -> new`. The run-id annotation is not compared, so deploying the same digest again
//! plans nothing.

use std::collections::BTreeMap;

use serde_json::Value;
use wharf_core::deploy::Change;

use crate::render::ANNOTATION_RUN_ID;

/// The changes that turn `old` (`None`: the object does not exist) into `new`.
pub fn diff(object: &str, old: Option<&Value>, new: &Value) -> Vec<Change> {
    let Some(old) = old else {
        let image = first_image(new);
        return vec![Change::new(
            object,
            "(object)",
            None,
            image.map_or_else(
                || "created".to_owned(),
                |i| format!("created with image {i}"),
            ),
        )];
    };
    let (mut before, mut after) = (BTreeMap::new(), BTreeMap::new());
    flatten(old, String::new(), &mut before);
    flatten(new, String::new(), &mut after);
    let ignored = format!("metadata.annotations.{ANNOTATION_RUN_ID}");
    let mut changes = Vec::new();
    for (field, to) in &after {
        if *field == ignored {
            continue;
        }
        match before.get(field) {
            Some(from) if from == to => {}
            from => changes.push(Change::new(object, field, from.cloned(), to)),
        }
    }
    for (field, from) in &before {
        if *field != ignored && !after.contains_key(field) {
            changes.push(Change::new(object, field, Some(from.clone()), "(removed)"));
        }
    }
    // An empty object or list that gains or loses members is not a change of its own
    // (`resources: {}` → `resources.limits.memory: 2Gi`).
    let has_children = |map: &BTreeMap<String, String>, field: &str| {
        map.keys().any(|k| {
            k.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    };
    changes.retain(|c| {
        let empty = |v: &str| v == "{}" || v == "[]";
        !(c.from.as_deref().is_some_and(empty)
            && c.to == "(removed)"
            && has_children(&after, &c.field)
            || c.from.is_none() && empty(&c.to) && has_children(&before, &c.field))
    });
    // Only the run id differs: nothing to do, and the run id stays what it was.
    changes
}

/// Leaves as `a.b[0].c` → their JSON text (strings bare).
fn flatten(v: &Value, path: String, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(v, key, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) => {
            out.insert(path, s.clone());
        }
        other => {
            out.insert(path, other.to_string());
        }
    }
}

/// The first container image in a Deployment or InferenceService.
fn first_image(v: &Value) -> Option<&str> {
    v.pointer("/spec/template/spec/containers/0/image")
        .or_else(|| v.pointer("/spec/predictor/containers/0/image"))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_added_and_removed_fields_are_listed_and_the_run_id_is_not() {
        let old = json!({"metadata": {"annotations": {ANNOTATION_RUN_ID: "r1"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "a@sha256:1", "env": [{"name": "X", "value": "1"}]}]}}}});
        let same_but_run = json!({"metadata": {"annotations": {ANNOTATION_RUN_ID: "r2"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "a@sha256:1", "env": [{"name": "X", "value": "1"}]}]}}}});
        assert!(diff("Deployment/a", Some(&old), &same_but_run).is_empty());
        let new = json!({"metadata": {"annotations": {ANNOTATION_RUN_ID: "r2"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "a@sha256:2"}]}}}});
        let changes = diff("Deployment/a", Some(&old), &new);
        let text: Vec<String> = changes
            .iter()
            .map(|c| format!("{} {:?} {}", c.field, c.from, c.to))
            .collect();
        assert_eq!(
            text,
            [
                "spec.replicas Some(\"1\") 2",
                "spec.template.spec.containers[0].image Some(\"a@sha256:1\") a@sha256:2",
                "spec.template.spec.containers[0].env[0].name Some(\"X\") (removed)",
                "spec.template.spec.containers[0].env[0].value Some(\"1\") (removed)",
            ]
        );
        let grown = diff(
            "Deployment/a",
            Some(&json!({"spec": {"resources": {}}})),
            &json!({"spec": {"resources": {"limits": {"memory": "2Gi"}}}}),
        );
        assert_eq!(grown.len(), 1, "{grown:?}");
        assert_eq!(grown[0].field, "spec.resources.limits.memory");
        let emptied = diff(
            "Deployment/a",
            Some(&json!({"spec": {"resources": {"limits": {"memory": "2Gi"}}}})),
            &json!({"spec": {"resources": {}}}),
        );
        assert_eq!(emptied.len(), 1, "{emptied:?}");
        assert_eq!(emptied[0].to, "(removed)");
        let created = diff("Deployment/a", None, &new);
        assert_eq!(created[0].to, "created with image a@sha256:2");
    }
}
