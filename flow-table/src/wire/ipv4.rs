//! IPv4 headers (RFC 791).
//!
//! Why here: the flow key parser reads these fields, the header rewrites change them with an
//! incremental checksum update, and software segmentation rewrites length, id and checksum;
//! the offsets and the checksum rule are written once, in this file.

use crate::wire::checksum;
use crate::wire::{be16, be32, header_view, put16, put32};

/// Length of the fixed header (a header without options).
pub const HEADER_LEN: usize = 20;

/// Offsets of the IPv4 header's fields.
pub mod field {
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// Type of service (DSCP and ECN).
    pub const TOS: usize = 1;
    /// Total length of the datagram.
    pub const LENGTH: usize = 2;
    /// Identification.
    pub const IDENT: usize = 4;
    /// Flags (3 bits) and fragment offset (13 bits).
    pub const FLG_OFF: usize = 6;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: usize = 10;
    /// Source address.
    pub const SRC: usize = 12;
    /// Destination address.
    pub const DST: usize = 16;
}

/// The more-fragments flag and the fragment offset in [`field::FLG_OFF`]: set in every
/// fragment.
const FRAGMENT_BITS: u16 = 0x3fff;
/// The fragment offset in [`field::FLG_OFF`]: set in every fragment but the first.
const OFFSET_BITS: u16 = 0x1fff;

header_view!(
    /// The fixed 20 bytes of an IPv4 header (options, if any, follow; see
    /// [`header_len`](Ipv4Header::header_len)).
    Ipv4Header,
    HEADER_LEN
);

impl<T: std::ops::Deref<Target = [u8; HEADER_LEN]>> Ipv4Header<T> {
    /// IP version (4 in a valid header).
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.0[field::VER_IHL] >> 4
    }

    /// Header length in bytes, options included (valid when at least [`HEADER_LEN`]).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        (self.0[field::VER_IHL] & 0x0f) as usize * 4
    }

    /// True when the version is 4 and the header length at least [`HEADER_LEN`].
    #[inline(always)]
    pub fn is_valid(&self) -> bool {
        self.version() == 4 && self.header_len() >= HEADER_LEN
    }

    /// Type of service byte.
    #[inline(always)]
    pub fn tos(&self) -> u8 {
        self.0[field::TOS]
    }

    /// Total length of the datagram (header and payload).
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        be16(&*self.0, field::LENGTH)
    }

    /// Identification.
    #[inline(always)]
    pub fn ident(&self) -> u16 {
        be16(&*self.0, field::IDENT)
    }

    /// True for any fragment (more-fragments set, or a fragment offset).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        be16(&*self.0, field::FLG_OFF) & FRAGMENT_BITS != 0
    }

    /// True for a fragment other than the first (a fragment offset): it carries no L4 header.
    #[inline(always)]
    pub fn is_later_fragment(&self) -> bool {
        be16(&*self.0, field::FLG_OFF) & OFFSET_BITS != 0
    }

    /// Time to live.
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.0[field::TTL]
    }

    /// Protocol of the payload.
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.0[field::PROTOCOL]
    }

    /// Header checksum.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16(&*self.0, field::CHECKSUM)
    }

    /// Source address (host order).
    #[inline(always)]
    pub fn src(&self) -> u32 {
        be32(&*self.0, field::SRC)
    }

    /// Destination address (host order).
    #[inline(always)]
    pub fn dst(&self) -> u32 {
        be32(&*self.0, field::DST)
    }

    /// Source address bytes, as the pseudo-header sums them.
    #[inline(always)]
    pub fn src_bytes(&self) -> [u8; 4] {
        let b = &self.0;
        [b[12], b[13], b[14], b[15]]
    }

    /// Destination address bytes, as the pseudo-header sums them.
    #[inline(always)]
    pub fn dst_bytes(&self) -> [u8; 4] {
        let b = &self.0;
        [b[16], b[17], b[18], b[19]]
    }
}

impl<T: std::ops::DerefMut<Target = [u8; HEADER_LEN]>> Ipv4Header<T> {
    /// Sets the total length (the checksum is left as it is).
    #[inline(always)]
    pub fn set_total_len(&mut self, v: u16) {
        put16(&mut *self.0, field::LENGTH, v);
    }

    /// Sets the identification (the checksum is left as it is).
    #[inline(always)]
    pub fn set_ident(&mut self, v: u16) {
        put16(&mut *self.0, field::IDENT, v);
    }

    /// Sets the header checksum.
    #[inline(always)]
    pub fn set_checksum(&mut self, v: u16) {
        put16(&mut *self.0, field::CHECKSUM, v);
    }

