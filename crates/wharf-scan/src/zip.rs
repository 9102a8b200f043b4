//! Just enough of ZIP to read OSV's exports (`all.zip`: one JSON file per advisory, stored
//! or deflated, ZIP64 when they hold more than 65,535 entries), one entry at a time.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// One file in the archive.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
    method: u16,
    compressed: u64,
    uncompressed: u64,
    local_header: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a readable ZIP archive: {what}"),
    )
}

/// An open archive.
pub(crate) struct Archive {
    pub(crate) entries: Vec<Entry>,
}

/// The largest entry read into memory (an OSV record is kilobytes; 64 MiB is hostile).
const MAX_ENTRY: u64 = 64 << 20;

impl Archive {
    /// Read the central directory of `path`.
    pub(crate) fn open(path: &Path) -> io::Result<Archive> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        // The end-of-central-directory record sits in the last 64 KiB + 22 bytes.
        let tail_len = len.min(65_557);
        file.seek(SeekFrom::Start(len - tail_len))?;
        let mut tail = vec![0u8; tail_len as usize];
        file.read_exact(&mut tail)?;
        let eocd = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| u32_at(&tail, i) == 0x0605_4b50)
            .ok_or_else(|| bad("no end of central directory (truncated?)"))?;
        let mut count = u64::from(u16_at(&tail, eocd + 10));
        let mut cd_size = u64::from(u32_at(&tail, eocd + 12));
        let mut cd_offset = u64::from(u32_at(&tail, eocd + 16));
        // ZIP64: the locator sits 20 bytes before the EOCD.
        if (count == 0xFFFF || cd_offset == 0xFFFF_FFFF)
            && eocd >= 20
            && u32_at(&tail, eocd - 20) == 0x0706_4b50
        {
            let at = u64_at(&tail, eocd - 20 + 8);
            file.seek(SeekFrom::Start(at))?;
            let mut z = [0u8; 56];
            file.read_exact(&mut z)?;
            if u32_at(&z, 0) != 0x0606_4b50 {
                return Err(bad("broken ZIP64 end of central directory"));
            }
            count = u64_at(&z, 32);
            cd_size = u64_at(&z, 40);
            cd_offset = u64_at(&z, 48);
        }
        if cd_offset.checked_add(cd_size).is_none_or(|end| end > len) {
            return Err(bad(
                "central directory past the end of the file (truncated?)",
            ));
        }
        file.seek(SeekFrom::Start(cd_offset))?;
        let mut cd = vec![0u8; cd_size as usize];
        file.read_exact(&mut cd)?;
        let mut entries = Vec::with_capacity(count.min(1 << 20) as usize);
        let mut at = 0usize;
        while entries.len() < count as usize {
            if at + 46 > cd.len() || u32_at(&cd, at) != 0x0201_4b50 {
                return Err(bad("broken central directory entry"));
            }
            let method = u16_at(&cd, at + 10);
            let mut compressed = u64::from(u32_at(&cd, at + 20));
            let mut uncompressed = u64::from(u32_at(&cd, at + 24));
            let name_len = usize::from(u16_at(&cd, at + 28));
            let extra_len = usize::from(u16_at(&cd, at + 30));
            let comment_len = usize::from(u16_at(&cd, at + 32));
            let mut local_header = u64::from(u32_at(&cd, at + 42));
            let end = at + 46 + name_len + extra_len + comment_len;
            if end > cd.len() {
                return Err(bad("central directory entry past its end"));
            }
            let name = String::from_utf8_lossy(&cd[at + 46..at + 46 + name_len]).into_owned();
            // ZIP64 extra field: the 0xFFFFFFFF fields, in order.
            let mut extra = &cd[at + 46 + name_len..at + 46 + name_len + extra_len];
            while extra.len() >= 4 {
                let (id, size) = (u16_at(extra, 0), usize::from(u16_at(extra, 2)));
                let body = extra
                    .get(4..4 + size)
                    .ok_or_else(|| bad("broken extra field"))?;
                if id == 0x0001 {
                    let mut fields = body.chunks_exact(8).map(|c| u64_at(c, 0));
                    if uncompressed == 0xFFFF_FFFF {
                        uncompressed = fields.next().ok_or_else(|| bad("ZIP64 size"))?;
                    }
                    if compressed == 0xFFFF_FFFF {
                        compressed = fields.next().ok_or_else(|| bad("ZIP64 size"))?;
                    }
                    if local_header == 0xFFFF_FFFF {
                        local_header = fields.next().ok_or_else(|| bad("ZIP64 offset"))?;
                    }
                }
                extra = &extra[4 + size..];
            }
            entries.push(Entry {
                name,
                method,
                compressed,
                uncompressed,
                local_header,
            });
            at = end;
        }
        Ok(Archive { entries })
    }
}

