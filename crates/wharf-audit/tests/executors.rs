#![allow(clippy::unwrap_used)]
//! Every public call works on any executor: no Tokio runtime at all
//! (`futures::executor::block_on` on a plain thread, as the README does), a current-thread
//! runtime without timers or I/O, and a multi-thread runtime. Before, `verify_with`, `query`
//! and `export` panicked outside a runtime ("there is no reactor running").

use std::sync::Arc;

use wharf_audit::{FileAuditLog, Query};
use wharf_core::AuditLog;
use wharf_core::audit::{AppendOptions, VerifyRange};
use wharf_core::conformance::run_record;
use wharf_core::memory::HmacSigner;

/// Append, checkpoint, verify, query, export, read: the whole surface an auditor uses.
async fn exercise(dir: std::path::PathBuf) {
    let key = Arc::new(HmacSigner::new(b"executors test key"));
    let log = FileAuditLog::open(&dir)
        .unwrap()
        .with_signer(key.clone())
        .checkpoint_every(2);
    for i in 0..5 {
        log.append(&run_record(&format!("run-{i}")), &AppendOptions::default())
            .await
            .unwrap();
    }
    let report = log
        .verify_with(
            &VerifyRange::default(),
            Some(key.as_ref() as &dyn wharf_core::Verifier),
        )
        .await
        .unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checked, 5);
    assert!(
        AuditLog::verify(&log, &VerifyRange::default())
            .await
            .unwrap()
            .is_intact()
    );
    let found = log.query(&Query::default().run_id("run-3")).await.unwrap();
    assert_eq!(found.len(), 1);
    let mut out = Vec::new();
    let exported = log
        .export(&VerifyRange::default(), None, &mut out)
        .await
        .unwrap();
    assert!(exported.is_intact());
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 5);
    assert!(log.checkpoint().await.unwrap().is_some());
}

#[test]
fn without_any_runtime() {
    let dir = tempfile::tempdir().unwrap();
    futures::executor::block_on(exercise(dir.path().to_path_buf()));
}

#[test]
fn on_a_current_thread_runtime_without_timers_or_io() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(exercise(dir.path().to_path_buf()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    exercise(dir.path().to_path_buf()).await;
}
