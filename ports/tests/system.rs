//! `system` port mode selection on a veth pair inside a private network namespace.

use std::time::Duration;

use ports::{
    PacketBatch, PacketPool, PoolConfig, Port, PortKind, SystemConfig, SystemMode, SystemPort,
    TapConfig, TapPort,
};
use testkit::netns::{Netns, RawSock};
use testkit::packet::sample::{is_test_frame, test_frame, MAC_A, MAC_B};
use testkit::require::{can_run, Need};
use testkit::wait::wait_until;

/// One frame each way through `port` (on `va`, peer socket on `vb`); returns whether the
/// received packet carried a virtio-net header.
fn exchange(port: &mut SystemPort) -> bool {
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
    let vnet = batch.get(0).unwrap().vnet.is_some();
    port.tx_burst(0, &mut pool, &mut batch);
    assert_eq!(peer.recv_test_frames(1, Duration::from_secs(5)), vec![f]);
    let s = port.stats();
    assert_eq!((s.rx_packets, s.tx_packets), (1, 1));
    vnet
}

#[test]
fn auto_picks_afpacket_on_veth() {
    if !can_run("auto_picks_afpacket_on_veth", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(|| {
        assert_eq!(ports::NetDev::new("va").unwrap().driver().unwrap(), "veth");
        let mut c = SystemConfig::new("va");
        // Auto insists on the header even if the AF_PACKET settings say otherwise.
        c.afpacket.vnet_hdr = false;
        let mut port = SystemPort::open(&c).unwrap();
        assert_eq!(port.kind(), PortKind::SystemAfPacket);
        assert_eq!(port.fallback_reason(), None);
        assert!(
            port.selection_reason().contains("veth"),
            "{}",
            port.selection_reason()
        );
        assert!(exchange(&mut port), "AF_PACKET with the virtio-net header");
        // Every instance made the same choice.
        let v = SystemPort::open_instances(&c, 2).unwrap();
        assert!(v.iter().all(|p| p.kind() == PortKind::SystemAfPacket));
    });
}

#[test]
fn explicit_afxdp_is_honoured_on_veth() {
    if !can_run("explicit_afxdp_is_honoured_on_veth", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(|| {
        let mut c = SystemConfig::new("va");
        c.mode = SystemMode::AfXdp;
        let mut port = SystemPort::open(&c).unwrap();
        assert_eq!(port.kind(), PortKind::SystemAfXdp);
        assert_eq!(port.selection_reason(), "mode afxdp requested");
        exchange(&mut port);
    });
}

/// A tap interface `d0` (driver `tun`, not veth) for the AF_XDP side of `auto`; the device
/// goes away with the returned handle.
fn non_veth() -> TapPort {
    TapPort::open(&TapConfig::new("d0")).unwrap()
}

#[test]
fn auto_prefers_afxdp_off_veth() {
    if !can_run("auto_prefers_afxdp_off_veth", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let _tap = non_veth();
        let port = SystemPort::open(&SystemConfig::new("d0")).unwrap();
        assert_eq!(port.kind(), PortKind::SystemAfXdp);
        assert_eq!(port.fallback_reason(), None);
        assert!(
            port.selection_reason().contains("driver tun"),
            "{}",
            port.selection_reason()
        );
    });
}

#[test]
fn afpacket_mode_is_honoured() {
    if !can_run("afpacket_mode_is_honoured", &[Need::Netns]) {
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
    if !can_run("auto_falls_back_to_afpacket_and_says_why", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let _tap = non_veth();
        let mut c = SystemConfig::new("d0");
        // An AF_XDP setting the kernel refuses forces the fallback.
        c.afxdp.frame_size = 1000;
        let port = SystemPort::open(&c).unwrap();
        assert_eq!(port.kind(), PortKind::SystemAfPacket);
        assert!(port
            .fallback_reason()
            .unwrap()
            .contains("AF_XDP unavailable"));
        assert!(port.selection_reason().contains("fell back to AF_PACKET"));
        // Forcing AF_XDP with the same setting fails instead.
        c.mode = SystemMode::AfXdp;
        assert!(SystemPort::open(&c).is_err());
    });
}
