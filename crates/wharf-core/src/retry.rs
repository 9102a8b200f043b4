//! Retrying requests that failed for a temporary reason: exponential backoff with full
//! jitter, and `Retry-After` values. Shared by the clients that talk to registries,
//! Sigstore and cloud services; no I/O here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How requests that failed for a temporary reason are retried: exponential backoff with
/// full jitter (a random delay between zero and `base_delay * 2^attempt`, capped at
/// `max_delay`), or the registry's `Retry-After` when it sends one (capped at `max_delay`).
///
/// Only requests that are safe to repeat are retried: `HEAD`, `GET`, `DELETE`, manifest
/// `PUT`s and uploads of bytes held in memory. An interrupted chunk upload is not repeated
/// blindly: the client asks the registry how much it received and sends the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included; `1` disables retries.
    pub max_attempts: u32,
    /// The backoff before the second attempt (before jitter).
    pub base_delay: Duration,
    /// The longest wait between two attempts, `Retry-After` included.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// A policy with these limits.
    pub fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts,
            base_delay,
            max_delay,
        }
    }

    /// No retries: every request is sent once.
    pub fn none() -> Self {
        Self::new(1, Duration::ZERO, Duration::ZERO)
    }

    /// The jittered backoff before attempt `attempt + 1` (`attempt` counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random_u64() % (nanos + 1))
    }

    /// The wait before the next attempt: the registry's `Retry-After` if it sent one, else
    /// the jittered backoff; never more than `max_delay`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_delay),
            None => self.backoff(attempt),
        }
    }
}

impl Default for RetryPolicy {
    /// Four attempts, 200 ms base delay, at most 10 s between attempts.
    fn default() -> Self {
        Self::new(4, Duration::from_millis(200), Duration::from_secs(10))
    }
}

/// A xorshift64* generator seeded from the clock and a counter: jitter only, not for secrets.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x = now ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D;
    // A few rounds so that close seeds give unrelated outputs.
    for _ in 0..4 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
    }
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Parses a `Retry-After` value relative to `now`.
pub fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = at - now;
    Some(if wait.is_negative() {
        Duration::ZERO
    } else {
        wait.unsigned_abs()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let policy = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(350));
        for attempt in 1..10 {
            for _ in 0..50 {
                let d = policy.backoff(attempt);
                let cap = (100u64 << (attempt - 1).min(20)).min(350);
                assert!(d <= Duration::from_millis(cap), "{attempt}: {d:?}");
            }
        }
        let spread: std::collections::BTreeSet<_> =
            (0..20).map(|_| policy.backoff(3).as_nanos()).collect();
        assert!(spread.len() > 10, "jitter must vary: {spread:?}");
        assert_eq!(RetryPolicy::none().backoff(1), Duration::ZERO);
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(30))),
            Duration::from_millis(350),
            "Retry-After is capped at max_delay"
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_millis(5))),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = time::macros::datetime!(1994-11-06 08:49:30 UTC);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
