//! The datapath against a guest that plays by the rules and one that does not. The "guest" here
//! writes descriptors and rings into a real `GuestMemoryMmap`, as a virtio-net driver would.

use std::sync::Arc;

use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::super::guest_map::GuestMap;
use super::super::split::RingLayout;
use super::*;
use crate::checksum::{fold, ones_sum, pseudo_v4, pseudo_v6};
use crate::packet::Packet;
use crate::pool::PoolConfig;

/// Guest memory size: everything the guest has (one region at guest address 0).
const MEM: u64 = 0x20000;
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
/// Where the tests put buffers.
const BUF: u64 = 0x4000;

struct Guest {
    mem: Arc<Mem>,
    size: u16,
    avail_idx: u16,
    used_seen: u16,
}

const NEXT: u16 = VRING_DESC_F_NEXT as u16;
const WRITE: u16 = VRING_DESC_F_WRITE as u16;
const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;

impl Guest {
    fn new(size: u16) -> Guest {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap();
        Guest {
            mem: Arc::new(mem),
            size,
            avail_idx: 0,
            used_seen: 0,
        }
    }

    fn desc_at(&self, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = GuestAddress(table + 16 * i as u64);
        self.mem.write_obj(addr.to_le(), at).unwrap();
        self.mem
            .write_obj(len.to_le(), GuestAddress(at.0 + 8))
            .unwrap();
        self.mem
            .write_obj(flags.to_le(), GuestAddress(at.0 + 12))
            .unwrap();
        self.mem
            .write_obj(next.to_le(), GuestAddress(at.0 + 14))
            .unwrap();
    }

    fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.desc_at(DESC, i, addr, len, flags, next);
    }

    /// Makes the chain starting at `head` available.
    fn offer(&mut self, head: u16) {
        let slot = AVAIL + 4 + 2 * (self.avail_idx % self.size) as u64;
        self.mem
            .write_obj(head.to_le(), GuestAddress(slot))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.set_avail_idx(self.avail_idx);
    }

    fn set_avail_idx(&self, idx: u16) {
        self.mem
            .write_obj(idx.to_le(), GuestAddress(AVAIL + 2))
            .unwrap();
    }

    /// Used elements the device added since the last call.
    fn used(&mut self) -> Vec<(u32, u32)> {
        let idx: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
        let mut out = Vec::new();
        while self.used_seen != idx {
            let at = USED + 4 + 8 * (self.used_seen % self.size) as u64;
            let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
            let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
            out.push((id, len));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }

    fn vq(&self, mrg_rxbuf: bool) -> ActiveVq {
        let ring = SplitRing::new(GuestMap::new(&self.mem), &self.layout(), 0, 0, false).unwrap();
        ActiveVq::new(ring, HDR_LEN_V1, mrg_rxbuf)
    }

    fn layout(&self) -> RingLayout {
        RingLayout {
            size: self.size,
            desc: GuestAddress(DESC),
            avail: GuestAddress(AVAIL),
            used: GuestAddress(USED),
        }
    }

    fn write(&self, addr: u64, bytes: &[u8]) {
        self.mem.write_slice(bytes, GuestAddress(addr)).unwrap();
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

fn pool() -> PacketPool {
    PacketPool::new(PoolConfig {
        n_buffers: 64,
        ..PoolConfig::default()
    })
    .unwrap()
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

/// A guest TX chain at descriptors `i`, `i + 1`: header, then the frame.
fn tx_chain(g: &Guest, i: u16, addr: u64, data: &[u8]) {
    g.write(addr, &[0; HDR_LEN_V1]);
    g.write(addr + 64, data);
    g.desc(i, addr, HDR_LEN_V1 as u32, NEXT, i + 1);
    g.desc(i + 1, addr + 64, data.len() as u32, 0, 0);
}

fn rx(vq: &mut ActiveVq, pool: &mut PacketPool) -> (Vec<Vec<u8>>, Burst) {
    let mut batch = PacketBatch::new();
    let b = vq.dequeue(pool, &mut batch, 7);
    let mut out = Vec::new();
    for p in batch.drain() {
        assert_eq!(p.in_port, 7);
        out.push(p.data().to_vec());
        pool.free(p);
    }
    (out, b)
}

fn tx(vq: &mut ActiveVq, pool: &mut PacketPool, frames: &[Vec<u8>]) -> Burst {
    let mut batch = PacketBatch::new();
    for f in frames {
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(f));
        batch.push(p).ok().unwrap();
    }
    vq.enqueue(pool, &mut batch)
}

#[test]
fn guest_tx_frames_arrive_whole_and_buffers_come_back() {
    let mut g = Guest::new(16);
    let mut vq = g.vq(false);
    let mut pool = pool();
    let f1 = frame(60, 1);
    let f2 = frame(1514, 2);
    tx_chain(&g, 0, BUF, &f1);
    tx_chain(&g, 2, BUF + 0x1000, &f2);
    g.offer(0);
    g.offer(2);
    let (got, b) = rx(&mut vq, &mut pool);
    assert_eq!(got, vec![f1, f2]);
    assert_eq!((b.packets, b.errors, b.dropped), (2, 0, 0));
    assert_eq!(b.bytes, 60 + 1514);
    assert_eq!(g.used(), vec![(0, 0), (2, 0)]);
    // Nothing more offered: nothing more received.
    assert_eq!(rx(&mut vq, &mut pool).0.len(), 0);
    assert_eq!(pool.available(), pool.capacity());
}

#[test]
fn header_and_frame_in_one_descriptor() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    let f = frame(100, 9);
    g.write(BUF, &[0; HDR_LEN_V1]);
    g.write(BUF + HDR_LEN_V1 as u64, &f);
    g.desc(3, BUF, (HDR_LEN_V1 + f.len()) as u32, 0, 0);
    g.offer(3);
    assert_eq!(rx(&mut vq, &mut pool).0, vec![f]);
    assert_eq!(g.used(), vec![(3, 0)]);
}

#[test]
fn indirect_descriptors_are_followed() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    let table = 0x3000;
    let f = frame(200, 3);
    g.write(BUF, &[0; HDR_LEN_V1]);
    g.write(BUF + 64, &f);
    g.desc_at(table, 0, BUF, HDR_LEN_V1 as u32, NEXT, 1);
    g.desc_at(table, 1, BUF + 64, f.len() as u32, 0, 0);
    g.desc(0, table, 32, INDIRECT, 0);
    g.offer(0);
    assert_eq!(rx(&mut vq, &mut pool).0, vec![f]);
}

