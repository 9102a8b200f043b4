#![allow(clippy::unwrap_used)]
//! The embedded default, [`FileAuditLog`]: the conformance suite, every kind of tampering
//! `verify` must name, bad input, and concurrent writers.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use wharf_audit::{Created, FileAuditLog, FileStore, Query, WormLog, WormStore, record_key};
use wharf_core::audit::{AppendOptions, ChainProblem, VerifyRange};
use wharf_core::conformance::run_record;
use wharf_core::memory::HmacSigner;
use wharf_core::{AuditEvent, AuditLog, Digest, ErrorKind};

fn all() -> VerifyRange {
    VerifyRange::default()
}

async fn append_n(log: &impl AuditLog, from: usize, n: usize) {
    for i in from..from + n {
        log.append(&run_record(&format!("run-{i}")), &AppendOptions::default())
            .await
            .unwrap();
    }
}

/// Make a record writable again, as someone with root on the machine could.
fn unlock(path: &Path) {
    let mut perms = fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(path, perms).unwrap();
}

fn record_path(dir: &Path, seq: u64) -> std::path::PathBuf {
    dir.join(record_key(seq))
}

#[tokio::test(flavor = "multi_thread")]
async fn conforms_and_records_are_read_only_canonical_json() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    wharf_core::conformance::audit_log(&log).await;
    let path = record_path(dir.path(), 0);
    assert!(fs::metadata(&path).unwrap().permissions().readonly());
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        text.trim_end().as_bytes(),
        wharf_core::audit::canonical_json(&value),
        "stored bytes are the canonical form"
    );
}

/// An auditor with nothing but Python recomputes every hash: parse, drop `hash`, sort keys,
/// no whitespace, SHA-256 — and gets the stored hashes and links.
#[tokio::test(flavor = "multi_thread")]
async fn hashes_recompute_with_an_independent_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    let mut ev = run_record("run-é-\u{1f600}");
    if let AuditEvent::Run(r) = &mut ev {
        r.stages[0].summary = "quotes \" backslash \\ tab \t nul \u{0} é".into();
        r.stages[0].details = serde_json::json!({"accuracy": 0.93, "n": 1000, "z": [1.5, -2]});
    }
    log.append(&ev, &AppendOptions::default()).await.unwrap();
    append_n(&log, 0, 3).await;
    let script = r#"
import hashlib, json, os, sys
d = sys.argv[1]
prev = None
for name in sorted(os.listdir(d)):
    rec = json.loads(open(os.path.join(d, name), encoding="utf-8").read())
    stated = rec.pop("hash")
    canon = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()
    assert h == stated, (name, h, stated)
    assert rec["prev_hash"] == prev, name
    prev = h
print(len(os.listdir(d)), "ok")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir.path().join("records"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4 ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_changed_byte_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    append_n(&log, 0, 6).await;
    let p = record_path(dir.path(), 3);
    unlock(&p);
    let text = fs::read_to_string(&p)
        .unwrap()
        .replacen("run-3", "run-X", 1);
    fs::write(&p, text).unwrap();
    let report = log.verify_with(&all(), None).await.unwrap();
    assert_eq!(
        report.problems,
        [ChainProblem::HashMismatch { sequence: 3 }],
        "{report}"
    );
    assert_eq!(report.first_problem, Some(3));
    // Reading it refuses it too.
    let err = log.read(3).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("was altered"), "{err}");
}

