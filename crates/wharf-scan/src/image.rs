//! An image's layers, read from an OCI layout on disk or through any [`Registry`], fed to
//! the [`Inventory`] one at a time as they stream.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use wharf_core::{
    Descriptor, Digest, ImageIndex, ImageManifest, Registry, ScanTarget, media_types,
};

use crate::inventory::{Inventory, InventoryReport};
use crate::{Error, Result};

/// The largest manifest read.
const MAX_MANIFEST: u64 = 4 << 20;

/// Whether a layer can hold files worth inventorying: tar layers, but not model weights.
fn worth_reading(layer: &Descriptor) -> bool {
    let mt = layer.media_type.as_str();
    let tar = mt.contains(".tar") || mt.contains("rootfs.diff");
    tar && !mt.starts_with("application/vnd.cncf.model.weight.v1")
}

/// Pick the image manifest: an index's linux/amd64 entry (else its first image).
fn choose(index: &ImageIndex) -> Option<&Descriptor> {
    let images = || {
        index
            .manifests
            .iter()
            .filter(|d| media_types::is_manifest(&d.media_type))
    };
    images()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .or_else(|| images().next())
}

fn is_index(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default, rename = "mediaType")]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(bytes).is_ok_and(|p| {
        p.manifests.is_some()
            || p.media_type.as_deref().is_some_and(|m| {
                m == media_types::OCI_INDEX || m == media_types::DOCKER_MANIFEST_LIST
            })
    })
}

fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout
        .join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

fn read_small(path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MANIFEST).read_to_end(&mut out))
        .map_err(|e| Error::Layer(format!("{}: {e}", path.display())))?;
    Ok(out)
}

/// The inventory of the image `target` names: from its layout directly, or through
/// `registry` for a registry image.
pub async fn inventory(
    target: &ScanTarget,
    registry: Option<&Arc<dyn Registry>>,
) -> Result<InventoryReport> {
    match target {
        ScanTarget::Layout { path, digest } => {
            let (path, digest) = (path.clone(), digest.clone());
            wharf_core::blocking::unblock(move || layout_inventory(&path, &digest)).await
        }
        ScanTarget::Image { reference, digest } => {
            let registry = registry.ok_or_else(|| {
                Error::Config(format!(
                    "{reference}: the OSV scanner reads registry images through a registry client: give it one (OsvScanner::with_registry), or scan the OCI layout"
                ))
            })?;
            registry_inventory(registry.as_ref(), reference.path(), digest).await
        }
        other => Err(Error::Config(format!("cannot scan {other:?}"))),
    }
}

fn layout_inventory(layout: &Path, digest: &Digest) -> Result<InventoryReport> {
    if !layout.join("oci-layout").is_file() {
        return Err(Error::Layer(format!(
            "{} is not an OCI image layout (no oci-layout file)",
            layout.display()
        )));
    }
    let mut bytes = read_small(&blob_path(layout, digest))?;
    if is_index(&bytes) {
        let index = ImageIndex::from_slice(&bytes, &digest.to_string())?;
        let chosen = choose(&index)
            .ok_or_else(|| Error::Layer(format!("index {digest} lists no image manifest")))?;
        bytes = read_small(&blob_path(layout, &chosen.digest))?;
    }
    let manifest = ImageManifest::from_slice(&bytes, &digest.to_string())?;
    let reading: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| worth_reading(l))
        .collect();
    let skipped = manifest.layers.len() - reading.len();
    // Layers are read side by side (decompressing is the cost), applied in order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut read: Vec<Option<Result<crate::inventory::LayerFiles>>> =
        (0..reading.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        for (batch, slots) in reading.chunks(threads).zip(read.chunks_mut(threads)) {
            let handles: Vec<_> = batch
                .iter()
                .map(|layer| {
                    scope.spawn(move || {
                        let path = blob_path(layout, &layer.digest);
                        let file = std::fs::File::open(&path).map_err(|e| {
                            Error::Layer(format!("layer {}: {}: {e}", layer.digest, path.display()))
                        })?;
                        crate::inventory::read_layer(&layer.digest.to_string(), file)
                    })
                })
                .collect();
            for (slot, h) in slots.iter_mut().zip(handles) {
                *slot = Some(h.join().unwrap_or_else(|_| {
                    Err(Error::Layer("a layer reader thread panicked".into()))
                }));
            }
        }
    });
    let mut inv = Inventory::new();
    for files in read.into_iter().flatten() {
        inv.apply(files?);
    }
    let mut report = inv.finish();
    if skipped > 0 {
        report.notes.push(format!(
            "{skipped} layer(s) not read: model weights and non-tar media types hold no packages"
        ));
    }
    Ok(report)
}

async fn registry_inventory(
    registry: &dyn Registry,
    repo: &str,
    digest: &Digest,
) -> Result<InventoryReport> {
    let mut m = registry.fetch_manifest(repo, digest).await?;
    if is_index(&m.bytes) {
        let index = ImageIndex::from_slice(&m.bytes, &digest.to_string())?;
        let chosen = choose(&index)
            .ok_or_else(|| Error::Layer(format!("index {digest} lists no image manifest")))?;
        m = registry.fetch_manifest(repo, &chosen.digest).await?;
    }
    let manifest = ImageManifest::from_slice(&m.bytes, &digest.to_string())?;
    let layers: Vec<Descriptor> = manifest.layers.into_iter().filter(worth_reading).collect();
    // The blocking side walks each tar as the async side pumps its chunks through a small
    // channel: at most a few chunks of any layer are in memory.
    let (mut tx, rx) = futures::channel::mpsc::channel::<wharf_core::Result<bytes::Bytes>>(4);
    let (layer_tx, layer_rx) = std::sync::mpsc::channel::<String>();
    let walk = wharf_core::blocking::unblock(move || {
        let mut reader = ChannelRead {
            rx,
            chunk: bytes::Bytes::new(),
            done: false,
        };
        let mut inv = Inventory::new();
        while let Ok(layer) = layer_rx.recv() {
            reader.done = false;
            inv.add_layer(&layer, &mut reader)?;
            // Drain what tar did not read (padding), up to the layer's end marker.
            std::io::copy(&mut reader, &mut std::io::sink())
                .map_err(|e| Error::Layer(format!("layer {layer}: {e}")))?;
        }
        Ok::<_, Error>(inv.finish())
    });
    let pump = async move {
        for layer in layers {
            if layer_tx.send(layer.digest.to_string()).is_err() {
                return Ok(());
            }
            let mut stream = registry.fetch_blob(repo, &layer.digest).await?;
            while let Some(chunk) = stream.next().await {
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    return Ok(());
                }
            }
            // An empty chunk marks the end of a layer.
            if tx.send(Ok(bytes::Bytes::new())).await.is_err() {
                return Ok(());
            }
        }
        Ok::<_, Error>(())
    };
    let (walked, pumped) = futures::future::join(walk, pump).await;
    pumped?;
    walked
}

/// A blocking reader over chunks sent by the async side; an empty chunk ends a layer.
struct ChannelRead {
    rx: futures::channel::mpsc::Receiver<wharf_core::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
    done: bool,
}

impl Read for ChannelRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done {
                return Ok(0);
            }
            match wharf_core::blocking::block_on(self.rx.next()) {
                Some(Ok(c)) if c.is_empty() => {
                    self.done = true;
                    return Ok(0);
                }
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                None => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}
