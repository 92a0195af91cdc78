//! Actions (1.0 and 1.3) and 1.3 instructions, into flow-table's [`Action`] list.
//!
//! vswitch runs a rule's actions in order with no action set, so of the instructions only
//! APPLY_ACTIONS and GOTO_TABLE (which becomes a final [`Action::GotoTable`]) are taken;
//! WRITE_ACTIONS, WRITE_METADATA and METER are BAD_INSTRUCTION/UNSUP_INST.

use flow_table::key::ethertype;
use flow_table::{Action, MacAddr, SetField};

use crate::codec::{patch_u16, Put, Reader};
use crate::error::{BadAction, BadInstruction, DecodeError, ErrorCode};
use crate::oxm::{ofb, read_oxm};
use crate::ports::{self, ActionContext};

fn bad_action(field: &'static str, msg: String, code: BadAction) -> DecodeError {
    DecodeError::new(field, msg, ErrorCode::BadAction(code))
}

/// Splits a list of TLVs with a 16-bit type and a 16-bit length (a multiple of 8 covering
/// the header) into (type, body) pairs.
fn tlvs<'a>(
    buf: &'a [u8],
    what: &'static str,
    len_error: ErrorCode,
) -> Result<Vec<(u16, Reader<'a>)>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let t = r.u16(what)?;
        let len = r.u16(what)? as usize;
        if len < 8 || len & 7 != 0 || len - 4 > r.remaining() {
            return Err(DecodeError::new(
                what,
                format!("length {len} of type {t} (a multiple of 8, at least 8, within the list)"),
                len_error,
            ));
        }
        out.push((t, Reader::new(r.bytes(len - 4, what)?)));
    }
    Ok(out)
}

fn check_len(r: &Reader<'_>, want: usize, what: &'static str) -> Result<(), DecodeError> {
    if r.remaining() + 4 != want {
        return Err(bad_action(
            what,
            format!("length {} (expected {want})", r.remaining() + 4),
            BadAction::BadLen,
        ));
    }
    Ok(())
}

/// Nicira's vendor (experimenter) id, which OVS's extensions carry.
pub const NX_VENDOR: u32 = 0x0000_2320;

/// NXAST_* subtypes vswitch decodes.
mod nxast {
    pub const RESUBMIT: u16 = 1;
    pub const SET_TUNNEL: u16 = 2;
    pub const SET_TUNNEL64: u16 = 9;
    pub const RESUBMIT_TABLE: u16 = 14;
    pub const DEC_TTL: u16 = 18;
}

/// OFPAT_VENDOR (1.0) / OFPAT_EXPERIMENTER (1.3): the same type number and layout.
const AT_EXPERIMENTER: u16 = 0xffff;

/// A vendor/experimenter action (`r` after its type and length): of Nicira's, the ones
/// ovs-ofctl uses for resubmit, and in 1.0 for set_tunnel and dec_ttl.
fn experimenter_action(r: &mut Reader<'_>) -> Result<Action, DecodeError> {
    // Every action below is 16 bytes but SET_TUNNEL64; check once the subtype is known.
    let total = r.remaining() + 4;
    let vendor = r.u32("ofp_action_experimenter_header.experimenter")?;
    if vendor != NX_VENDOR {
        return Err(bad_action(
            "ofp_action_experimenter_header.experimenter",
            format!("experimenter {vendor:#x} is not known to vswitch"),
            BadAction::BadExperimenter,
        ));
    }
    if total < 16 {
        // Too short for any Nicira action (a header and subtype, padded to 16).
        return Err(bad_action(
            "nx_action_header.len",
            format!("length {total} for a Nicira action"),
            BadAction::BadLen,
        ));
    }
    let sub = r.u16("nx_action_header.subtype")?;
    let want = match sub {
        nxast::SET_TUNNEL64 => 24,
        _ => 16,
    };
    let len_ok = || {
        if total != want {
            return Err(bad_action(
                "nx_action_header.len",
                format!("length {total} for Nicira action {sub} (expected {want})"),
                BadAction::BadLen,
            ));
        }
        Ok(())
    };
    Ok(match sub {
        nxast::RESUBMIT | nxast::RESUBMIT_TABLE => {
            len_ok()?;
            let port = r.u16("nx_action_resubmit.in_port")? as u32;
            let table = r.u8("nx_action_resubmit.table")?;
            Action::Resubmit {
                // OFPP_IN_PORT: keep the packet's in_port for the lookup.
                port: (port != ports::OFPP_IN_PORT).then_some(port),
                // Plain RESUBMIT has no table (its bytes are padding); 255 is "this table".
                table: (sub == nxast::RESUBMIT_TABLE && table != 0xff).then_some(table),
            }
        }
        nxast::SET_TUNNEL => {
            len_ok()?;
            r.skip(2, "nx_action_set_tunnel.pad")?;
            Action::Set(SetField::TunId(r.u32("nx_action_set_tunnel.tun_id")? as u64))
        }
        nxast::SET_TUNNEL64 => {
            len_ok()?;
            r.skip(6, "nx_action_set_tunnel64.pad")?;
            Action::Set(SetField::TunId(r.u64("nx_action_set_tunnel64.tun_id")?))
        }
        nxast::DEC_TTL => {
            len_ok()?;
            Action::DecTtl
        }
        _ => {
            return Err(bad_action(
                "nx_action_header.subtype",
                format!("Nicira action {sub} is not supported by vswitch"),
                BadAction::BadExpType,
            ))
        }
    })
}

