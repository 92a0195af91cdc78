//! The flow key: a fixed-layout record of every header field a rule can match.
//!
//! The layout is `repr(C)` with no padding so the key can be viewed as [`KEY_WORDS`] 64-bit words.
//! Masks ([`FlowMask`]) share the layout; masking, hashing and comparing then work word by word,
//! which is what keeps the caches fast.
//!
//! Conventions (those of Open vSwitch, so rules read the same):
//! - multi-byte integers are stored in host byte order (`eth_type == 0x0800` for IPv4);
//! - `vlan_tci` holds the outer 802.1Q tag with [`VLAN_PRESENT`] set when a tag exists;
//!   `inner_vlan_tci` holds the second tag of a QinQ frame the same way;
//! - for ARP, `nw_proto` holds the low byte of the opcode and `nw_src`/`nw_dst` the sender and
//!   target protocol addresses;
//! - for ICMP and ICMPv6, `tp_src` holds the type and `tp_dst` the code.

use bytemuck::{Pod, Zeroable};

use crate::wire::MacAddr;

/// Number of 64-bit words in a [`FlowKey`].
pub const KEY_WORDS: usize = 13;

/// Bit of `vlan_tci` that says a tag is present (the CFI/DEI bit position, as OVS uses it).
pub const VLAN_PRESENT: u16 = 0x1000;
/// Bits of `vlan_tci` holding the VLAN id.
pub const VLAN_VID_MASK: u16 = 0x0fff;
/// Bits of `vlan_tci` holding the priority code point.
pub const VLAN_PCP_MASK: u16 = 0xe000;
/// Shift of the PCP within `vlan_tci`.
pub const VLAN_PCP_SHIFT: u16 = 13;

/// `nw_frag` bit: the packet is an IP fragment.
pub const FRAG_ANY: u8 = 0x01;
/// `nw_frag` bit: the packet is a fragment other than the first (it has no L4 header).
pub const FRAG_LATER: u8 = 0x02;

/// Well-known ethertypes.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// Well-known IP protocol numbers.
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// The header fields of one packet, as the classifier sees them.
///
/// All-zero means "absent": a field the parser could not read stays zero.
#[repr(C, align(8))]
// The hand-written `PartialEq` is exactly field-wise equality (the key is `Pod`: no padding),
// so the derived `Hash` agrees with it.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Clone, Copy, Eq, Hash, Default, Pod, Zeroable)]
pub struct FlowKey {
    /// Port the packet arrived on.
    pub in_port: u32,
    /// Ethertype after any VLAN tags (host order). Frames with a length field keep 0.
    pub eth_type: u16,
    /// Outer VLAN TCI with [`VLAN_PRESENT`] set when tagged, else 0.
    pub vlan_tci: u16,
    /// Destination MAC address.
    pub eth_dst: MacAddr,
    /// Source MAC address.
    pub eth_src: MacAddr,
    /// Inner VLAN TCI of a double-tagged (QinQ) frame, with [`VLAN_PRESENT`] set, else 0.
    pub inner_vlan_tci: u16,
    /// IP protocol, or the low byte of the ARP opcode.
    pub nw_proto: u8,
    /// IP TOS / traffic class byte (DSCP in the top six bits, ECN in the low two).
    pub nw_tos: u8,
    /// IP TTL / hop limit.
    pub nw_ttl: u8,
    /// Fragment bits: [`FRAG_ANY`], [`FRAG_LATER`].
    pub nw_frag: u8,
    /// TCP flags (12 bits).
    pub tcp_flags: u16,
    /// IPv4 source, or ARP sender protocol address (host order).
    pub nw_src: u32,
    /// IPv4 destination, or ARP target protocol address (host order).
    pub nw_dst: u32,
    /// TCP/UDP/SCTP source port, or ICMP type.
    pub tp_src: u16,
    /// TCP/UDP/SCTP destination port, or ICMP code.
    pub tp_dst: u16,
    /// IPv6 source address (network byte order).
    pub ipv6_src: [u8; 16],
    /// IPv6 destination address (network byte order).
    pub ipv6_dst: [u8; 16],
    /// ARP sender hardware address.
    pub arp_sha: MacAddr,
    /// ARP target hardware address.
    pub arp_tha: MacAddr,
    /// Tunnel source IPv4 address (host order); set by tunnel ports on decapsulation.
    pub tun_src: u32,
    /// Tunnel id (VNI); set by tunnel ports on decapsulation.
    pub tun_id: u64,
    /// Tunnel destination IPv4 address (host order).
    pub tun_dst: u32,
    /// IPv6 flow label (20 bits).
    pub ipv6_label: u32,
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == KEY_WORDS * 8);

/// Word by word without branches: the derived comparison of a 104-byte struct is a call into
/// libc's `memcmp`, and keys are compared for every packet (EMC hits, repeated keys).
impl PartialEq for FlowKey {
    #[inline]
    fn eq(&self, other: &FlowKey) -> bool {
        let (a, b) = (self.words(), other.words());
        let mut diff = 0;
        for i in 0..KEY_WORDS {
            diff |= a[i] ^ b[i];
        }
        diff == 0
    }
}

/// A mask over a [`FlowKey`]: a set bit means the bit of the key is significant.
///
/// It has the key's layout, so fields are set by name (`mask.0.nw_dst = 0xffff_ff00`).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowMask(pub FlowKey);

