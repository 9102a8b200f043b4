//! [`WormLog`]: the hash-chained audit log over any [`WormStore`].

use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wharf_core::audit::{
    AppendOptions, AuditReceipt, ChainEntry, ChainProblem, ChainReport, ChainWalker, StoredRecord,
    VerifyRange, canonical_json, is_canonical_json_str,
};
use wharf_core::sign::{Signer, Verifier};
use wharf_core::{AuditEvent, AuditLog, Digest, Error, ErrorKind, Result};

use crate::checkpoint::Checkpoint;
use crate::store::{Created, WormStore};

/// Largest record accepted by default (1 MiB): put large evidence in storage and record its
/// digest.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;
pub use wharf_core::audit::DEFAULT_CLOCK_SKEW;
/// A signed checkpoint every this many records, by default (when a signer is set).
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 100;

const RECORDS: &str = "records/";
const CHECKPOINTS: &str = "checkpoints/";
/// Claims of event ids (`ids/<sha256 of the id>.json`), so an id is recorded once.
const IDS: &str = "ids/";
/// How long an append waits for the record of an id another writer claimed with the same
/// event before taking that writer for dead and recording the event itself.
const CLAIM_WAIT: Duration = Duration::from_secs(5);
/// Records read per batch while walking the log.
const BATCH: usize = 512;
/// How many times an append re-reads the head after losing a race before giving up.
const MAX_RACES: u32 = 10_000;

/// The key of record `sequence`.
pub fn record_key(sequence: u64) -> String {
    format!("{RECORDS}{sequence:012}.json")
}

fn checkpoint_key(sequence: u64) -> String {
    format!("{CHECKPOINTS}{sequence:012}.json")
}

