//! Per-PMD counters, written by the PMD thread and read by the control plane.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why the datapath dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// The actions said drop (a rule, or no rule matched).
    Policy = 0,
    /// No route: an output named a port that does not exist (any more), a flood found no
    /// other port, or NORMAL learnt the destination on the ingress port.
    NoPort = 1,
    /// No buffer to copy the packet into for a second output.
    NoBuffer = 2,
    /// The frame is malformed: shorter than an Ethernet header, or an IP header the parser
    /// rejects (see `flow_table::extract_checked`), or a header rewrite did not fit it.
    Malformed = 3,
    /// Translation failed (resubmit loop, too many lookups).
    UpcallFailed = 4,
}

/// Number of [`DropReason`]s.
pub const N_DROP_REASONS: usize = 5;

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; N_DROP_REASONS] = [
        DropReason::Policy,
        DropReason::NoPort,
        DropReason::NoBuffer,
        DropReason::Malformed,
        DropReason::UpcallFailed,
    ];

    /// Short name, as shown by `pmd-stats-show` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Policy => "policy",
            DropReason::NoPort => "no_route",
            DropReason::NoBuffer => "no_buffer",
            DropReason::Malformed => "malformed",
            DropReason::UpcallFailed => "upcall_failed",
        }
    }
}

/// Counters of one PMD thread. The thread accumulates locally and stores here once per
/// iteration, so readers see values at most one iteration old.
#[derive(Debug, Default)]
pub struct PmdCounters {
    /// Packets received.
    pub packets: AtomicU64,
    /// Exact-match cache hits.
    pub emc_hits: AtomicU64,
    /// Megaflow cache hits.
    pub megaflow_hits: AtomicU64,
    /// Upcalls (cache misses translated through the rule tables).
    pub upcalls: AtomicU64,
    /// Upcalls whose megaflow could not be installed (flow limit).
    pub lost: AtomicU64,
    /// Cycles spent in iterations that processed packets.
    pub busy_cycles: AtomicU64,
    /// Cycles spent in iterations that found nothing to do (sleeps included).
    pub idle_cycles: AtomicU64,
    /// Packets dropped, by [`DropReason`].
    pub drops: [AtomicU64; N_DROP_REASONS],
    /// Megaflows installed now.
    pub megaflows: AtomicU64,
    /// Polling iterations.
    pub iterations: AtomicU64,
    /// Receive bursts that brought packets (packets / bursts is the mean burst size).
    pub rx_batches: AtomicU64,
}

/// A copy of [`PmdCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PmdStats {
    /// PMD index.
    pub pmd: usize,
    /// Core it is pinned to, if any.
    pub core: Option<usize>,
    /// See [`PmdCounters`].
    pub packets: u64,
    /// See [`PmdCounters`].
    pub emc_hits: u64,
    /// See [`PmdCounters`].
    pub megaflow_hits: u64,
    /// See [`PmdCounters`].
    pub upcalls: u64,
    /// See [`PmdCounters`].
    pub lost: u64,
    /// See [`PmdCounters`].
    pub busy_cycles: u64,
    /// See [`PmdCounters`].
    pub idle_cycles: u64,
    /// See [`PmdCounters`].
    pub drops: [u64; N_DROP_REASONS],
    /// See [`PmdCounters`].
    pub megaflows: u64,
    /// See [`PmdCounters`].
    pub iterations: u64,
    /// See [`PmdCounters`].
    pub rx_batches: u64,
}

impl PmdStats {
    /// Busy cycles per received packet.
    pub fn cycles_per_packet(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.busy_cycles as f64 / self.packets as f64
        }
    }

    /// Share of cycles spent busy, in percent.
    pub fn busy_percent(&self) -> f64 {
        let total = self.busy_cycles + self.idle_cycles;
        if total == 0 {
            0.0
        } else {
            100.0 * self.busy_cycles as f64 / total as f64
        }
    }

    /// Packets that missed both caches (= upcalls, as OVS reports "miss with success upcall"
    /// plus lost).
    pub fn misses(&self) -> u64 {
        self.upcalls
    }
}

impl PmdCounters {
    /// Reads every counter.
    pub fn snapshot(&self, pmd: usize, core: Option<usize>) -> PmdStats {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PmdStats {
            pmd,
            core,
            packets: r(&self.packets),
            emc_hits: r(&self.emc_hits),
            megaflow_hits: r(&self.megaflow_hits),
            upcalls: r(&self.upcalls),
            lost: r(&self.lost),
            busy_cycles: r(&self.busy_cycles),
            idle_cycles: r(&self.idle_cycles),
            drops: std::array::from_fn(|i| r(&self.drops[i])),
            megaflows: r(&self.megaflows),
            iterations: r(&self.iterations),
            rx_batches: r(&self.rx_batches),
        }
    }
}

/// The PMD thread's private running totals, published into [`PmdCounters`] with plain stores
/// (only the PMD writes them) so that the hot path does no atomic read-modify-write.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LocalCounters {
    pub packets: u64,
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    pub upcalls: u64,
    pub lost: u64,
    pub busy_cycles: u64,
    pub idle_cycles: u64,
    pub drops: [u64; N_DROP_REASONS],
    pub iterations: u64,
    pub rx_batches: u64,
}

impl LocalCounters {
    pub fn drop(&mut self, reason: DropReason, n: u64) {
        self.drops[reason as usize] += n;
    }

    pub fn publish(&self, to: &PmdCounters, megaflows: u64) {
        let w = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        w(&to.packets, self.packets);
        w(&to.emc_hits, self.emc_hits);
        w(&to.megaflow_hits, self.megaflow_hits);
        w(&to.upcalls, self.upcalls);
        w(&to.lost, self.lost);
        w(&to.busy_cycles, self.busy_cycles);
        w(&to.idle_cycles, self.idle_cycles);
        for (a, v) in to.drops.iter().zip(self.drops) {
            w(a, v);
        }
        w(&to.megaflows, megaflows);
        w(&to.iterations, self.iterations);
        w(&to.rx_batches, self.rx_batches);
    }
}
