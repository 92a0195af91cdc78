//! OpenFlow 1.0's fixed `ofp_match` (40 bytes, with a wildcard bitmap).
//!
//! Fields whose prerequisites the match does not have (an `nw_src` without an IP or ARP
//! `dl_type`) are ignored, as Open vSwitch does, so the decoded [`Match`] is the one that
//! `ovs-ofctl` meant and passes flow-table's validation.

use std::net::Ipv4Addr;

use flow_table::key::{ethertype, ipproto};
use flow_table::{Field, MacAddr, Match};

use crate::codec::{Put, Reader};
use crate::error::DecodeError;

/// Length of `ofp_match` in 1.0.
pub const MATCH10_LEN: usize = 40;

/// OFPFW_IN_PORT and the other wildcard bits: set means "any value".
const FW_IN_PORT: u32 = 1 << 0;
const FW_DL_VLAN: u32 = 1 << 1;
const FW_DL_SRC: u32 = 1 << 2;
const FW_DL_DST: u32 = 1 << 3;
const FW_DL_TYPE: u32 = 1 << 4;
const FW_NW_PROTO: u32 = 1 << 5;
const FW_TP_SRC: u32 = 1 << 6;
const FW_TP_DST: u32 = 1 << 7;
/// nw_src: a 6-bit count of wildcarded low bits (32 or more: all).
const FW_NW_SRC_SHIFT: u32 = 8;
const FW_NW_DST_SHIFT: u32 = 14;
const FW_DL_VLAN_PCP: u32 = 1 << 20;
const FW_NW_TOS: u32 = 1 << 21;

/// dl_vlan's "no tag" value.
const VLAN_NONE: u16 = 0xffff;

/// Reads an `ofp_match` into a flow-table [`Match`].
pub fn parse_match10(buf: &[u8]) -> Result<Match, DecodeError> {
    let mut r = Reader::new(buf);
    read_match10(&mut r)
}

pub(crate) fn read_match10(r: &mut Reader<'_>) -> Result<Match, DecodeError> {
    let wc = r.u32("ofp_match.wildcards")?;
    let in_port = r.u16("ofp_match.in_port")?;
    let dl_src = r.mac("ofp_match.dl_src")?;
    let dl_dst = r.mac("ofp_match.dl_dst")?;
    let dl_vlan = r.u16("ofp_match.dl_vlan")?;
    let dl_vlan_pcp = r.u8("ofp_match.dl_vlan_pcp")?;
    r.skip(1, "ofp_match.pad1")?;
    let dl_type = r.u16("ofp_match.dl_type")?;
    let nw_tos = r.u8("ofp_match.nw_tos")?;
    let nw_proto = r.u8("ofp_match.nw_proto")?;
    r.skip(2, "ofp_match.pad2")?;
    let nw_src = r.u32("ofp_match.nw_src")?;
    let nw_dst = r.u32("ofp_match.nw_dst")?;
    let tp_src = r.u16("ofp_match.tp_src")?;
    let tp_dst = r.u16("ofp_match.tp_dst")?;

    let has = |bit: u32| wc & bit == 0;
    let mut m = Match::any();
    if has(FW_IN_PORT) {
        m = m.in_port(in_port as u32);
    }
    if has(FW_DL_SRC) {
        m = m.eth_src(MacAddr(dl_src));
    }
    if has(FW_DL_DST) {
        m = m.eth_dst(MacAddr(dl_dst));
    }
    if has(FW_DL_VLAN) {
        m = if dl_vlan == VLAN_NONE {
            m.no_vlan()
        } else {
            m.vlan_vid(dl_vlan & 0x0fff)
        };
    }
    // A priority means nothing for untagged packets.
    if has(FW_DL_VLAN_PCP) && !(has(FW_DL_VLAN) && dl_vlan == VLAN_NONE) {
        m = m.vlan_pcp(dl_vlan_pcp);
    }
    if !has(FW_DL_TYPE) {
        return Ok(m);
    }
    m = m.eth_type(dl_type);
    let is_ip = dl_type == ethertype::IPV4;
    if !is_ip && dl_type != ethertype::ARP {
        return Ok(m);
    }
    let prefix = |shift: u32| 32u32.saturating_sub((wc >> shift) & 0x3f) as u8;
    let (src_len, dst_len) = (prefix(FW_NW_SRC_SHIFT), prefix(FW_NW_DST_SHIFT));
    if src_len > 0 {
        m = m.nw_src(Ipv4Addr::from(nw_src), src_len);
    }
    if dst_len > 0 {
        m = m.nw_dst(Ipv4Addr::from(nw_dst), dst_len);
    }
    if has(FW_NW_PROTO) {
        // For ARP this is the opcode's low byte, where flow-table keeps it too.
        m = m.nw_proto(nw_proto);
    }
    if !is_ip {
        return Ok(m);
    }
    if has(FW_NW_TOS) {
        m = m.ip_dscp(nw_tos >> 2);
    }
    if !has(FW_NW_PROTO)
        || ![ipproto::TCP, ipproto::UDP, ipproto::SCTP, ipproto::ICMP].contains(&nw_proto)
    {
        return Ok(m);
    }
    if has(FW_TP_SRC) {
        m.set_field(Field::TpSrc, tp_src as u128, 0xffff);
    }
    if has(FW_TP_DST) {
        m.set_field(Field::TpDst, tp_dst as u128, 0xffff);
    }
    Ok(m)
}

