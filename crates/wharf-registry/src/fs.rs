//! File operations as futures that complete on any executor (a Tokio runtime of either
//! flavour, `futures::executor::block_on`, …) without blocking it: `std::fs` run through
//! [`wharf_core::blocking::unblock`]. The OCI layout and packaging use these instead of
//! `tokio::fs`, which panics outside a Tokio runtime.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use wharf_core::blocking::unblock;

fn owned(path: &Path) -> PathBuf {
    path.to_path_buf()
}

/// `std::fs::read`.
pub(crate) async fn read(path: &Path) -> io::Result<Vec<u8>> {
    let p = owned(path);
    unblock(move || std::fs::read(p)).await
}

/// `std::fs::metadata`.
pub(crate) async fn metadata(path: &Path) -> io::Result<std::fs::Metadata> {
    let p = owned(path);
    unblock(move || std::fs::metadata(p)).await
}

/// Whether `path` exists (an error reading it counts as no).
pub(crate) async fn exists(path: &Path) -> bool {
    let p = owned(path);
    unblock(move || p.try_exists().unwrap_or(false)).await
}

/// `std::fs::create_dir_all`.
pub(crate) async fn create_dir_all(path: &Path) -> io::Result<()> {
    let p = owned(path);
    unblock(move || std::fs::create_dir_all(p)).await
}

/// `std::fs::rename`.
pub(crate) async fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (owned(from), owned(to));
    unblock(move || std::fs::rename(from, to)).await
}

/// `std::fs::remove_file`.
pub(crate) async fn remove_file(path: &Path) -> io::Result<()> {
    let p = owned(path);
    unblock(move || std::fs::remove_file(p)).await
}

/// `std::fs::hard_link`.
pub(crate) async fn hard_link(original: &Path, link: &Path) -> io::Result<()> {
    let (original, link) = (owned(original), owned(link));
    unblock(move || std::fs::hard_link(original, link)).await
}

/// A file opened for reading, with its length (for [`chunks`]).
pub(crate) async fn open_with_len(path: &Path) -> io::Result<(std::fs::File, u64)> {
    let p = owned(path);
    unblock(move || {
        let file = std::fs::File::open(p)?;
        let len = file.metadata()?.len();
        Ok((file, len))
    })
    .await
}

/// A file being written, chunk by chunk, off the executor.
pub(crate) struct File(Option<std::fs::File>);

impl File {
    /// `std::fs::File::create`.
    pub(crate) async fn create(path: &Path) -> io::Result<Self> {
        let p = owned(path);
        Ok(Self(Some(unblock(move || std::fs::File::create(p)).await?)))
    }

    async fn with<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut std::fs::File) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let mut file = self
            .0
            .take()
            .ok_or_else(|| io::Error::other("an earlier write to this file was interrupted"))?;
        let (file, result) = unblock(move || {
            let result = f(&mut file);
            (file, result)
        })
        .await;
        self.0 = Some(file);
        result
    }

    /// Write all of `bytes`.
    pub(crate) async fn write_all(&mut self, bytes: Bytes) -> io::Result<()> {
        self.with(move |f| f.write_all(&bytes)).await
    }

    /// `sync_all`: data and metadata on disk.
    pub(crate) async fn sync_all(&mut self) -> io::Result<()> {
        self.with(|f| f.sync_all()).await
    }
}

/// A stream over the `len` bytes of `file` from where it stands, `chunk` bytes at a time
/// (never the whole file in memory); fewer bytes than `len` is an `UnexpectedEof` error.
pub(crate) fn chunks(
    file: std::fs::File,
    len: u64,
    chunk: usize,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::try_unfold((file, len), move |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = usize::try_from(left).map_or(chunk, |l| l.min(chunk));
        let (file, bytes) = unblock(move || -> io::Result<_> {
            let mut buf = vec![0u8; want];
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the file ended before its expected size",
                        ));
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((file, Bytes::from(buf)))
        })
        .await?;
        Ok(Some((bytes, (file, left - want as u64))))
    })
}
