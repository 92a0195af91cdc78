//! AF_PACKET system ports on a veth pair inside a private network namespace: the port sits on
//! `va`, a raw socket on the peer `vb` plays the wire.

use std::time::Duration;

use ports::{
    AfPacketConfig, AfPacketPort, Burst, PacketBatch, PacketPool, PoolConfig, Port, PortKind,
};
use testkit::netns::{Netns, RawSock};
use testkit::packet::sample::{
    is_test_frame, is_udp4, seq_of, test_frame, udp4_checksum_ok, udp_frame, MAC_A, MAC_B,
};
use testkit::require::{can_run, Need};
use testkit::wait::wait_until;

fn pool(n: usize) -> PacketPool {
    PacketPool::new(PoolConfig {
        n_buffers: n,
        ..PoolConfig::default()
    })
    .unwrap()
}

/// Receives test frames until `want` arrived (or 5 s), returning their bytes in order and
/// freeing the buffers.
fn rx_frames(port: &mut dyn Port, pool: &mut PacketPool, want: usize) -> Vec<Vec<u8>> {
    rx_frames_for(port, pool, want, Duration::from_secs(5))
}

fn rx_frames_for(
    port: &mut dyn Port,
    pool: &mut PacketPool,
    want: usize,
    timeout: Duration,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut batch = PacketBatch::new();
    wait_until(timeout, || {
        port.rx_burst(0, pool, &mut batch);
        for p in batch.drain() {
            if is_test_frame(p.data()) {
                out.push(p.data().to_vec());
            }
            pool.free(p);
        }
        out.len() >= want
    });
    out
}

fn setup(ns: &Netns) {
    ns.veth("va", "vb");
}

#[test]
fn afpacket_rx_tx_and_counters() {
    if !can_run("afpacket_rx_tx_and_counters", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    setup(&ns);
    ns.run(|| {
        let mut port = AfPacketPort::open(&AfPacketConfig::new("va")).unwrap();
        port.set_port_no(7);
        assert_eq!(port.kind(), PortKind::SystemAfPacket);
        assert_eq!(port.mtu(), 1500);
        assert!(port.link_up());
        assert_ne!(port.mac(), [0; 6]);
        let peer = RawSock::bind("vb");
        let mut pool = pool(256);

        // Wire → port: more than a batch, various sizes, in order.
        let frames: Vec<Vec<u8>> = (0..100)
            .map(|i| test_frame(MAC_A, MAC_B, i, 60 + (i as usize * 37) % 1400))
            .collect();
        for f in &frames {
            peer.send(f);
        }
        let mut batch = PacketBatch::new();
        let mut got = Vec::new();
        wait_until(Duration::from_secs(5), || {
            port.rx_burst(0, &mut pool, &mut batch);
            assert!(batch.len() <= 32);
            for p in batch.drain() {
                assert_eq!(p.in_port, 7);
                // Raw frames carry no offload work: a plain header.
                assert!(p.vnet.is_some_and(|v| v.is_plain()));
                if is_test_frame(p.data()) {
                    got.push(p.data().to_vec());
                }
                pool.free(p);
            }
            got.len() >= 100
        });
        assert_eq!(got, frames);
        let s = port.stats();
        assert_eq!(s.rx_packets, 100);
        assert_eq!(
            s.rx_bytes,
            frames.iter().map(|f| f.len() as u64).sum::<u64>()
        );
        assert_eq!((s.rx_dropped, s.rx_errors), (0, 0));
        assert_eq!(pool.available(), 256);

        // Port → wire.
        let out: Vec<Vec<u8>> = (0..40)
            .map(|i| test_frame(MAC_B, MAC_A, 1000 + i, 200))
            .collect();
        for chunk in out.chunks(32) {
            for f in chunk {
                let mut p = pool.alloc().unwrap();
                assert!(p.set_data(f));
                batch.push(p).unwrap();
            }
            port.tx_burst(0, &mut pool, &mut batch);
            assert!(batch.is_empty());
        }
        assert_eq!(pool.available(), 256);
        let seen = peer.recv_test_frames(40, Duration::from_secs(5));
        assert_eq!(seen, out);
        let s = port.stats();
        assert_eq!((s.tx_packets, s.tx_bytes), (40, 40 * 200));
        assert_eq!((s.tx_dropped, s.tx_errors), (0, 0));
        // The port's own transmissions are not received back.
        assert!(rx_frames_for(&mut port, &mut pool, 1, Duration::from_millis(200)).is_empty());
        assert_eq!(port.stats().rx_packets, 100);
    });
}

#[test]
fn afpacket_keeps_vlan_tags() {
    if !can_run("afpacket_keeps_vlan_tags", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    setup(&ns);
    ns.run(|| {
        // Without the virtio-net header, to cover that path too.
        let mut cfg = AfPacketConfig::new("va");
        cfg.vnet_hdr = false;
        let mut port = AfPacketPort::open(&cfg).unwrap();
        assert!(!port.has_vnet_hdr());
        let peer = RawSock::bind("vb");
        let mut pool = pool(16);
        // A tagged frame (VID 5, PCP 1) carrying a test frame's ethertype and payload.
        let inner = test_frame(MAC_A, MAC_B, 42, 100);
        let mut tagged = inner[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x05]);
        tagged.extend_from_slice(&inner[12..]);
        peer.send(&tagged);
        let mut batch = PacketBatch::new();
        let mut got = None;
        wait_until(Duration::from_secs(5), || {
            port.rx_burst(0, &mut pool, &mut batch);
            for p in batch.drain() {
                if p.data().len() > 18 && p.data()[12..14] == [0x81, 0x00] {
                    got = Some(p.data().to_vec());
                }
                pool.free(p);
            }
            got.is_some()
        });
        assert_eq!(
            got.unwrap(),
            tagged,
            "the tag the kernel stripped is put back"
        );
        // And a tagged frame sent by the port arrives tagged.
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(&tagged));
        batch.push(p).unwrap();
        port.tx_burst(0, &mut pool, &mut batch);
        assert_eq!(port.stats().tx_packets, 1);
    });
}

