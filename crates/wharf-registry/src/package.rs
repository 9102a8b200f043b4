//! Daemonless, reproducible packaging of a model directory as a CNCF ModelPack artifact.
//!
//! Each file becomes one uncompressed tar layer (`application/vnd.cncf.model.<role>.v1.tar`)
//! annotated with `org.cncf.model.filepath`, under a ModelPack config
//! (`application/vnd.cncf.model.config.v1+json`) and a manifest with
//! `artifactType: application/vnd.cncf.model.manifest.v1+json`.
//!
//! Reproducible: files in sorted order, tar headers with mode 0644/0755, uid/gid 0, empty
//! owner names and mtime from `SOURCE_DATE_EPOCH` (else 0), no timestamps in the config
//! unless `SOURCE_DATE_EPOCH` is set — the same inputs give the same digest on any machine.
//! Streaming: files are copied through fixed chunks, hashed on a second thread as they are
//! written (see `layer`), never read whole.
//! Safe: paths with `..`, absolute paths, and symlinks that resolve outside the model
//! directory are refused.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions, blob_stream_from};
use wharf_core::{Descriptor, Digest, ImageManifest, Registry, media_types};

use crate::RegistryError;
use crate::layer::{TarItem, write_tar};

/// The ModelPack layer annotation naming the file's path in the model directory.
pub const ANNOTATION_FILEPATH: &str = "org.cncf.model.filepath";

/// What a file is to the model (selects the ModelPack layer media type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Weights (`.safetensors`, `.onnx`, `.gguf`, …).
    Weight,
    /// Configuration of the weights (`config.json`, tokenizers, the model manifest).
    WeightConfig,
    /// Code (serving, pre-processing).
    Code,
    /// Documentation (model card, license).
    Doc,
    /// Data sets.
    Dataset,
}

impl Role {
    /// The ModelPack media type of an uncompressed tar layer of this role.
    pub fn media_type(self) -> &'static str {
        match self {
            Role::Weight => "application/vnd.cncf.model.weight.v1.tar",
            Role::WeightConfig => "application/vnd.cncf.model.weight.config.v1.tar",
            Role::Code => "application/vnd.cncf.model.code.v1.tar",
            Role::Doc => "application/vnd.cncf.model.doc.v1.tar",
            Role::Dataset => "application/vnd.cncf.model.dataset.v1.tar",
        }
    }

    /// Guess a role from a file name, for directories without an explicit file list.
    pub fn guess(path: &Path) -> Role {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "safetensors" | "bin" | "pt" | "pth" | "onnx" | "gguf" | "h5" | "pb" | "ckpt"
            | "joblib" | "pkl" | "npz" | "npy" | "tflite" | "mlmodel" | "keras" => Role::Weight,
            "py" | "ipynb" | "sh" | "r" | "js" | "ts" | "rs" | "go" | "java" => Role::Code,
            "md" | "rst" | "pdf" | "html" => Role::Doc,
            "csv" | "parquet" | "jsonl" | "arrow" | "tfrecord" => Role::Dataset,
            _ if name.starts_with("license")
                || name.starts_with("readme")
                || name.starts_with("notice") =>
            {
                Role::Doc
            }
            _ => Role::WeightConfig,
        }
    }
}

/// One file to package.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileEntry {
    /// Path relative to the model directory, `/`-separated.
    pub path: String,
    /// Its role.
    pub role: Role,
}

impl FileEntry {
    /// A file with a role.
    pub fn new(path: impl Into<String>, role: Role) -> Self {
        Self {
            path: path.into(),
            role,
        }
    }
}

