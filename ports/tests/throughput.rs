//! Rough packet rates of the kernel-socket ports on a veth pair (run with `--ignored`, ideally
//! in release mode). One thread alternates `tx_burst` on one end and `rx_burst` on the other, so
//! the figure is a single core doing both sides' work.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ports::{
    AfPacketConfig, AfPacketPort, AfXdpConfig, AfXdpPort, PacketBatch, PacketPool, PoolConfig,
    Port, BATCH_SIZE,
};

fn measure(tx: &mut dyn Port, rx: &mut dyn Port, len: usize) -> (f64, u64) {
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 4096,
        ..PoolConfig::default()
    })
    .unwrap();
    let frame = test_frame(MAC_A, MAC_B, 0, len);
    let mut out = PacketBatch::new();
    let mut inb = PacketBatch::new();
    let mut received = 0u64;
    // Warm up, then measure for one second.
    let mut start = Instant::now();
    let mut warm = true;
    loop {
        while !out.is_full() {
            let mut p = pool.alloc().unwrap();
            p.set_data(&frame);
            out.push(p).unwrap();
        }
        tx.tx_burst(0, &mut pool, &mut out);
        for _ in 0..4 {
            let n = rx.rx_burst(0, &mut pool, &mut inb);
            received += n as u64;
            pool.free_batch(&mut inb);
            if n < BATCH_SIZE {
                break;
            }
        }
        let el = start.elapsed();
        if warm && el > Duration::from_millis(200) {
            warm = false;
            received = 0;
            start = Instant::now();
        } else if !warm && el > Duration::from_secs(1) {
            return (received as f64 / el.as_secs_f64() / 1e6, received);
        }
    }
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn veth_throughput() {
    if !can_run("veth_throughput") {
        return;
    }
    let ns = Netns::new();
    ns.veth("va", "vb");
    ns.run(|| {
        for len in [64, 1500] {
            let mut a = AfPacketPort::open(&AfPacketConfig::new("va")).unwrap();
            let mut b = AfPacketPort::open(&AfPacketConfig::new("vb")).unwrap();
            let (mpps, n) = measure(&mut a, &mut b, len);
            eprintln!("AF_PACKET → AF_PACKET, {len} B: {mpps:.3} Mpps ({n} frames)");
            drop((a, b));
            let mut a = AfXdpPort::open(&AfXdpConfig::new("va")).unwrap();
            let mut b = AfXdpPort::open(&AfXdpConfig::new("vb")).unwrap();
            let (mpps, n) = measure(&mut a, &mut b, len);
            eprintln!(
                "AF_XDP ({:?}) → AF_XDP ({:?}), {len} B: {mpps:.3} Mpps ({n} frames)",
                a.xdp_mode(),
                b.xdp_mode()
            );
        }
    });
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn pool_alloc_free_cost() {
    let mut pool = PacketPool::new(PoolConfig::default()).unwrap();
    let mut batch = PacketBatch::new();
    let rounds = 1_000_000u32;
    let start = Instant::now();
    for _ in 0..rounds {
        while !batch.is_full() {
            let p = pool.alloc().unwrap();
            let _ = batch.push(p);
        }
        pool.free_batch(&mut batch);
    }
    let per = start.elapsed().as_nanos() as f64 / (rounds as f64 * BATCH_SIZE as f64);
    eprintln!("pool alloc + batch push + free: {per:.2} ns per packet");
}
