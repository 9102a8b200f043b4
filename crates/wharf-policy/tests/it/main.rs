//! Integration tests for wharf-policy: the example manifests, schema errors, user policies.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod examples;
mod manifest_errors;
mod user_policies;

use std::path::PathBuf;

/// The example model directory in the repository.
pub(crate) fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/fraud-detector")
}

/// The governance config of `examples/wharf.toml` (the example's approved data source).
pub(crate) fn example_config() -> wharf_policy::GovernanceConfig {
    let mut c = wharf_policy::GovernanceConfig::default();
    c.approved_data_sources
        .push("synthetic-transactions".into());
    c
}
