//! Ports opened as several instances (one per PMD thread) with [`ports::open_instances`], on real
//! interfaces inside private network namespaces: frames sent from the namespace side arrive on
//! exactly one instance, every instance transmits, and the instances share their counters.

use std::time::Duration;

use ports::{
    open_instances, PacketBatch, PacketPool, PoolConfig, Port, PortKind, PortSpec, SystemConfig,
    SystemMode, TapConfig,
};
use testkit::netns::{Netns, RawSock};
use testkit::packet::sample::{is_udp4, seq_of, test_frame, udp_frame, MAC_A, MAC_B, UDP_DPORT};
use testkit::require::{can_run, Need};
use testkit::wait::wait_until;

/// The UDP source port of one of our frames.
fn our_sport(f: &[u8]) -> Option<u16> {
    (is_udp4(f) && f.len() >= 38 && u16::from_be_bytes([f[36], f[37]]) == UDP_DPORT)
        .then(|| u16::from_be_bytes([f[34], f[35]]))
}

/// Polls every queue of every instance until `want` of our frames arrived (or 5 s passed), then
/// a little longer to catch duplicates; returns the source ports each instance received.
fn receive_all(ports: &mut [Box<dyn Port>], pool: &mut PacketPool, want: usize) -> Vec<Vec<u16>> {
    let mut seen: Vec<Vec<u16>> = vec![Vec::new(); ports.len()];
    let mut batch = PacketBatch::new();
    let mut poll = |seen: &mut Vec<Vec<u16>>| {
        for (i, port) in ports.iter_mut().enumerate() {
            for q in 0..port.n_rxq() {
                port.rx_burst(q, pool, &mut batch);
                for p in batch.drain() {
                    if let Some(sport) = our_sport(p.data()) {
                        seen[i].push(sport);
                    }
                    pool.free(p);
                }
            }
        }
    };
    wait_until(Duration::from_secs(5), || {
        poll(&mut seen);
        seen.iter().map(Vec::len).sum::<usize>() >= want
    });
    // A duplicate would come right behind the original; give it the time to show up.
    let _ = wait_until(Duration::from_millis(100), || {
        poll(&mut seen);
        false
    });
    seen
}

/// Runs the checks every kind must pass: same identity on all instances, each frame sent by the
/// peer received exactly once across the instances, a transmit from every instance, shared
/// counters.
fn exercise(ports: &mut [Box<dyn Port>], peer: &RawSock, kind: PortKind) {
    let n_frames = 64u16;
    for p in ports.iter() {
        assert_eq!(p.name(), ports[0].name());
        assert_eq!(p.kind(), kind);
        assert_eq!(p.mtu(), ports[0].mtu());
        assert_eq!(p.mac(), ports[0].mac());
        assert!(p.n_txq() >= 1);
    }
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 256,
        ..PoolConfig::default()
    })
    .unwrap();
    for sport in 1000..1000 + n_frames {
        peer.send(&udp_frame(sport));
    }
    let seen = receive_all(ports, &mut pool, n_frames as usize);
    let per_instance: Vec<usize> = seen.iter().map(Vec::len).collect();
    eprintln!("{kind:?}: frames per instance {per_instance:?}");
    let mut all = seen.concat();
    all.sort();
    assert_eq!(
        all,
        (1000..1000 + n_frames).collect::<Vec<_>>(),
        "each frame exactly once across instances ({per_instance:?})"
    );

    // Every instance transmits on its own queue 0.
    let mut batch = PacketBatch::new();
    for (i, port) in ports.iter_mut().enumerate() {
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(&test_frame(MAC_B, MAC_A, 500 + i as u32, 80)));
        batch.push(p).unwrap();
        port.tx_burst(0, &mut pool, &mut batch);
        assert!(batch.is_empty());
    }
    let got = peer.recv_test_frames(ports.len(), Duration::from_secs(5));
    let mut seqs: Vec<u32> = got.iter().map(|f| seq_of(f)).collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (0..ports.len() as u32).map(|i| 500 + i).collect::<Vec<_>>()
    );
    assert_eq!(pool.available(), 256);

    // One set of counters: every instance reports the port's totals.
    let s = ports[0].stats();
    assert_eq!(s.rx_packets, n_frames as u64, "{s:?}");
    assert_eq!(s.tx_packets, ports.len() as u64, "{s:?}");
    assert_eq!((s.tx_dropped, s.tx_errors), (0, 0), "{s:?}");
    for p in ports.iter() {
        assert_eq!(p.stats(), s);
    }
}

