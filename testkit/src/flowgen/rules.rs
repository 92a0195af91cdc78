//! Random OpenFlow rules in `ovs-ofctl` syntax (see the module above for what they keep to).

use std::fmt;

use super::{ipv6_text, Config, Rng, HOST_MACS, IPV4S, IPV6S, L4_PORTS};
use crate::packet::mac;

/// One rule: its table, priority, match fields and actions, as `ovs-ofctl` writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub table: u8,
    pub priority: u16,
    /// `name=value` fields and shorthands (`tcp`, `ip`...), in order.
    pub matches: Vec<String>,
    /// Actions, in order; empty means `drop`.
    pub actions: Vec<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table={},priority={}", self.table, self.priority)?;
        for m in &self.matches {
            write!(f, ",{m}")?;
        }
        match self.actions.is_empty() {
            true => write!(f, ",actions=drop"),
            false => write!(f, ",actions={}", self.actions.join(",")),
        }
    }
}

/// What a rule's match says about the packet, which decides the actions it may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Any,
    Ip,
    Tcp,
    Udp,
    Icmp,
    Ipv6,
    Tcp6,
    Udp6,
    Icmp6,
    Arp,
}

impl Class {
    fn ipv4(self) -> bool {
        matches!(self, Class::Ip | Class::Tcp | Class::Udp | Class::Icmp)
    }
    fn ipv6(self) -> bool {
        matches!(self, Class::Ipv6 | Class::Tcp6 | Class::Udp6 | Class::Icmp6)
    }
    fn icmp(self) -> bool {
        matches!(self, Class::Icmp | Class::Icmp6)
    }
    fn ports(self) -> bool {
        matches!(self, Class::Tcp | Class::Udp | Class::Tcp6 | Class::Udp6)
    }
}

/// Facts of the match the actions depend on.
struct Ctx {
    class: Class,
    /// How many VLAN tags are certainly present: `strip_vlan` needs one over OpenFlow 1.3,
    /// and `push_vlan` may not make a third (Open vSwitch knows two).
    tags: u8,
    /// The match is for later fragments only (`ip_frag=later`): no transport header, so no
    /// transport field may be matched or rewritten.
    later_fragments: bool,
}

const PRIORITIES: [u16; 14] = [
    0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 4096, 32768, 65535,
];

pub(super) fn generate(r: &mut Rng, cfg: &Config) -> Vec<Rule> {
    let n = r.range(cfg.rules.0 as u64, cfg.rules.1 as u64) as usize;
    let mut rules: Vec<Rule> = Vec::with_capacity(n + cfg.tables as usize);
    // Each set leans to one class of match, so that its packets meet that class's rules and
    // rewrites often (with even weights, transport rewrites would rarely be reached).
    let focus = r.pick(&CLASS_WEIGHTS).1;
    let weights: Vec<(u64, Class)> = CLASS_WEIGHTS
        .iter()
        .map(|&(w, c)| (if c == focus { w * 5 } else { w }, c))
        .collect();
    let table_weights: Vec<(u64, u8)> = (0..cfg.tables)
        .map(|t| (u64::from(cfg.tables - t) * 10, t))
        .collect();
    for _ in 0..n {
        let table = r.weighted(&table_weights);
        let Some(priority) = free_priority(r, &rules, table) else {
            continue;
        };
        let (matches, ctx) = gen_match(r, cfg, &weights);
        let actions = gen_actions(r, cfg, &ctx, table);
        rules.push(Rule {
            table,
            priority,
            matches,
            actions,
        });
    }
    // Most tables get a catch-all at priority 0, so more packets reach some actions.
    for table in 0..cfg.tables {
        if r.chance(if table == 0 { 80 } else { 60 })
            && !rules.iter().any(|x| x.table == table && x.priority == 0)
        {
            let ctx = Ctx {
                class: Class::Any,
                tags: 0,
                later_fragments: false,
            };
            let actions = gen_actions(r, cfg, &ctx, table);
            rules.push(Rule {
                table,
                priority: 0,
                matches: Vec::new(),
                actions,
            });
        }
    }
    rules.sort_by_key(|x| (x.table, std::cmp::Reverse(x.priority)));
    rules
}

