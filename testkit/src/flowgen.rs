//! Seeded random rule sets and packets for differential tests of flow semantics: OpenFlow
//! rules over tables 0-3 in `ovs-ofctl` syntax (masked L2-L4 matches; outputs, NORMAL, flood,
//! VLAN and L3/L4 rewrites, `dec_ttl`, `resubmit`, `goto_table`) and Ethernet frames that hit
//! them (unicast, broadcast, multicast and reserved destinations; untagged, priority-tagged,
//! tagged and QinQ; IPv4 with fragments, IPv6, ARP; TCP, UDP, ICMP).
//!
//! Rules and packets draw addresses and ports from the same small pools, so matches hit. The
//! rules keep to what Open vSwitch accepts even over OpenFlow 1.3 (which forbids actions the
//! match does not guarantee a header for, where OpenFlow 1.0 makes them no-ops), but for
//! `mod_tp_src`/`mod_tp_dst` under `icmp` (OpenFlow 1.0 only, never with `push_vlan`): a rewrite
//! only under a match that guarantees its header (`mod_nw_src` under `ip`, `mod_nw_ttl` and
//! `dec_ttl` under `ip` or `ipv6`, `mod_tp_dst` under `tcp` or `udp`, `strip_vlan` when a tag
//! is known to be there), unique priorities within a
//! table (equal priorities make overlapping rules' order undefined), and `resubmit` and
//! `goto_table` only to later tables (no loops).
//!
//! ```
//! use testkit::flowgen::{self, Config};
//! let cfg = Config::default();
//! let rules = flowgen::rule_set(42, &cfg);
//! let packets = flowgen::packets(42, 10, &cfg);
//! assert_eq!(rules, flowgen::rule_set(42, &cfg), "deterministic");
//! println!("{}\n{:?}", rules[0], packets[0].in_port);
//! ```

mod packets;
mod rng;
mod rules;

pub use packets::TestPacket;
pub use rng::Rng;
pub use rules::Rule;

/// The shape of what is generated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Ports `1..=ports` (the switches also have the bridge's own port, 65534).
    pub ports: u32,
    /// Tables `0..tables`.
    pub tables: u8,
    /// How many rules a set has, at least and at most.
    pub rules: (usize, usize),
}

impl Default for Config {
    fn default() -> Config {
        Config {
            ports: 4,
            tables: 4,
            rules: (6, 18),
        }
    }
}

/// A static MAC entry both switches get, so NORMAL forwards some destinations to one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticMac {
    pub port: u32,
    pub vlan: u16,
    pub mac: String,
}

/// Hosts: the sources of frames and the unicast destinations. The first three have static MAC
/// entries ([`static_macs`]); the fourth is never learnt, so frames to it flood.
pub const HOST_MACS: [[u8; 6]; 4] = [
    [0x02, 0, 0, 0, 0, 0x01],
    [0x02, 0, 0, 0, 0, 0x02],
    [0x02, 0, 0, 0, 0, 0x03],
    [0x02, 0, 0, 0, 0, 0x04],
];
/// Multicast destinations (IPv4 and IPv6 groups).
const MULTICAST_MACS: [[u8; 6]; 2] = [[0x01, 0, 0x5e, 0, 0, 0x01], [0x33, 0x33, 0, 0, 0, 0x01]];
const IPV4S: [[u8; 4]; 4] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [10, 0, 1, 3],
    [192, 168, 1, 4],
];
const IPV6S: [[u16; 8]; 4] = [
    [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1],
    [0x2001, 0xdb8, 0, 0, 0, 0, 0, 2],
    [0x2001, 0xdb8, 0, 1, 0, 0, 0, 3],
    [0xfe80, 0, 0, 0, 0, 0, 0, 4],
];
const L4_PORTS: [u16; 6] = [22, 53, 80, 443, 1000, 8080];

/// The static MAC entries: hosts 1-3 on ports 1-3 (or the last port) in VLAN 0, and hosts 1
/// and 2 elsewhere in VLANs 1 and 2.
pub fn static_macs(cfg: &Config) -> Vec<StaticMac> {
    let port = |p: u32| p.min(cfg.ports);
    let entry = |i: usize, p: u32, vlan: u16| StaticMac {
        port: port(p),
        vlan,
        mac: crate::packet::mac(&HOST_MACS[i]),
    };
    vec![
        entry(0, 1, 0),
        entry(1, 2, 0),
        entry(2, 3, 0),
        entry(0, 2, 1),
        entry(1, 3, 2),
    ]
}

/// The rule set of `seed`.
pub fn rule_set(seed: u64, cfg: &Config) -> Vec<Rule> {
    rules::generate(&mut Rng::new(seed), cfg)
}

/// `n` packets for `seed` (a stream of their own: the rules of a seed do not depend on `n`).
pub fn packets(seed: u64, n: usize, cfg: &Config) -> Vec<TestPacket> {
    let mut r = Rng::new(seed ^ 0x5_eed0_f9ac_4e75);
    (0..n).map(|_| packets::generate(&mut r, cfg)).collect()
}

fn ipv6_text(a: &[u16; 8]) -> String {
    std::net::Ipv6Addr::new(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]).to_string()
}

fn ipv6_bytes(a: &[u16; 8]) -> [u8; 16] {
    std::net::Ipv6Addr::new(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]).octets()
}
