//! Writing one uncompressed tar layer to a staged file, hashed as it is written.
//!
//! Hashing costs about as much as the copy itself, so the two run side by side: the
//! writing thread reads the source files straight into fixed chunks, writes each chunk to
//! the staged file and hands it to a hashing thread, which gives it back once hashed; a third
//! thread syncs what is written every [`SYNC_EVERY`] bytes, so the sync that makes the layer
//! durable overlaps the copy instead of following it. The
//! hash is over exactly the bytes written (the same chunk), memory stays at [`CHUNKS`] ×
//! [`CHUNK`] whatever the layer's size, and the tar bytes are the `tar` crate's own (its
//! headers, GNU long names, 512-byte padding and the two-block trailer), so digests do not
//! change with the way they are computed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use wharf_core::{Digest, Hasher};

use crate::RegistryError;

/// Bytes in one chunk: large enough that a gigabyte is a few hundred syscalls.
const CHUNK: usize = 4 << 20;
/// Chunks in flight at most (being filled, written or hashed).
const CHUNKS: usize = 3;
/// Bytes written between two background syncs.
const SYNC_EVERY: u64 = 64 << 20;
/// A tar block.
const BLOCK: usize = 512;

/// One entry of a layer tar.
pub(crate) enum TarItem {
    /// A directory entry (mode 0755).
    Dir(String),
    /// A regular file streamed from `source`, stored as `name`.
    File { source: PathBuf, name: String },
}

/// Write a tar of `items` into `staging`, hashing as it streams, with normalized headers
/// (GNU format for long names, uid/gid 0, no owner names, mode 0644/0755, `mtime`); the file
/// is synced before this returns. Returns the digest, size and staged path (a per-process
/// temp name: concurrent packagers of the same content each own theirs, a registry may move
/// it into place, and a killed writer's file is stale).
pub(crate) fn write_tar(
    items: &[TarItem],
    mtime: u64,
    staging: &Path,
) -> Result<(Digest, u64, PathBuf), RegistryError> {
    std::fs::create_dir_all(staging).map_err(|e| RegistryError::io("creating", staging, e))?;
    let tmp = staging.join(crate::tempfiles::name("layer"));
    let out = std::fs::File::create(&tmp).map_err(|e| RegistryError::io("creating", &tmp, e))?;
    let mut failed_on: Option<PathBuf> = None;
    let result = std::thread::scope(|scope| {
        let (full_tx, full_rx) = mpsc::sync_channel::<Chunk>(CHUNKS);
        let (free_tx, free_rx) = mpsc::channel::<Chunk>();
        let hashing = scope.spawn(move || {
            let mut hasher = Hasher::new(wharf_core::Algorithm::Sha256);
            for chunk in full_rx {
                hasher.update(chunk.filled());
                // The writer may be gone (it failed): then the chunk is simply dropped.
                let _ = free_tx.send(chunk);
            }
            hasher
        });
        // Written pages go to disk while the rest is still being copied, so the final sync
        // has little left to do (a sync only at the end waits for the whole layer).
        let (sync_tx, sync_rx) = mpsc::channel::<()>();
        let syncing = out.try_clone().map(|file| {
            scope.spawn(move || -> std::io::Result<()> {
                while sync_rx.recv().is_ok() {
                    while sync_rx.try_recv().is_ok() {}
                    file.sync_data()?;
                }
                Ok(())
            })
        });
        let mut sink = Sink {
            out: &out,
            full: Some(full_tx),
            free: free_rx,
            allocated: 0,
            current: None,
            written: 0,
            unsynced: 0,
            sync: syncing.is_ok().then_some(sync_tx),
        };
        let written = (|| -> std::io::Result<()> {
            for item in items {
                let (name, source) = match item {
                    TarItem::Dir(name) => (format!("{}/", name.trim_end_matches('/')), None),
                    TarItem::File { source, name } => (name.clone(), Some(source)),
                };
                let Some(source) = source else {
                    sink.put(&header_blocks(&name, None, mtime)?)?;
                    continue;
                };
                failed_on = Some(source.clone());
                let mut file = std::fs::File::open(source)?;
                let meta = file.metadata()?;
                sink.put(&header_blocks(&name, Some(&meta), mtime)?)?;
                sink.copy_exactly(&mut file, meta.len())?;
                // A file that grew while it was copied is refused too.
                let mut probe = [0u8; 1];
                if file.read(&mut probe)? != 0 {
                    return Err(changed());
                }
                sink.pad()?;
            }
            failed_on = None;
            // The end of the archive: two zero blocks.
            sink.put(&[0u8; 2 * BLOCK])?;
            sink.finish()?;
            Ok(())
        })();
        // Closing the channels ends the hashing and syncing threads whether or not the
        // write succeeded.
        sink.full = None;
        sink.sync = None;
        let synced = match syncing {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the syncing thread panicked"))),
            Err(e) => Err(e),
        };
        let written = written.and(synced).and_then(|()| out.sync_all());
        let hasher = hashing
            .join()
            .map_err(|_| std::io::Error::other("the hashing thread panicked"));
        written.and(hasher).map(|h| (h, sink.written))
    });
    let (hasher, written) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(RegistryError::io(
                "packaging",
                failed_on.unwrap_or_else(|| tmp.clone()),
                e,
            ));
        }
    };
    debug_assert_eq!(hasher.len(), written);
    let size = hasher.len();
    Ok((hasher.finish(), size, tmp))
}

