//! Blocking work and waits as futures that complete on any executor — a Tokio runtime of
//! either flavour, `futures::executor::block_on`, or a plain thread polling by hand —
//! without blocking it: the work runs on a thread of its own and wakes the task when done.
//!
//! Backends that touch files (the OCI layout, the audit log's files) use these instead of
//! a runtime's file API, so no call panics for lack of a runtime, and none stalls the
//! executor it runs on. A thread per call costs tens of microseconds: these are for file
//! operations and backoff waits, not for hot loops.
//!
//! ```
//! let len = futures::executor::block_on(wharf_core::blocking::unblock(|| {
//!     std::fs::metadata("Cargo.toml").map(|m| m.len())
//! }))?;
//! assert!(len > 0);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Run `f` on a thread of its own; the future completes with its result. A panic in `f`
/// resumes in the task that awaits it, as if `f` had run inline. Should no thread be
/// available, `f` runs inline on first poll.
pub fn unblock<T, F>(f: F) -> Unblock<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let shared = Arc::new(Mutex::new(Slot {
        work: Some(Box::new(f) as Box<dyn FnOnce() -> T + Send>),
        result: None,
        waker: None,
    }));
    let on_thread = Arc::clone(&shared);
    // A failed spawn leaves the work in the slot: the first poll runs it inline.
    let _ = std::thread::Builder::new()
        .name("wharf-blocking".into())
        .spawn(move || run(&on_thread));
    Unblock { shared }
}

/// Wait `duration` on any executor (a backoff between retries, a lock poll).
pub fn sleep(duration: Duration) -> Unblock<()> {
    unblock(move || std::thread::sleep(duration))
}

/// Run `future` to completion on the calling thread, parking it while the future waits: the
/// synchronous form of calls that do no network I/O (offline verification, a key file, the
/// OCI layout, the file audit log, whose waits are [`unblock`]s). Not for futures that need
/// a Tokio reactor (HTTP clients): those must run on a Tokio runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// The future of [`unblock`] and [`sleep`].
#[must_use = "futures do nothing unless awaited"]
pub struct Unblock<T> {
    shared: Arc<Mutex<Slot<T>>>,
}

impl<T> std::fmt::Debug for Unblock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unblock").finish_non_exhaustive()
    }
}

type Work<T> = Box<dyn FnOnce() -> T + Send>;

struct Slot<T> {
    work: Option<Work<T>>,
    result: Option<std::thread::Result<T>>,
    waker: Option<Waker>,
}

fn lock<T>(shared: &Mutex<Slot<T>>) -> std::sync::MutexGuard<'_, Slot<T>> {
    // The lock is never held while user code runs, so poisoning cannot leave it torn.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Take the work out of the slot (if nobody ran it yet), run it, store the result, wake.
fn run<T>(shared: &Mutex<Slot<T>>) {
    let Some(work) = lock(shared).work.take() else {
        return;
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    let waker = {
        let mut slot = lock(shared);
        slot.result = Some(result);
        slot.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T> Future for Unblock<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let inline = {
            let mut slot = lock(&self.shared);
            if let Some(result) = slot.result.take() {
                return Poll::Ready(result.unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            slot.waker = Some(cx.waker().clone());
            // Still queued after a spawn that failed (a running thread has taken it).
            slot.work.is_some() && std::sync::Arc::strong_count(&self.shared) == 1
        };
        if inline {
            run(&self.shared);
            let result = lock(&self.shared).result.take();
            if let Some(result) = result {
                return Poll::Ready(result.unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_without_any_runtime() {
        let v = futures::executor::block_on(unblock(|| 6 * 7));
        assert_eq!(v, 42);
        let start = std::time::Instant::now();
        futures::executor::block_on(sleep(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn block_on_runs_work_and_waits_on_a_plain_thread() {
        assert_eq!(block_on(async { unblock(|| 2 + 2).await + 1 }), 5);
        let start = std::time::Instant::now();
        block_on(sleep(Duration::from_millis(10)));
        assert!(start.elapsed() >= Duration::from_millis(10));
    }

    #[test]
    fn many_at_once_each_get_their_own_result() {
        let futures: Vec<_> = (0..64u64).map(|i| unblock(move || i * i)).collect();
        let results = futures::executor::block_on(futures_util::future::join_all(futures));
        assert_eq!(results, (0..64u64).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn a_panic_resumes_in_the_awaiting_task() {
        let caught = std::panic::catch_unwind(|| {
            futures::executor::block_on(unblock(|| -> u8 { panic!("inside the work") }))
        });
        let payload = caught.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"inside the work"));
    }
}