#[test]
fn afpacket_pool_exhaustion_drops_and_counts() {
    if !can_run("afpacket_pool_exhaustion_drops_and_counts", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    setup(&ns);
    ns.run(|| {
        let mut port = AfPacketPort::open(&AfPacketConfig::new("va")).unwrap();
        let peer = RawSock::bind("vb");
        let mut pool = pool(4);
        for i in 0..10 {
            peer.send(&test_frame(MAC_A, MAC_B, i, 64));
        }
        let mut batch = PacketBatch::new();
        wait_until(Duration::from_secs(5), || {
            port.rx_burst(0, &mut pool, &mut batch);
            let s = port.stats();
            s.rx_packets + s.rx_dropped >= 10
        });
        let s = port.stats();
        assert_eq!((s.rx_packets, s.rx_dropped), (4, 6));
        assert_eq!(batch.len(), 4);
        pool.free_batch(&mut batch);
        // With buffers back, reception resumes.
        peer.send(&test_frame(MAC_A, MAC_B, 99, 64));
        let got = rx_frames(&mut port, &mut pool, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(seq_of(&got[0]), 99);
    });
}

#[test]
fn afpacket_tx_errors_and_oversized_rx() {
    if !can_run("afpacket_tx_errors_and_oversized_rx", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    setup(&ns);
    ns.ip(&["link", "set", "va", "mtu", "4000"]);
    ns.ip(&["link", "set", "vb", "mtu", "4000"]);
    ns.run(|| {
        let mut port = AfPacketPort::open(&AfPacketConfig::new("va")).unwrap();
        let peer = RawSock::bind("vb");
        // Buffers smaller than the frames the wire can carry.
        let mut pool = PacketPool::new(PoolConfig {
            n_buffers: 8,
            data_room: 1024,
            ..PoolConfig::default()
        })
        .unwrap();
        peer.send(&test_frame(MAC_A, MAC_B, 1, 3000));
        peer.send(&test_frame(MAC_A, MAC_B, 2, 500));
        let got = rx_frames(&mut port, &mut pool, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(seq_of(&got[0]), 2);
        assert_eq!(port.stats().rx_dropped, 1);

        // A frame above the MTU is refused by the kernel; the others in the burst still go.
        let big = PacketPool::new(PoolConfig {
            n_buffers: 4,
            data_room: 9216,
            ..PoolConfig::default()
        });
        let mut big = big.unwrap();
        let mut batch = PacketBatch::new();
        for (seq, len) in [(10, 100), (11, 6000), (12, 100)] {
            let mut p = big.alloc().unwrap();
            assert!(p.set_data(&test_frame(MAC_B, MAC_A, seq, len)));
            batch.push(p).unwrap();
        }
        let out = port.tx_burst(0, &mut big, &mut batch);
        assert_eq!(
            out,
            Burst {
                packets: 2,
                bytes: 200,
                dropped: 0,
                errors: 1
            }
        );
        let s = port.stats();
        assert_eq!((s.tx_packets, s.tx_errors), (2, 1));
        assert_eq!(big.available(), 4);
        let seen = peer.recv_test_frames(2, Duration::from_secs(5));
        assert_eq!(
            seen.iter().map(|f| seq_of(f)).collect::<Vec<_>>(),
            vec![10, 12]
        );
    });
}

/// The transmit errno policy on a real device: an interface that is down (ENETDOWN) drops the
/// whole burst as `tx_dropped`, with one attempt, not as errors.
#[test]
fn afpacket_link_down_drops_the_burst() {
    if !can_run("afpacket_link_down_drops_the_burst", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    setup(&ns);
    ns.ip(&["link", "set", "va", "down"]);
    ns.run(|| {
        for vnet_hdr in [true, false] {
            let mut cfg = AfPacketConfig::new("va");
            cfg.vnet_hdr = vnet_hdr;
            let mut port = AfPacketPort::open(&cfg).unwrap();
            assert!(!port.link_up());
            let mut pool = pool(8);
            let mut batch = PacketBatch::new();
            for seq in 0..3 {
                let mut p = pool.alloc().unwrap();
                assert!(p.set_data(&test_frame(MAC_B, MAC_A, seq, 100)));
                batch.push(p).unwrap();
            }
            let out = port.tx_burst(0, &mut pool, &mut batch);
            assert_eq!(
                out,
                Burst {
                    dropped: 3,
                    ..Burst::default()
                }
            );
            let s = port.stats();
            assert_eq!((s.tx_packets, s.tx_dropped, s.tx_errors), (0, 3, 0));
            assert!(batch.is_empty());
            assert_eq!(pool.available(), 8);
        }
    });
}

#[test]
fn afpacket_vnet_hdr_carries_checksum_offload() {
    if !can_run("afpacket_vnet_hdr_carries_checksum_offload", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    setup(&ns);
    // The namespace's own stack sends UDP out of vb to a static neighbour; veth offloads the
    // checksum, so the frame reaches va with a partial checksum and its virtio-net header says so.
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "vb"]);
    ns.ip(&[
        "neigh",
        "add",
        "10.99.0.2",
        "lladdr",
        "02:00:00:00:00:0a",
        "dev",
        "vb",
        "nud",
        "permanent",
    ]);
    ns.run(|| {
        let mut port = AfPacketPort::open(&AfPacketConfig::new("va")).unwrap();
        assert!(port.has_vnet_hdr(), "on by default");
        let sock = std::net::UdpSocket::bind("10.99.0.1:0").unwrap();
        sock.send_to(b"offload metadata travels", "10.99.0.2:9999")
            .unwrap();
        let mut pool = pool(16);
        let mut batch = PacketBatch::new();
        let mut udp = None;
        wait_until(Duration::from_secs(5), || {
            port.rx_burst(0, &mut pool, &mut batch);
            for p in batch.drain() {
                if udp.is_none() && is_udp4(p.data()) {
                    udp = Some(p);
                } else {
                    pool.free(p);
                }
            }
            udp.is_some()
        });
        let mut p = udp.expect("UDP frame received");
        let v = p.vnet.expect("vnet header present");
        assert_eq!(v.flags & ports::VnetHdr::F_NEEDS_CSUM, 1, "{v:?}");
        assert_eq!((v.csum_start, v.csum_offset), (34, 6));
        // Sent back out of a vnet port, the header goes with it.
        batch
            .push(
                pool.alloc()
                    .map(|mut q| {
                        assert!(q.set_data(p.data()));
                        q.vnet = p.vnet;
                        q
                    })
                    .unwrap(),
            )
            .unwrap();
        port.tx_burst(0, &mut pool, &mut batch);
        assert_eq!(port.stats().tx_packets, 1);
        // Resolved in software for a port without offloads, the checksum becomes valid.
        assert!(p.resolve_offloads());
        assert!(udp4_checksum_ok(p.data()));
        pool.free(p);
        assert_eq!(pool.available(), 16);
    });
}

#[test]
fn afpacket_fanout_spreads_flows_over_queues() {
    if !can_run("afpacket_fanout_spreads_flows_over_queues", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    setup(&ns);
    ns.run(|| {
        let mut cfg = AfPacketConfig::new("va");
        cfg.n_queues = 2;
        let mut port = AfPacketPort::open(&cfg).unwrap();
        assert_eq!((port.n_rxq(), port.n_txq()), (2, 2));
        assert!(port.rx_fd(1).is_some());
        let peer = RawSock::bind("vb");
        let mut pool = pool(256);
        let mut batch = PacketBatch::new();
        for sport in 1000..1064 {
            peer.send(&udp_frame(sport));
        }
        let mut per_queue = [Vec::new(), Vec::new()];
        wait_until(Duration::from_secs(5), || {
            for (q, seen) in per_queue.iter_mut().enumerate() {
                port.rx_burst(q, &mut pool, &mut batch);
                for p in batch.drain() {
                    if is_udp4(p.data()) {
                        seen.push(u16::from_be_bytes([p.data()[34], p.data()[35]]));
                    }
                    pool.free(p);
                }
            }
            per_queue[0].len() + per_queue[1].len() >= 64
        });
        let mut all: Vec<u16> = per_queue.concat();
        all.sort();
        assert_eq!(all, (1000..1064).collect::<Vec<_>>());
        // 64 flows hashed over 2 sockets: both get some.
        assert!(
            !per_queue[0].is_empty() && !per_queue[1].is_empty(),
            "{per_queue:?}"
        );
        // Transmit on the second queue.
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(&test_frame(MAC_B, MAC_A, 7, 64)));
        batch.push(p).unwrap();
        port.tx_burst(1, &mut pool, &mut batch);
        assert_eq!(peer.recv_test_frames(1, Duration::from_secs(5)).len(), 1);
        assert_eq!(pool.available(), 256);
    });
}
