//! Stages that ship with wharf.

mod governance;
mod package;
mod sign;

pub use governance::GovernanceStage;
pub use package::{BaseImageRef, PackageStage, TagPolicy};
pub use sign::{
    AttestStage, SBOM_OUTPUT, SCAN_OUTPUT, SignFormat, SignStage, VerifySignatureStage,
};
