//! Ethernet II headers and 802.1Q/802.1ad VLAN tags.
//!
//! Why here: the flow key parser, the VLAN push/pop and field rewrites, and the ports that put
//! back a tag the kernel stripped all need the same offsets (addresses at 0 and 6, the
//! ethertype at 12, a tag of four bytes after the addresses).

use crate::key::ethertype;
use crate::wire::{be16, header_view, put16, MacAddr};

/// Length of an Ethernet header (two addresses and the ethertype).
pub const HEADER_LEN: usize = 14;
/// Length of the two addresses at the front of a frame (where a VLAN tag is inserted).
pub const ADDRS_LEN: usize = 12;
/// Length of one VLAN tag (TPID and TCI).
pub const TAG_LEN: usize = 4;
/// Ethertypes below this are 802.3 length fields, not types.
pub const MIN_ETHERTYPE: u16 = 0x0600;

/// Offsets of the Ethernet header's fields.
pub mod field {
    use std::ops::Range;
    /// Destination address.
    pub const DST: Range<usize> = 0..6;
    /// Source address.
    pub const SRC: Range<usize> = 6..12;
    /// Ethertype (or the TPID of a VLAN tag).
    pub const ETHERTYPE: usize = 12;
}

/// Offsets of a VLAN tag's fields, from the tag's start (the TPID, at [`field::ETHERTYPE`] of
/// the header it follows).
pub mod tag_field {
    /// Tag protocol identifier.
    pub const TPID: usize = 0;
    /// Tag control information (PCP, DEI, VID).
    pub const TCI: usize = 2;
}

/// True for the tag protocol identifiers of 802.1Q (`0x8100`) and 802.1ad (`0x88a8`).
#[inline(always)]
pub fn is_vlan_tpid(t: u16) -> bool {
    t == ethertype::VLAN || t == ethertype::QINQ
}

/// The address at `b[off..off + 6]` of a fixed-size view (a copy, not a byte-by-byte build;
/// the bounds check is compiled away for a constant `off`).
#[inline(always)]
fn mac_at<const N: usize>(b: &[u8; N], off: usize) -> MacAddr {
    MacAddr(b[off..off + 6].try_into().expect("6 bytes"))
}

header_view!(
    /// The fixed Ethernet header: destination, source, ethertype.
    EthernetHeader,
    HEADER_LEN
);

impl<T: std::ops::Deref<Target = [u8; HEADER_LEN]>> EthernetHeader<T> {
    /// Destination address.
    #[inline(always)]
    pub fn dst(&self) -> MacAddr {
        mac_at(&self.0, 0)
    }

    /// Source address.
    #[inline(always)]
    pub fn src(&self) -> MacAddr {
        mac_at(&self.0, 6)
    }

    /// Ethertype, or the TPID of a first VLAN tag.
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(&*self.0, field::ETHERTYPE)
    }
}

impl<T: std::ops::DerefMut<Target = [u8; HEADER_LEN]>> EthernetHeader<T> {
    /// Sets the destination address.
    #[inline(always)]
    pub fn set_dst(&mut self, m: MacAddr) {
        self.0[field::DST].copy_from_slice(&m.0);
    }

    /// Sets the source address.
    #[inline(always)]
    pub fn set_src(&mut self, m: MacAddr) {
        self.0[field::SRC].copy_from_slice(&m.0);
    }

    /// Sets the ethertype.
    #[inline(always)]
    pub fn set_ethertype(&mut self, t: u16) {
        put16(&mut *self.0, field::ETHERTYPE, t);
    }
}

/// The two addresses of a frame that is at least [`ADDRS_LEN`] long, as (destination, source),
/// or `None` when it is shorter (a frame too short for a whole header still has its addresses
/// read into the flow key).
#[inline(always)]
pub fn addrs(frame: &[u8]) -> Option<(MacAddr, MacAddr)> {
    let a = crate::wire::view::<ADDRS_LEN>(frame, 0)?;
    Some((mac_at(a, 0), mac_at(a, 6)))
}

