//! The [`AuditLog`] contract, the hash chain every backend shares, and canonical JSON.
//!
//! A stored record's hash is SHA-256 over the canonical JSON (RFC 8785 style: sorted keys,
//! no whitespace) of `{"event", "prev_hash", "recorded_at", "sequence"}`; `prev_hash` is the
//! previous record's hash (`null` for the first). Any change to a record, any gap, reorder or
//! replay shows up when the chain is walked with [`verify_chain`].

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{AuditEvent, Digest, Result};

/// Proof that a record was stored: where in the chain, its hash, and where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditReceipt {
    /// Position in the chain, from 0.
    pub sequence: u64,
    /// The record's chain hash.
    pub hash: Digest,
    /// Where the record is stored (a path, an `s3://` URL).
    pub location: String,
}

impl AuditReceipt {
    /// A receipt.
    pub fn new(sequence: u64, hash: Digest, location: impl Into<String>) -> Self {
        Self {
            sequence,
            hash,
            location: location.into(),
        }
    }
}

/// A record as stored in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredRecord {
    /// Position in the chain.
    pub sequence: u64,
    /// Hash of the previous record; `None` for the first.
    pub prev_hash: Option<Digest>,
    /// When the log stored it.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// The event.
    pub event: AuditEvent,
    /// This record's hash, over all the fields above.
    pub hash: Digest,
}

impl StoredRecord {
    /// Build the record that follows `prev` (or the first record), computing its hash.
    pub fn chain(
        sequence: u64,
        prev_hash: Option<Digest>,
        recorded_at: OffsetDateTime,
        event: AuditEvent,
    ) -> Result<Self> {
        let hash = record_hash(sequence, prev_hash.as_ref(), recorded_at, &event)?;
        Ok(Self {
            sequence,
            prev_hash,
            recorded_at,
            event,
            hash,
        })
    }

    /// Recompute the hash from the fields; true when it matches the stored one.
    pub fn hash_is_valid(&self) -> bool {
        record_hash(
            self.sequence,
            self.prev_hash.as_ref(),
            self.recorded_at,
            &self.event,
        )
        .is_ok_and(|h| h == self.hash)
    }
}

/// The chain hash of a record's fields.
pub fn record_hash(
    sequence: u64,
    prev_hash: Option<&Digest>,
    recorded_at: OffsetDateTime,
    event: &AuditEvent,
) -> Result<Digest> {
    let recorded_at = recorded_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            crate::Error::invalid(format!("audit record time cannot be formatted: {e}"))
        })?;
    let value = serde_json::json!({
        "event": serde_json::to_value(event)
            .map_err(|e| crate::Error::invalid(format!("audit event cannot be serialized: {e}")))?,
        "prev_hash": prev_hash.map(ToString::to_string),
        "recorded_at": recorded_at,
        "sequence": sequence,
    });
    Ok(Digest::sha256_of(&canonical_json(&value)))
}

/// Options for [`AuditLog::append`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AppendOptions {}

/// Which records [`AuditLog::verify`] walks.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyRange {
    /// First sequence number (0 when `None`).
    pub from: Option<u64>,
    /// Last sequence number, inclusive (the head when `None`).
    pub to: Option<u64>,
}

impl VerifyRange {
    /// The whole log.
    pub fn all() -> Self {
        Self::default()
    }

    /// Records `from` to `to`, inclusive (`None`: from the first, to the head).
    pub fn new(from: Option<u64>, to: Option<u64>) -> Self {
        Self { from, to }
    }

    /// Records from `from` to the head.
    pub fn starting_at(from: u64) -> Self {
        Self::new(Some(from), None)
    }
}