fn free_priority(r: &mut Rng, rules: &[Rule], table: u8) -> Option<u16> {
    let free: Vec<u16> = PRIORITIES
        .into_iter()
        .filter(|p| !rules.iter().any(|x| x.table == table && x.priority == *p))
        .collect();
    (!free.is_empty()).then(|| r.pick(&free))
}

/// How often each class of match is drawn.
const CLASS_WEIGHTS: [(u64, Class); 10] = [
    (15, Class::Any),
    (10, Class::Ip),
    (12, Class::Tcp),
    (12, Class::Udp),
    (8, Class::Icmp),
    (6, Class::Ipv6),
    (4, Class::Tcp6),
    (4, Class::Udp6),
    (4, Class::Icmp6),
    (8, Class::Arp),
];

fn gen_match(r: &mut Rng, cfg: &Config, weights: &[(u64, Class)]) -> (Vec<String>, Ctx) {
    use Class::*;
    let class = r.weighted(weights);
    let mut m = Vec::new();
    let mut ctx = Ctx {
        class,
        tags: 0,
        later_fragments: false,
    };
    // The protocol first, as ovs-ofctl prints it; sometimes spelled out.
    match class {
        Any => {}
        Ip if r.chance(15) => m.push("dl_type=0x0800".into()),
        Tcp if r.chance(10) => m.extend(["ip".into(), "nw_proto=6".into()]),
        Udp if r.chance(10) => m.extend(["ip".into(), "nw_proto=17".into()]),
        _ => m.push(
            match class {
                Ip => "ip",
                Tcp => "tcp",
                Udp => "udp",
                Icmp => "icmp",
                Ipv6 => "ipv6",
                Tcp6 => "tcp6",
                Udp6 => "udp6",
                Icmp6 => "icmp6",
                _ => "arp",
            }
            .into(),
        ),
    }
    if r.chance(25) {
        m.push(format!("in_port={}", r.range(1, u64::from(cfg.ports))));
    }
    if r.chance(12) {
        let v = match r.below(4) {
            0 => "02:00:00:00:00:00/ff:ff:ff:ff:ff:fe".into(),
            1 => "00:00:00:00:00:00/01:00:00:00:00:00".into(),
            _ => mac(&r.pick(&HOST_MACS)),
        };
        m.push(format!("dl_src={v}"));
    }
    if r.chance(18) {
        let v = match r.below(8) {
            0 => "ff:ff:ff:ff:ff:ff".into(),
            1 => format!("01:80:c2:00:00:{:02x}", r.below(16)),
            2 => "01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0".into(),
            3 => "01:00:00:00:00:00/01:00:00:00:00:00".into(),
            4 => "02:00:00:00:00:00/ff:ff:ff:ff:ff:fc".into(),
            _ => mac(&r.pick(&HOST_MACS)),
        };
        m.push(format!("dl_dst={v}"));
    }
    if r.chance(20) {
        let (field, tag) = match r.below(8) {
            0 => ("dl_vlan=0xffff".to_owned(), false),
            1 => ("vlan_tci=0x0000".to_owned(), false),
            2 => ("vlan_tci=0x1000/0x1000".to_owned(), true),
            3 => (
                format!("vlan_tci=0x{:04x}/0x1fff", 0x1000 + r.range(1, 3)),
                true,
            ),
            4 => ("dl_vlan=0".to_owned(), true),
            5 => (format!("dl_vlan_pcp={}", r.below(8)), true),
            _ => (format!("dl_vlan={}", r.range(1, 3)), true),
        };
        m.push(field);
        ctx.tags = u8::from(tag);
        if tag && m.iter().any(|f| f.starts_with("dl_vlan=")) && r.chance(20) {
            m.push(format!("dl_vlan_pcp={}", r.below(8)));
        }
    }
    if class.ipv4() {
        for field in ["nw_src", "nw_dst"] {
            if r.chance(10) {
                m.push(format!("{field}={}", ipv4_prefix(r)));
            }
        }
    }
    if class.ipv6() {
        for field in ["ipv6_src", "ipv6_dst"] {
            if r.chance(15) {
                let a = r.pick(&IPV6S);
                let v = match r.below(3) {
                    0 => "2001:db8::/32".into(),
                    1 => format!("{}/64", ipv6_text(&[a[0], a[1], a[2], a[3], 0, 0, 0, 0])),
                    _ => ipv6_text(&a),
                };
                m.push(format!("{field}={v}"));
            }
        }
    }
    if class.ipv4() || class.ipv6() {
        if r.chance(8) {
            m.push(format!("nw_tos={}", r.pick(&[0, 4, 32, 184])));
        }
        if r.chance(6) {
            m.push(format!("nw_ttl={}", r.pick(&[1, 2, 64])));
        }
    }
    match class {
        Ip if r.chance(20) && !m.iter().any(|f| f.starts_with("nw_proto")) => {
            m.push(format!("nw_proto={}", r.pick(&[1, 6, 17, 47])));
        }
        Ipv6 if r.chance(15) => m.push(format!("nw_proto={}", r.pick(&[6, 17, 58]))),
        Icmp if r.chance(25) => m.push(format!("icmp_type={}", r.pick(&[0, 3, 8]))),
        Icmp6 if r.chance(25) => m.push(format!("icmpv6_type={}", r.pick(&[128, 129, 135]))),
        Arp => {
            if r.chance(30) {
                m.push(format!("arp_op={}", r.range(1, 2)));
            }
            for field in ["arp_spa", "arp_tpa"] {
                if r.chance(12) {
                    m.push(format!("{field}={}", ipv4_prefix(r)));
                }
            }
        }
        _ => {}
    }
    if class == Icmp && r.chance(8) {
        m.push("icmp_code=0".into());
    }
    if class.ports() {
        for field in ["tp_src", "tp_dst"] {
            if r.chance(if field == "tp_src" { 10 } else { 20 }) {
                let v = match r.below(5) {
                    0 => r
                        .pick(&[
                            "0x0050/0xfff0",
                            "0x0000/0xfc00",
                            "0x0000/0xff00",
                            "0x0400/0xfc00",
                        ])
                        .into(),
                    _ => r.pick(&L4_PORTS).to_string(),
                };
                m.push(format!("{field}={v}"));
            }
        }
    }
    if (class.ipv4() || class.ipv6()) && r.chance(5) {
        // Transport fields of later fragments are refused ("bad prerequisite").
        let l4_fields = m
            .iter()
            .any(|f| f.starts_with("tp_") || f.starts_with("icmp"));
        let f = match l4_fields {
            true => r.pick(&["no", "yes", "first", "not_later"]),
            false => r.pick(&["no", "yes", "first", "later", "not_later"]),
        };
        ctx.later_fragments = f == "later";
        m.push(format!("ip_frag={f}"));
    }
    (m, ctx)
}

