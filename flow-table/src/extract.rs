//! Flow key extraction from raw frame bytes.
//!
//! Fixed-offset reads on the frame slice, no allocation, no panics: each header is bounds-checked
//! once as a whole (a fixed-size view of [`crate::wire`]), and a header that is missing or
//! malformed ends the parse, leaving the fields read so far. Built on those views rather than on
//! smoltcp's checked views because this runs for every packet (see `../shared/design.md`: ~2×
//! cheaper); smoltcp builds the test packets.

use crate::key::{ethertype, ipproto, FlowKey, FRAG_ANY, FRAG_LATER, VLAN_PRESENT};
use crate::wire::ethernet::{self, is_vlan_tpid, EthernetHeader, TagBody};
use crate::wire::ipv6::{ext, FragmentHeader};
use crate::wire::l4::{icmp, tcp, Ports, PORTS_LEN};
use crate::wire::{be16, be32, ipv4, ipv6, view, Ipv4Header, Ipv6Header};

/// Ethertype given to 802.3 frames that carry a length instead of a type (as OVS does).
pub const ETH_TYPE_NONE: u16 = 0x05ff;

/// Largest number of IPv6 extension headers walked before giving up on finding the L4 header.
const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Extracts the flow key of `frame`, received on `in_port`.
#[inline]
pub fn extract(frame: &[u8], in_port: u32) -> FlowKey {
    let mut key = FlowKey::ZERO;
    extract_into(frame, in_port, &mut key);
    key
}

/// Extracts the flow key of `frame` into `key`, which is overwritten entirely.
#[inline]
pub fn extract_into(frame: &[u8], in_port: u32, key: &mut FlowKey) {
    extract_checked(frame, in_port, key);
}

/// Like [`extract_into`], and tells whether the frame is well formed: false when it is shorter
/// than an Ethernet header, a VLAN tag is cut off, or its IPv4/IPv6 header is cut off or
/// invalid (wrong version, IPv4 header length below 20 or beyond the total length). The
/// datapath drops such frames as malformed (OVS drops the too-short ones the same way).
#[inline]
pub fn extract_checked(frame: &[u8], in_port: u32, key: &mut FlowKey) -> bool {
    *key = FlowKey::ZERO;
    key.in_port = in_port;
    let Some(eth) = EthernetHeader::new(frame, 0) else {
        if let Some((dst, src)) = ethernet::addrs(frame) {
            key.eth_dst = dst;
            key.eth_src = src;
        }
        return false;
    };
    key.eth_dst = eth.dst();
    key.eth_src = eth.src();
    let mut eth_type = eth.ethertype();
    let mut off = ethernet::HEADER_LEN;
    if is_vlan_tpid(eth_type) {
        let Some(tag) = TagBody::new(frame, off) else {
            return false;
        };
        key.vlan_tci = tag.tci() | VLAN_PRESENT;
        eth_type = tag.ethertype();
        off += ethernet::TAG_LEN;
        if is_vlan_tpid(eth_type) {
            let Some(tag) = TagBody::new(frame, off) else {
                return false;
            };
            key.inner_vlan_tci = tag.tci() | VLAN_PRESENT;
            eth_type = tag.ethertype();
            off += ethernet::TAG_LEN;
        }
    }
    if eth_type < ethernet::MIN_ETHERTYPE {
        eth_type = ETH_TYPE_NONE;
    }
    key.eth_type = eth_type;
    match eth_type {
        ethertype::IPV4 => ipv4(frame, off, key),
        ethertype::IPV6 => ipv6(frame, off, key),
        ethertype::ARP => {
            arp(frame, off, key);
            true
        }
        _ => true,
    }
}

#[inline(always)]
fn ipv4(frame: &[u8], off: usize, key: &mut FlowKey) -> bool {
    let Some(h) = Ipv4Header::new(frame, off) else {
        return false;
    };
    let ihl = h.header_len();
    if h.version() != 4 || ihl < ipv4::HEADER_LEN {
        return false;
    }
    key.nw_tos = h.tos();
    key.nw_ttl = h.ttl();
    key.nw_proto = h.protocol();
    key.nw_src = h.src();
    key.nw_dst = h.dst();
    // Options cut off by the end of the frame: the fixed header is read, the frame is malformed.
    let whole = frame.len() >= off + ihl;
    if h.is_fragment() {
        key.nw_frag = FRAG_ANY;
        if h.is_later_fragment() {
            key.nw_frag |= FRAG_LATER;
            return whole;
        }
    }
    // The L4 header must lie inside both the frame and the IP datagram (ignore Ethernet padding).
    let total = h.total_len() as usize;
    if total < ihl {
        return false;
    }
    let end = frame.len().min(off + total);
    l4(&frame[..end], off + ihl, key.nw_proto, key);
    whole
}

