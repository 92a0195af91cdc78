//! The flow syntax of ovs-ofctl: parsing `add-flow`/`mod-flows`/`del-flows` strings and printing
//! rules as `dump-flows` does.
//!
//! ```
//! use flow_table::flow_syntax::{parse_flow, FlowMode};
//!
//! let ports = |name: &str| (name == "vm1").then_some(7);
//! let f = parse_flow(
//!     "table=0,priority=100,in_port=vm1,nw_src=10.0.0.0/24,tcp,tp_dst=80,actions=output:2",
//!     FlowMode::Add,
//!     &ports,
//! )
//! .unwrap();
//! assert_eq!(f.priority, 100);
//! assert_eq!(
//!     flow_table::flow_syntax::format_match(&f.r#match),
//!     "tcp,in_port=7,nw_src=10.0.0.0/24,tp_dst=80"
//! );
//! ```
//!
//! The printer writes only forms the parser reads back, so a dumped flow can be fed to
//! `add-flow` again and give the same match and actions.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::actions::{Action, SetField};
use crate::fields::{Field, FieldKind};
use crate::key::{ethertype, ipproto, FRAG_ANY, FRAG_LATER, VLAN_PRESENT, VLAN_VID_MASK};
use crate::matches::Match;
use crate::rule::{Rule, RuleSpec};
use crate::tables::{RuleFilter, N_TABLES};

/// The priority OpenFlow gives a flow that does not state one.
pub const DEFAULT_PRIORITY: u16 = 32768;

/// Which ovs-ofctl command the flow is for; decides whether actions are required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowMode {
    /// `add-flow`: actions are required; `cookie=` sets the new rule's cookie.
    Add,
    /// `mod-flows`: actions are required; `cookie=V/M` selects rules, `cookie=V` sets the cookie.
    Modify,
    /// `del-flows`: a match only (actions are an error); `cookie=` and `out_port=` select rules.
    Delete,
}

/// A flow string, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedFlow {
    /// `table=`: one table, or `None` when not given (table 0 for adds, every table otherwise).
    pub table: Option<u8>,
    /// `priority=`, [`DEFAULT_PRIORITY`] when not given.
    pub priority: u16,
    /// The match, already validated.
    pub r#match: Match,
    /// The actions (`drop` gives an empty list, which OpenFlow treats as drop).
    pub actions: Vec<Action>,
    /// `cookie=`: the new cookie, or the value to select with under `cookie_mask`.
    pub cookie: u64,
    /// Cookie bits a modify/delete compares (0 = any rule). A plain `cookie=V` in
    /// [`FlowMode::Delete`] compares every bit.
    pub cookie_mask: u64,
    /// `idle_timeout=` in seconds (0 = none).
    pub idle_timeout: u16,
    /// `hard_timeout=` in seconds (0 = none).
    pub hard_timeout: u16,
    /// `out_port=`: modify/delete only rules that output to this port.
    pub out_port: Option<u32>,
}

impl ParsedFlow {
    /// The rule to install (`add-flow`); a missing table means table 0.
    pub fn to_rule_spec(&self) -> RuleSpec {
        RuleSpec {
            table: self.table.unwrap_or(0),
            priority: self.priority,
            r#match: self.r#match,
            actions: self.actions.clone(),
            cookie: self.cookie,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
        }
    }

    /// The selection of rules for `mod-flows`/`del-flows` (strictness is the caller's choice,
    /// as it is a command-line option and not part of the flow).
    pub fn to_rule_filter(&self) -> RuleFilter {
        RuleFilter {
            table: self.table,
            r#match: self.r#match,
            priority: self.priority,
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            out_port: self.out_port,
        }
    }
}

/// A flow string that cannot be parsed, pointing at the offending token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowParseError {
    /// Byte offset of the token in the input.
    pub pos: usize,
    /// The offending token (empty when something is missing at the end).
    pub token: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FlowParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.token.is_empty() {
            write!(f, "{} (at column {})", self.message, self.pos + 1)
        } else {
            write!(
                f,
                "{}: {} (at column {})",
                self.token,
                self.message,
                self.pos + 1
            )
        }
    }
}

impl std::error::Error for FlowParseError {}

fn err<T>(pos: usize, token: &str, message: impl Into<String>) -> Result<T, FlowParseError> {
    Err(FlowParseError {
        pos,
        token: token.to_string(),
        message: message.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Reads an unsigned integer, hexadecimal with `0x` as ovs-ofctl accepts.
fn parse_uint(s: &str) -> Option<u128> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() {
            return None;
        }
        u128::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Reads an integer no greater than `max`.
fn parse_max(s: &str, max: u128, what: &str) -> Result<u128, String> {
    match parse_uint(s) {
        Some(v) if v <= max => Ok(v),
        Some(_) => Err(format!("{what} value '{s}' out of range (max {max})")),
        None => Err(format!("'{s}' is not a valid {what}")),
    }
}

fn parse_mac(s: &str) -> Option<u128> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut v = 0u128;
    for p in parts {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        v = (v << 8) | u8::from_str_radix(p, 16).ok()? as u128;
    }
    Some(v)
}

fn mac_bytes(v: u128) -> [u8; 6] {
    let b = (v as u64).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn prefix_mask(len: u32, bits: u32) -> u128 {
    let all = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if len == 0 {
        0
    } else {
        (all << (bits - len)) & all
    }
}

/// The prefix length of `mask` when it is a CIDR prefix of a `bits`-wide field.
fn prefix_len(mask: u128, bits: u32) -> Option<u32> {
    let len = mask.count_ones();
    (prefix_mask(len, bits) == mask).then_some(len)
}

/// Reads `value[/mask]` of `field` as its kind says (addresses take `/len` as well).
fn parse_field_value(field: Field, s: &str) -> Result<(u128, u128), String> {
    let (v, m) = match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    };
    let all = field.all_ones();
    let name = field.name();
    let one = |t: &str, is_mask: bool| -> Result<u128, String> {
        let what = if is_mask { "mask" } else { "value" };
        match field.kind() {
            FieldKind::Mac => {
                parse_mac(t).ok_or_else(|| format!("'{t}' is not a valid MAC {what}"))
            }
            FieldKind::Ipv4 => {
                if is_mask && !t.contains('.') {
                    let len = parse_max(t, 32, "prefix length")?;
                    return Ok(prefix_mask(len as u32, 32));
                }
                t.parse::<Ipv4Addr>()
                    .map(|a| u32::from(a) as u128)
                    .map_err(|_| format!("'{t}' is not a valid IPv4 {what}"))
            }
            FieldKind::Ipv6 => {
                if is_mask && !t.contains(':') {
                    let len = parse_max(t, 128, "prefix length")?;
                    return Ok(prefix_mask(len as u32, 128));
                }
                t.parse::<Ipv6Addr>()
                    .map(u128::from)
                    .map_err(|_| format!("'{t}' is not a valid IPv6 {what}"))
            }
            FieldKind::Dec | FieldKind::Hex => parse_max(t, all, &format!("{name} {what}")),
        }
    };
    let value = one(v, false)?;
    let mask = match m {
        Some(m) => one(m, true)?,
        None => all,
    };
    Ok((value, mask))
}

/// Resolves a port given as a number or as a name known to `ports`.
fn parse_port(s: &str, ports: &dyn Fn(&str) -> Option<u32>) -> Result<u32, String> {
    if let Some(v) = parse_uint(s) {
        return u32::try_from(v).map_err(|_| format!("port number '{s}' out of range"));
    }
    ports(s).ok_or_else(|| format!("unknown port '{s}'"))
}

/// TCP flag names, for `tcp_flags=+syn-ack`.
const TCP_FLAGS: [(&str, u16); 9] = [
    ("fin", 0x001),
    ("syn", 0x002),
    ("rst", 0x004),
    ("psh", 0x008),
    ("ack", 0x010),
    ("urg", 0x020),
    ("ece", 0x040),
    ("cwr", 0x080),
    ("ns", 0x100),
];

/// The TCP flags bits the key holds.
const TCP_FLAGS_MASK: u16 = 0x0fff;

fn parse_tcp_flags(s: &str) -> Result<(u128, u128), String> {
    if !s.starts_with(['+', '-']) {
        let (v, m) = match s.split_once('/') {
            Some((v, m)) => (v, Some(m)),
            None => (s, None),
        };
        // With an explicit mask the whole 16-bit key field may be named (an exact key's mask).
        let (max, m) = match m {
            Some(m) => (0xffff, parse_max(m, 0xffff, "tcp_flags mask")?),
            None => (TCP_FLAGS_MASK as u128, TCP_FLAGS_MASK as u128),
        };
        let v = parse_max(v, max, "tcp_flags value")?;
        return Ok((v, m));
    }
    // `+flag` requires the flag set, `-flag` requires it clear; other flags are don't-care.
    let (mut v, mut m) = (0u16, 0u16);
    let mut rest = s;
    while !rest.is_empty() {
        let set = rest.starts_with('+');
        if !set && !rest.starts_with('-') {
            return Err(format!("expected '+' or '-' in tcp_flags '{s}'"));
        }
        rest = &rest[1..];
        let end = rest.find(['+', '-']).unwrap_or(rest.len());
        let name = &rest[..end];
        let bit = TCP_FLAGS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, b)| *b)
            .ok_or_else(|| format!("unknown TCP flag '{name}'"))?;
        if m & bit != 0 {
            return Err(format!("TCP flag '{name}' given twice"));
        }
        m |= bit;
        if set {
            v |= bit;
        }
        rest = &rest[end..];
    }
    Ok((v as u128, m as u128))
}

