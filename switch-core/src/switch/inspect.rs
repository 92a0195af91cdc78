//! The control side of observability: traces (hypothetical and real packets), live capture,
//! drop counters by port, and receive-queue cycle shares.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use flow_table::{FlowKey, Match};

use super::{resolve_port, Switch, SwitchError, PMD_REPLY_TIMEOUT};
use crate::datapath::clock;
use crate::datapath::pmd::PmdMsg;
use crate::datapath::port_obs::{CaptureDir, CaptureTap, CapturedFrame, PacketTrace, TraceArm};
use crate::datapath::stats::N_DROP_REASONS;
use crate::datapath::trace::{self, TraceReport};

/// Longest a `trace-packet` may wait for its packet.
pub const MAX_TRACE_WAIT: Duration = Duration::from_secs(60);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A live capture on one port. Frames arrive on [`frames`](Capture::frames); dropping it stops
/// the capture on every PMD.
pub struct Capture {
    frames: Receiver<CapturedFrame>,
    lost: Arc<AtomicU64>,
    id: u64,
    bridge: u32,
    port_no: u32,
    pmds: Vec<Sender<PmdMsg>>,
}

impl Capture {
    /// The captured frames, in the order each PMD saw them.
    pub fn frames(&self) -> &Receiver<CapturedFrame> {
        &self.frames
    }

    /// Frames lost because the reader was slower than the port (the buffer was full).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        for tx in &self.pmds {
            let _ = tx.send(PmdMsg::DisarmCapture {
                bridge: self.bridge,
                port_no: self.port_no,
                id: self.id,
            });
        }
    }
}

/// Cycles one PMD spent on one receive queue (`pmd-rxq-show`).
#[derive(Clone, Debug, PartialEq)]
pub struct RxqUsage {
    /// PMD index.
    pub pmd: usize,
    /// Bridge name.
    pub bridge: String,
    /// Port name.
    pub port: String,
    /// OpenFlow port number.
    pub port_no: u32,
    /// Queue id (of the instance this PMD runs).
    pub queue: usize,
    /// Busy cycles spent on it since the last `pmd-stats-clear`.
    pub cycles: u64,
    /// Their share of the PMD's cycles, in percent.
    pub usage_percent: f64,
}

impl Switch {
    /// `ofproto/trace`: what the bridge would do with a packet of flow `key` — or with
    /// `frame`, whose key `key` then is, and then also the frames that leave (nothing is
    /// installed, learnt or counted).
    pub fn trace(
        &self,
        bridge: &str,
        key: &FlowKey,
        frame: Option<&[u8]>,
    ) -> Result<TraceReport, SwitchError> {
        let shared = Arc::clone(&self.inner.lock().bridge(bridge)?.shared);
        Ok(trace::trace(&shared, key, frame, clock::now_ms()))
    }

    /// Traces the next packet received on `port` that matches `filter`: which cache decided,
    /// the actions it got, and the rule tables' path. `None` when none came within `wait`
    /// (at most [`MAX_TRACE_WAIT`]).
    pub fn trace_packet(
        &self,
        bridge: &str,
        port: &str,
        filter: Match,
        wait: Duration,
    ) -> Result<Option<PacketTrace>, SwitchError> {
        let (id, port_no) = {
            let ctl = self.inner.lock();
            let br = ctl.bridge(bridge)?;
            (br.shared.id, resolve_port(br, port)?)
        };
        let tid = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded(self.inner.pmds.len());
        for pmd in &self.inner.pmds {
            pmd.send(PmdMsg::ArmTrace {
                bridge: id,
                port_no,
                arm: TraceArm {
                    id: tid,
                    filter,
                    reply: tx.clone(),
                },
            })
            .map_err(|_| SwitchError::Timeout)?;
        }
        let got = rx.recv_timeout(wait.min(MAX_TRACE_WAIT)).ok();
        for pmd in &self.inner.pmds {
            let _ = pmd.send(PmdMsg::DisarmTrace {
                bridge: id,
                port_no,
                id: tid,
            });
        }
        Ok(got)
    }

