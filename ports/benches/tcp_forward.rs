//! TCP throughput through two AF_PACKET ports with virtio-net headers, forwarded by one thread
//! between two namespaces (the topology of the `tcp_forward` test): 64 KB GSO segments cross
//! whole. Each round sends a fixed amount over a fresh connection; the median rate is reported.
//! Needs root (namespaces); skips otherwise.
//!
//! `cargo bench -p ports --bench tcp_forward`

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ports::{AfPacketConfig, AfPacketPort, PacketBatch, PacketPool, PoolConfig, Port};
use testkit::netns::TcpTopology;
use testkit::require::{can_run, Need};
use util::{report, Plan};

fn main() {
    let plan = Plan::from_args(5, Duration::ZERO);
    // 256 MB per round takes a fraction of a second at the rates seen so far; the smoke run
    // only checks that the path works.
    let per_round: usize = if plan.full { 256 << 20 } else { 4 << 20 };
    // Stop early if rounds turn out slow, so the bench stays a few seconds long.
    let budget = Duration::from_secs(10);
    if !can_run("tcp_forward", &[Need::Netns]) {
        return;
    }
    let t = TcpTopology::new();
    let fwd = t.start_switch(forward);
    let start = Instant::now();
    let mut samples = Vec::new();
    if plan.full {
        // Warm-up connection (ARP, page cache of the socket buffers).
        let (_, ok) = t.transfer(16 << 20);
        assert!(ok, "bytes arrived intact");
    }
    while samples.len() < plan.rounds && start.elapsed() < budget {
        let (elapsed, ok) = t.transfer(per_round);
        assert!(ok, "bytes arrived intact");
        samples.push(per_round as f64 * 8.0 / elapsed.as_secs_f64() / 1e9);
    }
    let (pkts, gso) = fwd.stop();
    report(
        &format!(
            "TCP through AF_PACKET+vnet forwarder, {} MB per round",
            per_round >> 20
        ),
        "Gbit/s",
        &samples,
        &plan,
    );
    println!("  forwarded {pkts} packets, {gso} of them GSO");
}

/// The switch of the topology: two AF_PACKET ports with virtio-net headers on s0 and s1,
/// forwarding s0 ⇄ s1 until `stop`; returns (packets forwarded, GSO packets among them).
/// (The same loop as the `tcp_forward` test's: a bench cannot share a test's modules.)
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
