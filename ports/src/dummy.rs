//! Ports that exist only in memory, as Open vSwitch's `dummy` netdev: no kernel device, no
//! socket. The control plane injects frames through a [`DummyHandle`] and takes back what the
//! switch sent out of the port, so tests (and a differential test against OVS) can drive a
//! bridge frame by frame.
//!
//! Receive side: [`DummyHandle::receive`] queues frames in a bounded channel of
//! [`DUMMY_QUEUE`] frames; the PMD's `rx_burst` takes them with `try_recv` and copies each into
//! a pool buffer. The PMD neither locks nor allocates: the emptied frames go back to the control
//! plane through a second channel and are freed there, on the next `receive` or `take_sent`.
//!
//! Transmit side: every frame sent to the port is copied into a bounded buffer holding the last
//! [`DUMMY_QUEUE`] frames, which [`DummyHandle::take_sent`] drains. When the reader is slow the
//! oldest frame is dropped and counted as lost (its allocation is reused for the new frame), so
//! a slow reader never blocks the PMD. The port takes no offloads: partial checksums are
//! completed and TCP super-frames segmented in software first
//! ([`PacketBatch::send_resolved`]), so the frames kept are what a wire would carry.
//!
//! A port opened as several instances (one per PMD) receives on the first only (the frames
//! keep their order) and transmits from all into the one buffer.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::batch::PacketBatch;
use crate::pool::PacketPool;
use crate::port::{Burst, LinkWatch, PeerStatus, Port, PortCounters, PortKind};

/// Frames a dummy port holds each way: waiting to be received, and sent but not yet taken.
pub const DUMMY_QUEUE: usize = 4096;

/// The MTU a dummy port reports (as OVS's dummy netdev); it does not limit frames.
const DUMMY_MTU: u32 = 1500;

/// Source of MAC addresses, `aa:55:00:00:00:01` onwards as OVS numbers its dummy devices.
static NEXT_MAC: AtomicU32 = AtomicU32::new(1);

/// [`DummyHandle::receive`] refused frames: the receive queue has no room for all of them
/// (nothing was queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DummyFull {
    /// Frames offered.
    pub offered: usize,
    /// Frames already waiting in the queue.
    pub waiting: usize,
    /// The queue's capacity ([`DUMMY_QUEUE`]).
    pub capacity: usize,
}

impl std::fmt::Display for DummyFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "receive queue full: {} frames offered, {} of {} places taken",
            self.offered, self.waiting, self.capacity
        )
    }
}

impl std::error::Error for DummyFull {}

/// What the instances of a port and its handles share.
struct Shared {
    /// Frames to receive: the control plane sends, the receiving instance takes.
    rx_in: Sender<Vec<u8>>,
    rx_out: Receiver<Vec<u8>>,
    /// Received frames' allocations, returned so that the control plane frees them.
    spent_in: Sender<Vec<u8>>,
    spent_out: Receiver<Vec<u8>>,
    /// Sent frames, oldest first: the instances send, the control plane takes.
    sent_in: Sender<Vec<u8>>,
    sent_out: Receiver<Vec<u8>>,
    /// Sent frames dropped from the full buffer since the last `take_sent`.
    lost: AtomicU64,
    /// Instances alive: the link is up while the port exists.
    instances: AtomicUsize,
    /// Serialises `receive` so that its room check holds until its frames are queued (only
    /// the control plane takes it; the PMD never does).
    receiving: Mutex<()>,
}

impl Shared {
    fn new() -> Shared {
        let (rx_in, rx_out) = bounded(DUMMY_QUEUE);
        // One place per queued frame and as many again: frames return while the control plane
        // refills the queue, and a full return channel only means the PMD frees the frame.
        let (spent_in, spent_out) = bounded(2 * DUMMY_QUEUE);
        let (sent_in, sent_out) = bounded(DUMMY_QUEUE);
        Shared {
            rx_in,
            rx_out,
            spent_in,
            spent_out,
            sent_in,
            sent_out,
            lost: AtomicU64::new(0),
            instances: AtomicUsize::new(0),
            receiving: Mutex::new(()),
        }
    }