/// `ip_frag` names as ovs-ofctl defines them, with their (value, mask) on `nw_frag`.
const IP_FRAG: [(&str, u8, u8); 5] = [
    ("no", 0, FRAG_ANY),
    ("yes", FRAG_ANY, FRAG_ANY),
    ("first", FRAG_ANY, FRAG_ANY | FRAG_LATER),
    ("later", FRAG_ANY | FRAG_LATER, FRAG_ANY | FRAG_LATER),
    ("not_later", 0, FRAG_LATER),
];

// ---------------------------------------------------------------------------------------------
// Match fields
// ---------------------------------------------------------------------------------------------

/// What a match keyword does.
#[derive(Clone, Copy)]
enum Kw {
    /// A plain field, `value[/mask]` read by its kind.
    Field(Field),
    InPort,
    DlVlan,
    DlVlanPcp,
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
}

fn keyword(name: &str) -> Option<Kw> {
    use Field as F;
    Some(match name {
        "in_port" => Kw::InPort,
        "dl_src" | "eth_src" => Kw::Field(F::EthSrc),
        "dl_dst" | "eth_dst" => Kw::Field(F::EthDst),
        "dl_type" | "eth_type" => Kw::Field(F::EthType),
        "dl_vlan" => Kw::DlVlan,
        "dl_vlan_pcp" => Kw::DlVlanPcp,
        "vlan_tci" => Kw::Field(F::VlanTci),
        "inner_vlan_tci" => Kw::Field(F::InnerVlanTci),
        "nw_src" | "ip_src" | "arp_spa" => Kw::Field(F::NwSrc),
        "nw_dst" | "ip_dst" | "arp_tpa" => Kw::Field(F::NwDst),
        "nw_proto" | "ip_proto" => Kw::Field(F::NwProto),
        "arp_op" => Kw::ArpOp,
        "nw_tos" => Kw::Field(F::NwTos),
        "ip_dscp" => Kw::IpDscp,
        "ip_ecn" | "nw_ecn" => Kw::IpEcn,
        "nw_ttl" => Kw::Field(F::NwTtl),
        "ip_frag" => Kw::IpFrag,
        "nw_frag" => Kw::Field(F::NwFrag),
        "tp_src" | "tcp_src" | "udp_src" | "sctp_src" => Kw::Field(F::TpSrc),
        "tp_dst" | "tcp_dst" | "udp_dst" | "sctp_dst" => Kw::Field(F::TpDst),
        "icmp_type" | "icmpv6_type" => Kw::Icmp(F::TpSrc),
        "icmp_code" | "icmpv6_code" => Kw::Icmp(F::TpDst),
        "tcp_flags" => Kw::TcpFlags,
        "ipv6_src" => Kw::Field(F::Ipv6Src),
        "ipv6_dst" => Kw::Field(F::Ipv6Dst),
        "ipv6_label" => Kw::Ipv6Label,
        "arp_sha" => Kw::Field(F::ArpSha),
        "arp_tha" => Kw::Field(F::ArpTha),
        "tun_id" | "tunnel_id" => Kw::Field(F::TunId),
        "tun_src" => Kw::Field(F::TunSrc),
        "tun_dst" => Kw::Field(F::TunDst),
        _ => return shorthand(name).map(|(t, p)| Kw::Shorthand(t, p)),
    })
}

/// The shorthands, each a dl_type and maybe an nw_proto.
const SHORTHANDS: [(&str, u16, Option<u8>); 12] = [
    ("ip", ethertype::IPV4, None),
    ("ipv6", ethertype::IPV6, None),
    ("arp", ethertype::ARP, None),
    ("icmp", ethertype::IPV4, Some(ipproto::ICMP)),
    ("tcp", ethertype::IPV4, Some(ipproto::TCP)),
    ("udp", ethertype::IPV4, Some(ipproto::UDP)),
    ("sctp", ethertype::IPV4, Some(ipproto::SCTP)),
    ("icmp6", ethertype::IPV6, Some(ipproto::ICMPV6)),
    ("tcp6", ethertype::IPV6, Some(ipproto::TCP)),
    ("udp6", ethertype::IPV6, Some(ipproto::UDP)),
    ("sctp6", ethertype::IPV6, Some(ipproto::SCTP)),
    ("ipv4", ethertype::IPV4, None),
];

fn shorthand(name: &str) -> Option<(u16, Option<u8>)> {
    SHORTHANDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, p)| (*t, *p))
}

/// The name a keyword is remembered under to catch a field given twice.
fn slot(kw: Kw) -> &'static str {
    match kw {
        Kw::Field(f) | Kw::Icmp(f) => f.name(),
        Kw::InPort => "in_port",
        Kw::DlVlan => "dl_vlan",
        Kw::DlVlanPcp => "dl_vlan_pcp",
        Kw::IpDscp => "ip_dscp",
        Kw::IpEcn => "ip_ecn",
        Kw::IpFrag => "nw_frag",
        Kw::ArpOp => "nw_proto",
        Kw::TcpFlags => "tcp_flags",
        Kw::Ipv6Label => "ipv6_label",
        Kw::Shorthand(..) => "",
    }
}

/// Slots that write overlapping bits of one field, so giving both is a duplicate too.
fn overlaps(a: &str, b: &str) -> bool {
    let pair = |x: &str, y: &str| (a == x && b == y) || (a == y && b == x);
    a == b
        || pair("vlan_tci", "dl_vlan")
        || pair("vlan_tci", "dl_vlan_pcp")
        || pair("nw_tos", "ip_dscp")
        || pair("nw_tos", "ip_ecn")
}

/// The parse state of one flow.
struct Builder<'a> {
    m: Match,
    /// Slots set by `name=value`.
    slots: Vec<&'static str>,
    /// Which token last wrote each field, to point validation errors at it.
    origin: Vec<(Field, usize, &'a str)>,
}

impl<'a> Builder<'a> {
    /// Writes `value` under `mask` into `field`, keeping the field's other masked bits, so
    /// `dl_vlan` and `dl_vlan_pcp` (or `ip_dscp` and `ip_ecn`) combine.
    fn merge(&mut self, field: Field, value: u128, mask: u128) {
        let (v, m) = self.m.field(field);
        self.m
            .set_field(field, (v & !mask) | (value & mask), m | mask);
    }

    /// Remembers that `tok` wrote the fields of `kw`.
    fn note(&mut self, kw: Kw, pos: usize, tok: &'a str) {
        let fields: Vec<Field> = match kw {
            Kw::Field(f) | Kw::Icmp(f) => vec![f],
            Kw::InPort => vec![Field::InPort],
            Kw::DlVlan | Kw::DlVlanPcp => vec![Field::VlanTci],
            Kw::IpDscp | Kw::IpEcn => vec![Field::NwTos],
            Kw::IpFrag => vec![Field::NwFrag],
            Kw::ArpOp => vec![Field::NwProto],
            Kw::TcpFlags => vec![Field::TcpFlags],
            Kw::Ipv6Label => vec![Field::Ipv6Label],
            Kw::Shorthand(_, p) => {
                let mut v = vec![Field::EthType];
                if p.is_some() {
                    v.push(Field::NwProto);
                }
                v
            }
        };
        for f in fields {
            self.origin.push((f, pos, tok));
        }
    }
}