/// A problem found while walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChainProblem {
    /// The record's content does not hash to its stored hash (it was altered).
    HashMismatch {
        /// Sequence number.
        sequence: u64,
    },
    /// The record's `prev_hash` is not the previous record's hash.
    BrokenLink {
        /// Sequence number.
        sequence: u64,
    },
    /// Records are missing.
    Gap {
        /// First missing sequence.
        first: u64,
        /// Last missing sequence.
        last: u64,
    },
    /// The record's sequence field differs from its position.
    OutOfOrder {
        /// Position in the log.
        position: u64,
        /// Sequence the record claims.
        claims: u64,
    },
    /// An exact copy of an earlier record was stored again (a replay).
    Replay {
        /// Sequence (position) of the repeat.
        sequence: u64,
        /// Sequence of the original.
        original: u64,
    },
    /// A second, different record for a run that already has one.
    Duplicate {
        /// Sequence of the second record.
        sequence: u64,
        /// Sequence of the first.
        original: u64,
        /// The run id both name.
        run_id: String,
    },
    /// The stored object is not a readable record (not UTF-8, not JSON, missing fields).
    Unreadable {
        /// Sequence (position) of the object.
        sequence: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The record's time is earlier than its predecessor's by more than the tolerated skew.
    ClockWentBackwards {
        /// Sequence of the record.
        sequence: u64,
    },
    /// The store holds more than one version of the record: it was overwritten.
    Overwritten {
        /// Sequence of the record.
        sequence: u64,
        /// How many versions the store holds.
        versions: u64,
    },
    /// A signed checkpoint covers records that are no longer in the log (tail truncated).
    Truncated {
        /// The checkpoint's sequence.
        checkpoint: u64,
        /// The last record present, `None` for an empty log.
        last: Option<u64>,
    },
    /// A signed checkpoint names a different hash for its record than the log holds.
    CheckpointMismatch {
        /// The checkpoint's sequence.
        checkpoint: u64,
    },
    /// A checkpoint's signature does not verify, or the checkpoint is unreadable.
    BadCheckpoint {
        /// The checkpoint's sequence.
        checkpoint: u64,
        /// Why.
        reason: String,
    },
}

impl ChainProblem {
    /// The sequence number the problem is at (the first, for a gap).
    pub fn sequence(&self) -> u64 {
        match self {
            ChainProblem::HashMismatch { sequence }
            | ChainProblem::BrokenLink { sequence }
            | ChainProblem::Replay { sequence, .. }
            | ChainProblem::Duplicate { sequence, .. }
            | ChainProblem::Unreadable { sequence, .. }
            | ChainProblem::ClockWentBackwards { sequence }
            | ChainProblem::Overwritten { sequence, .. } => *sequence,
            ChainProblem::Gap { first, .. } => *first,
            ChainProblem::OutOfOrder { position, .. } => *position,
            ChainProblem::Truncated { last, .. } => last.map_or(0, |l| l + 1),
            ChainProblem::CheckpointMismatch { checkpoint }
            | ChainProblem::BadCheckpoint { checkpoint, .. } => *checkpoint,
        }
    }
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::HashMismatch { sequence } => {
                write!(
                    f,
                    "record {sequence} was altered: its content does not match its hash"
                )
            }
            ChainProblem::BrokenLink { sequence } => write!(
                f,
                "record {sequence} does not link to record {}: the chain is broken",
                sequence.saturating_sub(1)
            ),
            ChainProblem::Gap { first, last } if first == last => {
                write!(f, "record {first} is missing")
            }
            ChainProblem::Gap { first, last } => write!(f, "records {first}..={last} are missing"),
            ChainProblem::OutOfOrder { position, claims } => {
                write!(
                    f,
                    "record at position {position} claims sequence {claims}: reordered"
                )
            }
            ChainProblem::Replay { sequence, original } => {
                write!(
                    f,
                    "record {sequence} is a replayed copy of record {original}"
                )
            }
            ChainProblem::Duplicate {
                sequence,
                original,
                run_id,
            } => write!(
                f,
                "record {sequence} is a second record of run {run_id} (first: record {original})"
            ),
            ChainProblem::Unreadable { sequence, reason } => {
                write!(f, "record {sequence} is unreadable: {reason}")
            }
            ChainProblem::ClockWentBackwards { sequence } => write!(
                f,
                "record {sequence} is dated before record {}: the clock went backwards",
                sequence.saturating_sub(1)
            ),
            ChainProblem::Overwritten { sequence, versions } => write!(
                f,
                "record {sequence} was overwritten: the store holds {versions} versions of it"
            ),
            ChainProblem::Truncated { checkpoint, last } => match last {
                Some(last) => write!(
                    f,
                    "the log was truncated: checkpoint {checkpoint} is signed but the last record is {last}"
                ),
                None => write!(
                    f,
                    "the log was truncated: checkpoint {checkpoint} is signed but no record is left"
                ),
            },
            ChainProblem::CheckpointMismatch { checkpoint } => write!(
                f,
                "record {checkpoint} differs from what its signed checkpoint names: the chain was rewritten"
            ),
            ChainProblem::BadCheckpoint { checkpoint, reason } => {
                write!(f, "checkpoint {checkpoint} cannot be trusted: {reason}")
            }
        }
    }
}

