//! Micro-benchmarks of the flow table, per batch of 32 packets (divide by 32 for ns/packet;
//! criterion's throughput line reports packets per second directly).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flow_table::{extract_into, CacheConfig, FlowCache, FlowKey, FlowMask, MacAddr, RuleTables};
use vswitch_benches::{
    bridge_rules, keys_of, megaflow_workload, tcp6_frames, udp4_frames, vlan_udp4_frames, BATCH,
};

fn extraction(c: &mut Criterion) {
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, frames) in [
        ("eth_ipv4_udp", udp4_frames()),
        ("eth_ipv6_tcp", tcp6_frames()),
        ("eth_vlan_ipv4_udp", vlan_udp4_frames()),
    ] {
        let mut keys = vec![FlowKey::ZERO; BATCH];
        g.bench_function(name, |b| {
            b.iter(|| {
                for (f, k) in frames.iter().zip(keys.iter_mut()) {
                    extract_into(black_box(f), 1, k);
                }
                black_box(&keys);
            })
        });
    }
    g.finish();
}

fn emc_hit(c: &mut Criterion) {
    let tables = bridge_rules(10);
    let mut cache = FlowCache::new(CacheConfig {
        emc_insert_inv_prob: 1,
        ..CacheConfig::default()
    });
    let keys = keys_of(&udp4_frames());
    for k in &keys {
        cache.lookup(k, k.hash(), &tables, 0);
    }
    let mut g = c.benchmark_group("emc");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("hit", |b| {
        b.iter(|| {
            let mut n = 0;
            for k in &keys {
                let k = black_box(k);
                // Hash + EMC probe + check that the megaflow still exists: what a PMD pays.
                if let Some(r) = cache.emc.lookup(k, k.hash()) {
                    n += cache.megaflows.get(r).is_some() as usize;
                }
            }
            assert_eq!(n, BATCH);
        })
    });
    g.finish();
}

fn megaflow_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("megaflow_hit");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [1, 10, 50] {
        let (mut cache, keys) = megaflow_workload(n, 1000);
        g.bench_function(format!("{n}_subtables"), |b| {
            b.iter(|| {
                let mut hits = 0;
                for k in &keys {
                    hits += cache.lookup(black_box(k)).is_some() as usize;
                }
                assert_eq!(hits, BATCH);
            })
        });
    }
    g.finish();
}

fn upcall_install(c: &mut Criterion) {
    let mut g = c.benchmark_group("upcall");
    g.throughput(Throughput::Elements(BATCH as u64));
    let tables: RuleTables = bridge_rules(1000);
    // Every packet is a new flow: distinct source ports make distinct exact keys, and distinct
    // destinations under the NORMAL rule make distinct megaflows (NORMAL reads the MACs).
    let mut next: u64 = 0;
    let mut fresh_batch = move || {
        (0..BATCH)
            .map(|_| {
                next += 1;
                let mut k = FlowKey::ZERO;
                k.in_port = 1;
                k.eth_type = 0x0800;
                k.eth_dst = MacAddr([
                    2,
                    0,
                    (next >> 24) as u8,
                    (next >> 16) as u8,
                    (next >> 8) as u8,
                    next as u8,
                ]);
                k.eth_src = MacAddr([2, 0, 0, 0, 0, 1]);
                k.nw_proto = 17;
                k.nw_src = 0x0a00_0001;
                k.nw_dst = 0x0b00_0001;
                k.tp_src = next as u16;
                k.tp_dst = 53;
                k
            })
            .collect::<Vec<_>>()
    };
    g.bench_function("translate_and_install", |b| {
        b.iter_custom(|iters| {
            let mut cache = FlowCache::default();
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if cache.megaflows.len() + BATCH > cache.megaflows.limit() {
                    cache.flush();
                }
                let batch = fresh_batch();
                let start = Instant::now();
                for k in &batch {
                    black_box(cache.lookup(k, k.hash(), &tables, 0));
                }
                total += start.elapsed();
            }
            assert_eq!(cache.stats.lost, 0);
            total
        })
    });
    g.finish();
}

/// `RuleTables::lookup` alone (the classifier step of an upcall), in a table of `n` exact /32
/// UDP rules plus a few prefix rules (900k: under the default cap of a million): keys that hit spread over the whole table, so large
/// tables also pay the cache misses of a big index.
fn rule_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("rule_lookup");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [1_000u32, 100_000, 900_000] {
        let tables = bridge_rules(n);
        let keys: Vec<Vec<FlowKey>> = (0..64u32)
            .map(|b| {
                (0..BATCH as u32)
                    .map(|i| {
                        let j = (b * BATCH as u32 + i).wrapping_mul(2_654_435_761) % n;
                        let mut k = FlowKey::ZERO;
                        k.in_port = 1;
                        k.eth_type = 0x0800;
                        k.nw_proto = 17;
                        k.nw_src = 0x0a00_0001;
                        k.nw_dst = 0xc0a8_0000 + j;
                        k.tp_src = 1000;
                        k.tp_dst = 53;
                        k
                    })
                    .collect()
            })
            .collect();
        let mut next = 0;
        g.bench_function(format!("{n}_rules"), |b| {
            b.iter(|| {
                let batch = &keys[next % keys.len()];
                next += 1;
                let mut hits = 0;
                for k in batch {
                    let mut consulted = FlowMask::EMPTY;
                    hits += tables.lookup(0, black_box(k), &mut consulted).is_some() as usize;
                    black_box(&consulted);
                }
                assert_eq!(hits, BATCH);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots();
    targets = extraction, emc_hit, megaflow_hit, upcall_install, rule_lookup
}
criterion_main!(benches);