/// Parses one `name=value` (or bare shorthand) match token into `b`.
fn parse_match_token<'a>(
    b: &mut Builder<'a>,
    name: &str,
    value: Option<&str>,
    pos: usize,
    tok: &'a str,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<(), FlowParseError> {
    let lname = name.to_ascii_lowercase();
    let Some(kw) = keyword(&lname) else {
        return err(pos, tok, format!("unknown field '{name}'"));
    };
    let fail = |m: String| FlowParseError {
        pos,
        token: tok.to_string(),
        message: m,
    };
    if let Kw::Shorthand(t, p) = kw {
        if value.is_some() {
            return err(pos, tok, format!("'{lname}' takes no value"));
        }
        // A shorthand may repeat what another said (`ip,dl_type=0x800`) but not contradict it.
        let (v, m) = b.m.field(Field::EthType);
        if m != 0 && (v, m) != (t as u128, 0xffff) {
            return err(
                pos,
                tok,
                format!("'{lname}' conflicts with an earlier dl_type"),
            );
        }
        b.m.set_field(Field::EthType, t as u128, 0xffff);
        if let Some(p) = p {
            let (v, m) = b.m.field(Field::NwProto);
            if m != 0 && (v, m) != (p as u128, 0xff) {
                return err(
                    pos,
                    tok,
                    format!("'{lname}' conflicts with an earlier nw_proto"),
                );
            }
            b.m.set_field(Field::NwProto, p as u128, 0xff);
        }
        b.note(kw, pos, tok);
        return Ok(());
    }
    let Some(value) = value else {
        return err(
            pos,
            tok,
            format!("field '{lname}' needs a value ('{lname}=...')"),
        );
    };
    if value.is_empty() {
        return err(pos, tok, format!("field '{lname}' has an empty value"));
    }
    let s = slot(kw);
    if let Some(prev) = b.slots.iter().find(|p| overlaps(p, s)) {
        let msg = if *prev == s {
            format!("field '{lname}' given more than once")
        } else {
            format!("field '{lname}' overlaps the earlier '{prev}'")
        };
        return err(pos, tok, msg);
    }
    match kw {
        Kw::Field(f) => {
            let (v, m) = parse_field_value(f, value).map_err(fail)?;
            // The shorthands set dl_type/nw_proto too: an explicit value may only agree.
            if matches!(f, Field::EthType | Field::NwProto) {
                let (ov, om) = b.m.field(f);
                if om != 0 && (ov, om) != (v & m, m) {
                    return err(
                        pos,
                        tok,
                        format!("'{lname}' conflicts with an earlier shorthand"),
                    );
                }
            }
            b.m.set_field(f, v, m);
        }
        Kw::InPort if value.contains('/') => {
            let (v, m) = parse_field_value(Field::InPort, value).map_err(fail)?;
            b.m.set_field(Field::InPort, v, m);
        }
        Kw::InPort => {
            let p = parse_port(value, ports).map_err(fail)?;
            b.m.set_field(Field::InPort, p as u128, u32::MAX as u128);
        }
        Kw::DlVlan => {
            let v = parse_max(value, 0xffff, "dl_vlan").map_err(fail)?;
            if v == 0xffff {
                // OpenFlow 1.0's "no VLAN tag".
                b.m.set_field(Field::VlanTci, 0, 0xffff);
            } else if v > VLAN_VID_MASK as u128 {
                return err(
                    pos,
                    tok,
                    format!("dl_vlan {v} out of range (0-4095, or 0xffff for none)"),
                );
            } else {
                let present = VLAN_PRESENT as u128;
                b.merge(Field::VlanTci, present | v, present | VLAN_VID_MASK as u128);
            }
        }
        Kw::DlVlanPcp => {
            let v = parse_max(value, 7, "dl_vlan_pcp").map_err(fail)?;
            let present = VLAN_PRESENT as u128;
            b.merge(Field::VlanTci, present | (v << 13), present | 0xe000);
        }
        Kw::IpDscp => {
            let v = parse_max(value, 63, "ip_dscp").map_err(fail)?;
            b.merge(Field::NwTos, v << 2, 0xfc);
        }
        Kw::IpEcn => {
            let v = parse_max(value, 3, "ip_ecn").map_err(fail)?;
            b.merge(Field::NwTos, v, 0x03);
        }
        Kw::IpFrag => {
            let lv = value.to_ascii_lowercase();
            let Some((_, v, m)) = IP_FRAG.iter().find(|(n, _, _)| *n == lv) else {
                return err(
                    pos,
                    tok,
                    format!("'{value}' is not an ip_frag value (no, yes, first, later, not_later)"),
                );
            };
            b.m.set_field(Field::NwFrag, *v as u128, *m as u128);
        }
        Kw::Icmp(f) => {
            let v = parse_max(value, 255, &lname).map_err(fail)?;
            b.m.set_field(f, v, 0xffff);
        }
        Kw::ArpOp => {
            // The key keeps the opcode's low byte only.
            let v = parse_max(value, 255, "arp_op").map_err(fail)?;
            b.m.set_field(Field::NwProto, v, 0xff);
        }
        Kw::TcpFlags => {
            let (v, m) = parse_tcp_flags(value).map_err(fail)?;
            b.m.set_field(Field::TcpFlags, v, m);
        }
        Kw::Ipv6Label => {
            let (v, m) = match value.split_once('/') {
                Some((v, m)) => (v, Some(m)),
                None => (value, None),
            };
            let v = parse_max(v, 0xfffff, "ipv6_label").map_err(fail)?;
            let m = match m {
                // The key field is 32 bits wide; an exact key's mask covers all of them.
                Some(m) => parse_max(m, u32::MAX as u128, "ipv6_label mask").map_err(fail)?,
                None => 0xfffff,
            };
            b.m.set_field(Field::Ipv6Label, v, m);
        }
        Kw::Shorthand(..) => unreachable!("handled above"),
    }
    b.slots.push(s);
    b.note(kw, pos, tok);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Splits at commas and whitespace, keeping byte offsets; empty pieces are dropped so that
/// `dump-flows` output (`, ` separators) reads back.
fn split_fields(s: &str, base: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == ',' || c.is_whitespace() {
            if i > start {
                out.push((base + start, &s[start..i]));
            }
            start = i + c.len_utf8();
        }
    }
    if s.len() > start {
        out.push((base + start, &s[start..]));
    }
    out
}

/// Where `actions=` starts (at a token boundary, any case), as everything after it is actions.
fn find_actions(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("actions=") {
        let at = from + i;
        let boundary = at == 0
            || lower[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c == ',' || c.is_whitespace());
        if boundary {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Adds `s[a..b]` without surrounding whitespace, at its offset in the input.
fn push_trimmed<'s>(out: &mut Vec<(usize, &'s str)>, s: &'s str, base: usize, a: usize, b: usize) {
    let raw = &s[a..b];
    let trimmed = raw.trim_start();
    let lead = raw.len() - trimmed.len();
    out.push((base + a + lead, trimmed.trim_end()));
}

/// Splits the action list at top-level commas (commas inside parentheses belong to the action).
fn split_actions(s: &str, base: usize) -> Result<Vec<(usize, &str)>, FlowParseError> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                if depth == 0 {
                    return err(base + i, ")", "unbalanced parentheses: ')' without '('");
                }
                depth -= 1;
            }
            ',' if depth == 0 => {
                push_trimmed(&mut out, s, base, start, i);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        let tok = &s[start..];
        let lead = tok.len() - tok.trim_start().len();
        return err(
            base + start + lead,
            tok.trim(),
            "unbalanced parentheses: '(' without ')'",
        );
    }
    push_trimmed(&mut out, s, base, start, s.len());
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

/// Parses the value of `set_field:VALUE->FIELD` into the rewrite it means.
fn parse_set_field(value: &str, field: &str) -> Result<SetField, String> {
    let f = field.to_ascii_lowercase();
    let mac = |v: &str| {
        parse_mac(v)
            .map(mac_bytes)
            .ok_or(format!("'{v}' is not a valid MAC"))
    };
    let ip = |v: &str| {
        v.parse::<Ipv4Addr>()
            .map(u32::from)
            .map_err(|_| format!("'{v}' is not a valid IPv4 address"))
    };
    Ok(match f.as_str() {
        "eth_src" | "dl_src" => SetField::EthSrc(mac(value)?),
        "eth_dst" | "dl_dst" => SetField::EthDst(mac(value)?),
        "vlan_vid" | "dl_vlan" => SetField::VlanVid(parse_max(value, 4095, "vlan_vid")? as u16),
        "vlan_pcp" | "dl_vlan_pcp" => SetField::VlanPcp(parse_max(value, 7, "vlan_pcp")? as u8),
        "ip_src" | "nw_src" => SetField::Ipv4Src(ip(value)?),
        "ip_dst" | "nw_dst" => SetField::Ipv4Dst(ip(value)?),
        "ip_dscp" => SetField::IpTos((parse_max(value, 63, "ip_dscp")? as u8) << 2),
        "nw_tos" => SetField::IpTos(parse_tos(value)?),
        "nw_ttl" | "ip_ttl" => SetField::IpTtl(parse_max(value, 255, "nw_ttl")? as u8),
        "tcp_src" | "udp_src" | "sctp_src" | "tp_src" => {
            SetField::TpSrc(parse_max(value, 0xffff, "port")? as u16)
        }
        "tcp_dst" | "udp_dst" | "sctp_dst" | "tp_dst" => {
            SetField::TpDst(parse_max(value, 0xffff, "port")? as u16)
        }
        "tun_id" | "tunnel_id" => {
            SetField::TunId(parse_max(value, u64::MAX as u128, "tun_id")? as u64)
        }
        _ => return Err(format!("set_field cannot write field '{field}'")),
    })
}

/// A TOS byte for `mod_nw_tos`: only the DSCP bits may be set, as the ECN bits are kept.
fn parse_tos(value: &str) -> Result<u8, String> {
    let v = parse_max(value, 255, "nw_tos")? as u8;
    if v & 0x03 != 0 {
        return Err(format!(
            "nw_tos {v} sets ECN bits (must be a multiple of 4)"
        ));
    }
    Ok(v)
}

fn parse_table(s: &str) -> Result<u8, String> {
    Ok(parse_max(s, (N_TABLES - 1) as u128, "table")? as u8)
}

