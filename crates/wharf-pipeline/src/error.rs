//! The pipeline crate's error type.

use std::path::PathBuf;

use wharf_core::{ErrorKind, RunRecord};

/// What can go wrong loading configuration or running a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or breaks the schema.
    #[error("{origin}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Config {
        /// The file, or the environment variables applied.
        origin: String,
        /// Line and column, 1-based.
        location: Option<(usize, usize)>,
        /// What is wrong.
        message: String,
    },
    /// The pipeline was built without something it needs.
    #[error("pipeline is missing {what}: {hint}")]
    Incomplete {
        /// What is missing.
        what: &'static str,
        /// How to supply it.
        hint: &'static str,
    },
    /// Something the config names could not be set up (the audit log, its checkpoint key).
    #[error("{what}: {source}")]
    Setup {
        /// What, with the config key (`[audit] url "s3://…"`).
        what: String,
        /// Why.
        source: wharf_core::Error,
    },
    /// The run was refused before it started (its setup failed after the audit log was
    /// open), and that refusal was recorded as a failed run — or could not be.
    #[error("{source}{}", match recorded {
        Ok(report) => format!(
            " (refused before the run started; recorded as audit record #{} {})",
            report.receipt.sequence, report.receipt.hash
        ),
        Err(e) => format!("; and the refused run could not be recorded: {}", wharf_core::display_chain(e)),
    })]
    Refused {
        /// Why the run was refused.
        source: Box<PipelineError>,
        /// The recorded refusal (a failed run with one `setup` stage), or why it could not
        /// be recorded.
        recorded: Result<Box<crate::RunReport>, wharf_core::Error>,
    },
    /// The run finished but its audit record could not be written: the run fails.
    #[error("the run's audit record could not be written, so the run fails: {source}")]
    Audit {
        /// The record that was not stored (kept so the caller can show or retry it).
        record: Box<RunRecord>,
        /// Why.
        source: wharf_core::Error,
    },
}

impl PipelineError {
    /// The core error kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PipelineError::Read { .. } => ErrorKind::NotFound,
            PipelineError::Config { .. } | PipelineError::Incomplete { .. } => ErrorKind::Invalid,
            PipelineError::Audit { source, .. } | PipelineError::Setup { source, .. } => {
                source.kind()
            }
            PipelineError::Refused { source, .. } => source.kind(),
        }
    }
}

impl From<PipelineError> for wharf_core::Error {
    fn from(e: PipelineError) -> Self {
        wharf_core::Error::new(e.kind(), e.to_string()).with_source(e)
    }
}
