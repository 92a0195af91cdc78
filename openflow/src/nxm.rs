//! Nicira's NXM matches (`nx_match`), which OVS uses in OpenFlow 1.0 for every field the
//! 1.0 `ofp_match` lacks (IPv6, tunnel id, ARP hardware addresses, TTL, TCP flags...):
//! in and out of flow-table's [`Match`].
//!
//! An NXM entry has the OXM layout (`class:16 field:7 hasmask:1 length:8`, value, mask);
//! classes NXM_OF (0) and NXM_NX (1) are Nicira's, and OpenFlow's own OXM class is allowed
//! too (OVS sends SCTP ports that way). Unlike an OXM match, an `nx_match` has no header:
//! its length is given by the message around it.

use flow_table::key::{ethertype, ipproto};
use flow_table::{Field, Match};

use crate::codec::{Put, Reader};
use crate::error::{BadMatch, DecodeError, ErrorCode};
use crate::oxm::{self, CLASS_BASIC};

/// NXM_OF_* class: the fields of 1.0's match.
const CLASS_OF: u16 = 0x0000;
/// NXM_NX_* class: Nicira's additions.
const CLASS_NX: u16 = 0x0001;

/// How an NXM field lands in flow-table's key.
#[derive(Clone, Copy)]
enum Target {
    /// The whole key field (an exact narrower value is exact over the whole field, as
    /// flow-table's builders make ICMP type in `tp_src`).
    Plain(Field),
    /// Some bits of the key field (DSCP and ECN share `nw_tos`).
    Bits(Field, u128),
}

/// (class, field) → (wire width, maskable, target).
fn lookup(class: u16, field: u8) -> Option<(usize, bool, Target)> {
    use Target::*;
    Some(match (class, field) {
        (CLASS_OF, 0) => (2, false, Plain(Field::InPort)),
        (CLASS_OF, 1) => (6, true, Plain(Field::EthDst)),
        (CLASS_OF, 2) => (6, true, Plain(Field::EthSrc)),
        (CLASS_OF, 3) => (2, false, Plain(Field::EthType)),
        (CLASS_OF, 4) => (2, true, Plain(Field::VlanTci)),
        (CLASS_OF, 5) => (1, false, Bits(Field::NwTos, 0xfc)),
        (CLASS_OF, 6) => (1, false, Plain(Field::NwProto)),
        (CLASS_OF, 7) => (4, true, Plain(Field::NwSrc)),
        (CLASS_OF, 8) => (4, true, Plain(Field::NwDst)),
        (CLASS_OF, 9) | (CLASS_OF, 11) => (2, true, Plain(Field::TpSrc)),
        (CLASS_OF, 10) | (CLASS_OF, 12) => (2, true, Plain(Field::TpDst)),
        (CLASS_OF, 13) => (1, false, Plain(Field::TpSrc)),
        (CLASS_OF, 14) => (1, false, Plain(Field::TpDst)),
        (CLASS_OF, 15) => (2, false, Plain(Field::NwProto)),
        (CLASS_OF, 16) => (4, true, Plain(Field::NwSrc)),
        (CLASS_OF, 17) => (4, true, Plain(Field::NwDst)),
        (CLASS_NX, 16) => (8, true, Plain(Field::TunId)),
        (CLASS_NX, 17) => (6, true, Plain(Field::ArpSha)),
        (CLASS_NX, 18) => (6, true, Plain(Field::ArpTha)),
        (CLASS_NX, 19) => (16, true, Plain(Field::Ipv6Src)),
        (CLASS_NX, 20) => (16, true, Plain(Field::Ipv6Dst)),
        (CLASS_NX, 21) => (1, false, Plain(Field::TpSrc)),
        (CLASS_NX, 22) => (1, false, Plain(Field::TpDst)),
        (CLASS_NX, 26) => (1, true, Plain(Field::NwFrag)),
        (CLASS_NX, 27) => (4, true, Plain(Field::Ipv6Label)),
        (CLASS_NX, 28) => (1, false, Bits(Field::NwTos, 0x03)),
        (CLASS_NX, 29) => (1, false, Plain(Field::NwTtl)),
        (CLASS_NX, 31) => (4, true, Plain(Field::TunSrc)),
        (CLASS_NX, 32) => (4, true, Plain(Field::TunDst)),
        (CLASS_NX, 34) => (2, true, Plain(Field::TcpFlags)),
        _ => return None,
    })
}