/// Rewriting a record with a valid hash breaks the next link.
#[tokio::test(flavor = "multi_thread")]
async fn a_rehashed_record_breaks_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    append_n(&log, 0, 5).await;
    let original = log.read(2).await.unwrap();
    let forged = wharf_core::audit::StoredRecord::chain(
        2,
        original.prev_hash.clone(),
        original.recorded_at,
        run_record("run-forged"),
    )
    .unwrap();
    let p = record_path(dir.path(), 2);
    unlock(&p);
    let mut bytes = wharf_core::audit::canonical_json(&serde_json::to_value(&forged).unwrap());
    bytes.push(b'\n');
    fs::write(&p, bytes).unwrap();
    let report = log.verify_with(&all(), None).await.unwrap();
    assert_eq!(
        report.problems,
        [ChainProblem::BrokenLink { sequence: 3 }],
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_reorder_and_replay_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    append_n(&log, 0, 10).await;
    // Delete 2; swap 4 and 5; replay 1 as a new record 10.
    fs::remove_file(record_path(dir.path(), 2)).unwrap();
    let (p4, p5) = (record_path(dir.path(), 4), record_path(dir.path(), 5));
    let tmp = dir.path().join("swap");
    fs::rename(&p4, &tmp).unwrap();
    fs::rename(&p5, &p4).unwrap();
    fs::rename(&tmp, &p5).unwrap();
    fs::copy(record_path(dir.path(), 1), record_path(dir.path(), 10)).unwrap();

    let report = log.verify_with(&all(), None).await.unwrap();
    let p = &report.problems;
    assert!(
        p.contains(&ChainProblem::Gap { first: 2, last: 2 }),
        "{report}"
    );
    assert!(
        p.contains(&ChainProblem::OutOfOrder {
            position: 4,
            claims: 5
        }),
        "{report}"
    );
    assert!(
        p.contains(&ChainProblem::OutOfOrder {
            position: 5,
            claims: 4
        }),
        "{report}"
    );
    assert!(
        p.contains(&ChainProblem::Replay {
            sequence: 10,
            original: 1
        }),
        "{report}"
    );
    assert_eq!(report.first_problem, Some(2));
    let text = report.to_string();
    assert!(text.contains("record 2 is missing"), "{text}");
    assert!(
        text.contains("record 10 is a replayed copy of record 1"),
        "{text}"
    );
    // Nothing else: no false alarms around the damage.
    assert_eq!(p.len(), 5, "{report}"); // + the link at 6 (after the swap)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_record_of_the_same_run_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    append_n(&log, 0, 3).await;
    // The log refuses to record run-1 again with other content (its claim names the first)…
    let err = log
        .append(&run_record("run-1"), &AppendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string().contains("records/000000000001.json"),
        "{err}"
    );
    assert!(log.verify_with(&all(), None).await.unwrap().is_intact());
    // …so a second record can only be written around it, straight into the store; verify
    // names it.
    let head = log.read(2).await.unwrap();
    let forged = wharf_core::audit::StoredRecord::chain(
        3,
        Some(head.hash.clone()),
        head.recorded_at,
        run_record("run-1"),
    )
    .unwrap();
    let bytes = wharf_core::audit::canonical_json(&serde_json::to_value(&forged).unwrap());
    assert_eq!(
        log.store()
            .create(&record_key(3), Bytes::from(bytes))
            .await
            .unwrap(),
        Created::Stored
    );
    let report = log.verify_with(&all(), None).await.unwrap();
    assert_eq!(
        report.problems,
        [ChainProblem::Duplicate {
            sequence: 3,
            original: 1,
            run_id: "run-1".into()
        }]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_checkpoints_catch_a_truncated_tail_and_a_rewritten_chain() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(HmacSigner::new(b"checkpoint key"));
    let log = FileAuditLog::open(dir.path())
        .unwrap()
        .with_signer(key.clone())
        .checkpoint_every(5);
    append_n(&log, 0, 12).await;
    let report = log.verify_with(&all(), Some(key.as_ref())).await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checkpoints_verified, 2, "checkpoints at 4 and 9");
    assert_eq!(report.last_checkpoint, Some(9));
    assert_eq!(report.unanchored(), 2);
    // Without the key, checkpoints are not silently trusted: they are counted as unverified.
    let unkeyed = log.verify_with(&all(), None).await.unwrap();
    assert_eq!(
        (unkeyed.checkpoints_verified, unkeyed.checkpoints_unverified),
        (0, 2)
    );

    // A wrong key: every checkpoint is named.
    let other = HmacSigner::new(b"another key");
    let report = log.verify_with(&all(), Some(&other)).await.unwrap();
    assert_eq!(report.problems.len(), 2, "{report}");
    assert!(matches!(
        report.problems[0],
        ChainProblem::BadCheckpoint { checkpoint: 4, .. }
    ));

    // Truncate the tail after the checkpoint at 9: records 7..=11 gone.
    for s in 7..12 {
        fs::remove_file(record_path(dir.path(), s)).unwrap();
    }
    let report = log.verify_with(&all(), Some(key.as_ref())).await.unwrap();
    assert_eq!(
        report.problems,
        [ChainProblem::Truncated {
            checkpoint: 9,
            last: Some(6)
        }],
        "{report}"
    );
    assert!(report.to_string().contains("truncated"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_catches_a_consistently_rewritten_chain() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(HmacSigner::new(b"k"));
    let log = FileAuditLog::open(dir.path())
        .unwrap()
        .with_signer(key.clone())
        .checkpoint_every(4);
    append_n(&log, 0, 4).await;
    // Rewrite the whole chain consistently (every hash and link valid) in a second directory
    // and copy it over: only the signed checkpoint at 3 shows it.
    let forged_dir = tempfile::tempdir().unwrap();
    let forged = FileAuditLog::open(forged_dir.path()).unwrap();
    append_n(&forged, 100, 4).await;
    for s in 0..4 {
        let p = record_path(dir.path(), s);
        unlock(&p);
        fs::remove_file(&p).unwrap();
        fs::copy(record_path(forged_dir.path(), s), &p).unwrap();
    }
    let report = log.verify_with(&all(), Some(key.as_ref())).await.unwrap();
    assert_eq!(
        report.problems,
        [ChainProblem::CheckpointMismatch { checkpoint: 3 }],
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_verifies_from_its_predecessor() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    append_n(&log, 0, 8).await;
    let mut range = VerifyRange::default();
    range.from = Some(3);
    range.to = Some(5);
    let report = log.verify_with(&range, None).await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.checked, report.last_sequence), (3, Some(5)));
    // Damage outside the range does not show; inside it does.
    fs::remove_file(record_path(dir.path(), 7)).unwrap();
    assert!(log.verify_with(&range, None).await.unwrap().is_intact());
    fs::remove_file(record_path(dir.path(), 4)).unwrap();
    let report = log.verify_with(&range, None).await.unwrap();
    assert_eq!(report.problems, [ChainProblem::Gap { first: 4, last: 4 }]);
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_json_lines_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    append_n(&log, 0, 5).await;
    let mut out = Vec::new();
    let mut range = VerifyRange::default();
    range.from = Some(1);
    range.to = Some(3);
    let report = log.export(&range, None, &mut out).await.unwrap();
    assert!(report.is_intact());
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(lines[2]["hash"], report.head.clone().unwrap().to_string());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["checked"], 3);
    assert_eq!(json["problems"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn query_by_run_digest_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = time::macros::datetime!(2026-11-22 10:00 UTC);
    let minutes = Arc::new(AtomicI64::new(0));
    let m = minutes.clone();
    let log = FileAuditLog::open(dir.path())
        .unwrap()
        .with_clock(move || t0 + time::Duration::minutes(m.load(Ordering::SeqCst)));
    let digest = Digest::sha256_of(b"image");
    for i in 0..6 {
        minutes.store(i * 10, Ordering::SeqCst);
        let mut ev = run_record(&format!("run-{i}"));
        if let AuditEvent::Run(r) = &mut ev
            && i % 2 == 0
        {
            r.image_digest = Some(digest.clone());
        }
        log.append(&ev, &AppendOptions::default()).await.unwrap();
    }
    let by_run = log.find_run("run-4").await.unwrap().unwrap();
    assert_eq!(by_run.sequence, 4);
    assert!(log.find_run("run-9").await.unwrap().is_none());
    let by_digest = log
        .query(&Query::default().image_digest(digest))
        .await
        .unwrap();
    assert_eq!(
        by_digest.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [0, 2, 4]
    );
    let by_time = log
        .query(&Query::default().between(
            Some(t0 + time::Duration::minutes(15)),
            Some(t0 + time::Duration::minutes(40)),
        ))
        .await
        .unwrap();
    assert_eq!(
        by_time.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [2, 3]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clock_that_goes_backwards_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = time::macros::datetime!(2026-11-22 10:00 UTC);
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let log = FileAuditLog::open(dir.path())
        .unwrap()
        .with_clock(move || t0 + time::Duration::seconds(o.load(Ordering::SeqCst)));
    append_n(&log, 0, 1).await;
    offset.store(-30, Ordering::SeqCst); // within the tolerated skew
    append_n(&log, 1, 1).await;
    offset.store(-3600, Ordering::SeqCst);
    let err = log
        .append(&run_record("late"), &AppendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("clock went backwards"), "{err}");
    assert_eq!(
        log.head().await.unwrap().unwrap().sequence,
        1,
        "nothing written"
    );
    assert!(log.verify_with(&all(), None).await.unwrap().is_intact());
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_non_utf8_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path())
        .unwrap()
        .max_record_bytes(4096);
    let mut ev = run_record("big");
    if let AuditEvent::Run(r) = &mut ev {
        r.stages[0].summary = "x".repeat(5000);
    }
    let err = log
        .append(&ev, &AppendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.to_string().contains("over the 4096-byte limit"),
        "{err}"
    );
    assert!(log.head().await.unwrap().is_none(), "nothing half-written");

    append_n(&log, 0, 3).await;
    let p = record_path(dir.path(), 1);
    unlock(&p);
    let mut bytes = fs::read(&p).unwrap();
    let at = bytes.windows(5).position(|w| w == b"run-1").unwrap();
    bytes[at] = 0xff;
    fs::write(&p, bytes).unwrap();
    let report = log.verify_with(&all(), None).await.unwrap();
    assert!(
        matches!(&report.problems[..], [ChainProblem::Unreadable { sequence: 1, reason }] if reason.starts_with("not UTF-8")),
        "{report}"
    );
    let err = log.read(1).await.unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    assert!(err.to_string().contains("000000000001.json"), "{err}");
}

/// A store that hands back something other than what was written.
#[derive(Debug)]
struct Lying(FileStore);

#[async_trait]
impl WormStore for Lying {
    async fn create(&self, key: &str, bytes: Bytes) -> wharf_core::Result<Created> {
        self.0.create(key, bytes).await
    }
    async fn get(&self, key: &str) -> wharf_core::Result<Option<Bytes>> {
        Ok(self.0.get(key).await?.map(|b| {
            let mut v = b.to_vec();
            v.insert(1, b' ');
            Bytes::from(v)
        }))
    }
    async fn list(&self, prefix: &str) -> wharf_core::Result<Vec<String>> {
        self.0.list(prefix).await
    }
    fn location(&self, key: &str) -> String {
        self.0.location(key)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_returns_another_object_fails_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = WormLog::new(Lying(FileStore::open(dir.path()).unwrap()));
    let err = log
        .append(&run_record("r"), &AppendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("different object"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_directory_fails_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path().join("gone")).unwrap();
    fs::remove_dir_all(log.dir()).unwrap();
    fs::write(log.dir(), b"a file where the directory was").unwrap();
    let err = log
        .append(&run_record("r"), &AppendOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("audit"), "{err}");
}

/// 8 writers (separate logs over one directory, as separate processes would be) append
/// 1,000 records each: one linear chain of 8,000, no gaps, no forks.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn eight_writers_make_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let logs: Vec<FileAuditLog> = (0..8)
        .map(|_| FileAuditLog::open(dir.path()).unwrap().verify_writes(false))
        .collect();
    let writers: Vec<&dyn AuditLog> = logs.iter().map(|l| l as &dyn AuditLog).collect();
    tokio::time::timeout(
        Duration::from_secs(300),
        wharf_core::conformance::audit_log_writers(&writers, 1000),
    )
    .await
    .unwrap();
}

/// The hash is over the canonical form, not the bytes: a record reformatted (pretty-printed,
/// keys reordered) is the same record and still verifies — through the slow path that
/// canonicalizes — while a changed value does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_reformatted_record_is_the_same_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path()).unwrap();
    append_n(&log, 0, 3).await;
    let p = record_path(dir.path(), 1);
    unlock(&p);
    let value: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    fs::write(&p, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let report = log.verify_with(&all(), None).await.unwrap();
    assert!(report.is_intact(), "{report}");
    let pretty = fs::read_to_string(&p).unwrap().replace("run-1", "run-9");
    fs::write(&p, pretty).unwrap();
    let report = log.verify_with(&all(), None).await.unwrap();
    assert_eq!(
        report.problems,
        [ChainProblem::HashMismatch { sequence: 1 }],
        "{report}"
    );
}
