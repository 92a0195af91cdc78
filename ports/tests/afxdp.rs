//! AF_XDP system ports on a veth pair inside a private network namespace: the port sits on `va`,
//! a raw socket on the peer `vb` plays the wire.

use std::time::Duration;

use ports::{AfXdpConfig, AfXdpPort, PacketBatch, PacketPool, PoolConfig, Port, PortKind, XdpMode};
use testkit::netns::{Netns, RawSock};
use testkit::packet::sample::{is_test_frame, seq_of, test_frame, MAC_A, MAC_B};
use testkit::require::{can_run, Need};
use testkit::wait::wait_until;

fn pool(n: usize) -> PacketPool {
    PacketPool::new(PoolConfig {
        n_buffers: n,
        ..PoolConfig::default()
    })
    .unwrap()
}

fn rx_frames(port: &mut dyn Port, pool: &mut PacketPool, want: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut batch = PacketBatch::new();
    wait_until(Duration::from_secs(5), || {
        port.rx_burst(0, pool, &mut batch);
        assert!(batch.len() <= 32);
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

/// Whether the XDP program is attached to `ifname` (as `ip link` shows it).
fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["-n", &ns.name, "-d", "link", "show", ifname])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    s.contains("prog/xdp")
}

fn round_trip(mode: XdpMode) {
    let ns = Netns::new();
    ns.veth("va", "vb");
    let ns_name = ns.name.clone();
    let attached = ns.run(move || {
        let mut cfg = AfXdpConfig::new("va");
        cfg.mode = Some(mode);
        let mut port = match AfXdpPort::open(&cfg) {
            Ok(p) => p,
            Err(e) => panic!("AF_XDP open ({mode:?}) failed on {ns_name}: {e}"),
        };
        assert_eq!(port.kind(), PortKind::SystemAfXdp);
        assert_eq!(port.xdp_mode(), mode);
        assert_eq!(port.n_rxq(), 1);
        port.set_port_no(9);
        let peer = RawSock::bind("vb");
        let mut pool = pool(256);

        let frames: Vec<Vec<u8>> = (0..100)
            .map(|i| test_frame(MAC_A, MAC_B, i, 60 + (i as usize * 53) % 1440))
            .collect();
        for f in &frames {
            peer.send(f);
        }
        let got = rx_frames(&mut port, &mut pool, 100);
        assert_eq!(got, frames);
        let s = port.stats();
        assert_eq!(s.rx_packets, 100);
        assert_eq!(
            s.rx_bytes,
            frames.iter().map(|f| f.len() as u64).sum::<u64>()
        );
        assert_eq!(pool.available(), 256);

        let out: Vec<Vec<u8>> = (0..64)
            .map(|i| test_frame(MAC_B, MAC_A, 500 + i, 300))
            .collect();
        let mut batch = PacketBatch::new();
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
        let seen = peer.recv_test_frames(64, Duration::from_secs(5));
        assert_eq!(seen, out);
        let s = port.stats();
        assert_eq!((s.tx_packets, s.tx_bytes, s.tx_dropped), (64, 64 * 300, 0));
        port
    });
    assert!(
        xdp_attached(&ns, "va"),
        "program attached while the port lives"
    );
    drop(attached);
    assert!(
        !xdp_attached(&ns, "va"),
        "program detached when the port is dropped"
    );
}

#[test]
fn afxdp_skb_mode_round_trip() {
    if !can_run("afxdp_skb_mode_round_trip", &[Need::Netns]) {
        return;
    }
    round_trip(XdpMode::Skb);
}

#[test]
fn afxdp_driver_mode_round_trip() {
    if !can_run("afxdp_driver_mode_round_trip", &[Need::Netns]) {
        return;
    }
    round_trip(XdpMode::Driver);
}

#[test]
fn afxdp_pool_exhaustion_drops_and_counts() {
    if !can_run("afxdp_pool_exhaustion_drops_and_counts", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(|| {
        let mut port = AfXdpPort::open(&AfXdpConfig::new("va")).unwrap();
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
        pool.free_batch(&mut batch);
        peer.send(&test_frame(MAC_A, MAC_B, 99, 64));
        let got = rx_frames(&mut port, &mut pool, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(seq_of(&got[0]), 99);
    });
}

#[test]
fn afxdp_opens_every_queue() {
    if !can_run("afxdp_opens_every_queue", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.veth_mq("va", "vb", 2);
    ns.run(|| {
        let mut port = AfXdpPort::open(&AfXdpConfig::new("va")).unwrap();
        assert_eq!((port.n_rxq(), port.n_txq()), (2, 2));
        assert!(port.rx_fd(1).is_some());
        let peer = RawSock::bind("vb");
        let mut pool = pool(256);
        let mut batch = PacketBatch::new();
        for i in 0..50 {
            peer.send(&test_frame(MAC_A, MAC_B, i, 64));
        }
        let mut seqs = Vec::new();
        wait_until(Duration::from_secs(5), || {
            for q in 0..2 {
                port.rx_burst(q, &mut pool, &mut batch);
                for p in batch.drain() {
                    if is_test_frame(p.data()) {
                        seqs.push(seq_of(p.data()));
                    }
                    pool.free(p);
                }
            }
            seqs.len() >= 50
        });
        seqs.sort();
        assert_eq!(seqs, (0..50).collect::<Vec<_>>());
        // Transmit works on either queue.
        for q in 0..2 {
            let mut p = pool.alloc().unwrap();
            assert!(p.set_data(&test_frame(MAC_B, MAC_A, 100 + q as u32, 64)));
            batch.push(p).unwrap();
            port.tx_burst(q, &mut pool, &mut batch);
        }
        let got = peer.recv_test_frames(2, Duration::from_secs(5));
        assert_eq!(got.len(), 2);
        assert_eq!(pool.available(), 256);
    });
}

#[test]
fn afxdp_port_can_be_reopened_at_once() {
    if !can_run("afxdp_port_can_be_reopened_at_once", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(|| {
        for _ in 0..3 {
            let mut c = AfXdpConfig::new("va");
            c.mode = Some(XdpMode::Skb);
            let port = AfXdpPort::open(&c).expect("reopen right after close");
            drop(port);
        }
    });
}