/// The bits of a key field that mean something: an exact match compares these (flow-table
/// writes `nw_frag`, `tcp_flags` and `ipv6_label` matches with these masks).
fn full(f: Field) -> u128 {
    match f {
        Field::NwFrag => 0x03,
        Field::TcpFlags => 0x0fff,
        Field::Ipv6Label => 0xf_ffff,
        _ => f.all_ones(),
    }
}

fn be(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |v, &x| v << 8 | x as u128)
}

fn bad(field: &'static str, msg: String, code: BadMatch) -> DecodeError {
    DecodeError::new(field, msg, ErrorCode::BadMatch(code))
}

/// Reads an `nx_match` of `len` bytes (not counting its padding, which the caller skips)
/// into a [`Match`] meeting OpenFlow's prerequisites.
pub(crate) fn read_nx_match(r: &mut Reader<'_>, len: usize) -> Result<Match, DecodeError> {
    let body = r.bytes(len, "nx_match")?;
    let mut fields = Reader::new(body);
    let mut m = Match::any();
    let mut seen: Vec<(u16, u8)> = Vec::new();
    // IP protocols whose header fields the match names.
    let mut protos: Vec<u8> = Vec::new();
    while fields.remaining() > 0 {
        let class = fields.u16("nxm_header.class")?;
        let fh = fields.u8("nxm_header.field")?;
        let n = fields.u8("nxm_header.length")? as usize;
        let (field, has_mask) = (fh >> 1, fh & 1 == 1);
        if seen.contains(&(class, field)) {
            return Err(bad(
                "nx_match",
                format!("NXM field {class}:{field} given twice"),
                BadMatch::DupField,
            ));
        }
        seen.push((class, field));
        if class == CLASS_BASIC {
            // An OXM inside the NXM: read it as a 1.3 match would.
            let mut whole = Vec::with_capacity(4 + n);
            whole.extend_from_slice(&class.to_be_bytes());
            whole.extend_from_slice(&[fh, n as u8]);
            whole.extend_from_slice(fields.bytes(n, "nxm_header.length")?);
            let o = oxm::read_oxm(&mut Reader::new(&whole), "nx_match")?;
            protos.extend(oxm::l4_proto(o.field));
            oxm::apply(&mut m, o)?;
            continue;
        }
        protos.extend(match (class, field) {
            (CLASS_OF, 9 | 10) => Some(6),
            (CLASS_OF, 11 | 12) => Some(17),
            (CLASS_OF, 13 | 14) => Some(1),
            (CLASS_NX, 21 | 22) => Some(58),
            _ => None,
        });
        let payload = fields.bytes(n, "nxm_header.length")?;
        let Some((w, maskable, target)) = lookup(class, field) else {
            return Err(bad(
                "nx_match",
                format!("NXM field {class}:{field} is not supported by vswitch"),
                BadMatch::BadField,
            ));
        };
        if n != if has_mask { 2 * w } else { w } {
            return Err(bad(
                "nxm_header.length",
                format!("{n} bytes for NXM field {class}:{field}"),
                BadMatch::BadLen,
            ));
        }
        if has_mask && !maskable {
            return Err(bad(
                "nx_match",
                format!("NXM field {class}:{field} cannot be masked"),
                BadMatch::BadMask,
            ));
        }
        let v = be(&payload[..w]);
        match target {
            Target::Plain(f) => {
                let mk = if has_mask {
                    be(&payload[w..]) & full(f)
                } else {
                    full(f)
                };
                // ARP opcodes live in flow-table's 8-bit nw_proto.
                if v & !full(f) != 0 {
                    return Err(bad(
                        "nx_match",
                        format!("value {v:#x} of NXM field {class}:{field} is out of range"),
                        BadMatch::BadValue,
                    ));
                }
                m.set_field(f, v & mk, mk);
            }
            Target::Bits(f, bits) => {
                if v & !bits != 0 {
                    return Err(bad(
                        "nx_match",
                        format!("value {v:#x} of NXM field {class}:{field} sets other bits"),
                        BadMatch::BadValue,
                    ));
                }
                let (old, old_mask) = m.field(f);
                m.set_field(f, (old & !bits) | v, old_mask | bits);
            }
        }
    }
    m.validate()
        .map_err(|e| bad("nx_match", format!("{e:?}"), BadMatch::BadPrereq))?;
    for p in protos {
        oxm::l4_agrees(&m, p, "nx_match")?;
    }
    Ok(m)
}

