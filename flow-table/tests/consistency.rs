//! Property tests of the caching core: whatever the rules and whatever the order of rule changes
//! and lookups, the exact-match and megaflow caches give the same answer as the rule tables, and
//! the rule tables give the same answer as a naive reference (a linear scan over a list of
//! rules, written independently of the tuple-space classifier).

use std::cmp::Reverse;
use std::net::Ipv4Addr;

use flow_table::key::{ethertype, ipproto, VLAN_PRESENT};
use flow_table::{
    translate, Action, CacheConfig, DpAction, FlowCache, FlowKey, Match, RuleChange, RuleFilter,
    RuleSpec, RuleTables, SetField,
};
use proptest::prelude::*;

const ADDRS: [[u8; 4]; 5] = [
    [10, 0, 0, 1],
    [10, 0, 1, 1],
    [10, 1, 0, 1],
    [10, 1, 0, 2],
    [192, 168, 0, 1],
];
const PORTS: [u16; 3] = [53, 80, 443];

// ---- strategies -------------------------------------------------------------------------

fn arb_key() -> impl Strategy<Value = FlowKey> {
    (
        1u32..4,
        0usize..3,
        prop_oneof![Just(0u16), Just(VLAN_PRESENT | 10), Just(VLAN_PRESENT | 20)],
        0usize..ADDRS.len(),
        0usize..ADDRS.len(),
        prop_oneof![Just(ipproto::TCP), Just(ipproto::UDP)],
        0usize..PORTS.len(),
        1u8..4,
        0u8..3,
    )
        .prop_map(|(port, l3, vlan, s, d, proto, tp, ttl, mac)| {
            let mut k = FlowKey::ZERO;
            k.in_port = port;
            k.vlan_tci = vlan;
            k.eth_src = [2, 0, 0, 0, 0, mac].into();
            k.eth_dst = [2, 0, 0, 0, 1, mac].into();
            match l3 {
                0 => {
                    k.eth_type = ethertype::IPV4;
                    k.nw_src = u32::from(Ipv4Addr::from(ADDRS[s]));
                    k.nw_dst = u32::from(Ipv4Addr::from(ADDRS[d]));
                    k.nw_proto = proto;
                    k.nw_ttl = ttl;
                    k.tp_src = 1000;
                    k.tp_dst = PORTS[tp];
                }
                1 => {
                    k.eth_type = ethertype::ARP;
                    k.nw_proto = 1;
                    k.nw_src = u32::from(Ipv4Addr::from(ADDRS[s]));
                    k.nw_dst = u32::from(Ipv4Addr::from(ADDRS[d]));
                }
                _ => {
                    k.eth_type = ethertype::IPV6;
                    k.nw_proto = proto;
                    k.nw_ttl = ttl;
                    k.ipv6_dst[15] = d as u8;
                    k.tp_dst = PORTS[tp];
                }
            }
            k
        })
}

fn arb_match() -> impl Strategy<Value = Match> {
    (
        proptest::option::of(1u32..4),
        proptest::option::of(prop_oneof![Just(10u16), Just(20u16)]),
        0usize..4,
        0usize..ADDRS.len(),
        prop_oneof![Just(8u8), Just(16), Just(24), Just(32)],
        proptest::option::of((
            prop_oneof![Just(ipproto::TCP), Just(ipproto::UDP)],
            proptest::option::of(0usize..PORTS.len()),
        )),
    )
        .prop_map(|(port, vlan, l3, a, plen, l4)| {
            let mut m = Match::any();
            if let Some(p) = port {
                m = m.in_port(p);
            }
            if let Some(v) = vlan {
                m = m.vlan_vid(v);
            }
            match l3 {
                0 => {}
                1 => {
                    m = m
                        .eth_type(ethertype::IPV4)
                        .nw_dst(Ipv4Addr::from(ADDRS[a]), plen);
                    if let Some((proto, tp)) = l4 {
                        m = m.nw_proto(proto);
                        if let Some(tp) = tp {
                            m = m.tp_dst(PORTS[tp]);
                        }
                    }
                }
                2 => {
                    m = m
                        .eth_type(ethertype::ARP)
                        .arp_tpa(Ipv4Addr::from(ADDRS[a]), plen)
                }
                _ => m = m.eth_type(ethertype::IPV6),
            }
            m
        })
}