/// Decodes a 1.0 action list (`ofp_action_header`s) of a flow mod.
pub fn parse_actions10(buf: &[u8]) -> Result<Vec<Action>, DecodeError> {
    parse_actions10_in(buf, ActionContext::FlowMod)
}

/// Decodes a 1.0 action list of the message `ctx` says.
pub fn parse_actions10_in(buf: &[u8], ctx: ActionContext) -> Result<Vec<Action>, DecodeError> {
    let mut out = Vec::new();
    for (t, mut r) in tlvs(
        buf,
        "ofp_action_header",
        ErrorCode::BadAction(BadAction::BadLen),
    )? {
        let a = match t {
            0 => {
                check_len(&r, 8, "ofp_action_output")?;
                let port = r.u16("ofp_action_output.port")? as u32;
                let max_len = r.u16("ofp_action_output.max_len")?;
                ports::output_in(port, max_len, ctx)?
            }
            1 => {
                let vid = r.u16("ofp_action_vlan_vid.vlan_vid")?;
                if vid > 0x0fff {
                    return Err(bad_action(
                        "ofp_action_vlan_vid.vlan_vid",
                        format!("{vid} is not a VLAN id"),
                        BadAction::BadArgument,
                    ));
                }
                Action::Set(SetField::VlanVid(vid))
            }
            2 => {
                let pcp = r.u8("ofp_action_vlan_pcp.vlan_pcp")?;
                if pcp > 7 {
                    return Err(bad_action(
                        "ofp_action_vlan_pcp.vlan_pcp",
                        format!("{pcp} is not a VLAN priority"),
                        BadAction::BadArgument,
                    ));
                }
                Action::Set(SetField::VlanPcp(pcp))
            }
            3 => Action::PopVlan,
            4 | 5 => {
                check_len(&r, 16, "ofp_action_dl_addr")?;
                let mac = MacAddr(r.mac("ofp_action_dl_addr.dl_addr")?);
                Action::Set(if t == 4 {
                    SetField::EthSrc(mac)
                } else {
                    SetField::EthDst(mac)
                })
            }
            6 | 7 => {
                let a = r.u32("ofp_action_nw_addr.nw_addr")?;
                Action::Set(if t == 6 {
                    SetField::Ipv4Src(a)
                } else {
                    SetField::Ipv4Dst(a)
                })
            }
            8 => {
                let tos = r.u8("ofp_action_nw_tos.nw_tos")?;
                if tos & 3 != 0 {
                    return Err(bad_action(
                        "ofp_action_nw_tos.nw_tos",
                        format!("{tos} sets ECN bits"),
                        BadAction::BadArgument,
                    ));
                }
                Action::Set(SetField::IpTos(tos))
            }
            9 | 10 => {
                let p = r.u16("ofp_action_tp_port.tp_port")?;
                Action::Set(if t == 9 {
                    SetField::TpSrc(p)
                } else {
                    SetField::TpDst(p)
                })
            }
            AT_EXPERIMENTER => experimenter_action(&mut r)?,
            _ => {
                return Err(bad_action(
                    "ofp_action_header.type",
                    format!("1.0 action type {t} is not supported by vswitch"),
                    BadAction::BadType,
                ))
            }
        };
        out.push(a);
    }
    Ok(out)
}

