//! Tap and internal ports against the kernel, inside a private network namespace.

use std::time::Duration;

use ports::{
    Burst, PacketBatch, PacketPool, PoolConfig, Port, PortKind, TapConfig, TapPort, VnetHdr,
};
use testkit::netns::{Netns, RawSock};
use testkit::packet::sample::{
    is_test_frame, is_udp4, seq_of, test_frame, udp4_checksum_ok, MAC_A, MAC_B,
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

/// Receives until `want` packets are in `batch` or 5 s passed.
fn rx_until(port: &mut dyn Port, pool: &mut PacketPool, batch: &mut PacketBatch, want: usize) {
    wait_until(Duration::from_secs(5), || {
        port.rx_burst(0, pool, batch);
        // Drop anything that is not a test frame (none expected with IPv6 off).
        batch.retain(|p| is_test_frame(p.data()), |_| {});
        batch.len() >= want
    });
}

#[test]
fn tap_rx_and_tx() {
    if !can_run("tap_rx_and_tx", &[Need::Tun, Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let mut port = TapPort::open(&TapConfig::new("vtap%d")).unwrap();
        assert!(port.name().starts_with("vtap"));
        assert_eq!(port.kind(), PortKind::Tap);
        assert!(port.link_up());
        assert_eq!(port.mtu(), 1500);
        port.set_port_no(3);
        let peer = RawSock::bind(port.name());
        let mut pool = pool(64);
        let mut batch = PacketBatch::new();

        // Kernel → port.
        let frames: Vec<Vec<u8>> = (0..5)
            .map(|i| test_frame(MAC_A, MAC_B, i, 60 + i as usize * 100))
            .collect();
        for f in &frames {
            peer.send(f);
        }
        rx_until(&mut port, &mut pool, &mut batch, 5);
        assert_eq!(batch.len(), 5);
        for (p, f) in batch.iter().zip(&frames) {
            assert_eq!(p.data(), &f[..]);
            assert_eq!(p.in_port, 3);
            assert_eq!(p.vnet, None);
        }
        let s = port.stats();
        assert_eq!(s.rx_packets, 5);
        assert_eq!(
            s.rx_bytes,
            frames.iter().map(|f| f.len() as u64).sum::<u64>()
        );

        // Port → kernel: send the same packets back.
        port.tx_burst(0, &mut pool, &mut batch);
        assert!(batch.is_empty());
        assert_eq!(pool.available(), 64, "tx returns buffers");
        let got = peer.recv_test_frames(5, Duration::from_secs(5));
        assert_eq!(got, frames);
        let s = port.stats();
        assert_eq!((s.tx_packets, s.tx_dropped, s.tx_errors), (5, 0, 0));
        assert_eq!(s.tx_bytes, s.rx_bytes);
    });
}

/// The transmit errno policy on a tap: writing to a tap whose interface is down fails (EIO),
/// which drops the rest of the burst as `tx_dropped`, not as errors.
#[test]
fn tap_link_down_drops_the_burst() {
    if !can_run("tap_link_down_drops_the_burst", &[Need::Tun, Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    let ns_name = ns.name.clone();
    ns.run(move || {
        let mut port = TapPort::open(&TapConfig::new("vtap%d")).unwrap();
        assert!(port.link_up());
        let status = std::process::Command::new("ip")
            .args(["-n", &ns_name, "link", "set", port.name(), "down"])
            .status()
            .unwrap();
        assert!(status.success());
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
        assert_eq!(pool.available(), 8);
    });
}

#[test]
fn tap_pool_exhaustion_drops_and_counts() {
    if !can_run(
        "tap_pool_exhaustion_drops_and_counts",
        &[Need::Tun, Need::Netns],
    ) {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let mut port = TapPort::open(&TapConfig::new("vtapx%d")).unwrap();
        let peer = RawSock::bind(port.name());
        let mut pool = pool(2);
        let mut batch = PacketBatch::new();
        for i in 0..6 {
            peer.send(&test_frame(MAC_A, MAC_B, i, 64));
        }
        wait_until(Duration::from_secs(5), || {
            port.rx_burst(0, &mut pool, &mut batch);
            let s = port.stats();
            s.rx_packets + s.rx_dropped >= 6
        });
        let s = port.stats();
        assert_eq!(batch.len(), 2);
        assert_eq!((s.rx_packets, s.rx_dropped), (2, 4));
        assert!(pool.alloc_failures() >= 4);
        pool.free_batch(&mut batch);
        assert_eq!(pool.available(), 2);
    });
}

#[test]
fn tap_vnet_hdr_and_multiqueue() {
    if !can_run("tap_vnet_hdr_and_multiqueue", &[Need::Tun, Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let mut port = TapPort::open(&TapConfig {
            name: "vtapmq".into(),
            n_queues: 2,
            vnet_hdr: true,
            offloads: false,
        })
        .unwrap();
        assert_eq!((port.n_rxq(), port.n_txq()), (2, 2));
        assert!(port.rx_fd(1).is_some());
        let peer = RawSock::bind("vtapmq");
        let mut pool = pool(64);
        let mut batch = PacketBatch::new();
        let frames: Vec<Vec<u8>> = (0..8).map(|i| test_frame(MAC_A, MAC_B, i, 100)).collect();
        for f in &frames {
            peer.send(f);
        }
        // The kernel spreads flows over queues; poll both.
        wait_until(Duration::from_secs(5), || {
            for q in 0..2 {
                port.rx_burst(q, &mut pool, &mut batch);
            }
            batch.retain(|p| is_test_frame(p.data()), |_| {});
            batch.len() >= 8
        });
        assert_eq!(batch.len(), 8);
        let mut seqs: Vec<u32> = batch.iter().map(|p| seq_of(p.data())).collect();
        seqs.sort();
        assert_eq!(seqs, (0..8).collect::<Vec<_>>());
        for p in batch.iter() {
            // The kernel computed everything: a plain header.
            assert!(p.vnet.unwrap().is_plain());
        }
        // Send back on queue 1 with an explicit (plain) header.
        for p in batch.iter_mut() {
            p.vnet = Some(VnetHdr::default());
        }
        port.tx_burst(1, &mut pool, &mut batch);
        let got = peer.recv_test_frames(8, Duration::from_secs(5));
        assert_eq!(got.len(), 8);
        assert_eq!(port.stats().tx_packets, 8);
        assert_eq!(pool.available(), 64);
    });
}

#[test]
fn internal_port_is_named_like_the_bridge() {
    if !can_run(
        "internal_port_is_named_like_the_bridge",
        &[Need::Tun, Need::Netns],
    ) {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let port = TapPort::internal("br-test0").unwrap();
        assert_eq!(port.name(), "br-test0");
        assert_eq!(port.kind(), PortKind::Internal);
        assert!(port.link_up());
        assert_eq!(port.mac(), port.netdev().mac().unwrap());
        drop(port);
        // The device goes away with the port.
        assert!(ports::NetDev::new("br-test0").unwrap().ifindex().is_err());
    });
}

#[test]
fn tap_offloads_deliver_partial_checksums() {
    if !can_run(
        "tap_offloads_deliver_partial_checksums",
        &[Need::Tun, Need::Netns],
    ) {
        return;
    }
    let ns = Netns::new();
    let ns_name = ns.name.clone();
    ns.run(move || {
        let mut port = TapPort::open(&TapConfig {
            name: "vtapo".into(),
            n_queues: 1,
            vnet_hdr: true,
            offloads: true,
        })
        .unwrap();
        // The namespace's stack sends UDP out of the tap to a static neighbour.
        let ip = |args: &[&str]| {
            let st = std::process::Command::new("ip")
                .args(["-n", &ns_name])
                .args(args)
                .status()
                .unwrap();
            assert!(st.success());
        };
        ip(&["addr", "add", "10.98.0.1/24", "dev", "vtapo"]);
        ip(&[
            "neigh",
            "add",
            "10.98.0.2",
            "lladdr",
            "02:00:00:00:00:0a",
            "dev",
            "vtapo",
            "nud",
            "permanent",
        ]);
        let sock = std::net::UdpSocket::bind("10.98.0.1:0").unwrap();
        sock.send_to(b"checksum left to the switch", "10.98.0.2:9999")
            .unwrap();
        let mut pool = pool(16);
        let mut batch = PacketBatch::new();
        wait_until(Duration::from_secs(5), || {
            port.rx_burst(0, &mut pool, &mut batch);
            batch.retain(|p| is_udp4(p.data()), |_| {});
            !batch.is_empty()
        });
        let mut p = batch.pop().expect("UDP frame from the stack");
        let v = p.vnet.unwrap();
        assert_eq!(v.flags & VnetHdr::F_NEEDS_CSUM, 1, "{v:?}");
        assert_eq!((v.csum_start, v.csum_offset), (34, 6));
        assert!(p.resolve_offloads());
        assert!(udp4_checksum_ok(p.data()));
        pool.free(p);
        // Offloads without the header are refused.
        assert!(TapPort::open(&TapConfig {
            name: "vtapbad".into(),
            n_queues: 1,
            vnet_hdr: false,
            offloads: true,
        })
        .is_err());
    });
}

#[test]
fn tap_frame_longer_than_a_buffer_is_dropped() {
    if !can_run(
        "tap_frame_longer_than_a_buffer_is_dropped",
        &[Need::Tun, Need::Netns],
    ) {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let mut port = TapPort::open(&TapConfig::new("vtapbig")).unwrap();
        let peer = RawSock::bind("vtapbig");
        let mut pool = PacketPool::new(PoolConfig {
            n_buffers: 8,
            data_room: 512,
            ..PoolConfig::default()
        })
        .unwrap();
        peer.send(&test_frame(MAC_A, MAC_B, 1, 1400));
        peer.send(&test_frame(MAC_A, MAC_B, 2, 300));
        let mut batch = PacketBatch::new();
        rx_until(&mut port, &mut pool, &mut batch, 1);
        assert_eq!(batch.len(), 1);
        assert_eq!(seq_of(batch.get(0).unwrap().data()), 2);
        let s = port.stats();
        assert_eq!((s.rx_packets, s.rx_dropped + s.rx_errors), (1, 1));
        pool.free_batch(&mut batch);
        assert_eq!(pool.available(), 8);
    });
}
