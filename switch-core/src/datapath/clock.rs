//! Clocks: a cheap cycle counter for PMD busy/idle accounting, and the process-wide millisecond
//! clock that rules, megaflows and MAC entries are stamped with (one clock, so that the PMDs'
//! and the control plane's times compare).

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call in this process.
#[inline]
pub fn now_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Reads the time-stamp counter (x86_64) or, elsewhere, nanoseconds since an arbitrary start.
/// Only differences are meaningful.
#[inline(always)]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no memory effects and exists on every x86_64 CPU.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_up() {
        let (a, m) = (super::cycles(), super::now_ms());
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(super::cycles() > a);
        assert!(super::now_ms() > m);
    }
}
