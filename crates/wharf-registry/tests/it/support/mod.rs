//! Helpers shared by the integration tests.

pub(crate) mod fake;
pub(crate) mod proxy;
pub(crate) mod server;

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use wharf_core::registry::collect_blob;
use wharf_core::{BlobStream, Digest, Registry};
use wharf_registry::distribution::{
    Credentials, DistributionClient, DistributionClientBuilder, RetryPolicy,
};

/// The value of a variable `cargo xtask test` sets; a missing one fails the test, saying how
/// to get it.
pub(crate) fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with `cargo xtask test`, or start the backends with \
             `cargo xtask backends up` and `eval \"$(cargo xtask backends env)\"` first"
        )
    })
}

/// The plain registry (`WHARF_TEST_REGISTRY`).
pub(crate) fn registry() -> String {
    env("WHARF_TEST_REGISTRY")
}

/// A builder with explicit anonymous credentials (no docker config lookup) and quick retries.
pub(crate) fn builder(addr: &str) -> DistributionClientBuilder {
    DistributionClient::builder(addr)
        .credentials(Credentials::Anonymous)
        .retry(quick_retries())
}

/// An anonymous client.
pub(crate) fn client(addr: &str) -> DistributionClient {
    builder(addr).build().unwrap()
}

/// Retries with short delays, so fault tests stay fast.
pub(crate) fn quick_retries() -> RetryPolicy {
    RetryPolicy::new(
        4,
        std::time::Duration::from_millis(20),
        std::time::Duration::from_secs(2),
    )
}

/// A fresh repository name under `prefix`.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag = Digest::sha256_of(format!("{nanos}-{n}-{}", std::process::id()).as_bytes());
    format!("wharf-it/{prefix}-{}", &tag.hex()[..10])
}

/// Deterministic pseudo-random bytes.
pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `data` as a stream of `piece`-sized parts.
pub(crate) fn stream_of(data: &[u8], piece: usize) -> BlobStream {
    let parts: Vec<wharf_core::Result<Bytes>> = data
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(parts))
}

/// A whole blob, verified by the client's stream.
pub(crate) async fn fetch(
    reg: &dyn Registry,
    repo: &str,
    digest: &Digest,
) -> wharf_core::Result<Bytes> {
    collect_blob(reg.fetch_blob(repo, digest).await?, 1 << 30).await
}

/// A small image: a config, layers of pseudo-random bytes, and its OCI manifest.
pub(crate) struct Image {
    pub(crate) config: (wharf_core::Descriptor, Vec<u8>),
    pub(crate) layers: Vec<(wharf_core::Descriptor, Vec<u8>)>,
    pub(crate) manifest: wharf_core::registry::ManifestBytes,
}

impl Image {
    pub(crate) fn new(seed: u64, layer_sizes: &[usize]) -> Image {
        use wharf_core::{Descriptor, ImageManifest, media_types};
        let config_bytes = format!("{{\"seed\":{seed}}}").into_bytes();
        let config = Descriptor::for_bytes(media_types::OCI_CONFIG, &config_bytes);
        let layers: Vec<(Descriptor, Vec<u8>)> = layer_sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                let data = bytes(*size, seed * 1000 + i as u64);
                (
                    Descriptor::for_bytes(media_types::OCI_LAYER_TAR, &data),
                    data,
                )
            })
            .collect();
        let manifest = ImageManifest::new(
            config.clone(),
            layers.iter().map(|(d, _)| d.clone()).collect(),
        );
        Image {
            config: (config, config_bytes),
            manifest: wharf_core::registry::ManifestBytes::new(
                media_types::OCI_MANIFEST,
                manifest.to_vec(),
            ),
            layers,
        }
    }

    /// Every blob: config first.
    pub(crate) fn blobs(&self) -> Vec<&(wharf_core::Descriptor, Vec<u8>)> {
        std::iter::once(&self.config).chain(&self.layers).collect()
    }

    /// Pushes the blobs (streamed in 64 KiB pieces), then the manifest, tagged.
    pub(crate) async fn push(
        &self,
        reg: &dyn Registry,
        repo: &str,
        tag: &str,
    ) -> wharf_core::Descriptor {
        use wharf_core::registry::{PushBlobOptions, PushManifestOptions};
        for (d, data) in self.blobs() {
            let mut opts = PushBlobOptions::default();
            opts.size = Some(data.len() as u64);
            reg.push_blob(repo, &d.digest, stream_of(data, 64 << 10), &opts)
                .await
                .unwrap();
        }
        reg.push_manifest(repo, &self.manifest, &PushManifestOptions::tagged(tag))
            .await
            .unwrap()
    }
}
