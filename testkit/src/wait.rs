//! Polling for a condition with a bound, for tests that wait on another thread or process.

use std::time::{Duration, Instant};

/// Polls `f` every millisecond until it returns true or `timeout` passes; returns the last
/// result.
pub fn wait_until(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    poll_until(timeout, Duration::from_millis(1), f)
}

/// Polls `f` every `every` until it returns true or `timeout` passes; returns the last result.
/// A longer period suits conditions that are costly to check (running a program, a request).
pub fn poll_until(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}
