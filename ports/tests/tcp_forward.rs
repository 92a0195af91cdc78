//! A TCP stream forwarded between two namespaces by two AF_PACKET ports with virtio-net headers:
//! proves that checksum and GSO offload metadata travel with the packets (64 KB TCP segments
//! cross whole and arrive with correct checksums). The throughput of the same setup is measured
//! by the `tcp_forward` bench, not here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ports::{AfPacketConfig, AfPacketPort, PacketBatch, PacketPool, PoolConfig, Port};
use testkit::netns::TcpTopology;
use testkit::require::{can_run, Need};

#[test]
fn tcp_crosses_afpacket_ports_with_offloads() {
    if !can_run("tcp_crosses_afpacket_ports_with_offloads", &[Need::Netns]) {
        return;
    }
    let t = TcpTopology::new();
    let fwd = t.start_switch(forward);
    let (_, ok) = t.transfer(32 << 20);
    let (pkts, gso) = fwd.stop();
    assert!(ok, "bytes arrived intact");
    assert!(
        gso > 0,
        "GSO segments crossed whole ({pkts} packets forwarded)"
    );
}

/// The switch of the topology: two AF_PACKET ports with virtio-net headers on s0 and s1,
/// forwarding s0 ⇄ s1 until `stop`; returns (packets forwarded, GSO packets among them).
fn forward(stop: Arc<AtomicBool>) -> (u64, u64) {
    let cfg = |name: &str| {
        let mut c = AfPacketConfig::new(name);
        // Blocks and buffers large enough for a 64 KB GSO frame.
        c.block_size = 1 << 18;
        c.block_count = 16;
        c
    };
    let mut ports = [
        AfPacketPort::open(&cfg("s0")).unwrap(),
        AfPacketPort::open(&cfg("s1")).unwrap(),
    ];
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 256,
        data_room: 65536 + 128,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut batch = PacketBatch::new();
    let (mut fwd, mut gso) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for i in 0..2 {
            let n = ports[i].rx_burst(0, &mut pool, &mut batch);
            if n > 0 {
                idle = false;
                fwd += n as u64;
                gso += batch
                    .iter()
                    .filter(|p| p.vnet.is_some_and(|v| v.gso_type != 0))
                    .count() as u64;
                ports[1 - i].tx_burst(0, &mut pool, &mut batch);
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    (fwd, gso)
}
