//! Stages that ship with wharf.

mod deploy;
mod governance;
mod package;
mod sign;

pub use deploy::{DEFAULT_ROLLOUT_TIMEOUT, DeployStage};
pub use governance::GovernanceStage;
pub use package::{BaseImageRef, PackageStage, TagPolicy};
pub use sign::{
    AttestStage, SBOM_OUTPUT, SCAN_OUTPUT, SignFormat, SignStage, VERIFIED_OUTPUT,
    VerifySignatureStage,
};
