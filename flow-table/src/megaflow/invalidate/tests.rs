//! Invalidation through subtables and indexes removes exactly what comparing every megaflow with
//! every change removes, however the cache got to its state.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::key::ethertype;
use crate::matches::Match;
use crate::megaflow::FlowRef;
use crate::upcall::Translation;

/// The megaflows that invalidation removed before it went through subtables: every megaflow
/// compared with every change. The reference the other strategies must agree with.
fn reference(c: &MegaflowCache, changes: &[RuleChange]) -> HashSet<FlowRef> {
    let mut doomed = HashSet::new();
    for (i, slot) in c.slots.iter().enumerate() {
        let Some(flow) = &slot.flow else { continue };
        let mask = &c.subtables[flow.subtable as usize]
            .as_ref()
            .expect("live subtable")
            .mask;
        let hit = flow.tainted
            || changes.iter().any(|c| {
                flow.tables & table_bit(c.table) != 0 && c.r#match.overlaps(&slot.key, mask)
            });
        if hit {
            doomed.insert(FlowRef {
                idx: i as u32,
                version: slot.version,
            });
        }
    }
    doomed
}

fn installed(c: &MegaflowCache) -> HashSet<FlowRef> {
    c.iter().map(|(r, ..)| r).collect()
}

/// How a test has the cache find the megaflows to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// As [`MegaflowCache::invalidate`] chooses.
    Auto,
    /// Every megaflow compared with every change.
    Scan,
    /// Subtable by subtable, whatever the sizes.
    Indexed,
}

/// Invalidates with `how` and checks that exactly the reference's megaflows went.
fn check(c: &mut MegaflowCache, changes: &[RuleChange], how: Method) -> usize {
    let expect = reference(c, changes);
    let before = installed(c);
    let n = match how {
        Method::Auto => c.invalidate(changes),
        Method::Scan => c.invalidate_by(changes, true),
        Method::Indexed => c.invalidate_by(changes, false),
    };
    let after = installed(c);
    let removed: HashSet<FlowRef> = before.difference(&after).copied().collect();
    assert_eq!(removed, expect, "{how:?} with {changes:?}");
    assert_eq!(n, expect.len());
    assert!(c.tainted.is_empty() && c.n_tainted == 0);
    n
}

/// Megaflow masks: exact addresses, destination only, a /24 destination with protocol and
/// port, and the port alone.
fn masks() -> [FlowMask; 4] {
    let mut m = [FlowMask::EMPTY; 4];
    m[0].0.in_port = u32::MAX;
    m[0].0.eth_type = 0xffff;
    m[0].0.nw_src = u32::MAX;
    m[0].0.nw_dst = u32::MAX;
    m[1].0.in_port = u32::MAX;
    m[1].0.eth_type = 0xffff;
    m[1].0.nw_dst = u32::MAX;
    m[2].0.eth_type = 0xffff;
    m[2].0.nw_proto = 0xff;
    m[2].0.nw_dst = 0xffff_ff00;
    m[2].0.tp_dst = 0xffff;
    m[3].0.in_port = u32::MAX;
    m
}

/// Field values from small ranges, so that megaflows and rules often share projections.
#[derive(Clone, Copy, Debug)]
struct Vals {
    in_port: u32,
    proto: u8,
    src: u32,
    dst: u32,
    tp_dst: u16,
}

fn vals() -> impl Strategy<Value = Vals> {
    (
        1..=3u32,
        prop_oneof![Just(6u8), Just(17)],
        0..8u32,
        0..16u32,
        0..3usize,
    )
        .prop_map(|(in_port, proto, src, dst, port)| Vals {
            in_port,
            proto,
            src: 0x0a00_0000 | src,
            // Two /24s of eight hosts.
            dst: 0x0a01_0000 | ((dst >> 3) << 8) | (dst & 7),
            tp_dst: [53, 80, 443][port],
        })
}

fn key_of(v: &Vals) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = v.in_port;
    k.eth_type = ethertype::IPV4;
    k.nw_proto = v.proto;
    k.nw_src = v.src;
    k.nw_dst = v.dst;
    k.tp_dst = v.tp_dst;
    k
}

/// A rule of one of several shapes: wider, narrower and crossing the megaflow masks (one on a
/// field no megaflow reads), so that every case of `M_r & F` comes up.
fn rule_match(shape: usize, v: &Vals) -> Match {
    let ip = Match::any().eth_type(ethertype::IPV4);
    let (src, dst) = (v.src.into(), v.dst.into());
    match shape {
        0 => Match::any(),
        1 => ip,
        2 => ip.nw_dst(dst, 32),
        3 => ip.nw_dst(dst, 24),
        4 => ip.nw_src(src, 32).nw_dst(dst, 32),
        5 => Match::any().in_port(v.in_port),
        6 => ip.nw_proto(v.proto).tp_dst(v.tp_dst),
        7 => ip.nw_src(src, 30),
        8 => ip.in_port(v.in_port).nw_src(src, 32).nw_dst(dst, 32),
        9 => ip.nw_dst(dst, 31).nw_proto(v.proto),
        _ => ip.tun_id(7).nw_dst(dst, 32),
    }
}

