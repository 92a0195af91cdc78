//! A burst of packets moved through the datapath together.

use crate::gso;
use crate::packet::{Packet, VnetHdr};
use crate::pool::PacketPool;
use crate::port::{Burst, PortCounters};

/// Most packets in one [`PacketBatch`] (OVS and DPDK use 32 as well).
pub const BATCH_SIZE: usize = 32;

/// Up to [`BATCH_SIZE`] packets in a fixed array: filling and draining a batch never allocates.
///
/// Dropping a non-empty batch leaks its buffers from their pool; free it with
/// [`PacketPool::free_batch`](crate::PacketPool::free_batch) or send it with a port's `tx_burst`.
pub struct PacketBatch {
    // `Option<Packet>` is as small as `Packet` (the buffer pointer is non-null), and keeps this
    // free of `unsafe`.
    pkts: [Option<Packet>; BATCH_SIZE],
    len: usize,
}

impl Default for PacketBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBatch {
    /// An empty batch.
    pub fn new() -> PacketBatch {
        PacketBatch {
            pkts: [const { None }; BATCH_SIZE],
            len: 0,
        }
    }

    /// Number of packets.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the batch holds no packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the batch holds [`BATCH_SIZE`] packets.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BATCH_SIZE
    }

    /// Free slots left.
    #[inline]
    pub fn space(&self) -> usize {
        BATCH_SIZE - self.len
    }

    /// Appends a packet; gives it back if the batch is full.
    #[inline]
    pub fn push(&mut self, pkt: Packet) -> Result<(), Packet> {
        if self.len == BATCH_SIZE {
            return Err(pkt);
        }
        self.pkts[self.len] = Some(pkt);
        self.len += 1;
        Ok(())
    }

    /// Removes the last packet.
    #[inline]
    pub fn pop(&mut self) -> Option<Packet> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.pkts[self.len].take()
    }

    /// The packet at `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Packet> {
        self.pkts[..self.len].get(i).and_then(Option::as_ref)
    }

    /// The packet at `i`, writable.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Packet> {
        self.pkts[..self.len].get_mut(i).and_then(Option::as_mut)
    }

    /// Takes the packet at `i` out, leaving a hole: `len` is unchanged, and `iter` and `drain`
    /// skip the hole (the next `drain` closes it). Lets a burst's packets leave one by one
    /// while the others stay where they are.
    #[inline]
    pub fn take(&mut self, i: usize) -> Option<Packet> {
        self.pkts[..self.len].get_mut(i)?.take()
    }

    /// Iterates over the packets in order.
    pub fn iter(&self) -> impl Iterator<Item = &Packet> {
        self.pkts[..self.len].iter().flatten()
    }

    /// Iterates over the packets in order, writable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Packet> {
        self.pkts[..self.len].iter_mut().flatten()
    }

    /// Takes all packets out in order, leaving the batch empty (the iterator holds the batch
    /// borrowed; packets it does not yield stay behind, ready for the next `drain`).
    pub fn drain(&mut self) -> Drain<'_> {
        Drain {
            batch: self,
            next: 0,
        }
    }

    /// Keeps the packets for which `keep` returns true (in order) and passes the others to
    /// `reject` (e.g. to free them into a pool).
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(&mut Packet) -> bool,
        mut reject: impl FnMut(Packet),
    ) {
        let mut w = 0;
        for r in 0..self.len {
            let Some(mut p) = self.pkts[r].take() else {
                continue;
            };
            if keep(&mut p) {
                self.pkts[w] = Some(p);
                w += 1;
            } else {
                reject(p);
            }
        }
        self.len = w;
    }
}

impl PacketBatch {
    /// A port's transmit prelude: resolves in software the offloads of the batch's packets
    /// that the port's wire cannot take, hands the resulting frames to `send` in bursts of at
    /// most [`BATCH_SIZE`] (in order), and adds everything to `counters`.
    ///
    /// A packet whose virtio-net header asks for nothing, or for what `accepts` returns true
    /// for, goes on unchanged (`vnet` kept, for ports that write it to the wire); otherwise a
    /// TCP GSO packet is segmented and a partial checksum completed, and a packet whose offloads
    /// cannot be resolved is freed and counted as an error ([`gso::for_each_burst`], whose
    /// segments and checksums go to `tx_segments`/`tx_checksums`). A port that takes no
    /// offloads at all passes `|_| false`.
    ///
    /// `send` gets the pool and a burst, must take every packet out of it (send or free them;
    /// whatever it leaves is freed) and returns what it did, without counting it. Returns the
    /// sum of the bursts plus the unresolvable packets as errors: what was added to the
    /// transmit counters. The batch is empty on return.
    pub fn send_resolved(
        &mut self,
        pool: &mut PacketPool,
        counters: &PortCounters,
        accepts: impl Fn(&VnetHdr) -> bool,
        mut send: impl FnMut(&mut PacketPool, &mut PacketBatch) -> Burst,
    ) -> Burst {
        let mut out = Burst::default();
        let st = gso::for_each_burst(self, pool, accepts, |pool, burst| {
            out += send(pool, burst);
        });
        // `add_offloads` counts the unresolvable packets as transmit errors.
        counters.add_offloads(&st);
        counters.add_tx(&out);
        out.errors += st.dropped;
        out
    }
}

