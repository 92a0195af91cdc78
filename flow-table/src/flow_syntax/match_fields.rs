//! Match fields and shorthands of a flow, with ovs-ofctl's meaning.
//!
//! What ovs-ofctl does, and so this parser (learnt by running `ovs-ofctl parse-flow`):
//! - names are case-sensitive (`IP` is not `ip`); a field given twice keeps the later value,
//!   and a shorthand after a field overrides its `dl_type`/`nw_proto` (`tcp,nw_proto=17` is
//!   `udp`);
//! - `nw_tos` is the DSCP bits of the TOS byte: `nw_tos=3` matches TOS 0 to 3, as `nw_tos=0`
//!   does; `ip_dscp=N` is `nw_tos=4*N` and `nw_ecn`/`ip_ecn` the two low bits;
//! - fields OpenFlow does not let be masked (`dl_type`, `nw_proto`, `nw_ttl`, `icmp_type`...)
//!   take only an all-ones mask (exact) or a zero mask (any); an empty value is `0/0`;
//! - some values are cut to their field: `dl_vlan=4096` is VLAN 0, `dl_vlan_pcp=8` is 0,
//!   `arp_op=256` is 0, `ip_dscp=64` is 0, and each number of an IPv4 address modulo 256.
//!
//! One deliberate difference: a field whose prerequisite the match lacks (`tp_dst` without
//! `tcp`, `nw_src` without `ip`) is refused, where ovs-ofctl drops it silently and so installs
//! a wider rule than written.

use super::ports::parse_port;
use super::tokens::Piece;
use super::values::{parse_int_masked, parse_ipv4_masked, parse_ipv6_masked, parse_mac_masked};
use super::{err, FlowParseError};
use crate::fields::{Field, FieldKind};
use crate::key::{ethertype, ipproto, FRAG_ANY, FRAG_LATER, VLAN_PRESENT, VLAN_VID_MASK};
use crate::matches::Match;

/// TCP flag names in bit order, as ovs-ofctl spells them (the three unnamed bits by value).
pub(super) const TCP_FLAGS: [&str; 12] = [
    "fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]",
];

/// The TCP flags bits a match may name.
pub(super) const TCP_FLAGS_MASK: u16 = 0x0fff;

/// `ip_frag` names, with their (value, mask) on `nw_frag`.
pub(super) const IP_FRAG: [(&str, u8, u8); 5] = [
    ("no", 0, FRAG_ANY),
    ("yes", FRAG_ANY, FRAG_ANY),
    ("first", FRAG_ANY, FRAG_ANY | FRAG_LATER),
    ("later", FRAG_ANY | FRAG_LATER, FRAG_ANY | FRAG_LATER),
    ("not_later", 0, FRAG_LATER),
];

/// The shorthands, each a dl_type and maybe an nw_proto; the first of each pair is the one
/// printed.
pub(super) const SHORTHANDS: [(&str, u16, Option<u8>); 16] = [
    ("ip", ethertype::IPV4, None),
    ("ipv6", ethertype::IPV6, None),
    ("arp", ethertype::ARP, None),
    ("rarp", 0x8035, None),
    ("mpls", 0x8847, None),
    ("mplsm", 0x8848, None),
    ("icmp", ethertype::IPV4, Some(ipproto::ICMP)),
    ("tcp", ethertype::IPV4, Some(ipproto::TCP)),
    ("udp", ethertype::IPV4, Some(ipproto::UDP)),
    ("sctp", ethertype::IPV4, Some(ipproto::SCTP)),
    ("icmp6", ethertype::IPV6, Some(ipproto::ICMPV6)),
    ("tcp6", ethertype::IPV6, Some(ipproto::TCP)),
    ("udp6", ethertype::IPV6, Some(ipproto::UDP)),
    ("sctp6", ethertype::IPV6, Some(ipproto::SCTP)),
    ("ipv4", ethertype::IPV4, None),
    ("ip6", ethertype::IPV6, None),
];

/// What a match keyword does.
#[derive(Clone, Copy)]
enum Kw {
    /// A field that takes any mask, `value[/mask]` read by its kind.
    Masked(Field),
    /// A field OpenFlow does not let be masked, `bits` wide as OpenFlow defines it.
    Exact(Field, u32),
    InPort,
    DlVlan,
    DlVlanPcp,
    NwTos,
    IpDscp,
    IpEcn,
    IpFrag,
    /// ICMP type or code: one byte held in a 16-bit transport field.
    Icmp(Field),
    ArpOp,
    TcpFlags,
    Ipv6Label,
    /// `ip`, `tcp`...: a dl_type and maybe an nw_proto.
    Shorthand(u16, Option<u8>),
    /// OXM's `vlan_vid`/`vlan_pcp`, which vswitch does not take as match fields.
    Oxm,
}

