//! The Ethernet (MAC) address type.
//!
//! Why: MAC addresses were bare `[u8; 6]` arrays, printed by three hand-written formatters and
//! parsed by two hand-written parsers across the crates; [`MacAddr`] is the one type, the one
//! printer ([`Display`](fmt::Display)) and the one parser ([`FromStr`]) they now share. It is
//! `#[repr(transparent)]` over the six bytes and [`Pod`], so it sits in the flow key at no cost
//! (the key is still hashed and compared as plain bytes).

use std::fmt;
use std::str::FromStr;

use bytemuck::{Pod, Zeroable};

/// An Ethernet (MAC) address, in wire order.
///
/// Displays as six pairs of lowercase hex digits separated by colons (`02:00:00:00:00:0a`),
/// and parses back from that form ([`FromStr`]); with the `serde` feature it serializes as that
/// string.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Pod, Zeroable)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address, `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// The all-zero address (also a flow key's "absent").
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address of these six bytes.
    #[inline(always)]
    pub const fn new(bytes: [u8; 6]) -> MacAddr {
        MacAddr(bytes)
    }

    /// The address in the first six bytes of `b`, or `None` when `b` is shorter.
    #[inline]
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        Some(MacAddr(b.get(..6)?.try_into().ok()?))
    }

    /// The six bytes.
    #[inline(always)]
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// The six bytes, borrowed.
    #[inline(always)]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// True for group (multicast and broadcast) addresses: the I/G bit of the first byte.
    /// A switch never learns them.
    #[inline(always)]
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }

    /// True for an individual (unicast) address.
    #[inline(always)]
    pub const fn is_unicast(self) -> bool {
        !self.is_multicast()
    }

    /// True for `ff:ff:ff:ff:ff:ff`.
    #[inline(always)]
    pub fn is_broadcast(self) -> bool {
        self == MacAddr::BROADCAST
    }

    /// True for a locally administered address (the U/L bit of the first byte).
    #[inline(always)]
    pub const fn is_local(self) -> bool {
        self.0[0] & 2 != 0
    }

    /// The address as the low 48 bits of an integer (first byte most significant), the form
    /// flow fields and masks take.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// The address in the low 48 bits of `v` (the higher bits are ignored).
    #[inline]
    pub const fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// Parses the address in a flow's syntax, as ovs-ofctl reads a match on `dl_src`: six
    /// groups of one or two hex digits separated by `:` (`2:0:0:0:0:a`). [`FromStr`] takes
    /// only the two-digit form that [`Display`](fmt::Display) prints.
    pub fn parse_short_groups(s: &str) -> Result<MacAddr, ParseMacError> {
        parse_groups(s, 1)
    }
}

/// Six groups of `min_digits` to two hex digits separated by `:` (the one MAC parser).
fn parse_groups(s: &str, min_digits: usize) -> Result<MacAddr, ParseMacError> {
    let mut mac = [0u8; 6];
    let mut groups = s.split(':');
    for b in mac.iter_mut() {
        let g = groups.next().ok_or(ParseMacError(()))?;
        if g.len() < min_digits || g.len() > 2 || !g.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(ParseMacError(()));
        }
        *b = u8::from_str_radix(g, 16).map_err(|_| ParseMacError(()))?;
    }
    if groups.next().is_some() {
        return Err(ParseMacError(()));
    }
    Ok(MacAddr(mac))
}

/// Why a MAC address did not parse: it is not six colon-separated groups of hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseMacError(());

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address: want xx:xx:xx:xx:xx:xx")
    }
}

impl std::error::Error for ParseMacError {}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Six groups of two hex digits (either case) separated by `:`, as
    /// [`Display`](fmt::Display) prints.
    fn from_str(s: &str) -> Result<MacAddr, ParseMacError> {
        parse_groups(s, 2)
    }
}

impl fmt::Display for MacAddr {
    /// `aa:bb:cc:dd:ee:ff`, lowercase (the one MAC printer).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl From<[u8; 6]> for MacAddr {
    #[inline(always)]
    fn from(b: [u8; 6]) -> MacAddr {
        MacAddr(b)
    }
}

impl From<MacAddr> for [u8; 6] {
    #[inline(always)]
    fn from(m: MacAddr) -> [u8; 6] {
        m.0
    }
}

impl AsRef<[u8]> for MacAddr {
    #[inline(always)]
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<[u8; 6]> for MacAddr {
    #[inline(always)]
    fn eq(&self, other: &[u8; 6]) -> bool {
        &self.0 == other
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for MacAddr {
    /// As its [`Display`](fmt::Display) string.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for MacAddr {
    /// From the string [`FromStr`] takes.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0xab, 0xcd, 0x0a]);

    #[test]
    fn prints_lowercase_with_colons() {
        assert_eq!(A.to_string(), "02:00:5e:ab:cd:0a");
        assert_eq!(MacAddr::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
        assert_eq!(MacAddr::ZERO.to_string(), "00:00:00:00:00:00");
        assert_eq!(format!("{A:?}"), "MacAddr(02:00:5e:ab:cd:0a)");
    }

    #[test]
    fn parse_print_round_trip() {
        for m in [
            A,
            MacAddr::BROADCAST,
            MacAddr::ZERO,
            MacAddr([1, 0x80, 0xc2, 0, 0, 0xe]),
        ] {
            assert_eq!(m.to_string().parse::<MacAddr>(), Ok(m));
            assert_eq!(MacAddr::parse_short_groups(&m.to_string()), Ok(m));
        }
        assert_eq!("02:00:5E:AB:CD:0A".parse::<MacAddr>(), Ok(A));
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "",
            "02:00:5e:ab:cd",
            "02:00:5e:ab:cd:0a:",
            "02:00:5e:ab:cd:0a:01",
            "02-00-5e-ab-cd-0a",
            "2:0:5e:ab:cd:a",
            "002:00:5e:ab:cd:0a",
            "+2:00:5e:ab:cd:0a",
            "0g:00:5e:ab:cd:0a",
            " 02:00:5e:ab:cd:0a",
            "02::5e:ab:cd:0a",
        ] {
            let e = bad.parse::<MacAddr>().unwrap_err();
            assert_eq!(
                e.to_string(),
                "invalid MAC address: want xx:xx:xx:xx:xx:xx",
                "{bad:?}"
            );
        }
        assert_eq!(MacAddr::parse_short_groups("2:0:5e:ab:cd:a"), Ok(A));
        for bad in [
            "2:0:5e:ab:cd",
            "2:0:5e:ab:cd:",
            "2:0:5e:ab:cd:abc",
            "+2:0:5e:ab:cd:a",
        ] {
            assert!(MacAddr::parse_short_groups(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kinds_and_conversions() {
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(A.is_unicast() && A.is_local() && !A.is_broadcast());
        assert_eq!(A.to_u64(), 0x0200_5eab_cd0a);
        assert_eq!(MacAddr::from_u64(0xffff_0200_5eab_cd0a), A);
        assert_eq!(
            MacAddr::from_slice(&[2, 0, 0x5e, 0xab, 0xcd, 0xa, 7]),
            Some(A)
        );
        assert_eq!(MacAddr::from_slice(&[2, 0, 0x5e]), None);
        assert_eq!(<[u8; 6]>::from(A), A.octets());
        assert_eq!(MacAddr::from(A.0), A);
        assert!(A == [0x02, 0x00, 0x5e, 0xab, 0xcd, 0x0a]);
        assert_eq!(bytemuck::bytes_of(&A), &A.0);
        assert!(MacAddr([1; 6]) < MacAddr([2; 6]));
    }
}
