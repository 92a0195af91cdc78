//! Workloads shared by the benchmarks: frames, keys, rule sets and populated caches.

use std::net::{Ipv4Addr, Ipv6Addr};

use flow_table::key::{ethertype, VLAN_PRESENT};
use flow_table::testpkt::Pkt;
use flow_table::upcall::Translation;
use flow_table::{
    extract, Action, DpAction, FlowKey, FlowMask, Match, MegaflowCache, RuleSpec, RuleTables,
};

/// Packets per batch, as a PMD thread receives them.
pub const BATCH: usize = 32;

/// A batch of Ethernet/IPv4/UDP frames of 64 bytes (with FCS) from distinct flows.
pub fn udp4_frames() -> Vec<Vec<u8>> {
    (0..BATCH as u32)
        .map(|i| {
            Pkt::udp4(
                Ipv4Addr::from(0x0a00_0001 + i),
                Ipv4Addr::from(0x0a01_0001 + i),
                1000 + i as u16,
                53,
            )
            .build()
        })
        .collect()
}

/// A batch of Ethernet/IPv6/TCP frames.
pub fn tcp6_frames() -> Vec<Vec<u8>> {
    (0..BATCH as u16)
        .map(|i| {
            Pkt::tcp6(
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1 + i),
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, 1 + i),
                40000 + i,
                443,
                0x10,
            )
            .build()
        })
        .collect()
}

/// A batch of 802.1Q-tagged Ethernet/IPv4/UDP frames.
pub fn vlan_udp4_frames() -> Vec<Vec<u8>> {
    (0..BATCH as u32)
        .map(|i| {
            Pkt::udp4(
                Ipv4Addr::from(0x0a00_0001 + i),
                Ipv4Addr::from(0x0a01_0001 + i),
                1000 + i as u16,
                53,
            )
            .vlan(100)
            .build()
        })
        .collect()
}

/// Keys of the given frames, received on port 1.
pub fn keys_of(frames: &[Vec<u8>]) -> Vec<FlowKey> {
    frames.iter().map(|f| extract(f, 1)).collect()
}

/// A translation that outputs to port 2 under `mask` (for populating caches directly).
pub fn output_translation(mask: FlowMask) -> Translation {
    Translation {
        actions: vec![DpAction::Output(2)],
        mask,
        rules: Vec::new(),
        tainted: false,
        tables: 1,
        error: None,
        normal: false,
    }
}

/// A megaflow cache with `n_subtables` distinct masks, `flows_per_subtable` megaflows in each,
/// and a batch of keys spread evenly over the subtables (key `i` can only match subtable
/// `i % n_subtables`: the subtables differ in the VLAN id their flows carry, so a key misses
/// every other subtable after a real hash probe).
pub fn megaflow_workload(
    n_subtables: usize,
    flows_per_subtable: u32,
) -> (MegaflowCache, Vec<FlowKey>) {
    let mut cache = MegaflowCache::new(usize::MAX);
    let mask_of = |j: usize| {
        let mut m = FlowMask::EMPTY;
        m.0.in_port = u32::MAX;
        m.0.eth_type = 0xffff;
        m.0.vlan_tci = 0xffff;
        // 32 prefix lengths × with/without the UDP destination port: up to 64 masks.
        let plen = (j % 32) as u32 + 1;
        m.0.nw_dst = if plen == 32 {
            u32::MAX
        } else {
            !(u32::MAX >> plen)
        };
        if j >= 32 {
            m.0.nw_proto = 0xff;
            m.0.tp_dst = 0xffff;
        }
        m
    };
    let key_of = |j: usize, f: u32| {
        let mut k = FlowKey::ZERO;
        k.in_port = 1;
        k.eth_type = ethertype::IPV4;
        k.vlan_tci = VLAN_PRESENT | j as u16;
        k.nw_proto = 17;
        k.nw_src = 0x0a00_0001;
        // Spread flows over the top bits so that short prefixes still give distinct flows.
        k.nw_dst = f.reverse_bits() | 1;
        k.tp_src = 4000;
        k.tp_dst = 53;
        k
    };
    for j in 0..n_subtables {
        let x = output_translation(mask_of(j));
        for f in 0..flows_per_subtable {
            cache.insert(&key_of(j, f), &x, 0).expect("no limit");
        }
    }
    assert_eq!(cache.n_subtables(), n_subtables);
    let keys = (0..BATCH)
        .map(|i| key_of(i % n_subtables, (i as u32 * 7) % flows_per_subtable))
        .collect();
    (cache, keys)
}

/// Rule tables a little like a real bridge's: an ACL of `n` exact UDP rules, a few prefix
/// routes, and the default NORMAL rule.
pub fn bridge_rules(n: u32) -> RuleTables {
    let mut t = RuleTables::new();
    let ip = Match::any().eth_type(ethertype::IPV4);
    t.add(RuleSpec::new(0, Match::any(), vec![Action::Normal]), 0)
        .unwrap();
    for (i, plen) in [8u8, 16, 24].into_iter().enumerate() {
        t.add(
            RuleSpec::new(
                10 + i as u16,
                ip.nw_dst(Ipv4Addr::new(10, 1, 0, 0), plen),
                vec![Action::Output(2)],
            ),
            0,
        )
        .unwrap();
    }
    for i in 0..n {
        t.add(
            RuleSpec::new(
                100,
                ip.nw_proto(17)
                    .nw_dst(Ipv4Addr::from(0xc0a8_0000 + i), 32)
                    .tp_dst(53),
                vec![Action::Output(3)],
            ),
            0,
        )
        .unwrap();
    }
    t
}

/// Switch adapters of the VM benchmark (`vm_compare`).
pub mod vm;
