#![allow(clippy::unwrap_used)]
//! Deleted records on a store that allows deletes (files), and ranges that cannot be
//! verified: an append after a deleted tail is refused instead of reusing a signed
//! sequence, a cut tail is named whatever the range, and empty or out-of-log ranges are
//! refused with a message that says why.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_audit::{FileAuditLog, Query, record_key};
use wharf_core::audit::{AppendOptions, ChainProblem, VerifyRange};
use wharf_core::conformance::run_record;
use wharf_core::memory::HmacSigner;
use wharf_core::{AuditLog, ErrorKind};

const KEY: &[u8] = b"checkpoint key";

/// A fresh log over `dir`, as each `cargo xtask pipeline` process opens it.
fn open(dir: &Path, every: u64) -> FileAuditLog {
    FileAuditLog::open(dir)
        .unwrap()
        .with_signer(Arc::new(HmacSigner::new(KEY)))
        .checkpoint_every(every)
}

async fn append_n(log: &FileAuditLog, from: usize, n: usize) {
    for i in from..from + n {
        log.append(&run_record(&format!("run-{i}")), &AppendOptions::default())
            .await
            .unwrap();
    }
}

fn record(dir: &Path, seq: u64) -> PathBuf {
    dir.join(record_key(seq))
}

fn checkpoint(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("checkpoints/{seq:012}.json"))
}

/// Delete a read-only record or checkpoint, as someone with write access to the directory
/// can (making it writable first, as a careful intruder would).
fn delete(path: &Path) {
    let mut perms = fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(path, perms).unwrap();
    fs::remove_file(path).unwrap();
}