/// Actions for a rule in `table`: jumps only go to later tables, so there are no loops.
fn arb_actions(table: u8) -> impl Strategy<Value = Vec<Action>> {
    let later = (table + 1)..4;
    let action = prop_oneof![
        4 => (1u32..5).prop_map(Action::Output),
        1 => Just(Action::Drop),
        1 => Just(Action::InPort),
        1 => Just(Action::Normal),
        1 => Just(Action::PopVlan),
        1 => Just(Action::DecTtl),
        1 => prop_oneof![Just(10u16), Just(30u16)].prop_map(|v| Action::Set(SetField::VlanVid(v))),
        1 => (0usize..ADDRS.len()).prop_map(|a| Action::Set(SetField::Ipv4Dst(u32::from(Ipv4Addr::from(ADDRS[a]))))),
        2 => (later.clone(), proptest::option::of(1u32..4)).prop_map(|(t, port)| Action::Resubmit { port, table: Some(t) }),
        1 => later.prop_map(Action::GotoTable),
    ];
    proptest::collection::vec(action, 0..4)
}

fn arb_spec() -> impl Strategy<Value = RuleSpec> {
    (0u8..3, 0u16..4, arb_match(), 0u64..3).prop_flat_map(|(table, priority, m, cookie)| {
        arb_actions(table).prop_map(move |actions| RuleSpec {
            table,
            priority,
            r#match: m,
            actions,
            cookie,
            idle_timeout: 0,
            hard_timeout: 0,
            send_flow_rem: false,
        })
    })
}

#[derive(Clone, Debug)]
enum Op {
    Add(RuleSpec),
    /// Strict delete of the n-th rule of the model.
    DelStrict(usize),
    /// Non-strict delete of every rule the match covers, in one table or all.
    DelLoose(Match, Option<u8>),
    DelCookie(u64),
    /// Strict modify of the n-th rule.
    ModStrict(usize, Vec<Action>),
    /// Look up the n-th key of the test case's key pool (a small pool, so that the same
    /// packets come back after rule changes and stale cache entries would be noticed).
    Lookup(usize),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => arb_spec().prop_map(Op::Add),
        2 => any::<usize>().prop_map(Op::DelStrict),
        1 => (arb_match(), proptest::option::of(0u8..3)).prop_map(|(m, t)| Op::DelLoose(m, t)),
        1 => (0u64..3).prop_map(Op::DelCookie),
        1 => (any::<usize>(), arb_actions(0)).prop_map(|(i, a)| Op::ModStrict(i, a)),
        12 => any::<usize>().prop_map(Op::Lookup),
    ]
}

// ---- the reference model ----------------------------------------------------------------

#[derive(Clone, Debug)]
struct RefRule {
    table: u8,
    priority: u16,
    m: Match,
    actions: Vec<Action>,
    cookie: u64,
    seq: u64,
}

#[derive(Default)]
struct Model {
    rules: Vec<RefRule>,
    seq: u64,
}