impl FlowKey {
    /// The all-zero key.
    pub const ZERO: FlowKey = FlowKey {
        in_port: 0,
        eth_type: 0,
        vlan_tci: 0,
        eth_dst: MacAddr::ZERO,
        eth_src: MacAddr::ZERO,
        inner_vlan_tci: 0,
        nw_proto: 0,
        nw_tos: 0,
        nw_ttl: 0,
        nw_frag: 0,
        tcp_flags: 0,
        nw_src: 0,
        nw_dst: 0,
        tp_src: 0,
        tp_dst: 0,
        ipv6_src: [0; 16],
        ipv6_dst: [0; 16],
        arp_sha: MacAddr::ZERO,
        arp_tha: MacAddr::ZERO,
        tun_src: 0,
        tun_id: 0,
        tun_dst: 0,
        ipv6_label: 0,
    };

    /// The key as words.
    #[inline(always)]
    pub fn words(&self) -> &[u64; KEY_WORDS] {
        bytemuck::cast_ref(self)
    }

    /// The key as mutable words.
    #[inline(always)]
    pub fn words_mut(&mut self) -> &mut [u64; KEY_WORDS] {
        bytemuck::cast_mut(self)
    }

    /// Builds a key from words.
    #[inline(always)]
    pub fn from_words(words: [u64; KEY_WORDS]) -> FlowKey {
        bytemuck::cast(words)
    }

    /// The key as bytes.
    pub fn bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }

    /// The key with every bit outside `mask` cleared.
    #[inline(always)]
    pub fn masked(&self, mask: &FlowMask) -> FlowKey {
        let k = self.words();
        let m = mask.words();
        FlowKey::from_words(std::array::from_fn(|i| k[i] & m[i]))
    }

    /// Hash of the whole key, for the exact-match cache.
    #[inline(always)]
    pub fn hash(&self) -> u32 {
        crate::hash::hash_words(self.words())
    }

    /// True when the outer VLAN tag is present.
    pub fn has_vlan(&self) -> bool {
        self.vlan_tci & VLAN_PRESENT != 0
    }

    /// True for IPv4 or IPv6 packets.
    pub fn is_ip(&self) -> bool {
        self.eth_type == ethertype::IPV4 || self.eth_type == ethertype::IPV6
    }
}

impl FlowMask {
    /// The mask with no bit set (matches everything).
    pub const EMPTY: FlowMask = FlowMask(FlowKey::ZERO);

    /// The mask with every bit set (an exact match).
    pub fn exact() -> FlowMask {
        FlowMask(FlowKey::from_words([u64::MAX; KEY_WORDS]))
    }

    /// The mask as words.
    #[inline(always)]
    pub fn words(&self) -> &[u64; KEY_WORDS] {
        self.0.words()
    }

    /// Adds every bit of `other` to this mask.
    #[inline]
    pub fn union_with(&mut self, other: &FlowMask) {
        let m = self.0.words_mut();
        for (a, b) in m.iter_mut().zip(other.words()) {
            *a |= *b;
        }
    }

    /// True when no bit is set.
    pub fn is_empty(&self) -> bool {
        self.words().iter().all(|&w| w == 0)
    }

    /// True when every bit of `self` is also set in `other`.
    pub fn is_subset_of(&self, other: &FlowMask) -> bool {
        self.words()
            .iter()
            .zip(other.words())
            .all(|(a, b)| a & !b == 0)
    }

    /// Indexes of the words that have at least one bit set.
    pub fn nonzero_words(&self) -> impl Iterator<Item = usize> + '_ {
        self.words()
            .iter()
            .enumerate()
            .filter(|(_, w)| **w != 0)
            .map(|(i, _)| i)
    }
}

impl std::fmt::Debug for FlowMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlowMask(")?;
        crate::fields::fmt_fields(&self.0, None, f)?;
        write!(f, ")")
    }
}

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlowKey(")?;
        crate::fields::fmt_fields(self, None, f)?;
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_no_padding_and_words_alias_fields() {
        let mut k = FlowKey::ZERO;
        k.in_port = 7;
        assert_eq!(k.words()[0] & 0xffff_ffff, 7);
        k.ipv6_label = 0xabcde;
        assert_eq!(k.words()[KEY_WORDS - 1] >> 32, 0xabcde);
    }

    #[test]
    fn masking_clears_bits_outside_the_mask() {
        let mut k = FlowKey::ZERO;
        k.nw_dst = 0x0a01_0203;
        k.tp_dst = 80;
        let mut m = FlowMask::EMPTY;
        m.0.nw_dst = 0xffff_ff00;
        let mk = k.masked(&m);
        assert_eq!(mk.nw_dst, 0x0a01_0200);
        assert_eq!(mk.tp_dst, 0);
    }

    #[test]
    fn subset_and_union() {
        let mut a = FlowMask::EMPTY;
        a.0.in_port = u32::MAX;
        let mut b = FlowMask::EMPTY;
        b.0.eth_type = u16::MAX;
        assert!(!a.is_subset_of(&b));
        b.union_with(&a);
        assert!(a.is_subset_of(&b));
        assert!(FlowMask::EMPTY.is_empty());
        assert_eq!(b.nonzero_words().collect::<Vec<_>>(), vec![0]);
    }
}