    /// Sets the byte at `at` and updates the header checksum for it (RFC 1624).
    #[inline(always)]
    fn set_byte_update_checksum(&mut self, at: usize, v: u8) {
        let word = at & !1;
        let old = be16(&*self.0, word);
        self.0[at] = v;
        let new = be16(&*self.0, word);
        let sum = checksum::update16(self.checksum(), old, new);
        self.set_checksum(sum);
    }

    /// Sets the type of service byte, updating the header checksum.
    #[inline]
    pub fn set_tos_update_checksum(&mut self, tos: u8) {
        self.set_byte_update_checksum(field::TOS, tos);
    }

    /// Sets the time to live, updating the header checksum.
    #[inline]
    pub fn set_ttl_update_checksum(&mut self, ttl: u8) {
        self.set_byte_update_checksum(field::TTL, ttl);
    }

    /// Sets the source address (host order), updating the header checksum; returns the old
    /// address (the L4 checksum covers it too).
    #[inline]
    pub fn set_src_update_checksum(&mut self, a: u32) -> u32 {
        self.set_addr_update_checksum(field::SRC, a)
    }

    /// Sets the destination address (host order), updating the header checksum; returns the
    /// old address.
    #[inline]
    pub fn set_dst_update_checksum(&mut self, a: u32) -> u32 {
        self.set_addr_update_checksum(field::DST, a)
    }

    #[inline(always)]
    fn set_addr_update_checksum(&mut self, at: usize, a: u32) -> u32 {
        let old = be32(&*self.0, at);
        put32(&mut *self.0, at, a);
        let sum = checksum::update32(self.checksum(), old, a);
        self.set_checksum(sum);
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{fold, ones_sum};

    /// An ICMP datagram's header with four bytes of options after it, checksum filled in.
    fn header() -> [u8; 24] {
        let mut h = [
            0x45, 0x00, 0x00, 0x54, 0xa6, 0xf2, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7, 0xde, 0xad, 0xbe, 0xef,
        ];
        let c = !fold(ones_sum(&h[..20]));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    fn valid(h: &[u8]) -> bool {
        fold(ones_sum(&h[..20])) == 0xffff
    }

    #[test]
    fn reads() {
        let b = header();
        let h = Ipv4Header::new(&b, 0).unwrap();
        assert_eq!((h.version(), h.header_len(), h.is_valid()), (4, 20, true));
        assert_eq!((h.tos(), h.total_len(), h.ident()), (0, 84, 0xa6f2));
        assert!(!h.is_fragment() && !h.is_later_fragment(), "DF only");
        assert_eq!((h.ttl(), h.protocol()), (64, 1));
        assert_eq!((h.src(), h.dst()), (0xc0a8_0001, 0xc0a8_00c7));
        assert_eq!(
            (h.src_bytes(), h.dst_bytes()),
            ([192, 168, 0, 1], [192, 168, 0, 199])
        );
        assert_eq!(h.checksum(), 0x119e);
        // Shifted by 4: still 20 bytes there; at 5 not.
        assert!(Ipv4Header::new(&b, 4).is_some());
        assert!(Ipv4Header::new(&b, 5).is_none());
        assert!(Ipv4Header::new(&b[..19], 0).is_none());
    }

    #[test]
    fn fragments_and_bad_headers() {
        let mut b = header();
        b[6] = 0x20; // MF
        assert!(Ipv4Header::new(&b, 0).unwrap().is_fragment());
        assert!(!Ipv4Header::new(&b, 0).unwrap().is_later_fragment());
        b[7] = 1; // offset 8
        assert!(Ipv4Header::new(&b, 0).unwrap().is_later_fragment());
        b[0] = 0x44;
        assert!(!Ipv4Header::new(&b, 0).unwrap().is_valid());
        b[0] = 0x65;
        assert!(!Ipv4Header::new(&b, 0).unwrap().is_valid());
    }

    #[test]
    fn writes_keep_the_checksum_valid() {
        let mut b = header();
        let mut h = Ipv4Header::new_mut(&mut b, 0).unwrap();
        h.set_ttl_update_checksum(3);
        h.set_tos_update_checksum(0xb8);
        assert_eq!(h.set_src_update_checksum(0x0a00_0001), 0xc0a8_0001);
        assert_eq!(h.set_dst_update_checksum(0xac10_0509), 0xc0a8_00c7);
        assert_eq!(
            (h.ttl(), h.tos(), h.src(), h.dst()),
            (3, 0xb8, 0x0a00_0001, 0xac10_0509)
        );
        assert!(valid(&b));
        let mut h = Ipv4Header::new_mut(&mut b, 0).unwrap();
        h.set_total_len(40);
        h.set_ident(7);
        h.set_checksum(0);
        assert_eq!((h.total_len(), h.ident(), h.checksum()), (40, 7, 0));
        assert_eq!(&b[20..], &[0xde, 0xad, 0xbe, 0xef], "options untouched");
        assert!(Ipv4Header::new_mut(&mut b[..19], 0).is_none());
    }
}