fn keyword(name: &str) -> Option<Kw> {
    use Field as F;
    Some(match name {
        "in_port" => Kw::InPort,
        "dl_src" | "eth_src" => Kw::Masked(F::EthSrc),
        "dl_dst" | "eth_dst" => Kw::Masked(F::EthDst),
        "dl_type" | "eth_type" => Kw::Exact(F::EthType, 16),
        "dl_vlan" => Kw::DlVlan,
        "dl_vlan_pcp" => Kw::DlVlanPcp,
        "vlan_tci" => Kw::Masked(F::VlanTci),
        "vlan_vid" | "vlan_pcp" => Kw::Oxm,
        // Not an ovs-ofctl field: vswitch prints it in megaflow dumps and reads it back.
        "inner_vlan_tci" => Kw::Masked(F::InnerVlanTci),
        "nw_src" | "ip_src" | "arp_spa" => Kw::Masked(F::NwSrc),
        "nw_dst" | "ip_dst" | "arp_tpa" => Kw::Masked(F::NwDst),
        "nw_proto" | "ip_proto" => Kw::Exact(F::NwProto, 8),
        "arp_op" => Kw::ArpOp,
        "nw_tos" => Kw::NwTos,
        "ip_dscp" => Kw::IpDscp,
        "ip_ecn" | "nw_ecn" => Kw::IpEcn,
        "nw_ttl" => Kw::Exact(F::NwTtl, 8),
        "ip_frag" | "nw_frag" => Kw::IpFrag,
        "tp_src" | "tcp_src" | "udp_src" | "sctp_src" => Kw::Masked(F::TpSrc),
        "tp_dst" | "tcp_dst" | "udp_dst" | "sctp_dst" => Kw::Masked(F::TpDst),
        "icmp_type" | "icmpv6_type" => Kw::Icmp(F::TpSrc),
        "icmp_code" | "icmpv6_code" => Kw::Icmp(F::TpDst),
        "tcp_flags" => Kw::TcpFlags,
        "ipv6_src" => Kw::Masked(F::Ipv6Src),
        "ipv6_dst" => Kw::Masked(F::Ipv6Dst),
        "ipv6_label" => Kw::Ipv6Label,
        "arp_sha" => Kw::Masked(F::ArpSha),
        "arp_tha" => Kw::Masked(F::ArpTha),
        "tun_id" | "tunnel_id" => Kw::Masked(F::TunId),
        "tun_src" => Kw::Masked(F::TunSrc),
        "tun_dst" => Kw::Masked(F::TunDst),
        _ => {
            let (_, t, p) = SHORTHANDS.iter().find(|(n, _, _)| *n == name)?;
            Kw::Shorthand(*t, *p)
        }
    })
}

/// The match being built, with the piece that last wrote each field (to point errors at it).
pub(super) struct MatchBuilder<'a> {
    m: Match,
    origin: Vec<(Field, usize, &'a str)>,
}

impl<'a> MatchBuilder<'a> {
    pub fn new() -> Self {
        MatchBuilder {
            m: Match::any(),
            origin: Vec::new(),
        }
    }

    /// Writes `value` under `mask` into `field`, keeping the field's other bits, so `dl_vlan`
    /// and `dl_vlan_pcp` (or `ip_dscp` and `ip_ecn`) combine.
    fn merge(&mut self, field: Field, value: u128, mask: u128) {
        let (v, m) = self.m.field(field);
        self.m
            .set_field(field, (v & !mask) | (value & mask), m | mask);
    }

    /// Stops matching the `bits` of `field`.
    fn forget(&mut self, field: Field, bits: u128) {
        let (v, m) = self.m.field(field);
        self.m.set_field(field, v, m & !bits);
    }