/// Writes `dst` into the destination address of `frame`; false (nothing written) when the
/// frame is shorter than an address.
#[inline]
pub fn set_dst(frame: &mut [u8], dst: MacAddr) -> bool {
    match frame.get_mut(field::DST) {
        Some(d) => {
            d.copy_from_slice(&dst.0);
            true
        }
        None => false,
    }
}

/// Writes `src` into the source address of `frame`; false (nothing written) when the frame is
/// shorter than both addresses.
#[inline]
pub fn set_src(frame: &mut [u8], src: MacAddr) -> bool {
    match frame.get_mut(field::SRC) {
        Some(d) => {
            d.copy_from_slice(&src.0);
            true
        }
        None => false,
    }
}

header_view!(
    /// A VLAN tag as it follows the addresses or another tag: the TPID, then the TCI; the
    /// ethertype of what the tag carries follows it (see [`TagBody`]).
    VlanTag,
    TAG_LEN
);

impl<T: std::ops::Deref<Target = [u8; TAG_LEN]>> VlanTag<T> {
    /// Tag protocol identifier (`0x8100` or `0x88a8`).
    #[inline(always)]
    pub fn tpid(&self) -> u16 {
        be16(&*self.0, tag_field::TPID)
    }

    /// Tag control information: priority (3 bits), DEI (1), VLAN id (12).
    #[inline(always)]
    pub fn tci(&self) -> u16 {
        be16(&*self.0, tag_field::TCI)
    }
}

impl<T: std::ops::DerefMut<Target = [u8; TAG_LEN]>> VlanTag<T> {
    /// Sets the tag protocol identifier.
    #[inline(always)]
    pub fn set_tpid(&mut self, t: u16) {
        put16(&mut *self.0, tag_field::TPID, t);
    }

    /// Sets the tag control information.
    #[inline(always)]
    pub fn set_tci(&mut self, tci: u16) {
        put16(&mut *self.0, tag_field::TCI, tci);
    }
}

header_view!(
    /// A VLAN tag's TCI and the ethertype after it (`[TCI, ethertype]`, starting two bytes into
    /// the tag): what a parser that has already read the TPID reads next.
    TagBody,
    TAG_LEN
);

impl<T: std::ops::Deref<Target = [u8; TAG_LEN]>> TagBody<T> {
    /// Tag control information.
    #[inline(always)]
    pub fn tci(&self) -> u16 {
        be16(&*self.0, 0)
    }

    /// Ethertype of what the tag carries, or the TPID of the next tag.
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(&*self.0, 2)
    }
}

/// Where the payload of `frame` starts behind its Ethernet header and at most `max_tags` VLAN
/// tags, and its Ethertype (a tag beyond `max_tags` is that payload); `None` if the frame ends
/// inside those headers.
#[inline]
pub fn skip_tags(frame: &[u8], max_tags: usize) -> Option<(usize, u16)> {
    let mut t = EthernetHeader::new(frame, 0)?.ethertype();
    let mut off = HEADER_LEN;
    for _ in 0..max_tags {
        if !is_vlan_tpid(t) {
            break;
        }
        t = TagBody::new(frame, off)?.ethertype();
        off += TAG_LEN;
    }
    Some((off, t))
}

