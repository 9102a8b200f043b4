use wharf_core::Environment;
use wharf_policy::{GovernanceGate, ModelManifest};

use crate::{example_config, example_dir};

#[test]
fn the_example_manifest_passes_every_rule_in_every_environment() {
    let gate = GovernanceGate::new(example_config()).unwrap();
    let m = ModelManifest::from_path(&example_dir().join("model.yaml")).unwrap();
    for env in Environment::ALL {
        let d = gate.evaluate_manifest(&m, env).unwrap();
        assert!(d.allow, "{env}: {:?}", d.violations);
        assert_eq!(
            d.rules_evaluated,
            [
                "data_source_approved",
                "dependency_allowlist",
                "explainability_present",
                "fairness_evaluated",
                "max_demographic_parity",
                "max_drift",
                "min_accuracy",
                "min_f1",
                "monitoring_enabled",
                "semver_version"
            ]
        );
    }
}

#[test]
fn each_invalid_manifest_violates_exactly_its_rule_with_value_and_threshold() {
    let gate = GovernanceGate::new(example_config()).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(example_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(rule) = name
            .strip_prefix("invalid-")
            .and_then(|n| n.strip_suffix(".yaml"))
        else {
            continue;
        };
        seen += 1;
        let m = ModelManifest::from_path(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let d = gate.evaluate_manifest(&m, Environment::Prod).unwrap();
        assert!(!d.allow, "{name} must be blocked");
        let rules: Vec<&str> = d.violations.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(rules, [rule], "{name}: {:?}", d.violations);
        let v = &d.violations[0];
        assert!(!v.threshold.is_null(), "{name}: a threshold is named");
        assert!(v.field.is_some(), "{name}: the field is named");
        assert!(
            !v.message.contains("data.wharf"),
            "{name}: no Rego in the message: {}",
            v.message
        );
    }
    assert_eq!(seen, 10, "one invalid manifest per bundled rule");
}

#[test]
fn messages_carry_the_numbers_a_data_scientist_needs() {
    let gate = GovernanceGate::new(example_config()).unwrap();
    let m = ModelManifest::from_path(&example_dir().join("invalid-min_accuracy.yaml")).unwrap();
    let d = gate.evaluate_manifest(&m, Environment::Prod).unwrap();
    let v = &d.violations[0];
    assert_eq!(v.field.as_deref(), Some("metrics.accuracy"));
    assert_eq!(v.value, 0.81);
    assert_eq!(v.threshold, 0.85);
    assert!(
        v.message
            .contains("accuracy is 0.81, below the minimum of 0.85 required in prod"),
        "{}",
        v.message
    );

    let m =
        ModelManifest::from_path(&example_dir().join("invalid-dependency_allowlist.yaml")).unwrap();
    let v = &gate
        .evaluate_manifest(&m, Environment::Dev)
        .unwrap()
        .violations[0];
    assert_eq!(v.field.as_deref(), Some("dependencies[1].name"));
    assert_eq!(v.value, "leftpad-ml");
}

#[test]
fn thresholds_are_overridable_per_environment() {
    use wharf_policy::ThresholdOverrides;
    let mut o = ThresholdOverrides::default();
    o.min_accuracy = Some(0.95);
    let gate = GovernanceGate::new(example_config().with_override(Environment::Prod, o)).unwrap();
    let m = ModelManifest::from_path(&example_dir().join("model.yaml")).unwrap();
    assert!(gate.evaluate_manifest(&m, Environment::Dev).unwrap().allow);
    let d = gate.evaluate_manifest(&m, Environment::Prod).unwrap();
    assert_eq!(d.violations.len(), 1);
    assert_eq!(d.violations[0].threshold, 0.95);
}

#[test]
fn out_of_range_thresholds_are_refused_by_name() {
    use wharf_policy::ThresholdOverrides;
    let mut o = ThresholdOverrides::default();
    o.max_demographic_parity = Some(1.5);
    let err =
        GovernanceGate::new(example_config().with_override(Environment::Test, o)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "governance config: environments.test.governance.max_demographic_parity = 1.5 is out of range 0..1"
    );
}

#[test]
fn unapproved_sources_fail_with_the_default_config() {
    // Secure default: no data source is approved until someone approves it.
    let gate = GovernanceGate::new(wharf_policy::GovernanceConfig::default()).unwrap();
    let m = ModelManifest::from_path(&example_dir().join("model.yaml")).unwrap();
    let d = gate.evaluate_manifest(&m, Environment::Dev).unwrap();
    assert_eq!(d.violations.len(), 1);
    assert_eq!(d.violations[0].rule, "data_source_approved");
}

#[test]
fn the_policy_gate_trait_checks_the_schema_too() {
    use wharf_core::PolicyGate;
    use wharf_core::policy::EvaluateOptions;
    let gate = GovernanceGate::new(example_config()).unwrap();
    let m = ModelManifest::from_path(&example_dir().join("model.yaml")).unwrap();
    let opts = EvaluateOptions::for_environment(Environment::Prod);
    let d = futures::executor::block_on(gate.evaluate(&m.to_json(), &opts)).unwrap();
    assert!(d.allow);
    let mut bad = m.to_json();
    bad["metrics"]["accuracy"] = serde_json::json!("high");
    let err = futures::executor::block_on(gate.evaluate(&bad, &opts)).unwrap_err();
    assert_eq!(err.kind(), wharf_core::ErrorKind::Invalid);
    assert!(err.to_string().contains("invalid type"), "{err}");
}

#[test]
fn governance_gate_passes_the_policy_gate_conformance_suite() {
    let gate = GovernanceGate::new(example_config()).unwrap();
    let ok = ModelManifest::from_path(&example_dir().join("model.yaml"))
        .unwrap()
        .to_json();
    let bad = ModelManifest::from_path(&example_dir().join("invalid-min_f1.yaml"))
        .unwrap()
        .to_json();
    futures::executor::block_on(wharf_core::conformance::policy_gate(&gate, &ok, &bad));
}
