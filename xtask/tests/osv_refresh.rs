//! `cargo xtask osv refresh`: a project's OSV snapshot renewed from an export — every record
//! that names a package the model pins, copied byte for byte; others and stale files gone;
//! a model that pins nothing, or a broken export, refused in one line.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

fn refresh(project: &Path, export: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["osv", "refresh", "--export"])
        .arg(export)
        .arg("--config")
        .arg(project.join("wharf.toml"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn refresh_keeps_the_advisories_of_the_models_pins() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::copy(
        root().join("examples/wharf.toml"),
        project.join("wharf.toml"),
    )
    .unwrap();
    for d in ["models", "osv", "vex"] {
        copy_dir(&root().join("examples").join(d), &project.join(d));
    }
    // An "export": the example's records, unrelated real ones (requests, cryptography,
    // Debian nginx, Go), as a directory.
    let export = dir.path().join("export");
    copy_dir(&root().join("examples/osv"), &export);
    copy_dir(
        &root().join("crates/wharf-scan/tests/fixtures/osv/ossf-osv-schema"),
        &export,
    );
    copy_dir(
        &root().join("crates/wharf-scan/tests/fixtures/osv/google-osv.dev"),
        &export,
    );
    std::fs::remove_file(export.join("README.md")).unwrap();
    std::fs::write(project.join("osv/STALE-1.json"), b"{}").unwrap();
    let out = refresh(&project, &export);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("3 advisories for numpy==1.21.0, joblib==1.1.0"),
        "{stdout}"
    );
    let mut names: Vec<String> = std::fs::read_dir(project.join("osv"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "GHSA-6hrg-qmvc-2xh8.json",
            "GHSA-fpfv-jqm9-f5jm.json",
            "PYSEC-2022-288.json",
            "README.md"
        ]
    );
    for n in &names[..3] {
        assert_eq!(
            std::fs::read(project.join("osv").join(n)).unwrap(),
            std::fs::read(root().join("examples/osv").join(n)).unwrap(),
            "{n} is copied byte for byte"
        );
    }
    // A broken export fails, naming the file; the snapshot is untouched.
    std::fs::write(export.join("BROKEN-1.json"), b"{\"id\": ").unwrap();
    let out = refresh(&project, &export);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BROKEN-1.json") && stderr.contains("not an OSV record"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(std::fs::read_dir(project.join("osv")).unwrap().count(), 4);
    // A model that pins nothing has nothing to refresh.
    std::fs::remove_file(project.join("models/fraud-detector/requirements.txt")).unwrap();
    let out = refresh(&project, &export);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pins no packages"));
}
