//! A match: a flow key plus a mask saying which of its bits matter.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::fields::Field;
use crate::key::{
    ethertype, ipproto, FlowKey, FlowMask, KEY_WORDS, VLAN_PCP_MASK, VLAN_PCP_SHIFT, VLAN_PRESENT,
    VLAN_VID_MASK,
};
use crate::wire::MacAddr;

/// A set of packets: those whose key, masked by `mask`, equals `key`.
///
/// The stored key is always masked, so two matches describing the same set compare equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Match {
    key: FlowKey,
    mask: FlowMask,
}

/// A match uses a field without the field's prerequisite (e.g. `nw_src` without `dl_type=ip`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchError {
    /// The field that lacks its prerequisite.
    pub field: Field,
    /// What the match must also say.
    pub needs: &'static str,
}

impl fmt::Display for MatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} requires {}", self.field.name(), self.needs)
    }
}

impl std::error::Error for MatchError {}

fn prefix32(len: u8) -> u32 {
    match len {
        0 => 0,
        l if l >= 32 => u32::MAX,
        l => u32::MAX << (32 - l),
    }
}

fn prefix128(len: u8) -> u128 {
    match len {
        0 => 0,
        l if l >= 128 => u128::MAX,
        l => u128::MAX << (128 - l),
    }
}

impl Match {
    /// The match of every packet.
    pub fn any() -> Match {
        Match::default()
    }

    /// A match from a key and a mask (bits of `key` outside `mask` are cleared).
    pub fn new(key: FlowKey, mask: FlowMask) -> Match {
        Match {
            key: key.masked(&mask),
            mask,
        }
    }

    /// The exact match of one key.
    pub fn exact(key: &FlowKey) -> Match {
        Match::new(*key, FlowMask::exact())
    }

    /// The (masked) key.
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// The mask.
    pub fn mask(&self) -> &FlowMask {
        &self.mask
    }

