//! `cargo xtask pipeline` on hostile and broken input, as a user runs it: every run that
//! gets as far as the audit log ends in exactly one record, under the record size limit;
//! manifests are bounded (size, nesting, alias expansion) and refused quickly as bad
//! input; refusals before the run starts are recorded; each cause is named once.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The password of the tests' signing keys: must never show in output or records.
const TEST_KEY_PASSWORD: &str = "wharf-canary-cosign-password-Hd27Kp";

/// The audit log's record size limit (wharf-audit's `DEFAULT_MAX_RECORD_BYTES`).
const MAX_RECORD_BYTES: u64 = 1 << 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `xtask pipeline` run from the repository root, with the audit log in `scratch/records`,
/// keys in `scratch/keys` and the OCI layout in `scratch/oci`.
fn pipeline(scratch: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("pipeline")
        .current_dir(root())
        .env("WHARF__AUDIT__DIR", scratch.join("records"))
        .env(
            "WHARF__AUDIT__CHECKPOINT_KEY",
            scratch.join("keys/audit-checkpoint.pem"),
        )
        .env("WHARF__SIGN__KEY", scratch.join("keys/cosign.key"))
        .env("COSIGN_PASSWORD", TEST_KEY_PASSWORD)
        .env("WHARF__REGISTRY__LAYOUT", scratch.join("oci"))
        .env("WHARF__DEPLOY__GITOPS_REPO", scratch.join("gitops"));
    cmd
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn all(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// The command exited with `code`; otherwise fail showing its output.
fn assert_exit(out: &Output, code: i32, context: &str) {
    assert_eq!(out.status.code(), Some(code), "{context}: {}", all(out));
}

/// The audit record files, in order.
fn records(scratch: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scratch.join("records/records"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The run stored in a record file.
fn run_of(record: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    v["event"].clone()
}

/// The example's dependencies, as its manifest lists them.
const EXAMPLE_DEPENDENCIES: &str =
    "dependencies:\n  - { name: numpy, version: 1.21.0 }\n  - { name: joblib, version: 1.1.0 }\n";

/// The example manifest with its `dependencies` replaced.
fn example_manifest_with(dependencies: &str) -> String {
    let text =
        std::fs::read_to_string(root().join("examples/models/fraud-detector/model.yaml")).unwrap();
    assert!(
        text.contains(EXAMPLE_DEPENDENCIES),
        "the example's dependencies changed"
    );
    text.replace(EXAMPLE_DEPENDENCIES, dependencies)
}

#[test]
fn thousands_of_unapproved_dependencies_block_in_one_record_under_the_limit() {
    let scratch = tempfile::tempdir().unwrap();
    // 5000 violations: their full list is over 1.5 MB of record, past the audit log's limit.
    let deps: String = (0..5000)
        .map(|i| format!("  - {{ name: unapproved-package-{i:05}, version: 1.0.{i} }}\n"))
        .collect();
    let manifest = scratch.path().join("model.yaml");
    std::fs::write(
        &manifest,
        example_manifest_with(&format!("dependencies:\n{deps}")),
    )
    .unwrap();
    let out = pipeline(scratch.path())
        .args(["--env", "prod", "--manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_exit(&out, 1, "blocked by governance, and recorded");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("1 of 10 rules violated (5000 violations) for fraud-detector 1.4.0"),
        "{stdout}"
    );
    assert!(stdout.contains("… and 4980 more violations"), "{stdout}");
    assert!(
        stdout.lines().count() < 60,
        "the first violations, not 5000 lines"
    );
    let files = records(scratch.path());
    assert_eq!(files.len(), 1, "exactly one record");
    let size = std::fs::metadata(&files[0]).unwrap().len();
    assert!(size < MAX_RECORD_BYTES / 4, "record of {size} bytes");
    let run = run_of(&files[0]);
    assert_eq!(run["outcome"], "blocked");
    let governance = &run["stages"][0];
    assert_eq!(governance["details"]["violation_count"], 5000);
    assert_eq!(
        governance["details"]["violations"][0]["rule"],
        "dependency_allowlist"
    );
    assert_eq!(governance["evidence"][1]["kind"], "policy-decision");
}

#[test]
fn an_alias_bomb_exits_2_quickly_in_bounded_memory_and_is_recorded() {
    let scratch = tempfile::tempdir().unwrap();
    // A 400 KB string repeated through 150 000 aliases: 60 GB if expanded. Under a 1 GB
    // address-space limit, the run must still finish and record.
    let bomb = example_manifest_with(&format!(
        "dependencies: []\nx-padding: &s \"{}\"\nx-bomb: [{}]\n",
        "x".repeat(400_000),
        ["*s"; 150_000].join(", ")
    ));
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let manifest = scratch.path().join("model.yaml");
    std::fs::write(&manifest, bomb).unwrap();
    let cmd = pipeline(scratch.path());
    let program = cmd.get_program().to_owned();
    let clock = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" pipeline --manifest \"$1\"")
        .arg(program)
        .arg(&manifest)
        .current_dir(root())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .unwrap();
    let elapsed = clock.elapsed();
    assert_exit(&out, 2, "bad input");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("YAML aliases expand"))
        .unwrap_or_else(|| panic!("{}", all(&out)));
    assert!(
        line.contains(&manifest.display().to_string()) && line.contains("no anchors or aliases"),
        "{line}"
    );
    assert!(!all(&out).contains("panicked"), "{}", all(&out));
    assert_eq!(records(scratch.path()).len(), 1, "recorded");
}

#[test]
fn a_deeply_nested_manifest_is_refused_in_under_a_second() {
    let scratch = tempfile::tempdir().unwrap();
    // 200 KB of nesting, which libyaml alone takes minutes on.
    let nested = example_manifest_with(&format!(
        "dependencies: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    ));
    let manifest = scratch.path().join("model.yaml");
    std::fs::write(&manifest, nested).unwrap();
    let clock = Instant::now();
    let out = pipeline(scratch.path())
        .args(["--json", "--manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        clock.elapsed() < Duration::from_secs(10),
        "{:?}",
        clock.elapsed()
    );
    assert_exit(&out, 2, "bad input");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let governance = &v["run"]["stages"][0];
    let summary = governance["summary"].as_str().unwrap();
    assert!(
        summary.contains("nest deeper than 64 levels, the manifest limit"),
        "{summary}"
    );
    assert!(
        governance["duration_ms"].as_u64().unwrap() < 1000,
        "refused in {} ms",
        governance["duration_ms"]
    );
    assert_eq!(records(scratch.path()).len(), 1);
}

#[test]
fn an_oversized_manifest_exits_2_naming_the_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let manifest = scratch.path().join("model.yaml");
    let big = format!(
        "{}# {}\n",
        example_manifest_with("dependencies: []\n"),
        "x".repeat(1 << 20)
    );
    std::fs::write(&manifest, big).unwrap();
    let out = pipeline(scratch.path())
        .arg("--manifest")
        .arg(&manifest)
        .output()
        .unwrap();
    assert_exit(&out, 2, "bad input");
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("FAIL  governance"))
        .unwrap();
    assert!(
        line.contains(&format!(
            "{}: is {} bytes, over the 1048576-byte (1 MiB) manifest limit",
            manifest.display(),
            std::fs::metadata(&manifest).unwrap().len()
        )),
        "{line}"
    );
    assert_eq!(records(scratch.path()).len(), 1);
}

#[test]
fn non_utf8_and_directories_are_bad_input_exit_2() {
    let scratch = tempfile::tempdir().unwrap();
    // A manifest with one byte that is not UTF-8, on line 10.
    let good = example_manifest_with("dependencies: []\n");
    let at = good.find("Scores card").unwrap();
    let mut bytes = good.clone().into_bytes();
    bytes.insert(at + "Scores ".len(), 0xff);
    let line = good[..at].matches('\n').count() + 1;
    let column = good[..at].rsplit('\n').next().unwrap().chars().count() + "Scores ".len() + 1;
    let latin1 = scratch.path().join("latin1.yaml");
    std::fs::write(&latin1, bytes).unwrap();
    // A model directory whose manifest lists a directory as an artifact.
    let model = scratch.path().join("model");
    std::fs::create_dir_all(model.join("weights")).unwrap();
    let artifacts = "  - { path: model.safetensors, role: weights }\n  - { path: predict.py, role: code }\n  - { path: train.py, role: code }\n  - { path: MODEL_CARD.md, role: doc }\n  - { path: requirements.txt, role: code }\n";
    assert!(good.contains(artifacts), "the example's artifacts changed");
    std::fs::write(
        model.join("model.yaml"),
        good.replace(artifacts, "  - { path: weights, role: weights }\n"),
    )
    .unwrap();
    let cases: Vec<(PathBuf, String)> = vec![
        (
            latin1.clone(),
            format!(
                "{}:{line}:{column}: not valid UTF-8 (byte offset {}): save the manifest as UTF-8",
                latin1.display(),
                at + "Scores ".len()
            ),
        ),
        (
            scratch.path().to_path_buf(),
            format!(
                "{}: is a directory, not a manifest file",
                scratch.path().display()
            ),
        ),
        (
            model.join("model.yaml"),
            format!("\"weights\" in {}: is a directory", model.display()),
        ),
    ];
    for (i, (manifest, needle)) in cases.into_iter().enumerate() {
        let out = pipeline(scratch.path())
            .arg("--manifest")
            .arg(&manifest)
            .output()
            .unwrap();
        assert_exit(&out, 2, &needle);
        assert!(
            all(&out).contains(&needle),
            "{needle:?} not in {}",
            all(&out)
        );
        assert_eq!(records(scratch.path()).len(), i + 1, "each run recorded");
    }
}

#[test]
fn a_wrong_key_password_in_prod_is_refused_and_recorded_without_the_password() {
    let scratch = tempfile::tempdir().unwrap();
    // The first run creates the signing key with the right password.
    let out = pipeline(scratch.path())
        .args(["--env", "prod"])
        .output()
        .unwrap();
    assert_exit(&out, 0, "first run");
    let wrong = "wharf-canary-wrong-password-Qv81Zt";
    for (n, password) in [(2, wrong), (3, "")] {
        let out = pipeline(scratch.path())
            .args(["--env", "prod"])
            .env("COSIGN_PASSWORD", password)
            .output()
            .unwrap();
        assert_exit(&out, 2, "refused: bad input");
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].starts_with("error: [sign] key "), "{stderr}");
        assert!(
            lines[0].contains("(refused before the run started; recorded as audit record #"),
            "{stderr}"
        );
        let files = records(scratch.path());
        assert_eq!(files.len(), n, "the refusal is one more record");
        let run = run_of(files.last().unwrap());
        assert_eq!(run["outcome"], "failed");
        assert_eq!(run["environment"], "prod");
        let stages = run["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 1, "{run}");
        assert_eq!(stages[0]["name"], "setup");
        assert_eq!(stages[0]["status"], "failed");
        let summary = stages[0]["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("error: refused before the run started: [sign] key "),
            "{summary}"
        );
        for secret in [wrong, TEST_KEY_PASSWORD] {
            assert!(!all(&out).contains(secret), "output shows a password");
            for f in &files {
                let record = std::fs::read_to_string(f).unwrap();
                assert!(!record.contains(secret), "{} holds a password", f.display());
            }
        }
    }
}

#[test]
fn each_missing_file_is_named_once_with_its_cause_once() {
    let scratch = tempfile::tempdir().unwrap();
    let keyless = scratch.path().join("keyless.toml");
    std::fs::write(
        &keyless,
        format!(
            "[project]\nname = \"x\"\n[model]\ndir = \"{}\"\n[sign]\nkey = \"keyless\"\ntrusted_root = \"/no/such/trusted_root.json\"\n",
            root().join("examples/models/fraud-detector").display()
        ),
    )
    .unwrap();
    let cases: Vec<(Vec<&std::ffi::OsStr>, &str)> = vec![
        (
            vec!["--config".as_ref(), "/no/such/wharf.toml".as_ref()],
            "cannot read /no/such/wharf.toml: No such file or directory (os error 2)",
        ),
        (
            vec!["--manifest".as_ref(), "/no/such/model.yaml".as_ref()],
            "cannot read /no/such/model.yaml: No such file or directory (os error 2)",
        ),
        (
            vec!["--config".as_ref(), keyless.as_os_str()],
            "[sign] trusted_root /no/such/trusted_root.json: No such file or directory (os error 2)",
        ),
    ];
    for (args, needle) in cases {
        let mut cmd = pipeline(scratch.path());
        if args.contains(&keyless.as_os_str()) {
            // The config's `key = "keyless"`, not the test key.
            cmd.env_remove("WHARF__SIGN__KEY")
                .env("SIGSTORE_ID_TOKEN", "not-a-real-token");
        }
        let out = cmd.args(args).output().unwrap();
        assert_exit(&out, 2, needle);
        let output = all(&out);
        assert!(output.contains(needle), "{needle:?} not in {output}");
        assert_eq!(
            output.matches("(os error 2)").count(),
            1,
            "the cause once: {output}"
        );
    }
}
