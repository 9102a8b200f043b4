//! A runnable image: the model appended as one layer to a base image (as `crane append`
//! and ko do), without a container daemon.
//!
//! The model's files land under `/models/<name>/` in the image; the image config gains the
//! layer's diff id, a history entry, `WHARF_MODEL_DIR=/models/<name>` in its environment and
//! the model's name and version as labels. Everything else of the base (entrypoint, user,
//! other layers) is kept. Docker schema 2 bases come out as OCI images with the same blobs.

use std::path::{Path, PathBuf};

use wharf_core::registry::{ManifestBytes, PushBlobOptions, PushManifestOptions, collect_blob};
use wharf_core::{Descriptor, Digest, ImageIndex, ImageManifest, Registry, media_types};

use crate::RegistryError;
use crate::layer::{TarItem, write_tar};
use crate::package::{ModelSpec, finish_push, push_file_if_missing};

/// Largest image config read into memory.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Where a base image comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BaseImage<'a> {
    /// The registry holding it.
    pub registry: &'a dyn Registry,
    /// Its repository.
    pub repo: &'a str,
    /// A tag or a digest (`sha256:…`).
    pub reference: &'a str,
    /// Platform to pick from a multi-platform index (`linux/amd64` by default).
    pub platform: (&'a str, &'a str),
}

impl<'a> BaseImage<'a> {
    /// The base `repo:reference` in `registry`, for linux/amd64.
    pub fn new(registry: &'a dyn Registry, repo: &'a str, reference: &'a str) -> Self {
        Self {
            registry,
            repo,
            reference,
            platform: ("linux", "amd64"),
        }
    }
}

/// An image built on a base, staged and ready to push.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppendedImage {
    /// The base image's layers, to copy from the base registry.
    pub base_layers: Vec<Descriptor>,
    /// The model layer and its staged tar file.
    pub model_layer: (Descriptor, PathBuf),
    /// The new image config.
    pub config: ManifestBytes,
    /// The new manifest.
    pub manifest: ManifestBytes,
}

impl AppendedImage {
    /// The image's manifest digest.
    pub fn digest(&self) -> &Digest {
        &self.manifest.descriptor.digest
    }

    /// Push to `target` (copying base layers it lacks from the base registry, streamed),
    /// tagging last.
    pub async fn push(
        &self,
        base: &BaseImage<'_>,
        target: &dyn Registry,
        repo: &str,
        tag: Option<&str>,
    ) -> wharf_core::Result<Descriptor> {
        let mut opts = PushManifestOptions::default();
        opts.tag = tag.map(str::to_owned);
        self.push_with(base, target, repo, &opts).await
    }

    /// Delete the staged model layer (once pushed everywhere it goes). Best effort.
    pub fn remove_staged(&self) {
        let _ = std::fs::remove_file(&self.model_layer.1);
    }

    /// Like [`AppendedImage::push`], with the manifest push's options (an immutable tag:
    /// `opts.if_tag = TagPrecondition::Absent`).
    pub async fn push_with(
        &self,
        base: &BaseImage<'_>,
        target: &dyn Registry,
        repo: &str,
        opts: &PushManifestOptions,
    ) -> wharf_core::Result<Descriptor> {
        for layer in &self.base_layers {
            if target.blob_exists(repo, &layer.digest).await?.is_some() {
                continue;
            }
            let stream = base.registry.fetch_blob(base.repo, &layer.digest).await?;
            let mut opts = PushBlobOptions::default();
            opts.size = Some(layer.size);
            opts.mount_from = Some(base.repo.to_owned());
            target.push_blob(repo, &layer.digest, stream, &opts).await?;
        }
        let (desc, path) = &self.model_layer;
        push_file_if_missing(target, repo, desc, path).await?;
        finish_push(target, repo, &self.config, &self.manifest, opts).await
    }
}

fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            media_types::OCI_LAYER_TAR_GZIP.to_owned()
        }
        "application/vnd.docker.image.rootfs.diff.tar" => media_types::OCI_LAYER_TAR.to_owned(),
        other => other.to_owned(),
    }
}

