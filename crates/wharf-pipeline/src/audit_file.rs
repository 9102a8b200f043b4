//! The embedded default audit log: one write-once, read-only JSON file per record in a
//! directory, hash-chained. (The WORM store with checkpoints and S3 Object Lock arrives
//! with `wharf-audit`; this keeps every run recorded until then, under the same contract.)

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;
use wharf_core::audit::{
    AppendOptions, AuditReceipt, ChainReport, StoredRecord, VerifyRange, verify_chain,
};
use wharf_core::{AuditEvent, AuditLog, Error, ErrorKind, Result};

/// Largest record accepted, so a runaway stage cannot fill the disk through the audit log.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Hash-chained audit records as files `<dir>/<sequence:012>.json`, created with
/// `O_EXCL` (two writers can never both take a sequence number) and made read-only.
#[derive(Debug)]
pub struct FileAuditLog {
    dir: PathBuf,
    lock: Mutex<()>,
}

impl FileAuditLog {
    /// Open (creating if needed) the log in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| {
            Error::new(
                ErrorKind::Denied,
                format!("cannot create audit directory {}: {e}", dir.display()),
            )
            .with_source(e)
        })?;
        Ok(Self {
            dir,
            lock: Mutex::new(()),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record of run `run_id`, if the log holds one (a scan: the file log has no index).
    pub fn find_run(&self, run_id: &str) -> Result<Option<StoredRecord>> {
        for s in self.sequences()?.into_iter().rev() {
            let rec = self.read_path(&self.path_of(s), s)?;
            if rec.event.run_id() == run_id {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }

    fn path_of(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("{sequence:012}.json"))
    }

    /// Sequence numbers present, sorted.
    fn sequences(&self) -> Result<Vec<u64>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| {
            Error::internal(format!(
                "cannot list audit directory {}: {e}",
                self.dir.display()
            ))
            .with_source(e)
        })?;
        let mut seqs: Vec<u64> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    fn read_path(&self, path: &Path, sequence: u64) -> Result<StoredRecord> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == IoKind::NotFound => {
                return Err(Error::not_found(format!(
                    "audit record {sequence} does not exist in {}",
                    self.dir.display()
                )));
            }
            Err(e) => {
                return Err(
                    Error::internal(format!("cannot read {}: {e}", path.display())).with_source(e),
                );
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::integrity(format!(
                "audit record {} is not a valid record: {e}",
                path.display()
            ))
            .with_source(e)
        })
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut f: File = OpenOptions::new().write(true).create_new(true).open(path)?;
        let written = f.write_all(bytes).and_then(|()| f.sync_all());
        if let Err(e) = written {
            // Do not leave a torn record behind to break the chain.
            drop(f);
            let _ = fs::remove_file(path);
            return Err(e);
        }
        let mut perms = f.metadata()?.permissions();
        perms.set_readonly(true);
        fs::set_permissions(path, perms)?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[async_trait]
impl AuditLog for FileAuditLog {
    async fn append(&self, event: &AuditEvent, _opts: &AppendOptions) -> Result<AuditReceipt> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another process may append at the same time: create_new fails with AlreadyExists
        // and we re-read the head and try the next number.
        for _ in 0..64 {
            let head = self.sequences()?.last().copied();
            let (sequence, prev) = match head {
                Some(s) => (s + 1, Some(self.read_path(&self.path_of(s), s)?.hash)),
                None => (0, None),
            };
            let rec =
                StoredRecord::chain(sequence, prev, OffsetDateTime::now_utc(), event.clone())?;
            let mut bytes = serde_json::to_vec_pretty(&rec)
                .map_err(|e| Error::invalid(format!("audit record cannot be serialized: {e}")))?;
            bytes.push(b'\n');
            if bytes.len() > MAX_RECORD_BYTES {
                return Err(Error::invalid(format!(
                    "audit record for run {} is {} bytes, over the {MAX_RECORD_BYTES}-byte limit: put large evidence in storage and record its digest",
                    event.run_id(),
                    bytes.len()
                )));
            }
            let path = self.path_of(sequence);
            match self.write_new(&path, &bytes) {
                Ok(()) => {
                    return Ok(AuditReceipt::new(
                        sequence,
                        rec.hash,
                        path.display().to_string(),
                    ));
                }
                Err(e) if e.kind() == IoKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Denied,
                        format!("cannot write audit record {}: {e}", path.display()),
                    )
                    .with_source(e));
                }
            }
        }
        Err(Error::new(
            ErrorKind::Transient,
            "audit log is contended: 64 attempts to append lost the race",
        ))
    }

    async fn read(&self, sequence: u64) -> Result<StoredRecord> {
        let rec = self.read_path(&self.path_of(sequence), sequence)?;
        if rec.sequence != sequence {
            return Err(Error::integrity(format!(
                "audit file {} claims sequence {}",
                self.path_of(sequence).display(),
                rec.sequence
            )));
        }
        Ok(rec)
    }

    async fn head(&self) -> Result<Option<AuditReceipt>> {
        match self.sequences()?.last() {
            None => Ok(None),
            Some(&s) => {
                let path = self.path_of(s);
                let rec = self.read_path(&path, s)?;
                Ok(Some(AuditReceipt::new(
                    s,
                    rec.hash,
                    path.display().to_string(),
                )))
            }
        }
    }

    async fn verify(&self, range: &VerifyRange) -> Result<ChainReport> {
        let from = range.from.unwrap_or(0);
        let to = range.to.unwrap_or(u64::MAX);
        let mut records = Vec::new();
        for s in self
            .sequences()?
            .into_iter()
            .filter(|s| (from..=to).contains(s))
        {
            records.push(self.read_path(&self.path_of(s), s)?);
        }
        let expected_prev = match from.checked_sub(1) {
            Some(p) => Some(self.read(p).await?.hash),
            None => None,
        };
        Ok(verify_chain(&records, expected_prev.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn conforms() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileAuditLog::open(dir.path().join("audit")).unwrap();
        block_on(wharf_core::conformance::audit_log(&log));
        let meta = fs::metadata(log.path_of(0)).unwrap();
        assert!(meta.permissions().readonly(), "records are read-only");
    }

    #[test]
    fn tampering_and_deletion_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileAuditLog::open(dir.path()).unwrap();
        block_on(wharf_core::conformance::audit_log(&log));
        // Edit a record in place (as a root user could).
        let p = log.path_of(2);
        let mut perms = fs::metadata(&p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&p, perms).unwrap();
        let text = fs::read_to_string(&p)
            .unwrap()
            .replace("\"passed\"", "\"failed\"");
        fs::write(&p, text).unwrap();
        fs::remove_file(log.path_of(5)).unwrap();
        let report = block_on(log.verify(&VerifyRange::default())).unwrap();
        use wharf_core::audit::ChainProblem::*;
        assert!(
            report.problems.contains(&HashMismatch { sequence: 2 }),
            "{report:?}"
        );
        assert!(
            report.problems.contains(&Gap { after: 4, next: 6 }),
            "{report:?}"
        );
    }

    #[test]
    fn an_unwritable_directory_fails_the_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileAuditLog::open(dir.path().join("gone")).unwrap();
        fs::remove_dir(log.dir()).unwrap();
        fs::write(log.dir(), b"a file where the directory was").unwrap();
        let ev = AuditEvent::Run(sample());
        let err = block_on(log.append(&ev, &AppendOptions::default())).unwrap_err();
        assert!(err.to_string().contains("audit directory"), "{err}");
    }

    #[test]
    fn oversized_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileAuditLog::open(dir.path()).unwrap();
        let mut rec = sample();
        rec.stages[0].summary = "x".repeat(MAX_RECORD_BYTES);
        let err =
            block_on(log.append(&AuditEvent::Run(rec), &AppendOptions::default())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(
            block_on(log.head()).unwrap().is_none(),
            "nothing half-written"
        );
    }

    fn sample() -> wharf_core::RunRecord {
        let now = OffsetDateTime::now_utc();
        wharf_core::RunRecord {
            run_id: "r".into(),
            project: "p".into(),
            started_at: now,
            finished_at: now,
            environment: wharf_core::Environment::Dev,
            actor: wharf_core::Actor::local("u"),
            source_commit: None,
            model: None,
            image_digest: None,
            outcome: wharf_core::RunOutcome::Passed,
            stages: vec![wharf_core::StageRecord::new(
                "s",
                wharf_core::StageStatus::Passed,
                now,
                1,
                "ok",
            )],
        }
    }
}
