//! `fsck` for a directory of OCI layouts: every blob re-hashed, every index entry and
//! every blob a manifest names looked for, stale temp files found — and, with `repair`,
//! damaged blobs and stale temp files removed so the next push stores them afresh.

use std::path::{Path, PathBuf};

use serde::Serialize;
use wharf_core::{Descriptor, Digest, ImageIndex, ImageManifest, media_types};

use crate::RegistryError;
use crate::layout::{LayoutRegistry, STAGING_DIR, TEMP_DIR};

/// One thing found damaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FsckProblem {
    /// The repository (layout directory under the root).
    pub repo: String,
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong, for people.
    pub what: String,
    /// Whether `repair` removed it.
    pub repaired: bool,
}

/// What [`LayoutRegistry::fsck`] found.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct FsckReport {
    /// Layout directories checked.
    pub repositories: usize,
    /// Blobs re-hashed.
    pub blobs: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Problems, in the order found.
    pub problems: Vec<FsckProblem>,
}

impl FsckReport {
    /// True when nothing is (still) damaged.
    pub fn is_clean(&self) -> bool {
        self.problems.iter().all(|p| p.repaired)
    }
}

impl LayoutRegistry {
    /// Check every layout under the root: each blob hashes to its name, `index.json` parses,
    /// each manifest it lists and each blob a manifest names is there with its size, and
    /// no temp file of a dead writer is left. With `repair`, damaged blobs and stale temp
    /// files are removed (a later push of the same content stores it again; a tag whose
    /// manifest is gone stays named as a problem until then). Reads every blob once.
    pub async fn fsck(&self, repair: bool) -> Result<FsckReport, RegistryError> {
        let root = self.root().to_path_buf();
        wharf_core::blocking::unblock(move || fsck_root(&root, repair)).await
    }
}

fn fsck_root(root: &Path, repair: bool) -> Result<FsckReport, RegistryError> {
    let mut report = FsckReport::default();
    for temp in [root.join(TEMP_DIR), root.join(STAGING_DIR)] {
        if let Ok(entries) = std::fs::read_dir(&temp) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if crate::tempfiles::is_stale(&name) {
                    let repaired = repair && std::fs::remove_file(e.path()).is_ok();
                    report.problems.push(FsckProblem {
                        repo: String::new(),
                        path: e.path(),
                        what: "temp file of a writer that is gone (a killed run)".into(),
                        repaired,
                    });
                }
            }
        }
    }
    for dir in layouts(root)? {
        let repo = dir
            .strip_prefix(root)
            .unwrap_or(&dir)
            .to_string_lossy()
            .into_owned();
        report.repositories += 1;
        fsck_layout(&dir, &repo, repair, &mut report)?;
    }
    Ok(report)
}

/// Every directory under `root` holding an `oci-layout` file (hidden directories skipped).
fn layouts(root: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join("oci-layout").is_file() {
            out.push(dir.clone());
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| RegistryError::io("listing", &dir, e))?;
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "blobs" {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn fsck_layout(
    dir: &Path,
    repo: &str,
    repair: bool,
    report: &mut FsckReport,
) -> Result<(), RegistryError> {
    let mut problem = |path: PathBuf, what: String, fixable: bool| {
        let repaired = fixable && repair && std::fs::remove_file(&path).is_ok();
        report.problems.push(FsckProblem {
            repo: repo.to_owned(),
            path,
            what,
            repaired,
        });
    };
    // Blobs: each hashes to its name; temp files of the old layout (inside blobs/) and of
    // dead writers are garbage.
    let mut intact: std::collections::BTreeMap<Digest, u64> = Default::default();
    let blobs = dir.join("blobs");
    let mut checked = (0usize, 0u64);
    for alg in std::fs::read_dir(&blobs).into_iter().flatten().flatten() {
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        for e in std::fs::read_dir(alg.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with(".tmp-") || name.ends_with(".tmp") {
                problem(
                    path,
                    "temp file inside blobs/ (left by a killed writer)".into(),
                    true,
                );
                continue;
            }
            let Ok(expected) = format!("{alg_name}:{name}").parse::<Digest>() else {
                problem(path, "not a blob: its name is not a digest".into(), false);
                continue;
            };
            let (actual, len) = hash(&path)?;
            checked.0 += 1;
            checked.1 += len;
            if actual == expected {
                intact.insert(expected, len);
            } else if len == 0 {
                problem(path, "truncated to 0 bytes".into(), true);
            } else {
                problem(
                    path,
                    format!("corrupt: {len} bytes hashing to {actual}, not its name"),
                    true,
                );
            }
        }
    }
    report.blobs += checked.0;
    report.bytes += checked.1;
    // The index and what it names.
    let index_path = dir.join("index.json");
    let index = match std::fs::read(&index_path)
        .ok()
        .and_then(|b| ImageIndex::from_slice(&b, "index.json").ok())
    {
        Some(i) => i,
        None => {
            report.problems.push(FsckProblem {
                repo: repo.to_owned(),
                path: index_path,
                what: "index.json is missing or not an OCI image index".into(),
                repaired: false,
            });
            return Ok(());
        }
    };
    let blob_path = |d: &Digest| blobs.join(d.algorithm().as_str()).join(d.hex());
    let mut missing = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut queue: Vec<(Descriptor, String)> = index
        .manifests
        .iter()
        .map(|d| {
            let name = d
                .annotations
                .get(crate::layout::REF_NAME)
                .map_or_else(|| format!("entry {}", d.digest), |t| format!("tag {t}"));
            (d.clone(), name)
        })
        .collect();
    while let Some((desc, named_by)) = queue.pop() {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        if intact.get(&desc.digest) != Some(&desc.size) {
            missing.push((
                blob_path(&desc.digest),
                format!(
                    "{} named by {named_by} is missing, damaged or of another size: push it again",
                    desc.digest
                ),
            ));
            continue;
        }
        let is_manifest = matches!(
            desc.media_type.as_str(),
            media_types::OCI_MANIFEST
                | media_types::OCI_INDEX
                | media_types::DOCKER_MANIFEST_V2
                | media_types::DOCKER_MANIFEST_LIST
        );
        if !is_manifest {
            continue;
        }
        let Ok(bytes) = std::fs::read(blob_path(&desc.digest)) else {
            continue;
        };
        let what = format!("manifest {}", desc.digest);
        if let Ok(m) = ImageManifest::from_slice(&bytes, &what)
            && !matches!(
                desc.media_type.as_str(),
                media_types::OCI_INDEX | media_types::DOCKER_MANIFEST_LIST
            )
        {
            for child in std::iter::once(m.config).chain(m.layers) {
                queue.push((child, what.clone()));
            }
        } else if let Ok(i) = ImageIndex::from_slice(&bytes, &what) {
            for child in i.manifests {
                queue.push((child, what.clone()));
            }
        }
    }
    for (path, what) in missing {
        report.problems.push(FsckProblem {
            repo: repo.to_owned(),
            path,
            what,
            repaired: false,
        });
    }
    Ok(())
}

/// The SHA-256 digest and length of a file, streamed.
fn hash(path: &Path) -> Result<(Digest, u64), RegistryError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| RegistryError::io("reading", path, e))?;
    let mut hasher = wharf_core::Hasher::new(wharf_core::Algorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| RegistryError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let len = hasher.len();
    Ok((hasher.finish(), len))
}