#[test]
fn buffers_outside_guest_memory_are_errors_and_the_queue_goes_on() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    // Entirely outside, and straddling the end of guest memory.
    g.desc(0, BUF, HDR_LEN_V1 as u32, NEXT, 1);
    g.desc(1, 0x1_0000_0000, 64, 0, 0);
    g.desc(2, BUF, HDR_LEN_V1 as u32, NEXT, 3);
    g.desc(3, MEM - 16, 64, 0, 0);
    tx_chain(&g, 4, BUF + 0x1000, &frame(64, 5));
    g.offer(0);
    g.offer(2);
    g.offer(4);
    let (got, b) = rx(&mut vq, &mut pool);
    assert_eq!(got, vec![frame(64, 5)]);
    assert_eq!(b.errors, 2);
    assert!(!vq.broken);
    assert_eq!(
        g.used().len(),
        3,
        "bad chains are returned to the guest too"
    );
    assert_eq!(pool.available(), pool.capacity());
}

#[test]
fn descriptor_loops_and_overlong_chains_end_as_errors() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    // 0 -> 1 -> 0 -> ...
    g.desc(0, BUF, 64, NEXT, 1);
    g.desc(1, BUF + 64, 64, NEXT, 0);
    // A next index beyond the ring.
    g.desc(2, BUF, 64, NEXT, 200);
    g.offer(0);
    g.offer(2);
    let (got, b) = rx(&mut vq, &mut pool);
    assert!(got.is_empty());
    assert_eq!(b.errors, 2);
    assert_eq!(g.used().len(), 2);
    // An indirect table whose entries loop.
    let table = 0x3000;
    g.desc_at(table, 0, BUF, 64, NEXT, 1);
    g.desc_at(table, 1, BUF, 64, NEXT, 0);
    g.desc(3, table, 32, INDIRECT, 0);
    g.offer(3);
    let (got, b) = rx(&mut vq, &mut pool);
    assert!(got.is_empty());
    assert_eq!(b.errors, 1);
}