/// The result of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChainReport {
    /// Records checked.
    pub checked: u64,
    /// Hash of the last record checked.
    pub head: Option<Digest>,
    /// Every problem found, in chain order.
    pub problems: Vec<ChainProblem>,
}

impl ChainReport {
    /// A report of `checked` records ending at `head`.
    pub fn new(checked: u64, head: Option<Digest>, problems: Vec<ChainProblem>) -> Self {
        Self {
            checked,
            head,
            problems,
        }
    }

    /// True when the chain is intact.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How far a record's time may be behind its predecessor's before it counts as the clock
/// going backwards (writers on different machines have slightly different clocks).
pub const DEFAULT_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(60);

/// Walk records in storage order and report every problem. `expected_prev` is the hash the
/// first record must link to (`None` when the range starts at the beginning of the log).
/// Records are placed at the sequence they claim, so a missing one shows as a gap.
pub fn verify_chain(records: &[StoredRecord], expected_prev: Option<&Digest>) -> ChainReport {
    let from = records.first().map_or(0, |r| r.sequence);
    let mut walker = ChainWalker::new(from, expected_prev.cloned(), DEFAULT_CLOCK_SKEW);
    for r in records {
        // A record claiming an earlier sequence sits in the next slot of storage order.
        let position = r.sequence.max(walker.next_position());
        walker.record(position, r.into(), r.hash_is_valid());
    }
    walker.finish()
}

/// What a [`ChainWalker`] needs of a record (borrowed, so a verifier need not build a
/// whole [`StoredRecord`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ChainEntry<'a> {
    /// The sequence the record claims.
    pub sequence: u64,
    /// Its stated hash.
    pub hash: &'a Digest,
    /// The previous record's hash it links to.
    pub prev_hash: Option<&'a Digest>,
    /// When it was stored.
    pub recorded_at: OffsetDateTime,
    /// The run it records.
    pub run_id: &'a str,
}

impl<'a> ChainEntry<'a> {
    /// An entry from its parts.
    pub fn new(
        sequence: u64,
        hash: &'a Digest,
        prev_hash: Option<&'a Digest>,
        recorded_at: OffsetDateTime,
        run_id: &'a str,
    ) -> Self {
        Self {
            sequence,
            hash,
            prev_hash,
            recorded_at,
            run_id,
        }
    }
}

impl<'a> From<&'a StoredRecord> for ChainEntry<'a> {
    fn from(r: &'a StoredRecord) -> Self {
        Self::new(
            r.sequence,
            &r.hash,
            r.prev_hash.as_ref(),
            r.recorded_at,
            r.event.run_id(),
        )
    }
}

