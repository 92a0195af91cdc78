//! Deciding, burst by burst, whether the exact-match cache is worth consulting.
//!
//! With many more flows than EMC slots (100k flows against 8192 slots) nearly every EMC probe
//! misses, and each miss costs two random cache-line loads before the megaflow lookup that
//! decides anyway; the probabilistic insertion that follows a megaflow hit costs two more.
//! The gate measures the EMC's hit rate over windows of lookups and, while it is below
//! [`MIN_HIT_PERCENT`], lets only one burst in [`PROBE_EVERY`] use the EMC (lookups and
//! insertions), which keeps measuring it and refilling it when traffic changes.

/// Lookups per measurement window.
pub const WINDOW: u32 = 4096;
/// Below this hit rate (in percent) the EMC is bypassed.
pub const MIN_HIT_PERCENT: u32 = 50;
/// While bypassed, one burst in this many still consults the EMC.
pub const PROBE_EVERY: u32 = 16;

/// Hit-rate tracking for one EMC.
#[derive(Clone, Debug, Default)]
pub struct EmcGate {
    lookups: u32,
    hits: u32,
    bursts: u32,
    bypass: bool,
    /// Whether the current burst consults the EMC.
    open: bool,
}

impl EmcGate {
    /// A gate that starts open (EMC used).
    pub fn new() -> EmcGate {
        EmcGate {
            open: true,
            ..EmcGate::default()
        }
    }

    /// Starts a burst; returns whether it consults the EMC.
    #[inline]
    pub fn begin_burst(&mut self) -> bool {
        self.bursts = self.bursts.wrapping_add(1);
        self.open = !self.bypass || self.bursts.is_multiple_of(PROBE_EVERY);
        self.open
    }

    /// Whether the current burst consults the EMC.
    #[inline(always)]
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether the EMC is being bypassed (outside probe bursts).
    pub fn is_bypassing(&self) -> bool {
        self.bypass
    }

    /// Records one EMC lookup and whether it hit.
    #[inline(always)]
    pub fn record(&mut self, hit: bool) {
        self.lookups += 1;
        self.hits += hit as u32;
        if self.lookups >= WINDOW {
            self.bypass = self.hits * 100 < self.lookups * MIN_HIT_PERCENT;
            self.lookups = 0;
            self.hits = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_window(g: &mut EmcGate, hit_percent: u32) {
        let mut done = 0;
        // Bursts of 32 until a whole window of lookups was recorded.
        while done < WINDOW {
            if g.begin_burst() {
                for i in 0..32 {
                    g.record(i * 100 < 32 * hit_percent);
                    done += 1;
                }
            }
        }
    }

    #[test]
    fn stays_open_while_hits_are_common() {
        let mut g = EmcGate::new();
        run_window(&mut g, 90);
        assert!(!g.is_bypassing());
        assert!((0..100).all(|_| g.begin_burst()));
    }

    #[test]
    fn bypasses_when_hits_are_rare_and_probes_one_burst_in_n() {
        let mut g = EmcGate::new();
        run_window(&mut g, 8);
        assert!(g.is_bypassing());
        let open = (0..PROBE_EVERY * 10).filter(|_| g.begin_burst()).count();
        assert_eq!(open, 10);
    }

    #[test]
    fn probes_reopen_the_gate_when_hits_return() {
        let mut g = EmcGate::new();
        run_window(&mut g, 5);
        assert!(g.is_bypassing());
        run_window(&mut g, 100);
        assert!(!g.is_bypassing());
        assert!(g.begin_burst() && g.is_open());
    }
}