    /// Parses one piece of the match part into the match.
    pub fn add(
        &mut self,
        p: &Piece<'a>,
        ports: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<(), FlowParseError> {
        let fail = |m: String| FlowParseError {
            pos: p.pos,
            token: p.text.to_string(),
            message: m,
        };
        let Some(kw) = keyword(p.key) else {
            return err(p.pos, p.text, format!("unknown field '{}'", p.key));
        };
        // ovs-ofctl reads a missing value as "0/0": any value, for the fields that allow it.
        let value = if p.value.is_empty() { "0/0" } else { p.value };
        let name = p.key;
        // A mask on a field OpenFlow does not let be masked: all ones is exact (`Some`), zero
        // is any (`None`).
        let exact = |bits: u32| -> Result<(u128, bool), FlowParseError> {
            let (v, m) = parse_int_masked(value, bits, name).map_err(fail)?;
            let all = (1u128 << bits) - 1;
            match m {
                0 => Ok((v, false)),
                m if m == all => Ok((v, true)),
                _ => Err(fail(format!(
                    "invalid mask for field {name} (it cannot be masked)"
                ))),
            }
        };
        let present = VLAN_PRESENT as u128;
        let mut wrote = vec![];
        match kw {
            Kw::Shorthand(t, proto) => {
                self.m.set_field(Field::EthType, t as u128, 0xffff);
                wrote.push(Field::EthType);
                if let Some(proto) = proto {
                    self.m.set_field(Field::NwProto, proto as u128, 0xff);
                    wrote.push(Field::NwProto);
                }
            }
            Kw::Oxm => {
                return err(
                    p.pos,
                    p.text,
                    format!(
                        "the OXM match field '{name}' is not supported by vswitch \
                         (use dl_vlan, dl_vlan_pcp or vlan_tci)"
                    ),
                )
            }
            Kw::Masked(f) => {
                let (v, m) = match f.kind() {
                    FieldKind::Mac => parse_mac_masked(value),
                    FieldKind::Ipv4 => parse_ipv4_masked(value),
                    FieldKind::Ipv6 => parse_ipv6_masked(value),
                    FieldKind::Dec | FieldKind::Hex => {
                        parse_int_masked(value, f.span().1 as u32 * 8, name)
                    }
                }
                .map_err(fail)?;
                self.m.set_field(f, v, m);
                wrote.push(f);
            }
            Kw::Exact(f, bits) => {
                match exact(bits)? {
                    (v, true) => self.m.set_field(f, v, f.all_ones()),
                    (_, false) => self.m.set_field(f, 0, 0),
                };
                wrote.push(f);
            }
            Kw::InPort => {
                if value.contains('/') {
                    return err(p.pos, p.text, "in_port cannot be masked");
                }
                let port = parse_port(value, ports).map_err(fail)?;
                self.m
                    .set_field(Field::InPort, port as u128, u32::MAX as u128);
                wrote.push(Field::InPort);
            }
            Kw::DlVlan => {
                let f = Field::VlanTci;
                let vid = VLAN_VID_MASK as u128;
                match exact(16)? {
                    // OpenFlow 1.0's "no VLAN tag".
                    (0xffff, true) => {
                        self.m.set_field(f, 0, 0xffff);
                    }
                    (0xffff, false) => {
                        self.m.set_field(f, 0, 0);
                    }
                    // Only the low 12 bits are the VLAN id (dl_vlan=4096 is VLAN 0).
                    (v, true) => self.merge(f, present | (v & vid), present | vid),
                    (_, false) => self.forget(f, vid),
                }
                wrote.push(f);
            }
            Kw::DlVlanPcp => {
                match exact(8)? {
                    (v, true) => {
                        self.merge(Field::VlanTci, present | ((v & 7) << 13), present | 0xe000)
                    }
                    (_, false) => self.forget(Field::VlanTci, 0xe000),
                }
                wrote.push(Field::VlanTci);
            }
            Kw::NwTos => {
                match exact(8)? {
                    (v, true) => self.merge(Field::NwTos, v & 0xfc, 0xfc),
                    (_, false) => self.forget(Field::NwTos, 0xfc),
                }
                wrote.push(Field::NwTos);
            }
            Kw::IpDscp => {
                match exact(8)? {
                    (v, true) => self.merge(Field::NwTos, (v << 2) & 0xfc, 0xfc),
                    (_, false) => self.forget(Field::NwTos, 0xfc),
                }
                wrote.push(Field::NwTos);
            }
            Kw::IpEcn => {
                match exact(8)? {
                    (v, true) => self.merge(Field::NwTos, v & 0x03, 0x03),
                    (_, false) => self.forget(Field::NwTos, 0x03),
                }
                wrote.push(Field::NwTos);
            }
            Kw::IpFrag => {
                let lv = p.value.to_ascii_lowercase();
                let Some((_, v, m)) = IP_FRAG.iter().find(|(n, _, _)| *n == lv) else {
                    return err(
                        p.pos,
                        p.text,
                        format!(
                            "'{}' is not a fragment type (no, yes, first, later, not_later)",
                            p.value
                        ),
                    );
                };
                self.m.set_field(Field::NwFrag, *v as u128, *m as u128);
                wrote.push(Field::NwFrag);
            }
            Kw::Icmp(f) => {
                match exact(8)? {
                    (v, true) => self.m.set_field(f, v, 0xffff),
                    (_, false) => self.m.set_field(f, 0, 0),
                };
                wrote.push(f);
            }
            Kw::ArpOp => {
                // The key keeps the opcode's low byte, as OpenFlow 1.0 does (arp_op=256 is 0).
                match exact(16)? {
                    (v, true) => self.m.set_field(Field::NwProto, v & 0xff, 0xff),
                    (_, false) => self.m.set_field(Field::NwProto, 0, 0),
                };
                wrote.push(Field::NwProto);
            }
            Kw::TcpFlags => {
                let (v, m) = parse_tcp_flags(value).map_err(fail)?;
                self.m.set_field(Field::TcpFlags, v as u128, m as u128);
                wrote.push(Field::TcpFlags);
            }
            Kw::Ipv6Label => {
                let (v, m) = parse_int_masked(value, 32, name).map_err(fail)?;
                if v > 0xfffff {
                    return err(p.pos, p.text, "ipv6_label value out of range (max 0xfffff)");
                }
                // The label is 20 bits; mask bits above them mean nothing.
                self.m.set_field(Field::Ipv6Label, v, m & 0xfffff);
                wrote.push(Field::Ipv6Label);
            }
        }
        for f in wrote {
            self.origin.push((f, p.pos, p.text));
        }
        Ok(())
    }

    /// The match, once its prerequisites are checked (the error points at the piece that last
    /// wrote the field lacking one; `whole` is the flow, for when none did).
    pub fn finish(mut self, whole: &str) -> Result<Match, FlowParseError> {
        // In an ICMP match the transport fields are ICMP's one-byte type and code, which
        // OpenFlow does not let be masked: ovs-ofctl keeps the low byte of the masked value,
        // exact (`icmp,tp_dst=0x105/0xff00` is `icmp_code=0`).
        let exact = |f: Field| {
            let (v, m) = self.m.field(f);
            (m == f.all_ones()).then_some(v)
        };
        let (eth, proto) = (exact(Field::EthType), exact(Field::NwProto));
        let icmp = (eth, proto) == (Some(ethertype::IPV4 as u128), Some(ipproto::ICMP as u128))
            || (eth, proto) == (Some(ethertype::IPV6 as u128), Some(ipproto::ICMPV6 as u128));
        if icmp {
            for f in [Field::TpSrc, Field::TpDst] {
                let (v, m) = self.m.field(f);
                if m != 0 {
                    self.m.set_field(f, v & m & 0xff, 0xffff);
                }
            }
        }
        if let Err(e) = self.m.validate() {
            let (pos, tok) = self
                .origin
                .iter()
                .rev()
                .find(|(f, _, _)| *f == e.field)
                .map(|&(_, p, t)| (p, t))
                .unwrap_or((0, whole));
            return err(pos, tok, e.to_string());
        }
        Ok(self.m)
    }
}

/// Reads `tcp_flags`: a number (`0x12`, `0x12/0x12`), flag names joined by `|` (`syn|ack`,
/// all others clear), or `+flag`/`-flag` lists (`+syn-ack`, others don't care).
fn parse_tcp_flags(s: &str) -> Result<(u16, u16), String> {
    let bit = |name: &str| -> Result<u16, String> {
        TCP_FLAGS
            .iter()
            .position(|n| *n == name)
            .map(|i| 1 << i)
            .ok_or_else(|| format!("unknown TCP flag '{name}' in '{s}'"))
    };
    if s.starts_with(['+', '-']) {
        let (mut v, mut m) = (0u16, 0u16);
        let mut rest = s;
        while let Some(sign) = rest.chars().next() {
            rest = &rest[1..];
            let end = rest.find(['+', '-']).unwrap_or(rest.len());
            let b = bit(&rest[..end])?;
            if m & b != 0 {
                return Err(format!("TCP flag '{}' given twice", &rest[..end]));
            }
            m |= b;
            if sign == '+' {
                v |= b;
            }
            rest = &rest[end..];
        }
        return Ok((v, m));
    }
    if let Ok((v, m)) = parse_int_masked(s, 16, "tcp_flags") {
        let m = if s.contains('/') {
            m
        } else {
            TCP_FLAGS_MASK as u128
        };
        if v > TCP_FLAGS_MASK as u128 || m > TCP_FLAGS_MASK as u128 {
            return Err(format!("'{s}': unknown TCP flags (only 0xfff are flags)"));
        }
        return Ok((v as u16, m as u16));
    }
    // Names: `syn|ack`, a trailing `|` allowed.
    let names = s.strip_suffix('|').unwrap_or(s);
    let mut v = 0;
    for name in names.split('|') {
        v |= bit(name)?;
    }
    Ok((v, TCP_FLAGS_MASK))
}
