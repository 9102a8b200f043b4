//! The process helpers of the backends' lifecycle: pid files, `/proc`, signals, locks,
//! loopback ports, log tails and command lines shown in messages.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::lifecycle::POLL_INTERVAL;
use super::{Backend, Ctx};

/// How long a backend has to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Takes an exclusive lock on `path` (created if needed), saying so if it has to wait for
/// `holder`. The lock is released when the file is dropped.
pub(super) fn lock_file(path: &Path, holder: &str) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!("waiting for {holder} (lock {})", path.display());
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(fs::TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(file)
}

/// The PID in a pid file, `None` if there is no pid file.
pub(super) fn read_pid(path: &Path) -> anyhow::Result<Option<u32>> {
    match fs::read_to_string(path) {
        Ok(text) => match text.trim().parse() {
            Ok(pid) => Ok(Some(pid)),
            Err(_) => {
                eprintln!("warning: ignoring {}: not a PID", path.display());
                Ok(None)
            }
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// Records `pid` in `backend`'s pid file.
pub(super) fn write_pid(ctx: &Ctx, backend: &Backend, pid: u32) -> anyhow::Result<()> {
    let path = ctx.pid_path(backend);
    fs::write(&path, format!("{pid}\n")).with_context(|| format!("writing {}", ctx.show(&path)))
}

/// Removes a file, fine if it is already gone.
pub(super) fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Whether `pid` is alive and is the backend that runs in `work_dir` (its `/proc/PID/cwd`),
/// so a recycled PID is never taken for, or stopped as, a backend.
pub(super) fn is_ours(pid: u32, work_dir: &Path) -> bool {
    let work_dir = fs::canonicalize(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
    is_alive(pid) && fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == work_dir)
}

/// The live session leaders (as `setsid` makes the backends) whose working directory is
/// `work_dir`, from `/proc`; processes that cannot be inspected are skipped.
pub(super) fn session_leaders_in(work_dir: &Path) -> Vec<u32> {
    let work_dir = fs::canonicalize(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == work_dir)
                && fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    !matches!(proc_state(&stat), Some('Z' | 'X'))
                        && proc_session(&stat) == Some(*pid)
                })
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The session id of a `/proc/PID/stat` line (the fourth field after the `(comm)`).
fn proc_session(stat: &str) -> Option<u32> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Whether `pid` exists and is not a zombie (from `/proc/PID/stat`).
fn is_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !matches!(proc_state(&stat), Some('Z' | 'X')))
}

/// The state letter of a `/proc/PID/stat` line: the first field after the `(comm)`.
fn proc_state(stat: &str) -> Option<char> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.trim_start().chars().next()
}

/// Stops the process group `pid` leads: SIGTERM (and SIGCONT), up to [`STOP_TIMEOUT`], then SIGKILL.
/// Falls back to the process alone if it leads no group.
pub(super) fn stop_group(pid: u32) -> anyhow::Result<()> {
    if !is_alive(pid) {
        return Ok(());
    }
    for (signal, timeout) in [("-TERM", STOP_TIMEOUT), ("-KILL", Duration::from_secs(2))] {
        let mut target = format!("-{pid}");
        if !send_signal(signal, &target)? {
            target = pid.to_string(); // not a group leader after all
            send_signal(signal, &target)?;
        }
        if signal == "-TERM" {
            // A stopped (SIGSTOP) process only acts on SIGTERM once continued.
            send_signal("-CONT", &target)?;
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !is_alive(pid) {
                return Ok(());
            }
            sleep(POLL_INTERVAL);
        }
    }
    bail!("pid {pid} is still alive after SIGKILL")
}