#[test]
fn zero_length_and_header_only_chains_are_errors() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    g.desc(0, BUF, 0, 0, 0);
    g.desc(1, BUF, HDR_LEN_V1 as u32, 0, 0);
    // A device-writable buffer in a TX queue.
    g.desc(2, BUF, 100, WRITE, 0);
    g.offer(0);
    g.offer(1);
    g.offer(2);
    let (got, b) = rx(&mut vq, &mut pool);
    assert!(got.is_empty());
    assert_eq!(b.errors, 3);
}

#[test]
fn frames_longer_than_a_packet_buffer_are_dropped() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 8,
        data_room: 512,
        ..PoolConfig::default()
    })
    .unwrap();
    tx_chain(&g, 0, BUF, &frame(1000, 1));
    g.offer(0);
    let (got, b) = rx(&mut vq, &mut pool);
    assert!(got.is_empty());
    assert_eq!((b.dropped, b.errors), (1, 0));
}

#[test]
fn a_head_index_out_of_range_breaks_only_this_queue() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    g.offer(999);
    let (got, b) = rx(&mut vq, &mut pool);
    assert!(got.is_empty());
    assert!(b.errors >= 1);
    assert!(vq.broken);
    // A broken queue is left alone until set up again.
    tx_chain(&g, 0, BUF, &frame(60, 1));
    g.offer(0);
    assert!(rx(&mut vq, &mut pool).0.is_empty());
    assert_eq!(pool.available(), pool.capacity());
}

#[test]
fn an_available_index_running_ahead_of_the_ring_breaks_the_queue() {
    let g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    g.set_avail_idx(100);
    let (got, b) = rx(&mut vq, &mut pool);
    assert!(got.is_empty());
    assert_eq!(b.errors, 1);
    assert!(vq.broken);
}

#[test]
fn rings_outside_guest_memory_or_misaligned_are_refused() {
    let g = Guest::new(8);
    let map = || GuestMap::new(&g.mem);
    let mut l = g.layout();
    l.desc = GuestAddress(MEM - 16);
    assert!(SplitRing::new(map(), &l, 0, 0, false).is_err());
    let mut l = g.layout();
    l.used = GuestAddress(MEM - 8);
    assert!(SplitRing::new(map(), &l, 0, 0, false).is_err());
    let mut l = g.layout();
    l.avail = GuestAddress(AVAIL + 1);
    assert!(SplitRing::new(map(), &l, 0, 0, false).is_err());
    let mut l = g.layout();
    l.size = 12;
    assert!(SplitRing::new(map(), &l, 0, 0, false).is_err());
    assert!(SplitRing::new(map(), &g.layout(), 0, 0, false).is_ok());
}

/// Guest RX: `n` single-buffer chains of `len` bytes from descriptor 0.
fn rx_buffers(g: &mut Guest, n: u16, len: u32) {
    for i in 0..n {
        g.desc(i, BUF + i as u64 * 0x800, len, WRITE, 0);
        g.offer(i);
    }
}

#[test]
fn frames_reach_the_guest_with_a_header() {
    let mut g = Guest::new(16);
    let mut vq = g.vq(false);
    let mut pool = pool();
    rx_buffers(&mut g, 4, 2048);
    let frames = vec![frame(60, 1), frame(1514, 2)];
    let b = tx(&mut vq, &mut pool, &frames);
    assert_eq!((b.packets, b.dropped, b.errors), (2, 0, 0));
    let used = g.used();
    assert_eq!(used, vec![(0, 72), (1, 1526)]);
    let hdr = g.read(BUF, HDR_LEN_V1);
    assert_eq!(&hdr[..10], &[0; 10]);
    assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]), 1, "num_buffers");
    assert_eq!(g.read(BUF + 12, 60), frames[0]);
    assert_eq!(g.read(BUF + 0x800 + 12, 1514), frames[1]);
    assert_eq!(pool.available(), pool.capacity());
}

