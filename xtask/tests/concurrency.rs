//! Several `xtask pipeline` processes at once on one project, as CI runs them side by side:
//! no signature is lost, an immutable tag is claimed by exactly one run, and every run
//! leaves its record. Real processes on real files (and the real local registry), not
//! threads.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const PASSWORD: &str = "wharf-canary-concurrency-password-Q8f3";

/// `xtask <subcommand>` with the audit log, checkpoint key and OCI layout in `scratch`
/// (shared by every process of a test) and the signing key `key`.
fn xtask(scratch: &Path, subcommand: &str, key: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg(subcommand)
        .current_dir(root())
        .env("WHARF__AUDIT__DIR", scratch.join("records"))
        .env(
            "WHARF__AUDIT__CHECKPOINT_KEY",
            scratch.join("keys/audit-checkpoint.pem"),
        )
        .env("WHARF__SIGN__KEY", key)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("WHARF__REGISTRY__LAYOUT", scratch.join("oci"))
        .env("WHARF__DEPLOY__GITOPS_REPO", scratch.join("gitops"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Start every command at once, then wait for all of them.
fn all_at_once(cmds: Vec<Command>) -> Vec<Output> {
    let children: Vec<Child> = cmds.into_iter().map(|mut c| c.spawn().unwrap()).collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// One key per signer and the audit checkpoint key, made before the runs (first-use key
/// creation has its own test).
fn keys(scratch: &Path, n: usize) -> Vec<PathBuf> {
    wharf_sign::EcdsaP256Key::load_or_generate(&scratch.join("keys/audit-checkpoint.pem")).unwrap();
    (0..n)
        .map(|i| {
            let key = scratch.join(format!("keys/signer-{i}.key"));
            wharf_sign::EcdsaP256Key::load_or_generate_with(
                &key,
                Some(&wharf_core::Secret::new(PASSWORD)),
            )
            .unwrap();
            key
        })
        .collect()
}

/// The run records in the project's audit log, as `xtask audit query --json` lists them.
fn records(scratch: &Path, key: &Path) -> Vec<serde_json::Value> {
    let out = xtask(scratch, "audit", key)
        .args(["query", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn assert_chain_intact(scratch: &Path, key: &Path, runs: usize) {
    let out = xtask(scratch, "audit", key).arg("verify").output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("{runs} records, chain intact")),
        "{stdout}"
    );
}

fn signers_at_once(scratch: &Path, extra_env: &[(&str, String)]) -> (String, Vec<PathBuf>) {
    const SIGNERS: usize = 6;
    let keys = keys(scratch, SIGNERS);
    let cmds = keys
        .iter()
        .map(|k| {
            let mut c = xtask(scratch, "pipeline", k);
            c.args(["--json", "--env", "test"]);
            for (name, value) in extra_env {
                c.env(name, value);
            }
            c
        })
        .collect();
    let outs = all_at_once(cmds);
    let mut digests = Vec::new();
    for out in &outs {
        assert_eq!(
            out.status.code(),
            Some(0),
            "every signer passes: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        digests.push(v["run"]["image_digest"].as_str().unwrap().to_owned());
        assert!(!text(&out.stderr).contains(PASSWORD));
    }
    digests.dedup();
    assert_eq!(digests.len(), 1, "one reproducible image: {digests:?}");
    (digests.remove(0), keys)
}

/// Every key's signature and attestations are still on the image after all signers are done.
fn each_key_verifies(scratch: &Path, digest: &str, keys: &[PathBuf], repo: Option<&str>) {
    for key in keys {
        let public = wharf_sign::public_path(key);
        let image = match repo {
            Some(r) => format!("{r}@{digest}"),
            None => digest.to_owned(),
        };
        let mut cmd = xtask(scratch, "verify", key);
        cmd.args([&image, "--key", public.to_str().unwrap()])
            .args(["--attestation", "https://slsa.dev/provenance/v1"]);
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}{}",
            key.display(),
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn signers_at_once_on_the_oci_layout_keep_every_signature() {
    let scratch = tempfile::tempdir().unwrap();
    let (digest, keys) = signers_at_once(scratch.path(), &[]);
    each_key_verifies(scratch.path(), &digest, &keys, None);
    // The .sig image holds one layer per key.
    let layout = scratch.path().join("oci/models/fraud-detector");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let sig_tag = format!("sha256-{}.sig", &digest["sha256:".len()..]);
    let sig = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == sig_tag.as_str())
        .unwrap();
    let hex = sig["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    assert_eq!(manifest["layers"].as_array().unwrap().len(), keys.len());
    assert_eq!(records(scratch.path(), &keys[0]).len(), keys.len());
    assert_chain_intact(scratch.path(), &keys[0], keys.len());
    // Every run deployed the same digest into one GitOps repository at once: one commit,
    // the others found it there; nothing half-written is left.
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(scratch.path().join("gitops"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(git(&["rev-list", "--count", "HEAD"]), "1");
    assert!(
        git(&["log", "-1", "--format=%s"]).contains(&digest),
        "one deploy of {digest}"
    );
    assert_eq!(git(&["status", "--porcelain"]), "");
}

#[test]
fn signers_at_once_on_a_registry_keep_every_signature() {
    let registry = backend("WHARF_TEST_REGISTRY");
    let scratch = tempfile::tempdir().unwrap();
    let repo = format!("concurrency/signers-{}", std::process::id());
    let (digest, keys) = signers_at_once(
        scratch.path(),
        &[
            ("WHARF__REGISTRY__URL", format!("http://{registry}")),
            ("WHARF__REGISTRY__REPOSITORY", repo.clone()),
        ],
    );
    for key in &keys {
        let public = wharf_sign::public_path(key);
        let out = xtask(scratch.path(), "verify", key)
            .env("WHARF__REGISTRY__URL", format!("http://{registry}"))
            .env("WHARF__REGISTRY__REPOSITORY", &repo)
            .args([
                &format!("{repo}@{digest}"),
                "--key",
                public.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}{}",
            key.display(),
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    assert_chain_intact(scratch.path(), &keys[0], keys.len());
}

/// Start `RUNS` pipelines at once that build the same commit (so the same tag) with
/// different content — SOURCE_DATE_EPOCH goes into the ModelPack config, so each run builds
/// another manifest — and check that exactly one claims the tag. Returns the tag, the
/// winner's digest and the key used.
fn race_for_one_tag(scratch: &Path, extra_env: &[(&str, String)]) -> (String, String, PathBuf) {
    const RUNS: usize = 5;
    let key = keys(scratch, 1).remove(0);
    let cmds = (0..RUNS)
        .map(|i| {
            let mut c = xtask(scratch, "pipeline", &key);
            c.args(["--json"])
                .env("SOURCE_DATE_EPOCH", (1_700_000_000 + i).to_string());
            for (name, value) in extra_env {
                c.env(name, value);
            }
            c
        })
        .collect();
    let outs = all_at_once(cmds);
    let mut passed = Vec::new();
    for out in &outs {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}{}", text(&out.stdout), text(&out.stderr)));
        match out.status.code() {
            Some(0) => passed.push(v),
            Some(3) => {
                let package = &v["run"]["stages"][1];
                assert_eq!(package["name"], "package");
                let summary = package["summary"].as_str().unwrap();
                assert!(
                    summary.contains("tags are immutable") || summary.contains("another"),
                    "{summary}"
                );
            }
            other => panic!("exit {other:?}: {}{}", text(&out.stdout), text(&out.stderr)),
        }
    }
    assert_eq!(passed.len(), 1, "exactly one run claims the tag");
    // Every run is recorded, the losers as failed.
    let recs = records(scratch, &key);
    assert_eq!(recs.len(), RUNS);
    assert_eq!(
        recs.iter()
            .filter(|r| r["event"]["outcome"] == "failed")
            .count(),
        RUNS - 1,
        "{recs:?}"
    );
    assert_chain_intact(scratch, &key, RUNS);
    let winner = passed[0]["run"]["image_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let tag = passed[0]["run"]["stages"][1]["details"]["tag"]
        .as_str()
        .unwrap()
        .to_owned();
    (tag, winner, key)
}

#[test]
fn runs_racing_for_one_tag_on_the_oci_layout_leave_it_on_exactly_one() {
    let scratch = tempfile::tempdir().unwrap();
    let (tag, winner, _) = race_for_one_tag(scratch.path(), &[]);
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(scratch.path().join("oci/models/fraud-detector/index.json")).unwrap(),
    )
    .unwrap();
    let holds: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        holds,
        [winner.as_str()],
        "the tag holds the passing run's image"
    );
}

#[test]
fn runs_racing_for_one_tag_on_a_registry_leave_it_on_exactly_one() {
    let registry = backend("WHARF_TEST_REGISTRY");
    let skopeo = backend("WHARF_TEST_SKOPEO");
    let scratch = tempfile::tempdir().unwrap();
    let repo = format!("concurrency/tag-{}", std::process::id());
    let (tag, winner, _) = race_for_one_tag(
        scratch.path(),
        &[
            ("WHARF__REGISTRY__URL", format!("http://{registry}")),
            ("WHARF__REGISTRY__REPOSITORY", repo.clone()),
        ],
    );
    let raw = Command::new(&skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{registry}/{repo}:{tag}"))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    use sha2::Digest as _;
    let held: String = sha2::Sha256::digest(&raw.stdout)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        format!("sha256:{held}"),
        winner,
        "the tag holds the passing run's image"
    );
}