#[inline(always)]
fn ipv6(frame: &[u8], off: usize, key: &mut FlowKey) -> bool {
    let Some(h) = Ipv6Header::new(frame, off) else {
        return false;
    };
    if h.version() != 6 {
        return false;
    }
    key.nw_tos = h.traffic_class();
    key.ipv6_label = h.flow_label();
    key.nw_ttl = h.hop_limit();
    key.ipv6_src = *h.src();
    key.ipv6_dst = *h.dst();
    let end = frame
        .len()
        .min(off + ipv6::HEADER_LEN + h.payload_len() as usize);
    let frame = &frame[..end];
    let mut next = h.next_header();
    let mut off = off + ipv6::HEADER_LEN;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            ext::HOP_BY_HOP | ext::ROUTING | ext::DST_OPTS => {
                let Some(e) = view::<{ ext::PREFIX_LEN }>(frame, off) else {
                    key.nw_proto = next;
                    return true;
                };
                next = e[0];
                off += ext::options_len(e[1]);
            }
            ext::AUTH => {
                let Some(e) = view::<{ ext::PREFIX_LEN }>(frame, off) else {
                    key.nw_proto = next;
                    return true;
                };
                next = e[0];
                off += ext::auth_len(e[1]);
            }
            ext::FRAGMENT => {
                let Some(e) = FragmentHeader::new(frame, off) else {
                    key.nw_proto = next;
                    return true;
                };
                next = e.next_header();
                key.nw_frag = FRAG_ANY;
                if e.is_later_fragment() {
                    key.nw_frag |= FRAG_LATER;
                    key.nw_proto = next;
                    return true;
                }
                off += ext::FRAGMENT_LEN;
            }
            _ => break,
        }
    }
    key.nw_proto = next;
    l4(frame, off, next, key);
    true
}

#[inline(always)]
fn l4(frame: &[u8], off: usize, proto: u8, key: &mut FlowKey) {
    match proto {
        ipproto::TCP => {
            if let Some(t) = view::<{ tcp::FLAGS_END }>(frame, off) {
                let p = Ports::from_array(t.first_chunk::<{ PORTS_LEN }>().expect("4 bytes"));
                key.tp_src = p.src_port();
                key.tp_dst = p.dst_port();
                key.tcp_flags = tcp::flags(t);
            } else if let Some(p) = Ports::new(frame, off) {
                key.tp_src = p.src_port();
                key.tp_dst = p.dst_port();
            }
        }
        ipproto::UDP | ipproto::SCTP => {
            if let Some(p) = Ports::new(frame, off) {
                key.tp_src = p.src_port();
                key.tp_dst = p.dst_port();
            }
        }
        ipproto::ICMP | ipproto::ICMPV6 => {
            if let Some(t) = view::<{ icmp::TYPE_CODE_LEN }>(frame, off) {
                key.tp_src = t[0] as u16;
                key.tp_dst = t[1] as u16;
            }
        }
        _ => {}
    }
}

#[inline(always)]
fn arp(frame: &[u8], off: usize, key: &mut FlowKey) {
    let Some(a) = view::<28>(frame, off) else {
        return;
    };
    // Only Ethernet/IPv4 ARP has the layout below.
    if be16(a, 0) != 1 || be16(a, 2) != ethertype::IPV4 || a[4] != 6 || a[5] != 4 {
        return;
    }
    let op = be16(a, 6);
    if op <= 0xff {
        key.nw_proto = op as u8;
    }
    key.arp_sha.0.copy_from_slice(&a[8..14]);
    key.nw_src = be32(a, 14);
    key.arp_tha.0.copy_from_slice(&a[18..24]);
    key.nw_dst = be32(a, 24);
}

#[cfg(test)]
mod tests;
