//! A port without I/O, for benchmarking the datapath itself: it receives an endless stream of
//! synthetic IPv4/UDP frames from memory and counts (then frees) what it is asked to send.
//!
//! The frames follow the company harness's generator (`../shared/bench/lib/mkpcap.py`): flow
//! `i` has source 10.0.0.0 + i, destination 10.255.0.1, UDP ports 1024 + i % 60000 → 5001,
//! and the flows come in a shuffled order, so consecutive packets belong to different flows.
//! Receiving copies each frame into a pool buffer, as a real port copies from the kernel or
//! the guest.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::batch::PacketBatch;
use crate::pool::PacketPool;
use crate::port::{Burst, LinkWatch, Port, PortCounters, PortKind};

/// What a [`ReplayPort`] sends into the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Port name.
    pub name: String,
    /// Distinct flows in the stream; 0 makes a port that only transmits (a sink).
    pub flows: u32,
    /// Frame length without FCS (at least 60).
    pub frame_len: usize,
    /// Source MAC of every frame.
    pub src_mac: [u8; 6],
    /// Destination MAC of every frame.
    pub dst_mac: [u8; 6],
}

impl ReplayConfig {
    /// `flows` flows of 60-byte frames (64 on the wire) from 02:00:00:00:00:0a to
    /// 02:00:00:00:00:0b, as the harness sends them.
    pub fn new(name: &str, flows: u32) -> ReplayConfig {
        ReplayConfig {
            name: name.to_owned(),
            flows,
            frame_len: 60,
            src_mac: [2, 0, 0, 0, 0, 0x0a],
            dst_mac: [2, 0, 0, 0, 0, 0x0b],
        }
    }
}

/// The replaying port (one instance; it has one queue each way).
pub struct ReplayPort {
    cfg: ReplayConfig,
    port_no: u32,
    /// All frames back to back, `frame_len` bytes each.
    frames: Vec<u8>,
    next: usize,
    counters: Arc<PortCounters>,
    up: Arc<AtomicBool>,
}

impl ReplayPort {
    /// Builds the frames (allocates `flows × frame_len` bytes once).
    pub fn new(cfg: ReplayConfig) -> ReplayPort {
        let len = cfg.frame_len.max(60);
        let mut order: Vec<u32> = (0..cfg.flows).collect();
        // A fixed shuffle (xorshift-driven Fisher–Yates): the same stream every run.
        let mut x = 0x2545_f491u32;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            order.swap(i, x as usize % (i + 1));
        }
        let mut frames = Vec::with_capacity(order.len() * len);
        for &i in &order {
            frames.extend_from_slice(&frame(&cfg, i, len));
        }
        ReplayPort {
            cfg: ReplayConfig {
                frame_len: len,
                ..cfg
            },
            port_no: 0,
            frames,
            next: 0,
            counters: PortCounters::new_shared(),
            up: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Frame of flow `i`: Ethernet, IPv4 (with its checksum), UDP (no checksum), zero payload.
fn frame(cfg: &ReplayConfig, i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&cfg.dst_mac);
    f[6..12].copy_from_slice(&cfg.src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&(0x0a00_0000 + i % 0x00ff_ffff).to_be_bytes());
    ip[16..20].copy_from_slice(&0x0aff_0001u32.to_be_bytes());
    let sum = crate::checksum::checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&5001u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

impl Port for ReplayPort {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Replay
    }

    fn n_rxq(&self) -> usize {
        usize::from(self.cfg.flows > 0)
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
        let len = self.cfg.frame_len;
        let n_frames = self.frames.len() / len;
        if n_frames == 0 {
            return 0;
        }
        let mut n = 0;
        while batch.space() > 0 {
            let Some(mut pkt) = pool.alloc() else {
                break;
            };
            let at = self.next * len;
            self.next = if self.next + 1 == n_frames {
                0
            } else {
                self.next + 1
            };
            pkt.set_len(len);
            pkt.data_mut().copy_from_slice(&self.frames[at..at + len]);
            pkt.in_port = self.port_no;
            if let Err(p) = batch.push(pkt) {
                pool.free(p);
                break;
            }
            n += 1;
        }
        self.counters.add_rx(&Burst {
            packets: n as u64,
            bytes: (n * len) as u64,
            ..Burst::default()
        });
        n
    }

    fn tx_burst(&mut self, _qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        let out = Burst {
            packets: batch.len() as u64,
            bytes: batch.iter().map(|p| p.len() as u64).sum(),
            ..Burst::default()
        };
        self.counters.add_tx(&out);
        pool.free_batch(batch);
        out
    }

    fn counters(&self) -> Arc<PortCounters> {
        Arc::clone(&self.counters)
    }

    fn mtu(&self) -> u32 {
        1500
    }

    fn mac(&self) -> [u8; 6] {
        self.cfg.src_mac
    }

    fn link_up(&self) -> bool {
        true
    }

    fn link_watch(&self) -> LinkWatch {
        LinkWatch::Connected(Arc::clone(&self.up))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolConfig;

    #[test]
    fn replays_every_flow_then_wraps_and_sinks_what_it_sends() {
        let mut port = ReplayPort::new(ReplayConfig::new("r", 40));
        port.set_port_no(3);
        let mut pool = PacketPool::new(PoolConfig {
            n_buffers: 128,
            ..PoolConfig::default()
        })
        .unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut batch = PacketBatch::new();
        for _ in 0..2 {
            assert_eq!(port.rx_burst(0, &mut pool, &mut batch), crate::BATCH_SIZE);
            for p in batch.iter() {
                assert_eq!(p.len(), 60);
                assert_eq!(p.in_port, 3);
                assert_eq!(&p.data()[12..14], &[8, 0]);
                seen.insert([p.data()[28], p.data()[29]]);
            }
            port.tx_burst(0, &mut pool, &mut batch);
            assert!(batch.is_empty());
        }
        assert_eq!(seen.len(), 40, "64 frames cover all 40 flows");
        let s = port.stats();
        assert_eq!((s.rx_packets, s.tx_packets), (64, 64));
        assert_eq!(pool.available(), 128);
        let mut sink = ReplayPort::new(ReplayConfig::new("s", 0));
        assert_eq!(sink.n_rxq(), 0);
        assert_eq!(sink.rx_burst(0, &mut pool, &mut batch), 0);
    }
}
