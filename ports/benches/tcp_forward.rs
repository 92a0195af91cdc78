//! TCP throughput through two AF_PACKET ports with virtio-net headers, forwarded by one thread
//! between two namespaces (the topology of the `tcp_forward` test): 64 KB GSO segments cross
//! whole. Each round sends a fixed amount over a fresh connection; the median rate is reported.
//! Needs root (namespaces); skips otherwise.
//!
//! `cargo bench -p ports --bench tcp_forward`

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../tests/common/tcp_forward.rs"]
mod tcp;

mod util;

use std::time::{Duration, Instant};

use common::*;
use util::{report, Plan};

fn main() {
    let plan = Plan::from_args(5, Duration::ZERO);
    // 256 MB per round takes a fraction of a second at the rates seen so far; the smoke run
    // only checks that the path works.
    let per_round: usize = if plan.full { 256 << 20 } else { 4 << 20 };
    // Stop early if rounds turn out slow, so the bench stays a few seconds long.
    let budget = Duration::from_secs(10);
    if !can_run("tcp_forward") {
        return;
    }
    let t = tcp::topology();
    let fwd = tcp::Forwarder::start(&t);
    let start = Instant::now();
    let mut samples = Vec::new();
    if plan.full {
        // Warm-up connection (ARP, page cache of the socket buffers).
        let (_, ok) = tcp::transfer(&t, 16 << 20);
        assert!(ok, "bytes arrived intact");
    }
    while samples.len() < plan.rounds && start.elapsed() < budget {
        let (elapsed, ok) = tcp::transfer(&t, per_round);
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
