use wharf_core::Environment;
use wharf_pipeline::Config;

use crate::examples_dir;

#[test]
fn the_example_config_loads_and_resolves_paths_next_to_itself() {
    let c = Config::load(&examples_dir().join("wharf.toml")).unwrap();
    assert_eq!(c.project.name, "fraud-detector");
    assert!(
        c.manifest_path()
            .ends_with("examples/models/fraud-detector/model.yaml")
    );
    assert!(c.manifest_path().is_file());
    assert!(c.audit_dir().ends_with("examples/.wharf/audit"));
    assert!(c.environment_policy(Environment::Prod).require_signature);
    assert!(
        !c.environment_policy(Environment::Dev)
            .scan_gate
            .blocks(wharf_core::Severity::Critical)
    );
    assert_eq!(
        c.governance(Environment::Prod).approved_data_sources,
        ["synthetic-transactions"]
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let err = Config::load("/no/wharf.toml".as_ref()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read /no/wharf.toml: No such file or directory (os error 2)"
    );
    assert_eq!(err.kind(), wharf_core::ErrorKind::NotFound);
}