/// Decodes a 1.3 action list of a flow mod.
pub fn parse_actions13(buf: &[u8]) -> Result<Vec<Action>, DecodeError> {
    parse_actions13_in(buf, ActionContext::FlowMod)
}

/// Decodes a 1.3 action list of the message `ctx` says.
pub fn parse_actions13_in(buf: &[u8], ctx: ActionContext) -> Result<Vec<Action>, DecodeError> {
    let mut out = Vec::new();
    for (t, mut r) in tlvs(
        buf,
        "ofp_action_header",
        ErrorCode::BadAction(BadAction::BadLen),
    )? {
        let a = match t {
            0 => {
                check_len(&r, 16, "ofp_action_output")?;
                let port = r.u32("ofp_action_output.port")?;
                let max_len = r.u16("ofp_action_output.max_len")?;
                ports::output_in(ports::from_of13(port), max_len, ctx)?
            }
            17 => {
                let tpid = r.u16("ofp_action_push.ethertype")?;
                if tpid != ethertype::VLAN && tpid != ethertype::QINQ {
                    return Err(bad_action(
                        "ofp_action_push.ethertype",
                        format!("{tpid:#06x} is not a VLAN ethertype"),
                        BadAction::BadArgument,
                    ));
                }
                Action::PushVlan(tpid)
            }
            18 => Action::PopVlan,
            22 => {
                return Err(bad_action(
                    "ofp_action_group",
                    "vswitch has no group table".into(),
                    BadAction::BadOutGroup,
                ))
            }
            23 => Action::Set(SetField::IpTtl(r.u8("ofp_action_nw_ttl.nw_ttl")?)),
            24 => Action::DecTtl,
            25 => set_field(&mut r)?,
            AT_EXPERIMENTER => experimenter_action(&mut r)?,
            _ => {
                return Err(bad_action(
                    "ofp_action_header.type",
                    format!("1.3 action type {t} is not supported by vswitch"),
                    BadAction::BadType,
                ))
            }
        };
        out.push(a);
    }
    Ok(out)
}

/// SET_FIELD: one unmasked OXM (then padding).
fn set_field(r: &mut Reader<'_>) -> Result<Action, DecodeError> {
    let o = read_oxm(r, "ofp_action_set_field.field").map_err(|e| DecodeError {
        reply: ErrorCode::BadAction(BadAction::BadSetType),
        ..e
    })?;
    let what = "ofp_action_set_field.field";
    if o.has_mask {
        return Err(bad_action(
            what,
            "a masked set_field".into(),
            BadAction::BadSetType,
        ));
    }
    let v = o.value;
    let mac = || MacAddr((v as u64).to_be_bytes()[2..].try_into().expect("6 bytes"));
    let s = match o.field {
        ofb::ETH_DST => SetField::EthDst(mac()),
        ofb::ETH_SRC => SetField::EthSrc(mac()),
        // The OFPVID_PRESENT bit may be there or not; the id is the low 12 bits.
        ofb::VLAN_VID => SetField::VlanVid(v as u16 & 0x0fff),
        ofb::VLAN_PCP => SetField::VlanPcp(v as u8 & 7),
        ofb::IP_DSCP => SetField::IpTos((v as u8 & 0x3f) << 2),
        ofb::IPV4_SRC => SetField::Ipv4Src(v as u32),
        ofb::IPV4_DST => SetField::Ipv4Dst(v as u32),
        ofb::TCP_SRC | ofb::UDP_SRC | ofb::SCTP_SRC => SetField::TpSrc(v as u16),
        ofb::TCP_DST | ofb::UDP_DST | ofb::SCTP_DST => SetField::TpDst(v as u16),
        ofb::TUNNEL_ID => SetField::TunId(v as u64),
        f => {
            return Err(bad_action(
                what,
                format!("set_field of OXM field {f} is not supported by vswitch"),
                BadAction::BadSetType,
            ))
        }
    };
    Ok(Action::Set(s))
}

