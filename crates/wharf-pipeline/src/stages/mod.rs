//! Stages that ship with wharf.

mod deploy;
mod governance;
mod package;
mod scan;
mod sign;

pub use deploy::{DEFAULT_ROLLOUT_TIMEOUT, DeployStage};
pub use governance::GovernanceStage;
pub use package::{BaseImageRef, PackageStage, TagPolicy};
pub use scan::{SCANNERS, ScanSource, ScanStage, gate_policy};
pub(crate) use sign::KeylessToken;
pub use sign::{
    AttestStage, SBOM_OUTPUT, SCAN_OUTPUT, SIGSTORE_AUDIENCE, SignFormat, SignStage,
    VERIFIED_OUTPUT, VerifySignatureStage,
};
