//! Standard output and error that a closed pipe cannot crash.
//!
//! Rust ignores SIGPIPE, so writing to a pipe whose reader has gone fails with `EPIPE`, and
//! std's `println!` panics on that (`cargo xtask backends status | head`). `main.rs`
//! shadows `println!`, `print!`, `eprintln!` and `eprint!` for the whole crate with macros
//! that write here instead. Once stdout's reader is gone, further output is dropped and the
//! command finishes normally, with its own exit code: a pipeline run still writes its audit
//! record, `cargo xtask test` still stops its backends. Any other stdout error (a full disk)
//! is reported once on stderr and turns a success into exit 1, since the output is lost.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

const OPEN: u8 = 0;
/// The reader went away: output is dropped, quietly.
const CLOSED: u8 = 1;
/// Writing failed otherwise: output is dropped and the command fails.
const FAILED: u8 = 2;

static STDOUT: AtomicU8 = AtomicU8::new(OPEN);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Write `args` and a newline to stdout (`println!`).
pub(crate) fn line(args: fmt::Arguments<'_>) {
    if STDOUT.load(Ordering::Relaxed) == OPEN {
        let result = writeln!(io::stdout().lock(), "{args}");
        stdout_result(result);
    }
}

/// Write `args` to stdout (`print!`).
pub(crate) fn text(args: fmt::Arguments<'_>) {
    if STDOUT.load(Ordering::Relaxed) == OPEN {
        let result = write!(io::stdout().lock(), "{args}");
        stdout_result(result);
    }
}

/// Write `args` (and a newline with `newline`) to stderr (`eprintln!`, `eprint!`); if
/// stderr is gone too, there is nobody left to tell.
pub(crate) fn err(args: fmt::Arguments<'_>, newline: bool) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut e = io::stderr().lock();
    let result = if newline {
        writeln!(e, "{args}")
    } else {
        write!(e, "{args}")
    };
    if result.is_err() {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}

/// True once stdout's reader has gone (or stdout failed): loops that only print can stop.
pub(crate) fn closed() -> bool {
    STDOUT.load(Ordering::Relaxed) != OPEN
}

/// Flush stdout and give the command's exit code: unchanged, or 1 instead of success when
/// output was lost to an error other than a closed pipe.
pub(crate) fn finish(code: ExitCode) -> ExitCode {
    if STDOUT.load(Ordering::Relaxed) == OPEN {
        let result = io::stdout().lock().flush();
        stdout_result(result);
    }
    if STDOUT.load(Ordering::Relaxed) == FAILED && code == ExitCode::SUCCESS {
        ExitCode::FAILURE
    } else {
        code
    }
}

fn stdout_result(result: io::Result<()>) {
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            STDOUT.store(CLOSED, Ordering::Relaxed);
        }
        Err(e) => {
            if STDOUT.swap(FAILED, Ordering::Relaxed) == OPEN {
                err(
                    format_args!("error: cannot write to standard output: {e}"),
                    true,
                );
            }
        }
    }
}