fn sequence_of(key: &str, prefix: &str) -> Option<u64> {
    key.strip_prefix(prefix)?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// A tamper-evident audit log: each [`AuditEvent`] is stored as one write-once object
/// holding canonical JSON (RFC 8785) of a [`StoredRecord`] — sequence, previous record's
/// hash, time, event, and its own hash — under `records/<sequence:012>.json`. With a signer,
/// every `checkpoint_every` records a signed [`Checkpoint`] is stored under `checkpoints/`.
///
/// Writers in many processes may share one store: a create-only put decides who gets each
/// sequence number, and the loser re-reads the head and appends after it, so the chain never
/// forks.
pub struct WormLog<S> {
    store: S,
    signer: Option<Arc<dyn Signer>>,
    verifier: Option<Arc<dyn Verifier>>,
    checkpoint_every: u64,
    max_record_bytes: usize,
    clock_skew: Duration,
    verify_writes: bool,
    clock: Clock,
    /// The head this process last saw; appends in one process go one at a time.
    head: tokio::sync::Mutex<Option<Option<Head>>>,
}

#[derive(Debug, Clone)]
struct Head {
    sequence: u64,
    hash: Digest,
    recorded_at: OffsetDateTime,
}

impl Head {
    fn of(r: &StoredRecord) -> Self {
        Self {
            sequence: r.sequence,
            hash: r.hash.clone(),
            recorded_at: r.recorded_at,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for WormLog<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WormLog")
            .field("store", &self.store)
            .field(
                "signer",
                &self.signer.as_ref().map(|s| s.key_id().to_owned()),
            )
            .field("checkpoint_every", &self.checkpoint_every)
            .finish_non_exhaustive()
    }
}

impl<S: WormStore> WormLog<S> {
    /// A log over `store`, without checkpoints until [`WormLog::with_signer`].
    pub fn new(store: S) -> Self {
        Self {
            store,
            signer: None,
            verifier: None,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            clock_skew: DEFAULT_CLOCK_SKEW,
            verify_writes: true,
            clock: Arc::new(OffsetDateTime::now_utc),
            head: tokio::sync::Mutex::new(None),
        }
    }

    /// Sign a checkpoint every [`WormLog::checkpoint_every`] records with `signer`.
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Check checkpoint signatures with `verifier` in [`AuditLog::verify`].
    pub fn with_verifier(mut self, verifier: Arc<dyn Verifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// A checkpoint after every `n` records (0: only when [`WormLog::checkpoint`] is called).
    pub fn checkpoint_every(mut self, n: u64) -> Self {
        self.checkpoint_every = n;
        self
    }

    /// Refuse records larger than `bytes`.
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// How far behind its predecessor a record's time may be.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Read every record back after writing it and compare (on by default).
    pub fn verify_writes(mut self, on: bool) -> Self {
        self.verify_writes = on;
        self
    }

    /// Take record times from `clock` instead of the system clock (tests).
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static,
    ) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Where record `sequence` lives.
    pub fn location(&self, sequence: u64) -> String {
        self.store.location(&record_key(sequence))
    }

    /// Where the log lives (its directory, bucket and prefix, …), for messages.
    pub fn root_location(&self) -> String {
        self.store.location("")
    }

    /// Refuse to append after `head` when a checkpoint exists for a later record: the records
    /// it vouches for were deleted, and the next append would reuse a sequence it names. One
    /// listing that starts after the head's checkpoint key, so the cost is what lies beyond
    /// the head (nothing, normally), not every checkpoint — on stores that can start a
    /// listing at a key.
    async fn refuse_behind_checkpoint(&self, head: Option<&Head>) -> Result<()> {
        let later = match head {
            Some(h) => {
                self.store
                    .list_after(CHECKPOINTS, &checkpoint_key(h.sequence))
                    .await?
            }
            None => self.store.list(CHECKPOINTS).await?,
        };
        let Some(newest) = later
            .iter()
            .filter_map(|k| sequence_of(k, CHECKPOINTS))
            .max()
        else {
            return Ok(());
        };
        // A record is stored before its checkpoint, so record `newest` exists unless it was
        // deleted — or a concurrent appender wrote both after our listing of the records:
        // then the head is merely stale, and the append finds the new head by racing.
        if self.store.get(&record_key(newest)).await?.is_some() {
            return Ok(());
        }
        let (next, holds) = match head {
            Some(h) => (
                h.sequence + 1,
                format!("its newest record is {}", h.sequence),
            ),
            None => (0, "it holds no records".to_owned()),
        };
        Err(Error::integrity(format!(
            "audit log {} lost records: a checkpoint for record {newest} exists ({}), but {holds}, so records {next} to {newest} were deleted; nothing was written, as the next record would reuse sequence {next}: run `cargo xtask audit verify` to see what is missing and restore it from a copy",
            self.root_location(),
            self.store.location(&checkpoint_key(newest)),
        )))
    }

    /// How many records the log ends with (the newest sequence + 1), found by listing.
    async fn length(&self) -> Result<u64> {
        let keys = self.store.list(RECORDS).await?;
        Ok(keys
            .iter()
            .filter_map(|k| sequence_of(k, RECORDS))
            .max()
            .map_or(0, |s| s + 1))
    }

    /// The newest record in the store, found by listing.
    async fn discover_head(&self) -> Result<Option<Head>> {
        let keys = self.store.list(RECORDS).await?;
        match keys.iter().filter_map(|k| sequence_of(k, RECORDS)).max() {
            None => Ok(None),
            Some(s) => Ok(Some(Head::of(&self.read_checked(s).await?))),
        }
    }

    /// Read record `sequence`, refusing anything that is not exactly that record, intact.
    async fn read_checked(&self, sequence: u64) -> Result<StoredRecord> {
        let key = record_key(sequence);
        let bytes = self.store.get(&key).await?.ok_or_else(|| {
            Error::not_found(format!(
                "audit record {sequence} does not exist ({})",
                self.store.location(&key)
            ))
        })?;
        let decoded = decode(&bytes, self.max_record_bytes).map_err(|reason| {
            Error::integrity(format!(
                "audit record {} is unreadable: {reason}; run `verify` on the log",
                self.store.location(&key)
            ))
        })?;
        if decoded.record.sequence != sequence {
            return Err(Error::integrity(format!(
                "audit record {} claims sequence {}: the store returned another record",
                self.store.location(&key),
                decoded.record.sequence
            )));
        }
        if !decoded.hash_ok {
            return Err(Error::integrity(format!(
                "audit record {} was altered: its content does not match its hash",
                self.store.location(&key)
            )));
        }
        Ok(decoded.record)
    }

    /// Claim `event`'s id (a create-only object naming the event's hash) before its record
    /// is written: `Some(receipt)` when the same event is already recorded, a conflict when
    /// another event is recorded under the id, `None` to go on and append.
    ///
    /// A claim whose record never appears (its writer died, or its append was refused) is
    /// waited on for [`CLAIM_WAIT`], then passed over.
    async fn claim(&self, event: &AuditEvent) -> Result<Option<AuditReceipt>> {
        let id = event.id();
        let event_json = serde_json::to_value(event)
            .map_err(|e| Error::internal(format!("cannot serialize audit event {id}: {e}")))?;
        let event_hash = Digest::sha256_of(&canonical_json(&event_json)).to_string();
        let key = format!("{IDS}{}.json", Digest::sha256_of(id.as_bytes()).hex());
        let claim = serde_json::json!({"event": event_hash, "id": id});
        if let Created::Stored = self
            .store
            .create(&key, Bytes::from(canonical_json(&claim)))
            .await?
        {
            return Ok(None);
        }
        // Recorded already (a retried append, or other content under the id), or being
        // recorded by a writer that claimed it a moment ago: its record then comes after
        // `next`.
        let mut next = self.length().await?;
        let mut found = self.find_run(id).await?;
        let deadline = std::time::Instant::now() + CLAIM_WAIT;
        while found.is_none() && std::time::Instant::now() < deadline {
            wharf_core::blocking::sleep(Duration::from_millis(100)).await;
            let length = self.length().await?;
            for sequence in next..length {
                let record = self.read_checked(sequence).await?;
                if record.event.id() == id {
                    found = Some(record);
                    break;
                }
            }
            next = length;
        }
        match found {
            Some(record) if record.event == *event => Ok(Some(self.receipt_of(&record))),
            Some(record) => Err(Error::conflict(format!(
                "audit record {} already holds an event with id {id} and other content: record the corrected event under a new id",
                self.location(record.sequence)
            ))),
            None => {
                // The claimer died between its claim and its record, or its append was
                // refused: record the event now.
                tracing::warn!(id, "audit id claimed but never recorded; recording it now");
                Ok(None)
            }
        }
    }

    fn receipt_of(&self, record: &StoredRecord) -> AuditReceipt {
        AuditReceipt::new(
            record.sequence,
            record.hash.clone(),
            self.location(record.sequence),
        )
    }

    async fn append_event(&self, event: &AuditEvent) -> Result<AuditReceipt> {
        if let Some(receipt) = self.claim(event).await? {
            return Ok(receipt);
        }
        let mut cached = self.head.lock().await;
        let mut head = match cached.take() {
            Some(h) => h,
            None => {
                // Learned from the store: check no signed checkpoint lies beyond it. A head
                // this process wrote or read after a lost race needs no check.
                let h = self.discover_head().await?;
                self.refuse_behind_checkpoint(h.as_ref()).await?;
                h
            }
        };
        for race in 0..MAX_RACES {
            let sequence = head.as_ref().map_or(0, |h| h.sequence + 1);
            let now = (self.clock)();
            if let Some(h) = &head
                && now + self.clock_skew < h.recorded_at
            {
                return Err(Error::invalid(format!(
                    "the clock went backwards: it says {now}, but audit record {} was recorded at {}; fix the system clock (NTP) and retry",
                    h.sequence, h.recorded_at
                )));
            }
            let record = StoredRecord::chain(
                sequence,
                head.as_ref().map(|h| h.hash.clone()),
                now,
                event.clone(),
            )?;
            let bytes = encode(&record)?;
            if bytes.len() > self.max_record_bytes {
                return Err(Error::invalid(format!(
                    "audit record for run {} is {} bytes, over the {}-byte limit: put large evidence in storage and record its digest",
                    event.run_id(),
                    bytes.len(),
                    self.max_record_bytes
                )));
            }
            let key = record_key(sequence);
            let bytes = Bytes::from(bytes);
            match self.store.create(&key, bytes.clone()).await? {
                Created::Stored => {
                    if self.verify_writes {
                        self.check_written(&key, &bytes).await?;
                    }
                    *cached = Some(Some(Head::of(&record)));
                    drop(cached);
                    if self.checkpoint_every > 0
                        && (sequence + 1) % self.checkpoint_every == 0
                        && let Err(e) = self.write_checkpoint(sequence, record.hash.clone()).await
                    {
                        // The record is stored and the next checkpoint will cover it: say so
                        // loudly, but do not fail an append that succeeded.
                        tracing::error!(sequence, error = %e, "audit checkpoint not written");
                    }
                    return Ok(AuditReceipt::new(
                        sequence,
                        record.hash,
                        self.store.location(&key),
                    ));
                }
                Created::Exists => {
                    // Another writer took this sequence: read what it wrote and go after it.
                    tracing::debug!(sequence, race, "audit append lost a race");
                    head = Some(Head::of(&self.read_checked(sequence).await?));
                    if race >= 2 {
                        wharf_core::blocking::sleep(jitter(race)).await;
                    }
                }
            }
        }
        Err(Error::new(
            ErrorKind::Transient,
            format!("audit log is contended: {MAX_RACES} attempts to append lost the race"),
        ))
    }

    async fn check_written(&self, key: &str, bytes: &Bytes) -> Result<()> {
        match self.store.get(key).await? {
            Some(read) if read == *bytes => Ok(()),
            Some(_) => Err(Error::integrity(format!(
                "the store returned a different object for {} than was written: the audit record is not trustworthy",
                self.store.location(key)
            ))),
            None => Err(Error::integrity(format!(
                "the store lost {} right after writing it",
                self.store.location(key)
            ))),
        }
    }

    async fn write_checkpoint(&self, sequence: u64, head: Digest) -> Result<Option<Checkpoint>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let cp = Checkpoint::sign(signer.as_ref(), sequence, head, (self.clock)()).await?;
        let key = checkpoint_key(sequence);
        match self.store.create(&key, Bytes::from(cp.to_bytes()?)).await? {
            Created::Stored => Ok(Some(cp)),
            Created::Exists => {
                // Another writer checkpointed this record first, which is fine if it names
                // the same record; a checkpoint naming another one means the record it
                // covered was deleted and its sequence reused.
                let existing = self
                    .store
                    .get(&key)
                    .await?
                    .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok());
                match existing {
                    Some(e) if e.statement.head == cp.statement.head => Ok(Some(e)),
                    _ => Err(Error::integrity(format!(
                        "checkpoint {} already exists and does not name record {sequence} as written ({}): the record it covered was replaced; run `cargo xtask audit verify`",
                        self.store.location(&key),
                        cp.statement.head
                    ))),
                }
            }
        }
    }

    /// Sign and store a checkpoint of the current head now (no-op without a signer or on an
    /// empty log). Call it at the end of a batch of appends, so the tail is covered.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        if self.signer.is_none() {
            return Err(Error::invalid(
                "no checkpoint signer is configured for this audit log",
            ));
        }
        match self.discover_head().await? {
            None => Ok(None),
            Some(h) => self.write_checkpoint(h.sequence, h.hash).await,
        }
    }

    /// The signed checkpoints in the store, oldest first. Unreadable ones are returned as
    /// problems.
    async fn checkpoints(&self) -> Result<Vec<(u64, std::result::Result<Checkpoint, String>)>> {
        let keys = self.store.list(CHECKPOINTS).await?;
        let keys: Vec<(u64, String)> = keys
            .into_iter()
            .filter_map(|k| Some((sequence_of(&k, CHECKPOINTS)?, k)))
            .collect();
        let names: Vec<String> = keys.iter().map(|(_, k)| k.clone()).collect();
        let objects = self.store.get_many(&names).await?;
        Ok(keys
            .into_iter()
            .zip(objects)
            .map(|((seq, _), obj)| {
                let cp = obj
                    .ok_or_else(|| "it disappeared while being read".to_owned())
                    .and_then(|b| {
                        serde_json::from_slice::<Checkpoint>(&b)
                            .map_err(|e| format!("not a checkpoint: {e}"))
                    })
                    .and_then(|cp| {
                        if cp.statement.sequence == seq {
                            Ok(cp)
                        } else {
                            Err(format!(
                                "it is stored as {seq} but states {}",
                                cp.statement.sequence
                            ))
                        }
                    });
                (seq, cp)
            })
            .collect())
    }

    /// Walk the records in `range` in order, decoding batches in parallel; `each` sees every
    /// record's position, stored bytes and decoding.
    async fn walk<T: Send + 'static>(
        &self,
        range: &VerifyRange,
        decode: fn(&[u8], usize) -> std::result::Result<T, String>,
        mut each: impl FnMut(u64, Option<&Bytes>, &std::result::Result<T, String>) -> Result<()>,
    ) -> Result<()> {
        let from = range.from.unwrap_or(0);
        let to = range.to.unwrap_or(u64::MAX);
        let mut positions: Vec<u64> = self
            .store
            .list(RECORDS)
            .await?
            .iter()
            .filter_map(|k| sequence_of(k, RECORDS))
            .filter(|s| (from..=to).contains(s))
            .collect();
        positions.sort_unstable();
        positions.dedup();
        let max = self.max_record_bytes;
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let batches: Vec<_> = positions
            .chunks(BATCH)
            .map(|chunk| {
                let keys: Vec<String> = chunk.iter().map(|s| record_key(*s)).collect();
                let chunk = chunk.to_vec();
                async move {
                    let objects = self.store.get_many(&keys).await?;
                    let decoded = wharf_core::blocking::unblock(move || {
                        chunk
                            .into_iter()
                            .zip(objects)
                            .map(|(pos, obj)| {
                                let decoded = match &obj {
                                    Some(b) => decode(b, max),
                                    None => Err("it disappeared while being read".to_owned()),
                                };
                                (pos, obj, decoded)
                            })
                            .collect::<Vec<_>>()
                    })
                    .await;
                    Ok::<_, Error>(decoded)
                }
            })
            .collect();
        // Reads of one batch overlap the decoding of others.
        let mut stream = futures_util::stream::iter(batches).buffered(parallel.max(2) * 2);
        while let Some(batch) = stream.try_next().await? {
            for (pos, obj, decoded) in &batch {
                each(*pos, obj.as_ref(), decoded)?;
            }
        }
        Ok(())
    }

    /// Walk the chain over `range`: recompute every hash and link, check every checkpoint
    /// (signatures with `verifier`; without one they are counted as unverified), and report
    /// every problem — altered, missing, reordered, replayed or duplicated records, an
    /// overwritten version, a clock that went backwards, a tail truncated after a checkpoint.
    pub async fn verify_with(
        &self,
        range: &VerifyRange,
        verifier: Option<&dyn Verifier>,
    ) -> Result<VerificationReport> {
        self.verify_and_export(range, verifier, None).await
    }

    /// Write the records of `range` to `out` as JSON lines (each line the stored canonical
    /// JSON) and return the verification report of the same walk, for an auditor.
    pub async fn export(
        &self,
        range: &VerifyRange,
        verifier: Option<&dyn Verifier>,
        out: &mut (dyn Write + Send),
    ) -> Result<VerificationReport> {
        self.verify_and_export(range, verifier, Some(out)).await
    }

    async fn verify_and_export(
        &self,
        range: &VerifyRange,
        verifier: Option<&dyn Verifier>,
        mut out: Option<&mut (dyn Write + Send)>,
    ) -> Result<VerificationReport> {
        check_range(range.from, range.to)?;
        let from = range.from.unwrap_or(0);
        let expected_prev = match from.checked_sub(1) {
            None => None,
            Some(p) => match self.read_checked(p).await {
                Ok(r) => Some(r.hash),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let len = self.length().await?;
                    if len > p {
                        // A record inside the log is missing: say which.
                        return Err(e);
                    }
                    let holds = match len {
                        0 => "holds no records".to_owned(),
                        1 => "has 1 record (0)".to_owned(),
                        n => format!("has {n} records (0..{})", n - 1),
                    };
                    return Err(Error::invalid(format!(
                        "the range starts at record {from}, past the end of the log: the audit log {} {holds}",
                        self.root_location()
                    )));
                }
                Err(e) => return Err(e),
            },
        };
        let checkpoints = self.checkpoints().await?;
        let to = range.to.unwrap_or(u64::MAX);
        let mut walker = ChainWalker::new(from, expected_prev, self.clock_skew);
        self.walk(range, decode_entry, |pos, bytes, decoded| {
            match decoded {
                Ok(e) => walker.record(
                    pos,
                    ChainEntry::new(
                        e.sequence,
                        &e.hash,
                        e.prev_hash.as_ref(),
                        e.recorded_at,
                        &e.run_id,
                    ),
                    e.hash_ok,
                ),
                Err(reason) => walker.unreadable(pos, reason.clone()),
            }
            if let (Some(out), Some(bytes), Ok(_)) = (out.as_deref_mut(), bytes, decoded) {
                out.write_all(bytes).map_err(|e| {
                    Error::internal(format!("cannot write the audit export: {e}")).with_source(e)
                })?;
            }
            Ok(())
        })
        .await?;
        if let Some(out) = out {
            out.flush().map_err(|e| {
                Error::internal(format!("cannot write the audit export: {e}")).with_source(e)
            })?;
        }
        for (key, versions) in self.store.overwritten(RECORDS).await? {
            if let Some(sequence) = sequence_of(&key, RECORDS)
                && (from..=to).contains(&sequence)
            {
                walker.problem(ChainProblem::Overwritten { sequence, versions });
            }
        }
        let last = walker.last_position();
        let (mut verified, mut unverified, mut last_checkpoint) = (0, 0, None);
        for (seq, cp) in checkpoints {
            if !(from..=to).contains(&seq) {
                continue;
            }
            let cp = match cp {
                Ok(cp) => cp,
                Err(reason) => {
                    walker.problem(ChainProblem::BadCheckpoint {
                        checkpoint: seq,
                        reason,
                    });
                    continue;
                }
            };
            match verifier {
                Some(v) => match cp.verify(v).await {
                    Ok(()) => verified += 1,
                    Err(e) => {
                        walker.problem(ChainProblem::BadCheckpoint {
                            checkpoint: seq,
                            reason: e.to_string(),
                        });
                        continue;
                    }
                },
                None => unverified += 1,
            }
            match last {
                Some(last) if last >= seq => {
                    if walker.hash_at(seq) != Some(&cp.statement.head) {
                        walker.problem(ChainProblem::CheckpointMismatch { checkpoint: seq });
                    }
                }
                // A checkpoint in the range whose record is not there: records it vouches for
                // were deleted, whether or not the range has an end.
                last => walker.problem(ChainProblem::Truncated {
                    checkpoint: seq,
                    last,
                }),
            }
            last_checkpoint = Some(last_checkpoint.map_or(seq, |c: u64| c.max(seq)));
        }
        let chain = walker.finish();
        let mut report = VerificationReport {
            log: self.store.location(RECORDS),
            from,
            to: range.to,
            checked: chain.checked,
            last_sequence: last,
            head: chain.head,
            checkpoints_verified: verified,
            checkpoints_unverified: unverified,
            last_checkpoint,
            first_problem: None,
            problems: chain.problems,
            verified_at: OffsetDateTime::now_utc(),
        };
        report.first_problem = report.problems.iter().map(ChainProblem::sequence).min();
        Ok(report)
    }

    /// The records that match `query`, oldest first. The log has no index: this reads
    /// every record in the query's sequence range, in parallel batches.
    pub async fn query(&self, query: &Query) -> Result<Vec<StoredRecord>> {
        check_range(query.from_sequence, query.to_sequence)?;
        if let (Some(since), Some(until)) = (query.since, query.until)
            && since >= until
        {
            let show = |t: OffsetDateTime| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| t.to_string())
            };
            return Err(Error::invalid(format!(
                "the query's time range is empty: since {} is not before until {}",
                show(since),
                show(until)
            )));
        }
        let mut found = Vec::new();
        let mut range = VerifyRange::default();
        range.from = query.from_sequence;
        range.to = query.to_sequence;
        self.walk(&range, decode, |_, _, decoded| {
            if let Ok(d) = decoded
                && query.matches(&d.record)
            {
                found.push(d.record.clone());
            }
            Ok(())
        })
        .await?;
        Ok(found)
    }

    /// The record of run `run_id`, if the log holds one.
    pub async fn find_run(&self, run_id: &str) -> Result<Option<StoredRecord>> {
        Ok(self
            .query(&Query::default().run_id(run_id))
            .await?
            .into_iter()
            .next())
    }
}