    /// Starts capturing the frames of `port` in direction `dir` into a buffer of `capacity`
    /// frames (a slow reader loses frames, counted in [`Capture::lost`]), each cut to
    /// `snaplen` bytes.
    pub fn capture(
        &self,
        bridge: &str,
        port: &str,
        dir: CaptureDir,
        capacity: usize,
        snaplen: usize,
    ) -> Result<Capture, SwitchError> {
        let ctl = self.inner.lock();
        let br = ctl.bridge(bridge)?;
        let port_no = resolve_port(br, port)?;
        let (sink, frames) = bounded(capacity.max(1));
        let lost = Arc::new(AtomicU64::new(0));
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        for pmd in &self.inner.pmds {
            pmd.send(PmdMsg::ArmCapture {
                bridge: br.shared.id,
                port_no,
                tap: CaptureTap {
                    id,
                    dir,
                    snaplen: snaplen.max(1),
                    sink: sink.clone(),
                    lost: Arc::clone(&lost),
                },
            })
            .map_err(|_| SwitchError::Timeout)?;
        }
        Ok(Capture {
            frames,
            lost,
            id,
            bridge: br.shared.id,
            port_no,
            pmds: self.inner.pmds.iter().map(|p| p.tx.clone()).collect(),
        })
    }

    /// Datapath drops by reason (indexed by `DropReason as usize`) of the packets each port of
    /// a bridge received.
    pub fn port_drops(
        &self,
        bridge: &str,
    ) -> Result<BTreeMap<u32, [u64; N_DROP_REASONS]>, SwitchError> {
        let ctl = self.inner.lock();
        let br = ctl.bridge(bridge)?;
        Ok(br
            .ports
            .keys()
            .map(|&no| (no, br.shared.drops_of(no).snapshot()))
            .collect())
    }

    /// Number of rules in each non-empty table of a bridge.
    pub fn rule_counts(&self, bridge: &str) -> Result<BTreeMap<u8, usize>, SwitchError> {
        let ctl = self.inner.lock();
        let tables = ctl.bridge(bridge)?.shared.tables.load();
        // Each table's count, not a walk over every rule (metrics read this often).
        Ok((0..flow_table::tables::N_TABLES as u8)
            .filter_map(|id| Some((id, tables.table(id)?.len())))
            .filter(|&(_, n)| n > 0)
            .collect())
    }

    /// Busy cycles per receive queue and their share of each PMD's cycles.
    pub fn rxq_usage(&self) -> Result<Vec<RxqUsage>, SwitchError> {
        let (tx, rx) = bounded(self.inner.pmds.len());
        for pmd in &self.inner.pmds {
            pmd.send(PmdMsg::RxqCycles(tx.clone()))
                .map_err(|_| SwitchError::Timeout)?;
        }
        let mut raw = Vec::new();
        for _ in &self.inner.pmds {
            raw.extend(
                rx.recv_timeout(PMD_REPLY_TIMEOUT)
                    .map_err(|_| SwitchError::Timeout)?,
            );
        }
        let stats = self.pmd_stats();
        let ctl = self.inner.lock();
        let mut rows = Vec::new();
        for r in raw {
            let Some((bname, br)) = ctl.bridges.iter().find(|(_, b)| b.shared.id == r.bridge)
            else {
                continue;
            };
            let Some(p) = br.ports.get(&r.port_no) else {
                continue;
            };
            let total = stats
                .get(r.pmd)
                .map_or(0, |s| s.busy_cycles + s.idle_cycles);
            for (queue, &cycles) in r.cycles.iter().enumerate() {
                rows.push(RxqUsage {
                    pmd: r.pmd,
                    bridge: bname.clone(),
                    port: p.name.clone(),
                    port_no: r.port_no,
                    queue,
                    cycles,
                    usage_percent: if total == 0 {
                        0.0
                    } else {
                        (100.0 * cycles as f64 / total as f64).min(100.0)
                    },
                });
            }
        }
        rows.sort_by(|a, b| {
            (a.pmd, &a.bridge, a.port_no, a.queue).cmp(&(b.pmd, &b.bridge, b.port_no, b.queue))
        });
        Ok(rows)
    }
}
