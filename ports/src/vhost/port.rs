//! One PMD thread's instance of a vhost-user port.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::conn::Conn;
use super::device::{Device, RARP_PENDING};
use super::VhostMode;
use crate::batch::PacketBatch;
use crate::pool::PacketPool;
use crate::port::{Burst, LinkWatch, PeerStatus, Port, PortCounters, PortKind};

/// A vhost-user port as one PMD thread serves it: it receives from the guest TX queues of the
/// queue pairs it owns (pair `q` belongs to instance `q % n`) and transmits on one started guest
/// RX queue, its own when the guest has as many pairs as there are instances.
pub struct VhostUserPort {
    dev: Arc<Device>,
    /// Keeps the control thread running while any instance lives.
    _conn: Arc<Conn>,
    instance: usize,
    port_no: u32,
    /// Bit `q` set: this instance receives from queue pair `q`.
    owned: u64,
    /// Pair served first last time (the next poll starts after it).
    cursor: usize,
}

impl VhostUserPort {
    pub(crate) fn new(
        dev: Arc<Device>,
        conn: Arc<Conn>,
        instance: usize,
        instances: usize,
    ) -> VhostUserPort {
        let dev_pairs = dev.queue_pairs();
        VhostUserPort {
            dev,
            _conn: conn,
            instance,
            port_no: 0,
            owned: (0..dev_pairs)
                .filter(|q| q % instances == instance)
                .fold(0, |m, q| m | 1 << q),
            cursor: 0,
        }
    }

    /// Whether a frontend is connected now.
    pub fn connected(&self) -> bool {
        self.dev.connected.load(Ordering::Acquire)
    }

    /// Frontends that connected so far.
    pub fn connections(&self) -> u64 {
        self.dev.connections.load(Ordering::Relaxed)
    }

    /// Protocol errors and broken rings seen so far.
    pub fn protocol_errors(&self) -> u64 {
        self.dev.protocol_errors.load(Ordering::Relaxed)
    }

    /// Sends the RARP the frontend asked for after a migration (`SEND_RARP`) as if the guest
    /// had sent it, so the bridge learns the guest's MAC on this port.
    fn announce(&mut self, pool: &mut PacketPool, batch: &mut PacketBatch) {
        let word = self.dev.rarp.swap(0, Ordering::Acquire);
        if word & RARP_PENDING == 0 {
            return;
        }
        let mac: [u8; 6] = word.to_le_bytes()[..6].try_into().expect("6 bytes");
        let Some(mut pkt) = pool.alloc() else {
            self.dev.counters.add_rx(&Burst {
                dropped: 1,
                ..Burst::default()
            });
            return;
        };
        let frame = rarp_frame(mac);
        if !pkt.set_data(&frame) {
            pool.free(pkt);
            return;
        }
        pkt.in_port = self.port_no;
        match batch.push(pkt) {
            Ok(()) => self.dev.counters.add_rx(&Burst {
                packets: 1,
                bytes: frame.len() as u64,
                ..Burst::default()
            }),
            Err(p) => pool.free(p),
        }
    }

    /// Guest RX queue pair this instance transmits on, if any is started.
    fn tx_pair(&self) -> Option<usize> {
        let ready = self.dev.rx_ready.load(Ordering::Acquire);
        if ready == 0 {
            return None;
        }
        let nth = self.instance % ready.count_ones() as usize;
        let mut bits = ready;
        for _ in 0..nth {
            bits &= bits - 1;
        }
        Some(bits.trailing_zeros() as usize)
    }
}

impl Port for VhostUserPort {
    fn name(&self) -> &str {
        &self.dev.cfg.name
    }

    fn kind(&self) -> PortKind {
        match self.dev.cfg.mode {
            VhostMode::Server => PortKind::VhostUser,
            VhostMode::Client => PortKind::VhostUserClient,
        }
    }