/// Iterator returned by [`PacketBatch::drain`].
pub struct Drain<'a> {
    batch: &'a mut PacketBatch,
    next: usize,
}

impl Iterator for Drain<'_> {
    type Item = Packet;

    fn next(&mut self) -> Option<Packet> {
        while self.next < self.batch.len {
            let p = self.batch.pkts[self.next].take();
            self.next += 1;
            if p.is_some() {
                return p;
            }
        }
        None
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        // Slide what was not taken to the front so the batch stays dense.
        let (start, end) = (self.next, self.batch.len);
        let mut w = 0;
        for r in start..end {
            if let Some(p) = self.batch.pkts[r].take() {
                self.batch.pkts[w] = Some(p);
                w += 1;
            }
        }
        self.batch.len = w;
    }
}

impl std::fmt::Debug for PacketBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PacketPool, PoolConfig};

    fn pool(n: usize) -> PacketPool {
        PacketPool::new(PoolConfig {
            n_buffers: n,
            ..PoolConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn option_packet_has_no_overhead() {
        assert_eq!(
            std::mem::size_of::<Option<Packet>>(),
            std::mem::size_of::<Packet>()
        );
    }

    #[test]
    fn take_leaves_a_hole_that_iter_skips_and_drain_closes() {
        let mut pool = pool(8);
        let mut b = PacketBatch::new();
        for i in 0..4u32 {
            let mut p = pool.alloc().unwrap();
            p.in_port = i;
            b.push(p).unwrap();
        }
        let taken = b.take(1).unwrap();
        assert_eq!(taken.in_port, 1);
        assert!(b.take(1).is_none(), "a hole gives nothing twice");
        assert!(b.take(4).is_none(), "beyond len");
        pool.free(taken);
        assert_eq!(b.len(), 4);
        let order: Vec<u32> = b.iter().map(|p| p.in_port).collect();
        assert_eq!(order, [0, 2, 3]);
        let drained: Vec<u32> = b
            .drain()
            .map(|p| {
                let port = p.in_port;
                pool.free(p);
                port
            })
            .collect();
        assert_eq!(drained, [0, 2, 3]);
        assert!(b.is_empty());
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn push_until_full() {
        let mut pool = pool(40);
        let mut b = PacketBatch::new();
        for i in 0..BATCH_SIZE {
            let mut p = pool.alloc().unwrap();
            p.in_port = i as u32;
            assert!(b.push(p).is_ok());
        }
        assert!(b.is_full());
        let extra = pool.alloc().unwrap();
        let extra = b.push(extra).unwrap_err();
        pool.free(extra);
        let ports: Vec<u32> = b.iter().map(|p| p.in_port).collect();
        assert_eq!(ports, (0..BATCH_SIZE as u32).collect::<Vec<_>>());
        pool.free_batch(&mut b);
        assert!(b.is_empty());
        assert_eq!(pool.available(), 40);
    }

    #[test]
    fn drain_in_order_and_partial() {
        let mut pool = pool(8);
        let mut b = PacketBatch::new();
        for i in 0..5 {
            let mut p = pool.alloc().unwrap();
            p.in_port = i;
            b.push(p).unwrap();
        }
        let mut d = b.drain();
        let first = d.next().unwrap();
        let second = d.next().unwrap();
        drop(d);
        assert_eq!((first.in_port, second.in_port), (0, 1));
        pool.free(first);
        pool.free(second);
        assert_eq!(b.len(), 3);
        let rest: Vec<u32> = b
            .drain()
            .map(|p| {
                let n = p.in_port;
                pool.free(p);
                n
            })
            .collect();
        assert_eq!(rest, vec![2, 3, 4]);
        assert!(b.is_empty());
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn retain_keeps_order() {
        let mut pool = pool(8);
        let mut b = PacketBatch::new();
        for i in 0..6 {
            let mut p = pool.alloc().unwrap();
            p.in_port = i;
            b.push(p).unwrap();
        }
        let mut rejected = Vec::new();
        b.retain(
            |p| p.in_port % 2 == 0,
            |p| {
                rejected.push(p.in_port);
                pool.free(p)
            },
        );
        assert_eq!(rejected, vec![1, 3, 5]);
        assert_eq!(
            b.iter().map(|p| p.in_port).collect::<Vec<_>>(),
            vec![0, 2, 4]
        );
        assert_eq!(b.get(1).unwrap().in_port, 2);
        assert!(b.get(3).is_none());
        pool.free_batch(&mut b);
    }
}