/// Walks a log's records in storage order and names every problem — the one piece of
/// chain-checking logic every backend's `verify` uses. Feed it each stored object, by
/// position (its sequence number in the store's keys), with [`ChainWalker::record`] or
/// [`ChainWalker::unreadable`]; positions must not decrease.
#[derive(Debug)]
pub struct ChainWalker {
    from: u64,
    next: u64,
    /// The previous position's hash and time; `None` after an unreadable record or a gap.
    prev: Option<(Digest, OffsetDateTime)>,
    skew: time::Duration,
    problems: Vec<ChainProblem>,
    /// The hash of the record at each position seen (none for a gap or an unreadable
    /// object): replays are copies of the record at the position they claim. Sparse, so a
    /// stray object at a huge position costs one entry, not memory up to that position.
    hashes: std::collections::BTreeMap<u64, Digest>,
    /// The highest position seen.
    last: Option<u64>,
    by_run: std::collections::HashMap<String, u64>,
    checked: u64,
    head: Option<Digest>,
}

impl ChainWalker {
    /// A walk starting at position `from`, whose first record must link to `expected_prev`
    /// (`None` at the start of the log), tolerating `clock_skew` between neighbours' times.
    pub fn new(from: u64, expected_prev: Option<Digest>, clock_skew: std::time::Duration) -> Self {
        Self {
            from,
            next: from,
            prev: expected_prev.map(|h| (h, OffsetDateTime::UNIX_EPOCH)),
            skew: time::Duration::try_from(clock_skew).unwrap_or(time::Duration::MAX),
            problems: Vec::new(),
            hashes: Default::default(),
            last: None,
            by_run: Default::default(),
            checked: 0,
            head: None,
        }
    }

    /// The hash of the record found at `position` (to compare with a checkpoint's).
    pub fn hash_at(&self, position: u64) -> Option<&Digest> {
        self.hashes.get(&position)
    }

    /// The position the next record is expected at.
    pub fn next_position(&self) -> u64 {
        self.next
    }

    /// The last position seen, `None` before any.
    pub fn last_position(&self) -> Option<u64> {
        self.last
    }

    /// Add a problem found outside the records (storage, checkpoints).
    pub fn problem(&mut self, problem: ChainProblem) {
        self.problems.push(problem);
    }

    fn set_hash(&mut self, position: u64, hash: Digest) {
        if position >= self.from {
            self.hashes.insert(position, hash);
        }
    }

    fn advance(&mut self, position: u64) -> bool {
        self.checked += 1;
        let linkable = position == self.next;
        if position > self.next {
            self.problems.push(ChainProblem::Gap {
                first: self.next,
                last: position - 1,
            });
        }
        // A record at u64::MAX leaves nothing after it; `last` still says where it was.
        self.next = self.next.max(position.saturating_add(1));
        self.last = Some(self.last.map_or(position, |l| l.max(position)));
        linkable
    }

    /// An object at `position` that is not a readable record.
    pub fn unreadable(&mut self, position: u64, reason: impl Into<String>) {
        self.advance(position);
        self.problems.push(ChainProblem::Unreadable {
            sequence: position,
            reason: reason.into(),
        });
        self.prev = None;
    }