#[test]
fn tap_instances_share_the_device() {
    if !can_run("tap_instances_share_the_device", &[Need::Tun, Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let spec = PortSpec::Tap(TapConfig::new("vtapi%d"));
        let mut ports = open_instances(&spec, 2).unwrap();
        assert_eq!(ports.len(), 2);
        for p in &ports {
            // One multiqueue queue each.
            assert_eq!((p.n_rxq(), p.n_txq()), (1, 1));
            assert!(p.rx_fd(0).is_some());
        }
        let name = ports[0].name().to_owned();
        assert!(name.starts_with("vtapi"));
        let peer = RawSock::bind(&name);
        exercise(&mut ports, &peer, PortKind::Tap);
        drop(peer);
        // The device lives while any instance does.
        let last = ports.pop().unwrap();
        drop(ports);
        assert!(last.link_up());
        drop(last);
        assert!(ports::NetDev::new(&name).unwrap().ifindex().is_err());
    });
}

#[test]
fn internal_instances() {
    if !can_run("internal_instances", &[Need::Tun, Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let spec = PortSpec::Internal {
            bridge: "br-inst0".into(),
        };
        let mut ports = open_instances(&spec, 2).unwrap();
        assert_eq!(ports[1].name(), "br-inst0");
        let peer = RawSock::bind("br-inst0");
        exercise(&mut ports, &peer, PortKind::Internal);
    });
}

#[test]
fn afpacket_instances_share_a_fanout_group() {
    if !can_run("afpacket_instances_share_a_fanout_group", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(|| {
        let mut c = SystemConfig::new("va");
        c.mode = SystemMode::AfPacket;
        let mut ports = open_instances(&PortSpec::System(c), 2).unwrap();
        for p in &ports {
            assert_eq!((p.n_rxq(), p.n_txq()), (1, 1));
        }
        let peer = RawSock::bind("vb");
        exercise(&mut ports, &peer, PortKind::SystemAfPacket);
    });
}

#[test]
fn afxdp_instances_one_queue_each() {
    if !can_run("afxdp_instances_one_queue_each", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.veth_mq("va", "vb", 2);
    ns.run(|| {
        let mut c = SystemConfig::new("va");
        c.mode = SystemMode::AfXdp;
        let mut ports = open_instances(&PortSpec::System(c), 2).unwrap();
        for p in &ports {
            assert_eq!((p.n_rxq(), p.n_txq()), (1, 1));
            assert!(p.rx_fd(0).is_some());
        }
        let peer = RawSock::bind("vb");
        exercise(&mut ports, &peer, PortKind::SystemAfXdp);
    });
}

#[test]
fn afxdp_instance_without_a_queue_transmits_via_afpacket() {
    if !can_run(
        "afxdp_instance_without_a_queue_transmits_via_afpacket",
        &[Need::Netns],
    ) {
        return;
    }
    let ns = Netns::new();
    // One queue, two instances: the second has no AF_XDP socket.
    ns.veth("va", "vb");
    ns.run(|| {
        let mut c = SystemConfig::new("va");
        c.mode = SystemMode::AfXdp;
        let mut ports = open_instances(&PortSpec::System(c), 2).unwrap();
        assert_eq!((ports[0].n_rxq(), ports[0].n_txq()), (1, 1));
        assert_eq!((ports[1].n_rxq(), ports[1].n_txq()), (0, 1));
        assert!(ports[1].rx_fd(0).is_none());
        let mut pool = PacketPool::new(PoolConfig {
            n_buffers: 8,
            ..PoolConfig::default()
        })
        .unwrap();
        let mut batch = PacketBatch::new();
        // Polling it anyway is harmless.
        assert_eq!(ports[1].rx_burst(0, &mut pool, &mut batch), 0);
        let peer = RawSock::bind("vb");
        exercise(&mut ports, &peer, PortKind::SystemAfXdp);
    });
}