impl Model {
    fn add(&mut self, s: &RuleSpec) {
        self.rules
            .retain(|r| !(r.table == s.table && r.priority == s.priority && r.m == s.r#match));
        self.rules.push(RefRule {
            table: s.table,
            priority: s.priority,
            m: s.r#match,
            actions: s.actions.clone(),
            cookie: s.cookie,
            seq: self.seq,
        });
        self.seq += 1;
    }

    fn xlate(&self, key: &FlowKey) -> Vec<DpAction> {
        let mut out = Vec::new();
        let mut k = *key;
        self.table(0, None, &mut k, &mut out);
        // Rewrites after the last output are left out.
        let keep = out
            .iter()
            .rposition(|a| matches!(a, DpAction::Output(_) | DpAction::Normal))
            .map_or(0, |i| i + 1);
        out.truncate(keep);
        out
    }

    /// Returns false when translation must stop (never, without errors: a TTL that runs out
    /// ends only the current rule's actions).
    /// `in_port` replaces the ingress port for the lookup only (`resubmit(port,table)`).
    fn table(
        &self,
        table: u8,
        in_port: Option<u32>,
        k: &mut FlowKey,
        out: &mut Vec<DpAction>,
    ) -> bool {
        let mut lk = *k;
        lk.in_port = in_port.unwrap_or(k.in_port);
        let Some(rule) = self
            .rules
            .iter()
            .filter(|r| r.table == table && r.m.matches(&lk))
            .max_by_key(|r| (r.priority, Reverse(r.seq)))
        else {
            return true;
        };
        let is_ip = |k: &FlowKey| k.eth_type == ethertype::IPV4 || k.eth_type == ethertype::IPV6;
        for a in &rule.actions {
            match a {
                Action::Output(p) if *p != k.in_port => out.push(DpAction::Output(*p)),
                Action::Output(_) | Action::Drop => {}
                Action::InPort => out.push(DpAction::Output(k.in_port)),
                Action::Normal => out.push(DpAction::Normal),
                Action::PopVlan => {
                    if k.vlan_tci & VLAN_PRESENT != 0 {
                        k.vlan_tci = k.inner_vlan_tci;
                        k.inner_vlan_tci = 0;
                        out.push(DpAction::PopVlan);
                    }
                }
                Action::DecTtl => {
                    if is_ip(k) {
                        if k.nw_ttl <= 1 {
                            return true;
                        }
                        k.nw_ttl -= 1;
                        out.push(DpAction::DecTtl);
                    }
                }
                Action::Set(SetField::VlanVid(v)) => {
                    if k.vlan_tci & VLAN_PRESENT != 0 {
                        k.vlan_tci = (k.vlan_tci & !0xfff) | v;
                        out.push(DpAction::Set(SetField::VlanVid(*v)));
                    } else {
                        k.vlan_tci = VLAN_PRESENT | v;
                        out.push(DpAction::PushVlan {
                            tpid: ethertype::VLAN,
                            tci: *v,
                        });
                    }
                }
                Action::Set(SetField::Ipv4Dst(a)) => {
                    if k.eth_type == ethertype::IPV4 {
                        k.nw_dst = *a;
                        out.push(DpAction::Set(SetField::Ipv4Dst(*a)));
                    }
                }
                Action::Resubmit {
                    port,
                    table: Some(t),
                } => {
                    if !self.table(*t, *port, k, out) {
                        return false;
                    }
                }
                Action::GotoTable(t) => return self.table(*t, None, k, out),
                other => unreachable!("the strategy does not generate {other:?}"),
            }
        }
        true
    }
}

// ---- the properties ---------------------------------------------------------------------

fn changes_of(rules: &[std::sync::Arc<flow_table::Rule>]) -> Vec<RuleChange> {
    rules.iter().map(|r| RuleChange::of(r)).collect()
}

fn run(keys: Vec<FlowKey>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut tables = RuleTables::new();
    let mut model = Model::default();
    // One cache with an always-inserting EMC; one with no EMC and room for only 4 megaflows,
    // so lookups also go through eviction-free "lost" upcalls.
    let mut caches = [
        FlowCache::new(CacheConfig {
            emc_entries: 64,
            emc_insert_inv_prob: 1,
            flow_limit: 10_000,
        }),
        FlowCache::new(CacheConfig {
            emc_entries: 64,
            emc_insert_inv_prob: 0,
            flow_limit: 4,
        }),
    ];
    let mut now = 0;
    for op in ops {
        now += 1;
        let changes = match op {
            Op::Add(spec) => {
                model.add(&spec);
                tables.add(spec, now).expect("generated rules are valid")
            }
            Op::DelStrict(i) => {
                if model.rules.is_empty() {
                    continue;
                }
                let r = model.rules.remove(i % model.rules.len());
                let f = RuleFilter {
                    table: Some(r.table),
                    ..RuleFilter::matching(r.m, r.priority)
                };
                let gone = tables.delete(&f, true);
                prop_assert_eq!(gone.len(), 1);
                changes_of(&gone)
            }
            Op::DelLoose(m, table) => {
                model
                    .rules
                    .retain(|r| !(table.is_none_or(|t| t == r.table) && m.covers(&r.m)));
                let f = RuleFilter {
                    table,
                    ..RuleFilter::matching(m, 0)
                };
                changes_of(&tables.delete(&f, false))
            }
            Op::DelCookie(c) => {
                model.rules.retain(|r| r.cookie != c);
                changes_of(&tables.delete(&RuleFilter::cookie(c), false))
            }
            Op::ModStrict(i, actions) => {
                if model.rules.is_empty() {
                    continue;
                }
                let n = model.rules.len();
                let r = &mut model.rules[i % n];
                // Jumps must stay forward from the rule's own table.
                let actions: Vec<Action> = actions
                    .into_iter()
                    .filter(|a| match a {
                        Action::GotoTable(t) | Action::Resubmit { table: Some(t), .. } => {
                            *t > r.table
                        }
                        _ => true,
                    })
                    .collect();
                r.actions = actions.clone();
                let f = RuleFilter {
                    table: Some(r.table),
                    ..RuleFilter::matching(r.m, r.priority)
                };
                changes_of(&tables.modify(&f, &actions, true).expect("valid actions"))
            }
            Op::Lookup(i) => {
                let key = keys[i % keys.len()];
                let direct = translate(&tables, &key).actions;
                let reference = model.xlate(&key);
                prop_assert_eq!(
                    &direct,
                    &reference,
                    "rule tables vs reference for {:?}",
                    key
                );
                for c in caches.iter_mut() {
                    let d = c.lookup(&key, key.hash(), &tables, now);
                    prop_assert_eq!(
                        c.actions(&d),
                        &direct[..],
                        "cache vs rule tables for {:?}",
                        key
                    );
                }
                continue;
            }
        };
        for c in caches.iter_mut() {
            c.invalidate(&changes);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn caches_always_agree_with_the_rule_tables(
        keys in proptest::collection::vec(arb_key(), 1..8),
        ops in proptest::collection::vec(arb_op(), 1..120),
    ) {
        run(keys, ops)?;
    }

    /// The megaflow mask is sound: any key equal to `key` on the masked bits gets the same
    /// actions.
    #[test]
    fn megaflow_masks_are_sound(
        specs in proptest::collection::vec(arb_spec(), 0..25),
        key in arb_key(),
        others in proptest::collection::vec(arb_key(), 1..20),
    ) {
        let mut tables = RuleTables::new();
        for s in specs {
            tables.add(s, 0).unwrap();
        }
        let x = translate(&tables, &key);
        let m = x.mask.words();
        for other in others {
            let mixed: [u64; flow_table::key::KEY_WORDS] =
                std::array::from_fn(|i| (key.words()[i] & m[i]) | (other.words()[i] & !m[i]));
            let mixed = FlowKey::from_words(mixed);
            prop_assert_eq!(&translate(&tables, &mixed).actions, &x.actions, "{:?} vs {:?}", key, mixed);
        }
    }
}

/// The property above exercises every cache level: a fixed workload shows hits at each.
#[test]
fn every_cache_level_is_exercised() {
    let mut tables = RuleTables::new();
    tables
        .add(RuleSpec::new(0, Match::any(), vec![Action::Output(1)]), 0)
        .unwrap();
    let mut c = FlowCache::new(CacheConfig {
        emc_entries: 64,
        emc_insert_inv_prob: 1,
        flow_limit: 10,
    });
    let mut k = FlowKey::ZERO;
    k.in_port = 2;
    for _ in 0..3 {
        c.lookup(&k, k.hash(), &tables, 0);
    }
    k.tp_dst = 9; // same megaflow, new exact key
    c.lookup(&k, k.hash(), &tables, 0);
    assert_eq!(c.stats.upcalls, 1);
    assert_eq!(c.stats.megaflow_hits, 1);
    assert_eq!(c.stats.emc_hits, 2);
}
