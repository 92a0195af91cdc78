//! Printing matches, actions and rules in ovs-ofctl's syntax, as `dump-flows` does.

use std::fmt;

use super::match_fields::{IP_FRAG, SHORTHANDS, TCP_FLAGS_MASK};
use super::values::prefix_len;
use super::DEFAULT_PRIORITY;
use crate::actions::Action;
use crate::fields::{Field, FieldKind};
use crate::key::{ethertype, ipproto, VLAN_PRESENT};
use crate::matches::Match;
use crate::rule::Rule;

fn port_str(p: u32, port_name: &dyn Fn(u32) -> Option<String>) -> String {
    port_name(p).unwrap_or_else(|| p.to_string())
}

fn value_str(field: Field, v: u128) -> String {
    struct V(Field, u128);
    impl fmt::Display for V {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt_value(self.1, f)
        }
    }
    V(field, v).to_string()
}

/// `name=value[/mask]` in the generic form the parser reads for every field: addresses with a
/// prefix mask as `/len`, other masks written out.
fn generic(out: &mut Vec<String>, name: &str, field: Field, v: u128, m: u128) {
    let all = field.all_ones();
    let bits = field.span().1 as u32 * 8;
    let s = if m == all {
        format!("{name}={}", value_str(field, v))
    } else {
        match (field.kind(), prefix_len(m, bits)) {
            (FieldKind::Ipv4 | FieldKind::Ipv6, Some(len)) => {
                format!("{name}={}/{len}", value_str(field, v))
            }
            // Masked integers read better in hex, as ovs-ofctl writes them.
            (FieldKind::Dec | FieldKind::Hex, _) => format!("{name}={v:#x}/{m:#x}"),
            _ => format!("{name}={}/{}", value_str(field, v), value_str(field, m)),
        }
    };
    out.push(s);
}

fn match_parts(m: &Match, port_name: &dyn Fn(u32) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    let get = |f: Field| m.field(f);
    let (et, etm) = get(Field::EthType);
    let (proto, protom) = get(Field::NwProto);
    let eth = (etm == 0xffff).then_some(et as u16);
    let exact_proto = (protom == 0xff).then_some(proto as u8);
    // The shorthand, which says dl_type and maybe nw_proto.
    let mut proto_done = false;
    match eth {
        Some(t) => {
            let with_proto = exact_proto.and_then(|p| {
                SHORTHANDS
                    .iter()
                    .find(|(_, st, sp)| *st == t && *sp == Some(p))
            });
            if let Some((n, _, _)) = with_proto {
                out.push(n.to_string());
                proto_done = true;
            } else if let Some((n, _, _)) = SHORTHANDS
                .iter()
                .find(|(n, st, sp)| *st == t && sp.is_none() && *n != "ipv4")
            {
                out.push(n.to_string());
            } else {
                out.push(format!("dl_type={t:#06x}"));
            }
        }
        None if etm != 0 => generic(&mut out, "dl_type", Field::EthType, et, etm),
        None => {}
    }
    let is_arp = eth == Some(ethertype::ARP);
    let icmp = matches!(exact_proto, Some(ipproto::ICMP | ipproto::ICMPV6))
        && matches!(eth, Some(ethertype::IPV4 | ethertype::IPV6));

    let (ip, ipm) = get(Field::InPort);
    if ipm == u32::MAX as u128 {
        out.push(format!("in_port={}", port_str(ip as u32, port_name)));
    } else if ipm != 0 {
        generic(&mut out, "in_port", Field::InPort, ip, ipm);
    }

    let (tci, tcim) = get(Field::VlanTci);
    let present = VLAN_PRESENT as u128;
    match tcim {
        0 => {}
        0xffff if tci == 0 => out.push("dl_vlan=0xffff".into()),
        0x1fff if tci & present != 0 => out.push(format!("dl_vlan={}", tci & 0xfff)),
        0xf000 if tci & present != 0 => out.push(format!("dl_vlan_pcp={}", tci >> 13)),
        0xffff if tci & present != 0 => {
            out.push(format!("dl_vlan={}", tci & 0xfff));
            out.push(format!("dl_vlan_pcp={}", tci >> 13));
        }
        _ => generic(&mut out, "vlan_tci", Field::VlanTci, tci, tcim),
    }
    let (v, mk) = get(Field::InnerVlanTci);
    if mk != 0 {
        generic(&mut out, "inner_vlan_tci", Field::InnerVlanTci, v, mk);
    }
    for (f, n) in [(Field::EthSrc, "dl_src"), (Field::EthDst, "dl_dst")] {
        let (v, mk) = get(f);
        if mk != 0 {
            generic(&mut out, n, f, v, mk);
        }
    }
    let (srcn, dstn) = if is_arp {
        ("arp_spa", "arp_tpa")
    } else {
        ("nw_src", "nw_dst")
    };
    for (f, n) in [(Field::NwSrc, srcn), (Field::NwDst, dstn)] {
        let (v, mk) = get(f);
        if mk != 0 {
            generic(&mut out, n, f, v, mk);
        }
    }
    if !proto_done && protom != 0 {
        if is_arp && protom == 0xff {
            out.push(format!("arp_op={proto}"));
        } else {
            generic(&mut out, "nw_proto", Field::NwProto, proto, protom);
        }
    }
    // nw_tos is the DSCP bits of the TOS byte and nw_ecn the two others, as in ovs-ofctl.
    let (tos, tosm) = get(Field::NwTos);
    let (dscp_m, ecn_m) = (tosm & 0xfc, tosm & 0x03);
    if (dscp_m == 0 || dscp_m == 0xfc) && (ecn_m == 0 || ecn_m == 0x03) {
        if dscp_m != 0 {
            out.push(format!("nw_tos={}", tos & 0xfc));
        }
        if ecn_m != 0 {
            out.push(format!("nw_ecn={}", tos & 0x03));
        }
    } else {
        generic(&mut out, "nw_tos", Field::NwTos, tos, tosm);
    }
    let (v, mk) = get(Field::NwTtl);
    if mk != 0 {
        generic(&mut out, "nw_ttl", Field::NwTtl, v, mk);
    }
    let (fr, frm) = get(Field::NwFrag);
    if frm != 0 {
        match IP_FRAG
            .iter()
            .find(|(_, v, m)| (*v as u128, *m as u128) == (fr, frm))
        {
            Some((n, _, _)) => out.push(format!("ip_frag={n}")),
            None => generic(&mut out, "nw_frag", Field::NwFrag, fr, frm),
        }
    }
    for (f, n, icmp_n) in [
        (Field::TpSrc, "tp_src", "icmp_type"),
        (Field::TpDst, "tp_dst", "icmp_code"),
    ] {
        let (v, mk) = get(f);
        if mk == 0 {
            continue;
        }
        if icmp && mk == 0xffff && v <= 0xff {
            out.push(format!("{icmp_n}={v}"));
        } else {
            generic(&mut out, n, f, v, mk);
        }
    }
    let (v, mk) = get(Field::TcpFlags);
    if mk != 0 {
        if mk == TCP_FLAGS_MASK as u128 {
            out.push(format!("tcp_flags={v:#x}"));
        } else {
            out.push(format!("tcp_flags={v:#x}/{mk:#x}"));
        }
    }
    for (f, n) in [
        (Field::Ipv6Src, "ipv6_src"),
        (Field::Ipv6Dst, "ipv6_dst"),
        (Field::ArpSha, "arp_sha"),
        (Field::ArpTha, "arp_tha"),
        (Field::TunId, "tun_id"),
        (Field::TunSrc, "tun_src"),
        (Field::TunDst, "tun_dst"),
    ] {
        let (v, mk) = get(f);
        if mk != 0 {
            generic(&mut out, n, f, v, mk);
        }
    }
    let (v, mk) = get(Field::Ipv6Label);
    if mk == 0xfffff {
        out.push(format!("ipv6_label={v:#x}"));
    } else if mk != 0 {
        out.push(format!("ipv6_label={v:#x}/{mk:#x}"));
    }
    out
}