#[async_trait]
impl<S: WormStore> AuditLog for WormLog<S> {
    async fn append(&self, event: &AuditEvent, _opts: &AppendOptions) -> Result<AuditReceipt> {
        self.append_event(event).await
    }

    async fn read(&self, sequence: u64) -> Result<StoredRecord> {
        self.read_checked(sequence).await
    }

    async fn head(&self) -> Result<Option<AuditReceipt>> {
        Ok(self
            .discover_head()
            .await?
            .map(|h| AuditReceipt::new(h.sequence, h.hash, self.location(h.sequence))))
    }

    async fn verify(&self, range: &VerifyRange) -> Result<ChainReport> {
        let report = self.verify_with(range, self.verifier.as_deref()).await?;
        Ok(ChainReport::new(
            report.checked,
            report.head,
            report.problems,
        ))
    }
}

/// Which records [`WormLog::query`] returns: all conditions must hold.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Query {
    /// Only this run.
    pub run_id: Option<String>,
    /// Only records about this image.
    pub image_digest: Option<Digest>,
    /// Recorded at or after.
    pub since: Option<OffsetDateTime>,
    /// Recorded before.
    pub until: Option<OffsetDateTime>,
    /// First sequence to look at.
    pub from_sequence: Option<u64>,
    /// Last sequence to look at.
    pub to_sequence: Option<u64>,
}