/// Writes a VLAN tag (`tpid`, `tci`) at `ADDRS_LEN..ADDRS_LEN + TAG_LEN` of `frame`, which has
/// room for it there (the addresses already in place before it); false when it is too short.
#[inline]
pub fn write_tag(frame: &mut [u8], tpid: u16, tci: u16) -> bool {
    match VlanTag::new_mut(frame, ADDRS_LEN) {
        Some(mut t) => {
            t.set_tpid(tpid);
            t.set_tci(tci);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Vec<u8> {
        let mut f = vec![
            2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x81, 0x00, 0xa0, 0x2a,
        ];
        f.extend_from_slice(&[0x08, 0x00, 0x45]);
        f
    }

    #[test]
    fn ethernet_header() {
        let f = frame();
        let h = EthernetHeader::new(&f, 0).unwrap();
        assert_eq!(h.dst(), MacAddr([2, 0, 0, 0, 0, 0xb]));
        assert_eq!(h.src(), MacAddr([2, 0, 0, 0, 0, 0xa]));
        assert_eq!(h.ethertype(), ethertype::VLAN);
        assert!(is_vlan_tpid(h.ethertype()));
        assert_eq!(addrs(&f), Some((h.dst(), h.src())));
        // Truncated.
        assert!(EthernetHeader::new(&f[..13], 0).is_none());
        assert!(EthernetHeader::new(&f, 6).is_none());
        assert_eq!(addrs(&f[..12]), Some((h.dst(), h.src())));
        assert_eq!(addrs(&f[..11]), None);
    }

    #[test]
    fn ethernet_header_writes() {
        let mut f = frame();
        let mut h = EthernetHeader::new_mut(&mut f, 0).unwrap();
        h.set_dst(MacAddr::BROADCAST);
        h.set_src(MacAddr([1; 6]));
        h.set_ethertype(ethertype::IPV4);
        assert_eq!(
            &f[..14],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 1, 1, 1, 1, 1, 8, 0]
        );
        assert!(set_dst(&mut f[..6], MacAddr([3; 6])));
        assert!(!set_dst(&mut f[..5], MacAddr([4; 6])));
        assert!(set_src(&mut f[..12], MacAddr([5; 6])));
        assert!(!set_src(&mut f[..11], MacAddr([6; 6])));
        assert_eq!(&f[..12], &[3, 3, 3, 3, 3, 3, 5, 5, 5, 5, 5, 5]);
        assert!(EthernetHeader::new_mut(&mut f[..13], 0).is_none());
    }

    #[test]
    fn vlan_tag() {
        let mut f = frame();
        let t = VlanTag::new(&f, ADDRS_LEN).unwrap();
        assert_eq!((t.tpid(), t.tci()), (0x8100, 0xa02a));
        let b = TagBody::new(&f, HEADER_LEN).unwrap();
        assert_eq!((b.tci(), b.ethertype()), (0xa02a, ethertype::IPV4));
        assert!(VlanTag::new(&f[..15], ADDRS_LEN).is_none());
        assert!(TagBody::new(&f[..17], HEADER_LEN).is_none());
        assert!(write_tag(&mut f, ethertype::QINQ, 7));
        assert_eq!(&f[12..16], &[0x88, 0xa8, 0, 7]);
        assert!(!write_tag(&mut f[..15], 0x8100, 1));
    }

    #[test]
    fn skip_tags_stops_at_the_payload_or_the_limit() {
        let f = frame();
        assert_eq!(
            skip_tags(&f, 2),
            Some((HEADER_LEN + TAG_LEN, ethertype::IPV4))
        );
        assert_eq!(skip_tags(&f, 0), Some((HEADER_LEN, ethertype::VLAN)));
        // A second tag, behind the first: one is skipped at a limit of one.
        let mut qinq = f.clone();
        qinq.splice(HEADER_LEN..HEADER_LEN, [0, 5, 0x81, 0x00]);
        qinq[12..14].copy_from_slice(&ethertype::QINQ.to_be_bytes());
        assert_eq!(
            skip_tags(&qinq, 1),
            Some((HEADER_LEN + TAG_LEN, ethertype::VLAN))
        );
        assert_eq!(
            skip_tags(&qinq, 8),
            Some((HEADER_LEN + 2 * TAG_LEN, ethertype::IPV4))
        );
        // Ends inside the headers.
        assert_eq!(skip_tags(&f[..17], 2), None);
        assert_eq!(skip_tags(&f[..13], 2), None);
    }
}
