//! A service's lifecycle: what it is doing ([`inspect`]), installing it, starting it in its
//! own session, waiting until its probe answers, and reusing or restarting it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use super::process::{
    choose_port, display_command, is_ours, log_tail, loopback, read_pid, remove_if_exists,
    session_leaders_in, stop_group, write_pid,
};
use super::{Backend, Ctx, Kind, Launch, State, name_width};

/// How long a freshly started backend has to answer its readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two readiness probes.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How many log lines an error about a backend shows.
const LOG_TAIL_LINES: usize = 20;

/// What a backend is doing right now.
pub(super) enum Health {
    /// Its process is alive and its probe answers.
    Running {
        /// The service's PID (and process group id).
        pid: u32,
        /// Where it listens.
        addr: SocketAddr,
    },
    /// Its process is alive but its probe does not answer.
    Unhealthy {
        /// The service's PID (and process group id).
        pid: u32,
        /// What the probe saw.
        why: String,
    },
    /// Installed, not running.
    Stopped,
    /// Neither running nor installed.
    NotInstalled,
}

/// Finds out what `backend` is doing: its process (see [`find_pid`]), then the readiness
/// probe on the recorded port.
pub(super) fn inspect(ctx: &Ctx, backend: &Backend, state: &State) -> anyhow::Result<Health> {
    if let Some(probe) = backend.probe()
        && let Some(pid) = find_pid(ctx, backend)?
    {
        let Some(&port) = state.ports.get(backend.name) else {
            return Ok(Health::Unhealthy {
                pid,
                why: format!("no port recorded in {}", ctx.show(&ctx.state_path())),
            });
        };
        let addr = loopback(port);
        return Ok(match probe.check(addr) {
            Ok(()) => Health::Running { pid, addr },
            Err(why) => Health::Unhealthy { pid, why },
        });
    }
    Ok(if backend.install.is_installed(ctx) {
        Health::Stopped
    } else {
        Health::NotInstalled
    })
}

/// The PID of `backend`'s running process: the pid file's if that process is alive in the
/// backend's work dir, else (pid file lost or overwritten) a session leader found there.
fn find_pid(ctx: &Ctx, backend: &Backend) -> anyhow::Result<Option<u32>> {
    let work_dir = ctx.work_dir(backend);
    if let Some(pid) = read_pid(&ctx.pid_path(backend))?
        && is_ours(pid, &work_dir)
    {
        return Ok(Some(pid));
    }
    Ok(session_leaders_in(&work_dir).into_iter().next())
}

/// Installs a tool if it is missing.
pub(super) fn ensure_installed(ctx: &Ctx, backend: &Backend) -> anyhow::Result<()> {
    let width = name_width();
    let name = backend.name;
    if !backend.install.is_installed(ctx) {
        install(ctx, backend)?;
    }
    eprintln!(
        "{name:<width$}  installed  {}",
        backend.install.program(ctx).display()
    );
    Ok(())
}

