//! Stage 3 of a burst: carry out the verdicts, batching packets per output port.
//!
//! Packets whose megaflow is a single output stay in the receive batch (in order) and join
//! their port's transmit batch at the end; the others leave it for `execute` in packet order
//! first. A burst that goes whole to one port is handed over by swapping batches, so its
//! packets are not moved one by one (a `Packet` is 64 bytes).

use ports::{PacketBatch, PacketPool};

use super::burst::{BurstScratch, Verdict};
use super::PmdBridge;
use crate::datapath::execute::{execute, PmdPort};
use crate::datapath::stats::LocalCounters;
use crate::events::EventSink;

/// Sends, runs the actions of, or drops each packet of `batch` as `classify_burst` decided in
/// `s`, queueing the copies on the transmit batches of `br`'s ports (sent when the PMD
/// flushes them). Leaves `batch` empty, or holding the transmit batch it swapped with.
#[inline]
pub(super) fn dispatch_burst(
    s: &mut BurstScratch,
    batch: &mut Box<PacketBatch>,
    br: &mut PmdBridge,
    pool: &mut PacketPool,
    local: &mut LocalCounters,
) {
    let PmdBridge {
        cache,
        ports,
        shared,
        ..
    } = br;
    if s.n_slow > 0 {
        run_slow(
            s,
            batch,
            &cache.megaflows,
            ports,
            pool,
            local,
            &shared.events,
        );
    }
    let (n, kept, dest) = (s.n, s.kept, &s.dest);
    let to = dest[0] as usize;
    if kept == n && ports[to].tx.is_empty() && dest[..n].iter().all(|&d| d as usize == to) {
        std::mem::swap(&mut ports[to].tx, batch);
    } else {
        // What stayed, in order, to its port; the drain also closes the holes.
        for (k, pkt) in batch.drain().enumerate() {
            match dest[..kept].get(k) {
                Some(&to) => ports[to as usize].queue(pkt, pool),
                None => pool.free(pkt),
            }
        }
    }
}

/// Takes the packets that need more than a single output out of `batch`, in order, and runs
/// their actions (or drops them).
fn run_slow(
    s: &mut BurstScratch,
    batch: &mut PacketBatch,
    megaflows: &flow_table::MegaflowCache,
    ports: &mut [PmdPort],
    pool: &mut PacketPool,
    local: &mut LocalCounters,
    events: &EventSink,
) {
    for &(i, v) in &s.slow[..s.n_slow] {
        let Some(pkt) = batch.take(usize::from(i)) else {
            continue;
        };
        let actions = match v {
            Verdict::Flow(r) => megaflows.get(r).map_or(&[][..], |m| &m.actions),
            Verdict::Uncached(u) => &s.uncached[usize::from(u)].actions[..],
            Verdict::Drop(reason) => {
                pool.free(pkt);
                local.drop(reason, 1);
                continue;
            }
            // Never recorded here (`classify_burst` keeps these in `dest`).
            Verdict::Port(to) => {
                ports[to as usize].queue(pkt, pool);
                continue;
            }
        };
        execute(actions, pkt, s.in_port, ports, pool, local, events);
    }
    // The translations' buffers are freed here, as the decisions were before.
    s.uncached.clear();
}
