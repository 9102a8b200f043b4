//! Damage on disk and killed runs, as they happen: one byte of a layer flipped, a blob
//! truncated, a manifest corrupted, temp files of a killed run left behind. The next run
//! repairs what it pushes, `verify` refuses what does not match its digest, `fsck` names
//! and repairs the rest, and no second copy of a layer stays on disk.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run the pipeline; returns the image digest and the layout directory.
fn run(scratch: &Path) -> (String, PathBuf) {
    let (digest, layout, _) = run_tagged(scratch);
    (digest, layout)
}

/// Run the pipeline; returns the image digest, the layout directory and the image's tag.
fn run_tagged(scratch: &Path) -> (String, PathBuf, String) {
    let out = xtask(scratch, "pipeline").arg("--json").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["run"]["image_digest"].as_str().unwrap().to_owned(),
        scratch.join("oci/models/fraud-detector"),
        v["run"]["stages"][1]["details"]["tag"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The weights layer of the image (the largest).
fn weights_layer(layout: &Path, image: &str) -> (PathBuf, u64) {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(layout, image)).unwrap()).unwrap();
    let l = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap();
    (
        blob(layout, l["digest"].as_str().unwrap()),
        l["size"].as_u64().unwrap(),
    )
}

fn writable(path: &Path) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
}

fn flip_one_byte(path: &Path) {
    writable(path);
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn skopeo_copies(scratch: &Path, layout: &Path, tag: &str) -> Output {
    let dest = scratch.join(format!("copy-{}", rand_suffix()));
    Command::new(backend("WHARF_TEST_SKOPEO"))
        .args(["copy", "--all"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("dir:{}", dest.display()))
        .output()
        .unwrap()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn a_damaged_layer_fails_deep_verify_and_fsck_and_the_next_run_repairs_it() {
    let scratch = tempfile::tempdir().unwrap();
    let (image, layout) = run(scratch.path());
    let (layer, size) = weights_layer(&layout, &image);
    let verify = |deep: bool| {
        let mut c = xtask(scratch.path(), "verify");
        c.arg(&image);
        if deep {
            c.arg("--deep");
        }
        c.output().unwrap()
    };
    expect(&verify(true), 0, &["VERIFIED"]);

    // One byte flipped: the signature still matches the manifest, but the content does not.
    flip_one_byte(&layer);
    expect(&verify(true), 1, &["NOT VERIFIED", "content"]);
    expect(
        &xtask(scratch.path(), "fsck").output().unwrap(),
        1,
        &["DAMAGED", "corrupt", "run with --repair"],
    );
    // The next run pushes the same layer again and replaces the damaged copy.
    let (_, _, tag) = run_tagged(scratch.path());
    expect(&verify(true), 0, &["VERIFIED"]);
    let copy = skopeo_copies(scratch.path(), &layout, &tag);
    assert!(copy.status.success(), "{}", text(&copy.stderr));

    // Truncated to 0 bytes: the same.
    writable(&layer);
    std::fs::write(&layer, b"").unwrap();
    expect(&verify(true), 1, &["NOT VERIFIED"]);
    run(scratch.path());
    assert_eq!(std::fs::metadata(&layer).unwrap().len(), size);
    expect(&verify(true), 0, &["VERIFIED"]);
    expect(
        &xtask(scratch.path(), "fsck").output().unwrap(),
        0,
        &["intact"],
    );
}

#[test]
fn a_corrupt_manifest_is_not_verified_and_fsck_repair_removes_damage() {
    let scratch = tempfile::tempdir().unwrap();
    let (image, layout) = run(scratch.path());
    let manifest = blob(&layout, &image);
    flip_one_byte(&manifest);
    // Without --deep too: what the signature vouches for must be what is stored.
    expect(
        &xtask(scratch.path(), "verify")
            .arg(&image)
            .output()
            .unwrap(),
        1,
        &["NOT VERIFIED", "content"],
    );
    let out = xtask(scratch.path(), "fsck")
        .args(["--repair", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["path"] == manifest.to_str().unwrap() && p["repaired"] == true),
        "{report}"
    );
    // The tag now names a manifest that is gone: still a problem until pushed again.
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(!manifest.exists());
    run(scratch.path());
    expect(
        &xtask(scratch.path(), "fsck").output().unwrap(),
        0,
        &["intact"],
    );
    expect(
        &xtask(scratch.path(), "verify")
            .args([&image, "--deep"])
            .output()
            .unwrap(),
        0,
        &["VERIFIED"],
    );
}

/// A real process that has died: its pid names its temp files.
fn dead_pid() -> u32 {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    pid
}

#[test]
fn no_second_copy_of_a_layer_stays_and_a_killed_runs_temp_files_are_removed() {
    let scratch = tempfile::tempdir().unwrap();
    run(scratch.path());
    let oci = scratch.path().join("oci");
    let files = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Each layer is stored once: the staging area is empty after the push.
    assert!(
        files(&oci.join(".staging")).is_empty(),
        "{:?}",
        files(&oci.join(".staging"))
    );
    assert!(files(&oci.join(".wharf-tmp")).is_empty());

    // What a run killed mid-push leaves: a half-written layer in staging and a half-stored
    // blob in the temp dir, named for its (now dead) process; an unrelated file stays.
    let pid = dead_pid();
    let half = vec![7u8; 3 << 20];
    std::fs::write(oci.join(format!(".staging/{pid}-0-layer.tmp")), &half).unwrap();
    std::fs::create_dir_all(oci.join(".wharf-tmp")).unwrap();
    std::fs::write(oci.join(format!(".wharf-tmp/{pid}-1-abc.tmp")), &half).unwrap();
    std::fs::write(oci.join(".staging/notes.txt"), b"not ours").unwrap();
    let out = xtask(scratch.path(), "fsck").output().unwrap();
    expect(&out, 1, &["temp file of a writer that is gone"]);
    run(scratch.path());
    assert_eq!(files(&oci.join(".staging")), ["notes.txt"]);
    assert!(files(&oci.join(".wharf-tmp")).is_empty());
    // No temp file is ever inside blobs/ (umoci gc refuses such a layout).
    let blobs = files(&oci.join("models/fraud-detector/blobs/sha256"));
    assert!(blobs.iter().all(|n| n.len() == 64), "{blobs:?}");
    let gc = Command::new(backend("WHARF_TEST_UMOCI"))
        .args(["gc", "--layout"])
        .arg(oci.join("models/fraud-detector"))
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", text(&gc.stderr));
}
