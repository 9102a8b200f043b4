//! The audit log and the command line as a user meets them, with the built `xtask` binary:
//! a run after the newest record was deleted fails (exit 4) instead of reusing its signed
//! sequence; ranges that cannot be verified are refused naming the flags; an unknown run is
//! "no run"; and no command panics when its output pipe closes (`… | head`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const TEST_KEY_PASSWORD: &str = "wharf-canary-cosign-password-Hd27Kp";
const BLOCKED_MANIFEST: &str = "examples/models/fraud-detector/invalid-min_f1.yaml";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `xtask <subcommand>` from the repository root with the audit log, keys and OCI layout
/// in `scratch` (nothing is written into the checkout).
fn xtask(scratch: &Path, subcommand: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg(subcommand)
        .current_dir(root())
        .env("WHARF__AUDIT__DIR", scratch.join("audit"))
        .env(
            "WHARF__AUDIT__CHECKPOINT_KEY",
            scratch.join("keys/audit-checkpoint.pem"),
        )
        .env("WHARF__SIGN__KEY", scratch.join("keys/cosign.key"))
        .env("COSIGN_PASSWORD", TEST_KEY_PASSWORD)
        .env("WHARF__REGISTRY__LAYOUT", scratch.join("oci"))
        .env("WHARF__DEPLOY__GITOPS_REPO", scratch.join("gitops"))
        .env_remove("RUST_BACKTRACE");
    cmd
}

/// A blocked run of the example (governance refuses it: fast, and recorded).
fn blocked_run(scratch: &Path) -> Output {
    xtask(scratch, "pipeline")
        .args(["--manifest", BLOCKED_MANIFEST])
        .output()
        .unwrap()
}

fn audit(scratch: &Path, args: &[&str]) -> Output {
    xtask(scratch, "audit").args(args).output().unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// The command exited with `code`; otherwise fail showing its output.
fn assert_exit(out: &Output, code: i32, context: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{context}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Exit 2 with one line on stderr that holds every one of `needles`.
fn assert_refused(out: &Output, needles: &[&str]) {
    assert_exit(out, 2, "refused as bad input");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
}

fn record(scratch: &Path, seq: u64) -> PathBuf {
    scratch.join(format!("audit/records/{seq:012}.json"))
}

/// Delete a read-only record, as someone with write access to the directory can.
fn delete(path: &Path) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
    std::fs::remove_file(path).unwrap();
}

/// Grow the log to `n` records with copies of record 0 (a real run's record) under new run
/// ids, appended through the library as further runs would be.
fn grow_log(scratch: &Path, n: u64) {
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record(scratch, 0)).unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = wharf_audit::FileAuditLog::open(scratch.join("audit")).unwrap();
        let have = wharf_core::AuditLog::head(&log).await.unwrap().unwrap();
        for i in have.sequence + 1..n {
            let mut event = stored["event"].clone();
            event["run_id"] = format!("run-copy-{i}").into();
            let event: wharf_core::AuditEvent = serde_json::from_value(event).unwrap();
            wharf_core::AuditLog::append(&log, &event, &Default::default())
                .await
                .unwrap();
        }
    });
}

