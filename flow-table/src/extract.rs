//! Flow key extraction from raw frame bytes.
//!
//! Fixed-offset reads on the frame slice, no allocation, no panics: each header is bounds-checked
//! once as a whole (a fixed-size array view), and a header that is missing or malformed ends the
//! parse, leaving the fields read so far. Hand-written rather than built on smoltcp's checked views
//! because this runs for every packet (see `../shared/design.md`: ~2× cheaper); smoltcp builds the
//! test packets.

use crate::key::{ethertype, ipproto, FlowKey, FRAG_ANY, FRAG_LATER, VLAN_PRESENT};

/// Ethertype given to 802.3 frames that carry a length instead of a type (as OVS does).
pub const ETH_TYPE_NONE: u16 = 0x05ff;

/// Largest number of IPv6 extension headers walked before giving up on finding the L4 header.
const MAX_IPV6_EXT_HEADERS: usize = 8;

#[inline(always)]
fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

#[inline(always)]
fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// A fixed-size view of `frame[off..off + N]`, or `None` when the frame is too short.
#[inline(always)]
fn view<const N: usize>(frame: &[u8], off: usize) -> Option<&[u8; N]> {
    frame.get(off..off.checked_add(N)?)?.try_into().ok()
}

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
    let Some(eth) = view::<14>(frame, 0) else {
        if let Some(macs) = view::<12>(frame, 0) {
            key.eth_dst.copy_from_slice(&macs[0..6]);
            key.eth_src.copy_from_slice(&macs[6..12]);
        }
        return false;
    };
    key.eth_dst.copy_from_slice(&eth[0..6]);
    key.eth_src.copy_from_slice(&eth[6..12]);
    let mut eth_type = be16(eth, 12);
    let mut off = 14;
    if is_vlan_tpid(eth_type) {
        let Some(tag) = view::<4>(frame, off) else {
            return false;
        };
        key.vlan_tci = be16(tag, 0) | VLAN_PRESENT;
        eth_type = be16(tag, 2);
        off += 4;
        if is_vlan_tpid(eth_type) {
            let Some(tag) = view::<4>(frame, off) else {
                return false;
            };
            key.inner_vlan_tci = be16(tag, 0) | VLAN_PRESENT;
            eth_type = be16(tag, 2);
            off += 4;
        }
    }
    if eth_type < 0x0600 {
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
fn is_vlan_tpid(t: u16) -> bool {
    t == ethertype::VLAN || t == ethertype::QINQ
}

#[inline(always)]
fn ipv4(frame: &[u8], off: usize, key: &mut FlowKey) -> bool {
    let Some(h) = view::<20>(frame, off) else {
        return false;
    };
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        return false;
    }
    key.nw_tos = h[1];
    key.nw_ttl = h[8];
    key.nw_proto = h[9];
    key.nw_src = be32(h, 12);
    key.nw_dst = be32(h, 16);
    // Options cut off by the end of the frame: the fixed header is read, the frame is malformed.
    let whole = frame.len() >= off + ihl;
    let frag = be16(h, 6);
    if frag & 0x3fff != 0 {
        key.nw_frag = FRAG_ANY;
        if frag & 0x1fff != 0 {
            key.nw_frag |= FRAG_LATER;
            return whole;
        }
    }
    // The L4 header must lie inside both the frame and the IP datagram (ignore Ethernet padding).
    let total = be16(h, 2) as usize;
    if total < ihl {
        return false;
    }
    let end = frame.len().min(off + total);
    l4(&frame[..end], off + ihl, key.nw_proto, key);
    whole
}

#[inline(always)]
fn ipv6(frame: &[u8], off: usize, key: &mut FlowKey) -> bool {
    let Some(h) = view::<40>(frame, off) else {
        return false;
    };
    if h[0] >> 4 != 6 {
        return false;
    }
    let vtcfl = be32(h, 0);
    key.nw_tos = (vtcfl >> 20) as u8;
    key.ipv6_label = vtcfl & 0x000f_ffff;
    key.nw_ttl = h[7];
    key.ipv6_src.copy_from_slice(&h[8..24]);
    key.ipv6_dst.copy_from_slice(&h[24..40]);
    let end = frame.len().min(off + 40 + be16(h, 4) as usize);
    let frame = &frame[..end];
    let mut next = h[6];
    let mut off = off + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-byte units after the first 8.
            0 | 43 | 60 => {
                let Some(e) = view::<2>(frame, off) else {
                    key.nw_proto = next;
                    return true;
                };
                next = e[0];
                off += (e[1] as usize + 1) * 8;
            }
            // Authentication header: length in 4-byte units after the first 8.
            51 => {
                let Some(e) = view::<2>(frame, off) else {
                    key.nw_proto = next;
                    return true;
                };
                next = e[0];
                off += (e[1] as usize + 2) * 4;
            }
            44 => {
                let Some(e) = view::<8>(frame, off) else {
                    key.nw_proto = next;
                    return true;
                };
                next = e[0];
                key.nw_frag = FRAG_ANY;
                if be16(e, 2) & 0xfff8 != 0 {
                    key.nw_frag |= FRAG_LATER;
                    key.nw_proto = next;
                    return true;
                }
                off += 8;
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
            if let Some(t) = view::<14>(frame, off) {
                key.tp_src = be16(t, 0);
                key.tp_dst = be16(t, 2);
                key.tcp_flags = be16(t, 12) & 0x0fff;
            } else if let Some(t) = view::<4>(frame, off) {
                key.tp_src = be16(t, 0);
                key.tp_dst = be16(t, 2);
            }
        }
        ipproto::UDP | ipproto::SCTP => {
            if let Some(t) = view::<4>(frame, off) {
                key.tp_src = be16(t, 0);
                key.tp_dst = be16(t, 2);
            }
        }
        ipproto::ICMP | ipproto::ICMPV6 => {
            if let Some(t) = view::<2>(frame, off) {
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
    key.arp_sha.copy_from_slice(&a[8..14]);
    key.nw_src = be32(a, 14);
    key.arp_tha.copy_from_slice(&a[18..24]);
    key.nw_dst = be32(a, 24);
}

#[cfg(test)]
mod tests;
