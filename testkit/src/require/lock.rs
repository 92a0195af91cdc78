//! The one lock per test process that heavy tests hold, taken by blocking ([`serial`]) or by
//! awaiting ([`serial_async`]): tokio tests must not block their runtime's thread, and a
//! std `MutexGuard` held across `.await` is what clippy (rightly) warns about.

use std::future::Future;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Poll, Waker};

struct State {
    held: bool,
    /// Async waiters to wake when the lock is released.
    wakers: Vec<Waker>,
}

static STATE: Mutex<State> = Mutex::new(State {
    held: false,
    wakers: Vec::new(),
});
/// Signalled when the lock is released, for blocked waiters.
static RELEASED: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    // Nothing panics while holding it; recover anyway rather than fail every later test.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Holding it means no other test of this process that takes [`serial`] runs; dropping it
/// (also when the test panics) lets the next one go.
#[must_use = "the lock is released when this is dropped"]
#[derive(Debug)]
pub struct Serial(());

impl Drop for Serial {
    fn drop(&mut self) {
        let wakers = {
            let mut s = state();
            s.held = false;
            std::mem::take(&mut s.wakers)
        };
        RELEASED.notify_one();
        for w in wakers {
            w.wake();
        }
    }
}

/// Runs heavy tests one at a time (hold the guard for the test): they start PMD threads,
/// busy-polling testpmd instances or guests, and the machine has two cores. Blocks until
/// the lock is free.
pub fn serial() -> Serial {
    let mut s = state();
    while s.held {
        s = RELEASED.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    s.held = true;
    Serial(())
}

/// [`serial`] for async tests: the same lock, awaited without blocking the runtime's thread.
pub fn serial_async() -> impl Future<Output = Serial> {
    std::future::poll_fn(|cx| {
        let mut s = state();
        if s.held {
            s.wakers.push(cx.waker().clone());
            Poll::Pending
        } else {
            s.held = true;
            Poll::Ready(Serial(()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Wake};
    use std::time::Duration;

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    // One test only: the lock is the process's, and tests of this binary run in parallel.
    #[test]
    fn one_holder_at_a_time_blocking_or_async() {
        let held = serial();
        // A blocked taker waits until the guard is dropped.
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let g = serial();
            tx.send(()).unwrap();
            drop(g);
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        drop(held);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("taken after release");
        t.join().unwrap();

        // An async taker is pending while held and woken by the release.
        let held = serial();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(serial_async());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(held);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let Poll::Ready(g) = fut.as_mut().poll(&mut cx) else {
            panic!("free after release");
        };
        drop(g);
        drop(serial());
    }
}
