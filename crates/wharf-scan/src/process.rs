//! Running a scanner binary: a timeout that kills it, output to files (no pipe to fill),
//! and failures as one line naming the binary and what to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// What a finished run left.
pub(crate) struct Output {
    pub(crate) stdout: Vec<u8>,
}

/// Run `program args…` for at most `timeout`; a missing binary, a timeout (the process is
/// killed) and a non-zero exit are errors naming the binary, with the last line it printed
/// on stderr.
pub(crate) async fn run(
    program: &Path,
    args: Vec<String>,
    timeout: Duration,
    env: Vec<(String, String)>,
) -> Result<Output> {
    let program: PathBuf = program.to_owned();
    wharf_core::blocking::unblock(move || run_blocking(&program, &args, timeout, &env)).await
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned();
    line.chars().take(400).collect()
}

fn run_blocking(
    program: &Path,
    args: &[String],
    timeout: Duration,
    env: &[(String, String)],
) -> Result<Output> {
    let name = program.display().to_string();
    let dir = tempfile::tempdir()
        .map_err(|e| Error::Scanner(format!("{name}: no temporary directory: {e}")))?;
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let io = |p: &Path| {
        std::fs::File::create(p)
            .map_err(|e| Error::Scanner(format!("{name}: {}: {e}", p.display())))
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(io(&out_path)?)
        .stderr(io(&err_path)?)
        .spawn()
        .map_err(|e| {
            Error::Scanner(match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "scanner binary {name} not found: install it, or set its path in [scan] (e.g. trivy = \"/usr/local/bin/trivy\")"
                ),
                _ => format!("scanner binary {name} cannot start: {e}"),
            })
        })?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Scanner(format!(
                    "{name} did not finish within {} s and was stopped: raise [scan] timeout_secs, or pre-fetch its database (offline) so it does not download",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => return Err(Error::Scanner(format!("{name}: {e}"))),
        }
    };
    let stdout = std::fs::read(&out_path).map_err(|e| Error::Scanner(format!("{name}: {e}")))?;
    if !status.success() {
        let stderr = std::fs::read(&err_path).unwrap_or_default();
        let code = status
            .code()
            .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
        return Err(Error::Scanner(format!(
            "{name} exited with {code}: {}",
            last_line(&stderr)
        )));
    }
    Ok(Output { stdout })
}
