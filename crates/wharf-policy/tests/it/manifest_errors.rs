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

/// Found by wharf-fuzz: a quoted field name holding a newline came back as a two-line
/// error (`fuzz/corpus/model_manifest/regression-error-newline-in-field-name.yaml`).
#[test]
fn a_field_name_with_control_characters_is_escaped_onto_one_line() {
    let s = err(&GOOD.replace(
        "  version: 1.0.0\n",
        "  version: 1.0.0\n  \"owner\\nsecond line\\u001b[31m\": risk-ml@acme.example\n",
    ));
    assert!(!s.contains('\n') && !s.contains('\u{1b}'), "{s:?}");
    assert!(s.contains(r"owner\nsecond line\u{1b}[31m"), "{s}");
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

/// A hostile manifest is refused quickly, in one line naming the file and the limit, and
/// as bad input.
fn refused_quickly(yaml: &str, needle: &str) -> String {
    let clock = std::time::Instant::now();
    let s = err(yaml);
    assert!(
        clock.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}: {s}",
        clock.elapsed()
    );
    assert!(s.starts_with("m.yaml"), "{s}");
    assert!(s.contains(needle), "{needle:?} not in {s}");
    s
}

#[test]
fn deep_flow_nesting_is_refused_before_parsing() {
    // 200 KB of nesting: libyaml alone takes minutes on this.
    let nested = format!(
        "{GOOD}description: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let s = refused_quickly(&nested, "nest deeper than 64 levels");
    assert!(s.starts_with("m.yaml:9:"), "located: {s}");
    // Brackets inside quotes do not hide nesting from the scan.
    let hidden = format!("{GOOD}description: {}x\n", "[ \"]\", ".repeat(100_000));
    refused_quickly(&hidden, "nest deeper than 64 levels");
    // Real manifests are nowhere near: flow style throughout passes.
    ModelManifest::from_yaml_str(
        "{apiVersion: wharf.dev/v1, kind: ModelManifest, model: {name: m, version: 1.0.0}, metrics: {accuracy: 0.9, f1: 0.9}, dependencies: [{name: a}, {name: b}]}",
        "m.yaml",
    )
    .unwrap();
}

#[test]
fn an_alias_bomb_is_refused_without_expanding_it() {
    // A 400 KB string repeated through 150 000 aliases: 60 GB if expanded.
    let bomb = GOOD.replace(
        "model:\n",
        &format!(
            "x-data: &s \"{}\"\nmodel:\n  description: [{}]\n",
            "x".repeat(400_000),
            ["*s"; 150_000].join(", ")
        ),
    );
    assert!(
        bomb.len() < wharf_policy::MAX_MANIFEST_BYTES,
        "{}",
        bomb.len()
    );
    refused_quickly(&bomb, "YAML aliases expand the");
    // A nested bomb (each level ten aliases of the one below) too.
    let mut levels = vec!["l0: &l0 \"lol\"".to_owned()];
    for i in 1..12 {
        levels.push(format!(
            "l{i}: &l{i} [{}]",
            vec![format!("*l{}", i - 1); 10].join(",")
        ));
    }
    refused_quickly(
        &format!("{}\n{GOOD}", levels.join("\n")),
        "no anchors or aliases",
    );
}

#[test]
fn an_oversized_manifest_is_refused_naming_the_limit() {
    let big = format!("{GOOD}# {}\n", "x".repeat(wharf_policy::MAX_MANIFEST_BYTES));
    refused_quickly(&big, "over the 1048576-byte (1 MiB) manifest limit");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.yaml");
    std::fs::write(&path, &big).unwrap();
    let e = ModelManifest::from_path(&path).unwrap_err();
    assert_eq!(e.kind(), wharf_core::ErrorKind::Invalid);
    let s = e.to_string();
    assert!(s.starts_with(&path.display().to_string()), "{s}");
    assert!(s.contains("1048576-byte (1 MiB) manifest limit"), "{s}");
}

#[test]
fn non_utf8_directories_and_fifos_are_bad_input_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.yaml");
    let mut bytes = GOOD.as_bytes().to_vec();
    let at = GOOD.find("  version").unwrap() + 2;
    bytes.insert(at, 0xff);
    std::fs::write(&path, &bytes).unwrap();
    let e = ModelManifest::from_path(&path).unwrap_err();
    assert_eq!(e.kind(), wharf_core::ErrorKind::Invalid);
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5:3: not valid UTF-8 (byte offset {at}): save the manifest as UTF-8",
            path.display()
        )
    );

    let e = ModelManifest::from_path(dir.path()).unwrap_err();
    assert_eq!(e.kind(), wharf_core::ErrorKind::Invalid);
    assert!(e.to_string().contains("is a directory"), "{e}");

    let fifo = dir.path().join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Refused without opening it (opening a FIFO with no writer would block).
    let e = ModelManifest::from_path(&fifo).unwrap_err();
    assert_eq!(e.kind(), wharf_core::ErrorKind::Invalid);
    assert!(e.to_string().contains("is not a regular file"), "{e}");
}
