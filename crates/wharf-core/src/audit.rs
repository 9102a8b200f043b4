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

/// Walk records in storage order and report every problem. `expected_prev` is the hash the
/// first record must link to (`None` when the range starts at the beginning of the log).
pub fn verify_chain(records: &[StoredRecord], expected_prev: Option<&Digest>) -> ChainReport {
    let mut problems = Vec::new();
    let mut seen_runs: std::collections::HashMap<&str, (u64, &Digest)> =
        std::collections::HashMap::new();
    let mut prev: Option<&StoredRecord> = None;
    for r in records {
        if !r.hash_is_valid() {
            problems.push(ChainProblem::HashMismatch {
                sequence: r.sequence,
            });
        }
        match prev {
            None => {
                if r.prev_hash.as_ref() != expected_prev {
                    problems.push(ChainProblem::BrokenLink {
                        sequence: r.sequence,
                    });
                }
            }
            Some(p) => {
                if r.sequence <= p.sequence {
                    problems.push(ChainProblem::OutOfOrder {
                        position: p.sequence + 1,
                        claims: r.sequence,
                    });
                } else if r.sequence > p.sequence + 1 {
                    problems.push(ChainProblem::Gap {
                        first: p.sequence + 1,
                        last: r.sequence - 1,
                    });
                } else if r.prev_hash.as_ref() != Some(&p.hash) {
                    problems.push(ChainProblem::BrokenLink {
                        sequence: r.sequence,
                    });
                }
            }
        }
        if let Some(&(original, original_hash)) = seen_runs.get(r.event.run_id()) {
            problems.push(if original_hash == &r.hash {
                ChainProblem::Replay {
                    sequence: r.sequence,
                    original,
                }
            } else {
                ChainProblem::Duplicate {
                    sequence: r.sequence,
                    original,
                    run_id: r.event.run_id().to_owned(),
                }
            });
        } else {
            seen_runs.insert(r.event.run_id(), (r.sequence, &r.hash));
        }
        prev = Some(r);
    }
    ChainReport {
        checked: records.len() as u64,
        head: records.last().map(|r| r.hash.clone()),
        problems,
    }
}

/// An append-only, tamper-evident log of audit events.
///
/// Nothing updates or deletes a record. `append` either stores the record durably and
/// returns a receipt, or fails: a record is never dropped silently.
#[async_trait]
pub trait AuditLog: fmt::Debug + Send + Sync + 'static {
    /// Append `event` after the current head.
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
        Value::Null | Value::Bool(_) | Value::String(_) => {
            // serde_json's escaping of strings is the minimal JSON escaping RFC 8785 asks for.
            out.extend_from_slice(value.to_string().as_bytes());
        }
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
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
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