/// Decodes 1.3 instructions into one action list: APPLY_ACTIONS' actions, then
/// GOTO_TABLE (instructions run in that order whatever their order in the message).
pub fn parse_instructions(buf: &[u8]) -> Result<Vec<Action>, DecodeError> {
    let bad = |msg: String, code| {
        Err(DecodeError::new(
            "ofp_instruction.type",
            msg,
            ErrorCode::BadInstruction(code),
        ))
    };
    let mut actions = Vec::new();
    let mut goto = None;
    let list = tlvs(
        buf,
        "ofp_instruction",
        ErrorCode::BadInstruction(BadInstruction::BadLen),
    )?;
    for (t, mut r) in list {
        match t {
            1 => {
                let table = r.u8("ofp_instruction_goto_table.table_id")?;
                goto = Some(Action::GotoTable(table));
            }
            4 => {
                r.skip(4, "ofp_instruction_actions.pad")?;
                actions.extend(parse_actions13(r.rest())?);
            }
            // Clears the action set, which vswitch never fills: nothing to do.
            5 => {}
            2 => {
                return bad(
                    "WRITE_METADATA is not supported by vswitch".into(),
                    BadInstruction::UnsupInst,
                )
            }
            3 => {
                return bad(
                    "WRITE_ACTIONS is not supported by vswitch (use APPLY_ACTIONS)".into(),
                    BadInstruction::UnsupInst,
                )
            }
            6 => {
                return bad(
                    "METER is not supported by vswitch".into(),
                    BadInstruction::UnsupInst,
                )
            }
            _ => {
                return bad(
                    format!("unknown instruction type {t}"),
                    BadInstruction::UnknownInst,
                )
            }
        }
    }
    actions.extend(goto);
    Ok(actions)
}

/// A vswitch output action's port in vswitch numbering (reserved ports as 1.0 numbers them)
/// and its max_len (which only CONTROLLER uses; the whole packet elsewhere).
fn out_port(a: &Action) -> Option<(u32, u16)> {
    match a {
        Action::Output(p) => Some((*p, 0)),
        Action::InPort => Some((ports::OFPP_IN_PORT, 0)),
        Action::Normal => Some((ports::OFPP_NORMAL, 0)),
        Action::Flood => Some((ports::OFPP_FLOOD, 0)),
        Action::Controller { max_len } => Some((ports::OFPP_CONTROLLER, *max_len)),
        _ => None,
    }
}

/// Appends a 16-byte Nicira action: header, subtype, then `body` (6 bytes).
fn put_nx16(b: &mut Vec<u8>, sub: u16, body: &[u8; 6]) {
    b.put_u16(AT_EXPERIMENTER);
    b.put_u16(16);
    b.put_u32(NX_VENDOR);
    b.put_u16(sub);
    b.extend_from_slice(body);
}

/// Appends `resubmit(port,table)` as NXAST_RESUBMIT (no table) or NXAST_RESUBMIT_TABLE.
fn put_resubmit(b: &mut Vec<u8>, port: Option<u32>, table: Option<u8>) {
    let port = port.map_or(ports::OFPP_IN_PORT as u16, |p| p as u16);
    let mut body = [0u8; 6];
    body[..2].copy_from_slice(&port.to_be_bytes());
    let sub = match table {
        Some(t) => {
            body[2] = t;
            nxast::RESUBMIT_TABLE
        }
        None => nxast::RESUBMIT,
    };
    put_nx16(b, sub, &body);
}

