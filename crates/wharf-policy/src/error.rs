//! The policy crate's error type.

use std::path::PathBuf;

use wharf_core::ErrorKind;

/// Everything that can go wrong loading a manifest or policies, or evaluating them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is malformed YAML or breaks the manifest schema. Shown on one line:
    /// control characters the manifest put into a name or value (a field name with a
    /// newline) are escaped as `\n`, `\u{..}`.
    #[error("{}{}: {}", escape_controls(origin), location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default(), escape_controls(message))]
    Manifest {
        /// The file (or `<input>`).
        origin: String,
        /// Line and column, 1-based, when the parser gave them.
        location: Option<(usize, usize)>,
        /// What is wrong, with the field path.
        message: String,
    },
    /// A user policy directory does not exist or is not a directory.
    #[error("policy directory {} does not exist: create it or fix `governance.policy_dir`", path.display())]
    PolicyDir {
        /// The directory.
        path: PathBuf,
    },
    /// A Rego file does not parse or declares the wrong package.
    #[error("{}{}: {message}", origin, location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Rego {
        /// The `.rego` file.
        origin: String,
        /// Line and column, 1-based, when the parser gave them.
        location: Option<(usize, usize)>,
        /// What is wrong, on one line.
        message: String,
    },
    /// A threshold or list in the configuration is out of range.
    #[error("governance config: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// Evaluation failed (a runtime error in a rule): the gate cannot decide.
    #[error("policy evaluation failed: {message}")]
    Eval {
        /// What failed.
        message: String,
    },
}

impl PolicyError {
    /// The core error kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PolicyError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            PolicyError::Read { .. } => ErrorKind::Internal,
            PolicyError::PolicyDir { .. } => ErrorKind::NotFound,
            PolicyError::Manifest { .. }
            | PolicyError::Rego { .. }
            | PolicyError::Config { .. } => ErrorKind::Invalid,
            PolicyError::Eval { .. } => ErrorKind::Internal,
        }
    }
}

impl From<PolicyError> for wharf_core::Error {
    fn from(e: PolicyError) -> Self {
        wharf_core::Error::new(e.kind(), e.to_string()).with_source(e)
    }
}

/// Turn a regorus parse error (`--> file:L:C`, a source excerpt, then `error: msg`) into
/// one located, one-line error.
pub(crate) fn rego_error(origin: &str, raw: &str) -> PolicyError {
    let location = raw.lines().find_map(|line| {
        let rest = line
            .get(line.find(origin)? + origin.len()..)?
            .strip_prefix(':')?;
        let mut parts = rest.split(':');
        let l = parts.next()?.trim().parse().ok()?;
        let c = parts.next()?.trim().parse().ok()?;
        Some((l, c))
    });
    let message = raw
        .lines()
        .find_map(|l| l.trim().strip_prefix("error:").map(|m| m.trim().to_owned()))
        .filter(|m| !m.is_empty());
    match (location, message) {
        (Some(location), Some(message)) => PolicyError::Rego {
            origin: origin.to_owned(),
            location: Some(location),
            message,
        },
        _ => PolicyError::Rego {
            origin: origin.to_owned(),
            location: None,
            message: one_line(raw),
        },
    }
}

/// A regorus evaluation error as `file:L:C: message` on one line.
pub(crate) fn located_one_line(raw: &str) -> String {
    let loc = raw
        .lines()
        .find_map(|l| l.trim().strip_prefix("-->").map(|r| r.trim().to_owned()));
    let msg = raw
        .lines()
        .find_map(|l| l.trim().strip_prefix("error:").map(|m| m.trim().to_owned()));
    match (loc, msg) {
        (Some(loc), Some(msg)) => format!("{loc}: {msg}"),
        _ => one_line(raw),
    }
}

/// `text` with its control characters escaped (`\n`, `\t`, `\u{1b}`…), so what a
/// hostile manifest puts in a name cannot break an error onto a second line or into a
/// terminal escape sequence.
pub(crate) fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect::<String>()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Squash a multi-line message (regorus prints source excerpts) to its first meaningful line.
pub(crate) fn one_line(msg: &str) -> String {
    let lines: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // regorus: "path:line:col: error: message" then an excerpt; keep the located line and the
    // message if they are split.
    let mut out = lines.first().copied().unwrap_or("unknown error").to_owned();
    if let Some(msg_line) = lines
        .iter()
        .find(|l| l.starts_with("error:") || l.contains(": error:"))
        && !out.contains(msg_line)
    {
        out.push_str(": ");
        out.push_str(msg_line);
    }
    out
}
