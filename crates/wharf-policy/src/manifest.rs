//! The model manifest: what a data scientist ships next to the model, and its schema.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::PolicyError;

/// The manifest's `apiVersion`.
pub const API_VERSION: &str = "wharf.dev/v1";
/// The manifest's `kind`.
pub const KIND: &str = "ModelManifest";

/// A model manifest (`model.yaml`). Unknown fields are errors: a typo must not silently
/// skip a check.
///
/// ```
/// let m = wharf_policy::ModelManifest::from_yaml_str(r#"
/// apiVersion: wharf.dev/v1
/// kind: ModelManifest
/// model: { name: fraud, version: 1.0.0 }
/// metrics: { accuracy: 0.9, f1: 0.85 }
/// "#, "model.yaml")?;
/// assert_eq!(m.model.name, "fraud");
///
/// let err = wharf_policy::ModelManifest::from_yaml_str(
///     "apiVersion: wharf.dev/v1\nkind: ModelManifest\nmodel: { name: fraud, version: 1.0.0 }\nmetrics: { accuracy: high, f1: 0.85 }\n",
///     "model.yaml",
/// ).unwrap_err();
/// assert!(err.to_string().starts_with("model.yaml:4:"), "{err}");
/// assert!(err.to_string().contains("metrics.accuracy"), "{err}");
/// # Ok::<(), wharf_policy::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct ModelManifest {
    /// Must be `wharf.dev/v1`.
    pub api_version: String,
    /// Must be `ModelManifest`.
    pub kind: String,
    /// Identity of the model.
    pub model: ModelInfo,
    /// Files that make up the model, relative to the manifest's directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// Evaluation metrics on the held-out test set.
    pub metrics: Metrics,
    /// Fairness evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness: Option<Fairness>,
    /// Drift evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Runtime dependencies.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Production monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,
    /// Explainability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explainability: Option<Explainability>,
    /// Training data sources.
    #[serde(default, rename = "data_sources", alias = "dataSources")]
    pub data_sources: Vec<DataSource>,
}

/// Name, version and ownership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelInfo {
    /// Model name (lowercase, used in image names).
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Framework (`scikit-learn`, `pytorch`, `onnx`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// Task (`binary-classification`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Owning team or person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// One-paragraph description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A file of the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Artifact {
    /// Path relative to the manifest's directory.
    pub path: String,
    /// Role: `weights`, `config`, `code` or `doc`.
    pub role: ArtifactRole,
}

/// The role of a model file (maps to ModelPack layer media types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ArtifactRole {
    /// Model weights.
    Weights,
    /// Model configuration.
    Config,
    /// Serving or pre-processing code.
    Code,
    /// Documentation (model card).
    Doc,
}

/// Evaluation metrics, each between 0 and 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Metrics {
    /// Accuracy.
    pub accuracy: f64,
    /// F1 score.
    pub f1: f64,
    /// Precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Recall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Area under the ROC curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc: Option<f64>,
    /// The data set the metrics were measured on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_on: Option<String>,
}

/// Fairness evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Fairness {
    /// Demographic parity difference (0 = equal positive rates across groups).
    pub demographic_parity: f64,
    /// Protected attributes evaluated.
    #[serde(default)]
    pub protected_attributes: Vec<String>,
    /// Equalized odds difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equalized_odds: Option<f64>,
}

/// Drift evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Drift {
    /// Drift score (e.g. population stability index, Jensen-Shannon distance).
    pub score: f64,
    /// Method used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Reference window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A runtime dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Dependency {
    /// Package name.
    pub name: String,
    /// Pinned version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Production monitoring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Monitoring {
    /// Whether monitoring is on.
    pub enabled: bool,
    /// Dashboard URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
    /// Alert routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
}

/// Explainability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Explainability {
    /// Method (`shap`, `lime`, `integrated-gradients`).
    pub method: String,
    /// Report path or URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// A training data source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DataSource {
    /// Name as registered with data governance.
    pub name: String,
    /// Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// The largest manifest read, in bytes (1 MiB). A real manifest is a few kilobytes; the
/// limit leaves room for some ten thousand dependencies and keeps a hostile file from
/// costing more than a bounded parse.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// How deep flow collections (`[…]`, `{…}`) may nest in a manifest. The schema needs 2;
/// libyaml's time grows with this depth times the text's length, so it is checked before
/// parsing.
pub const MAX_FLOW_DEPTH: u32 = 64;

