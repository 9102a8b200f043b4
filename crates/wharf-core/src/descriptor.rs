//! OCI content descriptors, image manifests and indexes (image-spec 1.1), and the media
//! types wharf reads and writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Digest;

/// Media types wharf reads and writes.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI layer, uncompressed tar.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI layer, gzip-compressed tar.
    pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// The empty descriptor's media type (`{}`), for artifacts without a config.
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// Docker image manifest, schema 2 (readable, not written).
    pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list (readable, not written).
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// CNCF ModelPack artifact type.
    pub const MODELPACK_MANIFEST: &str = "application/vnd.cncf.model.manifest.v1+json";
    /// CNCF ModelPack config.
    pub const MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
    /// Sigstore bundle v0.3 (cosign v3 referrers).
    pub const SIGSTORE_BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
    /// cosign simple-signing payload layer.
    pub const COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
    /// DSSE envelope layer (cosign attestations).
    pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";

    /// True for media types that name a manifest or index rather than a blob.
    pub fn is_manifest(media_type: &str) -> bool {
        matches!(
            media_type,
            OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST_V2 | DOCKER_MANIFEST_LIST
        )
    }
}

/// An OCI content descriptor: what a manifest says about a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The artifact type, for manifests of artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform, for entries of an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with no annotations.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    /// The descriptor of `bytes` (hashed with SHA-256).
    pub fn for_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Self::new(media_type, Digest::sha256_of(bytes), bytes.len() as u64)
    }

    /// Add an annotation.
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Set the artifact type.
    pub fn with_artifact_type(mut self, artifact_type: impl Into<String>) -> Self {
        self.artifact_type = Some(artifact_type.into());
        self
    }
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An OCI image manifest (also reads Docker schema 2, which has the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, in order.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// An OCI manifest over `config` and `layers`.
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        Self {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Parse manifest bytes, naming `what` (a file or reference) in the error.
    pub fn from_slice(bytes: &[u8], what: &str) -> crate::Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            crate::Error::invalid(format!("{what}: not an OCI image manifest: {e}")).with_source(e)
        })
    }

    /// The canonical bytes wharf pushes (compact JSON, fields in declaration order).
    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing plain structs and string maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The artifact type as the referrers API reports it: `artifactType`, else the config's
    /// media type.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }
}

/// An OCI image index (also reads a Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests it lists.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// An OCI index over `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        Self {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Parse index bytes, naming `what` in the error.
    pub fn from_slice(bytes: &[u8], what: &str) -> crate::Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            crate::Error::invalid(format!("{what}: not an OCI image index: {e}")).with_source(e)
        })
    }

    /// Compact JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_image_spec_examples() {
        let m = ImageManifest::from_slice(
            include_bytes!("../tests/fixtures/oci/manifest.md-Manifest.json"),
            "manifest example",
        )
        .unwrap();
        assert_eq!(m.layers.len(), 3);
        assert_eq!(m.config.media_type, media_types::OCI_CONFIG);
        assert_eq!(m.effective_artifact_type(), media_types::OCI_CONFIG);
        let i = ImageIndex::from_slice(
            include_bytes!("../tests/fixtures/oci/image-index.md-ImageIndex-1.json"),
            "index example",
        )
        .unwrap();
        assert_eq!(i.manifests.len(), 2);
        assert_eq!(
            i.manifests[0].platform.as_ref().unwrap().architecture,
            "ppc64le"
        );
    }

    #[test]
    fn rejects_schema_invalid_artifact_and_reads_docker_schema2() {
        // containers/image's ociv1.artifact.json has `"digest": ""` and `"layers": null`:
        // it fails the OCI JSON schema, so a strict parser must refuse it.
        let err = ImageManifest::from_slice(
            include_bytes!("../tests/fixtures/oci/ociv1.artifact.json"),
            "ociv1.artifact.json",
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Invalid);
        assert!(
            err.to_string()
                .starts_with("ociv1.artifact.json: not an OCI image manifest")
        );
        let bytes = include_bytes!("../tests/fixtures/oci/v2s2.manifest.json");
        let d = ImageManifest::from_slice(bytes, "v2s2").unwrap();
        assert_eq!(
            d.media_type.as_deref(),
            Some(media_types::DOCKER_MANIFEST_V2)
        );
        assert_eq!(
            Digest::sha256_of(bytes).to_string(),
            "sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55"
        );
    }

    #[test]
    fn rejects_non_manifest_with_the_source_named() {
        let err =
            ImageManifest::from_slice(b"{\"schemaVersion\":2}", "oci:/tmp/x@latest").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("oci:/tmp/x@latest: not an OCI image manifest"),
            "{err}"
        );
        let err = ImageManifest::from_slice(
            br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:00","size":1}}"#,
            "m",
        )
        .unwrap_err();
        assert!(err.to_string().contains("64 lowercase hex"), "{err}");
    }

    #[test]
    fn round_trips_camel_case() {
        let cfg = Descriptor::for_bytes(media_types::OCI_EMPTY, b"{}");
        let mut m = ImageManifest::new(cfg.clone(), vec![]);
        m.artifact_type = Some(media_types::MODELPACK_MANIFEST.into());
        m.subject = Some(cfg);
        let json = String::from_utf8(m.to_vec()).unwrap();
        assert!(json.contains("\"artifactType\":\"application/vnd.cncf.model.manifest.v1+json\""));
        assert!(json.contains("\"mediaType\":\"application/vnd.oci.empty.v1+json\""));
        assert!(json.contains("\"subject\""));
        assert_eq!(ImageManifest::from_slice(json.as_bytes(), "m").unwrap(), m);
    }
}
