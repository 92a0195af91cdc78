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
    /// A packet-in was lost: the controller event queue was full (the packet's other actions
    /// still ran).
    ControllerQueue = 5,
}

/// Number of [`DropReason`]s.
pub const N_DROP_REASONS: usize = 6;

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; N_DROP_REASONS] = [
        DropReason::Policy,
        DropReason::NoPort,
        DropReason::NoBuffer,
        DropReason::Malformed,
        DropReason::UpcallFailed,
        DropReason::ControllerQueue,
    ];

    /// Short name, as shown by `pmd-stats-show` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Policy => "policy",
            DropReason::NoPort => "no_route",
            DropReason::NoBuffer => "no_buffer",
            DropReason::Malformed => "malformed",
            DropReason::UpcallFailed => "upcall_failed",
            DropReason::ControllerQueue => "controller_queue",
        }
    }
}

/// Defines the PMD's counters from one list of running totals: the totals the PMD thread keeps
/// ([`LocalCounters`]), their shared copy ([`PmdCounters`]) and its snapshot ([`PmdStats`]),
/// with the copies between them. Besides the listed totals each has the drops by
/// [`DropReason`]; the shared forms also have the megaflow count, a gauge the PMD reads from its
/// caches when it publishes.
macro_rules! pmd_counters {
    ($( $(#[doc = $doc:literal])+ $name:ident, )+) => {
        /// Counters of one PMD thread. The thread accumulates locally and stores here once per
        /// iteration, so readers see values at most one iteration old.
        #[derive(Debug, Default)]
        pub struct PmdCounters {
            $( $(#[doc = $doc])+ pub $name: AtomicU64, )+
            /// Packets dropped, by [`DropReason`].
            pub drops: [AtomicU64; N_DROP_REASONS],
            /// Megaflows installed now.
            pub megaflows: AtomicU64,
        }

        /// A copy of [`PmdCounters`] at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct PmdStats {
            /// PMD index.
            pub pmd: usize,
            /// Core it is pinned to, if any.
            pub core: Option<usize>,
            $(
                #[doc = concat!("See [`PmdCounters::", stringify!($name), "`].")]
                pub $name: u64,
            )+
            /// See [`PmdCounters::drops`].
            pub drops: [u64; N_DROP_REASONS],
            /// See [`PmdCounters::megaflows`].
            pub megaflows: u64,
        }

        /// The PMD thread's private running totals, published into [`PmdCounters`] with plain
        /// stores (only the PMD writes them) so that the hot path does no atomic
        /// read-modify-write.
        #[derive(Clone, Copy, Debug, Default)]
        pub(crate) struct LocalCounters {
            $( $(#[doc = $doc])+ pub $name: u64, )+
            /// Packets dropped, by [`DropReason`].
            pub drops: [u64; N_DROP_REASONS],
        }

        impl PmdCounters {
            /// Reads every counter.
            pub fn snapshot(&self, pmd: usize, core: Option<usize>) -> PmdStats {
                let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
                PmdStats {
                    pmd,
                    core,
                    $( $name: r(&self.$name), )+
                    drops: std::array::from_fn(|i| r(&self.drops[i])),
                    megaflows: r(&self.megaflows),
                }
            }
        }

        impl LocalCounters {
            /// Stores the totals, and the current number of megaflows, for readers.
            pub fn publish(&self, to: &PmdCounters, megaflows: u64) {
                let w = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
                $( w(&to.$name, self.$name); )+
                for (a, v) in to.drops.iter().zip(self.drops) {
                    w(a, v);
                }
                w(&to.megaflows, megaflows);
            }
        }
    };
}

pmd_counters! {
    /// Packets received.
    packets,
    /// Exact-match cache hits.
    emc_hits,
    /// Megaflow cache hits.
    megaflow_hits,
    /// Upcalls (cache misses translated through the rule tables).
    upcalls,
    /// Upcalls whose megaflow could not be installed (flow limit).
    lost,
    /// Cycles spent in iterations that processed packets.
    busy_cycles,
    /// Cycles spent in iterations that found nothing to do (sleeps included).
    idle_cycles,
    /// Polling iterations.
    iterations,
    /// Receive bursts that brought packets (packets / bursts is the mean burst size).
    rx_batches,
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

impl LocalCounters {
    pub fn drop(&mut self, reason: DropReason, n: u64) {
        self.drops[reason as usize] += n;
    }
}
