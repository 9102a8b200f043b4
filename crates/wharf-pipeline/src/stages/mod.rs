//! Stages that ship with wharf.

mod governance;
mod package;

pub use governance::GovernanceStage;
pub use package::{BaseImageRef, PackageStage, TagPolicy};