    fn n_rxq(&self) -> usize {
        // One receive "queue" that walks every pair this instance owns.
        usize::from(self.instance < self.dev.queue_pairs())
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

    fn rx_burst(&mut self, _qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> usize {
        if self.dev.rarp.load(Ordering::Relaxed) != 0 {
            self.announce(pool, batch);
        }
        // Started guest TX queues among the pairs this instance owns.
        let mut ready = self.dev.tx_ready.load(Ordering::Acquire) & self.owned;
        if ready == 0 {
            return 0;
        }
        // Start after the pair served first last time, for fairness between pairs.
        let rotate = (self.cursor + 1) % 64;
        ready = ready.rotate_right(rotate as u32);
        let before = batch.len();
        while ready != 0 && !batch.is_full() {
            let pair = (ready.trailing_zeros() as usize + rotate) % 64;
            ready &= ready - 1;
            // The control thread holds the queue only to reconfigure it: skip it this time.
            let Some(mut slot) = self.dev.vqs[2 * pair + 1].try_take() else {
                continue;
            };
            if let Some(vq) = slot.as_mut() {
                let b = vq.dequeue(pool, batch, self.port_no);
                self.dev.counters.add_rx(&b);
                if b.packets > 0 {
                    self.dev.vq_packets[2 * pair + 1].fetch_add(b.packets, Ordering::Relaxed);
                }
            }
            self.cursor = pair;
        }
        batch.len() - before
    }

    fn tx_burst(&mut self, _qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        if batch.is_empty() {
            return Burst::default();
        }
        let n = batch.len() as u64;
        if let Some(pair) = self.tx_pair() {
            let mut slot = self.dev.vqs[2 * pair].take();
            if let Some(vq) = slot.as_mut() {
                // Offloads the guest does not take are resolved here: TCP segmented, partial
                // checksums completed.
                let offloads = vq.offloads;
                let vq_packets = &self.dev.vq_packets[2 * pair];
                return batch.send_resolved(
                    pool,
                    &self.dev.counters,
                    |h| offloads.accept(h),
                    |pool, burst| {
                        let b = vq.enqueue(pool, burst);
                        vq_packets.fetch_add(b.packets, Ordering::Relaxed);
                        b
                    },
                );
            }
        }
        // No guest RX queue runs: the guest is away or not ready.
        pool.free_batch(batch);
        let out = Burst {
            dropped: n,
            ..Burst::default()
        };
        self.dev.counters.add_tx(&out);
        out
    }

    fn counters(&self) -> Arc<PortCounters> {
        Arc::clone(&self.dev.counters)
    }

    fn mtu(&self) -> u32 {
        // The MTU the frontend gave the guest once it has, else the configured one.
        PeerStatus::mtu(&*self.dev).unwrap_or(1500)
    }

    fn mac(&self) -> [u8; 6] {
        [0; 6]
    }

    fn link_watch(&self) -> LinkWatch {
        LinkWatch::Peer(Arc::clone(&self.dev) as Arc<dyn PeerStatus>)
    }

    fn link_up(&self) -> bool {
        self.dev.link_up()
    }
}

/// A RARP request announcing `mac` (as QEMU and DPDK's vhost library send for a migrated
/// guest): broadcast, ethertype 0x8035, sender and target hardware address `mac`.
fn rarp_frame(mac: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x8035u16.to_be_bytes());
    // Ethernet, IPv4, 6- and 4-byte addresses, "request reverse" (3).
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 3]);
    f[22..28].copy_from_slice(&mac);
    f[32..38].copy_from_slice(&mac);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rarp_names_the_guest_as_sender_and_target() {
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let f = rarp_frame(mac);
        assert_eq!(&f[..6], &[0xff; 6], "broadcast");
        assert_eq!(&f[6..12], &mac, "from the guest");
        assert_eq!(&f[12..14], &[0x80, 0x35], "RARP");
        assert_eq!(u16::from_be_bytes([f[20], f[21]]), 3, "request reverse");
        assert_eq!(&f[22..28], &mac, "sender hardware address");
        assert_eq!(&f[28..32], &[0; 4], "sender protocol address");
        assert_eq!(&f[32..38], &mac, "target hardware address");
        assert_eq!(&f[38..], &[0; 22], "target protocol address and padding");
    }
}