/// Appends `m` as an `ofp_match` (for flow statistics).
///
/// 1.0 cannot say everything a [`Match`] can: partial MAC and L4 masks, IPv6, ARP hardware
/// addresses, TCP flags... A field 1.0 cannot express is left wildcarded (the printed match
/// is wider than the rule's); an IPv4 mask that is not a prefix is widened to its leading
/// ones.
pub fn put_match10(b: &mut Vec<u8>, m: &Match) {
    let get = |f: Field| m.field(f);
    let exact = |f: Field| get(f).1 == f.all_ones();
    let mut wc = (1u32 << 22) - 1;
    let mut clear = |bit: u32| wc &= !bit;
    let (in_port, in_mask) = get(Field::InPort);
    if in_mask != 0 {
        clear(FW_IN_PORT);
    }
    let mac = |f: Field| -> [u8; 6] {
        if exact(f) {
            (get(f).0 as u64).to_be_bytes()[2..]
                .try_into()
                .expect("6 bytes")
        } else {
            [0; 6]
        }
    };
    if exact(Field::EthSrc) {
        clear(FW_DL_SRC);
    }
    if exact(Field::EthDst) {
        clear(FW_DL_DST);
    }
    let (tci, tci_mask) = get(Field::VlanTci);
    let (tci, tci_mask) = (tci as u16, tci_mask as u16);
    let present = flow_table::key::VLAN_PRESENT;
    let mut dl_vlan = 0u16;
    let mut pcp = 0u8;
    if tci_mask & present != 0 && tci & present == 0 {
        dl_vlan = VLAN_NONE;
        clear(FW_DL_VLAN);
    } else {
        if tci_mask & 0x0fff == 0x0fff {
            dl_vlan = tci & 0x0fff;
            clear(FW_DL_VLAN);
        }
        if tci_mask & 0xe000 == 0xe000 {
            pcp = (tci >> 13) as u8;
            clear(FW_DL_VLAN_PCP);
        }
    }
    if exact(Field::EthType) {
        clear(FW_DL_TYPE);
    }
    let (tos, tos_mask) = get(Field::NwTos);
    if tos_mask & 0xfc == 0xfc {
        clear(FW_NW_TOS);
    }
    if exact(Field::NwProto) {
        clear(FW_NW_PROTO);
    }
    let prefix = |f: Field, shift: u32, wc: &mut u32| {
        let (v, mask) = get(f);
        let len = (mask as u32).leading_ones();
        *wc = (*wc & !(0x3f << shift)) | (32 - len) << shift;
        (v as u32) & (mask as u32)
    };
    let nw_src = prefix(Field::NwSrc, FW_NW_SRC_SHIFT, &mut wc);
    let nw_dst = prefix(Field::NwDst, FW_NW_DST_SHIFT, &mut wc);
    if exact(Field::TpSrc) {
        wc &= !FW_TP_SRC;
    }
    if exact(Field::TpDst) {
        wc &= !FW_TP_DST;
    }
    b.put_u32(wc);
    b.put_u16(in_port as u16);
    b.extend_from_slice(&mac(Field::EthSrc));
    b.extend_from_slice(&mac(Field::EthDst));
    b.put_u16(dl_vlan);
    b.put_u8(pcp);
    b.put_u8(0);
    b.put_u16(get(Field::EthType).0 as u16);
    b.put_u8(tos as u8 & 0xfc);
    b.put_u8(get(Field::NwProto).0 as u8);
    b.put_u16(0);
    b.put_u32(nw_src);
    b.put_u32(nw_dst);
    b.put_u16(get(Field::TpSrc).0 as u16);
    b.put_u16(get(Field::TpDst).0 as u16);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ofp_match with every field wildcarded except those `wc` clears.
    fn raw(wc: u32, f: impl FnOnce(&mut [u8; 40])) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[..4].copy_from_slice(&wc.to_be_bytes());
        f(&mut b);
        b
    }

    const ALL: u32 = (1 << 22) - 1;

    #[test]
    fn wildcard_all() {
        assert_eq!(parse_match10(&raw(ALL, |_| {})).unwrap(), Match::any());
    }

    #[test]
    fn ip_prefixes_and_ports() {
        // dl_type, nw_proto, tp_dst exact; nw_dst /8 (24 wildcarded bits); nw_src all.
        let wc = ALL & !(FW_DL_TYPE | FW_NW_PROTO | FW_TP_DST | (0x3f << FW_NW_DST_SHIFT))
            | (24 << FW_NW_DST_SHIFT);
        let b = raw(wc, |b| {
            b[22..24].copy_from_slice(&0x0800u16.to_be_bytes());
            b[25] = 6;
            b[32..36].copy_from_slice(&[10, 1, 2, 3]);
            b[38..40].copy_from_slice(&80u16.to_be_bytes());
            b[36..38].copy_from_slice(&99u16.to_be_bytes()); // wildcarded: ignored
        });
        let want = Match::any()
            .eth_type(0x0800)
            .nw_proto(6)
            .nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8)
            .tp_dst(80);
        assert_eq!(parse_match10(&b).unwrap(), want);
    }

    #[test]
    fn l3_fields_need_their_dl_type() {
        // nw_src exact but dl_type wildcarded: ignored.
        let b = raw(ALL & !(0x3f << FW_NW_SRC_SHIFT), |b| b[28] = 10);
        assert_eq!(parse_match10(&b).unwrap(), Match::any());
    }

    #[test]
    fn vlan() {
        let b = raw(ALL & !(FW_DL_VLAN | FW_DL_VLAN_PCP | FW_IN_PORT), |b| {
            b[4..6].copy_from_slice(&[0, 7]);
            b[18..20].copy_from_slice(&[0x0f, 0xff]);
            b[20] = 5;
        });
        let want = Match::any().in_port(7).vlan_vid(0xfff).vlan_pcp(5);
        assert_eq!(parse_match10(&b).unwrap(), want);
        let none = raw(ALL & !(FW_DL_VLAN | FW_DL_VLAN_PCP), |b| {
            b[18..20].copy_from_slice(&[0xff, 0xff]);
            b[20] = 5;
        });
        assert_eq!(parse_match10(&none).unwrap(), Match::any().no_vlan());
    }

    #[test]
    fn encode_round_trips() {
        for m in [
            Match::any(),
            Match::any()
                .in_port(3)
                .eth_type(0x0800)
                .nw_proto(6)
                .nw_src(Ipv4Addr::new(192, 168, 0, 0), 16)
                .tp_dst(443)
                .ip_dscp(10),
            Match::any()
                .eth_src(MacAddr([2, 0, 0, 0, 0, 1]))
                .vlan_vid(7)
                .vlan_pcp(2),
            Match::any().no_vlan().eth_type(0x0806).arp_op(2),
        ] {
            let mut b = Vec::new();
            put_match10(&mut b, &m);
            assert_eq!(b.len(), MATCH10_LEN);
            assert_eq!(parse_match10(&b).unwrap(), m);
        }
    }

    #[test]
    fn short() {
        assert_eq!(
            parse_match10(&[0u8; 39]).unwrap_err().field,
            "ofp_match.tp_dst"
        );
    }
}
