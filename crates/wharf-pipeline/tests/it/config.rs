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

/// `[identity]` reads as documented; a table missing its one required field, or a field
/// that does not exist, is named.
#[test]
fn identity_sections_are_read_and_mistakes_named() {
    let base = "[project]\nname = \"m\"\n[model]\ndir = \"m\"\n";
    let parse = |extra: &str| {
        Config::from_toml_str(
            &format!("{base}{extra}"),
            "wharf.toml",
            std::path::Path::new("/p"),
            Vec::new(),
        )
    };
    let c = parse(
        "[identity]\nsource = \"file\"\ntoken_file = \"t\"\n[identity.aws]\nrole_arn = \"arn:aws:iam::123456789012:role/r\"\nduration_seconds = 900\n[identity.gcp]\nprovider = \"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/g\"\n",
    )
    .unwrap();
    assert_eq!(c.identity.source.as_deref(), Some("file"));
    assert_eq!(c.identity.aws.as_ref().unwrap().duration_seconds, Some(900));
    assert!(c.identity.azure.is_none());
    let e = parse("[identity.aws]\nregion = \"eu-west-1\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("role_arn"), "{e}");
    let e = parse("[identity.azure]\nclient = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `client`"), "{e}");
    // Overrides reach the tables as every other section's do.
    let c = Config::from_toml_str(
        base,
        "wharf.toml",
        std::path::Path::new("/p"),
        vec![(
            "WHARF__IDENTITY__AWS__ROLE_ARN".to_owned(),
            "arn:aws:iam::123456789012:role/r".to_owned(),
        )],
    )
    .unwrap();
    assert_eq!(
        c.identity.aws.unwrap().role_arn,
        "arn:aws:iam::123456789012:role/r"
    );
}

/// A config resolves its identity once: clones share it, and without a token source runs
/// are the local user's (the test process has no CI token variables of its own here).
#[tokio::test]
async fn identity_is_resolved_once_and_shared() {
    let c = Config::load(&examples_dir().join("wharf.toml")).unwrap();
    let copy = c.clone();
    let a = c.identity().await.unwrap();
    let b = copy.identity().await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(c, copy, "the resolved identity is not configuration");
}