/// Writes a match as ovs-ofctl does: the shorthand (`tcp`, `arp`...) first when `dl_type` and
/// `nw_proto` allow it, then the fields, prefixes as `/len`. Ports are written as numbers.
pub fn format_match(m: &Match) -> String {
    match_parts(m, &|_| None).join(",")
}

/// Writes a match like [`format_match`], with port names from `port_name` where it knows them.
pub fn format_match_named(m: &Match, port_name: &dyn Fn(u32) -> Option<String>) -> String {
    match_parts(m, port_name).join(",")
}

/// Writes actions in the syntax [`parse_actions`] reads (`drop` for none), with port names from
/// `port_name` where it knows them.
pub fn format_actions(actions: &[Action], port_name: &dyn Fn(u32) -> Option<String>) -> String {
    if actions.is_empty() {
        return "drop".into();
    }
    let parts: Vec<String> = actions
        .iter()
        .map(|a| match a {
            Action::Output(p) => format!("output:{}", port_str(*p, port_name)),
            Action::Resubmit {
                port: Some(p),
                table: None,
            } => format!("resubmit:{}", port_str(*p, port_name)),
            Action::Resubmit { port, table } => format!(
                "resubmit({},{})",
                port.map(|p| port_str(p, port_name)).unwrap_or_default(),
                table.map(|t| t.to_string()).unwrap_or_default()
            ),
            // `CONTROLLER:65535`, as ovs-ofctl prints it (from `Display`).
            other => other.to_string(),
        })
        .collect();
    parts.join(",")
}

/// Writes a rule as `ovs-ofctl dump-flows` does, e.g.
/// ` cookie=0x0, duration=12.345s, table=0, n_packets=10, n_bytes=840, idle_timeout=10,
/// priority=100,tcp,in_port=1,nw_src=10.0.0.0/24,tp_dst=80 actions=output:2`.
///
/// `priority=` is left out when it is the default, as ovs-ofctl does.
pub fn format_rule(rule: &Rule, now_ms: u64, port_name: &dyn Fn(u32) -> Option<String>) -> String {
    let age = now_ms.saturating_sub(rule.created_ms);
    let mut s = format!(
        " cookie={:#x}, duration={}.{:03}s, table={}, n_packets={}, n_bytes={}, ",
        rule.cookie,
        age / 1000,
        age % 1000,
        rule.table,
        rule.stats.packets(),
        rule.stats.bytes()
    );
    if rule.idle_timeout != 0 {
        s += &format!("idle_timeout={}, ", rule.idle_timeout);
    }
    if rule.hard_timeout != 0 {
        s += &format!("hard_timeout={}, ", rule.hard_timeout);
    }
    // ovs-ofctl ends the flags with a space, not a comma.
    if rule.send_flow_rem {
        s += "send_flow_rem ";
    }
    let mut m = Vec::new();
    if rule.priority != DEFAULT_PRIORITY {
        m.push(format!("priority={}", rule.priority));
    }
    m.extend(match_parts(&rule.r#match, port_name));
    if m.is_empty() {
        s += "actions=";
    } else {
        s += &m.join(",");
        s += " actions=";
    }
    s += &format_actions(&rule.actions, port_name);
    s
}
