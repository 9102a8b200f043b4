//! The package-and-push stage: the model directory as a ModelPack artifact, pushed by
//! digest with an immutable tag.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use wharf_core::registry::{PushManifestOptions, TagPrecondition};
use wharf_core::{Descriptor, Error, ErrorKind, Evidence, Registry};
use wharf_policy::{ArtifactRole, ModelManifest};
use wharf_registry::append::{BaseImage, append_model};
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
    base: Option<BaseImageRef>,
}

/// A base image to append the model to, making a runnable image instead of a ModelPack
/// artifact.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BaseImageRef {
    /// The registry (or OCI layout) holding it.
    pub registry: Arc<dyn Registry>,
    /// Its repository there.
    pub repo: String,
    /// A tag or `sha256:` digest.
    pub reference: String,
}

impl BaseImageRef {
    /// The base `repo:reference` in `registry`.
    pub fn new(
        registry: Arc<dyn Registry>,
        repo: impl Into<String>,
        reference: impl Into<String>,
    ) -> Self {
        Self {
            registry,
            repo: repo.into(),
            reference: reference.into(),
        }
    }
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
            base: None,
        }
    }

    /// Build a runnable image on `base` (the model under `/models/<name>/`) instead of a
    /// ModelPack artifact.
    pub fn on_base_image(mut self, base: BaseImageRef) -> Self {
        self.base = Some(base);
        self
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
        // Build: a ModelPack artifact, or a runnable image on the configured base.
        let (built, digest, layers, what) = match &self.base {
            None => {
                let staging = self.staging.clone();
                let packaged =
                    wharf_core::blocking::unblock(move || package_modelpack(&spec, &staging))
                        .await?;
                let digest = packaged.digest().clone();
                let layers: Vec<Descriptor> =
                    packaged.layers.iter().map(|(d, _)| d.clone()).collect();
                (
                    Built::Pack(Box::new(packaged)),
                    digest,
                    layers,
                    "ModelPack artifact".to_owned(),
                )
            }
            Some(base) => {
                let b = BaseImage::new(base.registry.as_ref(), &base.repo, &base.reference);
                let image = append_model(&b, &spec, &self.staging).await?;
                let digest = image.digest().clone();
                let layers = vec![image.model_layer.0.clone()];
                let what = format!("image on {}:{}", base.repo, base.reference);
                (Built::Image(Box::new(image)), digest, layers, what)
            }
        };
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
        // Tags are immutable: the check above names the usual case early, and the push
        // itself moves the tag only if it is still absent (atomically in the OCI layout;
        // re-resolved after the push on a registry), so two runs racing for one tag cannot
        // both claim it.
        let push = PushManifestOptions::tagged(tag.clone()).if_tag(TagPrecondition::Absent);
        let immutable = |e: Error| {
            if e.kind() == ErrorKind::Conflict {
                Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "{e}; another run pushed other content under {}:{tag} at the same time",
                        self.repository
                    ),
                )
            } else {
                e
            }
        };
        match &built {
            Built::Pack(p) => p
                .push_with(self.registry.as_ref(), &self.repository, &push)
                .await
                .map_err(immutable)?,
            Built::Image(image) => {
                let base = self
                    .base
                    .as_ref()
                    .ok_or_else(|| Error::internal("image built without a base"))?;
                let b = BaseImage::new(base.registry.as_ref(), &base.repo, &base.reference);
                image
                    .push_with(&b, self.registry.as_ref(), &self.repository, &push)
                    .await
                    .map_err(immutable)?
            }
        };
        if let Some(base) = &self.base {
            // What the base reference resolved to, for provenance (resolved dependencies).
            let digest = match base.reference.parse::<wharf_core::Digest>() {
                Ok(d) => d,
                Err(_) => {
                    base.registry
                        .resolve_tag(&base.repo, &base.reference)
                        .await?
                        .digest
                }
            };
            ctx.outputs.insert(
                "base_image".into(),
                serde_json::json!({
                    "uri": format!("{}/{}:{}", base.registry, base.repo, base.reference),
                    "digest": digest,
                }),
            );
        }
        let bytes: u64 = layers.iter().map(|d| d.size).sum();
        let location = format!("{}/{}:{tag}", self.registry, self.repository);
        ctx.image_digest = Some(digest.clone());
        ctx.artifacts.insert(
            "image".into(),
            Evidence::new("image-manifest", digest.clone()).with_location(location.clone()),
        );
        let summary = match &built {
            Built::Pack(p) => format!(
                "{} files ({}) as a {what} -> {location}@{}",
                p.layers.len(),
                human_bytes(bytes),
                digest.short()
            ),
            Built::Image(_) => format!(
                "model layer ({}) as an {what} -> {location}@{}",
                human_bytes(bytes),
                digest.short()
            ),
        };
        Ok(StageOutcome::passed(summary)
            .with_evidence(Evidence::new("image-manifest", digest.clone()).with_location(location))
            .with_data(serde_json::json!({
                "digest": digest,
                "tag": tag,
                "repository": self.repository,
                "kind": if self.base.is_some() { "image" } else { "modelpack" },
                "layers": layers,
            })))
    }
}

/// What was built. Its staged layer files go when the stage is done with it, pushed or
/// not: an OCI layout has linked them in, a registry holds its copy, and a failed run
/// packages again — no second copy of a multi-GB layer stays behind.
enum Built {
    Pack(Box<wharf_registry::package::Packaged>),
    Image(Box<wharf_registry::append::AppendedImage>),
}

impl Drop for Built {
    fn drop(&mut self) {
        match self {
            Built::Pack(p) => p.remove_staged(),
            Built::Image(image) => image.remove_staged(),
        }
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