/// What to package.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModelSpec {
    /// The model directory.
    pub dir: PathBuf,
    /// Files to include; empty means every file under `dir` (hidden files skipped), with
    /// roles guessed from their names.
    pub files: Vec<FileEntry>,
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// Source revision (git commit), recorded in the config.
    pub revision: Option<String>,
    /// Framework or format (`onnx`, `safetensors`).
    pub format: Option<String>,
    /// Extra manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ModelSpec {
    /// A spec for every file in `dir`.
    pub fn new(
        dir: impl Into<PathBuf>,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Self {
            dir: dir.into(),
            files: Vec::new(),
            name: name.into(),
            version: version.into(),
            revision: None,
            format: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// A packaged model, staged on disk and ready to push to any registry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Packaged {
    /// Each layer's descriptor and the staged tar file holding it.
    pub layers: Vec<(Descriptor, PathBuf)>,
    /// The ModelPack config.
    pub config: ManifestBytes,
    /// The manifest.
    pub manifest: ManifestBytes,
}

impl Packaged {
    /// The manifest digest: what gets signed, scanned and deployed.
    pub fn digest(&self) -> &Digest {
        &self.manifest.descriptor.digest
    }

    /// Push layers, config and manifest to `registry`, tagging last (nothing half-pushed is
    /// tagged). Layers the registry already has are not re-sent.
    pub async fn push(
        &self,
        registry: &dyn Registry,
        repo: &str,
        tag: Option<&str>,
    ) -> wharf_core::Result<Descriptor> {
        let mut opts = PushManifestOptions::default();
        opts.tag = tag.map(str::to_owned);
        self.push_with(registry, repo, &opts).await
    }

    /// Delete the staged layer files (once pushed everywhere they go: an OCI layout keeps
    /// its own link to them). Best effort; a file already gone is fine.
    pub fn remove_staged(&self) {
        for (_, path) in &self.layers {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Like [`Packaged::push`], with the manifest push's options: `opts.if_tag =
    /// TagPrecondition::Absent` refuses to move a tag that holds other content (immutable
    /// tags, checked atomically where the registry can).
    pub async fn push_with(
        &self,
        registry: &dyn Registry,
        repo: &str,
        opts: &PushManifestOptions,
    ) -> wharf_core::Result<Descriptor> {
        // A registry can lose sight of a blob another writer is uploading at the same time
        // (distribution 2.8 relinks it when a concurrent upload of the same content ends):
        // the manifest push then says a blob is unknown. Each layer is checked again and
        // sent if missing, a bounded number of times.
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            for (desc, path) in &self.layers {
                push_file_if_missing(registry, repo, desc, path).await?;
            }
            match finish_push(registry, repo, &self.config, &self.manifest, opts).await {
                Err(e) if e.kind() == wharf_core::ErrorKind::NotFound && attempt < ATTEMPTS => {
                    tracing::warn!(repo, attempt, error = %e, "a blob went missing before the manifest; pushing again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

/// A stream over a file's bytes, 1 MiB at a time (never the whole file in memory), on any
/// executor.
pub(crate) async fn file_stream(
    path: &Path,
) -> Result<wharf_core::registry::BlobStream, RegistryError> {
    let origin = path.to_path_buf();
    let (file, len) = crate::fs::open_with_len(path)
        .await
        .map_err(|e| RegistryError::io("opening", path, e))?;
    Ok(Box::pin(futures_util::StreamExt::map(
        crate::fs::chunks(file, len, 1 << 20),
        move |r| {
            r.map_err(|e| wharf_core::Error::from(RegistryError::io("reading", origin.clone(), e)))
        },
    )))
}

/// Push the staged file `path` as the blob `desc` unless `registry` already has it.
pub(crate) async fn push_file_if_missing(
    registry: &dyn Registry,
    repo: &str,
    desc: &Descriptor,
    path: &Path,
) -> wharf_core::Result<()> {
    // A registry that keeps blobs as files takes the staged file as it is (written once);
    // others get it streamed, unless they hold a blob of the right size already.
    if registry.import_blob_file(repo, desc, path).await?.is_some() {
        return Ok(());
    }
    if registry.blob_exists(repo, &desc.digest).await? != Some(desc.size) {
        let mut opts = PushBlobOptions::default();
        opts.size = Some(desc.size);
        registry
            .push_blob(repo, &desc.digest, file_stream(path).await?, &opts)
            .await?;
    }
    Ok(())
}

/// Push the config blob (unless present), then the manifest, which sets the tag last.
pub(crate) async fn finish_push(
    registry: &dyn Registry,
    repo: &str,
    config: &ManifestBytes,
    manifest: &ManifestBytes,
    opts: &PushManifestOptions,
) -> wharf_core::Result<Descriptor> {
    if registry
        .blob_exists(repo, &config.descriptor.digest)
        .await?
        .is_none()
    {
        registry
            .push_blob(
                repo,
                &config.descriptor.digest,
                blob_stream_from(config.bytes.clone()),
                &PushBlobOptions::default(),
            )
            .await?;
    }
    registry.push_manifest(repo, manifest, opts).await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelConfigDoc<'a> {
    descriptor: ConfigDescriptor<'a>,
    modelfs: ModelFs,
    config: ConfigSection<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigDescriptor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    name: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct ConfigSection<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a str>,
}

/// The timestamp packaging records: `SOURCE_DATE_EPOCH` if set and valid, else none (0 in tar).
pub(crate) fn source_date_epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// Package `spec` as a ModelPack artifact, staging layer files in `staging` (created if
/// missing; each run's files are its own, and those of killed runs are removed). Call
/// [`Packaged::remove_staged`] once it is pushed.
pub fn package_modelpack(spec: &ModelSpec, staging: &Path) -> Result<Packaged, RegistryError> {
    let root = std::fs::canonicalize(&spec.dir)
        .map_err(|e| RegistryError::io("opening model directory", &spec.dir, e))?;
    if !root.is_dir() {
        return Err(RegistryError::invalid(
            spec.dir.display().to_string(),
            "is not a directory",
        ));
    }
    std::fs::create_dir_all(staging).map_err(|e| RegistryError::io("creating", staging, e))?;
    crate::tempfiles::remove_stale(staging);
    let files = select_files_with_roles(spec, &root)?;
    let mtime = source_date_epoch().unwrap_or(0);
    let mut layers = Vec::with_capacity(files.len());
    for (entry, source) in &files {
        let (digest, size, staged) = write_layer(source, &entry.path, mtime, staging)?;
        let desc = Descriptor::new(entry.role.media_type(), digest, size)
            .with_annotation(ANNOTATION_FILEPATH, entry.path.clone());
        layers.push((desc, staged));
    }
    let created_at = source_date_epoch().and_then(|s| {
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(s).ok()?)
            .ok()?
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    let config_doc = ModelConfigDoc {
        descriptor: ConfigDescriptor {
            created_at: created_at.clone(),
            name: &spec.name,
            version: &spec.version,
            revision: spec.revision.as_deref(),
        },
        modelfs: ModelFs {
            kind: "layers",
            diff_ids: layers.iter().map(|(d, _)| d.digest.to_string()).collect(),
        },
        config: ConfigSection {
            format: spec.format.as_deref(),
        },
    };
    let config_bytes = serde_json::to_vec(&config_doc)
        .map_err(|e| RegistryError::invalid("model config", format!("cannot serialize: {e}")))?;
    let config = ManifestBytes::new(media_types::MODELPACK_CONFIG, config_bytes);
    let mut manifest = ImageManifest::new(
        config.descriptor.clone(),
        layers.iter().map(|(d, _)| d.clone()).collect(),
    );
    manifest.artifact_type = Some(media_types::MODELPACK_MANIFEST.to_owned());
    manifest.annotations = spec.annotations.clone();
    manifest
        .annotations
        .insert("org.cncf.model.name".into(), spec.name.clone());
    manifest
        .annotations
        .insert("org.cncf.model.version".into(), spec.version.clone());
    if let Some(rev) = &spec.revision {
        manifest
            .annotations
            .insert("org.cncf.model.revision".into(), rev.clone());
    }
    if let Some(c) = created_at {
        manifest
            .annotations
            .insert("org.opencontainers.image.created".into(), c);
    }
    let manifest = ManifestBytes::new(media_types::OCI_MANIFEST, manifest.to_vec());
    Ok(Packaged {
        layers,
        config,
        manifest,
    })
}

/// The files of `spec` (listed, or discovered), sorted, deduplicated, each resolved inside
/// `root` (the canonical model directory).
fn select_files_with_roles(
    spec: &ModelSpec,
    root: &Path,
) -> Result<Vec<(FileEntry, PathBuf)>, RegistryError> {
    let mut files = if spec.files.is_empty() {
        discover(root)?
    } else {
        spec.files.clone()
    };
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    if files.is_empty() {
        return Err(RegistryError::invalid(
            spec.dir.display().to_string(),
            "has no files to package",
        ));
    }
    files
        .into_iter()
        .map(|f| {
            let source = resolve_inside(root, &spec.dir, &f.path)?;
            if source.is_dir() {
                return Err(RegistryError::invalid(
                    format!("{:?} in {}", f.path, spec.dir.display()),
                    "is a directory: list the files in it one by one, or leave `artifacts` out to package the whole model directory",
                ));
            }
            if !source.is_file() {
                // A FIFO would block the packager forever; a device or socket is no model.
                return Err(RegistryError::invalid(
                    format!("{:?} in {}", f.path, spec.dir.display()),
                    "is not a regular file (a FIFO, socket or device): only regular files and directories are packaged",
                ));
            }
            Ok((f, source))
        })
        .collect()
}

/// `(relative path, resolved source)` of every file `spec` packages.
pub(crate) fn select_files(
    spec: &ModelSpec,
    root: &Path,
) -> Result<Vec<(String, PathBuf)>, RegistryError> {
    Ok(select_files_with_roles(spec, root)?
        .into_iter()
        .map(|(f, p)| (f.path, p))
        .collect())
}

/// Every regular file under `root`, sorted, skipping hidden entries (`.git`, `.wharf`).
fn discover(root: &Path) -> Result<Vec<FileEntry>, RegistryError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| RegistryError::io("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| RegistryError::io("listing", &dir, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let meta = std::fs::metadata(&path).map_err(|e| match std::fs::read_link(&path) {
                Ok(target) if e.kind() == std::io::ErrorKind::NotFound => RegistryError::invalid(
                    format!("{:?} in {}", rel, root.display()),
                    format!(
                        "is a dangling symlink: it points to {}, which does not exist; remove it or restore its target",
                        target.display()
                    ),
                ),
                _ => RegistryError::io("reading", &path, e),
            })?;
            let rel_str = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if meta.is_dir() {
                // A symlinked directory is followed only if it stays inside.
                resolve_inside(root, root, &rel_str)?;
                stack.push(path);
            } else if meta.is_file() {
                out.push(FileEntry::new(rel_str, Role::guess(rel)));
            }
        }
    }
    Ok(out)
}

/// Resolve `rel` under `root`, refusing `..`, absolute paths and symlinks leading outside.
fn resolve_inside(root: &Path, shown_root: &Path, rel: &str) -> Result<PathBuf, RegistryError> {
    let p = Path::new(rel);
    let bad = |why: &str| {
        RegistryError::invalid(
            format!("{rel:?} in {}", shown_root.display()),
            why.to_owned(),
        )
    };
    if rel.is_empty()
        || p.is_absolute()
        || p.components().any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(bad(
            "must be a plain relative path inside the model directory (no `..`, no leading `/`)",
        ));
    }
    let joined = root.join(p);
    let resolved = std::fs::canonicalize(&joined).map_err(|e| {
        // A symlink whose target is gone reads as "no such file": say what it is.
        match std::fs::read_link(&joined) {
            Ok(target) if e.kind() == std::io::ErrorKind::NotFound => bad(&format!(
                "is a dangling symlink: it points to {}, which does not exist",
                target.display()
            )),
            _ => RegistryError::io("opening", &joined, e),
        }
    })?;
    if !resolved.starts_with(root) {
        return Err(bad(
            "is a symlink pointing outside the model directory; copy the file in instead",
        ));
    }
    Ok(resolved)
}

/// Write a one-file tar of `source` (named `name` inside) into `staging`.
fn write_layer(
    source: &Path,
    name: &str,
    mtime: u64,
    staging: &Path,
) -> Result<(Digest, u64, PathBuf), RegistryError> {
    write_tar(
        &[TarItem::File {
            source: source.to_path_buf(),
            name: name.to_owned(),
        }],
        mtime,
        staging,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn model_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.safetensors"), vec![7u8; 300_000]).unwrap();
        std::fs::write(dir.path().join("README.md"), "# model\n").unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/serve.py"), "print('hi')\n").unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref: x").unwrap();
        dir
    }

    #[test]
    fn same_inputs_same_digest_wherever_and_whenever() {
        let a = model_dir();
        let b = model_dir();
        // Different mtimes and modes on the sources must not matter.
        let f = std::fs::File::options()
            .write(true)
            .open(b.path().join("README.md"))
            .unwrap();
        f.set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
        )
        .unwrap();
        let s1 = tempfile::tempdir().unwrap();
        let s2 = tempfile::tempdir().unwrap();
        let p1 = package_modelpack(&ModelSpec::new(a.path(), "m", "1.0.0"), s1.path()).unwrap();
        let p2 = package_modelpack(&ModelSpec::new(b.path(), "m", "1.0.0"), s2.path()).unwrap();
        assert_eq!(p1.digest(), p2.digest());
        let p3 = package_modelpack(&ModelSpec::new(a.path(), "m", "1.0.1"), s1.path()).unwrap();
        assert_ne!(
            p1.digest(),
            p3.digest(),
            "the version is part of the artifact"
        );
    }

    #[test]
    fn layers_are_modelpack_with_filepaths_and_hidden_files_skipped() {
        let dir = model_dir();
        let staging = tempfile::tempdir().unwrap();
        let p =
            package_modelpack(&ModelSpec::new(dir.path(), "m", "1.0.0"), staging.path()).unwrap();
        let m = ImageManifest::from_slice(&p.manifest.bytes, "m").unwrap();
        assert_eq!(
            m.artifact_type.as_deref(),
            Some(media_types::MODELPACK_MANIFEST)
        );
        assert_eq!(m.config.media_type, media_types::MODELPACK_CONFIG);
        let got: Vec<(&str, &str)> = m
            .layers
            .iter()
            .map(|l| {
                (
                    l.annotations[ANNOTATION_FILEPATH].as_str(),
                    l.media_type.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("README.md", "application/vnd.cncf.model.doc.v1.tar"),
                (
                    "model.safetensors",
                    "application/vnd.cncf.model.weight.v1.tar"
                ),
                ("src/serve.py", "application/vnd.cncf.model.code.v1.tar"),
            ]
        );
        let cfg: serde_json::Value = serde_json::from_slice(&p.config.bytes).unwrap();
        assert_eq!(cfg["modelfs"]["type"], "layers");
        assert_eq!(cfg["modelfs"]["diffIds"][1], m.layers[1].digest.to_string());
        assert_eq!(cfg["descriptor"]["name"], "m");
    }

    #[test]
    fn tar_layers_hold_the_file_with_normalized_metadata() {
        let dir = model_dir();
        let staging = tempfile::tempdir().unwrap();
        let p =
            package_modelpack(&ModelSpec::new(dir.path(), "m", "1.0.0"), staging.path()).unwrap();
        let (desc, path) = &p.layers[1];
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(Digest::sha256_of(&bytes), desc.digest);
        assert_eq!(bytes.len() as u64, desc.size);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("model.safetensors"));
        assert_eq!(
            (
                e.header().uid().unwrap(),
                e.header().gid().unwrap(),
                e.header().mtime().unwrap()
            ),
            (0, 0, 0)
        );
        assert_eq!(e.header().mode().unwrap(), 0o644);
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        assert_eq!(content, vec![7u8; 300_000]);
        assert!(entries.next().is_none());
    }

    #[test]
    fn paths_escaping_the_model_dir_are_refused() {
        let dir = model_dir();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        let staging = tempfile::tempdir().unwrap();
        for bad in ["../secret.txt", "/etc/passwd", "src/../../x", ""] {
            let mut spec = ModelSpec::new(dir.path(), "m", "1");
            spec.files = vec![FileEntry::new(bad, Role::Doc)];
            let err = package_modelpack(&spec, staging.path()).unwrap_err();
            assert!(
                err.to_string().contains("plain relative path"),
                "{bad}: {err}"
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(
                outside.path().join("secret.txt"),
                dir.path().join("link.txt"),
            )
            .unwrap();
            let err = package_modelpack(&ModelSpec::new(dir.path(), "m", "1"), staging.path())
                .unwrap_err();
            assert!(
                err.to_string().contains("symlink pointing outside"),
                "{err}"
            );
            assert_eq!(
                wharf_core::Error::from(err).kind(),
                wharf_core::ErrorKind::Invalid
            );
            std::fs::remove_file(dir.path().join("link.txt")).unwrap();
            std::os::unix::fs::symlink(dir.path().join("README.md"), dir.path().join("inside.md"))
                .unwrap();
            package_modelpack(&ModelSpec::new(dir.path(), "m", "1"), staging.path()).unwrap();
        }
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_dangling_symlinks_are_named_not_waited_on() {
        let dir = model_dir();
        let staging = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("weights.pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Listed as an artifact: refused at once (opening it would block forever).
        let mut spec = ModelSpec::new(dir.path(), "m", "1");
        spec.files = vec![FileEntry::new("weights.pipe", Role::Weight)];
        let err = package_modelpack(&spec, staging.path()).unwrap_err();
        assert!(err.to_string().contains("is not a regular file"), "{err}");
        assert!(err.to_string().contains("weights.pipe"), "{err}");
        assert_eq!(
            wharf_core::Error::from(err).kind(),
            wharf_core::ErrorKind::Invalid
        );
        // Found while discovering the directory: skipped, the rest is packaged.
        let p = package_modelpack(&ModelSpec::new(dir.path(), "m", "1"), staging.path()).unwrap();
        assert!(p.layers.iter().all(|(d, _)| {
            d.annotations.get(ANNOTATION_FILEPATH).map(String::as_str) != Some("weights.pipe")
        }));
        p.remove_staged();
        std::fs::remove_file(&fifo).unwrap();

        std::os::unix::fs::symlink(dir.path().join("gone.bin"), dir.path().join("model.bin"))
            .unwrap();
        for spec in [
            {
                let mut s = ModelSpec::new(dir.path(), "m", "1");
                s.files = vec![FileEntry::new("model.bin", Role::Weight)];
                s
            },
            ModelSpec::new(dir.path(), "m", "1"),
        ] {
            let err = package_modelpack(&spec, staging.path()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("model.bin"), "{msg}");
            assert!(msg.contains("is a dangling symlink"), "{msg}");
            assert!(msg.contains("gone.bin"), "{msg}");
            assert!(!msg.contains("os error"), "{msg}");
        }
    }

    #[test]
    fn staged_files_are_the_runs_own_and_removed_after_the_push() {
        let dir = model_dir();
        let staging = tempfile::tempdir().unwrap();
        let a = package_modelpack(&ModelSpec::new(dir.path(), "m", "1"), staging.path()).unwrap();
        let b = package_modelpack(&ModelSpec::new(dir.path(), "m", "1"), staging.path()).unwrap();
        assert_eq!(a.digest(), b.digest());
        // Same content, separate files: one packager cannot take the other's.
        assert_ne!(a.layers[0].1, b.layers[0].1);
        a.remove_staged();
        assert!(b.layers.iter().all(|(_, p)| p.is_file()));
        b.remove_staged();
        assert_eq!(std::fs::read_dir(staging.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_and_empty_dirs_are_clear_errors() {
        let staging = tempfile::tempdir().unwrap();
        let err = package_modelpack(&ModelSpec::new("/no/such/model", "m", "1"), staging.path())
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("opening model directory /no/such/model"),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err =
            package_modelpack(&ModelSpec::new(empty.path(), "m", "1"), staging.path()).unwrap_err();
        assert!(err.to_string().contains("has no files to package"), "{err}");
    }

    #[tokio::test]
    async fn push_to_a_layout_then_push_again_is_a_no_op() {
        let dir = model_dir();
        let staging = tempfile::tempdir().unwrap();
        let p =
            package_modelpack(&ModelSpec::new(dir.path(), "m", "1.0.0"), staging.path()).unwrap();
        let root = tempfile::tempdir().unwrap();
        let reg = crate::layout::LayoutRegistry::open(root.path()).unwrap();
        let d = p.push(&reg, "models/m", Some("abc123")).await.unwrap();
        assert_eq!(&d.digest, p.digest());
        assert_eq!(
            reg.resolve_tag("models/m", "abc123").await.unwrap().digest,
            *p.digest()
        );
        let again = p.push(&reg, "models/m", Some("abc123")).await.unwrap();
        assert_eq!(again.digest, d.digest);
        let refs = wharf_core::registry::collect_blob(
            reg.fetch_blob("models/m", &p.layers[0].0.digest)
                .await
                .unwrap(),
            1 << 20,
        )
        .await
        .unwrap();
        assert_eq!(refs.len() as u64, p.layers[0].0.size);
    }
}
