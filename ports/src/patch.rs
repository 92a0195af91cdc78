//! Patch ports: two ports of two bridges of one switch joined back to back (OVS `type=patch`).
//!
//! No kernel interface is involved. A packet sent to a patch port is kept in the port's outbox;
//! the PMD thread that sent it takes the outbox right after the burst and runs the packets
//! through the peer bridge's pipeline as if they had arrived on the peer port. Both ends of a
//! pair have an instance on every PMD, so a packet never leaves the PMD (nor its pool).
//!
//! Which port is the peer is decided by the control plane (the peer may be added later, or
//! go); it publishes the peer's (bridge id, port number) in a [`PatchLink`] that the instances
//! share, read once per burst.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::batch::PacketBatch;
use crate::packet::Packet;
use crate::pool::PacketPool;
use crate::port::{Burst, LinkWatch, Port, PortCounters, PortKind};

/// Packets a patch port holds between a burst and its delivery to the peer bridge.
pub const PATCH_OUTBOX: usize = 512;

/// The peer of a patch port, as the control plane resolved it.
#[derive(Debug, Default)]
pub struct PatchLink {
    /// `bridge_id << 32 | port_no` of the peer port; 0 while there is none.
    peer: AtomicU64,
    up: Arc<AtomicBool>,
}

impl PatchLink {
    /// Points the link at the peer port `port_no` of bridge `bridge`, or at nothing.
    pub fn set(&self, peer: Option<(u32, u32)>) {
        let v = peer.map_or(0, |(b, p)| (b as u64) << 32 | p as u64);
        self.peer.store(v, Ordering::Release);
        self.up.store(peer.is_some(), Ordering::Release);
    }

    /// The peer (bridge id, port number), if resolved.
    #[inline]
    pub fn get(&self) -> Option<(u32, u32)> {
        let v = self.peer.load(Ordering::Acquire);
        (v != 0).then_some(((v >> 32) as u32, v as u32))
    }
}

/// One PMD's instance of a patch port.
pub struct PatchPort {
    name: String,
    peer_name: String,
    port_no: u32,
    counters: Arc<PortCounters>,
    link: Arc<PatchLink>,
    outbox: Vec<Packet>,
}

impl PatchPort {
    /// Opens `n` instances of the patch port `name` whose peer is the patch port `peer`.
    pub fn open_instances(name: &str, peer: &str, n: usize) -> Vec<PatchPort> {
        let counters = PortCounters::new_shared();
        let link = Arc::new(PatchLink::default());
        (0..n)
            .map(|_| PatchPort {
                name: name.to_owned(),
                peer_name: peer.to_owned(),
                port_no: 0,
                counters: Arc::clone(&counters),
                link: Arc::clone(&link),
                outbox: Vec::with_capacity(PATCH_OUTBOX),
            })
            .collect()
    }

    /// The name of the peer port.
    pub fn peer_name(&self) -> &str {
        &self.peer_name
    }

    /// The link the control plane sets.
    pub fn link(&self) -> Arc<PatchLink> {
        Arc::clone(&self.link)
    }

    /// The peer (bridge id, port number), if resolved.
    #[inline]
    pub fn peer(&self) -> Option<(u32, u32)> {
        self.link.get()
    }

    /// Whether packets wait for delivery.
    #[inline]
    pub fn has_outbox(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Moves the waiting packets to the end of `into` (which should have room for
    /// [`PATCH_OUTBOX`] packets so that nothing allocates).
    #[inline]
    pub fn take_outbox(&mut self, into: &mut Vec<Packet>) {
        into.append(&mut self.outbox);
    }

    /// Counts packets that arrived on this port from its peer.
    #[inline]
    pub fn count_rx(&self, packets: u64, bytes: u64) {
        self.counters.add_rx(&Burst {
            packets,
            bytes,
            ..Burst::default()
        });
    }
}

impl Port for PatchPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Patch
    }

    /// Nothing to poll: packets arrive through the peer's outbox.
    fn n_rxq(&self) -> usize {
        0
    }

    fn n_txq(&self) -> usize {
        1
    }

    fn port_no(&self) -> u32 {
        self.port_no
    }

    fn set_port_no(&mut self, port_no: u32) {
        self.port_no = port_no;
    }

    fn rx_burst(&mut self, _qid: usize, _pool: &mut PacketPool, _batch: &mut PacketBatch) -> usize {
        0
    }

    fn tx_burst(&mut self, _qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        let mut out = Burst::default();
        let linked = self.link.get().is_some();
        for pkt in batch.drain() {
            if linked && self.outbox.len() < PATCH_OUTBOX {
                out.packets += 1;
                out.bytes += pkt.len() as u64;
                self.outbox.push(pkt);
            } else {
                out.dropped += 1;
                pool.free(pkt);
            }
        }
        self.counters.add_tx(&out);
        out
    }

    fn counters(&self) -> Arc<PortCounters> {
        Arc::clone(&self.counters)
    }

    fn mtu(&self) -> u32 {
        65535
    }

    fn mac(&self) -> [u8; 6] {
        [0; 6]
    }

    fn link_up(&self) -> bool {
        self.link.get().is_some()
    }

    fn link_watch(&self) -> LinkWatch {
        LinkWatch::Connected(Arc::clone(&self.link.up))
    }

    fn patch(&mut self) -> Option<&mut PatchPort> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolConfig;

    #[test]
    fn unlinked_drops_linked_keeps_until_taken() {
        let mut pool = PacketPool::new(PoolConfig {
            n_buffers: 8,
            ..PoolConfig::default()
        })
        .unwrap();
        let mut ports = PatchPort::open_instances("pa", "pb", 2);
        let p = &mut ports[0];
        let mut b = PacketBatch::new();
        let _ = b.push(pool.alloc().unwrap());
        p.tx_burst(0, &mut pool, &mut b);
        assert!(!p.has_outbox(), "no peer yet: dropped");
        assert_eq!(p.stats().tx_dropped, 1);
        p.link().set(Some((3, 7)));
        assert_eq!(ports[1].peer(), Some((3, 7)), "instances share the link");
        let p = &mut ports[0];
        let _ = b.push(pool.alloc().unwrap());
        p.tx_burst(0, &mut pool, &mut b);
        let mut out = Vec::with_capacity(PATCH_OUTBOX);
        p.take_outbox(&mut out);
        assert_eq!(out.len(), 1);
        assert!(p.link_watch().is_up());
        for pkt in out {
            pool.free(pkt);
        }
    }
}