fn range(from: Option<u64>, to: Option<u64>) -> VerifyRange {
    let mut r = VerifyRange::default();
    r.from = from;
    r.to = to;
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_after_the_newest_record_was_deleted_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    append_n(&open(dir.path(), 1), 0, 3).await;
    let signed = fs::read(checkpoint(dir.path(), 2)).unwrap();
    delete(&record(dir.path(), 2));

    let err = open(dir.path(), 1)
        .append(&run_record("run-after"), &AppendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    let msg = err.to_string();
    for needle in [
        "a checkpoint for record 2 exists",
        "its newest record is 1",
        "would reuse sequence 2",
        "nothing was written",
        "run `cargo xtask audit verify`",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    }
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(
        !record(dir.path(), 2).exists(),
        "the deleted sequence is not reused"
    );
    assert_eq!(fs::read(checkpoint(dir.path(), 2)).unwrap(), signed);
    // And it stays refused, run after run, until the records are restored.
    assert!(
        open(dir.path(), 1)
            .append(&run_record("run-again"), &AppendOptions::default())
            .await
            .is_err()
    );
    // verify names the cut tail.
    let report = open(dir.path(), 1)
        .verify_with(&VerifyRange::default(), Some(&HmacSigner::new(KEY)))
        .await
        .unwrap();
    assert_eq!(
        report.problems,
        [ChainProblem::Truncated {
            checkpoint: 2,
            last: Some(1)
        }],
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_tail_behind_a_sparse_checkpoint_or_every_record_is_refused_too() {
    // Checkpoints at 4 and 9; records 7..=11 deleted: the head (6) is behind checkpoint 9.
    let dir = tempfile::tempdir().unwrap();
    append_n(&open(dir.path(), 5), 0, 12).await;
    for s in 7..12 {
        delete(&record(dir.path(), s));
    }
    let err = open(dir.path(), 5)
        .append(&run_record("run-after"), &AppendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(
        err.to_string().contains("a checkpoint for record 9 exists")
            && err.to_string().contains("records 7 to 9 were deleted"),
        "{err}"
    );
    assert!(!record(dir.path(), 7).exists());

    // Every record deleted: the log is not restarted at 0 under the old checkpoints.
    for s in 0..7 {
        delete(&record(dir.path(), s));
    }
    let err = open(dir.path(), 5)
        .append(&run_record("run-after"), &AppendOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("it holds no records"), "{err}");
    assert!(!record(dir.path(), 0).exists());
}

/// A writer that already knows the head (it wrote it) does not list checkpoints again; if
/// the record after it was deleted by then, the checkpoint collision is not taken as its
/// own checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_naming_another_record_is_not_taken_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 1);
    append_n(&first, 0, 1).await;
    append_n(&open(dir.path(), 1), 1, 1).await;
    delete(&record(dir.path(), 1));
    // `first` still has record 0 as its head: it writes record 1 again...
    append_n(&first, 2, 1).await;
    // ...but the stored checkpoint 1 names the deleted record, and is not claimed as its own.
    let err = first.checkpoint().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(
        err.to_string()
            .contains("already exists and does not name record 1"),
        "{err}"
    );
    let report = first
        .verify_with(&VerifyRange::default(), Some(&HmacSigner::new(KEY)))
        .await
        .unwrap();
    assert_eq!(
        report.problems,
        [ChainProblem::CheckpointMismatch { checkpoint: 1 }],
        "{report}"
    );
}

/// The documented limit of a store that allows deletes: the newest record and its
/// checkpoint both deleted leave a shorter log that is consistent in every way, so neither
/// the append nor `verify` can tell. Only WORM storage (or a copy of the last receipt kept
/// elsewhere) prevents it. Kept as a test so the README's statement stays true.
#[tokio::test(flavor = "multi_thread")]
async fn known_limit_the_newest_record_and_its_checkpoint_deleted_together_go_unseen() {
    let dir = tempfile::tempdir().unwrap();
    append_n(&open(dir.path(), 1), 0, 3).await;
    delete(&record(dir.path(), 2));
    delete(&checkpoint(dir.path(), 2));
    let log = open(dir.path(), 1);
    let receipt = log
        .append(&run_record("run-after"), &AppendOptions::default())
        .await
        .unwrap();
    assert_eq!(receipt.sequence, 2, "the deleted sequence is reused");
    let report = log
        .verify_with(&VerifyRange::default(), Some(&HmacSigner::new(KEY)))
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_tail_is_named_when_the_range_has_an_end_past_it() {
    let dir = tempfile::tempdir().unwrap();
    append_n(&open(dir.path(), 5), 0, 12).await;
    for s in 7..12 {
        delete(&record(dir.path(), s));
    }
    let log = open(dir.path(), 5);
    let key = HmacSigner::new(KEY);
    let report = log
        .verify_with(&range(Some(2), Some(100)), Some(&key))
        .await
        .unwrap();
    assert_eq!(
        report.problems,
        [ChainProblem::Truncated {
            checkpoint: 9,
            last: Some(6)
        }],
        "{report}"
    );
    // A range that ends before the cut does not see it.
    assert!(
        log.verify_with(&range(None, Some(6)), Some(&key))
            .await
            .unwrap()
            .is_intact()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inverted_range_is_refused_not_passed_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    append_n(&log, 0, 12).await;
    let err = log
        .verify_with(&range(Some(10), Some(5)), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.to_string()
            .contains("the range from record 10 to record 5 is empty"),
        "{err}"
    );
    let mut out = Vec::new();
    let err = log
        .export(&range(Some(10), Some(5)), None, &mut out)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(out.is_empty());
    // One record is a range.
    assert_eq!(
        log.verify_with(&range(Some(5), Some(5)), None)
            .await
            .unwrap()
            .checked,
        1
    );

    let mut q = Query::default();
    q.from_sequence = Some(10);
    q.to_sequence = Some(5);
    assert_eq!(log.query(&q).await.unwrap_err().kind(), ErrorKind::Invalid);
    let t = time::OffsetDateTime::now_utc();
    let err = log
        .query(&Query::default().between(Some(t), Some(t - time::Duration::hours(1))))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("time range is empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_past_the_end_says_how_long_the_log_is() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1);
    let err = log
        .verify_with(&range(Some(5), None), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("holds no records"), "{err}");
    append_n(&log, 0, 3).await;
    let err = log
        .verify_with(&range(Some(1000), None), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let msg = err.to_string();
    assert!(
        msg.contains("starts at record 1000, past the end of the log")
            && msg.contains("has 3 records (0..2)"),
        "{msg}"
    );
    assert!(!msg.contains("999"), "no record 999 is involved: {msg}");
    // Right after the newest record: nothing new yet, which is what an auditor checking
    // increments asks.
    let report = log.verify_with(&range(Some(3), None), None).await.unwrap();
    assert!(report.is_intact() && report.checked == 0, "{report}");
    // A missing record inside the log is still named as such.
    delete(&record(dir.path(), 1));
    let err = log
        .verify_with(&range(Some(2), None), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("record 1 does not exist"), "{err}");
}
