//! Memory stays flat while a 256 MiB blob streams to the real registry (`WHARF_TEST_REGISTRY`),
//! from a lazily generated stream and from a file. Its own test binary: peak RSS (`VmHWM`)
//! is per process, and tests in one binary share a process.
#![cfg(feature = "distribution")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt as _;
use wharf_core::registry::PushBlobOptions;
use wharf_core::{BlobStream, Digest, Hasher, Registry};
use wharf_registry::distribution::{Credentials, DistributionClient};

const SIZE: u64 = 256 << 20;
const PIECE: usize = 1 << 20;
/// Allowed growth of the peak RSS over the baseline.
const BUDGET: u64 = 64 << 20;

/// The process's peak resident set size so far (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib << 10
}

/// Piece `i` of the blob: a fixed pseudo-random MiB with the piece number in front. The same
/// bytes every run, so the registry stores them once however often the test runs.
fn piece(block: &[u8], i: u64) -> Bytes {
    let mut v = block.to_vec();
    v[..8].copy_from_slice(&i.to_le_bytes());
    Bytes::from(v)
}

fn block() -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..PIECE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// The blob as a stream generated on demand: never more than one piece in memory.
fn generated(block: Vec<u8>) -> BlobStream {
    let n = SIZE / PIECE as u64;
    Box::pin(futures_util::stream::iter(0..n).map(move |i| Ok(piece(&block, i))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_256_mib_keeps_memory_flat() {
    let registry = std::env::var("WHARF_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!(
            "WHARF_TEST_REGISTRY is not set: run the tests with `cargo xtask test`, or start the \
             backends with `cargo xtask backends up` and `eval \"$(cargo xtask backends env)\"` first"
        )
    });
    let block = block();
    let mut hasher = Hasher::new(wharf_core::Algorithm::Sha256);
    for i in 0..SIZE / PIECE as u64 {
        hasher.update(&piece(&block, i));
    }
    let digest: Digest = hasher.finish();
    let reg = DistributionClient::builder(&registry)
        .credentials(Credentials::Anonymous)
        .build()
        .unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let repo = format!("wharf-it/memory-{nanos}");

    let baseline = peak_rss();
    let started = Instant::now();
    let mut opts = PushBlobOptions::default();
    opts.size = Some(SIZE);
    let d = reg
        .push_blob(&repo, &digest, generated(block.clone()), &opts)
        .await
        .unwrap();
    let stream_time = started.elapsed();
    let after_stream = peak_rss();
    assert_eq!((d.digest.clone(), d.size), (digest.clone(), SIZE));
    assert_eq!(reg.blob_exists(&repo, &digest).await.unwrap(), Some(SIZE));

    // The same bytes from a file, into another repository.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..SIZE / PIECE as u64 {
            f.write_all(&piece(&block, i)).unwrap();
        }
    }
    let before_file = peak_rss();
    let started = Instant::now();
    let d = reg
        .push_blob_from_file(&format!("{repo}-file"), &path, &digest)
        .await
        .unwrap();
    let file_time = started.elapsed();
    let after_file = peak_rss();
    assert_eq!(d.size, SIZE);

    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    eprintln!(
        "256 MiB push: stream {stream_time:.2?} (peak RSS +{:.1} MiB over {:.1} MiB), file {file_time:.2?} (peak RSS +{:.1} MiB)",
        mib(after_stream - baseline),
        mib(baseline),
        mib(after_file.saturating_sub(before_file.max(after_stream))),
    );
    assert!(
        after_stream - baseline < BUDGET,
        "streaming 256 MiB grew the peak RSS by {:.1} MiB",
        mib(after_stream - baseline)
    );
    assert!(
        after_file - baseline < BUDGET,
        "the file push grew the peak RSS by {:.1} MiB",
        mib(after_file - baseline)
    );
}
