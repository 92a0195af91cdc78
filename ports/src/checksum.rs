//! Internet (ones'-complement) checksums, shared by offload completion in
//! [`Packet::resolve_offloads`](crate::Packet::resolve_offloads) and by software segmentation in
//! [`gso`](crate::gso).
//!
//! The arithmetic lives in [`flow_table::wire::checksum`], with the datapath's incremental
//! updates, so that it is written (and tested) once; this module names the parts this crate uses.

pub(crate) use flow_table::wire::checksum::{
    checksum, complete_partial, fold, ones_sum, pseudo_v4, pseudo_v6,
};

use flow_table::key::{ethertype, ipproto};
use flow_table::wire::ethernet;
use flow_table::wire::l4::checksum_offset;
use flow_table::wire::{ipv4, ipv6, Ipv4Header, Ipv6Header};

/// A TCP or UDP checksum left partial, found by [`unfinished_l4`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Partial {
    /// Offset of the transport header (a virtio-net header's `csum_start`).
    pub start: u16,
    /// Offset of the checksum field in it (`csum_offset`).
    pub offset: u16,
    /// Offset of the IP header.
    pub l3: u16,
    /// IPv6 rather than IPv4.
    pub v6: bool,
    /// The transport is TCP (else UDP).
    pub tcp: bool,
}

/// Where the TCP or UDP checksum of `frame` is, as a virtio-net header gives it
/// (`csum_start`, `csum_offset`), if its field holds just the pseudo-header sum: the "partial"
/// checksum a sender with checksum offload leaves for the device to complete.
///
/// A frame that crossed a veth from such a sender reaches a UDP socket, an AF_XDP ring or any
/// reader without offload metadata still partial, and nothing says so: a Linux `vxlan` device in a
/// namespace encapsulates its stack's TCP that way. Sent on as it is, the receiver drops it for
/// its bad checksum. Taking every field equal to the pseudo-header sum for partial is always safe:
/// completing a checksum that was already complete and merely equal to that sum gives the same
/// value back (the field's content is summed either way). So only frames whose IP packet ends the
/// frame (no padding) and is not a fragment are looked at, and a zero UDP checksum (none) is not
/// partial.
pub(crate) fn unfinished_l4(frame: &[u8]) -> Option<Partial> {
    let (l3, et) = ethernet::skip_tags(frame, 2)?;
    let (l4, proto, pseudo, v6) = match et {
        ethertype::IPV4 => {
            let ip = Ipv4Header::new(frame, l3)?;
            let ihl = ip.header_len();
            let total = usize::from(ip.total_len());
            if ip.version() != 4 || ihl < ipv4::HEADER_LEN || ip.is_fragment() {
                return None;
            }
            if l3 + total != frame.len() || total < ihl {
                return None;
            }
            let (src, dst) = (ip.src_bytes(), ip.dst_bytes());
            let proto = ip.protocol();
            let len = (total - ihl) as u32;
            (l3 + ihl, proto, pseudo_v4(&src, &dst, proto, len), false)
        }
        ethertype::IPV6 => {
            let ip = Ipv6Header::new(frame, l3)?;
            let len = usize::from(ip.payload_len());
            if ip.version() != 6 || l3 + ipv6::HEADER_LEN + len != frame.len() {
                return None;
            }
            let proto = ip.next_header();
            (
                l3 + ipv6::HEADER_LEN,
                proto,
                pseudo_v6(ip.src(), ip.dst(), proto, len as u32),
                true,
            )
        }
        _ => return None,
    };
    let off = checksum_offset(proto)?;
    let field = frame.get(l4 + off..l4 + off + 2)?;
    let field = u16::from_be_bytes([field[0], field[1]]);
    if field == 0 && proto == ipproto::UDP {
        return None;
    }
    (field == fold(pseudo)).then_some(Partial {
        start: l4 as u16,
        offset: off as u16,
        l3: l3 as u16,
        v6,
        tcp: proto == ipproto::TCP,
    })
}

#[cfg(test)]
mod tests;
