use wharf_core::Environment;
use wharf_policy::{GovernanceGate, ModelManifest, PolicyError};

use crate::{example_config, example_dir};

fn manifest() -> ModelManifest {
    ModelManifest::from_path(&example_dir().join("model.yaml")).unwrap()
}

#[test]
fn user_policies_from_a_directory_add_rules_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("owner.rego"),
        r#"package wharf.governance
import rego.v1
checked contains "owner_is_team"
deny contains v if {
    not endswith(input.manifest.model.owner, "-team@acme.example")
    v := {"rule": "owner_is_team", "field": "model.owner", "value": input.manifest.model.owner,
          "threshold": "*-team@acme.example", "message": "the owner must be a team mailbox"}
}
warn contains "precision is not reported" if not input.manifest.metrics.precision
"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a policy").unwrap();
    let gate = GovernanceGate::new(example_config())
        .unwrap()
        .with_policy_dir(dir.path())
        .unwrap();
    assert_eq!(gate.policies().len(), wharf_policy::BUNDLED.len() + 1);
    let d = gate
        .evaluate_manifest(&manifest(), Environment::Prod)
        .unwrap();
    assert!(!d.allow);
    assert_eq!(d.violations.len(), 1);
    assert_eq!(d.violations[0].rule, "owner_is_team");
    assert!(d.rules_evaluated.contains(&"owner_is_team".to_owned()));
    assert!(d.warnings.is_empty(), "the example reports precision");
}

#[test]
fn a_missing_policy_dir_is_a_one_line_error() {
    let err = GovernanceGate::new(example_config())
        .unwrap()
        .with_policy_dir("./no/such/dir".as_ref())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy directory ./no/such/dir does not exist: create it or fix `governance.policy_dir`"
    );
    assert!(matches!(err, PolicyError::PolicyDir { .. }));
}

#[test]
fn malformed_rego_names_the_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.rego");
    std::fs::write(
        &file,
        "package wharf.governance\n\ndeny contains v if {\n  v := \n",
    )
    .unwrap();
    let err = GovernanceGate::new(example_config())
        .unwrap()
        .with_policy_dir(dir.path())
        .unwrap_err();
    let s = err.to_string();
    assert!(matches!(err, PolicyError::Rego { .. }), "{err:?}");
    assert_eq!(
        s,
        format!("{}:4:5: expecting `}}` while parsing set", file.display())
    );
}

#[test]
fn a_policy_in_another_package_is_refused_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("other.rego"),
        "package acme.rules\nimport rego.v1\ndeny contains \"x\" if true\n",
    )
    .unwrap();
    let err = GovernanceGate::new(example_config())
        .unwrap()
        .with_policy_dir(dir.path())
        .unwrap_err();
    assert!(
        err.to_string().contains("declares package acme.rules"),
        "{err}"
    );
}

#[test]
fn a_rule_that_errors_at_runtime_fails_the_evaluation_instead_of_allowing() {
    let mut gate = GovernanceGate::new(example_config()).unwrap();
    gate.add_policy(
        "div.rego",
        "package wharf.governance\nimport rego.v1\ndeny contains x if { x := 1 / 0 }\n",
    )
    .unwrap();
    let err = gate
        .evaluate_manifest(&manifest(), Environment::Prod)
        .unwrap_err();
    assert!(matches!(err, PolicyError::Eval { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "policy evaluation failed: div.rego:3:29: divide by zero"
    );
}
