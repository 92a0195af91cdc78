//! Actions of a flow, one piece at a time, with ovs-ofctl's spellings and meanings.
//!
//! What ovs-ofctl does, and so this parser (learnt by running `ovs-ofctl parse-flow`): action
//! names are case-insensitive, field names in `set_field` are not; an action that takes no
//! argument ignores one (`normal:1`, `strip_vlan()`, `dec_ttl(1,2)`'s controller ids); a bare
//! port number or reserved name (`2`, `LOCAL`) is an output; empty pieces (`output:1,,`) are
//! skipped. Actions vswitch does not implement are refused by name, never ignored.

use super::ports::{output_to, parse_port, reserved, OFPP_LOCAL};
use super::tokens::Piece;
use super::values::{
    parse_dec, parse_int_masked, parse_ipv4_masked, parse_ipv4_strict, parse_mac_loose,
    parse_mac_masked, parse_max,
};
use crate::actions::{Action, SetField, CONTROLLER_MAX_LEN};
use crate::key::{ethertype, ipproto};
use crate::wire::MacAddr;

/// What the match (or an earlier action) must say for an action to be valid, as OpenFlow
/// checks `set_field` (and OVS `mod_nw_ttl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Need {
    /// IPv4 (`ip`).
    Ipv4,
    /// IPv4 or IPv6.
    Ip,
    /// IPv4 or IPv6 with this `nw_proto`.
    Proto(u8),
    /// IPv4 or IPv6 with TCP, UDP or SCTP.
    Ports,
    /// A VLAN tag.
    Vlan,
}

impl Need {
    /// How an error names it.
    pub fn describe(self) -> &'static str {
        match self {
            Need::Ipv4 => "ip (dl_type=0x0800)",
            Need::Ip => "ip or ipv6",
            Need::Proto(ipproto::TCP) => "tcp or tcp6",
            Need::Proto(ipproto::UDP) => "udp or udp6",
            Need::Proto(_) => "sctp or sctp6",
            Need::Ports => "tcp, udp or sctp (or their IPv6 forms)",
            Need::Vlan => {
                "a VLAN tag (dl_vlan, dl_vlan_pcp or vlan_tci with 0x1000, or an earlier \
                 push_vlan or mod_vlan_vid)"
            }
        }
    }
}

/// The OpenFlow versions ovs-ofctl offers (`-O`), as far as they differ in what flows they
/// take: vswitch takes a flow when some version does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Version {
    /// OpenFlow 1.0 (with Nicira extensions), ovs-ofctl's default.
    Of10,
    /// OpenFlow 1.1 and later.
    Of11,
}

/// One parsed action piece.
#[derive(Clone, Debug)]
pub(super) struct ParsedAction<'a> {
    /// The action; `None` for `drop`.
    pub action: Option<Action>,
    /// What the match must say for it, in every OpenFlow version.
    pub needs: Option<Need>,
    /// What OpenFlow 1.1 and later want the match to say for it; OpenFlow 1.0 defines the
    /// action as doing nothing to packets without the header, so without it the flow is
    /// OpenFlow 1.0 only.
    pub needs_of11: Option<Need>,
    /// The only version with this action (`push_vlan` is not in OpenFlow 1.0).
    pub only: Option<Version>,
    /// Where it was written.
    pub piece: Piece<'a>,
}

/// Actions ovs-ofctl knows and vswitch does not implement.
const UNSUPPORTED: [&str; 36] = [
    "enqueue",
    "note",
    "learn",
    "ct",
    "ct_clear",
    "nat",
    "clear_actions",
    "write_actions",
    "write_metadata",
    "exit",
    "meter",
    "group",
    "move",
    "load",
    "push",
    "pop",
    "set_queue",
    "pop_queue",
    "sample",
    "fin_timeout",
    "multipath",
    "bundle",
    "bundle_load",
    "push_mpls",
    "pop_mpls",
    "set_mpls_label",
    "set_mpls_tc",
    "set_mpls_ttl",
    "dec_mpls_ttl",
    "mod_nw_ecn",
    "conjunction",
    "check_pkt_larger",
    "encap",
    "decap",
    "clone",
    "delete_field",
];

/// The argument of an action that requires one.
fn need_arg<'s>(arg: &'s str, name: &str) -> Result<&'s str, String> {
    if arg.is_empty() {
        Err(format!("action '{name}' needs an argument"))
    } else {
        Ok(arg)
    }
}