const SHAPES: usize = 11;

/// Tables a megaflow consulted: 0, 1, 0 and 1, 2, or a high one (bit 63).
const TABLE_SETS: [u64; 5] = [1, 2, 3, 4, 1 << 63];
/// Tables of changes (70 stands for the high tables).
const CHANGE_TABLES: [u8; 4] = [0, 1, 2, 70];

#[derive(Clone, Debug)]
enum Op {
    Insert {
        v: Vals,
        mask: usize,
        tables: usize,
        tainted: bool,
    },
    /// Removes the n-th installed megaflow (modulo their number).
    Remove(usize),
    /// Removes megaflows unused for this long (each op advances the clock by one).
    Expire(u64),
    Invalidate(Vec<(usize, Vals, usize)>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (vals(), 0..4usize, 0..TABLE_SETS.len(), prop::bool::weighted(0.05)).prop_map(
            |(v, mask, tables, tainted)| Op::Insert { v, mask, tables, tainted }
        ),
        2 => any::<usize>().prop_map(Op::Remove),
        1 => (20..200u64).prop_map(Op::Expire),
        // The shapes that match every IPv4 packet, which empty most of the cache, are rare.
        2 => prop::collection::vec(
            (prop_oneof![1 => 0..2usize, 12 => 2..SHAPES], vals(), 0..CHANGE_TABLES.len()),
            1..6,
        )
        .prop_map(Op::Invalidate),
    ]
}

fn translation(mask: FlowMask, tables: u64, tainted: bool) -> Translation {
    Translation {
        actions: Vec::new(),
        mask,
        rules: Vec::new(),
        tainted,
        tables,
        error: None,
        normal: false,
    }
}

fn run(ops: &[Op], how: Method) {
    let masks = masks();
    let mut c = MegaflowCache::new(usize::MAX);
    for (now, op) in ops.iter().enumerate() {
        let now = now as u64;
        match op {
            Op::Insert {
                v,
                mask,
                tables,
                tainted,
            } => {
                let x = translation(masks[*mask], TABLE_SETS[*tables], *tainted);
                c.insert(&key_of(v), &x, now).unwrap();
            }
            Op::Remove(n) => {
                let refs: Vec<FlowRef> = c.iter().map(|(r, ..)| r).collect();
                if !refs.is_empty() {
                    assert!(c.remove(refs[n % refs.len()]));
                }
            }
            Op::Expire(idle) => {
                c.expire_idle(now, *idle);
            }
            Op::Invalidate(list) => {
                let changes: Vec<RuleChange> = list
                    .iter()
                    .map(|(shape, v, t)| RuleChange {
                        table: CHANGE_TABLES[*t],
                        r#match: rule_match(*shape, v),
                    })
                    .collect();
                check(&mut c, &changes, how);
            }
        }
    }
    // And a last one that no index has seen the megaflows of.
    let all: Vec<RuleChange> = (0..SHAPES)
        .map(|shape| RuleChange {
            table: 0,
            r#match: rule_match(shape, &key_vals()),
        })
        .collect();
    check(&mut c, &all, how);
}