    /// The record stored at `position`; `hash_ok` says whether its content hashes to its
    /// `hash`.
    pub fn record(&mut self, position: u64, r: ChainEntry<'_>, hash_ok: bool) {
        let linkable = self.advance(position);
        if !hash_ok {
            self.problems
                .push(ChainProblem::HashMismatch { sequence: position });
        }
        if r.sequence != position {
            match self.hash_at(r.sequence) {
                Some(original) if hash_ok && original == r.hash => {
                    self.problems.push(ChainProblem::Replay {
                        sequence: position,
                        original: r.sequence,
                    })
                }
                _ => self.problems.push(ChainProblem::OutOfOrder {
                    position,
                    claims: r.sequence,
                }),
            }
        } else if linkable {
            match &self.prev {
                Some((prev_hash, prev_time)) => {
                    if r.prev_hash != Some(prev_hash) {
                        self.problems
                            .push(ChainProblem::BrokenLink { sequence: position });
                    } else if r.recorded_at + self.skew < *prev_time {
                        self.problems
                            .push(ChainProblem::ClockWentBackwards { sequence: position });
                    }
                }
                None if position == 0 && r.prev_hash.is_some() => {
                    self.problems
                        .push(ChainProblem::BrokenLink { sequence: position });
                }
                None => {} // after an unreadable record or at a range's start: already named
            }
        }
        if r.sequence == position {
            let run_id = r.run_id;
            if let Some(&original) = self.by_run.get(run_id) {
                self.problems.push(ChainProblem::Duplicate {
                    sequence: position,
                    original,
                    run_id: run_id.to_owned(),
                });
            } else {
                self.by_run.insert(run_id.to_owned(), position);
            }
        }
        self.set_hash(position, r.hash.clone());
        self.prev = Some((r.hash.clone(), r.recorded_at));
        self.head = Some(r.hash.clone());
    }

    /// The problems so far, in the order found.
    pub fn problems(&self) -> &[ChainProblem] {
        &self.problems
    }

    /// The first position walked.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// End the walk.
    pub fn finish(self) -> ChainReport {
        ChainReport::new(self.checked, self.head, self.problems)
    }
}

/// An append-only, tamper-evident log of audit events.
///
/// Nothing updates or deletes a record. `append` either stores the record durably and
/// returns a receipt, or fails: a record is never dropped silently.
#[async_trait]
pub trait AuditLog: fmt::Debug + Send + Sync + 'static {
    /// Append `event` after the current head. An id ([`AuditEvent::id`]) is recorded once:
    /// appending the same event again returns the first record's receipt, and another
    /// event under a recorded id is refused with [`crate::ErrorKind::Conflict`] — the
    /// chain never holds two records of one run.
    async fn append(&self, event: &AuditEvent, opts: &AppendOptions) -> Result<AuditReceipt>;

    /// Read the record at `sequence`.
    async fn read(&self, sequence: u64) -> Result<StoredRecord>;

    /// The receipt of the newest record, `None` for an empty log.
    async fn head(&self) -> Result<Option<AuditReceipt>>;

    /// Walk the chain over `range`, recomputing every hash.
    async fn verify(&self, range: &VerifyRange) -> Result<ChainReport>;
}

/// Canonical JSON: object keys sorted by UTF-16 code units, no insignificant whitespace,
/// integers as integers, other numbers in their shortest round-trip form (RFC 8785).
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::String(s) => write_string(s, out),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                out.extend_from_slice(es_number(f).as_bytes());
            }
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            // A map already in UTF-16 order (serde_json's sorted map, keys below U+E000,
            // where byte order and UTF-16 order agree) is written as it is; else sorted.
            let in_order = map.keys().all(|k| !k.bytes().any(|b| b >= 0xEE))
                && map
                    .keys()
                    .zip(map.keys().skip(1))
                    .all(|(a, b)| a.as_bytes() < b.as_bytes());
            let mut write_member = |i: usize, k: &String, v: &Value| {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(v, out);
            };
            if in_order {
                for (i, (k, v)) in map.iter().enumerate() {
                    write_member(i, k, v);
                }
            } else {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
                for (i, (k, v)) in members.into_iter().enumerate() {
                    write_member(i, k, v);
                }
            }
            out.push(b'}');
        }
    }
}

/// A JSON string as RFC 8785 writes it: `"` and `\` escaped, the two-letter escapes for
/// backspace, tab, newline, form feed and carriage return, `\u00xx` (lowercase) for other
/// control characters, everything else as UTF-8.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// True when `bytes` is exactly the canonical JSON (as [`canonical_json`] writes it) of the
/// value they hold: no whitespace, members sorted, minimal string escapes, numbers in
/// ECMAScript form. Lets a verifier hash stored canonical bytes as they are.
pub fn is_canonical_json(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(is_canonical_json_str)
}

