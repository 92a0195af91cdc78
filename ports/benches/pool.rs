//! Cost of the packet pool's fast path: allocate a burst of buffers into a batch and free the
//! batch again, as a PMD does for every burst. No privileges needed.
//!
//! `cargo bench -p ports --bench pool`

mod util;

use std::time::{Duration, Instant};

use ports::{PacketBatch, PacketPool, PoolConfig, BATCH_SIZE};
use util::{report, Plan};

/// Runs alloc+push+free bursts for `time`; returns ns per packet.
fn round(pool: &mut PacketPool, batch: &mut PacketBatch, time: Duration) -> f64 {
    let start = Instant::now();
    let mut bursts = 0u64;
    // Check the clock every 1024 bursts so reading it does not weigh on the figure.
    while start.elapsed() < time {
        for _ in 0..1024 {
            while !batch.is_full() {
                let p = pool.alloc().expect("pool larger than a batch");
                let _ = batch.push(p);
            }
            pool.free_batch(batch);
        }
        bursts += 1024;
    }
    start.elapsed().as_nanos() as f64 / (bursts as f64 * BATCH_SIZE as f64)
}

fn main() {
    let plan = Plan::from_args(7, Duration::from_millis(200));
    let mut pool = PacketPool::new(PoolConfig::default()).expect("pool");
    let mut batch = PacketBatch::new();
    round(&mut pool, &mut batch, plan.warmup);
    let samples: Vec<f64> = (0..plan.rounds)
        .map(|_| round(&mut pool, &mut batch, plan.round_time))
        .collect();
    report(
        "pool alloc + batch push + free",
        "ns/packet",
        &samples,
        &plan,
    );
}