/// Appends `actions` as 1.0 actions (for flow statistics), with OVS's Nicira actions for
/// resubmit, dec_ttl and set_tunnel. Actions 1.0 has no form for (push_vlan, mod_nw_ttl,
/// goto_table) are left out.
pub fn put_actions10(b: &mut Vec<u8>, actions: &[Action]) {
    let put = |b: &mut Vec<u8>, t: u16, len: u16| {
        b.put_u16(t);
        b.put_u16(len);
    };
    for a in actions {
        if let Some((p, max_len)) = out_port(a) {
            put(b, 0, 8);
            b.put_u16(p as u16);
            b.put_u16(max_len);
            continue;
        }
        match a {
            Action::Resubmit { port, table } => put_resubmit(b, *port, *table),
            Action::DecTtl => put_nx16(b, nxast::DEC_TTL, &[0; 6]),
            Action::Set(SetField::TunId(id)) if *id <= u32::MAX as u64 => {
                let mut body = [0u8; 6];
                body[2..6].copy_from_slice(&(*id as u32).to_be_bytes());
                put_nx16(b, nxast::SET_TUNNEL, &body);
            }
            Action::Set(SetField::TunId(id)) => {
                b.put_u16(AT_EXPERIMENTER);
                b.put_u16(24);
                b.put_u32(NX_VENDOR);
                b.put_u16(nxast::SET_TUNNEL64);
                b.put_zeros(6);
                b.put_u64(*id);
            }
            Action::PopVlan => {
                put(b, 3, 8);
                b.put_u32(0);
            }
            Action::Set(s) => match *s {
                SetField::VlanVid(v) => {
                    put(b, 1, 8);
                    b.put_u16(v);
                    b.put_u16(0);
                }
                SetField::VlanPcp(p) => {
                    put(b, 2, 8);
                    b.put_u8(p);
                    b.put_zeros(3);
                }
                SetField::EthSrc(m) | SetField::EthDst(m) => {
                    put(
                        b,
                        if matches!(s, SetField::EthSrc(_)) {
                            4
                        } else {
                            5
                        },
                        16,
                    );
                    b.extend_from_slice(&m.0);
                    b.put_zeros(6);
                }
                SetField::Ipv4Src(a) | SetField::Ipv4Dst(a) => {
                    put(
                        b,
                        if matches!(s, SetField::Ipv4Src(_)) {
                            6
                        } else {
                            7
                        },
                        8,
                    );
                    b.put_u32(a);
                }
                SetField::IpTos(t) => {
                    put(b, 8, 8);
                    b.put_u8(t);
                    b.put_zeros(3);
                }
                SetField::TpSrc(p) | SetField::TpDst(p) => {
                    put(
                        b,
                        if matches!(s, SetField::TpSrc(_)) {
                            9
                        } else {
                            10
                        },
                        8,
                    );
                    b.put_u16(p);
                    b.put_u16(0);
                }
                SetField::IpTtl(_) | SetField::TunId(_) => {}
            },
            _ => {}
        }
    }
}

fn put_set_field(b: &mut Vec<u8>, field: u8, value: &[u8]) {
    let start = b.len();
    b.put_u16(25);
    b.put_u16(0);
    b.put_u16(crate::oxm::CLASS_BASIC);
    b.put_u8(field << 1);
    b.put_u8(value.len() as u8);
    b.extend_from_slice(value);
    b.pad8(start);
    let len = (b.len() - start) as u16;
    patch_u16(b, start + 2, len);
}

/// Appends `actions` as 1.3 actions (the part of a rule before any goto_table; resubmit as
/// OVS's Nicira action). `nw_proto` is the rule's exact IP protocol, if any: it
/// picks the OXM of an L4 port rewrite (UDP_SRC for UDP...), as the peer checks it against
/// the match.
pub fn put_actions13(b: &mut Vec<u8>, actions: &[Action], nw_proto: Option<u8>) {
    let (tp_src, tp_dst) = match nw_proto {
        Some(17) => (ofb::UDP_SRC, ofb::UDP_DST),
        Some(132) => (ofb::SCTP_SRC, ofb::SCTP_DST),
        _ => (ofb::TCP_SRC, ofb::TCP_DST),
    };
    for a in actions {
        if let Some((p, max_len)) = out_port(a) {
            b.put_u16(0);
            b.put_u16(16);
            b.put_u32(ports::to_of13(p));
            // OFPCML_NO_BUFFER, the whole packet, but where CONTROLLER says otherwise.
            b.put_u16(if p == ports::OFPP_CONTROLLER {
                max_len
            } else {
                0xffff
            });
            b.put_zeros(6);
            continue;
        }
        let simple = |b: &mut Vec<u8>, t: u16, arg: u16| {
            b.put_u16(t);
            b.put_u16(8);
            b.put_u16(arg);
            b.put_u16(0);
        };
        match a {
            Action::PushVlan(t) => simple(b, 17, *t),
            Action::PopVlan => simple(b, 18, 0),
            Action::DecTtl => simple(b, 24, 0),
            Action::Resubmit { port, table } => put_resubmit(b, *port, *table),
            Action::Set(SetField::IpTtl(t)) => simple(b, 23, (*t as u16) << 8),
            Action::Set(s) => match *s {
                SetField::EthDst(m) => put_set_field(b, ofb::ETH_DST, &m.0),
                SetField::EthSrc(m) => put_set_field(b, ofb::ETH_SRC, &m.0),
                SetField::VlanVid(v) => {
                    put_set_field(b, ofb::VLAN_VID, &(v | 0x1000).to_be_bytes())
                }
                SetField::VlanPcp(p) => put_set_field(b, ofb::VLAN_PCP, &[p]),
                SetField::Ipv4Src(a) => put_set_field(b, ofb::IPV4_SRC, &a.to_be_bytes()),
                SetField::Ipv4Dst(a) => put_set_field(b, ofb::IPV4_DST, &a.to_be_bytes()),
                SetField::IpTos(t) => put_set_field(b, ofb::IP_DSCP, &[t >> 2]),
                SetField::TpSrc(p) => put_set_field(b, tp_src, &p.to_be_bytes()),
                SetField::TpDst(p) => put_set_field(b, tp_dst, &p.to_be_bytes()),
                SetField::TunId(id) => put_set_field(b, ofb::TUNNEL_ID, &id.to_be_bytes()),
                SetField::IpTtl(_) => unreachable!("matched above"),
            },
            _ => {}
        }
    }
}

