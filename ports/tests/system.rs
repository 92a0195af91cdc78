//! `system` port mode selection on a veth pair inside a private network namespace.

mod common;

use std::time::Duration;

use common::*;
use ports::{
    PacketBatch, PacketPool, PoolConfig, Port, PortKind, SystemConfig, SystemMode, SystemPort,
};

/// One frame each way through `port` (on `va`, peer socket on `vb`).
fn exchange(port: &mut SystemPort) {
    let peer = RawSock::bind("vb");
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 32,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut batch = PacketBatch::new();
    let f = test_frame(MAC_A, MAC_B, 1, 128);
    peer.send(&f);
    assert!(wait_until(Duration::from_secs(5), || {
        port.rx_burst(0, &mut pool, &mut batch);
        batch.retain(|p| is_test_frame(p.data()), |_| {});
        !batch.is_empty()
    }));
    assert_eq!(batch.get(0).unwrap().data(), &f[..]);
    port.tx_burst(0, &mut pool, &mut batch);
    assert_eq!(peer.recv_test_frames(1, Duration::from_secs(5)), vec![f]);
    let s = port.stats();
    assert_eq!((s.rx_packets, s.tx_packets), (1, 1));
}

#[test]
fn auto_prefers_afxdp() {
    if !can_run("auto_prefers_afxdp") {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(|| {
        let mut port = SystemPort::open(&SystemConfig::new("va")).unwrap();
        assert_eq!(port.kind(), PortKind::SystemAfXdp);
        assert_eq!(port.fallback_reason(), None);
        exchange(&mut port);
    });
}

#[test]
fn afpacket_mode_is_honoured() {
    if !can_run("afpacket_mode_is_honoured") {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(|| {
        let mut c = SystemConfig::new("va");
        c.mode = "afpacket".parse::<SystemMode>().unwrap();
        let mut port = SystemPort::open(&c).unwrap();
        assert_eq!(port.kind(), PortKind::SystemAfPacket);
        exchange(&mut port);
    });
}

#[test]
fn auto_falls_back_to_afpacket_and_says_why() {
    if !can_run("auto_falls_back_to_afpacket_and_says_why") {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(|| {
        let mut c = SystemConfig::new("va");
        // An AF_XDP setting the kernel refuses forces the fallback.
        c.afxdp.frame_size = 1000;
        let mut port = SystemPort::open(&c).unwrap();
        assert_eq!(port.kind(), PortKind::SystemAfPacket);
        assert!(port
            .fallback_reason()
            .unwrap()
            .contains("AF_XDP unavailable"));
        exchange(&mut port);
        // Forcing AF_XDP with the same setting fails instead.
        c.mode = SystemMode::AfXdp;
        assert!(SystemPort::open(&c).is_err());
    });
}