/// [`is_canonical_json`] for text already known to be UTF-8.
pub fn is_canonical_json_str(text: &str) -> bool {
    let mut p = Canon {
        s: text.as_bytes(),
        i: 0,
    };
    p.value(0) && p.i == p.s.len()
}

/// A validating scanner for [`is_canonical_json`].
struct Canon<'a> {
    s: &'a [u8],
    i: usize,
}

impl Canon<'_> {
    const MAX_DEPTH: u32 = 128;

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: u32) -> bool {
        if depth > Self::MAX_DEPTH {
            return false;
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => {
                self.i += 1;
                if self.eat(b"]") {
                    return true;
                }
                loop {
                    if !self.value(depth + 1) {
                        return false;
                    }
                    if self.eat(b"]") {
                        return true;
                    }
                    if !self.eat(b",") {
                        return false;
                    }
                }
            }
            Some(b'"') => self.string().is_some(),
            Some(b'n') => self.eat(b"null"),
            Some(b't') => self.eat(b"true"),
            Some(b'f') => self.eat(b"false"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn object(&mut self, depth: u32) -> bool {
        self.i += 1;
        if self.eat(b"}") {
            return true;
        }
        let mut prev: Option<(usize, usize)> = None;
        loop {
            let Some(key) = self.string() else {
                return false;
            };
            if let Some(p) = prev {
                // Keys strictly increasing in UTF-16 order (escapes compare as written,
                // which is exact for the keys a canonical writer produces).
                let (a, b) = (&self.s[p.0..p.1], &self.s[key.0..key.1]);
                let (a, b) = match (std::str::from_utf8(a), std::str::from_utf8(b)) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return false,
                };
                if a.encode_utf16().cmp(b.encode_utf16()) != std::cmp::Ordering::Less {
                    return false;
                }
            }
            prev = Some(key);
            if !self.eat(b":") || !self.value(depth + 1) {
                return false;
            }
            if self.eat(b"}") {
                return true;
            }
            if !self.eat(b",") {
                return false;
            }
        }
    }

    /// A string with only the escapes a canonical writer uses; returns its raw content span.
    fn string(&mut self) -> Option<(usize, usize)> {
        if !self.eat(b"\"") {
            return None;
        }
        let start = self.i;
        loop {
            // Skip plain characters in one tight scan; stop at a quote, backslash or control.
            let rest = &self.s[self.i..];
            let plain = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(rest.len());
            self.i += plain;
            let b = self.peek()?;
            match b {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some((start, end));
                }
                0x00..=0x1f => return None,
                b'\\' => {
                    let e = *self.s.get(self.i + 1)?;
                    match e {
                        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => self.i += 2,
                        b'u' => {
                            // Only for control characters without a short escape, lowercase.
                            let hex = self.s.get(self.i + 2..self.i + 6)?;
                            let ok = hex.starts_with(b"00")
                                && matches!(hex[2], b'0' | b'1')
                                && matches!(hex[3], b'0'..=b'9' | b'a'..=b'f');
                            let v = u8::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16)
                                .ok()?;
                            if !ok || matches!(v, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                _ => self.i += 1,
            }
        }
    }

    fn number(&mut self) -> bool {
        let start = self.i;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let Ok(text) = std::str::from_utf8(&self.s[start..self.i]) else {
            return false;
        };
        let digits = text.strip_prefix('-').unwrap_or(text);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
        {
            // An integer serde_json reads exactly (i64, u64) is written as it is; a longer
            // one is a double to it, written in ECMAScript form (checked below).
            if text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok() {
                return text != "-0";
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => es_number(f) == text,
            _ => false,
        }
    }
}

/// A finite double as ECMAScript's `Number.prototype.toString` writes it (RFC 8785 §3.2.2.3):
/// the shortest round-trip digits, plain notation for 1e-6 ≤ |f| < 1e21, else `d.ddde±x`.
fn es_number(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        // JSON has no NaN or infinity; serde_json never produces them.
        return "0".to_owned();
    }
    let sci = format!("{:e}", f.abs()); // shortest round-trip digits, e.g. "1.5e-7"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let sign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{sign}{}", e.abs())
        }
    };
    if f < 0.0 { format!("-{body}") } else { body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_written_as_ecmascript_does() {
        // RFC 8785 Appendix B's IEEE 754 → JSON table, and ES's plain/exponent boundaries.
        for (f, want) in [
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (333333333.3333333, "333333333.3333333"),
            (-5e-324, "-5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740992.0, "9007199254740992"),
            (295147905179352830000.0, "295147905179352830000"),
            (4.5, "4.5"),
            (0.93, "0.93"),
            (-0.0, "0"),
            (1.5e-7, "1.5e-7"),
        ] {
            assert_eq!(es_number(f), want, "{f:e}");
        }
        let v = json!({"n": 1e21, "m": 2.0_f64, "k": 1e-7});
        assert_eq!(canonical_json(&v), br#"{"k":1e-7,"m":2,"n":1e+21}"#);
    }

    #[test]
    fn canonical_bytes_are_recognised_and_anything_else_is_not() {
        let v = json!({"b": [1, 2.5, true, null, -0.5, 1e21], "a": {"z": "\u{e9}\n\u{1}\"\\", "y": 1.0},
                       "\u{20ac}": 0, "\u{1f600}": {}, "e": [], "n": -12});
        let c = canonical_json(&v);
        assert!(is_canonical_json(&c), "{}", String::from_utf8_lossy(&c));
        for bad in [
            &br#"{"a":1, "b":2}"#[..], // whitespace
            br#"{"b":1,"a":2}"#,       // unsorted
            br#"{"a":1,"a":2}"#,       // duplicate key
            br#"{"a":"\u0041"}"#,      // needless escape
            br#"{"a":"\u000a"}"#,      // \n has a short form
            br#"{"a":"\u001F"}"#,      // uppercase hex
            br#"{"a":"\/"}"#,          // needless escape
            br#"{"a":1.0}"#,           // not the shortest form
            br#"{"a":1e21}"#,          // ES writes 1e+21
            br#"{"a":01}"#,
            br#"{"a":-0}"#,
            br#"{"a":1}x"#,
            b"{\"a\":\"\x01\"}", // raw control character
            b"{\"a\":\"\xff\"}", // not UTF-8
            br#"[1,]"#,
            br#"{"a":nul}"#,
        ] {
            assert!(!is_canonical_json(bad), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(
            !is_canonical_json(deep.as_bytes()),
            "too deep is refused, not a stack overflow"
        );
    }

    #[test]
    fn a_record_with_any_float_reads_back_with_a_valid_hash() {
        // Found by fuzzing (wharf-fuzz): serde_json's default float parser gets about one
        // double in ten wrong by an ULP (0.9883853299755387 is read as …389), so a genuine
        // record holding such a metric failed its own hash check once read back. The
        // workspace enables serde_json's `float_roundtrip`.
        for f in [
            0.9883853299755387,
            0.22981246145434542,
            0.018231867957088754,
            -2.156692565404319e70,
        ] {
            let event: AuditEvent = serde_json::from_value(json!({
                "type": "run", "run_id": "run-1", "project": "p",
                "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z",
                "environment": "dev", "actor": {"id": "ci", "kind": "local"}, "outcome": "passed",
                "stages": [{"name": "governance", "status": "passed", "started_at": "2026-01-01T00:00:00Z",
                            "duration_ms": 1, "summary": "ok", "details": {"accuracy": f}}],
            }))
            .unwrap();
            let r = StoredRecord::chain(0, None, OffsetDateTime::UNIX_EPOCH, event).unwrap();
            let stored = canonical_json(&serde_json::to_value(&r).unwrap());
            let back: StoredRecord = serde_json::from_slice(&stored).unwrap();
            assert!(
                back.hash_is_valid(),
                "{f:e}: {}",
                String::from_utf8_lossy(&stored)
            );
            assert_eq!(back, r, "{f:e}");
            assert!(is_canonical_json(&stored));
        }
    }

    #[test]
    fn integers_beyond_64_bits_are_canonical_only_as_doubles() {
        // Found by fuzzing (wharf-fuzz): -9223372036854775809 was accepted as canonical,
        // but it reads as a double, which canonical_json writes -9223372036854776000: a
        // verifier hashing the bytes and one re-canonicalizing them disagreed.
        for (text, canonical) in [
            ("-9223372036854775809", false),
            ("18446744073709551616", false),
            ("99999999999999999999", false),
            ("-9223372036854775808", true),
            ("18446744073709551615", true),
            ("18446744073709552000", true),
            ("-9223372036854776000", true),
            ("100000000000000000000", true),
        ] {
            let bytes = format!("[{text}]");
            let value: serde_json::Value = serde_json::from_str(&bytes).unwrap();
            assert_eq!(
                canonical_json(&value) == bytes.as_bytes(),
                canonical,
                "{text}"
            );
            assert_eq!(is_canonical_json(bytes.as_bytes()), canonical, "{text}");
        }
    }

    #[test]
    fn a_record_at_a_huge_sequence_is_a_gap_not_a_panic_or_an_allocation() {
        // Found by fuzzing (wharf-fuzz): a record claiming u64::MAX overflowed `position + 1`,
        // and one at 2^40 after record 0 made the walker allocate a slot per position up to
        // it (`audit verify` aborted on a stray `records/099999999999.json`).
        let event = || -> AuditEvent {
            serde_json::from_value(json!({
                "type": "run", "run_id": "run-1", "project": "p",
                "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z",
                "environment": "dev", "actor": {"id": "ci", "kind": "local"},
                "outcome": "passed", "stages": [],
            }))
            .unwrap()
        };
        let first = StoredRecord::chain(0, None, OffsetDateTime::UNIX_EPOCH, event()).unwrap();
        for far in [1u64 << 40, u64::MAX - 1, u64::MAX] {
            let stray = StoredRecord::chain(
                far,
                Some(first.hash.clone()),
                OffsetDateTime::UNIX_EPOCH,
                event(),
            )
            .unwrap();
            let report = verify_chain(&[first.clone(), stray.clone()], None);
            assert!(
                report.problems.contains(&ChainProblem::Gap {
                    first: 1,
                    last: far - 1
                }),
                "{far}: {report:?}"
            );
            let alone = verify_chain(std::slice::from_ref(&stray), Some(&first.hash));
            assert_eq!(alone.checked, 1, "{far}");
            let mut walker = ChainWalker::new(far, None, DEFAULT_CLOCK_SKEW);
            walker.record(far, (&stray).into(), true);
            assert_eq!(walker.last_position(), Some(far));
            assert_eq!(walker.hash_at(far), Some(&stray.hash));
        }
    }

    #[test]
    fn canonical_json_sorts_and_compacts() {
        let v = json!({"b": [1, 2.5, true, null], "a": {"z": "\u{e9}\n", "y": 1.0}, "\u{20ac}": 0, "\u{1f600}": 1});
        let s = String::from_utf8(canonical_json(&v)).unwrap();
        // By UTF-16 code units U+20AC (0x20AC) sorts before U+1F600 (0xD83D 0xDE00).
        assert_eq!(
            s,
            "{\"a\":{\"y\":1,\"z\":\"\u{e9}\\n\"},\"b\":[1,2.5,true,null],\"\u{20ac}\":0,\"\u{1f600}\":1}"
        );
    }
}