#[test]
fn a_run_after_the_newest_record_was_deleted_fails_with_exit_4() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    for _ in 0..2 {
        assert_exit(&blocked_run(s), 1, "a blocked run");
    }
    assert!(s.join("audit/checkpoints/000000000001.json").exists());
    delete(&record(s, 1));

    let out = blocked_run(s);
    assert_exit(&out, 4, "the append is refused, so the run fails");
    let stderr = text(&out.stderr);
    for needle in [
        "its audit record could not be written",
        "a checkpoint for record 1 exists",
        "would reuse sequence 1",
        "run `cargo xtask audit verify`",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!record(s, 1).exists(), "sequence 1 is not reused");
    // Every later run fails the same way until the record is restored, and verify names it.
    assert_exit(&blocked_run(s), 4, "still refused");
    let out = audit(s, &["verify"]);
    assert_exit(&out, 1, "verify finds the cut tail");
    assert!(
        text(&out.stdout).contains("checkpoint 1 is signed but the last record is 0"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn ranges_that_cannot_be_verified_are_refused_naming_the_flags() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    assert_exit(&blocked_run(s), 1, "a blocked run");
    grow_log(s, 12);
    assert_refused(
        &audit(s, &["verify", "--from", "10", "--to", "5"]),
        &["--from 10 is after --to 5", "the range is empty"],
    );
    let export = s.join("export.jsonl");
    let export_arg = export.to_str().unwrap();
    assert_refused(
        &audit(
            s,
            &["export", "--out", export_arg, "--from", "10", "--to", "5"],
        ),
        &["--from 10 is after --to 5"],
    );
    assert!(!export.exists(), "nothing is exported for a refused range");
    assert_refused(
        &audit(
            s,
            &[
                "query",
                "--since",
                "2026-12-01T00:00:00Z",
                "--until",
                "2026-11-01T00:00:00Z",
            ],
        ),
        &[
            "--since 2026-12-01T00:00:00Z is not before --until 2026-11-01T00:00:00Z",
            "the time range is empty",
        ],
    );

    // Past the end: the log's length, not a record that was never there.
    let out = audit(s, &["verify", "--from", "1000"]);
    assert_refused(
        &out,
        &[
            "starts at record 1000, past the end of the log",
            "has 12 records (0..11)",
        ],
    );
    assert!(!text(&out.stderr).contains("999"), "{}", text(&out.stderr));
    assert_refused(
        &audit(s, &["export", "--out", export_arg, "--from", "1000"]),
        &["has 12 records (0..11)"],
    );
    // A one-record range and the (still empty) range after the head verify.
    assert_exit(
        &audit(s, &["verify", "--from", "1", "--to", "1"]),
        0,
        "one record",
    );
    assert_exit(&audit(s, &["verify", "--from", "12"]), 0, "nothing new yet");
}

#[test]
fn show_of_an_unknown_run_says_there_is_no_such_run() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    assert_exit(&blocked_run(s), 1, "a blocked run");
    let out = audit(s, &["show", "run-nope"]);
    let dir = s.join("audit");
    assert_refused(
        &out,
        &[&format!(
            "no run run-nope in the audit log at {}",
            dir.display()
        )],
    );
    assert!(
        !text(&out.stderr).contains("000000000000.json"),
        "no record file is named: {}",
        text(&out.stderr)
    );
}

/// Run `cmd` with stdout a pipe whose reader has gone before the command writes anything;
/// return its exit code and stderr.
fn with_stdout_closed(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stderr))
}

fn assert_no_panic(code: Option<i32>, stderr: &str, context: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("failed printing"),
        "{context}: {stderr}"
    );
    assert_ne!(code, Some(101), "{context}: exit 101 is a panic: {stderr}");
}

#[test]
fn a_closed_stdout_pipe_ends_the_output_without_a_panic() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();

    // A run whose reader is gone still writes its record and exits with its own code.
    let mut run = xtask(s, "pipeline");
    run.args(["--manifest", BLOCKED_MANIFEST]);
    let (code, stderr) = with_stdout_closed(run);
    assert_no_panic(code, &stderr, "pipeline");
    assert_eq!(code, Some(1), "blocked, as without the pipe: {stderr}");
    assert!(record(s, 0).exists(), "the run is recorded");

    for args in [&["verify"][..], &["verify", "--json"], &["query"]] {
        let mut cmd = xtask(s, "audit");
        cmd.args(args);
        let (code, stderr) = with_stdout_closed(cmd);
        assert_no_panic(code, &stderr, &format!("audit {args:?}"));
        assert_eq!(code, Some(0), "audit {args:?}: {stderr}");
    }

    // `cargo xtask backends status | head`: whatever state the backends are in.
    let mut status = Command::new(env!("CARGO_BIN_EXE_xtask"));
    status.args(["backends", "status"]).current_dir(root());
    let (code, stderr) = with_stdout_closed(status);
    assert_no_panic(code, &stderr, "backends status");
    assert_eq!(code, Some(0), "backends status: {stderr}");
}

/// `cargo xtask audit query --json | head -1` on a log whose output is larger than a pipe
/// holds: the command is blocked writing when the reader leaves after one line.
#[test]
fn a_reader_that_leaves_after_one_line_does_not_crash_a_long_listing() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    assert_exit(&blocked_run(s), 1, "a blocked run");
    // ~300 KB of JSON lines, several times what a pipe holds (64 KiB).
    grow_log(s, 150);
    let size: u64 = std::fs::read_dir(s.join("audit/records"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(size > 4 * 65536, "{size} bytes of records");

    let mut child = xtask(s, "audit")
        .args(["query", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("\"sequence\":0"), "{first}");
    drop(reader);
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_no_panic(out.status.code(), &stderr, "audit query --json | head -1");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