/// `kill SIGNAL -- TARGET`; whether `kill` succeeded.
fn send_signal(signal: &str, target: &str) -> anyhow::Result<bool> {
    let status = Command::new("kill")
        .args([signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running `kill {signal} -- {target}`"))?;
    Ok(status.success())
}

/// `127.0.0.1:port`.
pub(super) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// The port to start a backend on: `previous` if it is still free, else a fresh free port
/// not in `taken`.
pub(super) fn choose_port(previous: Option<u16>, taken: &[u16]) -> anyhow::Result<u16> {
    match previous {
        Some(port) if port != 0 && !taken.contains(&port) && port_is_free(port) => Ok(port),
        _ => pick_free_port(taken),
    }
}

/// Whether `127.0.0.1:port` can be bound right now.
fn port_is_free(port: u16) -> bool {
    TcpListener::bind(loopback(port)).is_ok()
}

/// A free loopback port (bind `127.0.0.1:0`, read the port, drop) that is not in `taken`.
pub(super) fn pick_free_port(taken: &[u16]) -> anyhow::Result<u16> {
    for _ in 0..50 {
        let listener =
            TcpListener::bind(loopback(0)).context("binding 127.0.0.1:0 to find a free port")?;
        let port = listener
            .local_addr()
            .context("reading the port bound on 127.0.0.1:0")?
            .port();
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    bail!("found no free loopback port outside {taken:?}")
}

/// The last `lines` lines of a log file (reading at most its last 64 KiB).
pub(super) fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(cannot open {})", path.display());
    };
    let len = file.metadata().map_or(0, |meta| meta.len());
    let mut bytes = Vec::new();
    if file
        .seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .is_err()
        || file.read_to_end(&mut bytes).is_err()
    {
        return format!("(cannot read {})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `s` as one shell word: unchanged when it only holds safe characters, else single-quoted.
pub(super) fn shell_quote(s: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// A command line as a shell would take it, for messages.
pub(super) fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| shell_quote(&arg.to_string_lossy()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::tests::temp_dir;

    #[test]
    fn picks_free_ports_and_keeps_a_free_previous_one() {
        let port = pick_free_port(&[]).unwrap();
        assert_ne!(port, 0);
        assert!(port_is_free(port));
        assert_eq!(choose_port(Some(port), &[]).unwrap(), port);

        let busy = TcpListener::bind(loopback(0)).unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let other = choose_port(Some(busy_port), &[]).unwrap();
        assert_ne!(other, busy_port);
        assert!(port_is_free(other));

        assert_ne!(choose_port(Some(port), &[port]).unwrap(), port);
        assert_ne!(choose_port(None, &[]).unwrap(), 0);
    }

    #[test]
    fn pid_files_and_process_checks() {
        let dir = temp_dir();
        let path = dir.join("x.pid");
        assert_eq!(read_pid(&path).unwrap(), None);
        fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        let pid = read_pid(&path).unwrap().unwrap();
        assert!(is_alive(pid));
        assert!(is_ours(pid, &std::env::current_dir().unwrap()));
        assert!(!is_ours(pid, &dir));
        fs::write(&path, "garbage").unwrap();
        assert_eq!(read_pid(&path).unwrap(), None);
        remove_if_exists(&path).unwrap();
        remove_if_exists(&path).unwrap();
        assert_eq!(proc_state("42 (a) b) S 1 2"), Some('S'));
        assert_eq!(proc_state("42 (zombie) Z 1"), Some('Z'));
        assert_eq!(proc_state("garbage"), None);
        assert_eq!(proc_session("42 (a b) S 1 40 41 0 -1"), Some(41));
        assert_eq!(proc_session("42 (a) S 1"), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn finds_and_stops_a_process_group() {
        let dir = temp_dir();
        let mut child = Command::new("setsid")
            .args(["sleep", "60"])
            .current_dir(&dir)
            .spawn()
            .unwrap();
        let pid = child.id();
        sleep(Duration::from_millis(100));
        assert!(is_alive(pid));
        assert!(is_ours(pid, &dir));
        assert_eq!(session_leaders_in(&dir), [pid]);
        stop_group(pid).unwrap();
        assert!(!is_alive(pid));
        assert!(session_leaders_in(&dir).is_empty());
        assert!(!child.wait().unwrap().success());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = temp_dir();
        let path = dir.join("x.log");
        let text: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        fs::write(&path, text).unwrap();
        let tail = log_tail(&path, 3);
        assert_eq!(tail, "line 28\nline 29\nline 30");
        assert!(log_tail(&dir.join("missing.log"), 3).contains("cannot open"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn quotes_shell_words() {
        assert_eq!(shell_quote("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            shell_quote("http://127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(shell_quote("moto[server]>=5,<6"), "'moto[server]>=5,<6'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let mut cmd = Command::new("pip");
        cmd.args(["install", "moto[server]>=5,<6"]);
        assert_eq!(display_command(&cmd), "pip install 'moto[server]>=5,<6'");
    }
}
