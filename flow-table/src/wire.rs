//! Typed views of the wire formats the switch reads and rewrites: Ethernet and VLAN tags,
//! IPv4, IPv6, the L4 ports and TCP/UDP checksum fields, VXLAN, and the internet checksum.
//!
//! Why a module of its own: header offsets, lengths and checksum arithmetic used to be spelled
//! out again in the flow key parser, the header rewrites, the tunnel port and the offload code;
//! here they are written once. The naming follows smoltcp's `wire` module (a view type per
//! header, a `field` module of offsets per header), but the views are not smoltcp's checked
//! views: each one is a fixed-size array reference (`&[u8; N]`), bounds-checked once when it is
//! made from a frame, after which every accessor is a constant-offset read the compiler proves in
//! bounds. That is what the flow key parser did by hand before, and it costs nothing over it
//! (smoltcp's views check lengths per access and cost about twice as much on this path).
//!
//! A view wraps `&[u8; N]` (read only) or `&mut [u8; N]` (read and write); the getters take any
//! `T: Deref<Target = [u8; N]>`, the setters any `T: DerefMut<Target = [u8; N]>`.

pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod l4;
mod mac;

pub use ethernet::{EthernetHeader, VlanTag};
pub use ipv4::Ipv4Header;
pub use ipv6::Ipv6Header;
pub use l4::{Ports, VxlanHeader};
pub use mac::{MacAddr, ParseMacError};

/// A fixed-size view of `buf[off..off + N]`, or `None` when `buf` is too short.
#[inline(always)]
pub fn view<const N: usize>(buf: &[u8], off: usize) -> Option<&[u8; N]> {
    buf.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// A writable fixed-size view of `buf[off..off + N]`, or `None` when `buf` is too short.
#[inline(always)]
pub fn view_mut<const N: usize>(buf: &mut [u8], off: usize) -> Option<&mut [u8; N]> {
    buf.get_mut(off..off.checked_add(N)?)?.try_into().ok()
}

/// A frame as lower-case hex, two digits a byte (how traces, captures and dummy ports show
/// frames, as `ovs-appctl ofproto/trace` takes them).
pub fn hex(frame: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(2 * frame.len());
    for b in frame {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The big-endian 16-bit word at `b[off..off + 2]` (panics when out of bounds: callers read
/// fixed-size views at constant offsets, where the check is compiled away).
#[inline(always)]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// The big-endian 32-bit word at `b[off..off + 4]` (as [`be16`]).
#[inline(always)]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Writes `v` big-endian at `b[off..off + 2]` (as [`be16`]).
#[inline(always)]
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes `v` big-endian at `b[off..off + 4]` (as [`be16`]).
#[inline(always)]
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// Defines a header view type over `[u8; $len]` with its constructors.
macro_rules! header_view {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<T>(T);

        impl<'a> $name<&'a [u8; $len]> {
            /// The header at `buf[off..]`, or `None` when `buf` is too short for it.
            #[inline(always)]
            pub fn new(buf: &'a [u8], off: usize) -> Option<Self> {
                $crate::wire::view::<{ $len }>(buf, off).map($name)
            }
        }

        impl<'a> $name<&'a mut [u8; $len]> {
            /// The header at `buf[off..]`, writable, or `None` when `buf` is too short for it.
            #[inline(always)]
            pub fn new_mut(buf: &'a mut [u8], off: usize) -> Option<Self> {
                $crate::wire::view_mut::<{ $len }>(buf, off).map($name)
            }
        }

        impl<T: std::ops::Deref<Target = [u8; $len]>> $name<T> {
            /// The header over an array of exactly its length.
            #[inline(always)]
            pub fn from_array(bytes: T) -> Self {
                $name(bytes)
            }

            /// The header's bytes.
            #[inline(always)]
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }
    };
}
pub(crate) use header_view;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_check_bounds() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(view::<2>(&b, 3), Some(&[4, 5]));
        assert_eq!(view::<2>(&b, 4), None);
        assert_eq!(view::<0>(&b, 5), Some(&[]));
        assert_eq!(view::<1>(&b, usize::MAX), None);
        let mut m = b;
        view_mut::<2>(&mut m, 0).unwrap().copy_from_slice(&[9, 9]);
        assert_eq!(m, [9, 9, 3, 4, 5]);
        assert!(view_mut::<6>(&mut m, 0).is_none());
    }

    #[test]
    fn words() {
        let mut b = [0u8; 6];
        put16(&mut b, 0, 0x1234);
        put32(&mut b, 2, 0xdead_beef);
        assert_eq!(b, [0x12, 0x34, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!((be16(&b, 0), be32(&b, 2)), (0x1234, 0xdead_beef));
    }
}