#[test]
fn a_stale_header_in_a_reused_buffer_is_rewritten_and_a_current_one_kept() {
    let mut g = Guest::new(16);
    let mut vq = g.vq(false);
    let mut pool = pool();
    rx_buffers(&mut g, 2, 2048);
    // Buffer 0 holds a stale header (offload flags, num_buffers 7), buffer 1 already the one
    // the switch writes; the header is only written where it differs.
    g.write(BUF, &[0xff; HDR_LEN_V1]);
    let mut current = [0u8; HDR_LEN_V1];
    current[10] = 1;
    g.write(BUF + 0x800, &current);
    let frames = vec![frame(60, 3), frame(100, 4)];
    let b = tx(&mut vq, &mut pool, &frames);
    assert_eq!((b.packets, b.dropped, b.errors), (2, 0, 0));
    for (i, f) in frames.iter().enumerate() {
        let at = BUF + i as u64 * 0x800;
        assert_eq!(g.read(at, HDR_LEN_V1), current, "header of buffer {i}");
        assert_eq!(&g.read(at + 12, f.len()), f);
    }
}

#[test]
fn a_full_guest_ring_drops_and_the_next_buffers_are_used() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    rx_buffers(&mut g, 2, 2048);
    let frames: Vec<_> = (0..5).map(|i| frame(100, i)).collect();
    let b = tx(&mut vq, &mut pool, &frames);
    assert_eq!((b.packets, b.dropped), (2, 3));
    assert_eq!(g.used().len(), 2);
    // The guest refills: delivery resumes.
    for i in 2..4u16 {
        g.desc(i, BUF + i as u64 * 0x800, 2048, WRITE, 0);
        g.offer(i);
    }
    let b = tx(&mut vq, &mut pool, &frames[..1]);
    assert_eq!(b.packets, 1);
    assert_eq!(g.used(), vec![(2, 112)]);
}

#[test]
fn without_mergeable_buffers_a_small_buffer_drops_the_frame() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    rx_buffers(&mut g, 2, 256);
    let b = tx(&mut vq, &mut pool, &[frame(1000, 1), frame(100, 2)]);
    assert_eq!((b.packets, b.dropped), (1, 1));
    // The small buffer came back empty; the next frame took the next buffer.
    assert_eq!(g.used(), vec![(0, 0), (1, 112)]);
}

#[test]
fn mergeable_buffers_spread_a_frame_and_count_them() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(true);
    let mut pool = pool();
    rx_buffers(&mut g, 4, 512);
    let f = frame(1200, 4);
    let b = tx(&mut vq, &mut pool, std::slice::from_ref(&f));
    assert_eq!(b.packets, 1);
    // 12 + 1200 bytes in 512-byte buffers: 512 + 512 + 188.
    assert_eq!(g.used(), vec![(0, 512), (1, 512), (2, 188)]);
    let hdr = g.read(BUF, HDR_LEN_V1);
    assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]), 3, "num_buffers");
    let mut got = g.read(BUF + 12, 500);
    got.extend(g.read(BUF + 0x800, 512));
    got.extend(g.read(BUF + 0x1000, 188));
    assert_eq!(got, f);
}

#[test]
fn frames_after_a_merged_one_go_to_the_chains_after_it() {
    // The burst's chains are looked at once, up front; a frame that takes several of them, or
    // gives them back, must not shift the later frames onto the wrong buffers.
    let mut g = Guest::new(16);
    let mut vq = g.vq(true);
    let mut pool = pool();
    rx_buffers(&mut g, 8, 256);
    let frames = [frame(100, 1), frame(600, 2), frame(60, 3), frame(200, 4)];
    let b = tx(&mut vq, &mut pool, &frames);
    assert_eq!(b.packets, 4);
    assert_eq!(
        g.used(),
        vec![(0, 112), (1, 256), (2, 256), (3, 100), (4, 72), (5, 212)]
    );
    assert_eq!(g.read(BUF + 12, 100), frames[0]);
    assert_eq!(g.read(BUF + 4 * 0x800 + 12, 60), frames[2]);
    assert_eq!(g.read(BUF + 5 * 0x800 + 12, 200), frames[3]);
    let hdr = g.read(BUF + 4 * 0x800, HDR_LEN_V1);
    assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]), 1, "num_buffers");
    // Two buffers left: the first frame takes one, the second needs six and gives back the
    // one it took; the next burst starts on that one.
    let b = tx(&mut vq, &mut pool, &[frame(50, 5), frame(1500, 6)]);
    assert_eq!((b.packets, b.dropped), (1, 1));
    assert_eq!(g.used(), vec![(6, 62)]);
    let f = frame(30, 7);
    assert_eq!(tx(&mut vq, &mut pool, std::slice::from_ref(&f)).packets, 1);
    assert_eq!(g.used(), vec![(7, 42)]);
    assert_eq!(g.read(BUF + 7 * 0x800 + 12, 30), f);
}

