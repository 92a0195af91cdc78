//! testpmd's output (stdout and stderr through one pipe), collected by a reader thread so that
//! commands can wait, bounded, for the answers they expect.

use std::io::Read;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Everything testpmd printed so far, and whether it has exited.
#[derive(Default)]
pub(super) struct Output {
    pub(super) bytes: Vec<u8>,
    eof: bool,
}

/// The output, shared by the reader thread and the [`TestPmd`](super::TestPmd).
#[derive(Default)]
pub(super) struct Shared {
    out: Mutex<Output>,
    cond: Condvar,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Output> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `done` finds what it needs in the output (returning it), the process's
    /// output ends, or `deadline` passes.
    pub(super) fn wait_for<T>(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<T, &'static str> {
        let mut out = self.lock();
        loop {
            if let Some(v) = done(&out.bytes) {
                return Ok(v);
            }
            if out.eof {
                return Err("testpmd exited");
            }
            let now = Instant::now();
            if now >= deadline {
                return Err("timed out");
            }
            out = self
                .cond
                .wait_timeout(out, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The reader thread: appends testpmd's output (echoed to stderr with `[name]` prefixes when
/// `verbose`) until it ends.
pub(super) fn read_output(mut f: std::fs::File, shared: &Shared, name: &str, verbose: bool) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if verbose {
            eprint!(
                "{}",
                String::from_utf8_lossy(&buf[..n]).replace('\n', &format!("\n[{name}] "))
            );
        }
        shared.lock().bytes.extend_from_slice(&buf[..n]);
        shared.cond.notify_all();
    }
    shared.lock().eof = true;
    shared.cond.notify_all();
}

/// Where `needle` first occurs in `hay`.
pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