fn key_vals() -> Vals {
    Vals {
        in_port: 2,
        proto: 17,
        src: 0x0a00_0003,
        dst: 0x0a01_0105,
        tp_dst: 80,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn indexed_removes_exactly_what_the_scan_removes(
        ops in prop::collection::vec(op(), 1..400),
    ) {
        run(&ops, Method::Indexed);
    }

    #[test]
    fn every_strategy_removes_what_the_reference_removes(
        ops in prop::collection::vec(op(), 1..200),
        how in prop_oneof![Just(Method::Auto), Just(Method::Scan)],
    ) {
        run(&ops, how);
    }
}

/// A cache of `n` × `n` megaflows exact on both addresses, with their refs by (src, dst).
fn grid(n: u32) -> (MegaflowCache, Vec<Vec<FlowRef>>) {
    let x = translation(masks()[0], 1, false);
    let mut c = MegaflowCache::new(usize::MAX);
    let refs = (0..n)
        .map(|s| {
            (0..n)
                .map(|d| c.insert(&grid_key(s, d), &x, 0).unwrap())
                .collect()
        })
        .collect();
    (c, refs)
}

fn grid_key(src: u32, dst: u32) -> FlowKey {
    key_of(&Vals {
        in_port: 1,
        proto: 17,
        src: 0x0a00_0000 | src,
        dst: 0x0b00_0000 | dst,
        tp_dst: 53,
    })
}

fn dst_change(dst: u32) -> RuleChange {
    RuleChange {
        table: 0,
        r#match: Match::any()
            .eth_type(ethertype::IPV4)
            .nw_dst((0x0b00_0000 | dst).into(), 32),
    }
}

fn only_subtable(c: &MegaflowCache) -> &Subtable {
    assert_eq!(c.n_subtables(), 1);
    c.subtable(c.order[0])
}

#[test]
fn an_index_is_built_on_first_use_and_kept_up_to_date() {
    let (mut c, refs) = grid(40);
    assert_eq!(
        only_subtable(&c).indexes.len(),
        0,
        "no index before it is needed"
    );
    assert_eq!(check(&mut c, &[dst_change(3)], Method::Auto), 40);
    assert_eq!(only_subtable(&c).indexes.len(), 1);
    assert!(refs.iter().all(|row| c.get(row[3]).is_none()));
    assert!(c.get(refs[0][4]).is_some());
    // Megaflows installed after the index was built are found through it.
    let x = translation(masks()[0], 1, false);
    let late = c.insert(&grid_key(99, 3), &x, 0).unwrap();
    assert_eq!(check(&mut c, &[dst_change(3)], Method::Indexed), 1);
    assert!(c.get(late).is_none());
    // Removed megaflows are not: they are gone from the slot, whatever the index still holds.
    assert!(c.remove(refs[5][4]));
    assert_eq!(check(&mut c, &[dst_change(4)], Method::Indexed), 39);
    assert_eq!(only_subtable(&c).indexes.len(), 1, "the same index served");
}

#[test]
fn indexes_per_subtable_are_bounded_and_the_least_recently_used_goes() {
    let (mut c, _) = grid(40);
    let ip = Match::any().eth_type(ethertype::IPV4);
    // Five projections of the subtable's mask, each asked for by its own invalidation.
    let shapes = [
        ip.nw_dst(Ipv4Addr::from(0x0b00_0001u32), 32),
        ip.nw_src(Ipv4Addr::from(0x0a00_0001u32), 32),
        ip.nw_dst(Ipv4Addr::from(0x0b00_0000u32), 30),
        ip.nw_src(Ipv4Addr::from(0x0a00_0000u32), 30),
        Match::any()
            .in_port(1)
            .nw_dst(Ipv4Addr::from(0x0b00_0002u32), 32),
    ];
    for m in shapes {
        check(
            &mut c,
            &[RuleChange {
                table: 0,
                r#match: m,
            }],
            Method::Indexed,
        );
    }
    assert_eq!(
        only_subtable(&c).indexes.len(),
        super::super::index::MAX_INDEXES
    );
    // With every index needed by one invalidation, the extra projection does without.
    let all: Vec<RuleChange> = shapes
        .iter()
        .map(|&m| RuleChange {
            table: 0,
            r#match: m,
        })
        .collect();
    check(&mut c, &all, Method::Indexed);
    assert_eq!(
        only_subtable(&c).indexes.len(),
        super::super::index::MAX_INDEXES
    );
}

#[test]
fn an_index_full_of_removed_megaflows_is_dropped() {
    let (mut c, refs) = grid(40);
    check(&mut c, &[dst_change(0)], Method::Indexed);
    assert_eq!(only_subtable(&c).indexes.len(), 1);
    // Remove most of the rest, then install one: the index now holds mostly stale entries.
    for row in &refs {
        for &r in &row[1..35] {
            c.remove(r);
        }
    }
    let x = translation(masks()[0], 1, false);
    c.insert(&grid_key(0, 0), &x, 0).unwrap();
    assert_eq!(only_subtable(&c).indexes.len(), 0);
    assert_eq!(check(&mut c, &[dst_change(36)], Method::Indexed), 40);
}

#[test]
fn tainted_megaflows_go_on_any_change_and_their_list_stays_small() {
    let (mut c, _) = grid(10);
    let tainted = translation(masks()[1], 1, true);
    let k = grid_key(50, 50);
    // Re-installed as tainted and untainted, and tainted ones removed, many times: the list
    // keeps at most about twice as many entries as there are tainted megaflows.
    for i in 0..200 {
        let t = i % 3 != 0;
        c.insert(&k, &translation(masks()[1], 1, t), 0).unwrap();
        let r = c.insert(&grid_key(60, i), &tainted, 0).unwrap();
        // Checked when an entry is added; removals only make entries stale.
        assert!(
            c.tainted.len() <= 2 * c.n_tainted + 32,
            "{}",
            c.tainted.len()
        );
        assert!(c.remove(r));
    }
    c.insert(&k, &translation(masks()[1], 1, false), 0).unwrap();
    assert_eq!(c.n_tainted, 0);
    // A change in a table nothing consulted still removes the tainted one.
    let change = RuleChange {
        table: 9,
        r#match: Match::any(),
    };
    assert_eq!(check(&mut c, &[change], Method::Indexed), 0);
    c.insert(&k, &tainted, 0).unwrap();
    assert_eq!(check(&mut c, &[change], Method::Indexed), 1);
}

#[test]
fn a_subtable_is_passed_over_for_tables_it_never_consulted() {
    let (mut c, _) = grid(40);
    let change = RuleChange {
        table: 5,
        r#match: Match::any(),
    };
    assert_eq!(check(&mut c, &[change], Method::Indexed), 0);
    assert_eq!(only_subtable(&c).indexes.len(), 0);
}