/// Parses an `nx_match` filling all of `buf` into a [`Match`].
pub fn parse_nx_match(buf: &[u8]) -> Result<Match, DecodeError> {
    read_nx_match(&mut Reader::new(buf), buf.len())
}

fn put_entry(b: &mut Vec<u8>, class: u16, field: u8, w: usize, value: u128, mask: u128) {
    let ones = if w >= 16 {
        u128::MAX
    } else {
        (1u128 << (w * 8)) - 1
    };
    let exact = mask & ones == ones;
    b.put_u16(class);
    b.put_u8(field << 1 | u8::from(!exact));
    b.put_u8(if exact { w } else { 2 * w } as u8);
    b.extend_from_slice(&(value & mask).to_be_bytes()[16 - w..]);
    if !exact {
        b.extend_from_slice(&mask.to_be_bytes()[16 - w..]);
    }
}

/// Appends `m` as an `nx_match` (no padding) and returns its length. NXM can say all that
/// flow-table matches but the inner VLAN tag, which is left out.
pub fn put_nx_match(b: &mut Vec<u8>, m: &Match) -> usize {
    let start = b.len();
    let get = |f: Field| m.field(f);
    // Exact fields go out exact over their wire width; others with their mask.
    let put = |b: &mut Vec<u8>, class: u16, field: u8, f: Field| {
        let (v, mk) = get(f);
        if mk == 0 {
            return;
        }
        let (w, maskable, _) = lookup(class, field).expect("known NXM field");
        let mk = if maskable && mk != full(f) {
            mk
        } else {
            u128::MAX
        };
        put_entry(b, class, field, w, v, mk);
    };
    put(b, CLASS_OF, 0, Field::InPort);
    put(b, CLASS_OF, 1, Field::EthDst);
    put(b, CLASS_OF, 2, Field::EthSrc);
    put(b, CLASS_OF, 3, Field::EthType);
    put(b, CLASS_OF, 4, Field::VlanTci);
    let (eth, eth_mask) = get(Field::EthType);
    let eth = (eth_mask != 0).then_some(eth as u16);
    let (proto, proto_mask) = get(Field::NwProto);
    let proto = (proto_mask != 0).then_some(proto as u8);
    if eth == Some(ethertype::ARP) {
        put(b, CLASS_OF, 15, Field::NwProto);
        put(b, CLASS_OF, 16, Field::NwSrc);
        put(b, CLASS_OF, 17, Field::NwDst);
        put(b, CLASS_NX, 17, Field::ArpSha);
        put(b, CLASS_NX, 18, Field::ArpTha);
    } else {
        put(b, CLASS_OF, 6, Field::NwProto);
        put(b, CLASS_OF, 7, Field::NwSrc);
        put(b, CLASS_OF, 8, Field::NwDst);
        put(b, CLASS_NX, 19, Field::Ipv6Src);
        put(b, CLASS_NX, 20, Field::Ipv6Dst);
        put(b, CLASS_NX, 27, Field::Ipv6Label);
        match proto {
            Some(ipproto::TCP) => {
                put(b, CLASS_OF, 9, Field::TpSrc);
                put(b, CLASS_OF, 10, Field::TpDst);
            }
            Some(ipproto::UDP) => {
                put(b, CLASS_OF, 11, Field::TpSrc);
                put(b, CLASS_OF, 12, Field::TpDst);
            }
            Some(ipproto::ICMP) => {
                put(b, CLASS_OF, 13, Field::TpSrc);
                put(b, CLASS_OF, 14, Field::TpDst);
            }
            Some(ipproto::ICMPV6) => {
                put(b, CLASS_NX, 21, Field::TpSrc);
                put(b, CLASS_NX, 22, Field::TpDst);
            }
            Some(132) => {
                // SCTP has no NXM field: OpenFlow's OXM, as OVS sends it.
                for (oxm_field, f) in [
                    (oxm::ofb::SCTP_SRC, Field::TpSrc),
                    (oxm::ofb::SCTP_DST, Field::TpDst),
                ] {
                    let (v, mk) = get(f);
                    if mk != 0 {
                        put_entry(b, CLASS_BASIC, oxm_field, 2, v, mk);
                    }
                }
            }
            _ => {}
        }
        let (tos, tos_mask) = get(Field::NwTos);
        if tos_mask & 0xfc != 0 {
            put_entry(b, CLASS_OF, 5, 1, tos & 0xfc, u128::MAX);
        }
        if tos_mask & 0x03 != 0 {
            put_entry(b, CLASS_NX, 28, 1, tos & 0x03, u128::MAX);
        }
        put(b, CLASS_NX, 29, Field::NwTtl);
        put(b, CLASS_NX, 26, Field::NwFrag);
        put(b, CLASS_NX, 34, Field::TcpFlags);
    }
    put(b, CLASS_NX, 16, Field::TunId);
    put(b, CLASS_NX, 31, Field::TunSrc);
    put(b, CLASS_NX, 32, Field::TunDst);
    b.len() - start
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use flow_table::MacAddr;

    use super::*;

    fn round(m: Match) {
        let mut b = Vec::new();
        let n = put_nx_match(&mut b, &m);
        assert_eq!(n, b.len());
        assert_eq!(parse_nx_match(&b).unwrap(), m, "{b:x?}");
    }

    #[test]
    fn round_trips() {
        round(Match::any());
        round(Match::any().in_port(0xfffe).tun_id(5));
        round(
            Match::any()
                .eth_type(0x86dd)
                .ipv6_src(Ipv6Addr::LOCALHOST, 64)
                .nw_proto(58)
                .icmp_type(135),
        );
        round(
            Match::any()
                .eth_src_masked(MacAddr([2, 0, 0, 0, 0, 0]), MacAddr([0xff, 0, 0, 0, 0, 0]))
                .vlan_vid(10)
                .eth_type(0x0800)
                .nw_proto(17)
                .tp_dst(53)
                .ip_dscp(46)
                .nw_src(Ipv4Addr::new(10, 0, 0, 0), 8),
        );
        round(
            Match::any()
                .eth_type(0x0806)
                .arp_op(2)
                .arp_tpa(Ipv4Addr::new(1, 2, 3, 4), 32),
        );
        round(Match::any().no_vlan());
        let mut m = Match::any().eth_type(0x86dd);
        m.set_field(Field::Ipv6Label, 0x12345, 0xf_ffff);
        m.set_field(Field::NwTtl, 9, 0xff);
        round(m);
        let mut m = Match::any().eth_type(0x0800).nw_proto(6);
        m.set_field(Field::TcpFlags, 0x002, 0x012);
        m.set_field(Field::NwFrag, 1, 3);
        round(m);
    }

    #[test]
    fn errors() {
        // NXM_NX_REG0: not supported.
        let reg = [0, 1, 0, 4, 0, 0, 0, 1];
        assert_eq!(
            parse_nx_match(&reg).unwrap_err().reply,
            ErrorCode::BadMatch(BadMatch::BadField)
        );
        // ip_src without dl_type.
        let b = [0, 0, 14, 4, 1, 2, 3, 4];
        assert_eq!(
            parse_nx_match(&b).unwrap_err().reply,
            ErrorCode::BadMatch(BadMatch::BadPrereq)
        );
        // dl_type twice; a length past the end; a masked dl_type.
        let b = [0, 0, 6, 2, 8, 0, 0, 0, 6, 2, 8, 0];
        assert_eq!(
            parse_nx_match(&b).unwrap_err().reply,
            ErrorCode::BadMatch(BadMatch::DupField)
        );
        assert!(parse_nx_match(&[0, 0, 6, 9, 8, 0]).is_err());
        assert_eq!(
            parse_nx_match(&[0, 0, 7, 4, 8, 0, 0xff, 0xff])
                .unwrap_err()
                .reply,
            ErrorCode::BadMatch(BadMatch::BadMask)
        );
    }
}
