//! Micro-benchmarks of the flow table, per batch of 32 packets (divide by 32 for ns/packet;
//! criterion's throughput line reports packets per second directly).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flow_table::key::ethertype;
use flow_table::{
    extract_into, CacheConfig, FlowCache, FlowKey, FlowMask, MacAddr, Match, MegaflowCache,
    RuleChange, RuleTables,
};
use vswitch_benches::{
    bridge_rules, keys_of, megaflow_workload, output_translation, tcp6_frames, udp4_frames,
    vlan_udp4_frames, BATCH,
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

/// The key of megaflow `(src, dst)` of the invalidation benchmark.
fn inval_key(src: u32, dst: u32) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = 1;
    k.eth_type = ethertype::IPV4;
    k.nw_src = 0x0a00_0000 | src;
    k.nw_dst = 0x0b00_0000 | dst;
    k
}

/// A change of the exact `nw_dst` rule for destination `dst` of [`inval_key`], in table 0.
fn inval_change(dst: u32) -> RuleChange {
    RuleChange {
        table: 0,
        r#match: Match::any()
            .eth_type(ethertype::IPV4)
            .nw_dst((0x0b00_0000 | dst).into(), 32),
    }
}

/// Rule-change invalidation with 10k megaflows cached (100 sources × 100 destinations, exact
/// on port, type and both addresses, as an ACL on addresses leaves them): one changed exact
/// `nw_dst` rule (which hits the 100 megaflows of its destination), and 1000 of them (10 of
/// which hit, 1000 megaflows in all). The removed megaflows are put back between iterations,
/// outside the timing, so every iteration sees the same 10k.
fn invalidate(c: &mut Criterion) {
    let mut mask = FlowMask::EMPTY;
    mask.0.in_port = u32::MAX;
    mask.0.eth_type = 0xffff;
    mask.0.nw_src = u32::MAX;
    mask.0.nw_dst = u32::MAX;
    let x = output_translation(mask);
    let mut cache = MegaflowCache::new(usize::MAX);
    for src in 0..100 {
        for dst in 0..100 {
            cache.insert(&inval_key(src, dst), &x, 0).unwrap();
        }
    }
    let one = vec![inval_change(7)];
    // 10 destinations in the cache (every 100th change), 990 that are not.
    let many: Vec<RuleChange> = (0..1000)
        .map(|i| inval_change(if i % 100 == 0 { i / 100 } else { 1000 + i }))
        .collect();
    let mut g = c.benchmark_group("invalidate");
    for (name, changes, dsts) in [
        ("10k_flows_1_change", &one, vec![7]),
        ("10k_flows_1000_changes", &many, (0..10).collect()),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let n = cache.invalidate(black_box(changes));
                    total += start.elapsed();
                    assert_eq!(n, 100 * dsts.len());
                    for &dst in &dsts {
                        for src in 0..100 {
                            cache.insert(&inval_key(src, dst), &x, 0).unwrap();
                        }
                    }
                }
                total
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
    targets = extraction, emc_hit, megaflow_hit, upcall_install, rule_lookup, invalidate
}
criterion_main!(benches);
