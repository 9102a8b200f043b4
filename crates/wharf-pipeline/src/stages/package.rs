//! The package-and-push stage: the model directory as a ModelPack artifact, pushed by
//! digest with an immutable tag.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use wharf_core::{Error, ErrorKind, Evidence, Registry};
use wharf_policy::{ArtifactRole, ModelManifest};
use wharf_registry::package::{FileEntry, ModelSpec, Role, package_modelpack};

use crate::{RunContext, Stage, StageOutcome};

/// How the pushed artifact is tagged. Tags are never moved: pushing a tag that already
/// holds other content fails the stage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagPolicy {
    /// A fixed tag, normally the clean git commit SHA.
    Fixed(String),
    /// `content-<first 12 hex of the manifest digest>`, for builds outside git or from a
    /// dirty tree.
    ContentDerived,
}

/// Packages the model named by the manifest and pushes it to a registry.
#[derive(Debug, Clone)]
pub struct PackageStage {
    manifest: PathBuf,
    registry: Arc<dyn Registry>,
    repository: String,
    staging: PathBuf,
    tag: TagPolicy,
}

impl PackageStage {
    /// Package the model of `manifest` (its directory, its `artifacts` list plus the
    /// manifest itself) into `repository` of `registry`, staging layers in `staging`.
    pub fn new(
        manifest: impl Into<PathBuf>,
        registry: Arc<dyn Registry>,
        repository: impl Into<String>,
        staging: impl Into<PathBuf>,
        tag: TagPolicy,
    ) -> Self {
        Self {
            manifest: manifest.into(),
            registry,
            repository: repository.into(),
            staging: staging.into(),
            tag,
        }
    }
}

fn role(r: ArtifactRole) -> Role {
    match r {
        ArtifactRole::Weights => Role::Weight,
        ArtifactRole::Config => Role::WeightConfig,
        ArtifactRole::Code => Role::Code,
        _ => Role::Doc,
    }
}

#[async_trait]
impl Stage for PackageStage {
    fn name(&self) -> &str {
        "package"
    }

    async fn run(&self, ctx: &mut RunContext) -> wharf_core::Result<StageOutcome> {
        let manifest = ModelManifest::from_path(&self.manifest)?;
        let dir = self
            .manifest
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut spec = ModelSpec::new(
            &dir,
            manifest.model.name.clone(),
            manifest.model.version.clone(),
        );
        spec.revision = ctx.source_commit.clone();
        spec.format = manifest.model.framework.clone();
        if !manifest.artifacts.is_empty() {
            spec.files = manifest
                .artifacts
                .iter()
                .map(|a| FileEntry::new(a.path.clone(), role(a.role)))
                .collect();
            if let Some(name) = self.manifest.file_name() {
                spec.files.push(FileEntry::new(
                    name.to_string_lossy().into_owned(),
                    Role::WeightConfig,
                ));
            }
        }
        let staging = self.staging.clone();
        let packaged = tokio::task::spawn_blocking(move || package_modelpack(&spec, &staging))
            .await
            .map_err(|e| Error::internal(format!("packaging task failed: {e}")))??;
        let digest = packaged.digest().clone();
        let tag = match &self.tag {
            TagPolicy::Fixed(t) => t.clone(),
            TagPolicy::ContentDerived => format!("content-{}", digest.short()),
        };
        match self.registry.resolve_tag(&self.repository, &tag).await {
            Ok(existing) if existing.digest != digest => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "tag {}:{tag} already holds {} and tags are immutable; commit your changes so the build gets a new tag",
                        self.repository, existing.digest
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        packaged
            .push(self.registry.as_ref(), &self.repository, Some(&tag))
            .await?;
        let bytes: u64 = packaged.layers.iter().map(|(d, _)| d.size).sum();
        let location = format!("{}/{}:{tag}", self.registry, self.repository);
        ctx.image_digest = Some(digest.clone());
        ctx.artifacts.insert(
            "image".into(),
            Evidence::new("image-manifest", digest.clone()).with_location(location.clone()),
        );
        Ok(StageOutcome::passed(format!(
            "{} files ({}) as ModelPack -> {location}@{}",
            packaged.layers.len(),
            human_bytes(bytes),
            digest.short()
        ))
        .with_evidence(Evidence::new("image-manifest", digest.clone()).with_location(location))
        .with_data(serde_json::json!({
            "digest": digest,
            "tag": tag,
            "repository": self.repository,
            "layers": packaged.layers.iter().map(|(d, _)| d).collect::<Vec<_>>(),
        })))
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
