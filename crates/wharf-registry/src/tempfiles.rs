//! Temp files named for the process writing them, so files left by a writer that was
//! killed can be told from those of a live one and removed.
//!
//! A name is `<pid>-<counter>-<what>.tmp`. A file whose process no longer exists (on this
//! host: `/proc/<pid>` is gone) is stale. Directories shared between hosts (NFS) would need
//! the host in the name too; wharf's layouts and staging directories are local.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh temp file name for this process (`what` makes it readable: a digest's hex).
pub(crate) fn name(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{what}.tmp",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The pid a temp file name carries, if it is one of ours.
fn owner(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_suffix(".tmp")?;
    rest.split('-').next()?.parse().ok()
}

/// Whether the process `pid` is alive on this host (where that cannot be told: assume so).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_dir = Path::new("/proc");
    if !proc_dir.join("self").exists() {
        return true;
    }
    proc_dir.join(pid.to_string()).exists()
}

/// Whether `file_name` is a temp file of a writer that is gone.
pub(crate) fn is_stale(file_name: &str) -> bool {
    owner(file_name).is_some_and(|pid| !alive(pid))
}

/// Remove the temp files in `dir` whose writer is gone; returns the bytes freed. Best
/// effort: a file that cannot be removed stays (and is named by `fsck`).
pub(crate) fn remove_stale(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut freed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !is_stale(&name.to_string_lossy()) {
            continue;
        }
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(path = %entry.path().display(), bytes = len, "removed a stale temp file");
            freed += len;
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_pid_and_only_dead_writers_are_stale() {
        let mine = name("abc");
        assert!(mine.starts_with(&format!("{}-", std::process::id())));
        assert!(!is_stale(&mine));
        // pid 4294967295 cannot exist.
        assert!(is_stale("4294967295-0-abc.tmp"));
        assert!(!is_stale("not-ours.tmp"));
        assert!(!is_stale("4294967295-0-abc"));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("4294967295-0-dead.tmp"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join(&mine), b"live").unwrap();
        std::fs::write(dir.path().join("other.txt"), b"keep").unwrap();
        assert_eq!(remove_stale(dir.path()), 1000);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [mine, "other.txt".to_owned()]);
    }
}