#[test]
fn mergeable_buffers_that_run_out_give_everything_back() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(true);
    let mut pool = pool();
    rx_buffers(&mut g, 2, 256);
    let b = tx(&mut vq, &mut pool, &[frame(1000, 1)]);
    assert_eq!((b.packets, b.dropped), (0, 1));
    assert!(
        g.used().is_empty(),
        "nothing used for a frame that did not go"
    );
    // The two buffers are still there for a frame that fits.
    let b = tx(&mut vq, &mut pool, &[frame(300, 2)]);
    assert_eq!(b.packets, 1);
    assert_eq!(g.used(), vec![(0, 256), (1, 56)]);
}

#[test]
fn read_only_or_outside_rx_buffers_are_errors() {
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    g.desc(0, BUF, 2048, 0, 0);
    g.desc(1, MEM - 100, 2048, WRITE, 0);
    g.desc(2, BUF, 2048, WRITE, 0);
    g.offer(0);
    g.offer(1);
    g.offer(2);
    let b = tx(
        &mut vq,
        &mut pool,
        &[frame(500, 1), frame(500, 2), frame(500, 3)],
    );
    assert_eq!((b.packets, b.errors), (1, 2));
    assert_eq!(g.used(), vec![(0, 0), (1, 0), (2, 512)]);
    // (vm-memory never reaches past the guest's regions; the buffer straddling the end came
    // back empty.)
    assert_eq!(g.read(BUF + 12, 500), frame(500, 3));
}

#[test]
fn the_guest_is_signalled_only_when_it_asks() {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let mut pool = pool();
    // SAFETY: eventfd returns a new descriptor that only this File owns.
    let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
    assert!(efd >= 0);
    // SAFETY: as above.
    let file = Arc::new(unsafe { File::from_raw_fd(efd) });
    vq.call = Some(Arc::clone(&file));
    let signalled = || {
        let mut b = [0u8; 8];
        (&*file).read(&mut b).is_ok()
    };
    rx_buffers(&mut g, 4, 2048);
    tx(&mut vq, &mut pool, &[frame(60, 1)]);
    assert!(signalled(), "no interrupt suppression asked: signal");
    // VRING_AVAIL_F_NO_INTERRUPT.
    g.mem.write_obj(1u16.to_le(), GuestAddress(AVAIL)).unwrap();
    tx(&mut vq, &mut pool, &[frame(60, 2)]);
    assert!(!signalled(), "the guest asked for no interrupts");
}

#[test]
fn a_reconnecting_frontend_resumes_at_the_guest_used_index() {
    let mut g = Guest::new(8);
    // Five chains went through a previous switch; the frontend restarts the ring at base 0.
    g.mem
        .write_obj(5u16.to_le(), GuestAddress(USED + 2))
        .unwrap();
    let mut vq = g.vq(false);
    assert!(vq.ring.sync_with_used());
    assert_eq!((vq.ring.next_avail(), vq.ring.next_used()), (5, 5));
    assert!(!vq.ring.sync_with_used(), "in step now");
    let mut pool = pool();
    g.avail_idx = 5;
    g.used_seen = 5;
    tx_chain(&g, 0, BUF, &frame(60, 1));
    g.offer(0);
    assert_eq!(rx(&mut vq, &mut pool).0, vec![frame(60, 1)]);
    assert_eq!(g.used(), vec![(0, 0)]);
}

#[test]
fn with_event_idx_the_guest_is_signalled_when_used_passes_used_event() {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut g = Guest::new(8);
    let ring = SplitRing::new(GuestMap::new(&g.mem), &g.layout(), 0, 0, true).unwrap();
    let mut vq = ActiveVq::new(ring, HDR_LEN_V1, false);
    // SAFETY: eventfd returns a new descriptor that only this File owns.
    let file = Arc::new(unsafe { File::from_raw_fd(libc::eventfd(0, libc::EFD_NONBLOCK)) });
    vq.call = Some(Arc::clone(&file));
    let signalled = || (&*file).read(&mut [0u8; 8]).is_ok();
    let mem = Arc::clone(&g.mem);
    let used_event = |idx: u16| {
        let at = AVAIL + 4 + 2 * 8;
        mem.write_obj(idx.to_le(), GuestAddress(at)).unwrap();
    };
    let mut pool = pool();
    rx_buffers(&mut g, 6, 2048);
    used_event(0);
    tx(&mut vq, &mut pool, &[frame(60, 1)]);
    assert!(signalled(), "used index passed used_event 0");
    used_event(3);
    tx(&mut vq, &mut pool, &[frame(60, 2)]);
    assert!(!signalled(), "the guest wants a signal only after entry 3");
    tx(
        &mut vq,
        &mut pool,
        &[frame(60, 3), frame(60, 4), frame(60, 5)],
    );
    assert!(signalled(), "used index went from 2 to 5, past 3");
}