/// The argument of an action that requires one.
fn need<'s>(a: Option<&'s str>, lname: &str) -> Result<&'s str, String> {
    match a {
        Some(a) if !a.is_empty() => Ok(a),
        _ => Err(format!("action '{lname}' needs an argument")),
    }
}

/// Parses one action. `Ok(None)` is `drop`.
fn parse_action(tok: &str, ports: &dyn Fn(&str) -> Option<u32>) -> Result<Option<Action>, String> {
    if tok.is_empty() {
        return Err("empty action".into());
    }
    // `name(args)`, `name:arg` or a bare word.
    let (name, arg) = if let Some(i) = tok.find('(') {
        if !tok.ends_with(')') {
            return Err("text after ')'".into());
        }
        (&tok[..i], Some(&tok[i + 1..tok.len() - 1]))
    } else if let Some((n, a)) = tok.split_once(':') {
        (n, Some(a))
    } else {
        (tok, None)
    };
    let lname = name.to_ascii_lowercase();
    let none = |a: Option<&str>| -> Result<(), String> {
        match a {
            None => Ok(()),
            Some(_) => Err(format!("action '{lname}' takes no argument")),
        }
    };
    let set = |s: SetField| Ok(Some(Action::Set(s)));
    match lname.as_str() {
        "output" => Ok(Some(Action::Output(parse_port(need(arg, &lname)?, ports)?))),
        "normal" => none(arg).map(|_| Some(Action::Normal)),
        "flood" => none(arg).map(|_| Some(Action::Flood)),
        "in_port" => none(arg).map(|_| Some(Action::InPort)),
        "drop" => none(arg).map(|_| None),
        "strip_vlan" | "pop_vlan" => none(arg).map(|_| Some(Action::PopVlan)),
        "dec_ttl" => none(arg).map(|_| Some(Action::DecTtl)),
        "push_vlan" => {
            let a = need(arg, &lname)?;
            let t = parse_max(a, 0xffff, "push_vlan ethertype")? as u16;
            if t != ethertype::VLAN && t != ethertype::QINQ {
                return Err(format!("push_vlan ethertype {a} must be 0x8100 or 0x88a8"));
            }
            Ok(Some(Action::PushVlan(t)))
        }
        "mod_vlan_vid" => set(SetField::VlanVid(
            parse_max(need(arg, &lname)?, 4095, "mod_vlan_vid")? as u16,
        )),
        "mod_vlan_pcp" => set(SetField::VlanPcp(
            parse_max(need(arg, &lname)?, 7, "mod_vlan_pcp")? as u8,
        )),
        "mod_dl_src" | "mod_dl_dst" => {
            let a = need(arg, &lname)?;
            let m = parse_mac(a)
                .map(mac_bytes)
                .ok_or(format!("'{a}' is not a valid MAC"))?;
            set(if lname == "mod_dl_src" {
                SetField::EthSrc(m)
            } else {
                SetField::EthDst(m)
            })
        }
        "mod_nw_src" | "mod_nw_dst" => {
            let a = need(arg, &lname)?;
            let ip = a
                .parse::<Ipv4Addr>()
                .map(u32::from)
                .map_err(|_| format!("'{a}' is not a valid IPv4 address"))?;
            set(if lname == "mod_nw_src" {
                SetField::Ipv4Src(ip)
            } else {
                SetField::Ipv4Dst(ip)
            })
        }
        "mod_nw_tos" => set(SetField::IpTos(parse_tos(need(arg, &lname)?)?)),
        "mod_nw_ttl" => set(SetField::IpTtl(
            parse_max(need(arg, &lname)?, 255, "mod_nw_ttl")? as u8,
        )),
        "mod_tp_src" => set(SetField::TpSrc(
            parse_max(need(arg, &lname)?, 0xffff, "mod_tp_src")? as u16,
        )),
        "mod_tp_dst" => set(SetField::TpDst(
            parse_max(need(arg, &lname)?, 0xffff, "mod_tp_dst")? as u16,
        )),
        "set_tunnel" | "set_tunnel64" => {
            set(SetField::TunId(
                parse_max(need(arg, &lname)?, u64::MAX as u128, "set_tunnel")? as u64,
            ))
        }
        "set_field" => {
            let a = need(arg, &lname)?;
            let Some((v, f)) = a.split_once("->") else {
                return Err("set_field needs VALUE->FIELD".into());
            };
            set(parse_set_field(v, f)?)
        }
        "goto_table" => Ok(Some(Action::GotoTable(parse_table(need(arg, &lname)?)?))),
        "resubmit" => {
            let a = need(arg, &lname)?;
            let (port, table) = match a.split_once(',') {
                Some((p, t)) if tok.contains('(') => (p.trim(), Some(t.trim())),
                Some(_) => return Err("use resubmit(port,table) for a table".into()),
                None => (a.trim(), None),
            };
            let port = if port.is_empty() {
                None
            } else {
                Some(parse_port(port, ports)?)
            };
            let table = match table {
                Some(t) if !t.is_empty() => Some(parse_table(t)?),
                _ => None,
            };
            if port.is_none() && table.is_none() {
                return Err("resubmit needs a port or a table".into());
            }
            Ok(Some(Action::Resubmit { port, table }))
        }
        _ if arg.is_none() => match parse_port(tok, ports) {
            // A bare port number or name is an output, as in `actions=2`.
            Ok(p) => Ok(Some(Action::Output(p))),
            Err(_) => Err(format!("unknown action or port '{tok}'")),
        },
        _ => Err(format!("unknown action '{name}'")),
    }
}