/// Installs `backend`'s program, output in `<name>.install.log`.
fn install(ctx: &Ctx, backend: &Backend) -> anyhow::Result<()> {
    let width = name_width();
    let name = backend.name;
    let log = ctx.state_dir.join(format!("{name}.install.log"));
    File::create(&log).with_context(|| format!("creating {}", ctx.show(&log)))?;
    eprintln!("{name:<width$}  installing (output in {})", ctx.show(&log));
    let started = Instant::now();
    backend.install.install(ctx, name, &log)?;
    eprintln!(
        "{name:<width$}  installed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reuses `backend` if it is running (unless `restart`: a service it depends on was
/// restarted), else installs it if needed, starts it and waits until it is ready. Returns
/// where it listens and whether it was (re)started.
pub(super) fn ensure_running(
    ctx: &Ctx,
    backend: &Backend,
    state: &mut State,
    restart: bool,
) -> anyhow::Result<(SocketAddr, bool)> {
    let width = name_width();
    let name = backend.name;
    match inspect(ctx, backend, state)? {
        Health::Running { pid, .. } if restart || files_changed(ctx, backend) => {
            let why = if restart {
                "a service it depends on was restarted"
            } else {
                "the files it runs from changed"
            };
            eprintln!("{name:<width$}  restarting pid {pid}: {why}");
            stop_group(pid).with_context(|| format!("stopping {name} (pid {pid})"))?;
            remove_if_exists(&ctx.pid_path(backend))?;
        }
        Health::Running { pid, addr } => {
            if read_pid(&ctx.pid_path(backend))? != Some(pid) {
                write_pid(ctx, backend, pid)?;
            }
            eprintln!("{name:<width$}  running  {addr}  pid {pid}  (reused)");
            return Ok((addr, false));
        }
        Health::Unhealthy { pid, why } => {
            eprintln!(
                "{name:<width$}  pid {pid} is alive but not answering ({why}); restarting it"
            );
            stop_group(pid)
                .with_context(|| format!("stopping the unresponsive {name} (pid {pid})"))?;
            remove_if_exists(&ctx.pid_path(backend))?;
        }
        Health::Stopped => {}
        Health::NotInstalled => install(ctx, backend)?,
    }
    let taken: Vec<u16> = state
        .ports
        .iter()
        .filter(|(other, _)| other.as_str() != name)
        .map(|(_, port)| *port)
        .collect();
    let port = choose_port(state.ports.get(name).copied(), &taken)?;
    state.ports.insert(name.to_owned(), port);
    state.save(&ctx.state_path())?;
    let started = Instant::now();
    let (pid, addr) = start(ctx, backend, port, state)?;
    eprintln!(
        "{name:<width$}  started  {addr}  pid {pid}  (ready in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok((addr, true))
}

/// Whether a service's [`Kind::Service::files`] on disk differ from the checkout's.
fn files_changed(ctx: &Ctx, backend: &Backend) -> bool {
    let Kind::Service { files, .. } = &backend.kind else {
        return false;
    };
    let work_dir = ctx.work_dir(backend);
    files.iter().any(|(file, content)| {
        fs::read_to_string(work_dir.join(file)).ok().as_deref() != Some(*content)
    })
}

/// Starts `backend` on `port` in its own session (`setsid`), output appended to its log,
/// records its PID and waits until its probe answers.
fn start(
    ctx: &Ctx,
    backend: &Backend,
    port: u16,
    state: &State,
) -> anyhow::Result<(u32, SocketAddr)> {
    let name = backend.name;
    let Kind::Service {
        args,
        files,
        script,
        ..
    } = &backend.kind
    else {
        bail!("{name} is a tool: it is installed, not started");
    };
    let work_dir = ctx.work_dir(backend);
    fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", ctx.show(&work_dir)))?;
    for (file, content) in *files {
        let path = work_dir.join(file);
        fs::write(&path, content).with_context(|| format!("writing {}", ctx.show(&path)))?;
    }
    let launch = Launch {
        ctx,
        work_dir: &work_dir,
        port,
        state,
    };
    let args = args(&launch).with_context(|| format!("preparing {name}"))?;
    let log_path = ctx.log_path(backend);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", ctx.show(&log_path)))?;
    let mut cmd = Command::new("setsid");
    cmd.args(backend.install.interpreter());
    match script {
        Some(script) => {
            cmd.arg(work_dir.join(script));
            if let Some(modules) = backend.install.node_modules(ctx) {
                cmd.env("NODE_PATH", modules);
            }
        }
        None => {
            cmd.arg(backend.install.program(ctx));
        }
    }
    cmd.args(&args).current_dir(&work_dir).stdin(Stdio::null());
    let shown = display_command(&cmd);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    writeln!(
        log,
        "=== wharf: starting {name} at unix time {now}: {shown}"
    )
    .with_context(|| format!("writing {}", ctx.show(&log_path)))?;
    let stderr = log
        .try_clone()
        .with_context(|| format!("duplicating {}", ctx.show(&log_path)))?;
    // The child is not a process group leader, so `setsid` makes it a session leader and execs
    // the program in place: the PID is the service's and its process group id.
    let child = cmd.stdout(log).stderr(stderr).spawn().with_context(|| {
        format!("{name}: could not run `{shown}` (is util-linux's `setsid` installed?)")
    })?;
    let pid = child.id();
    let pid_path = ctx.pid_path(backend);
    fs::write(&pid_path, format!("{pid}\n"))
        .with_context(|| format!("writing {}", ctx.show(&pid_path)))?;
    let addr = loopback(port);
    wait_ready(ctx, backend, child, addr)?;
    Ok((pid, addr))
}

/// Polls `backend`'s probe until it answers, the process exits, or [`READY_TIMEOUT`] passes;
/// errors carry the tail of the backend's log.
fn wait_ready(
    ctx: &Ctx,
    backend: &Backend,
    mut child: Child,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let name = backend.name;
    let pid = child.id();
    let log = ctx.log_path(backend);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(exit) = child
            .try_wait()
            .with_context(|| format!("waiting for {name} (pid {pid})"))?
        {
            remove_if_exists(&ctx.pid_path(backend))?;
            bail!(
                "{name} exited ({exit}) before it was ready on {addr}; last {LOG_TAIL_LINES} lines of {}:\n{}",
                ctx.show(&log),
                log_tail(&log, LOG_TAIL_LINES)
            );
        }
        let Some(probe) = backend.probe() else {
            return Ok(());
        };
        let why = match probe.check(addr) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            let stopped = stop_group(pid);
            let _ = child.try_wait(); // reap it if it is gone
            remove_if_exists(&ctx.pid_path(backend))?;
            let stopped = match stopped {
                Ok(()) => "stopped it".to_owned(),
                Err(err) => format!("could not stop it: {err:#}"),
            };
            bail!(
                "{name} (pid {pid}) was not ready on {addr} after {} s (last probe: {why}); {stopped}; last {LOG_TAIL_LINES} lines of {}:\n{}",
                READY_TIMEOUT.as_secs(),
                ctx.show(&log),
                log_tail(&log, LOG_TAIL_LINES)
            );
        }
        sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::BACKENDS;
    use crate::backends::tests::{ctx_in, temp_dir};
    use crate::backends::token_server::TOKEN_SERVER_PY;

    #[test]
    fn a_service_whose_files_changed_is_due_for_a_restart() {
        let dir = temp_dir();
        let ctx = ctx_in(&dir);
        let server = BACKENDS.iter().find(|b| b.name == "token-server").unwrap();
        let registry = &BACKENDS[0];
        assert!(files_changed(&ctx, server), "never written");
        assert!(!files_changed(&ctx, registry), "nothing to compare");
        let script = ctx.work_dir(server).join("token_server.py");
        fs::create_dir_all(script.parent().unwrap()).unwrap();
        fs::write(&script, TOKEN_SERVER_PY).unwrap();
        assert!(!files_changed(&ctx, server));
        fs::write(&script, "print('an older version')").unwrap();
        assert!(files_changed(&ctx, server));
        fs::remove_dir_all(dir).unwrap();
    }
}