/// How much larger than its text the parsed document may be: aliases that expand it
/// further are refused. Without aliases a document cannot exceed its text by this factor
/// (no node costs more than it takes to write), so only alias expansion reaches it.
const EXPANSION_FACTOR: usize = 4;

impl ModelManifest {
    /// Read and validate a manifest file: a regular file of at most
    /// [`MAX_MANIFEST_BYTES`], in UTF-8 (see [`ModelManifest::read_file`] and
    /// [`ModelManifest::from_yaml_str`]).
    pub fn from_path(path: &Path) -> Result<Self, PolicyError> {
        let bytes = Self::read_file(path)?;
        Self::from_yaml_bytes(&bytes, &path.display().to_string())
    }

    /// The bytes of a manifest file, refused before they are read whole when the path is
    /// not a regular file (a directory, a FIFO) or holds more than [`MAX_MANIFEST_BYTES`].
    /// Callers that also pin the file by digest use these bytes, so what is parsed is
    /// exactly what is recorded.
    pub fn read_file(path: &Path) -> Result<Vec<u8>, PolicyError> {
        use std::io::Read;
        let origin = path.display().to_string();
        let bad = |message: String| PolicyError::Manifest {
            origin: origin.clone(),
            location: None,
            message,
        };
        let read_error = |source| PolicyError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        if meta.is_dir() {
            return Err(bad(
                "is a directory, not a manifest file: pass the path of its model.yaml".into(),
            ));
        }
        if !meta.is_file() {
            return Err(bad(
                "is not a regular file (a FIFO, socket or device): pass the path of a model.yaml file".into(),
            ));
        }
        let limit = MAX_MANIFEST_BYTES as u64;
        if meta.len() > limit {
            return Err(bad(too_large(meta.len())));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        std::fs::File::open(path)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
            .map_err(read_error)?;
        if bytes.len() as u64 > limit {
            // It grew after the size check.
            return Err(bad(too_large(bytes.len() as u64)));
        }
        Ok(bytes)
    }

    /// Parse and validate a manifest's bytes; `origin` names the source in errors. Bytes
    /// that are not UTF-8 are refused naming the line, column and byte offset of the first
    /// bad byte.
    pub fn from_yaml_bytes(bytes: &[u8], origin: &str) -> Result<Self, PolicyError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let offset = e.valid_up_to();
            let before = &bytes[..offset];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            // The column in characters, like the parser's positions.
            let column = String::from_utf8_lossy(&before[line_start..])
                .chars()
                .count()
                + 1;
            PolicyError::Manifest {
                origin: origin.to_owned(),
                location: Some((line, column)),
                message: format!(
                    "not valid UTF-8 (byte offset {offset}): save the manifest as UTF-8"
                ),
            }
        })?;
        Self::from_yaml_str(text, origin)
    }

    /// Parse and validate YAML; `origin` names the source in errors.
    ///
    /// Before the YAML parser sees the text, three bounds (see the crate's `bounds`
    /// module for why each is needed and why it cannot be evaded): at most
    /// [`MAX_MANIFEST_BYTES`]; flow collections nested at most [`MAX_FLOW_DEPTH`] deep;
    /// and no alias expansion beyond a small multiple of the text (a manifest has no use
    /// for anchors and aliases). Each is a one-line error naming the limit.
    pub fn from_yaml_str(yaml: &str, origin: &str) -> Result<Self, PolicyError> {
        let bad = |location, message: String| PolicyError::Manifest {
            origin: origin.to_owned(),
            location,
            message,
        };
        if yaml.len() > MAX_MANIFEST_BYTES {
            return Err(bad(None, too_large(yaml.len() as u64)));
        }
        if let Some(at) = crate::bounds::flow_depth_over(yaml, MAX_FLOW_DEPTH) {
            return Err(bad(
                Some(at),
                format!(
                    "flow collections ([…], {{…}}) nest deeper than {MAX_FLOW_DEPTH} levels, the manifest limit: the schema needs 2; write it out flat"
                ),
            ));
        }
        let budget = EXPANSION_FACTOR * yaml.len() + 4096;
        if let crate::bounds::Expansion::Over = crate::bounds::expansion_over(yaml, budget) {
            return Err(bad(
                None,
                format!(
                    "YAML aliases expand the {}-byte manifest beyond {budget} bytes, the limit: a manifest needs no anchors or aliases (&name, *name); write the values out",
                    yaml.len()
                ),
            ));
        }
        let de = serde_yaml::Deserializer::from_str(yaml);
        let manifest: ModelManifest = serde_path_to_error(de).map_err(|(path, e)| {
            let location = e.location().map(|l| (l.line(), l.column()));
            let mut message = strip_location(&e.to_string());
            // serde_yaml prefixes nested errors with their path; add it where it did not.
            if !path.is_empty() && path != "." && !message.starts_with(&path) {
                message = format!("{path}: {message}");
            }
            if message.starts_with("missing field") || message.contains(": missing field") {
                message.push_str(" (see examples/models/*/model.yaml for a complete manifest)");
            }
            PolicyError::Manifest {
                origin: origin.to_owned(),
                location,
                message,
            }
        })?;
        manifest.validate(origin)?;
        Ok(manifest)
    }

    /// Range and value checks the types cannot express.
    fn validate(&self, origin: &str) -> Result<(), PolicyError> {
        let bad = |message: String| PolicyError::Manifest {
            origin: origin.to_owned(),
            location: None,
            message,
        };
        if self.api_version != API_VERSION {
            return Err(bad(format!(
                "apiVersion: expected {API_VERSION:?}, found {:?}",
                self.api_version
            )));
        }
        if self.kind != KIND {
            return Err(bad(format!(
                "kind: expected {KIND:?}, found {:?}",
                self.kind
            )));
        }
        if self.model.name.trim().is_empty() {
            return Err(bad("model.name: must not be empty".into()));
        }
        let unit = |field: &str, v: f64| -> Result<(), PolicyError> {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(bad(format!(
                    "{field}: {v} is outside 0..1 (write 0.91, not 91)"
                )))
            }
        };
        unit("metrics.accuracy", self.metrics.accuracy)?;
        unit("metrics.f1", self.metrics.f1)?;
        for (f, v) in [
            ("metrics.precision", self.metrics.precision),
            ("metrics.recall", self.metrics.recall),
            ("metrics.auc", self.metrics.auc),
        ] {
            if let Some(v) = v {
                unit(f, v)?;
            }
        }
        if let Some(f) = &self.fairness {
            unit("fairness.demographic_parity", f.demographic_parity)?;
            if let Some(eo) = f.equalized_odds {
                unit("fairness.equalized_odds", eo)?;
            }
        }
        if let Some(d) = &self.drift
            && !(d.score.is_finite() && d.score >= 0.0)
        {
            return Err(bad(format!(
                "drift.score: {} must be a number >= 0",
                d.score
            )));
        }
        for (i, a) in self.artifacts.iter().enumerate() {
            let p = Path::new(&a.path);
            if a.path.is_empty()
                || p.is_absolute()
                || p.components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(bad(format!(
                    "artifacts[{i}].path: {:?} must be a relative path inside the model directory",
                    a.path
                )));
            }
        }
        Ok(())
    }

    /// The manifest as the JSON document policies see as `input.manifest`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Deserialize while tracking the path of the field being read, so errors name it even
/// where serde_yaml does not.
fn serde_path_to_error<'de, D>(de: D) -> Result<ModelManifest, (String, serde_yaml::Error)>
where
    D: serde::Deserializer<'de, Error = serde_yaml::Error>,
{
    ModelManifest::deserialize(de).map_err(|e| {
        // serde_yaml 0.9 writes the path as a prefix: "metrics.accuracy: invalid type …".
        let msg = e.to_string();
        let path = msg
            .split_once(": ")
            .map(|(p, _)| p)
            .filter(|p| !p.contains(' '))
            .unwrap_or("")
            .to_owned();
        (path, e)
    })
}

/// "is N bytes, over the limit" for a manifest.
fn too_large(len: u64) -> String {
    format!(
        "is {len} bytes, over the {MAX_MANIFEST_BYTES}-byte (1 MiB) manifest limit: a manifest describes the model, it does not carry data; move large lists or text into files"
    )
}

/// Remove serde_yaml's trailing " at line L column C" (the location is reported separately).
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_owned(),
        _ => msg.to_owned(),
    }
}