/// A TOS byte for `mod_nw_tos`/`set_field:->nw_tos`: the DSCP bits only (the ECN bits are the
/// packet's own).
fn parse_tos(value: &str) -> Result<u8, String> {
    let v = parse_max(value, 255, "nw_tos")? as u8;
    if v & 0x03 != 0 {
        return Err(format!(
            "nw_tos {v} sets ECN bits (must be a multiple of 4, the DSCP bits of the TOS byte)"
        ));
    }
    Ok(v)
}

/// A table number as ovs-ofctl reads one in an action: decimal, 0 to 255.
fn parse_table(s: &str) -> Result<u8, String> {
    match parse_dec(s) {
        Some(t) if t <= 255 => Ok(t as u8),
        _ => Err(format!("unknown table '{s}' (0-254)")),
    }
}

/// Reads `set_field:VALUE->FIELD`: the rewrite and what it needs.
fn parse_set_field(arg: &str) -> Result<(SetField, Option<Need>, Option<Version>), String> {
    let Some((value, field)) = arg.split_once("->") else {
        return Err(format!("'{arg}': set_field needs VALUE->FIELD"));
    };
    if field.is_empty() {
        return Err(format!("'{arg}': missing field name after '->'"));
    }
    // A mask is accepted when it covers the whole field: a partial rewrite is another action.
    let whole = |(v, m): (u128, u128), bits: u32| -> Result<u128, String> {
        if value.contains('/') && m != (1u128 << bits) - 1 {
            return Err(format!(
                "a masked set_field ('{value}') is not supported by vswitch"
            ));
        }
        Ok(v)
    };
    let int = |bits: u32| whole(parse_int_masked(value, bits, field)?, bits);
    let mac = || {
        Ok::<_, String>(MacAddr::from_u64(
            whole(parse_mac_masked(value)?, 48)? as u64
        ))
    };
    let ipv4 = || whole(parse_ipv4_masked(value)?, 32).map(|v| v as u32);
    let tp = |proto: u8, src: bool| -> Result<(SetField, Option<Need>), String> {
        let v = int(16)? as u16;
        let sf = if src {
            SetField::TpSrc(v)
        } else {
            SetField::TpDst(v)
        };
        Ok((sf, Some(Need::Proto(proto))))
    };
    if field == "vlan_vid" {
        // OpenFlow's form: 0x1000 (OFPVID_PRESENT) | VID. Without that bit only OpenFlow 1.0
        // takes it (as mod_vlan_vid of the low 12 bits).
        let v = int(13)? as u16;
        let only = (v & 0x1000 == 0).then_some(Version::Of10);
        return Ok((SetField::VlanVid(v & 0x0fff), Some(Need::Vlan), only));
    }
    let (sf, needs) = match field {
        "eth_src" | "dl_src" => (SetField::EthSrc(mac()?), None),
        "eth_dst" | "dl_dst" => (SetField::EthDst(mac()?), None),
        "vlan_pcp" => {
            let v = int(3).map_err(|_| format!("'{value}' is not a valid vlan_pcp (0-7)"))?;
            (SetField::VlanPcp(v as u8), Some(Need::Vlan))
        }
        "ip_src" | "nw_src" => (SetField::Ipv4Src(ipv4()?), Some(Need::Ipv4)),
        "ip_dst" | "nw_dst" => (SetField::Ipv4Dst(ipv4()?), Some(Need::Ipv4)),
        "ip_dscp" => {
            let v = int(6).map_err(|_| format!("'{value}' is not a valid ip_dscp (0-63)"))?;
            (SetField::IpTos((v as u8) << 2), Some(Need::Ip))
        }
        "nw_tos" => (SetField::IpTos(parse_tos(value)?), Some(Need::Ip)),
        "nw_ttl" => (SetField::IpTtl(int(8)? as u8), Some(Need::Ip)),
        "tcp_src" | "tp_src" => tp(ipproto::TCP, true)?,
        "tcp_dst" | "tp_dst" => tp(ipproto::TCP, false)?,
        "udp_src" => tp(ipproto::UDP, true)?,
        "udp_dst" => tp(ipproto::UDP, false)?,
        "sctp_src" => tp(ipproto::SCTP, true)?,
        "sctp_dst" => tp(ipproto::SCTP, false)?,
        "tun_id" | "tunnel_id" => (SetField::TunId(int(64)? as u64), None),
        "dl_vlan" | "dl_vlan_pcp" => {
            return Err(format!(
                "set_field:->{field} is not supported by vswitch (ovs-ofctl does not know \
                 the name there and writes in_port); use vlan_vid or vlan_pcp"
            ))
        }
        _ => {
            return Err(format!(
                "set_field to '{field}' is not supported by vswitch (it writes eth_src, \
                 eth_dst, vlan_vid, vlan_pcp, ip_src, ip_dst, ip_dscp, nw_tos, nw_ttl, \
                 tcp/udp/sctp ports and tun_id)"
            ))
        }
    };
    Ok((sf, needs, None))
}