impl Query {
    /// Only run `run_id`.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Only records about `digest`.
    pub fn image_digest(mut self, digest: Digest) -> Self {
        self.image_digest = Some(digest);
        self
    }

    /// Only records stored in `[since, until)`.
    pub fn between(mut self, since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    fn matches(&self, r: &StoredRecord) -> bool {
        self.run_id
            .as_deref()
            .is_none_or(|id| r.event.run_id() == id)
            && self
                .image_digest
                .as_ref()
                .is_none_or(|d| r.event.image_digest() == Some(d))
            && self.since.is_none_or(|t| r.recorded_at >= t)
            && self.until.is_none_or(|t| r.recorded_at < t)
    }
}

/// What a verification found, for people and for an auditor's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VerificationReport {
    /// Where the records are.
    pub log: String,
    /// First sequence of the range.
    pub from: u64,
    /// Last sequence of the range, `None` for the head.
    pub to: Option<u64>,
    /// Records checked.
    pub checked: u64,
    /// The last record present in the range.
    pub last_sequence: Option<u64>,
    /// Its hash.
    pub head: Option<Digest>,
    /// Checkpoints whose signature verified.
    pub checkpoints_verified: u64,
    /// Checkpoints not checked because no verifier was given.
    pub checkpoints_unverified: u64,
    /// The newest checkpoint in the range.
    pub last_checkpoint: Option<u64>,
    /// The lowest sequence with a problem: where the chain stops being trustworthy.
    pub first_problem: Option<u64>,
    /// Every problem, records first (in chain order), then storage and checkpoints.
    pub problems: Vec<ChainProblem>,
    /// When the verification ran.
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
}