/// An IPv4 address from the pool, or a prefix holding one.
fn ipv4_prefix(r: &mut Rng) -> String {
    let a = r.pick(&IPV4S);
    let len = r.pick(&[32, 32, 24, 16, 8]);
    let bits = u32::from_be_bytes(a) & (u32::MAX << (32 - len));
    let net = std::net::Ipv4Addr::from(bits);
    match len {
        32 => net.to_string(),
        _ => format!("{net}/{len}"),
    }
}

#[derive(Clone, Copy)]
enum Act {
    Output,
    Normal,
    Flood,
    InPort,
    PushVlan,
    StripVlan,
    ModVlanVid,
    ModVlanPcp,
    ModDlSrc,
    ModDlDst,
    ModNwAddr,
    ModNwTos,
    ModNwTtl,
    ModTp,
    DecTtl,
    Resubmit,
    ResubmitPort,
}

fn gen_actions(r: &mut Rng, cfg: &Config, ctx: &Ctx, table: u8) -> Vec<String> {
    use Act::*;
    if r.chance(7) {
        return Vec::new();
    }
    let last_table = cfg.tables - 1;
    let n = r.weighted(&[(35, 1), (30, 2), (20, 3), (15, 4)]);
    let mut tags = ctx.tags;
    // A rule with push_vlan goes to Open vSwitch over OpenFlow 1.3, which turns a
    // mod_vlan_vid/pcp that may meet an untagged packet into an unconditional push and
    // refuses mod_tp_* under icmp: such OpenFlow 1.0-only ("loose") actions and push_vlan
    // never share a rule (see testkit::ovs).
    let (mut pushed, mut loose) = (false, false);
    let mut out = Vec::new();
    while out.len() < n {
        let a = r.weighted(&[
            (20, Output),
            (10, Normal),
            (6, Flood),
            (4, InPort),
            (5, PushVlan),
            (5, StripVlan),
            (6, ModVlanVid),
            (4, ModVlanPcp),
            (4, ModDlSrc),
            (5, ModDlDst),
            (8, ModNwAddr),
            (5, ModNwTos),
            (3, ModNwTtl),
            (10, ModTp),
            (5, DecTtl),
            (6, Resubmit),
            (3, ResubmitPort),
        ]);
        let text = match a {
            Output => format!("output:{}", r.range(1, u64::from(cfg.ports))),
            Normal => "normal".into(),
            Flood => "flood".into(),
            InPort => "in_port".into(),
            PushVlan if tags < 2 && !loose => {
                (tags, pushed) = (tags + 1, true);
                "push_vlan:0x8100".into()
            }
            StripVlan if tags > 0 => {
                tags -= 1;
                "strip_vlan".into()
            }
            ModVlanVid | ModVlanPcp if tags > 0 || !pushed => {
                loose |= tags == 0;
                tags = tags.max(1);
                match a {
                    ModVlanVid => format!("mod_vlan_vid:{}", r.below(4)),
                    _ => format!("mod_vlan_pcp:{}", r.below(8)),
                }
            }
            ModDlSrc => format!("mod_dl_src:{}", mac(&r.pick(&HOST_MACS))),
            ModDlDst if r.chance(30) => format!("mod_dl_dst:01:80:c2:00:00:{:02x}", r.below(16)),
            ModDlDst => format!("mod_dl_dst:{}", mac(&r.pick(&HOST_MACS))),
            ModNwAddr if ctx.class.ipv4() => {
                let a = std::net::Ipv4Addr::from(r.pick(&IPV4S));
                format!("{}:{a}", r.pick(&["mod_nw_src", "mod_nw_dst"]))
            }
            ModNwTos if ctx.class.ipv4() || ctx.class.ipv6() => {
                format!("mod_nw_tos:{}", r.below(64) * 4)
            }
            ModNwTtl if ctx.class.ipv4() || ctx.class.ipv6() => {
                format!("mod_nw_ttl:{}", r.pick(&[0, 1, 2, 63, 255]))
            }
            ModTp if ctx.class.ports() && !ctx.later_fragments => format!(
                "{}:{}",
                r.pick(&["mod_tp_src", "mod_tp_dst"]),
                r.pick(&L4_PORTS)
            ),
            // Accepted over OpenFlow 1.0 only; what it does to ICMP differs (see the test's
            // documented differences).
            ModTp if ctx.class.icmp() && !pushed && r.chance(30) => {
                loose = true;
                format!(
                    "{}:{}",
                    r.pick(&["mod_tp_src", "mod_tp_dst"]),
                    r.pick(&L4_PORTS)
                )
            }
            DecTtl if ctx.class.ipv4() || ctx.class.ipv6() => "dec_ttl".into(),
            Resubmit if table < last_table => {
                format!(
                    "resubmit(,{})",
                    r.range(u64::from(table) + 1, last_table.into())
                )
            }
            ResubmitPort if table < last_table => format!(
                "resubmit({},{})",
                r.range(1, u64::from(cfg.ports)),
                r.range(u64::from(table) + 1, last_table.into())
            ),
            _ => continue,
        };
        out.push(text);
    }
    // A rule that only rewrites sends nothing: most rules forward somewhere.
    let forwards = |a: &String| {
        ["output:", "normal", "flood", "in_port", "resubmit("]
            .iter()
            .any(|f| a.starts_with(f))
    };
    if !out.iter().any(forwards) && r.chance(85) {
        out.push(match r.below(4) {
            0 => "normal".into(),
            1 => "flood".into(),
            _ => format!("output:{}", r.range(1, u64::from(cfg.ports))),
        });
    }
    if table < last_table && r.chance(25) {
        out.push(format!(
            "goto_table:{}",
            r.range(u64::from(table) + 1, last_table.into())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_keep_to_what_openflow_1_3_accepts() {
        let cfg = Config::default();
        for seed in 0..200 {
            let rules = generate(&mut Rng::new(seed), &cfg);
            assert!(rules.len() >= cfg.rules.0, "seed {seed}");
            for (i, x) in rules.iter().enumerate() {
                let text = x.to_string();
                assert!(
                    !rules[..i]
                        .iter()
                        .any(|y| y.table == x.table && y.priority == x.priority),
                    "seed {seed}: two rules at one priority: {text}"
                );
                let has = |m: &str| x.matches.iter().any(|f| f == m);
                if has("ip_frag=later") {
                    assert!(
                        !x.matches
                            .iter()
                            .any(|m| m.starts_with("tp_") || m.starts_with("icmp_"))
                            && !x.actions.iter().any(|a| a.starts_with("mod_tp_")),
                        "{text}"
                    );
                }
                if x.actions.iter().any(|a| a.starts_with("mod_tp_")) {
                    assert!(
                        [
                            "tcp",
                            "udp",
                            "tcp6",
                            "udp6",
                            "nw_proto=6",
                            "nw_proto=17",
                            "icmp",
                            "icmp6"
                        ]
                        .iter()
                        .any(|m| has(m)),
                        "{text}"
                    );
                }
                if x.actions
                    .iter()
                    .any(|a| a.starts_with("mod_nw_tos") || a == "dec_ttl")
                {
                    assert!(!has("arp") && !x.matches.is_empty(), "{text}");
                }
                if x.actions.iter().any(|a| a.starts_with("mod_nw_src")) {
                    assert!(
                        !has("ipv6") && !has("arp") && !x.matches.is_empty(),
                        "{text}"
                    );
                }
                for a in &x.actions {
                    for prefix in ["resubmit(", "goto_table:"] {
                        if let Some(rest) = a.strip_prefix(prefix) {
                            let t: u8 = rest
                                .trim_end_matches(')')
                                .rsplit(',')
                                .next()
                                .unwrap()
                                .parse()
                                .unwrap();
                            assert!(t > x.table && t < cfg.tables, "{text}");
                        }
                    }
                }
                // mod_vlan_* while no tag is certain, and push_vlan, never share a rule.
                let mut tags = u8::from(x.matches.iter().any(|m| {
                    (m.starts_with("dl_vlan=") && m != "dl_vlan=0xffff")
                        || m.starts_with("dl_vlan_pcp=")
                        || (m.starts_with("vlan_tci=0x1") && m.contains('/'))
                }));
                let (mut pushed, mut loose) = (false, false);
                for a in &x.actions {
                    if a.starts_with("push_vlan") {
                        (tags, pushed) = (tags + 1, true);
                    } else if a == "strip_vlan" {
                        tags -= 1;
                    } else if a.starts_with("mod_vlan_") {
                        loose |= tags == 0;
                        tags = tags.max(1);
                    } else if a.starts_with("mod_tp_") {
                        loose |= has("icmp") || has("icmp6");
                    }
                }
                assert!(!(pushed && loose), "{text}");
                if let Some(g) = x.actions.iter().position(|a| a.starts_with("goto_table")) {
                    assert_eq!(g, x.actions.len() - 1, "{text}");
                }
            }
        }
    }
}
