//! Packet rates of the kernel-socket ports on a veth pair inside a private network namespace.
//! One thread alternates `tx_burst` on one end and `rx_burst` on the other, so each figure is a
//! single core doing both sides' work. Needs root (namespaces, AF_XDP); skips otherwise.
//!
//! `cargo bench -p ports --bench veth_throughput`

mod util;

use std::time::{Duration, Instant};

use ports::{
    AfPacketConfig, AfPacketPort, AfXdpConfig, AfXdpPort, PacketBatch, PacketPool, PoolConfig,
    Port, BATCH_SIZE,
};
use testkit::netns::Netns;
use testkit::packet::sample::{test_frame, MAC_A, MAC_B};
use testkit::require::{can_run, Need};
use util::{report, Plan};

/// Sends `frame` from `tx` and receives on `rx` for `time`; returns Mpps received.
fn round(
    tx: &mut dyn Port,
    rx: &mut dyn Port,
    pool: &mut PacketPool,
    frame: &[u8],
    time: Duration,
) -> f64 {
    let mut out = PacketBatch::new();
    let mut inb = PacketBatch::new();
    let mut received = 0u64;
    let start = Instant::now();
    while start.elapsed() < time {
        while !out.is_full() {
            let mut p = pool.alloc().expect("pool buffer");
            p.set_data(frame);
            out.push(p).expect("batch room");
        }
        tx.tx_burst(0, pool, &mut out);
        for _ in 0..4 {
            let n = rx.rx_burst(0, pool, &mut inb);
            received += n as u64;
            pool.free_batch(&mut inb);
            if n < BATCH_SIZE {
                break;
            }
        }
    }
    received as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn measure(what: &str, tx: &mut dyn Port, rx: &mut dyn Port, len: usize, plan: &Plan) {
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 4096,
        ..PoolConfig::default()
    })
    .expect("pool");
    let frame = test_frame(MAC_A, MAC_B, 0, len);
    round(tx, rx, &mut pool, &frame, plan.warmup);
    let samples: Vec<f64> = (0..plan.rounds)
        .map(|_| round(tx, rx, &mut pool, &frame, plan.round_time))
        .collect();
    report(&format!("{what}, {len} B"), "Mpps", &samples, plan);
}

fn main() {
    let plan = Plan::from_args(5, Duration::from_millis(200));
    if !can_run("veth_throughput", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(move || {
        for len in [64, 1500] {
            let mut a = AfPacketPort::open(&AfPacketConfig::new("va")).expect("AF_PACKET va");
            let mut b = AfPacketPort::open(&AfPacketConfig::new("vb")).expect("AF_PACKET vb");
            measure("AF_PACKET → AF_PACKET", &mut a, &mut b, len, &plan);
            drop((a, b));
            let mut a = AfXdpPort::open(&AfXdpConfig::new("va")).expect("AF_XDP va");
            let mut b = AfXdpPort::open(&AfXdpConfig::new("vb")).expect("AF_XDP vb");
            let what = format!("AF_XDP ({:?}) → AF_XDP ({:?})", a.xdp_mode(), b.xdp_mode());
            measure(&what, &mut a, &mut b, len, &plan);
        }
    });
}