impl VerificationReport {
    /// True when nothing is wrong.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records after the newest verified checkpoint: their presence is vouched for by the
    /// store alone until the next checkpoint.
    pub fn unanchored(&self) -> u64 {
        match (self.last_sequence, self.last_checkpoint) {
            (Some(last), Some(cp)) => last.saturating_sub(cp),
            (Some(last), None) => last + 1 - self.from,
            (None, _) => 0,
        }
    }
}

impl fmt::Display for VerificationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self
            .head
            .as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string);
        if self.is_intact() {
            write!(
                f,
                "{}: {} records, chain intact, head {head}",
                self.log, self.checked
            )?;
        } else {
            write!(
                f,
                "{}: {} records, {} problems, first at record {}",
                self.log,
                self.checked,
                self.problems.len(),
                self.first_problem.unwrap_or(0)
            )?;
            for p in &self.problems {
                write!(f, "\n  - {p}")?;
            }
        }
        match (self.checkpoints_verified, self.checkpoints_unverified) {
            (0, 0) => write!(f, "\ncheckpoints: none signed in this range"),
            (v, 0) => write!(f, "\ncheckpoints: {v} signatures verified"),
            (v, u) => write!(
                f,
                "\ncheckpoints: {v} signatures verified, {u} NOT verified (no public key given)"
            ),
        }?;
        match self.unanchored() {
            0 => Ok(()),
            n => write!(
                f,
                "; {n} records after the last checkpoint (vouched for by the store alone)"
            ),
        }
    }
}

