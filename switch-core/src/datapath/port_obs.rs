//! What a PMD keeps per port so that operators can see its traffic: drop counters by reason,
//! a one-shot packet trace, live capture taps, and cycles spent per receive queue.
//!
//! Unarmed, each costs the datapath one predictable branch per batch (capture, trace) or per
//! packet (the trace filter, only while armed); nothing here allocates unless a capture or a
//! trace is armed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};
use flow_table::{DpAction, FlowKey, Hit, Match};

use crate::datapath::stats::{DropReason, N_DROP_REASONS};
use crate::datapath::trace::TraceReport;

/// Datapath drops of packets received on one port, by [`DropReason`]. Shared by the port's
/// instances on every PMD and read by the control plane.
#[derive(Debug, Default)]
pub struct PortDrops {
    by_reason: [AtomicU64; N_DROP_REASONS],
}

impl PortDrops {
    /// Adds `n` drops for `reason`.
    pub fn add(&self, reason: DropReason, n: u64) {
        self.by_reason[reason as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Drops by reason, indexed by `DropReason as usize`.
    pub fn snapshot(&self) -> [u64; N_DROP_REASONS] {
        std::array::from_fn(|i| self.by_reason[i].load(Ordering::Relaxed))
    }
}

/// Which packets of a port a capture takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureDir {
    /// Received on the port.
    Rx,
    /// Sent out of the port.
    Tx,
    /// Both.
    Both,
}

impl CaptureDir {
    /// Parses `rx`, `tx` or `both`.
    pub fn parse(s: &str) -> Option<CaptureDir> {
        match s {
            "rx" | "in" => Some(CaptureDir::Rx),
            "tx" | "out" => Some(CaptureDir::Tx),
            "both" | "" => Some(CaptureDir::Both),
            _ => None,
        }
    }

    fn rx(self) -> bool {
        self != CaptureDir::Tx
    }

    fn tx(self) -> bool {
        self != CaptureDir::Rx
    }
}

/// One captured frame.
#[derive(Clone, Debug)]
pub struct CapturedFrame {
    /// Wall-clock time it was seen (ns since the UNIX epoch).
    pub ts_ns: u64,
    /// True when it was sent out of the port, false when received.
    pub tx: bool,
    /// Its length on the wire.
    pub orig_len: u32,
    /// Its first bytes (up to the capture's snap length).
    pub data: Vec<u8>,
}

/// A capture armed on one port instance of a PMD.
pub(crate) struct CaptureTap {
    pub id: u64,
    pub dir: CaptureDir,
    pub snaplen: usize,
    pub sink: Sender<CapturedFrame>,
    pub lost: Arc<AtomicU64>,
}

impl CaptureTap {
    /// Copies a frame into the capture's bounded channel; a full channel (a slow reader) loses
    /// the copy and counts it, so the datapath never waits. Allocates: runs only while armed.
    fn take(&self, data: &[u8], tx: bool, ts_ns: u64) {
        let n = data.len().min(self.snaplen);
        let frame = CapturedFrame {
            ts_ns,
            tx,
            orig_len: data.len() as u32,
            data: data[..n].to_vec(),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.sink.try_send(frame)
        {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A trace armed on one port: the next received packet matching `filter` is traced.
pub(crate) struct TraceArm {
    pub id: u64,
    pub filter: Match,
    pub reply: Sender<PacketTrace>,
}

/// The path of one real packet through the datapath (`trace-packet`).
#[derive(Clone, Debug)]
pub struct PacketTrace {
    /// The PMD that handled it.
    pub pmd: usize,
    /// Its length.
    pub len: usize,
    /// Its flow key.
    pub key: FlowKey,
    /// Which cache decided (or the upcall).
    pub hit: Hit,
    /// The datapath actions it was given.
    pub actions: Vec<DpAction>,
    /// The rule tables' view of it (re-translated without side effects).
    pub report: TraceReport,
}

/// Per-port observation state of one PMD's instance of a port.
pub(crate) struct PortObs {
    pub drops: Arc<PortDrops>,
    pub captures: Vec<CaptureTap>,
    pub trace: Option<TraceArm>,
    /// Busy cycles spent on each receive queue since the last `pmd-stats-clear`.
    pub rxq_cycles: Vec<u64>,
}

impl PortObs {
    pub fn new(drops: Arc<PortDrops>, n_rxq: usize) -> PortObs {
        PortObs {
            drops,
            captures: Vec::new(),
            trace: None,
            rxq_cycles: vec![0; n_rxq],
        }
    }

    /// Copies frames into the armed captures of this direction. Called once per batch; the
    /// unarmed cost is the emptiness test. The copies allocate (a `Vec` per frame), which is
    /// why they happen only while a capture is armed, never otherwise.
    #[inline]
    pub fn capture<'a>(&self, tx: bool, frames: impl Iterator<Item = &'a [u8]>) {
        if self.captures.is_empty() {
            return;
        }
        self.capture_slow(tx, frames);
    }

    #[cold]
    fn capture_slow<'a>(&self, tx: bool, frames: impl Iterator<Item = &'a [u8]>) {
        let ts = wall_ns();
        for f in frames {
            for c in &self.captures {
                if (tx && c.dir.tx()) || (!tx && c.dir.rx()) {
                    c.take(f, tx, ts);
                }
            }
        }
    }
}

/// Nanoseconds since the UNIX epoch (pcap timestamps).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Attributes the drops the PMD counted while handling one batch (`after - before`) to the port
/// it came from. Once per batch.
#[inline]
pub(crate) fn attribute_drops(
    before: &[u64; N_DROP_REASONS],
    after: &[u64; N_DROP_REASONS],
    to: &PortDrops,
) {
    if before == after {
        return;
    }
    for r in DropReason::ALL {
        let n = after[r as usize] - before[r as usize];
        if n != 0 {
            to.add(r, n);
        }
    }
}