/// A TCP/IPv4 frame with a partial checksum, as a tap with offloads delivers it.
fn offload_frame(pool: &mut PacketPool, gso: bool) -> Packet {
    let mut f = frame(1200, 7);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[23] = 6;
    let mut p = pool.alloc().unwrap();
    assert!(p.set_data(&f));
    p.vnet = Some(VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: if gso {
            VnetHdr::GSO_TCPV4
        } else {
            VnetHdr::GSO_NONE
        },
        hdr_len: 54,
        gso_size: if gso { 1000 } else { 0 },
        csum_start: 34,
        csum_offset: 16,
    });
    p
}

#[test]
fn offloads_go_to_a_guest_that_accepts_them_and_are_resolved_for_others() {
    let mut g = Guest::new(8);
    let mut pool = pool();
    rx_buffers(&mut g, 4, 2048);
    // A guest with GUEST_CSUM and GUEST_TSO4 gets the header as it came.
    let mut vq = g.vq(false);
    vq.offloads = GuestOffloads {
        csum: true,
        tso4: true,
        tso6: false,
        ecn: false,
        ..GuestOffloads::default()
    };
    let mut batch = PacketBatch::new();
    batch.push(offload_frame(&mut pool, true)).ok().unwrap();
    let b = vq.enqueue(&mut pool, &mut batch);
    assert_eq!(b.packets, 1);
    let hdr = g.read(BUF, HDR_LEN_V1);
    assert_eq!(hdr[0], VnetHdr::F_NEEDS_CSUM);
    assert_eq!(hdr[1], VnetHdr::GSO_TCPV4);
    assert_eq!(u16::from_le_bytes([hdr[4], hdr[5]]), 1000, "gso_size");
    assert_eq!(u16::from_le_bytes([hdr[6], hdr[7]]), 34, "csum_start");
    assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]), 1, "num_buffers");
    // A guest without offloads: the checksum is finished here and the header is plain; a GSO
    // frame cannot go and is counted.
    let mut g2 = Guest::new(8);
    rx_buffers(&mut g2, 4, 2048);
    let mut vq2 = g2.vq(false);
    let mut batch = PacketBatch::new();
    batch.push(offload_frame(&mut pool, false)).ok().unwrap();
    batch.push(offload_frame(&mut pool, true)).ok().unwrap();
    let b = vq2.enqueue(&mut pool, &mut batch);
    assert_eq!((b.packets, b.errors), (1, 1));
    assert_eq!(g2.read(BUF, HDR_LEN_V1)[..10], [0; 10]);
    let tcp_csum = g2.read(BUF + 12 + 34 + 16, 2);
    assert_ne!(
        tcp_csum,
        frame(1200, 7)[50..52].to_vec(),
        "checksum completed"
    );
    assert_eq!(pool.available(), pool.capacity());
}

/// A dirty-page log over the test guest's memory (one bit per 4 KiB page) and a way to read
/// back which pages it marks.
fn dirty_log() -> (
    Arc<super::super::dirty_log::DirtyLog>,
    impl Fn() -> Vec<u64>,
) {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::FileExt;
    // SAFETY: a valid NUL-terminated name; memfd_create returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"log".as_ptr(), 0) };
    assert!(fd >= 0);
    // SAFETY: fd is a new descriptor only this File owns.
    let file = unsafe { File::from_raw_fd(fd) };
    let pages = MEM / 4096;
    file.set_len(pages / 8).unwrap();
    let reader = file.try_clone().unwrap();
    let log = super::super::dirty_log::DirtyLog::map(file, pages / 8, 0).unwrap();
    let marked = move || {
        let mut bits = vec![0u8; (pages / 8) as usize];
        reader.read_exact_at(&mut bits, 0).unwrap();
        (0..pages)
            .filter(|p| bits[(p / 8) as usize] & (1 << (p % 8)) != 0)
            .collect()
    };
    (Arc::new(log), marked)
}