/// Refuse a sequence range that ends before it starts (it would check nothing and pass).
fn check_range(from: Option<u64>, to: Option<u64>) -> Result<()> {
    match (from, to) {
        (Some(from), Some(to)) if from > to => Err(Error::invalid(format!(
            "the range from record {from} to record {to} is empty: from is after to"
        ))),
        _ => Ok(()),
    }
}

/// A record decoded from its stored bytes.
struct Decoded {
    record: StoredRecord,
    /// Whether the bytes hash to the record's `hash`.
    hash_ok: bool,
}

/// The stored form of a record: its canonical JSON and a newline.
fn encode(record: &StoredRecord) -> Result<Vec<u8>> {
    let value = serde_json::to_value(record)
        .map_err(|e| Error::invalid(format!("audit record cannot be serialized: {e}")))?;
    let mut out = canonical_json(&value);
    out.push(b'\n');
    Ok(out)
}

/// Decode stored bytes and recompute the hash the way any auditor can: parse, drop `hash`,
/// canonicalize (RFC 8785), SHA-256.
fn decode(bytes: &[u8], max: usize) -> std::result::Result<Decoded, String> {
    if bytes.len() > max {
        return Err(format!("{} bytes, over the {max}-byte limit", bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let record =
        StoredRecord::deserialize(&value).map_err(|e| format!("not an audit record: {e}"))?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("hash");
    }
    let hash_ok = Digest::sha256_of(&canonical_json(&value)) == record.hash;
    Ok(Decoded { record, hash_ok })
}

/// What verification needs of a stored record, decoded without building the whole record.
struct Entry {
    sequence: u64,
    hash: Digest,
    prev_hash: Option<Digest>,
    recorded_at: OffsetDateTime,
    run_id: String,
    /// Whether the bytes hash to `hash`.
    hash_ok: bool,
}

/// The top level of a stored record, borrowed from its bytes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct View<'a> {
    #[serde(borrow)]
    event: EventView<'a>,
    #[serde(borrow)]
    hash: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    prev_hash: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    recorded_at: std::borrow::Cow<'a, str>,
    sequence: u64,
}

/// The event's id: `run_id` of a run, `id` of any other event.
#[derive(Deserialize)]
struct EventView<'a> {
    #[serde(borrow, default)]
    run_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
}

