//! Stages that ship with wharf.

mod governance;

pub use governance::GovernanceStage;