/// The bytes of `entry`, from `file` (the archive, opened once per thread).
pub(crate) fn read_entry(file: &mut File, entry: &Entry) -> io::Result<Vec<u8>> {
    if entry.uncompressed > MAX_ENTRY {
        return Err(bad(&format!(
            "{} is {} bytes",
            entry.name, entry.uncompressed
        )));
    }
    file.seek(SeekFrom::Start(entry.local_header))?;
    let mut h = [0u8; 30];
    file.read_exact(&mut h)?;
    if u32_at(&h, 0) != 0x0403_4b50 {
        return Err(bad(&format!("{}: no local header", entry.name)));
    }
    let skip = u64::from(u16_at(&h, 26)) + u64::from(u16_at(&h, 28));
    file.seek(SeekFrom::Current(skip as i64))?;
    let raw = file.take(entry.compressed);
    let mut out = Vec::with_capacity(entry.uncompressed as usize);
    match entry.method {
        0 => BufReader::new(raw).take(MAX_ENTRY).read_to_end(&mut out)?,
        8 => flate2::read::DeflateDecoder::new(BufReader::new(raw))
            .take(MAX_ENTRY)
            .read_to_end(&mut out)?,
        m => return Err(bad(&format!("{}: compression method {m}", entry.name))),
    };
    if out.len() as u64 != entry.uncompressed {
        return Err(bad(&format!("{}: truncated entry", entry.name)));
    }
    Ok(out)
}

/// Write a ZIP of `files` (deflated), as OSV's exports are: for tests and benchmarks.
pub fn write_zip(path: &Path, files: &[(String, Vec<u8>)]) -> io::Result<()> {
    use std::io::Write;
    let mut out = io::BufWriter::new(File::create(path)?);
    let mut central = Vec::new();
    let mut offset = 0u64;
    for (name, data) in files {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data)?;
        let comp = enc.finish()?;
        let crc = crc32(data);
        let mut h = Vec::new();
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&[20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&(comp.len() as u32).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        out.write_all(&h)?;
        out.write_all(&comp)?;
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(comp.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&(offset as u32).to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        offset += (h.len() + comp.len()) as u64;
    }
    out.write_all(&central)?;
    let mut e = Vec::new();
    e.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    e.extend_from_slice(&[0; 4]);
    e.extend_from_slice(&(files.len() as u16).to_le_bytes());
    e.extend_from_slice(&(files.len() as u16).to_le_bytes());
    e.extend_from_slice(&(central.len() as u32).to_le_bytes());
    e.extend_from_slice(&(offset as u32).to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    out.write_all(&e)?;
    out.flush()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.zip");
        let files = vec![
            ("A-1.json".to_owned(), br#"{"id":"A-1"}"#.to_vec()),
            ("B-2.json".to_owned(), vec![b'x'; 100_000]),
        ];
        write_zip(&path, &files).unwrap();
        let a = Archive::open(&path).unwrap();
        assert_eq!(a.entries.len(), 2);
        let mut file = File::open(&path).unwrap();
        assert_eq!(read_entry(&mut file, &a.entries[1]).unwrap(), files[1].1);
        // The python zipfile module reads what we write.
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); print(z.testzip(), len(z.read('B-2.json')))"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "None 100000");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 30]).unwrap();
        let e = Archive::open(&path).err().unwrap();
        assert!(e.to_string().contains("not a readable ZIP"), "{e}");
    }
}