    /// True when `key` is in the set.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        let (k, v, m) = (key.words(), self.key.words(), self.mask.words());
        (0..KEY_WORDS).all(|i| k[i] & m[i] == v[i])
    }

    /// True when every packet matched by `other` is matched by `self` — the test ovs-ofctl's
    /// non-strict `del-flows`/`mod-flows` apply to select rules.
    pub fn covers(&self, other: &Match) -> bool {
        self.mask.is_subset_of(&other.mask) && other.key.masked(&self.mask) == self.key
    }

    /// True when some packet is matched by both `self` and the match `(key, mask)`.
    #[inline]
    pub fn overlaps(&self, key: &FlowKey, mask: &FlowMask) -> bool {
        let (a, am, b, bm) = (
            self.key.words(),
            self.mask.words(),
            key.words(),
            mask.words(),
        );
        (0..KEY_WORDS).all(|i| (a[i] ^ b[i]) & am[i] & bm[i] == 0)
    }

    /// Matches `field` against `value` under `mask` (both as [`Field::get`] reads them).
    pub fn set_field(&mut self, field: Field, value: u128, mask: u128) -> &mut Self {
        field.set(&mut self.mask.0, mask);
        field.set(&mut self.key, value & mask);
        self
    }

    /// The value and mask of `field` in this match.
    pub fn field(&self, field: Field) -> (u128, u128) {
        (field.get(&self.key), field.get(&self.mask.0))
    }

    /// Builder: `in_port=port`.
    pub fn in_port(mut self, port: u32) -> Self {
        self.set_field(Field::InPort, port as u128, u32::MAX as u128);
        self
    }

    /// Builder: `dl_type=t`.
    pub fn eth_type(mut self, t: u16) -> Self {
        self.set_field(Field::EthType, t as u128, 0xffff);
        self
    }

    /// Builder: `dl_src=mac`.
    pub fn eth_src(self, mac: impl Into<MacAddr>) -> Self {
        self.eth_src_masked(mac, MacAddr::BROADCAST)
    }

    /// Builder: `dl_src=mac/mask`.
    pub fn eth_src_masked(mut self, mac: impl Into<MacAddr>, mask: impl Into<MacAddr>) -> Self {
        self.set_field(Field::EthSrc, mac_u128(mac), mac_u128(mask));
        self
    }

    /// Builder: `dl_dst=mac`.
    pub fn eth_dst(self, mac: impl Into<MacAddr>) -> Self {
        self.eth_dst_masked(mac, MacAddr::BROADCAST)
    }

    /// Builder: `dl_dst=mac/mask`.
    pub fn eth_dst_masked(mut self, mac: impl Into<MacAddr>, mask: impl Into<MacAddr>) -> Self {
        self.set_field(Field::EthDst, mac_u128(mac), mac_u128(mask));
        self
    }

    /// Builder: `dl_vlan=vid` (tagged with this VLAN id, any priority).
    pub fn vlan_vid(mut self, vid: u16) -> Self {
        let (v, m) = self.field(Field::VlanTci);
        let m = m as u16 | VLAN_PRESENT | VLAN_VID_MASK;
        let v = (v as u16 & !VLAN_VID_MASK) | VLAN_PRESENT | (vid & VLAN_VID_MASK);
        self.set_field(Field::VlanTci, v as u128, m as u128);
        self
    }

    /// Builder: `dl_vlan_pcp=pcp` (tagged with this priority).
    pub fn vlan_pcp(mut self, pcp: u8) -> Self {
        let (v, m) = self.field(Field::VlanTci);
        let m = m as u16 | VLAN_PRESENT | VLAN_PCP_MASK;
        let v = (v as u16 & !VLAN_PCP_MASK) | VLAN_PRESENT | ((pcp as u16 & 7) << VLAN_PCP_SHIFT);
        self.set_field(Field::VlanTci, v as u128, m as u128);
        self
    }

    /// Builder: `dl_vlan=0xffff` (untagged only).
    pub fn no_vlan(mut self) -> Self {
        self.set_field(Field::VlanTci, 0, 0xffff);
        self
    }

    /// Builder: `vlan_tci=tci/mask`.
    pub fn vlan_tci(mut self, tci: u16, mask: u16) -> Self {
        self.set_field(Field::VlanTci, tci as u128, mask as u128);
        self
    }

    /// Builder: `nw_proto=p`.
    pub fn nw_proto(mut self, p: u8) -> Self {
        self.set_field(Field::NwProto, p as u128, 0xff);
        self
    }

    /// Builder: `nw_src=addr/prefix`.
    pub fn nw_src(mut self, addr: Ipv4Addr, prefix: u8) -> Self {
        self.set_field(
            Field::NwSrc,
            u32::from(addr) as u128,
            prefix32(prefix) as u128,
        );
        self
    }

    /// Builder: `nw_dst=addr/prefix`.
    pub fn nw_dst(mut self, addr: Ipv4Addr, prefix: u8) -> Self {
        self.set_field(
            Field::NwDst,
            u32::from(addr) as u128,
            prefix32(prefix) as u128,
        );
        self
    }

    /// Builder: `ipv6_src=addr/prefix`.
    pub fn ipv6_src(mut self, addr: Ipv6Addr, prefix: u8) -> Self {
        self.set_field(Field::Ipv6Src, u128::from(addr), prefix128(prefix));
        self
    }

    /// Builder: `ipv6_dst=addr/prefix`.
    pub fn ipv6_dst(mut self, addr: Ipv6Addr, prefix: u8) -> Self {
        self.set_field(Field::Ipv6Dst, u128::from(addr), prefix128(prefix));
        self
    }

    /// Builder: `nw_tos=tos` (the whole TOS byte).
    pub fn nw_tos(mut self, tos: u8) -> Self {
        self.set_field(Field::NwTos, tos as u128, 0xff);
        self
    }

    /// Builder: `ip_dscp=dscp` (the top six bits of the TOS byte).
    pub fn ip_dscp(mut self, dscp: u8) -> Self {
        self.set_field(Field::NwTos, ((dscp & 0x3f) << 2) as u128, 0xfc);
        self
    }

    /// Builder: `nw_ttl=ttl`.
    pub fn nw_ttl(mut self, ttl: u8) -> Self {
        self.set_field(Field::NwTtl, ttl as u128, 0xff);
        self
    }

    /// Builder: `nw_frag` bits under a mask.
    pub fn nw_frag(mut self, frag: u8, mask: u8) -> Self {
        self.set_field(Field::NwFrag, frag as u128, mask as u128);
        self
    }

    /// Builder: `tp_src=port`.
    pub fn tp_src(self, port: u16) -> Self {
        self.tp_src_masked(port, 0xffff)
    }

    /// Builder: `tp_src=port/mask`.
    pub fn tp_src_masked(mut self, port: u16, mask: u16) -> Self {
        self.set_field(Field::TpSrc, port as u128, mask as u128);
        self
    }

    /// Builder: `tp_dst=port`.
    pub fn tp_dst(self, port: u16) -> Self {
        self.tp_dst_masked(port, 0xffff)
    }

    /// Builder: `tp_dst=port/mask`.
    pub fn tp_dst_masked(mut self, port: u16, mask: u16) -> Self {
        self.set_field(Field::TpDst, port as u128, mask as u128);
        self
    }

    /// Builder: `tcp_flags=flags/mask`.
    pub fn tcp_flags(mut self, flags: u16, mask: u16) -> Self {
        self.set_field(Field::TcpFlags, flags as u128, mask as u128);
        self
    }

    /// Builder: `icmp_type=t` (stored in `tp_src`).
    pub fn icmp_type(self, t: u8) -> Self {
        self.tp_src(t as u16)
    }

    /// Builder: `icmp_code=c` (stored in `tp_dst`).
    pub fn icmp_code(self, c: u8) -> Self {
        self.tp_dst(c as u16)
    }

    /// Builder: `arp_op=op` (stored in `nw_proto`).
    pub fn arp_op(self, op: u8) -> Self {
        self.nw_proto(op)
    }

    /// Builder: `arp_spa=addr/prefix`.
    pub fn arp_spa(self, addr: Ipv4Addr, prefix: u8) -> Self {
        self.nw_src(addr, prefix)
    }

    /// Builder: `arp_tpa=addr/prefix`.
    pub fn arp_tpa(self, addr: Ipv4Addr, prefix: u8) -> Self {
        self.nw_dst(addr, prefix)
    }

    /// Builder: `arp_sha=mac`.
    pub fn arp_sha(mut self, mac: impl Into<MacAddr>) -> Self {
        self.set_field(Field::ArpSha, mac_u128(mac), mac_u128(MacAddr::BROADCAST));
        self
    }

    /// Builder: `arp_tha=mac`.
    pub fn arp_tha(mut self, mac: impl Into<MacAddr>) -> Self {
        self.set_field(Field::ArpTha, mac_u128(mac), mac_u128(MacAddr::BROADCAST));
        self
    }

    /// Builder: `tun_id=id`.
    pub fn tun_id(mut self, id: u64) -> Self {
        self.set_field(Field::TunId, id as u128, u64::MAX as u128);
        self
    }

    /// Checks OpenFlow prerequisites: L3 fields need an exact `dl_type`, L4 fields an exact
    /// `nw_proto`. Without them a rule would match unrelated packets whose key happens to hold
    /// the same bits (an ARP sender address sits where an IPv4 source does).
    pub fn validate(&self) -> Result<(), MatchError> {
        let used = |f: Field| self.field(f).1 != 0;
        let exact = |f: Field| self.field(f).1 == f.all_ones();
        let eth = exact(Field::EthType).then_some(self.key.eth_type);
        let proto = exact(Field::NwProto).then_some(self.key.nw_proto);
        let is_v4 = eth == Some(ethertype::IPV4);
        let is_v6 = eth == Some(ethertype::IPV6);
        let is_arp = eth == Some(ethertype::ARP);
        let err = |field, needs| Err(MatchError { field, needs });
        for f in [Field::NwSrc, Field::NwDst] {
            if used(f) && !(is_v4 || is_arp) {
                return err(f, "dl_type=0x0800 (ip) or dl_type=0x0806 (arp)");
            }
        }
        if used(Field::NwProto) && !(is_v4 || is_v6 || is_arp) {
            return err(Field::NwProto, "dl_type ip, ipv6 or arp");
        }
        for f in [Field::NwTos, Field::NwTtl, Field::NwFrag] {
            if used(f) && !(is_v4 || is_v6) {
                return err(f, "dl_type ip or ipv6");
            }
        }
        for f in [Field::Ipv6Src, Field::Ipv6Dst, Field::Ipv6Label] {
            if used(f) && !is_v6 {
                return err(f, "dl_type=0x86dd (ipv6)");
            }
        }
        for f in [Field::ArpSha, Field::ArpTha] {
            if used(f) && !is_arp {
                return err(f, "dl_type=0x0806 (arp)");
            }
        }
        let l4 = matches!(
            proto,
            Some(ipproto::TCP | ipproto::UDP | ipproto::SCTP | ipproto::ICMP | ipproto::ICMPV6)
        ) && (is_v4 || is_v6);
        for f in [Field::TpSrc, Field::TpDst] {
            if used(f) && !l4 {
                return err(
                    f,
                    "nw_proto tcp, udp, sctp, icmp or icmp6 (with ip or ipv6)",
                );
            }
        }
        if used(Field::TcpFlags) && !(proto == Some(ipproto::TCP) && (is_v4 || is_v6)) {
            return err(Field::TcpFlags, "tcp");
        }
        Ok(())
    }
}