/// While a VM migrates, every page the switch writes (frames into RX buffers, by both copy
/// paths, and the used ring) is marked in QEMU's log; pages it only reads are not.
#[test]
fn with_a_log_every_page_written_in_the_guest_is_marked() {
    let used_page = USED / 4096;
    // The common path: whole frames into single buffers at 0x4000, 0x4800, 0x5000.
    let mut g = Guest::new(16);
    let mut vq = g.vq(false);
    let (log, marked) = dirty_log();
    vq.log = Some(log);
    let mut pool = pool();
    rx_buffers(&mut g, 4, 2048);
    let b = tx(
        &mut vq,
        &mut pool,
        &[frame(60, 1), frame(1514, 2), frame(100, 3)],
    );
    assert_eq!(b.packets, 3);
    assert_eq!(marked(), vec![used_page, 4, 5]);

    // The general path: one frame merged over three 512-byte buffers, the last in page 5.
    let mut g = Guest::new(8);
    let mut vq = g.vq(true);
    let (log, marked) = dirty_log();
    vq.log = Some(log);
    rx_buffers(&mut g, 4, 512);
    let b = tx(&mut vq, &mut pool, &[frame(1200, 4)]);
    assert_eq!(b.packets, 1);
    assert_eq!(marked(), vec![used_page, 4, 5]);

    // Guest TX: the frames are only read; the used ring is written.
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    let (log, marked) = dirty_log();
    vq.log = Some(log);
    tx_chain(&g, 0, 0x9000, &frame(200, 5));
    g.offer(0);
    let (got, b) = rx(&mut vq, &mut pool);
    assert_eq!((got.len(), b.packets), (1, 1));
    assert_eq!(marked(), vec![used_page]);

    // Without a log nothing is marked (and nothing is looked up).
    let mut g = Guest::new(8);
    let mut vq = g.vq(false);
    rx_buffers(&mut g, 1, 2048);
    assert_eq!(tx(&mut vq, &mut pool, &[frame(60, 6)]).packets, 1);
    assert_eq!(pool.available(), pool.capacity());
}

/// A UDP super-datagram (3 datagrams of 1000 bytes, the last 500) as a `UDP_SEGMENT` sender's
/// stack hands it over.
fn uso_frame(v6: bool) -> (Vec<u8>, VnetHdr) {
    use crate::gso::udp::tests::{super_datagram, Spec};
    let s = Spec {
        v6,
        vlans: 0,
        ip_opts: 0,
        seg: 1000,
    };
    super_datagram(s, &crate::gso::tests::payload_bytes(2500))
}

/// Guest RX: `n` single-buffer chains of 4 KiB from descriptor 0.
fn rx_buffers_4k(g: &mut Guest, n: u16) {
    for i in 0..n {
        g.desc(i, BUF + i as u64 * 0x1000, 0x1000, WRITE, 0);
        g.offer(i);
    }
}

/// The guest RX path as the vhost-user port runs it: offloads the guest does not take are
/// resolved first (`send_resolved`), then the frames are copied in.
fn tx_resolved(vq: &mut ActiveVq, pool: &mut PacketPool, batch: &mut PacketBatch) -> u64 {
    let counters = crate::port::PortCounters::default();
    let offloads = vq.offloads;
    batch.send_resolved(
        pool,
        &counters,
        |h| offloads.accept(h),
        |pool, burst| vq.enqueue(pool, burst),
    );
    counters.snapshot().tx_segments
}