/// Reads `resubmit:PORT` or `resubmit([PORT],[TABLE])`.
fn parse_resubmit(p: &Piece<'_>, ports: &dyn Fn(&str) -> Option<u32>) -> Result<Action, String> {
    let mut args: Vec<&str> = if p.parens {
        p.value.split(',').collect()
    } else {
        vec![p.value]
    };
    // ovs-ofctl skips white space before each argument, not after.
    for a in &mut args {
        *a = a.trim_start();
    }
    if args.len() > 3 {
        return Err(format!("'{}': unknown resubmit parameter", args[3]));
    }
    if let Some(&extra) = args.get(2) {
        return Err(if extra == "ct" {
            "resubmit with 'ct' is not supported by vswitch".to_string()
        } else {
            format!("'{extra}': unknown resubmit parameter")
        });
    }
    // IN_PORT as the port and 255 as the table mean "unchanged".
    let port = match args[0] {
        "" => None,
        s => match parse_port(s, ports)? {
            0xfff8 => None,
            n => Some(n),
        },
    };
    let table = match args.get(1).copied().unwrap_or("") {
        "" => None,
        s => match parse_table(s)? {
            255 => None,
            t => Some(t),
        },
    };
    if port.is_none() && table.is_none() {
        return Err("resubmit needs a port or a table".into());
    }
    Ok(Action::Resubmit { port, table })
}

/// Reads `controller`, `controller:MAX_LEN` or `controller(max_len=N[,reason=action])`. The
/// other keys ovs-ofctl knows there (`reason=` other than `action`, `id=`, `userdata=`,
/// `pause`, `meter_id=`) ask for what vswitch does not do, so they are refused by name.
fn parse_controller(p: &Piece<'_>) -> Result<Action, String> {
    let max = |v: &str| parse_max(v, 0xffff, "controller max_len").map(|n| n as u16);
    if !p.parens {
        return Ok(Action::Controller {
            max_len: match p.value {
                "" => CONTROLLER_MAX_LEN,
                v => max(v)?,
            },
        });
    }
    let mut max_len = CONTROLLER_MAX_LEN;
    for arg in p.value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let (k, v) = arg.split_once('=').unwrap_or((arg, ""));
        match (k, v) {
            ("max_len", v) => max_len = max(v)?,
            // The reason a controller action gives anyway.
            ("reason", "action") => {}
            _ => {
                return Err(format!(
                    "controller({arg}) is not supported by vswitch (it takes max_len only)"
                ))
            }
        }
    }
    Ok(Action::Controller { max_len })
}

/// An action with the conditions its spelling comes with.
struct Meaning {
    action: Option<Action>,
    needs: Option<Need>,
    needs_of11: Option<Need>,
    only: Option<Version>,
}

impl Meaning {
    fn of(action: Action) -> Meaning {
        Meaning {
            action: Some(action),
            needs: None,
            needs_of11: None,
            only: None,
        }
    }

    /// `drop`: no action at all, as an empty list drops.
    fn drop() -> Meaning {
        Meaning {
            action: None,
            needs: None,
            needs_of11: None,
            only: None,
        }
    }

    fn set(field: SetField) -> Meaning {
        Meaning::of(Action::Set(field))
    }

    fn needs(mut self, need: Option<Need>) -> Meaning {
        self.needs = need;
        self
    }

    fn needs_of11(mut self, need: Need) -> Meaning {
        self.needs_of11 = Some(need);
        self
    }

    fn only(mut self, version: Option<Version>) -> Meaning {
        self.only = version;
        self
    }
}