/// The header block(s) of one entry, as `tar::Builder` writes them (a GNU long-name entry
/// first where the name needs one): a directory when `meta` is `None`, else a regular file
/// of `meta`'s size and executable bit.
fn header_blocks(
    name: &str,
    meta: Option<&std::fs::Metadata>,
    mtime: u64,
) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("")?;
    header.set_groupname("")?;
    header.set_mtime(mtime);
    match meta {
        None => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
        }
        Some(meta) => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if is_executable(meta) { 0o755 } else { 0o644 });
            header.set_size(meta.len());
        }
    }
    // The builder writes the entry's headers, no data (the data is streamed by the caller),
    // and on finishing the two trailer blocks, which are cut off again.
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_data(&mut header, name, std::io::empty())?;
    let mut bytes = builder.into_inner()?;
    let headers = bytes
        .len()
        .checked_sub(2 * BLOCK)
        .filter(|n| n % BLOCK == 0 && *n > 0);
    let Some(headers) = headers else {
        return Err(std::io::Error::other(
            "the tar builder wrote an unexpected header",
        ));
    };
    bytes.truncate(headers);
    Ok(bytes)
}

fn changed() -> std::io::Error {
    std::io::Error::other("the file changed while it was being packaged")
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// A fixed buffer and how much of it is filled.
struct Chunk {
    data: Box<[u8]>,
    len: usize,
}

impl Chunk {
    fn filled(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

/// The writing side: fills chunks, writes each full one to `out` and sends it to be hashed.
struct Sink<'a> {
    out: &'a std::fs::File,
    full: Option<mpsc::SyncSender<Chunk>>,
    free: mpsc::Receiver<Chunk>,
    allocated: usize,
    current: Option<Chunk>,
    written: u64,
    /// Bytes written since the syncing thread was last asked to sync.
    unsynced: u64,
    /// Asks the syncing thread to sync what is written so far.
    sync: Option<mpsc::Sender<()>>,
}

impl Sink<'_> {
    /// The chunk being filled, taking a hashed one back (or allocating, up to [`CHUNKS`]).
    fn current(&mut self) -> std::io::Result<&mut Chunk> {
        if self.current.is_none() {
            let chunk = match self.free.try_recv() {
                Ok(c) => c,
                Err(_) if self.allocated < CHUNKS => {
                    self.allocated += 1;
                    Chunk {
                        data: vec![0u8; CHUNK].into_boxed_slice(),
                        len: 0,
                    }
                }
                Err(_) => self.free.recv().map_err(|_| hashing_stopped())?,
            };
            self.current = Some(Chunk { len: 0, ..chunk });
        }
        Ok(self.current.as_mut().expect("just filled"))
    }

    /// Write the current chunk out and send it to be hashed.
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        let Some(chunk) = self.current.take() else {
            return Ok(());
        };
        if chunk.len == 0 {
            self.current = Some(chunk);
            return Ok(());
        }
        self.out.write_all(chunk.filled())?;
        self.written += chunk.len as u64;
        self.unsynced += chunk.len as u64;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            if let Some(sync) = &self.sync {
                // A syncing thread that stopped has failed: its error is reported at the end.
                let _ = sync.send(());
            }
        }
        self.full
            .as_ref()
            .ok_or_else(hashing_stopped)?
            .send(chunk)
            .map_err(|_| hashing_stopped())
    }

    /// Append `bytes` (headers, padding: small).
    fn put(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let chunk = self.current()?;
            let n = bytes.len().min(CHUNK - chunk.len);
            chunk.data[chunk.len..chunk.len + n].copy_from_slice(&bytes[..n]);
            chunk.len += n;
            bytes = &bytes[n..];
            if chunk.len == CHUNK {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    /// Read exactly `len` bytes of `file` straight into chunks; fewer is an error (the file
    /// shrank while it was packaged).
    fn copy_exactly(&mut self, file: &mut std::fs::File, mut len: u64) -> std::io::Result<()> {
        while len > 0 {
            let chunk = self.current()?;
            let room = (CHUNK - chunk.len).min(usize::try_from(len).unwrap_or(usize::MAX));
            let n = match file.read(&mut chunk.data[chunk.len..chunk.len + room]) {
                Ok(0) => return Err(changed()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            chunk.len += n;
            len -= n as u64;
            if chunk.len == CHUNK {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    /// Zeros up to the next block boundary.
    fn pad(&mut self) -> std::io::Result<()> {
        let rem = (self.written + self.current.as_ref().map_or(0, |c| c.len as u64)) % BLOCK as u64;
        if rem == 0 {
            return Ok(());
        }
        self.put(&[0u8; BLOCK][..BLOCK - rem as usize])
    }

    /// Write and hash what is left.
    fn finish(&mut self) -> std::io::Result<()> {
        self.flush_chunk()
    }
}

fn hashing_stopped() -> std::io::Error {
    std::io::Error::other("the hashing thread stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `tar::Builder` writes for `items`, as packaging wrote them before the
    /// hashing moved to its own thread.
    fn builder_bytes(items: &[TarItem], mtime: u64) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let (name, meta) = match item {
                TarItem::Dir(n) => (format!("{}/", n.trim_end_matches('/')), None),
                TarItem::File { source, name } => {
                    (name.clone(), Some(std::fs::metadata(source).unwrap()))
                }
            };
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_username("").unwrap();
            header.set_groupname("").unwrap();
            header.set_mtime(mtime);
            match (item, meta) {
                (TarItem::File { source, .. }, Some(meta)) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(if is_executable(&meta) { 0o755 } else { 0o644 });
                    header.set_size(meta.len());
                    builder
                        .append_data(&mut header, &name, std::fs::File::open(source).unwrap())
                        .unwrap();
                }
                _ => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, &name, std::io::empty())
                        .unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn bytes_are_the_tar_builders_and_the_digest_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        // Sizes around the block and chunk boundaries, an empty file, an executable, a long
        // name (a GNU long-name entry) and directories.
        let sizes = [
            0,
            1,
            511,
            512,
            513,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK + 700,
        ];
        let mut items = vec![TarItem::Dir("models".into())];
        for (i, size) in sizes.iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            let data: Vec<u8> = (0..*size).map(|j| (j * 31 + i) as u8).collect();
            std::fs::write(&path, data).unwrap();
            let name = if i == 3 {
                format!("models/{}/weights.bin", "deep".repeat(40))
            } else {
                format!("models/f{i}")
            };
            items.push(TarItem::File { source: path, name });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let exe = dir.path().join("f1");
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let expected = builder_bytes(&items, 1_700_000_000);
        let (digest, size, staged) = write_tar(&items, 1_700_000_000, &staging).unwrap();
        let written = std::fs::read(&staged).unwrap();
        assert_eq!(written.len(), expected.len());
        assert!(
            written == expected,
            "the staged layer differs from tar::Builder's bytes"
        );
        assert_eq!(size, expected.len() as u64);
        let (want, _) =
            Digest::from_reader(wharf_core::Algorithm::Sha256, expected.as_slice()).unwrap();
        assert_eq!(digest, want);
        // And the tar reads back with every entry.
        let mut archive = tar::Archive::new(written.as_slice());
        assert_eq!(archive.entries().unwrap().count(), items.len());
    }

    #[test]
    fn a_file_that_shrinks_or_grows_while_packaged_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights");
        std::fs::write(&path, vec![7u8; 10]).unwrap();
        // `copy_exactly` with a length the file does not have stands for a file that changed
        // between its stat and its read.
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let (full_tx, full_rx) = mpsc::sync_channel::<Chunk>(CHUNKS);
        let (_free_tx, free_rx) = mpsc::channel::<Chunk>();
        let mut sink = Sink {
            out: &out,
            full: Some(full_tx),
            free: free_rx,
            allocated: 0,
            current: None,
            written: 0,
            unsynced: 0,
            sync: None,
        };
        let mut file = std::fs::File::open(&path).unwrap();
        let err = sink.copy_exactly(&mut file, 11).unwrap_err();
        assert!(
            err.to_string()
                .contains("changed while it was being packaged")
        );
        drop(full_rx);
    }

    #[test]
    fn an_unreadable_source_removes_the_staged_file_and_names_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        let missing = dir.path().join("gone.bin");
        let err = write_tar(
            &[TarItem::File {
                source: missing.clone(),
                name: "gone.bin".into(),
            }],
            0,
            &staging,
        )
        .unwrap_err();
        assert!(err.to_string().contains("gone.bin"), "{err}");
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    }
}
