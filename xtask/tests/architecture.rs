//! Architecture invariants from ARCHITECTURE.md, checked on the real dependency graph.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::path::Path;
use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `cargo metadata` of the workspace members.
fn workspace_metadata() -> serde_json::Value {
    let args = [
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--offline",
        "--no-deps",
    ];
    serde_json::from_str(&cargo(&args)).unwrap()
}

#[test]
fn wharf_core_has_no_http_client_runtime_or_cloud_sdk() {
    let tree = cargo(&[
        "tree",
        "-p",
        "wharf-core",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--locked",
        "--offline",
    ]);
    let forbidden = [
        "tokio",
        "async-std",
        "smol",
        "hyper",
        "reqwest",
        "ureq",
        "rustls",
        "aws-",
        "azure_",
        "google-cloud",
        "kube",
        "oci-client",
        "sigstore",
        "object_store",
    ];
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        for f in forbidden {
            assert!(
                !name.starts_with(f),
                "wharf-core must not depend on {name} (matched {f:?}):\n{tree}"
            );
        }
    }
    assert!(
        tree.contains("async-trait"),
        "sanity: the tree was read:\n{tree}"
    );
}

#[test]
fn sdk_crates_depend_on_wharf_core_not_on_each_other() {
    let meta = workspace_metadata();
    let members: Vec<&str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    // Composition crates may use every SDK crate; everything else only wharf-core. The
    // fuzz targets (publish = false) feed every crate's parsers.
    let composers = [
        "wharf-pipeline",
        "xtask",
        "wharf-examples",
        "wharf-bench",
        "wharf-fuzz",
    ];
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if composers.contains(&name) {
            continue;
        }
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            let normal = d["kind"].is_null();
            if normal && members.contains(&dep) {
                assert_eq!(
                    dep, "wharf-core",
                    "{name} depends on sibling {dep}: take an Arc<dyn Trait> from wharf-core instead"
                );
            }
        }
    }
}

#[test]
fn every_published_crate_has_readme_license_and_versioned_local_deps() {
    let meta = workspace_metadata();
    for p in meta["packages"].as_array().unwrap() {
        let publishable = !matches!(p["publish"].as_array(), Some(a) if a.is_empty());
        if !publishable {
            continue;
        }
        let name = p["name"].as_str().unwrap();
        let dir = Path::new(p["manifest_path"].as_str().unwrap())
            .parent()
            .unwrap();
        assert!(dir.join("README.md").is_file(), "{name} has no README.md");
        assert!(dir.join("LICENSE").is_file(), "{name} has no LICENSE");
        assert!(p["description"].is_string(), "{name} has no description");
        for d in p["dependencies"].as_array().unwrap() {
            if d["path"].is_string() && d["kind"].is_null() {
                assert_ne!(
                    d["req"], "*",
                    "{name}: path dependency {} needs a version",
                    d["name"]
                );
            }
        }
    }
}
