//! The run context stages share.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use wharf_core::record::ModelId;
use wharf_core::{Actor, Digest, Environment, EnvironmentPolicy, Evidence};

/// Everything a stage knows about the run: who, where, and what earlier stages produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunContext {
    /// Unique run id.
    pub run_id: String,
    /// Project name.
    pub project: String,
    /// Target environment.
    pub environment: Environment,
    /// What the environment demands (replicas, scan gate, signatures).
    pub policy: EnvironmentPolicy,
    /// Who runs it.
    pub actor: Actor,
    /// Source commit, when known.
    pub source_commit: Option<String>,
    /// When the run started.
    pub started_at: OffsetDateTime,
    /// The model, once a stage has read its manifest.
    pub model: Option<ModelId>,
    /// The pushed image's manifest digest, once pushed.
    pub image_digest: Option<Digest>,
    /// Artifacts produced so far, by kind (`image`, `sbom`, `signature`).
    pub artifacts: BTreeMap<String, Evidence>,
    /// Free-form outputs one stage leaves for another.
    pub outputs: BTreeMap<String, serde_json::Value>,
}

impl RunContext {
    /// A context for a run starting now.
    pub fn new(project: impl Into<String>, environment: Environment, actor: Actor) -> Self {
        Self {
            run_id: new_run_id(),
            project: project.into(),
            environment,
            policy: environment.policy(),
            actor,
            source_commit: None,
            started_at: OffsetDateTime::now_utc(),
            model: None,
            image_digest: None,
            artifacts: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }
}

/// A run id: UTC time plus 8 hex characters, sortable and unique per process and time:
/// `run-20261122T104501Z-3fa9c2d1`.
pub fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = OffsetDateTime::now_utc();
    let seed = format!(
        "{}-{}-{}",
        now.unix_timestamp_nanos(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    format!(
        "run-{stamp}-{}",
        &Digest::sha256_of(seed.as_bytes()).hex()[..8]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_are_unique_and_shaped() {
        let a = super::new_run_id();
        let b = super::new_run_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), "run-20261122T104501Z-3fa9c2d1".len(), "{a}");
        assert!(a.starts_with("run-2"));
    }
}