/// Appends a rule's actions as 1.3 instructions: APPLY_ACTIONS (when there are actions)
/// then GOTO_TABLE (when the list ends with one). Nothing at all for a drop rule.
/// `nw_proto`: as for [`put_actions13`].
pub fn put_instructions13(b: &mut Vec<u8>, actions: &[Action], nw_proto: Option<u8>) {
    let (list, goto) = match actions.split_last() {
        Some((Action::GotoTable(t), rest)) => (rest, Some(*t)),
        _ => (actions, None),
    };
    if !list.is_empty() {
        let start = b.len();
        b.put_u16(4);
        b.put_u16(0);
        b.put_u32(0);
        put_actions13(b, list, nw_proto);
        let len = (b.len() - start) as u16;
        patch_u16(b, start + 2, len);
    }
    if let Some(t) = goto {
        b.put_u16(1);
        b.put_u16(8);
        b.put_u8(t);
        b.put_zeros(3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions10() {
        let b = [
            0, 0, 0, 8, 0, 2, 0, 0, // output:2
            0, 3, 0, 8, 0, 0, 0, 0, // strip_vlan
            0, 1, 0, 8, 0, 10, 0, 0, // mod_vlan_vid:10
            0, 5, 0, 16, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, // mod_dl_dst
            0, 7, 0, 8, 10, 0, 0, 1, // mod_nw_dst
            0, 10, 0, 8, 0, 80, 0, 0, // mod_tp_dst:80
            0, 0, 0, 8, 0xff, 0xf8, 0, 0, // in_port
        ];
        assert_eq!(
            parse_actions10(&b).unwrap(),
            vec![
                Action::Output(2),
                Action::PopVlan,
                Action::Set(SetField::VlanVid(10)),
                Action::Set(SetField::EthDst(MacAddr([1, 2, 3, 4, 5, 6]))),
                Action::Set(SetField::Ipv4Dst(0x0a00_0001)),
                Action::Set(SetField::TpDst(80)),
                Action::InPort,
            ]
        );
        let ctl = [0, 0, 0, 8, 0xff, 0xfd, 0, 100];
        assert_eq!(
            parse_actions10(&ctl).unwrap(),
            vec![Action::Controller { max_len: 100 }]
        );
        let table = [0, 0, 0, 8, 0xff, 0xf9, 0, 0];
        assert_eq!(
            parse_actions10(&table).unwrap_err().reply,
            ErrorCode::BadAction(BadAction::BadOutPort)
        );
        // resubmit(,2) as ovs-ofctl sends it, then resubmit(3).
        let nx = [
            0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 14, 0xff, 0xf8, 2, 0, 0, 0, //
            0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 1, 0, 3, 0xff, 0, 0, 0,
        ];
        assert_eq!(
            parse_actions10(&nx).unwrap(),
            vec![
                Action::Resubmit {
                    port: None,
                    table: Some(2)
                },
                Action::Resubmit {
                    port: Some(3),
                    table: None
                },
            ]
        );
        let other_vendor = [0xff, 0xff, 0, 16, 0, 0, 0x23, 0x21, 0, 1, 0, 3, 0, 0, 0, 0];
        assert_eq!(
            parse_actions10(&other_vendor).unwrap_err().reply,
            ErrorCode::BadAction(BadAction::BadExperimenter)
        );
        let learn = [0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 16, 0, 3, 0, 0, 0, 0];
        assert_eq!(
            parse_actions10(&learn).unwrap_err().reply,
            ErrorCode::BadAction(BadAction::BadExpType)
        );
        let short_nx = [0xff, 0xff, 0, 8, 0, 0, 0x23, 0x20];
        assert_eq!(
            parse_actions10(&short_nx).unwrap_err().reply,
            ErrorCode::BadAction(BadAction::BadLen)
        );
        let long_resubmit = [
            0xff, 0xff, 0, 24, 0, 0, 0x23, 0x20, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            parse_actions10(&long_resubmit).unwrap_err().reply,
            ErrorCode::BadAction(BadAction::BadLen)
        );
        let enqueue = [0, 11, 0, 16, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            parse_actions10(&enqueue).unwrap_err().reply,
            ErrorCode::BadAction(BadAction::BadType)
        );
        let bad_len = [0, 0, 0, 12, 0, 2, 0, 0];
        assert_eq!(
            parse_actions10(&bad_len).unwrap_err().reply,
            ErrorCode::BadAction(BadAction::BadLen)
        );
    }

    #[test]
    fn encode_round_trips() {
        let list = vec![
            Action::Output(2),
            Action::Set(SetField::VlanVid(10)),
            Action::Set(SetField::EthSrc(MacAddr([2, 0, 0, 0, 0, 1]))),
            Action::Set(SetField::Ipv4Dst(0x0a00_0001)),
            Action::Set(SetField::IpTos(32)),
            Action::Set(SetField::TpDst(80)),
            Action::PopVlan,
            Action::Normal,
            Action::Flood,
            Action::InPort,
            Action::Output(0xfffe),
            Action::Controller { max_len: 200 },
            Action::Resubmit {
                port: Some(4),
                table: Some(3),
            },
            Action::Resubmit {
                port: None,
                table: None,
            },
            Action::DecTtl,
        ];
        let mut b = Vec::new();
        let mut list10 = list.clone();
        list10.extend([
            Action::Set(SetField::TunId(5)),
            Action::Set(SetField::TunId(1 << 40)),
        ]);
        put_actions10(&mut b, &list10);
        assert_eq!(parse_actions10(&b).unwrap(), list10);
        let mut b = Vec::new();
        put_actions10(&mut b, &list);
        assert_eq!(parse_actions10(&b).unwrap(), list);
        let mut list13 = list.clone();
        list13.extend([
            Action::PushVlan(0x88a8),
            Action::Set(SetField::TunId(9)),
            Action::GotoTable(4),
        ]);
        let mut b = Vec::new();
        put_instructions13(&mut b, &list13, Some(17));
        assert_eq!(parse_instructions(&b).unwrap(), list13);
        let mut b = Vec::new();
        put_instructions13(&mut b, &[], None);
        assert!(b.is_empty());
    }

    #[test]
    fn instructions13() {
        let b = [
            0, 1, 0, 8, 3, 0, 0, 0, // goto_table:3 (listed first, runs last)
            0, 4, 0, 40, 0, 0, 0, 0, // apply_actions, 32 bytes of actions:
            0, 17, 0, 8, 0x81, 0, 0, 0, // push_vlan:0x8100
            0, 25, 0, 16, 0x80, 0, 12, 2, 0x10, 5, 0, 0, 0, 0, 0, 0, // set_field vlan_vid
            0, 24, 0, 8, 0, 0, 0, 0, // dec_ttl
        ];
        assert_eq!(
            parse_instructions(&b).unwrap(),
            vec![
                Action::PushVlan(0x8100),
                Action::Set(SetField::VlanVid(5)),
                Action::DecTtl,
                Action::GotoTable(3),
            ]
        );
        let write = [0, 3, 0, 8, 0, 0, 0, 0];
        assert_eq!(
            parse_instructions(&write).unwrap_err().reply,
            ErrorCode::BadInstruction(BadInstruction::UnsupInst)
        );
        let group = [0, 4, 0, 16, 0, 0, 0, 0, 0, 22, 0, 8, 0, 0, 0, 1];
        assert_eq!(
            parse_instructions(&group).unwrap_err().reply,
            ErrorCode::BadAction(BadAction::BadOutGroup)
        );
        let out_local = [
            0, 4, 0, 24, 0, 0, 0, 0, 0, 0, 0, 16, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xe5, 0, 0, 0, 0,
            0, 0,
        ];
        assert_eq!(
            parse_instructions(&out_local).unwrap(),
            vec![Action::Output(0xfffe)]
        );
    }
}