fn mac_u128(mac: impl Into<MacAddr>) -> u128 {
    mac.into().to_u64() as u128
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::fields::fmt_fields(&self.key, Some(&self.mask), f)
    }
}

impl fmt::Debug for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Match({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> Match {
        Match::any().eth_type(ethertype::IPV4)
    }

    #[test]
    fn prefix_matches() {
        let m = ip().nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8);
        let mut k = FlowKey::ZERO;
        k.eth_type = ethertype::IPV4;
        k.nw_dst = u32::from(Ipv4Addr::new(10, 200, 3, 4));
        assert!(m.matches(&k));
        k.nw_dst = u32::from(Ipv4Addr::new(11, 0, 0, 1));
        assert!(!m.matches(&k));
        assert_eq!(format!("{m}"), "dl_type=0x800,nw_dst=10.0.0.0/255.0.0.0");
    }

    #[test]
    fn covers_is_the_non_strict_selection() {
        let wide = ip();
        let narrow = ip().nw_dst(Ipv4Addr::new(10, 1, 0, 0), 16).in_port(3);
        assert!(wide.covers(&narrow));
        assert!(!narrow.covers(&wide));
        assert!(Match::any().covers(&wide));
        let other = Match::any().eth_type(ethertype::ARP);
        assert!(!wide.covers(&other));
    }

    #[test]
    fn overlap() {
        let a = ip().nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8);
        let b = Match::any().in_port(1);
        let c = ip().nw_dst(Ipv4Addr::new(11, 0, 0, 0), 8);
        assert!(a.overlaps(b.key(), b.mask()));
        assert!(!a.overlaps(c.key(), c.mask()));
    }

    #[test]
    fn vlan_builders_combine() {
        let m = Match::any().vlan_vid(10).vlan_pcp(5);
        let (v, mask) = m.field(Field::VlanTci);
        assert_eq!(v as u16, VLAN_PRESENT | 10 | (5 << 13));
        assert_eq!(mask as u16, 0xffff);
    }

    #[test]
    fn prerequisites_are_enforced() {
        let e = Match::any()
            .nw_src(Ipv4Addr::new(1, 2, 3, 4), 32)
            .validate()
            .unwrap_err();
        assert_eq!(e.field, Field::NwSrc);
        assert!(e.to_string().contains("nw_src requires"));
        assert!(ip().tp_dst(80).validate().is_err());
        assert!(ip().nw_proto(ipproto::TCP).tp_dst(80).validate().is_ok());
        assert!(Match::any()
            .eth_type(ethertype::ARP)
            .arp_op(1)
            .arp_tpa(Ipv4Addr::new(10, 0, 0, 1), 32)
            .validate()
            .is_ok());
        assert!(ip().arp_sha([1; 6]).validate().is_err());
        assert!(ip()
            .nw_proto(ipproto::UDP)
            .tcp_flags(2, 2)
            .validate()
            .is_err());
    }
}