#[test]
fn udp_gso_goes_whole_to_a_guest_with_guest_uso_and_as_datagrams_to_others() {
    let mut pool = crate::gso::tests::big_pool(16);
    for v6 in [false, true] {
        let (f, h) = uso_frame(v6);
        let l4 = h.csum_start as usize;
        // GUEST_CSUM with GUEST_USO4 and GUEST_USO6: the frame goes as it came.
        let mut g = Guest::new(8);
        rx_buffers_4k(&mut g, 4);
        let mut vq = g.vq(false);
        vq.offloads = GuestOffloads {
            csum: true,
            uso4: true,
            uso6: true,
            ..GuestOffloads::default()
        };
        let mut batch = PacketBatch::new();
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(&f));
        p.vnet = Some(h);
        batch.push(p).ok().unwrap();
        assert_eq!(
            tx_resolved(&mut vq, &mut pool, &mut batch),
            0,
            "not segmented"
        );
        assert_eq!(g.used(), vec![(0, (HDR_LEN_V1 + f.len()) as u32)]);
        let hdr = g.read(BUF, HDR_LEN_V1);
        assert_eq!(&hdr[..10], &h.to_bytes(), "header as it came");
        assert_eq!(g.read(BUF + 12, f.len()), f);

        // Only one of the two (or TSO only): three datagrams, each with a full checksum.
        for (uso4, uso6) in [(true, false), (false, true), (false, false)] {
            let mut g = Guest::new(8);
            rx_buffers_4k(&mut g, 4);
            let mut vq = g.vq(false);
            vq.offloads = GuestOffloads {
                csum: true,
                tso4: true,
                tso6: true,
                ecn: true,
                uso4,
                uso6,
            };
            let mut p = pool.alloc().unwrap();
            assert!(p.set_data(&f));
            p.vnet = Some(h);
            batch.push(p).ok().unwrap();
            assert_eq!(tx_resolved(&mut vq, &mut pool, &mut batch), 3);
            let used = g.used();
            let lens: Vec<u32> = used.iter().map(|u| u.1).collect();
            let hl = (HDR_LEN_V1 + l4 + 8) as u32;
            assert_eq!(lens, vec![hl + 1000, hl + 1000, hl + 500]);
            let mut joined = Vec::new();
            for (i, &(_, len)) in used.iter().enumerate() {
                let d = g.read(BUF + i as u64 * 0x1000, len as usize);
                assert_eq!(&d[..10], &[0; 10], "plain header");
                let seg = &d[HDR_LEN_V1..];
                // The UDP checksum over the pseudo-header and datagram verifies.
                let udp_len = seg.len() - l4;
                let pseudo = if v6 {
                    pseudo_v6(
                        seg[22..38].try_into().unwrap(),
                        seg[38..54].try_into().unwrap(),
                        17,
                        udp_len as u32,
                    )
                } else {
                    pseudo_v4(
                        seg[26..30].try_into().unwrap(),
                        seg[30..34].try_into().unwrap(),
                        17,
                        udp_len as u32,
                    )
                };
                assert_eq!(fold(pseudo + ones_sum(&seg[l4..])), 0xffff, "UDP checksum");
                joined.extend_from_slice(&seg[l4 + 8..]);
            }
            assert_eq!(joined, f[l4 + 8..], "payload");
        }
    }
    assert_eq!(pool.available(), pool.capacity());
}

/// A guest TX chain at descriptor `i`: header `h`, then the frame, in one descriptor.
fn tx_with_header(g: &Guest, i: u16, addr: u64, h: &VnetHdr, data: &[u8]) {
    let mut hdr = [0u8; HDR_LEN_V1];
    hdr[..10].copy_from_slice(&h.to_bytes());
    g.write(addr, &hdr);
    g.write(addr + HDR_LEN_V1 as u64, data);
    g.desc(i, addr, (HDR_LEN_V1 + data.len()) as u32, 0, 0);
}

#[test]
fn a_guest_sends_udp_gso_only_with_host_uso() {
    let mut pool = crate::gso::tests::big_pool(8);
    let (f, h) = uso_frame(false);
    for host_uso in [true, false] {
        let mut g = Guest::new(8);
        let mut vq = g.vq(false);
        vq.host_offloads = true;
        vq.host_uso = host_uso;
        tx_with_header(&g, 0, BUF, &h, &f);
        g.offer(0);
        let mut batch = PacketBatch::new();
        let b = vq.dequeue(&mut pool, &mut batch, 7);
        if host_uso {
            assert_eq!((b.packets, b.errors), (1, 0));
            let p = batch.drain().next().unwrap();
            assert_eq!(p.vnet, Some(h), "kept for the outputs");
            assert_eq!(p.data(), &f[..]);
            pool.free(p);
        } else {
            // Not negotiated: a malformed request, as any offload not offered.
            assert_eq!((b.packets, b.errors), (0, 1));
        }
        assert_eq!(g.used(), vec![(0, 0)]);
    }
    assert_eq!(pool.available(), pool.capacity());
}
