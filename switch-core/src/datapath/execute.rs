//! Runs a megaflow's datapath actions on one packet, queueing its copies on output ports.

use flow_table::{DpAction, PacketInReason};
use ports::{Packet, PacketBatch, PacketPool, Port};

use crate::datapath::modify;
use crate::datapath::port_obs::PortObs;
use crate::datapath::stats::{DropReason, LocalCounters};
use crate::events::{EventSink, PacketIn, SwitchEvent};

/// A port as one PMD thread sees it: its own instance and its pending transmit batch.
pub(crate) struct PmdPort {
    pub port_no: u32,
    pub port: Box<dyn Port>,
    /// Boxed, so that a burst whose packets all go here can be handed over whole (see
    /// `Pmd::process`).
    pub tx: Box<PacketBatch>,
    /// Consecutive empty polls of a port whose polls are system calls (see `pmd.rs`).
    pub empty_polls: u32,
    /// Drop counters, capture taps, packet trace, per-queue cycles (see `port_obs.rs`).
    pub obs: PortObs,
}

impl PmdPort {
    /// Sends the pending batch.
    #[inline]
    pub fn flush(&mut self, pool: &mut PacketPool) {
        if !self.tx.is_empty() {
            self.obs.capture(true, self.tx.iter().map(|f| f.data()));
            self.port.tx_burst(0, pool, &mut self.tx);
        }
    }

    /// Queues `pkt` for the next flush (flushing first when the batch is full).
    #[inline]
    pub fn queue(&mut self, pkt: Packet, pool: &mut PacketPool) {
        if self.tx.is_full() {
            self.flush(pool);
        }
        if let Err(p) = self.tx.push(pkt) {
            pool.free(p);
        }
    }
}

/// The index in `ports` of the one port `actions` send to, when they are exactly one output
/// to a port of this bridge: packets of such a flow need no per-packet action execution.
#[inline]
pub(crate) fn single_output(actions: &[DpAction], ports: &[PmdPort]) -> Option<u32> {
    match actions {
        [DpAction::Output(no)] => ports
            .iter()
            .position(|p| p.port_no == *no)
            .map(|i| i as u32),
        _ => None,
    }
}

/// A copy of `pkt` in a fresh buffer, or `None` when the pool is empty.
fn clone(pkt: &Packet, pool: &mut PacketPool) -> Option<Packet> {
    let mut c = pool.alloc()?;
    if !c.set_data(pkt.data()) {
        pool.free(c);
        return None;
    }
    c.in_port = pkt.in_port;
    c.vnet = pkt.vnet;
    c.tun = pkt.tun;
    Some(c)
}

fn output(
    port_no: u32,
    pkt: Packet,
    ports: &mut [PmdPort],
    pool: &mut PacketPool,
    local: &mut LocalCounters,
) {
    match ports.iter_mut().find(|p| p.port_no == port_no) {
        Some(p) => p.queue(pkt, pool),
        None => {
            pool.free(pkt);
            local.drop(DropReason::NoPort, 1);
        }
    }
}

/// A packet-in of `pkt` as it is now, to the controller through the bridge's event channel.
/// The whole packet: vswitch keeps no packet buffers, and OpenFlow says an unbuffered
/// packet-in carries the complete packet (`max_len` only bounds a buffered one's copy), which
/// is what Open vSwitch sends too. Never waits: a full queue loses the packet-in, counted as
/// [`DropReason::ControllerQueue`]. The slow path (like OVS's upcall to userspace), so the copy
/// is allocated here.
#[cold]
#[allow(clippy::too_many_arguments)]
fn packet_in(
    pkt: &Packet,
    in_port: u32,
    max_len: u16,
    reason: PacketInReason,
    table: u8,
    cookie: u64,
    events: &EventSink,
    local: &mut LocalCounters,
) {
    if events.is_full() {
        local.drop(DropReason::ControllerQueue, 1);
        return;
    }
    let _ = max_len;
    let data = pkt.data();
    let ev = SwitchEvent::PacketIn(PacketIn {
        bridge: std::sync::Arc::clone(&events.bridge),
        in_port,
        reason,
        table,
        cookie,
        total_len: data.len() as u32,
        data: data.to_vec(),
        tun_id: pkt.tun.id,
    });
    if !events.try_send(ev) {
        local.drop(DropReason::ControllerQueue, 1);
    }
}

/// Executes `actions` on `pkt` (received on `in_port`). The packet is consumed: queued on
/// its last output, or returned to the pool. Packet-ins go to `events`.
#[inline]
pub(crate) fn execute(
    actions: &[DpAction],
    mut pkt: Packet,
    in_port: u32,
    ports: &mut [PmdPort],
    pool: &mut PacketPool,
    local: &mut LocalCounters,
    events: &EventSink,
) {
    // The common single output: straight into the port's transmit batch.
    if let [DpAction::Output(p)] = actions {
        output(*p, pkt, ports, pool, local);
        return;
    }
    // Rewrites after the last output change nothing anyone sees.
    let Some(last) = actions.iter().rposition(|a| {
        matches!(
            a,
            DpAction::Output(_) | DpAction::Flood | DpAction::Controller { .. }
        )
    }) else {
        pool.free(pkt);
        local.drop(DropReason::Policy, 1);
        return;
    };
    for (i, a) in actions[..=last].iter().enumerate() {
        let is_last = i == last;
        let ok = match a {
            DpAction::Output(p) => {
                if is_last {
                    output(*p, pkt, ports, pool, local);
                    return;
                }
                match clone(&pkt, pool) {
                    Some(c) => output(*p, c, ports, pool, local),
                    None => local.drop(DropReason::NoBuffer, 1),
                }
                true
            }
            DpAction::Flood => {
                let mut targets = ports.iter_mut().filter(|p| p.port_no != in_port).peekable();
                if is_last && targets.peek().is_none() {
                    // Nowhere to flood to.
                    pool.free(pkt);
                    local.drop(DropReason::NoPort, 1);
                    return;
                }
                while let Some(port) = targets.next() {
                    if is_last && targets.peek().is_none() {
                        port.queue(pkt, pool);
                        return;
                    }
                    match clone(&pkt, pool) {
                        Some(c) => port.queue(c, pool),
                        None => local.drop(DropReason::NoBuffer, 1),
                    }
                }
                true
            }
            DpAction::PushVlan { tpid, tci } => modify::push_vlan(&mut pkt, *tpid, *tci),
            DpAction::PopVlan => modify::pop_vlan(&mut pkt),
            // Tunnel metadata travels beside the packet, for a tunnel port to read.
            DpAction::Set(flow_table::SetField::TunId(id)) => {
                pkt.tun.id = *id;
                true
            }
            DpAction::Set(sf) => modify::set_field(&mut pkt, sf),
            DpAction::DecTtl => modify::dec_ttl(pkt.data_mut()),
            DpAction::Controller {
                max_len,
                reason,
                table,
                cookie,
            } => {
                packet_in(
                    &pkt, in_port, *max_len, *reason, *table, *cookie, events, local,
                );
                if is_last {
                    // Delivered (to the controller): not a drop.
                    pool.free(pkt);
                    return;
                }
                true
            }
            // NORMAL is resolved at upcall time; a megaflow never holds it.
            _ => true,
        };
        if !ok {
            pool.free(pkt);
            local.drop(DropReason::Malformed, 1);
            return;
        }
    }
}

#[cfg(test)]
mod tests;
