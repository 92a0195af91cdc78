//! IPv6 headers (RFC 8200) and the extension headers the flow key parser walks.
//!
//! Why here: the flow key parser reads these fields and walks the extension headers, the
//! header rewrites change traffic class and hop limit, and software segmentation rewrites the
//! payload length; the offsets are written once, in this file.

use crate::wire::{be16, be32, header_view, put16};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Offsets of the IPv6 header's fields.
pub mod field {
    use std::ops::Range;
    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: usize = 0;
    /// Payload length (extension headers included).
    pub const LENGTH: usize = 4;
    /// Next header.
    pub const NXT_HDR: usize = 6;
    /// Hop limit.
    pub const HOP_LIMIT: usize = 7;
    /// Source address.
    pub const SRC: Range<usize> = 8..24;
    /// Destination address.
    pub const DST: Range<usize> = 24..40;
}

/// Extension headers (next-header values) and their lengths.
pub mod ext {
    /// Hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing.
    pub const ROUTING: u8 = 43;
    /// Fragment.
    pub const FRAGMENT: u8 = 44;
    /// Authentication header.
    pub const AUTH: u8 = 51;
    /// Destination options.
    pub const DST_OPTS: u8 = 60;
    /// Length of the fragment header.
    pub const FRAGMENT_LEN: usize = 8;
    /// Bytes of the next-header and length fields every extension header but the fragment
    /// header starts with (enough to step over it).
    pub const PREFIX_LEN: usize = 2;

    /// Length in bytes of a hop-by-hop, routing or destination options header whose length
    /// field is `hdr_ext_len` (8-byte units after the first 8).
    #[inline(always)]
    pub fn options_len(hdr_ext_len: u8) -> usize {
        (hdr_ext_len as usize + 1) * 8
    }

    /// Length in bytes of an authentication header whose length field is `payload_len`
    /// (4-byte units after the first 8).
    #[inline(always)]
    pub fn auth_len(payload_len: u8) -> usize {
        (payload_len as usize + 2) * 4
    }
}

header_view!(
    /// The fixed 40-byte IPv6 header.
    Ipv6Header,
    HEADER_LEN
);

impl<T: std::ops::Deref<Target = [u8; HEADER_LEN]>> Ipv6Header<T> {
    /// IP version (6 in a valid header).
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.0[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        (be32(&*self.0, field::VER_TC_FLOW) >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline(always)]
    pub fn flow_label(&self) -> u32 {
        be32(&*self.0, field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (what follows the fixed header, extension headers included).
    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        be16(&*self.0, field::LENGTH)
    }

    /// Next header: an extension header or the payload's protocol.
    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.0[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.0[field::HOP_LIMIT]
    }

    /// Source address (network order).
    #[inline(always)]
    pub fn src(&self) -> &[u8; 16] {
        self.0[field::SRC].try_into().expect("16 bytes")
    }

    /// Destination address (network order).
    #[inline(always)]
    pub fn dst(&self) -> &[u8; 16] {
        self.0[field::DST].try_into().expect("16 bytes")
    }
}

impl<T: std::ops::DerefMut<Target = [u8; HEADER_LEN]>> Ipv6Header<T> {
    /// Sets the traffic class, keeping version and flow label.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = &mut *self.0;
        b[0] = (b[0] & 0xf0) | (tc >> 4);
        b[1] = (b[1] & 0x0f) | (tc << 4);
    }

    /// Sets the payload length.
    #[inline(always)]
    pub fn set_payload_len(&mut self, v: u16) {
        put16(&mut *self.0, field::LENGTH, v);
    }

    /// Sets the hop limit (IPv6 has no header checksum).
    #[inline(always)]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.0[field::HOP_LIMIT] = v;
    }
}

header_view!(
    /// The fragment extension header.
    FragmentHeader,
    ext::FRAGMENT_LEN
);

impl<T: std::ops::Deref<Target = [u8; ext::FRAGMENT_LEN]>> FragmentHeader<T> {
    /// Next header after this one.
    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.0[0]
    }

    /// True for a fragment other than the first (a fragment offset): it carries no L4 header.
    #[inline(always)]
    pub fn is_later_fragment(&self) -> bool {
        be16(&*self.0, 2) & 0xfff8 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 48] {
        let mut h = [0u8; 48];
        h[..8].copy_from_slice(&[0x6b, 0x81, 0x23, 0x45, 0x00, 0x08, ext::FRAGMENT, 63]);
        h[8..24].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h[24..40].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        // Fragment header: UDP, offset 0, more fragments.
        h[40..48].copy_from_slice(&[17, 0, 0x00, 0x01, 0, 0, 0, 9]);
        h
    }

    #[test]
    fn reads() {
        let b = header();
        let h = Ipv6Header::new(&b, 0).unwrap();
        assert_eq!(
            (h.version(), h.traffic_class(), h.flow_label()),
            (6, 0xb8, 0x1_2345)
        );
        assert_eq!(
            (h.payload_len(), h.next_header(), h.hop_limit()),
            (8, ext::FRAGMENT, 63)
        );
        assert_eq!((h.src()[15], h.dst()[15], h.src()[0]), (1, 2, 0x20));
        assert!(Ipv6Header::new(&b, 8).is_some());
        assert!(Ipv6Header::new(&b, 9).is_none());
        assert!(Ipv6Header::new(&b[..39], 0).is_none());
        let f = FragmentHeader::new(&b, HEADER_LEN).unwrap();
        assert_eq!((f.next_header(), f.is_later_fragment()), (17, false));
        assert!(FragmentHeader::new(&b[..47], HEADER_LEN).is_none());
        let mut later = b;
        later[43] = 0x08;
        assert!(FragmentHeader::new(&later, HEADER_LEN)
            .unwrap()
            .is_later_fragment());
        assert_eq!((ext::options_len(0), ext::options_len(2)), (8, 24));
        assert_eq!((ext::auth_len(1), ext::auth_len(4)), (12, 24));
    }

    #[test]
    fn writes() {
        let mut b = header();
        let mut h = Ipv6Header::new_mut(&mut b, 0).unwrap();
        h.set_traffic_class(0x2e);
        h.set_hop_limit(1);
        h.set_payload_len(0x1234);
        assert_eq!(
            (h.version(), h.traffic_class(), h.flow_label()),
            (6, 0x2e, 0x1_2345)
        );
        assert_eq!((h.hop_limit(), h.payload_len()), (1, 0x1234));
        assert_eq!(
            &b[..8],
            &[0x62, 0xe1, 0x23, 0x45, 0x12, 0x34, ext::FRAGMENT, 1]
        );
        assert!(Ipv6Header::new_mut(&mut b[..39], 0).is_none());
    }
}