/// Resolve the base to a single-platform manifest.
async fn base_manifest(base: &BaseImage<'_>) -> wharf_core::Result<ImageManifest> {
    let digest = match Digest::parse(base.reference) {
        Ok(d) => d,
        Err(_) => {
            base.registry
                .resolve_tag(base.repo, base.reference)
                .await?
                .digest
        }
    };
    let mut m = base.registry.fetch_manifest(base.repo, &digest).await?;
    let what = format!("base image {}:{}", base.repo, base.reference);
    if matches!(
        m.descriptor.media_type.as_str(),
        media_types::OCI_INDEX | media_types::DOCKER_MANIFEST_LIST
    ) {
        let index = ImageIndex::from_slice(&m.bytes, &what)?;
        let (os, arch) = base.platform;
        let pick = index
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == os && p.architecture == arch)
            })
            .ok_or_else(|| {
                RegistryError::invalid(
                    &what,
                    format!("has no {os}/{arch} image; pick another base or platform"),
                )
            })?;
        m = base
            .registry
            .fetch_manifest(base.repo, &pick.digest)
            .await?;
    }
    ImageManifest::from_slice(&m.bytes, &what)
}

/// Build the image: `spec`'s files as one layer under `/models/<name>/` on top of `base`.
pub async fn append_model(
    base: &BaseImage<'_>,
    spec: &ModelSpec,
    staging: &Path,
) -> wharf_core::Result<AppendedImage> {
    let base_manifest = base_manifest(base).await?;
    let what = format!("config of base image {}:{}", base.repo, base.reference);
    let config_bytes = collect_blob(
        base.registry
            .fetch_blob(base.repo, &base_manifest.config.digest)
            .await?,
        MAX_CONFIG_BYTES,
    )
    .await?;
    let mut config: serde_json::Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| RegistryError::invalid(&what, format!("not an image config: {e}")))?;
    if !config.is_object() || config["rootfs"]["diff_ids"].as_array().is_none() {
        return Err(RegistryError::invalid(&what, "has no rootfs.diff_ids: not a runnable image config (a ModelPack artifact cannot be a base)").into());
    }

    // The model layer: directories, then the files, under models/<name>/.
    let packaged_dir = std::fs::canonicalize(&spec.dir)
        .map_err(|e| RegistryError::io("opening model directory", &spec.dir, e))?;
    let files = crate::package::select_files(spec, &packaged_dir)?;
    let prefix = format!("models/{}", spec.name);
    let mut dirs: Vec<String> = vec!["models".into(), prefix.clone()];
    for f in &files {
        let mut acc = prefix.clone();
        let parts: Vec<&str> = f.0.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            acc = format!("{acc}/{part}");
            dirs.push(acc.clone());
        }
    }
    dirs.sort();
    dirs.dedup();
    let mut items: Vec<TarItem> = dirs.into_iter().map(TarItem::Dir).collect();
    for (rel, source) in files {
        items.push(TarItem::File {
            source,
            name: format!("{prefix}/{rel}"),
        });
    }
    let mtime = crate::package::source_date_epoch().unwrap_or(0);
    let staging = staging.to_path_buf();
    let (digest, size, staged) =
        wharf_core::blocking::unblock(move || write_tar(&items, mtime, &staging)).await?;

    // The config: diff id, history, env, labels.
    let obj = &mut config;
    if let Some(ids) = obj["rootfs"]["diff_ids"].as_array_mut() {
        ids.push(serde_json::Value::String(digest.to_string()));
    }
    let history_entry = serde_json::json!({
        "created_by": format!("wharf: add model {} {} under /{prefix}", spec.name, spec.version),
        "comment": "wharf",
    });
    match obj.get_mut("history").and_then(|h| h.as_array_mut()) {
        Some(h) => h.push(history_entry),
        None => obj["history"] = serde_json::json!([history_entry]),
    }
    if !obj["config"].is_object() {
        obj["config"] = serde_json::json!({});
    }
    let env_line = format!("WHARF_MODEL_DIR=/{prefix}");
    match obj["config"].get_mut("Env").and_then(|e| e.as_array_mut()) {
        Some(env) => {
            env.retain(|v| {
                !v.as_str()
                    .is_some_and(|s| s.starts_with("WHARF_MODEL_DIR="))
            });
            env.push(env_line.into());
        }
        None => obj["config"]["Env"] = serde_json::json!([env_line]),
    }
    if !obj["config"]["Labels"].is_object() {
        obj["config"]["Labels"] = serde_json::json!({});
    }
    obj["config"]["Labels"]["org.cncf.model.name"] = spec.name.clone().into();
    obj["config"]["Labels"]["org.cncf.model.version"] = spec.version.clone().into();
    if let Some(rev) = &spec.revision {
        obj["config"]["Labels"]["org.opencontainers.image.revision"] = rev.clone().into();
    }
    let config_bytes = serde_json::to_vec(&config)
        .map_err(|e| RegistryError::invalid("image config", e.to_string()))?;
    let config = ManifestBytes::new(media_types::OCI_CONFIG, config_bytes);

    let base_layers: Vec<Descriptor> = base_manifest.layers.clone();
    let mut layers: Vec<Descriptor> = base_layers
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.media_type = oci_layer_type(&l.media_type);
            l
        })
        .collect();
    let model_desc = Descriptor::new(media_types::OCI_LAYER_TAR, digest, size)
        .with_annotation("org.opencontainers.image.title", format!("/{prefix}"));
    layers.push(model_desc.clone());
    let mut manifest = ImageManifest::new(config.descriptor.clone(), layers);
    manifest
        .annotations
        .insert("org.cncf.model.name".into(), spec.name.clone());
    manifest
        .annotations
        .insert("org.cncf.model.version".into(), spec.version.clone());
    manifest.annotations.insert(
        "org.opencontainers.image.base.name".into(),
        format!("{}:{}", base.repo, base.reference),
    );
    let manifest = ManifestBytes::new(media_types::OCI_MANIFEST, manifest.to_vec());
    Ok(AppendedImage {
        base_layers,
        model_layer: (model_desc, staged),
        config,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::LayoutRegistry;
    use crate::package::{FileEntry, Role, package_modelpack};
    use wharf_core::registry::blob_stream_from;

    /// A tiny base image: one layer with /etc/os-release, an entrypoint and a PATH.
    async fn base_image(reg: &LayoutRegistry, staging: &Path) -> Digest {
        std::fs::create_dir_all(staging).unwrap();
        let src = staging.join("os-release");
        std::fs::write(&src, "ID=wharf-test\n").unwrap();
        let (layer, size, path) = write_tar(
            &[
                TarItem::Dir("etc".into()),
                TarItem::File {
                    source: src,
                    name: "etc/os-release".into(),
                },
            ],
            0,
            staging,
        )
        .unwrap();
        reg.push_blob_file("base", &path, &layer).await.unwrap();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], "Entrypoint": ["/usr/bin/python3", "/models/fraud-detector/predict.py"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]},
            "history": [{"created_by": "base"}]
        });
        let config = ManifestBytes::new(
            media_types::OCI_CONFIG,
            serde_json::to_vec(&config).unwrap(),
        );
        reg.push_blob(
            "base",
            &config.descriptor.digest,
            blob_stream_from(config.bytes.clone()),
            &Default::default(),
        )
        .await
        .unwrap();
        let m = ImageManifest::new(
            config.descriptor.clone(),
            vec![Descriptor::new(media_types::OCI_LAYER_TAR, layer, size)],
        );
        let m = ManifestBytes::new(media_types::OCI_MANIFEST, m.to_vec());
        reg.push_manifest("base", &m, &PushManifestOptions::tagged("1.0"))
            .await
            .unwrap();
        m.descriptor.digest
    }

    fn example() -> ModelSpec {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/fraud-detector");
        let mut spec = ModelSpec::new(dir, "fraud-detector", "1.4.0");
        spec.files = vec![
            FileEntry::new("model.safetensors", Role::Weight),
            FileEntry::new("predict.py", Role::Code),
        ];
        spec.revision = Some("abc123".into());
        spec
    }

    #[tokio::test]
    async fn appends_the_model_under_models_and_keeps_the_base() {
        let root = tempfile::tempdir().unwrap();
        let staging = root.path().join(".staging");
        let reg = LayoutRegistry::open(root.path()).unwrap();
        base_image(&reg, &staging).await;
        let base = BaseImage::new(&reg, "base", "1.0");
        let image = append_model(&base, &example(), &staging).await.unwrap();
        image
            .push(&base, &reg, "models/fraud-detector", Some("abc123"))
            .await
            .unwrap();

        let m = ImageManifest::from_slice(
            &reg.fetch_manifest("models/fraud-detector", image.digest())
                .await
                .unwrap()
                .bytes,
            "m",
        )
        .unwrap();
        assert_eq!(m.layers.len(), 2, "base layer + model layer");
        let cfg: serde_json::Value = serde_json::from_slice(
            &collect_blob(
                reg.fetch_blob("models/fraud-detector", &m.config.digest)
                    .await
                    .unwrap(),
                1 << 20,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["rootfs"]["diff_ids"][1], m.layers[1].digest.to_string());
        assert_eq!(
            cfg["config"]["Env"],
            serde_json::json!(["PATH=/usr/bin", "WHARF_MODEL_DIR=/models/fraud-detector"])
        );
        assert_eq!(
            cfg["config"]["Entrypoint"][0], "/usr/bin/python3",
            "the base's entrypoint is kept"
        );
        assert_eq!(
            cfg["config"]["Labels"]["org.opencontainers.image.revision"],
            "abc123"
        );
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);

        // The model layer holds the files under models/fraud-detector/.
        let layer = collect_blob(
            reg.fetch_blob("models/fraud-detector", &m.layers[1].digest)
                .await
                .unwrap(),
            1 << 24,
        )
        .await
        .unwrap();
        let mut names: Vec<String> = tar::Archive::new(&layer[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "models/",
                "models/fraud-detector/",
                "models/fraud-detector/model.safetensors",
                "models/fraud-detector/predict.py"
            ]
        );
    }

    #[tokio::test]
    async fn appending_is_reproducible() {
        let root = tempfile::tempdir().unwrap();
        let staging = root.path().join(".staging");
        let reg = LayoutRegistry::open(root.path()).unwrap();
        base_image(&reg, &staging).await;
        let base = BaseImage::new(&reg, "base", "1.0");
        let a = append_model(&base, &example(), &staging).await.unwrap();
        let b = append_model(&base, &example(), &root.path().join("other-staging"))
            .await
            .unwrap();
        assert_eq!(a.digest(), b.digest());
    }

    #[tokio::test]
    async fn picks_the_platform_from_an_index_and_refuses_artifacts_as_bases() {
        let root = tempfile::tempdir().unwrap();
        let staging = root.path().join(".staging");
        let reg = LayoutRegistry::open(root.path()).unwrap();
        let amd64 = base_image(&reg, &staging).await;
        let size = reg
            .fetch_manifest("base", &amd64)
            .await
            .unwrap()
            .bytes
            .len() as u64;
        let mut entry = Descriptor::new(media_types::OCI_MANIFEST, amd64, size);
        entry.platform =
            serde_json::from_value(serde_json::json!({"os": "linux", "architecture": "amd64"}))
                .unwrap();
        let index = ManifestBytes::new(
            media_types::OCI_INDEX,
            wharf_core::ImageIndex::new(vec![entry]).to_vec(),
        );
        reg.push_manifest("base", &index, &PushManifestOptions::tagged("multi"))
            .await
            .unwrap();
        append_model(&BaseImage::new(&reg, "base", "multi"), &example(), &staging)
            .await
            .unwrap();
        let mut arm = BaseImage::new(&reg, "base", "multi");
        arm.platform = ("linux", "arm64");
        let err = append_model(&arm, &example(), &staging).await.unwrap_err();
        assert!(
            err.to_string().contains("has no linux/arm64 image"),
            "{err}"
        );

        let art = package_modelpack(&example(), &staging).unwrap();
        art.push(&reg, "artifact", Some("v1")).await.unwrap();
        let err = append_model(
            &BaseImage::new(&reg, "artifact", "v1"),
            &example(),
            &staging,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("not a runnable image config"),
            "{err}"
        );
        assert_eq!(err.kind(), wharf_core::ErrorKind::Invalid);
    }
}