/// Parses an action list (the text after `actions=`); `base` is its byte offset in the input.
pub fn parse_actions(
    s: &str,
    base: usize,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<Vec<Action>, FlowParseError> {
    let toks = split_actions(s, base)?;
    let mut out = Vec::new();
    let mut drop_at = None;
    for &(pos, tok) in &toks {
        match parse_action(tok, ports) {
            Ok(Some(a)) => out.push(a),
            Ok(None) => drop_at = Some((pos, tok)),
            Err(m) => return err(pos, tok, m),
        }
    }
    if let Some((pos, tok)) = drop_at {
        // `drop` with other actions is ambiguous; ovs-ofctl refuses it as well.
        if toks.len() > 1 {
            return err(pos, tok, "'drop' must be the only action");
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------------------------

/// Parses a flow as `ovs-ofctl add-flow`/`mod-flows`/`del-flows` take it.
///
/// `ports` resolves port names (in `in_port=`, `out_port=`, `output:`, `resubmit`); numbers are
/// taken as they are. The fields `duration`, `n_packets`, `n_bytes`, `idle_age` and `hard_age`
/// are ignored, so the output of [`format_rule`] (like `dump-flows`) reads back.
pub fn parse_flow(
    s: &str,
    mode: FlowMode,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<ParsedFlow, FlowParseError> {
    let (match_part, actions_at) = match find_actions(s) {
        Some(i) => (&s[..i], Some(i)),
        None => (s, None),
    };
    let mut flow = ParsedFlow {
        table: None,
        priority: DEFAULT_PRIORITY,
        r#match: Match::any(),
        actions: Vec::new(),
        cookie: 0,
        cookie_mask: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        out_port: None,
    };
    let mut b = Builder {
        m: Match::any(),
        slots: Vec::new(),
        origin: Vec::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for (pos, tok) in split_fields(match_part, 0) {
        let (name, value) = match tok.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (tok, None),
        };
        let lname = name.to_ascii_lowercase();
        let fail = |m: String| FlowParseError {
            pos,
            token: tok.to_string(),
            message: m,
        };
        let meta = [
            "table",
            "priority",
            "cookie",
            "idle_timeout",
            "hard_timeout",
            "out_port",
        ];
        if let Some(&k) = meta.iter().find(|k| **k == lname) {
            if seen.contains(&k) {
                return err(pos, tok, format!("field '{k}' given more than once"));
            }
            seen.push(k);
            let Some(v) = value.filter(|v| !v.is_empty()) else {
                return err(pos, tok, format!("field '{k}' needs a value"));
            };
            match k {
                "table" => {
                    // `table=255` means "every table" to ovs-ofctl.
                    let t = parse_max(v, 255, "table").map_err(fail)?;
                    flow.table = (t != 255).then_some(t as u8);
                    if t == 255 && mode == FlowMode::Add {
                        return err(pos, tok, "add-flow needs one table (0-254)");
                    }
                }
                "priority" => {
                    flow.priority = parse_max(v, 0xffff, "priority").map_err(fail)? as u16
                }
                "cookie" => {
                    let (c, m) = match v.split_once('/') {
                        Some((c, m)) => (c, Some(m)),
                        None => (v, None),
                    };
                    flow.cookie = parse_max(c, u64::MAX as u128, "cookie").map_err(fail)? as u64;
                    match (m, mode) {
                        (Some(_), FlowMode::Add) => {
                            return err(
                                pos,
                                tok,
                                "a cookie mask only selects rules (mod-flows, del-flows)",
                            )
                        }
                        (Some(m), _) => {
                            // ovs-ofctl takes -1 for "every bit".
                            flow.cookie_mask = if m == "-1" {
                                u64::MAX
                            } else {
                                parse_max(m, u64::MAX as u128, "cookie mask").map_err(fail)? as u64
                            }
                        }
                        // del-flows has no cookie to set, so a plain cookie selects exactly.
                        (None, FlowMode::Delete) => flow.cookie_mask = u64::MAX,
                        (None, _) => {}
                    }
                }
                "idle_timeout" => {
                    flow.idle_timeout = parse_max(v, 0xffff, "idle_timeout").map_err(fail)? as u16
                }
                "hard_timeout" => {
                    flow.hard_timeout = parse_max(v, 0xffff, "hard_timeout").map_err(fail)? as u16
                }
                _ => {
                    if mode == FlowMode::Add {
                        return err(
                            pos,
                            tok,
                            "out_port only selects rules (mod-flows, del-flows)",
                        );
                    }
                    flow.out_port = Some(parse_port(v, ports).map_err(fail)?);
                }
            }
            continue;
        }
        if ["duration", "n_packets", "n_bytes", "idle_age", "hard_age"].contains(&lname.as_str()) {
            continue;
        }
        parse_match_token(&mut b, name, value, pos, tok, ports)?;
    }
    if let Err(e) = b.m.validate() {
        let (pos, tok) = b
            .origin
            .iter()
            .rev()
            .find(|(f, _, _)| *f == e.field)
            .map(|&(_, p, t)| (p, t))
            .unwrap_or((0, s));
        return err(pos, tok, e.to_string());
    }
    flow.r#match = b.m;
    match (actions_at, mode) {
        (Some(at), FlowMode::Delete) => {
            let tok = s[at..].split([',', ' ']).next().unwrap_or("actions=");
            return err(at, tok, "del-flows takes no actions");
        }
        (None, FlowMode::Add | FlowMode::Modify) => {
            return err(
                s.len(),
                "",
                "missing 'actions=' (add-flow and mod-flows need actions)",
            )
        }
        (Some(at), _) => {
            let base = at + "actions=".len();
            flow.actions = parse_actions(&s[base..], base, ports)?;
        }
        (None, FlowMode::Delete) => {}
    }
    Ok(flow)
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

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
    let (tos, tosm) = get(Field::NwTos);
    match tosm {
        0 => {}
        0xff => out.push(format!("nw_tos={tos}")),
        0xfc => out.push(format!("ip_dscp={}", tos >> 2)),
        0x03 => out.push(format!("ip_ecn={tos}")),
        _ => generic(&mut out, "nw_tos", Field::NwTos, tos, tosm),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::FlowKey;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn ports(name: &str) -> Option<u32> {
        match name {
            "vm1" => Some(7),
            "uplink" => Some(100),
            _ => None,
        }
    }

    fn names(p: u32) -> Option<String> {
        match p {
            7 => Some("vm1".into()),
            100 => Some("uplink".into()),
            _ => None,
        }
    }

    fn add(s: &str) -> ParsedFlow {
        parse_flow(s, FlowMode::Add, &ports).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn add_err(s: &str) -> FlowParseError {
        parse_flow(s, FlowMode::Add, &ports).unwrap_err()
    }

    fn del(s: &str) -> Result<ParsedFlow, FlowParseError> {
        parse_flow(s, FlowMode::Delete, &ports)
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn ip() -> Match {
        Match::any().eth_type(ethertype::IPV4)
    }

    #[test]
    fn the_example_flow() {
        let f = add("table=0,priority=100,in_port=1,dl_type=0x0800,nw_src=10.0.0.0/24,tcp,tp_dst=80,actions=output:2");
        assert_eq!(f.table, Some(0));
        assert_eq!(f.priority, 100);
        let want = ip()
            .nw_proto(ipproto::TCP)
            .in_port(1)
            .nw_src(v4("10.0.0.0"), 24)
            .tp_dst(80);
        assert_eq!(f.r#match, want);
        assert_eq!(f.actions, vec![Action::Output(2)]);
        assert_eq!(
            format_match(&f.r#match),
            "tcp,in_port=1,nw_src=10.0.0.0/24,tp_dst=80"
        );
        let spec = f.to_rule_spec();
        assert_eq!(spec, RuleSpec::new(100, want, vec![Action::Output(2)]));
    }

    #[test]
    fn defaults() {
        let f = add("actions=drop");
        assert_eq!(f.table, None);
        assert_eq!(f.priority, DEFAULT_PRIORITY);
        assert_eq!(f.r#match, Match::any());
        assert!(f.actions.is_empty());
        assert_eq!(f.to_rule_spec().table, 0);
    }

    #[test]
    fn port_names_resolve() {
        let f = add("in_port=vm1,actions=output:uplink,vm1,resubmit(uplink,3)");
        assert_eq!(f.r#match, Match::any().in_port(7));
        assert_eq!(
            f.actions,
            vec![
                Action::Output(100),
                Action::Output(7),
                Action::Resubmit {
                    port: Some(100),
                    table: Some(3)
                }
            ]
        );
        let e = add_err("in_port=vm9,actions=drop");
        assert_eq!(e.pos, 0);
        assert!(e.message.contains("unknown port 'vm9'"), "{e}");
    }

    #[test]
    fn l2_fields() {
        let f = add("dl_src=00:11:22:33:44:55,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,dl_vlan=10,dl_vlan_pcp=3,actions=normal");
        let want = Match::any()
            .eth_src([0, 0x11, 0x22, 0x33, 0x44, 0x55])
            .eth_dst_masked([1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0])
            .vlan_vid(10)
            .vlan_pcp(3);
        assert_eq!(f.r#match, want);
        assert_eq!(f.actions, vec![Action::Normal]);
        assert_eq!(
            add("dl_vlan=0xffff,actions=drop").r#match,
            Match::any().no_vlan()
        );
        assert_eq!(
            add("vlan_tci=0x1000/0x1000,actions=drop").r#match,
            Match::any().vlan_tci(0x1000, 0x1000)
        );
        assert_eq!(
            add("dl_type=0x88cc,actions=drop").r#match,
            Match::any().eth_type(0x88cc)
        );
    }

    #[test]
    fn l3_fields() {
        let f = add("ip,nw_src=10.1.0.0/255.255.0.0,nw_dst=192.168.1.1,nw_proto=17,nw_tos=32,nw_ttl=64,ip_frag=no,actions=flood");
        let want = ip()
            .nw_src(v4("10.1.0.0"), 16)
            .nw_dst(v4("192.168.1.1"), 32)
            .nw_proto(17)
            .nw_tos(32)
            .nw_ttl(64)
            .nw_frag(0, FRAG_ANY);
        assert_eq!(f.r#match, want);
        // A non-prefix mask is kept as written.
        let f = add("ip,nw_dst=10.0.0.1/255.0.255.0,actions=drop");
        assert_eq!(format_match(&f.r#match), "ip,nw_dst=10.0.0.0/255.0.255.0");
        assert_eq!(add("ip,ip_dscp=46,actions=drop").r#match, ip().ip_dscp(46));
        for (name, v, m) in IP_FRAG {
            let f = add(&format!("ip,ip_frag={name},actions=drop"));
            assert_eq!(f.r#match, ip().nw_frag(v, m));
            assert_eq!(format_match(&f.r#match), format!("ip,ip_frag={name}"));
        }
    }

    #[test]
    fn l4_fields_and_aliases() {
        let a = add("tcp,tp_src=1024/0xfc00,tcp_dst=443,actions=drop").r#match;
        assert_eq!(a, ip().nw_proto(6).tp_src_masked(1024, 0xfc00).tp_dst(443));
        assert_eq!(format_match(&a), "tcp,tp_src=0x400/0xfc00,tp_dst=443");
        assert_eq!(
            add("udp,udp_src=53,actions=drop").r#match,
            ip().nw_proto(17).tp_src(53)
        );
        assert_eq!(
            add("icmp,icmp_type=8,icmp_code=0,actions=drop").r#match,
            ip().nw_proto(1).icmp_type(8).icmp_code(0)
        );
        assert_eq!(
            add("tcp,tcp_flags=0x02/0x02,actions=drop").r#match,
            ip().nw_proto(6).tcp_flags(2, 2)
        );
        assert_eq!(
            add("tcp,tcp_flags=+syn-ack,actions=drop").r#match,
            ip().nw_proto(6).tcp_flags(0x02, 0x12)
        );
        let f = add("sctp6,sctp_dst=9,actions=drop");
        assert_eq!(format_match(&f.r#match), "sctp6,tp_dst=9");
    }

    #[test]
    fn shorthands_set_dl_type_and_nw_proto() {
        let cases: [(&str, u16, Option<u8>); 11] = [
            ("ip", 0x0800, None),
            ("ipv6", 0x86dd, None),
            ("arp", 0x0806, None),
            ("tcp", 0x0800, Some(6)),
            ("udp", 0x0800, Some(17)),
            ("sctp", 0x0800, Some(132)),
            ("icmp", 0x0800, Some(1)),
            ("icmp6", 0x86dd, Some(58)),
            ("tcp6", 0x86dd, Some(6)),
            ("udp6", 0x86dd, Some(17)),
            ("sctp6", 0x86dd, Some(132)),
        ];
        for (name, t, p) in cases {
            let mut want = Match::any().eth_type(t);
            if let Some(p) = p {
                want = want.nw_proto(p);
            }
            assert_eq!(add(&format!("{name},actions=drop")).r#match, want, "{name}");
            // Keywords are case-insensitive and print back as the shorthand.
            let upper = name.to_ascii_uppercase();
            assert_eq!(add(&format!("{upper},actions=drop")).r#match, want);
            assert_eq!(format_match(&want), name);
        }
        // Agreeing with a shorthand is fine.
        assert_eq!(
            add("dl_type=0x0800,tcp,nw_proto=6,actions=drop").r#match,
            ip().nw_proto(6)
        );
    }

    #[test]
    fn arp_and_ipv6_fields() {
        let f = add("arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:02,actions=drop");
        let want = Match::any()
            .eth_type(ethertype::ARP)
            .arp_op(1)
            .arp_spa(v4("10.0.0.1"), 32)
            .arp_tpa(v4("10.0.0.0"), 8)
            .arp_sha([0, 0, 0, 0, 0, 1])
            .arp_tha([0, 0, 0, 0, 0, 2]);
        assert_eq!(f.r#match, want);
        assert_eq!(
            format_match(&want),
            "arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_op=1,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:02"
        );
        let f = add(
            "ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1,ipv6_label=0x12345,tun_id=0x10,actions=drop",
        );
        let mut want = Match::any()
            .eth_type(ethertype::IPV6)
            .ipv6_src("2001:db8::".parse().unwrap(), 32)
            .ipv6_dst("::1".parse().unwrap(), 128)
            .tun_id(0x10);
        want.set_field(Field::Ipv6Label, 0x12345, 0xfffff);
        assert_eq!(f.r#match, want);
        assert_eq!(
            format_match(&want),
            "ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1,tun_id=0x10,ipv6_label=0x12345"
        );
    }

    #[test]
    fn meta_fields() {
        let f = add("table=3,priority=0,cookie=0xabc,idle_timeout=10,hard_timeout=60,actions=drop");
        assert_eq!(f.table, Some(3));
        assert_eq!(f.priority, 0);
        assert_eq!((f.cookie, f.cookie_mask), (0xabc, 0));
        assert_eq!((f.idle_timeout, f.hard_timeout), (10, 60));
        let spec = f.to_rule_spec();
        assert_eq!(
            (
                spec.table,
                spec.cookie,
                spec.idle_timeout,
                spec.hard_timeout
            ),
            (3, 0xabc, 10, 60)
        );
    }

    #[test]
    fn del_flows_filters() {
        let f = del("table=1,cookie=0x10/0xf0,out_port=vm1,ip").unwrap();
        let filt = f.to_rule_filter();
        assert_eq!(filt.table, Some(1));
        assert_eq!((filt.cookie, filt.cookie_mask), (0x10, 0xf0));
        assert_eq!(del("cookie=0x10/-1").unwrap().cookie_mask, u64::MAX);
        assert_eq!(filt.out_port, Some(7));
        assert_eq!(filt.r#match, ip());
        // A plain cookie selects exactly; an empty string selects everything.
        assert_eq!(del("cookie=5").unwrap().cookie_mask, u64::MAX);
        let all = del("").unwrap().to_rule_filter();
        assert_eq!(all.r#match, RuleFilter::all().r#match);
        assert_eq!(all.table, None);
        assert_eq!(del("table=255").unwrap().table, None);
        // Strict deletion uses the priority.
        assert_eq!(del("priority=7,ip").unwrap().to_rule_filter().priority, 7);
        // mod-flows: a mask selects, a plain cookie is the new value.
        let m = parse_flow("cookie=1/1,actions=drop", FlowMode::Modify, &ports).unwrap();
        assert_eq!((m.cookie, m.cookie_mask), (1, 1));
        let m = parse_flow("cookie=1,actions=drop", FlowMode::Modify, &ports).unwrap();
        assert_eq!((m.cookie, m.cookie_mask), (1, 0));
    }

    #[test]
    fn filters_apply_to_tables() {
        let mut t = crate::RuleTables::new();
        t.add(add("priority=5,ip,actions=output:1").to_rule_spec(), 0)
            .unwrap();
        t.add(add("priority=5,arp,actions=output:2").to_rule_spec(), 0)
            .unwrap();
        let gone = t.delete(&del("ip").unwrap().to_rule_filter(), false);
        assert_eq!(gone.len(), 1);
        assert_eq!(t.len(), 1);
        let gone = t.delete(&del("out_port=2").unwrap().to_rule_filter(), false);
        assert_eq!(gone.len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn all_actions() {
        let f = add("actions=output:1,2,NORMAL,flood,IN_PORT,mod_vlan_vid:10,mod_vlan_pcp:3,strip_vlan,pop_vlan,push_vlan:0x8100,mod_dl_src:00:00:00:00:00:01,mod_dl_dst:00:00:00:00:00:02,mod_nw_src:1.2.3.4,mod_nw_dst:5.6.7.8,mod_nw_tos:32,mod_nw_ttl:9,mod_tp_src:10,mod_tp_dst:11,dec_ttl,set_tunnel:0x20,resubmit:3,resubmit(,4),resubmit(5,),goto_table:6");
        use SetField as S;
        let want = vec![
            Action::Output(1),
            Action::Output(2),
            Action::Normal,
            Action::Flood,
            Action::InPort,
            Action::Set(S::VlanVid(10)),
            Action::Set(S::VlanPcp(3)),
            Action::PopVlan,
            Action::PopVlan,
            Action::PushVlan(0x8100),
            Action::Set(S::EthSrc([0, 0, 0, 0, 0, 1])),
            Action::Set(S::EthDst([0, 0, 0, 0, 0, 2])),
            Action::Set(S::Ipv4Src(0x0102_0304)),
            Action::Set(S::Ipv4Dst(0x0506_0708)),
            Action::Set(S::IpTos(32)),
            Action::Set(S::IpTtl(9)),
            Action::Set(S::TpSrc(10)),
            Action::Set(S::TpDst(11)),
            Action::DecTtl,
            Action::Set(S::TunId(0x20)),
            Action::Resubmit {
                port: Some(3),
                table: None,
            },
            Action::Resubmit {
                port: None,
                table: Some(4),
            },
            Action::Resubmit {
                port: Some(5),
                table: None,
            },
            Action::GotoTable(6),
        ];
        assert_eq!(f.actions, want);
        // And they print back to the same list.
        let printed = format_actions(&want, &|_| None);
        assert_eq!(add(&format!("actions={printed}")).actions, want);
    }

    #[test]
    fn set_field_action() {
        use SetField as S;
        let cases = [
            ("00:00:00:00:00:09->eth_dst", S::EthDst([0, 0, 0, 0, 0, 9])),
            ("00:00:00:00:00:09->dl_src", S::EthSrc([0, 0, 0, 0, 0, 9])),
            ("100->vlan_vid", S::VlanVid(100)),
            ("5->vlan_pcp", S::VlanPcp(5)),
            ("10.0.0.1->ip_src", S::Ipv4Src(0x0a00_0001)),
            ("10.0.0.2->nw_dst", S::Ipv4Dst(0x0a00_0002)),
            ("46->ip_dscp", S::IpTos(46 << 2)),
            ("7->nw_ttl", S::IpTtl(7)),
            ("80->tcp_src", S::TpSrc(80)),
            ("53->udp_dst", S::TpDst(53)),
            ("0x5->tun_id", S::TunId(5)),
        ];
        for (arg, want) in cases {
            let f = add(&format!("actions=set_field:{arg}"));
            assert_eq!(f.actions, vec![Action::Set(want)], "{arg}");
        }
        let e = add_err("actions=set_field:1->ipv6_label");
        assert!(e.message.contains("cannot write"), "{e}");
        let e = add_err("actions=set_field:1");
        assert!(e.message.contains("VALUE->FIELD"), "{e}");
    }

    #[test]
    fn errors_point_at_the_token() {
        let s = "in_port=1,nw_dts=10.0.0.1,actions=drop";
        let e = add_err(s);
        assert_eq!(e.pos, 10);
        assert_eq!(e.token, "nw_dts=10.0.0.1");
        assert_eq!(
            e.to_string(),
            "nw_dts=10.0.0.1: unknown field 'nw_dts' (at column 11)"
        );
        assert_eq!(&s[e.pos..e.pos + e.token.len()], e.token);
    }

    #[test]
    fn bad_values() {
        for (s, token, msg) in [
            (
                "ip,nw_src=10.0.0.256,actions=drop",
                "nw_src=10.0.0.256",
                "not a valid IPv4",
            ),
            (
                "ip,nw_src=10.0.0.0/33,actions=drop",
                "nw_src=10.0.0.0/33",
                "out of range",
            ),
            (
                "dl_src=00:11:22:33:44,actions=drop",
                "dl_src=00:11:22:33:44",
                "not a valid MAC",
            ),
            ("dl_vlan=4096,actions=drop", "dl_vlan=4096", "out of range"),
            (
                "dl_vlan_pcp=8,actions=drop",
                "dl_vlan_pcp=8",
                "out of range",
            ),
            (
                "tcp,tp_dst=65536,actions=drop",
                "tcp,tp_dst=65536",
                "out of range",
            ),
            ("in_port=abc!,actions=drop", "in_port=abc!", "unknown port"),
            (
                "priority=70000,actions=drop",
                "priority=70000",
                "out of range",
            ),
            ("table=255,actions=drop", "table=255", "one table"),
            (
                "ip,ip_frag=maybe,actions=drop",
                "ip,ip_frag=maybe",
                "not an ip_frag",
            ),
            (
                "tcp,tcp_flags=+syx,actions=drop",
                "tcp,tcp_flags=+syx",
                "unknown TCP flag",
            ),
            (
                "ipv6,ipv6_src=2001:db8::/129,actions=drop",
                "ipv6,ipv6_src=2001:db8::/129",
                "out of range",
            ),
            ("ip,nw_ttl=x,actions=drop", "ip,nw_ttl=x", "not a valid"),
            ("nw_proto,actions=drop", "nw_proto", "needs a value"),
            ("ip=1,actions=drop", "ip=1", "takes no value"),
            (
                "cookie=0x1/0x1,actions=drop",
                "cookie=0x1/0x1",
                "cookie mask",
            ),
            ("out_port=1,actions=drop", "out_port=1", "out_port only"),
        ] {
            let e = add_err(s);
            let token = token.rsplit(',').next().unwrap();
            assert_eq!(e.token, token, "{s}: {e}");
            assert_eq!(&s[e.pos..e.pos + token.len()], token, "{s}");
            assert!(e.message.contains(msg), "{s}: {e}");
        }
    }

    #[test]
    fn bad_actions() {
        for (s, token, msg) in [
            (
                "actions=output:1,frobnicate",
                "frobnicate",
                "unknown action",
            ),
            ("actions=output:", "output:", "needs an argument"),
            (
                "actions=mod_vlan_vid:5000",
                "mod_vlan_vid:5000",
                "out of range",
            ),
            ("actions=mod_nw_src:1.2.3", "mod_nw_src:1.2.3", "IPv4"),
            (
                "actions=mod_dl_dst:zz:00:00:00:00:00",
                "mod_dl_dst:zz:00:00:00:00:00",
                "MAC",
            ),
            ("actions=mod_nw_tos:1", "mod_nw_tos:1", "ECN"),
            ("actions=push_vlan:0x0800", "push_vlan:0x0800", "0x8100"),
            ("actions=resubmit(,)", "resubmit(,)", "port or a table"),
            ("actions=goto_table:255", "goto_table:255", "out of range"),
            ("actions=normal:1", "normal:1", "no argument"),
            ("actions=output:1,drop", "drop", "must be the only"),
            ("actions=output:1,,output:2", "", "empty action"),
        ] {
            let e = add_err(s);
            assert_eq!(e.token, token, "{s}: {e}");
            assert_eq!(&s[e.pos..e.pos + token.len()], token, "{s}");
            assert!(e.message.contains(msg), "{s}: {e}");
        }
    }

    #[test]
    fn unbalanced_parentheses() {
        let s = "actions=output:1,resubmit(1,2";
        let e = add_err(s);
        assert_eq!(e.token, "resubmit(1,2");
        assert_eq!(e.pos, 17);
        assert!(e.message.contains("unbalanced"), "{e}");
        let e = add_err("actions=resubmit(1,2))");
        assert_eq!(e.token, ")");
        assert_eq!(e.pos, 21);
        assert!(e.message.contains("unbalanced"), "{e}");
    }

    #[test]
    fn missing_and_forbidden_actions() {
        let e = add_err("ip,nw_dst=10.0.0.1");
        assert_eq!(e.pos, 18);
        assert!(e.message.contains("missing 'actions='"), "{e}");
        let e = parse_flow("ip", FlowMode::Modify, &ports).unwrap_err();
        assert!(e.message.contains("missing"), "{e}");
        let e = del("ip,actions=drop").unwrap_err();
        assert_eq!((e.pos, e.token.as_str()), (3, "actions=drop"));
        assert!(e.message.contains("takes no actions"), "{e}");
    }

    #[test]
    fn duplicates_and_conflicts() {
        let e = add_err("in_port=1,in_port=2,actions=drop");
        assert_eq!((e.pos, e.token.as_str()), (10, "in_port=2"));
        assert!(e.message.contains("more than once"), "{e}");
        let e = add_err("tcp,tp_dst=1,tcp_dst=2,actions=drop");
        assert!(e.message.contains("more than once"), "{e}");
        let e = add_err("priority=1,priority=2,actions=drop");
        assert!(e.message.contains("more than once"), "{e}");
        let e = add_err("dl_vlan=1,vlan_tci=0/0,actions=drop");
        assert!(e.message.contains("overlaps"), "{e}");
        let e = add_err("ip,nw_tos=4,ip_dscp=1,actions=drop");
        assert!(e.message.contains("overlaps"), "{e}");
        let e = add_err("ip,arp,actions=drop");
        assert_eq!(e.token, "arp");
        assert!(e.message.contains("conflicts"), "{e}");
        let e = add_err("tcp,nw_proto=17,actions=drop");
        assert!(e.message.contains("conflicts"), "{e}");
    }

    #[test]
    fn missing_prerequisites() {
        let s = "in_port=1,nw_src=10.0.0.1,actions=drop";
        let e = add_err(s);
        assert_eq!((e.pos, e.token.as_str()), (10, "nw_src=10.0.0.1"));
        assert!(e.message.contains("nw_src requires"), "{e}");
        let e = add_err("ip,tp_dst=80,actions=drop");
        assert_eq!(e.token, "tp_dst=80");
        assert!(e.message.contains("tp_dst requires"), "{e}");
        let e = add_err("udp,tcp_flags=+syn,actions=drop");
        assert_eq!(e.token, "tcp_flags=+syn");
        let e = add_err("ip,arp_sha=00:00:00:00:00:01,actions=drop");
        assert!(e.message.contains("arp_sha requires"), "{e}");
    }

    fn rule(spec: RuleSpec) -> Rule {
        Rule {
            table: spec.table,
            priority: spec.priority,
            r#match: spec.r#match,
            actions: spec.actions,
            cookie: spec.cookie,
            idle_timeout: spec.idle_timeout,
            hard_timeout: spec.hard_timeout,
            seq: 0,
            created_ms: 1_000,
            stats: Arc::default(),
        }
    }

    #[test]
    fn dump_flows_format() {
        let r = rule(add("priority=100,idle_timeout=10,in_port=1,tcp,nw_src=10.0.0.0/24,tp_dst=80,actions=output:2").to_rule_spec());
        r.stats.credit(10, 840, 5_000);
        assert_eq!(
            format_rule(&r, 13_345, &|_| None),
            " cookie=0x0, duration=12.345s, table=0, n_packets=10, n_bytes=840, idle_timeout=10, priority=100,tcp,in_port=1,nw_src=10.0.0.0/24,tp_dst=80 actions=output:2"
        );
        // Default priority and empty match, with names.
        let r = rule(
            add("table=2,cookie=0x5,hard_timeout=3,actions=output:7,resubmit:100").to_rule_spec(),
        );
        assert_eq!(
            format_rule(&r, 1_000, &names),
            " cookie=0x5, duration=0.000s, table=2, n_packets=0, n_bytes=0, hard_timeout=3, actions=output:vm1,resubmit:uplink"
        );
        let r = rule(add("priority=1,actions=drop").to_rule_spec());
        assert!(format_rule(&r, 1_000, &names).ends_with("n_bytes=0, priority=1 actions=drop"));
    }

    #[test]
    fn dumped_flows_read_back() {
        for s in [
            "priority=100,idle_timeout=10,in_port=vm1,tcp,nw_src=10.0.0.0/24,tp_dst=80,actions=output:uplink",
            "table=4,cookie=0x99,hard_timeout=5,arp,arp_op=2,actions=NORMAL",
            "dl_vlan=5,dl_vlan_pcp=2,actions=strip_vlan,resubmit(vm1,2)",
            "actions=drop",
        ] {
            let f = add(s);
            let printed = format_rule(&rule(f.to_rule_spec()), 2_500, &names);
            let back = add(&printed);
            assert_eq!(back.to_rule_spec(), f.to_rule_spec(), "{printed}");
        }
    }

    #[test]
    fn format_match_named_uses_names() {
        let m = Match::any().in_port(100);
        assert_eq!(format_match_named(&m, &names), "in_port=uplink");
        assert_eq!(format_match(&m), "in_port=100");
    }

    #[test]
    fn unusual_masks_print_generically() {
        let mut m = Match::any();
        m.set_field(Field::EthType, 0x0800, 0xff00);
        m.set_field(Field::InPort, 4, 0xc);
        m.set_field(Field::VlanTci, 0x0005, 0x000f);
        m.set_field(Field::InnerVlanTci, 0x1003, 0xffff);
        m.set_field(Field::TunSrc, 0x0a00_0000, 0xff00_0000);
        let s = format_match(&m);
        assert_eq!(
            s,
            "dl_type=0x800/0xff00,in_port=0x4/0xc,vlan_tci=0x5/0xf,inner_vlan_tci=0x1003,tun_src=10.0.0.0/8"
        );
        assert_eq!(add(&format!("{s},actions=drop")).r#match, m);
    }

    // ---- Round trip of random matches and actions ----

    fn arb_mac() -> impl Strategy<Value = [u8; 6]> {
        any::<[u8; 6]>()
    }

    fn arb_l4(v6: bool) -> impl Strategy<Value = Match> {
        let proto = prop_oneof![
            Just(None),
            Just(Some(ipproto::TCP)),
            Just(Some(ipproto::UDP)),
            Just(Some(ipproto::SCTP)),
            Just(Some(if v6 { ipproto::ICMPV6 } else { ipproto::ICMP })),
            (0u8..=255).prop_map(Some),
        ];
        (
            proto,
            proptest::option::of((any::<u16>(), any::<u16>())),
            proptest::option::of(any::<u16>()),
            proptest::option::of((0u16..0x1000, 0u16..0x1000)),
        )
            .prop_map(move |(p, src, dst, flags)| {
                let mut m =
                    Match::any().eth_type(if v6 { ethertype::IPV6 } else { ethertype::IPV4 });
                let Some(p) = p else { return m };
                m = m.nw_proto(p);
                let l4 = matches!(p, 6 | 17 | 132 | 1 | 58);
                if l4 {
                    if let Some((v, mk)) = src {
                        m = m.tp_src_masked(v, mk);
                    }
                    if let Some(v) = dst {
                        m = m.tp_dst(v);
                    }
                }
                if p == ipproto::TCP {
                    if let Some((v, mk)) = flags {
                        m = m.tcp_flags(v, mk);
                    }
                }
                m
            })
    }

    fn arb_match() -> impl Strategy<Value = Match> {
        let l3 = prop_oneof![
            Just(Match::any()),
            (
                arb_l4(false),
                any::<u32>(),
                0u8..=32,
                proptest::option::of(0usize..5)
            )
                .prop_map(|(m, a, len, frag)| {
                    let mut m = m.nw_dst(Ipv4Addr::from(a), len);
                    if let Some(i) = frag {
                        let (_, v, mk) = IP_FRAG[i];
                        m = m.nw_frag(v, mk);
                    }
                    m
                }),
            (
                arb_l4(true),
                any::<u128>(),
                0u8..=128,
                0u32..0x100000,
                0u8..64
            )
                .prop_map(|(m, a, len, label, dscp)| {
                    let mut m = m.ipv6_src(Ipv6Addr::from(a), len).ip_dscp(dscp);
                    m.set_field(Field::Ipv6Label, label as u128, 0xfffff);
                    m
                }),
            (0u8..=255, any::<u32>(), 0u8..=32, arb_mac()).prop_map(|(op, a, len, sha)| {
                Match::any()
                    .eth_type(ethertype::ARP)
                    .arp_op(op)
                    .arp_spa(Ipv4Addr::from(a), len)
                    .arp_sha(sha)
            }),
            (any::<u16>(), any::<u8>()).prop_map(|(t, tos)| {
                let m = Match::any().eth_type(t);
                if t == ethertype::IPV4 || t == ethertype::IPV6 {
                    m.nw_tos(tos)
                } else {
                    m
                }
            }),
        ];
        let vlan = prop_oneof![
            Just(None),
            (0u16..4096).prop_map(|v| Some((Some(v), None))),
            (0u8..8).prop_map(|p| Some((None, Some(p)))),
            (0u16..4096, 0u8..8).prop_map(|(v, p)| Some((Some(v), Some(p)))),
            Just(Some((None, None))),
        ];
        (
            l3,
            proptest::option::of(any::<u32>()),
            proptest::option::of((arb_mac(), arb_mac())),
            vlan,
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u8>()),
        )
            .prop_map(|(mut m, port, src, vlan, tun, ttl)| {
                if let Some(p) = port {
                    m = m.in_port(p);
                }
                if let Some((a, mk)) = src {
                    m = m.eth_src_masked(a, mk);
                }
                match vlan {
                    None => {}
                    Some((None, None)) => m = m.no_vlan(),
                    Some((v, p)) => {
                        if let Some(v) = v {
                            m = m.vlan_vid(v);
                        }
                        if let Some(p) = p {
                            m = m.vlan_pcp(p);
                        }
                    }
                }
                if let Some(t) = tun {
                    m = m.tun_id(t);
                }
                if let Some(t) = ttl {
                    if m.key().is_ip() && m.field(Field::EthType).1 == 0xffff {
                        m = m.nw_ttl(t);
                    }
                }
                m
            })
    }

    fn arb_action() -> impl Strategy<Value = Action> {
        use SetField as S;
        prop_oneof![
            any::<u32>().prop_map(Action::Output),
            Just(Action::InPort),
            Just(Action::Normal),
            Just(Action::Flood),
            prop_oneof![Just(0x8100u16), Just(0x88a8)].prop_map(Action::PushVlan),
            Just(Action::PopVlan),
            Just(Action::DecTtl),
            (0u8..255).prop_map(Action::GotoTable),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(0u8..255)
            )
                .prop_filter("port or table", |(p, t)| p.is_some() || t.is_some())
                .prop_map(|(port, table)| Action::Resubmit { port, table }),
            arb_mac().prop_map(|m| Action::Set(S::EthSrc(m))),
            arb_mac().prop_map(|m| Action::Set(S::EthDst(m))),
            (0u16..4096).prop_map(|v| Action::Set(S::VlanVid(v))),
            (0u8..8).prop_map(|v| Action::Set(S::VlanPcp(v))),
            any::<u32>().prop_map(|v| Action::Set(S::Ipv4Src(v))),
            any::<u32>().prop_map(|v| Action::Set(S::Ipv4Dst(v))),
            (0u8..64).prop_map(|v| Action::Set(S::IpTos(v << 2))),
            any::<u8>().prop_map(|v| Action::Set(S::IpTtl(v))),
            any::<u16>().prop_map(|v| Action::Set(S::TpSrc(v))),
            any::<u16>().prop_map(|v| Action::Set(S::TpDst(v))),
            any::<u64>().prop_map(|v| Action::Set(S::TunId(v))),
        ]
    }

    proptest! {
        #[test]
        fn printed_flows_parse_back(
            m in arb_match(),
            actions in proptest::collection::vec(arb_action(), 0..6),
        ) {
            prop_assume!(m.validate().is_ok());
            let printed = format_match(&m);
            let s = if printed.is_empty() {
                format!("actions={}", format_actions(&actions, &|_| None))
            } else {
                format!("{printed},actions={}", format_actions(&actions, &|_| None))
            };
            let f = parse_flow(&s, FlowMode::Add, &ports)
                .map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
            prop_assert_eq!(f.r#match, m, "{}", s);
            prop_assert_eq!(f.actions, actions, "{}", s);
        }

        #[test]
        fn printed_rules_parse_back(
            m in arb_match(),
            actions in proptest::collection::vec(arb_action(), 0..4),
            priority in any::<u16>(),
            cookie in any::<u64>(),
            table in 0u8..255,
        ) {
            prop_assume!(m.validate().is_ok());
            let mut spec = RuleSpec::new(priority, m, actions).in_table(table);
            spec.cookie = cookie;
            let printed = format_rule(&rule(spec.clone()), 5_000, &names);
            let f = parse_flow(&printed, FlowMode::Add, &ports)
                .map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
            prop_assert_eq!(f.to_rule_spec(), spec, "{}", printed);
        }

        #[test]
        fn parser_never_panics(s in "[a-z_0-9=,:/().>+ -]{0,40}") {
            let _ = parse_flow(&s, FlowMode::Add, &ports);
            let _ = parse_flow(&s, FlowMode::Delete, &ports);
        }
    }

    #[test]
    fn exact_key_prints_every_field_and_fails_validation() {
        // The match of one concrete key: every field exact.
        let mut k = FlowKey::ZERO;
        k.eth_type = ethertype::IPV4;
        k.nw_proto = ipproto::UDP;
        k.in_port = 3;
        k.nw_src = 0x0a00_0001;
        k.tp_dst = 53;
        let m = Match::exact(&k);
        let s = format_match(&m);
        // Every field is printed and read; the exact match of an IPv4 key names ARP fields
        // and IPv6 fields too, which validation then refuses.
        let e = add_err(&format!("{s},actions=drop"));
        assert_eq!(e.token, "ipv6_src=::", "{e}");
        assert!(e.message.contains("requires"), "{e}");
    }
}