    /// Frees the allocations of received frames the PMD gave back: here, on the control
    /// plane, rather than on the datapath (called by every `receive` and `take_sent`).
    fn free_spent(&self) {
        while self.spent_out.try_recv().is_ok() {}
    }

    /// Keeps a copy of a sent frame, dropping the oldest when the buffer is full. Allocates
    /// only when the buffer has room; otherwise the dropped frame's allocation is reused.
    fn keep(&self, data: &[u8]) {
        let oldest = if self.sent_out.is_full() {
            self.sent_out.try_recv().ok()
        } else {
            None
        };
        let mut frame = match oldest {
            Some(mut old) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
                old.clear();
                old.extend_from_slice(data);
                old
            }
            None => data.to_vec(),
        };
        // Other instances may fill the place meanwhile: make room again a few times, then
        // count the frame itself as lost rather than spin on the datapath.
        for _ in 0..4 {
            match self.sent_in.try_send(frame) {
                Ok(()) => return,
                Err(TrySendError::Full(f)) => {
                    frame = f;
                    if self.sent_out.try_recv().is_ok() {
                        self.lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Unreachable: `self` holds the receiver.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        self.lost.fetch_add(1, Ordering::Relaxed);
    }
}

impl PeerStatus for Shared {
    fn link_up(&self) -> bool {
        self.instances.load(Ordering::Acquire) > 0
    }

    fn status(&self) -> String {
        let state = if self.link_up() { "up" } else { "gone" };
        format!(
            "dummy port, in memory ({state}): {} frames waiting to be received, {} sent frames \
             to take, {} lost",
            self.rx_out.len(),
            self.sent_out.len(),
            self.lost.load(Ordering::Relaxed)
        )
    }
}

/// The control plane's side of a dummy port: injects frames and takes what the port sent.
/// Cloning gives another handle on the same port.
#[derive(Clone)]
pub struct DummyHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DummyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DummyHandle")
            .field("waiting", &self.waiting())
            .field("sent", &self.shared.sent_out.len())
            .finish()
    }
}

impl DummyHandle {
    /// Queues `frames` for the port to receive, in order; returns how many were queued (all of
    /// them). All or nothing: when the queue lacks room for every frame, none is queued.
    /// Never blocks. Frames longer than a pool buffer are dropped on receipt (`rx_dropped`).
    pub fn receive(&self, frames: Vec<Vec<u8>>) -> Result<usize, DummyFull> {
        let _one_at_a_time = self
            .shared
            .receiving
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.shared.free_spent();
        let waiting = self.shared.rx_out.len();
        if frames.len() > DUMMY_QUEUE - waiting {
            return Err(DummyFull {
                offered: frames.len(),
                waiting,
                capacity: DUMMY_QUEUE,
            });
        }
        let mut n = 0;
        for f in frames {
            // Cannot fail: only this (locked) function sends, and there was room.
            if self.shared.rx_in.try_send(f).is_err() {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Takes the frames the port sent since the last call, oldest first, and how many were
    /// dropped meanwhile because the buffer of [`DUMMY_QUEUE`] frames was full.
    pub fn take_sent(&self) -> (Vec<Vec<u8>>, u64) {
        self.shared.free_spent();
        let frames: Vec<Vec<u8>> = self.shared.sent_out.try_iter().collect();
        (frames, self.shared.lost.swap(0, Ordering::Relaxed))
    }

    /// Frames waiting to be received.
    pub fn waiting(&self) -> usize {
        self.shared.rx_out.len()
    }

    /// Whether the port still exists (some instance is open).
    pub fn is_open(&self) -> bool {
        self.shared.link_up()
    }
}

/// One instance of a dummy port (see the module documentation).
pub struct DummyPort {
    name: String,
    port_no: u32,
    /// Only the first instance receives, so frames are received in the order given.
    receives: bool,
    mac: [u8; 6],
    shared: Arc<Shared>,
    counters: Arc<PortCounters>,
}

impl DummyPort {
    /// Opens the dummy port `name` as `n` instances sharing one queue each way.
    pub fn open_instances(name: &str, n: usize) -> Vec<DummyPort> {
        let shared = Arc::new(Shared::new());
        let counters = PortCounters::new_shared();
        let k = NEXT_MAC.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let mac = [0xaa, 0x55, k[0], k[1], k[2], k[3]];
        (0..n)
            .map(|i| {
                shared.instances.fetch_add(1, Ordering::AcqRel);
                DummyPort {
                    name: name.to_owned(),
                    port_no: 0,
                    receives: i == 0,
                    mac,
                    shared: Arc::clone(&shared),
                    counters: Arc::clone(&counters),
                }
            })
            .collect()
    }

    /// A handle for the control plane.
    pub fn handle(&self) -> DummyHandle {
        DummyHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for DummyPort {
    fn drop(&mut self) {
        self.shared.instances.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Port for DummyPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Dummy
    }

    fn n_rxq(&self) -> usize {
        usize::from(self.receives)
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
        if !self.receives {
            return 0;
        }
        let (mut n, mut bytes, mut dropped) = (0, 0, 0);
        for _ in 0..batch.space() {
            let Ok(frame) = self.shared.rx_out.try_recv() else {
                break;
            };
            match pool.alloc() {
                Some(mut pkt) => {
                    if pkt.set_data(&frame) {
                        pkt.in_port = self.port_no;
                        bytes += frame.len() as u64;
                        n += 1;
                        // Cannot fail: the loop runs at most `space` times.
                        if let Err(p) = batch.push(pkt) {
                            pool.free(p);
                        }
                    } else {
                        // Longer than a buffer.
                        pool.free(pkt);
                        dropped += 1;
                    }
                }
                // No buffer: dropped rather than left to stall the queue, as other ports do.
                None => dropped += 1,
            }
            // Freed by the control plane; if the return channel is full, here after all.
            let _ = self.shared.spent_in.try_send(frame);
        }
        self.counters.add_rx(&Burst {
            packets: n,
            bytes,
            dropped,
            errors: 0,
        });
        n as usize
    }

    fn tx_burst(&mut self, _qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        let shared = &self.shared;
        batch.send_resolved(
            pool,
            &self.counters,
            |_| false,
            |pool, burst| {
                let mut out = Burst::default();
                for pkt in burst.drain() {
                    shared.keep(pkt.data());
                    out.packets += 1;
                    out.bytes += pkt.len() as u64;
                    pool.free(pkt);
                }
                out
            },
        )
    }

    fn counters(&self) -> Arc<PortCounters> {
        Arc::clone(&self.counters)
    }

    fn mtu(&self) -> u32 {
        DUMMY_MTU
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&self) -> bool {
        true
    }

    fn link_watch(&self) -> LinkWatch {
        LinkWatch::Peer(Arc::clone(&self.shared) as Arc<dyn PeerStatus>)
    }

    fn dummy(&self) -> Option<DummyHandle> {
        Some(self.handle())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolConfig;

    fn pool(n: usize) -> PacketPool {
        PacketPool::new(PoolConfig {
            n_buffers: n,
            ..PoolConfig::default()
        })
        .unwrap()
    }

    fn frame(i: u8, len: usize) -> Vec<u8> {
        let mut f = vec![i; len];
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f
    }

    #[test]
    fn injected_frames_are_received_in_order_into_pool_buffers() {
        let mut ports = DummyPort::open_instances("d0", 2);
        ports[0].set_port_no(4);
        let h = ports[1].dummy().expect("a dummy port has a handle");
        let frames: Vec<Vec<u8>> = (0..40).map(|i| frame(i, 60 + i as usize)).collect();
        assert_eq!(h.receive(frames.clone()), Ok(40));
        assert_eq!(h.waiting(), 40);
        let mut pool = pool(64);
        let mut batch = PacketBatch::new();
        assert_eq!(ports[1].n_rxq(), 0, "only the first instance receives");
        assert_eq!(ports[1].rx_burst(0, &mut pool, &mut batch), 0);
        let mut got = Vec::new();
        for want in [crate::BATCH_SIZE, 8, 0] {
            assert_eq!(ports[0].rx_burst(0, &mut pool, &mut batch), want);
            for p in batch.iter() {
                assert_eq!(p.in_port, 4);
                got.push(p.data().to_vec());
            }
            pool.free_batch(&mut batch);
        }
        assert_eq!(got, frames);
        let s = ports[0].stats();
        assert_eq!(s.rx_packets, 40);
        assert_eq!(
            s.rx_bytes,
            frames.iter().map(|f| f.len() as u64).sum::<u64>()
        );
        assert_eq!(pool.available(), 64);
        // The emptied frames came back to be freed by the next `receive` or `take_sent`.
        assert_eq!(h.shared.spent_out.len(), 40);
        assert_eq!(h.receive(Vec::new()), Ok(0));
        assert_eq!(h.shared.spent_out.len(), 0);
    }

    #[test]
    fn a_full_queue_refuses_the_whole_request() {
        let ports = DummyPort::open_instances("d1", 1);
        let h = ports[0].handle();
        assert_eq!(
            h.receive(vec![frame(1, 60); DUMMY_QUEUE - 2]),
            Ok(DUMMY_QUEUE - 2)
        );
        let e = h.receive(vec![frame(2, 60); 3]).unwrap_err();
        assert_eq!(
            e,
            DummyFull {
                offered: 3,
                waiting: DUMMY_QUEUE - 2,
                capacity: DUMMY_QUEUE
            }
        );
        assert!(e.to_string().contains("receive queue full"), "{e}");
        assert_eq!(h.waiting(), DUMMY_QUEUE - 2, "nothing of it was queued");
        assert_eq!(h.receive(vec![frame(3, 60); 2]), Ok(2));
    }

    #[test]
    fn frames_without_a_buffer_are_dropped_and_counted() {
        let mut ports = DummyPort::open_instances("d2", 1);
        let h = ports[0].handle();
        let mut pool = pool(2);
        let mut batch = PacketBatch::new();
        // The 5000-byte frame does not fit a 2048-byte buffer.
        h.receive(vec![frame(1, 60), frame(2, 5000)]).unwrap();
        assert_eq!(ports[0].rx_burst(0, &mut pool, &mut batch), 1);
        pool.free_batch(&mut batch);
        let s = ports[0].stats();
        assert_eq!((s.rx_packets, s.rx_dropped), (1, 1));
        // With every buffer taken, waiting frames are dropped rather than left to stall.
        let held = [pool.alloc().unwrap(), pool.alloc().unwrap()];
        h.receive(vec![frame(3, 60), frame(4, 60)]).unwrap();
        assert_eq!(ports[0].rx_burst(0, &mut pool, &mut batch), 0);
        assert_eq!(ports[0].stats().rx_dropped, 3);
        assert_eq!(h.waiting(), 0);
        for p in held {
            pool.free(p);
        }
        assert_eq!(pool.available(), 2);
    }

    fn send(port: &mut DummyPort, pool: &mut PacketPool, frames: &[Vec<u8>]) {
        let mut batch = PacketBatch::new();
        for f in frames {
            let mut p = pool.alloc().unwrap();
            assert!(p.set_data(f));
            if batch.push(p).is_err() {
                unreachable!("tests send at most a batch at a time");
            }
        }
        port.tx_burst(0, pool, &mut batch);
        assert!(batch.is_empty());
    }

    #[test]
    fn sent_frames_are_kept_until_taken_and_counted() {
        let mut ports = DummyPort::open_instances("d3", 2);
        let h = ports[0].handle();
        let mut pool = pool(64);
        let a: Vec<Vec<u8>> = (0..3).map(|i| frame(i, 64)).collect();
        let b: Vec<Vec<u8>> = (3..5).map(|i| frame(i, 100)).collect();
        send(&mut ports[0], &mut pool, &a);
        send(&mut ports[1], &mut pool, &b);
        assert_eq!(pool.available(), 64, "buffers go back to the pool");
        let (frames, lost) = h.take_sent();
        assert_eq!(
            frames,
            [a, b].concat(),
            "every instance sends into one buffer"
        );
        assert_eq!(lost, 0);
        assert_eq!(h.take_sent(), (Vec::new(), 0), "taking drains");
        let s = ports[1].stats();
        assert_eq!((s.tx_packets, s.tx_bytes), (5, 3 * 64 + 2 * 100));
    }

    #[test]
    fn a_slow_reader_loses_the_oldest_frames() {
        let mut ports = DummyPort::open_instances("d4", 1);
        let h = ports[0].handle();
        let mut pool = pool(64);
        let total = DUMMY_QUEUE + 40;
        for chunk in 0..total.div_ceil(crate::BATCH_SIZE) {
            let frames: Vec<Vec<u8>> = (0..crate::BATCH_SIZE)
                .map(|i| chunk * crate::BATCH_SIZE + i)
                .filter(|&n| n < total)
                .map(|n| {
                    let mut f = frame(0, 60);
                    f[20..28].copy_from_slice(&(n as u64).to_be_bytes());
                    f
                })
                .collect();
            send(&mut ports[0], &mut pool, &frames);
        }
        let (frames, lost) = h.take_sent();
        assert_eq!(lost, 40);
        assert_eq!(frames.len(), DUMMY_QUEUE);
        let first = u64::from_be_bytes(frames[0][20..28].try_into().unwrap());
        let last = u64::from_be_bytes(frames[DUMMY_QUEUE - 1][20..28].try_into().unwrap());
        assert_eq!((first, last), (40, total as u64 - 1), "the newest are kept");
        assert_eq!(ports[0].stats().tx_packets, total as u64);
    }

    /// A TCP super-frame leaves as the segments a wire would carry, each checksummed.
    #[test]
    fn gso_packets_are_kept_as_segments() {
        use crate::checksum::{fold, ones_sum, pseudo_v4};
        use crate::gso::tests::{big_pool, payload_bytes, super_frame, Spec};
        let mut ports = DummyPort::open_instances("d5", 1);
        let h = ports[0].handle();
        let mut pool = big_pool(16);
        let s = Spec {
            v6: false,
            vlans: 0,
            ip_opts: 0,
            flags: 0x18,
            mss: 1000,
        };
        let (frame, vnet) = super_frame(s, &payload_bytes(2500));
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(&frame));
        p.vnet = Some(vnet);
        let mut batch = PacketBatch::new();
        assert!(batch.push(p).is_ok());
        ports[0].tx_burst(0, &mut pool, &mut batch);
        assert_eq!(pool.available(), 16);
        let (frames, lost) = h.take_sent();
        assert_eq!(lost, 0);
        let hdrs = 14 + 20 + 32;
        let lens: Vec<usize> = frames.iter().map(Vec::len).collect();
        assert_eq!(lens, [hdrs + 1000, hdrs + 1000, hdrs + 500]);
        for f in &frames {
            let tcp = &f[34..];
            let (src, dst) = (f[26..30].try_into().unwrap(), f[30..34].try_into().unwrap());
            let pseudo = pseudo_v4(&src, &dst, 6, tcp.len() as u32);
            assert_eq!(
                fold(pseudo + ones_sum(tcp)),
                0xffff,
                "TCP checksum complete"
            );
        }
        let st = ports[0].stats();
        assert_eq!((st.tx_packets, st.tx_segments, st.tx_errors), (3, 3, 0));
    }

    #[test]
    fn the_link_is_up_while_the_port_exists() {
        let ports = DummyPort::open_instances("d6", 2);
        let h = ports[0].handle();
        let watch = ports[0].link_watch();
        assert!(watch.is_up() && ports[1].link_up() && h.is_open());
        h.receive(vec![frame(1, 60)]).unwrap();
        let status = watch.status().unwrap();
        assert!(status.contains("up"), "{status}");
        assert!(status.contains("1 frames waiting"), "{status}");
        assert_eq!(ports[0].kind().config_name(), "dummy");
        assert_eq!(ports[0].mac(), ports[1].mac(), "instances are one port");
        assert_eq!(&ports[0].mac()[..2], &[0xaa, 0x55]);
        drop(ports);
        assert!(!watch.is_up() && !h.is_open());
    }
}
