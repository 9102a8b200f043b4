use wharf_policy::{ModelManifest, PolicyError};

const GOOD: &str = "apiVersion: wharf.dev/v1\nkind: ModelManifest\nmodel:\n  name: m\n  version: 1.0.0\nmetrics:\n  accuracy: 0.9\n  f1: 0.9\n";

fn err(yaml: &str) -> String {
    let e = ModelManifest::from_yaml_str(yaml, "m.yaml").unwrap_err();
    assert!(matches!(e, PolicyError::Manifest { .. }), "{e:?}");
    let s = e.to_string();
    assert!(!s.contains('\n'), "one line: {s}");
    assert_eq!(
        wharf_core::Error::from(e).kind(),
        wharf_core::ErrorKind::Invalid
    );
    s
}

#[test]
fn good_minimal_manifest_parses() {
    ModelManifest::from_yaml_str(GOOD, "m.yaml").unwrap();
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let s = err("apiVersion: wharf.dev/v1\nmodel: [unclosed\n");
    assert!(s.starts_with("m.yaml:"), "{s}");
    assert!(
        s.split(':').nth(1).unwrap().parse::<u32>().is_ok(),
        "line number: {s}"
    );
}

#[test]
fn wrong_type_names_the_field_path_and_position() {
    let s = err(&GOOD.replace("accuracy: 0.9", "accuracy: very good"));
    assert!(s.starts_with("m.yaml:7:"), "{s}");
    assert!(s.contains("metrics.accuracy"), "{s}");
    assert!(s.contains("invalid type"), "{s}");
}

#[test]
fn missing_field_is_named() {
    let s = err(&GOOD.replace("  f1: 0.9\n", ""));
    assert!(s.contains("missing field `f1`"), "{s}");
    assert!(s.contains("metrics"), "{s}");
}

#[test]
fn unknown_field_is_an_error_not_ignored() {
    let s = err(&format!("{GOOD}  acuracy: 0.99\n"));
    assert!(s.contains("unknown field `acuracy`"), "{s}");
}

#[test]
fn out_of_range_and_wrong_header_are_named() {
    assert_eq!(
        err(&GOOD.replace("accuracy: 0.9", "accuracy: 91")),
        "m.yaml: metrics.accuracy: 91 is outside 0..1 (write 0.91, not 91)"
    );
    assert!(
        err(&GOOD.replace("wharf.dev/v1", "wharf.dev/v9"))
            .contains("apiVersion: expected \"wharf.dev/v1\"")
    );
    assert!(
        err(&format!(
            "{GOOD}artifacts: [{{path: ../secrets, role: weights}}]\n"
        ))
        .contains("artifacts[0].path")
    );
}

#[test]
fn empty_and_missing_files() {
    assert!(err("").contains("m.yaml"));
    let e = ModelManifest::from_path(std::path::Path::new("/nonexistent/model.yaml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot read /nonexistent/model.yaml: No such file or directory (os error 2)"
    );
    assert_eq!(e.kind(), wharf_core::ErrorKind::NotFound);
}
