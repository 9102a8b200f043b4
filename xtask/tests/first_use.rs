//! First use of a fresh project, as a CI fleet meets it: several `xtask pipeline` processes
//! at once create the signing key and the audit checkpoint key exactly once and all use
//! them; a run killed while creating them leaves nothing that breaks the next one.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod support;
use support::*;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use base64::Engine as _;

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every signature layer of `digest`'s `.sig` image in the layout, verified with `public`:
/// the number of layers, all of which must verify.
fn check_every_signature(layout: &Path, digest: &str, public: &wharf_sign::PublicKey) -> usize {
    use wharf_core::Verifier as _;
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = json_file(&layout.join("index.json"));
    let tag = format!("{}.sig", digest.replace(':', "-"));
    let sig = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
        .unwrap_or_else(|| panic!("no {tag} in {index}"));
    let manifest = json_file(&blob(sig["digest"].as_str().unwrap()));
    let layers = manifest["layers"].as_array().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for layer in layers {
        let payload = std::fs::read(blob(layer["digest"].as_str().unwrap())).unwrap();
        let signature = base64::engine::general_purpose::STANDARD
            .decode(
                layer["annotations"]["dev.cosignproject.cosign/signature"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let signature =
            wharf_core::Signature::new(signature, wharf_sign::ALGORITHM, public.key_id());
        rt.block_on(public.verify(&payload, &signature, &Default::default()))
            .unwrap_or_else(|e| panic!("a signature layer of {digest}: {e}"));
    }
    layers.len()
}

/// Eight first runs of a fresh project at once: every one passes and is recorded, one
/// cosign.key and one checkpoint key exist, and everything is signed with them.
#[test]
fn eight_first_runs_at_once_share_one_signing_key_and_one_checkpoint_key() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let runs: Vec<_> = (0..8)
        .map(|_| {
            xtask(dir, "pipeline")
                .arg("--json")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = runs
        .into_iter()
        .map(|r| r.wait_with_output().unwrap())
        .collect();
    for out in &outs {
        assert_eq!(out.status.code(), Some(0), "{}", show(out));
    }
    assert_eq!(
        names_in(&dir.join("keys")),
        [
            "audit-checkpoint.pem",
            "audit-checkpoint.pem.pub",
            "cosign.key",
            "cosign.pub"
        ],
        "one key pair each, no temp file left"
    );
    let public = wharf_sign::PublicKey::from_file(&dir.join("keys/cosign.pub")).unwrap();
    let mut digests = Vec::new();
    for out in &outs {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let sign = v["run"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "sign")
            .unwrap_or_else(|| panic!("no sign stage in {v}"));
        assert_eq!(sign["details"]["key_id"], public.key_id(), "{sign}");
        digests.push(v["run"]["image_digest"].as_str().unwrap().to_owned());
    }
    digests.sort();
    digests.dedup();
    let layout = dir.join("oci/models/fraud-detector");
    for digest in &digests {
        assert!(check_every_signature(&layout, digest, &public) >= 1);
    }

    let verify = xtask(dir, "audit").arg("verify").output().unwrap();
    let stdout = text(&verify.stdout);
    assert_eq!(verify.status.code(), Some(0), "{}", show(&verify));
    assert!(
        stdout.contains("8 records, chain intact") && stdout.contains("8 signatures verified"),
        "every run recorded, every checkpoint signed by the one checkpoint key: {stdout}"
    );
}

/// What a first run killed while creating its keys leaves behind: temp files (today's
/// writer) neither block nor linger; a 0-byte key (an older writer) is named, with what to
/// do, and kept as it is.
#[test]
fn a_first_run_killed_while_creating_keys_leaves_nothing_that_breaks_the_next() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let stale = [
        keys.join(".cosign.key.4000000.1a.tmp"),
        keys.join(".cosign.pub.4000000.1b.tmp"),
        keys.join(".audit-checkpoint.pem.4000000.1c.tmp"),
    ];
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for f in &stale {
        std::fs::write(f, "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJr").unwrap();
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let out = xtask(dir, "pipeline").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        names_in(&keys),
        [
            "audit-checkpoint.pem",
            "audit-checkpoint.pem.pub",
            "cosign.key",
            "cosign.pub"
        ]
    );

    // A 0-byte signing key: every run says so and what to do; the file is kept.
    let fresh = tempfile::tempdir().unwrap();
    let dir = fresh.path();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let key = dir.join("keys/cosign.key");
    std::fs::write(&key, "").unwrap();
    for _ in 0..2 {
        let out = xtask(dir, "pipeline").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let err = text(&out.stderr);
        let line = err
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("{}", show(&out)));
        assert!(
            line.contains(&format!("key file {} is empty", key.display()))
                && line.contains("interrupted")
                && line.contains("delete it"),
            "{line}"
        );
        assert!(!err.contains("not a PEM key file"), "{err}");
        assert_eq!(std::fs::metadata(&key).unwrap().len(), 0, "kept as it is");
    }
    // Deleted as told: the next run makes a key and passes.
    std::fs::remove_file(&key).unwrap();
    let out = xtask(dir, "pipeline").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // A 0-byte checkpoint key: the same advice; no run without it.
    let fresh = tempfile::tempdir().unwrap();
    let dir = fresh.path();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let checkpoint = dir.join("keys/audit-checkpoint.pem");
    std::fs::write(&checkpoint, "").unwrap();
    let out = xtask(dir, "pipeline").output().unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stderr).contains(&format!("key file {} is empty", checkpoint.display())),
        "{}",
        show(&out)
    );
    assert_eq!(std::fs::metadata(&checkpoint).unwrap().len(), 0);
}

/// Real kills: a first run killed (SIGKILL) the moment its keys directory appears, the
/// moment the signing key's first file (temp or final) appears, and just after its
/// public key appears, never leaves a key that fails the next run.
#[test]
fn first_runs_killed_while_creating_keys_leave_usable_keys() {
    type Trigger = fn(&[String]) -> bool;
    let triggers: [(&str, Trigger); 3] = [
        ("the keys directory appears", |_| true),
        ("a signing key file appears", |names| {
            names.iter().any(|n| n.contains("cosign.key"))
        }),
        ("the signing key's .pub appears", |names| {
            names.iter().any(|n| n == "cosign.pub")
        }),
    ];
    for (moment, fired) in triggers {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let keys = dir.join("keys");
        let mut child = xtask(dir, "pipeline")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let names: Option<Vec<String>> = std::fs::read_dir(&keys).ok().map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            });
            if names.is_some_and(|n| fired(&n))
                || child.try_wait().unwrap().is_some()
                || std::time::Instant::now() > deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        for key in ["cosign.key", "audit-checkpoint.pem"] {
            if let Ok(meta) = std::fs::metadata(keys.join(key)) {
                assert!(
                    meta.len() > 100,
                    "{key} is cut short after a kill when {moment}"
                );
            }
        }
        let out = xtask(dir, "pipeline").output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "after a kill when {moment}: {}",
            show(&out)
        );
    }
}