/// The fast path of verification. Records are stored as canonical JSON, so when the bytes
/// are canonical (checked in one pass) the hash is SHA-256 over the bytes with the
/// top-level `hash` member cut out — the same value as parse, drop `hash`, canonicalize,
/// hash — and only the fields the walk needs are decoded. Anything else takes that slow
/// path.
fn decode_entry(bytes: &[u8], max: usize) -> std::result::Result<Entry, String> {
    if bytes.len() > max {
        return Err(format!("{} bytes, over the {max}-byte limit", bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let view: View<'_> =
        serde_json::from_str(text).map_err(|e| format!("not an audit record: {e}"))?;
    let digest = |s: &str, field: &str| {
        s.parse::<Digest>()
            .map_err(|e| format!("not an audit record: {field} {s:?} is not a digest: {e}"))
    };
    let hash = digest(&view.hash, "hash")?;
    let prev_hash = view
        .prev_hash
        .as_deref()
        .map(|p| digest(p, "prev_hash"))
        .transpose()?;
    let recorded_at = OffsetDateTime::parse(
        &view.recorded_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| {
        format!(
            "not an audit record: recorded_at {:?}: {e}",
            view.recorded_at
        )
    })?;
    // The top-level `hash` member is the last `,"hash":"` in canonical bytes: only
    // `prev_hash`, `recorded_at` and `sequence` (no objects, no such text) follow it.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let member = format!(",\"hash\":\"{}\"", view.hash);
    let hash_ok = match body.rfind(&member) {
        Some(at) if is_canonical_json_str(body) => {
            let mut h = wharf_core::Hasher::new(wharf_core::Algorithm::Sha256);
            h.update(&body.as_bytes()[..at]);
            h.update(&body.as_bytes()[at + member.len()..]);
            h.finish() == hash
        }
        _ => decode(bytes, max)?.hash_ok,
    };
    Ok(Entry {
        sequence: view.sequence,
        hash,
        prev_hash,
        recorded_at,
        run_id: view
            .event
            .run_id
            .or(view.event.id)
            .ok_or("not an audit record: its event has neither `run_id` nor `id`")?
            .into_owned(),
        hash_ok,
    })
}

/// A random pause of up to `race` × 100 µs (capped at 5 ms), so writers that keep losing
/// races spread out instead of colliding again.
fn jitter(race: u32) -> Duration {
    let nanos = OffsetDateTime::now_utc().nanosecond() as u64;
    let cap = u64::from(race.min(50)) * 100_000;
    Duration::from_nanos(nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) % cap.max(1))
}