/// Parses one action piece.
pub(super) fn parse_action<'a>(
    p: Piece<'a>,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<ParsedAction<'a>, String> {
    let lname = p.key.to_ascii_lowercase();
    let arg = || need_arg(p.value, &lname);
    let m = match lname.as_str() {
        "output" => {
            let a = arg()?;
            if a.contains("max_len=") {
                return Err("output with max_len (truncation) is not supported by vswitch".into());
            }
            Meaning::of(output_to(parse_port(a, ports)?, a)?)
        }
        "normal" => Meaning::of(Action::Normal),
        "flood" => Meaning::of(Action::Flood),
        "in_port" => Meaning::of(Action::InPort),
        "local" => Meaning::of(Action::Output(OFPP_LOCAL)),
        "all" => {
            return Err("output to the reserved port 'ALL' is not supported by vswitch".into())
        }
        "drop" => Meaning::drop(),
        "strip_vlan" | "pop_vlan" => Meaning::of(Action::PopVlan).needs_of11(Need::Vlan),
        // The controller ids are for packets whose TTL runs out; vswitch has no controller.
        "dec_ttl" => Meaning::of(Action::DecTtl).needs_of11(Need::Ip),
        "push_vlan" => {
            let a = arg()?;
            let t = parse_max(a, 0xffff, "push_vlan ethertype")? as u16;
            if t != ethertype::VLAN && t != ethertype::QINQ {
                return Err(format!("push_vlan ethertype {a} must be 0x8100 or 0x88a8"));
            }
            Meaning::of(Action::PushVlan(t)).only(Some(Version::Of11))
        }
        "mod_vlan_vid" => {
            Meaning::set(SetField::VlanVid(parse_max(arg()?, 4095, "VLAN id")? as u16))
        }
        "mod_vlan_pcp" => Meaning::set(SetField::VlanPcp(
            parse_max(arg()?, 7, "VLAN priority")? as u8
        )),
        "mod_dl_src" | "mod_dl_dst" => {
            let a = arg()?;
            let m = parse_mac_loose(a).ok_or(format!("'{a}' is not a valid MAC"))?;
            Meaning::set(if lname == "mod_dl_src" {
                SetField::EthSrc(m)
            } else {
                SetField::EthDst(m)
            })
        }
        "mod_nw_src" | "mod_nw_dst" => {
            let a = arg()?;
            let ip = parse_ipv4_strict(a).ok_or(format!("'{a}' is not a valid IPv4 address"))?;
            Meaning::set(if lname == "mod_nw_src" {
                SetField::Ipv4Src(ip)
            } else {
                SetField::Ipv4Dst(ip)
            })
            .needs_of11(Need::Ipv4)
        }
        "mod_nw_tos" => Meaning::set(SetField::IpTos(parse_tos(arg()?)?)).needs_of11(Need::Ip),
        "mod_nw_ttl" => Meaning::set(SetField::IpTtl(parse_max(arg()?, 255, "TTL")? as u8))
            .needs(Some(Need::Ip)),
        "mod_tp_src" => Meaning::set(SetField::TpSrc(parse_max(arg()?, 0xffff, "port")? as u16))
            .needs_of11(Need::Ports),
        "mod_tp_dst" => Meaning::set(SetField::TpDst(parse_max(arg()?, 0xffff, "port")? as u16))
            .needs_of11(Need::Ports),
        "set_tunnel" | "set_tunnel64" => {
            Meaning::set(SetField::TunId(
                parse_max(arg()?, u64::MAX as u128, "tunnel id")? as u64,
            ))
        }
        "set_field" => {
            let (sf, needs, only) = parse_set_field(arg()?)?;
            Meaning::set(sf).needs(needs).only(only)
        }
        "goto_table" => match parse_table(p.value)? {
            255 => return Err("table 255 does not exist (tables are 0-254)".into()),
            t => Meaning::of(Action::GotoTable(t)),
        },
        "resubmit" => Meaning::of(parse_resubmit(&p, ports)?),
        "controller" => Meaning::of(parse_controller(&p)?),
        n if UNSUPPORTED.contains(&n) => {
            return Err(format!("action '{}' is not supported by vswitch", p.key))
        }
        // A bare port number or name is an output (`actions=2`), its argument ignored.
        _ if parse_dec(p.key).is_some() || reserved(p.key).is_some() || ports(p.key).is_some() => {
            match output_to(parse_port(p.key, ports)?, p.key)? {
                // ovs-ofctl reads a bare CONTROLLER port number as an output with no bytes
                // (`CONTROLLER:0`); the name is the `controller` action above.
                Action::Controller { .. } if parse_dec(p.key).is_some() => {
                    Meaning::of(Action::Controller { max_len: 0 })
                }
                a => Meaning::of(a),
            }
        }
        _ => return Err(format!("unknown action '{}'", p.key)),
    };
    Ok(ParsedAction {
        action: m.action,
        needs: m.needs,
        needs_of11: m.needs_of11,
        only: m.only,
        piece: p,
    })
}
