//! Transport headers as far as the switch reads or rewrites them (ports, TCP flags, where the
//! TCP and UDP checksums sit), and the VXLAN header (RFC 7348) that rides on UDP.
//!
//! Why here: the flow key parser reads ports and flags, the header rewrites change ports and
//! fix the L4 checksum, software segmentation rewrites TCP sequence numbers, flags and
//! checksum, and the VXLAN port writes and checks its header; the offsets are written once, in
//! this file.

use crate::key::ipproto;
use crate::wire::{be16, be32, header_view, put16};

/// Length of the source and destination ports that start TCP, UDP and SCTP headers.
pub const PORTS_LEN: usize = 4;

header_view!(
    /// The source and destination ports at the start of a TCP, UDP or SCTP header.
    Ports,
    PORTS_LEN
);

impl<T: std::ops::Deref<Target = [u8; PORTS_LEN]>> Ports<T> {
    /// Source port.
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        be16(&*self.0, 0)
    }

    /// Destination port.
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        be16(&*self.0, 2)
    }
}

impl<T: std::ops::DerefMut<Target = [u8; PORTS_LEN]>> Ports<T> {
    /// Sets the source port (the L4 checksum is left as it is).
    #[inline(always)]
    pub fn set_src_port(&mut self, p: u16) {
        put16(&mut *self.0, 0, p);
    }

    /// Sets the destination port (the L4 checksum is left as it is).
    #[inline(always)]
    pub fn set_dst_port(&mut self, p: u16) {
        put16(&mut *self.0, 2, p);
    }
}

/// TCP (RFC 9293).
pub mod tcp {
    use super::*;

    /// Length of a TCP header without options.
    pub const HEADER_LEN: usize = 20;
    /// Bytes up to and including the flags: what the flow key parser needs of a header.
    pub const FLAGS_END: usize = 14;

    /// Offsets of the TCP header's fields.
    pub mod field {
        /// Sequence number.
        pub const SEQ: usize = 4;
        /// Data offset (high nibble) and the reserved and NS/AE bits.
        pub const DATA_OFF: usize = 12;
        /// The flags byte (CWR … FIN).
        pub const FLAGS: usize = 13;
        /// Checksum.
        pub const CHECKSUM: usize = 16;
    }

    /// FIN flag.
    pub const FIN: u8 = 0x01;
    /// PSH flag.
    pub const PSH: u8 = 0x08;
    /// CWR flag.
    pub const CWR: u8 = 0x80;

    /// The 12 flag bits (as the flow key holds them) of a header's first [`FLAGS_END`] bytes.
    #[inline(always)]
    pub fn flags(h: &[u8; FLAGS_END]) -> u16 {
        be16(h, field::DATA_OFF) & 0x0fff
    }

    header_view!(
        /// The fixed 20 bytes of a TCP header (options follow; see
        /// [`header_len`](TcpHeader::header_len)).
        TcpHeader,
        HEADER_LEN
    );

    impl<T: std::ops::Deref<Target = [u8; HEADER_LEN]>> TcpHeader<T> {
        /// Sequence number.
        #[inline(always)]
        pub fn seq(&self) -> u32 {
            be32(&*self.0, field::SEQ)
        }

        /// Header length in bytes, options included (valid when at least [`HEADER_LEN`]).
        #[inline(always)]
        pub fn header_len(&self) -> usize {
            (self.0[field::DATA_OFF] >> 4) as usize * 4
        }

        /// The flags byte (CWR … FIN).
        #[inline(always)]
        pub fn flags_byte(&self) -> u8 {
            self.0[field::FLAGS]
        }

        /// Checksum.
        #[inline(always)]
        pub fn checksum(&self) -> u16 {
            be16(&*self.0, field::CHECKSUM)
        }
    }

    impl<T: std::ops::DerefMut<Target = [u8; HEADER_LEN]>> TcpHeader<T> {
        /// Sets the sequence number.
        #[inline(always)]
        pub fn set_seq(&mut self, v: u32) {
            crate::wire::put32(&mut *self.0, field::SEQ, v);
        }

        /// Sets the flags byte (CWR … FIN).
        #[inline(always)]
        pub fn set_flags_byte(&mut self, v: u8) {
            self.0[field::FLAGS] = v;
        }

        /// Sets the checksum.
        #[inline(always)]
        pub fn set_checksum(&mut self, v: u16) {
            put16(&mut *self.0, field::CHECKSUM, v);
        }
    }
}

/// UDP (RFC 768).
pub mod udp {
    /// Length of the UDP header.
    pub const HEADER_LEN: usize = 8;

    /// Offsets of the UDP header's fields.
    pub mod field {
        /// Length of header and payload.
        pub const LENGTH: usize = 4;
        /// Checksum (zero: none, over IPv4).
        pub const CHECKSUM: usize = 6;
    }
}

/// ICMP and ICMPv6: the flow key holds type and code where other protocols have ports.
pub mod icmp {
    /// Bytes of type and code.
    pub const TYPE_CODE_LEN: usize = 2;
}

/// Offset of the checksum field in the header of `proto`, for the protocols whose checksum
/// covers the IP pseudo-header and that the switch keeps up to date (TCP and UDP).
#[inline(always)]
pub fn checksum_offset(proto: u8) -> Option<usize> {
    match proto {
        ipproto::TCP => Some(tcp::field::CHECKSUM),
        ipproto::UDP => Some(udp::field::CHECKSUM),
        _ => None,
    }
}

/// The IANA UDP port of VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// Length of the VXLAN header.
pub const VXLAN_HEADER_LEN: usize = 8;
/// The "VNI valid" flag (I) of the VXLAN header's first byte.
pub const VXLAN_FLAG_I: u8 = 0x08;

header_view!(
    /// The VXLAN header: flags, reserved bits, the 24-bit VNI.
    VxlanHeader,
    VXLAN_HEADER_LEN
);

impl<T: std::ops::Deref<Target = [u8; VXLAN_HEADER_LEN]>> VxlanHeader<T> {
    /// True when the I flag says the VNI is valid.
    #[inline(always)]
    pub fn vni_valid(&self) -> bool {
        self.0[0] & VXLAN_FLAG_I != 0
    }

    /// The VXLAN network identifier (24 bits).
    #[inline(always)]
    pub fn vni(&self) -> u32 {
        u32::from_be_bytes([0, self.0[4], self.0[5], self.0[6]])
    }
}

impl<T: std::ops::DerefMut<Target = [u8; VXLAN_HEADER_LEN]>> VxlanHeader<T> {
    /// Writes a whole header: the I flag, `vni` (its low 24 bits), zero reserved bits.
    #[inline]
    pub fn fill(&mut self, vni: u32) {
        let v = vni.to_be_bytes();
        *self.0 = [VXLAN_FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // TCP 1000 → 80, seq 0x01020304, data offset 6 (24 bytes), flags PSH|ACK, checksum 0xabcd.
    const TCP: [u8; 24] = [
        0x03, 0xe8, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0x60, 0x18, 0xff, 0xff, 0xab,
        0xcd, 0, 0, 2, 4, 5, 0xb4,
    ];

    #[test]
    fn ports() {
        let mut b = TCP;
        let p = Ports::new(&b, 0).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (1000, 80));
        assert!(Ports::new(&b[..3], 0).is_none());
        assert!(Ports::new(&b, 21).is_none());
        let mut p = Ports::new_mut(&mut b, 0).unwrap();
        p.set_src_port(5555);
        p.set_dst_port(8080);
        assert_eq!(&b[..4], &[0x15, 0xb3, 0x1f, 0x90]);
        assert!(Ports::new_mut(&mut b[..3], 0).is_none());
    }

    #[test]
    fn tcp_header() {
        let h = tcp::TcpHeader::new(&TCP, 0).unwrap();
        assert_eq!(
            (h.seq(), h.header_len(), h.flags_byte()),
            (0x0102_0304, 24, 0x18)
        );
        assert_eq!(h.checksum(), 0xabcd);
        assert!(tcp::TcpHeader::new(&TCP[..19], 0).is_none());
        let mut b = TCP;
        let mut w = tcp::TcpHeader::new_mut(&mut b, 0).unwrap();
        w.set_seq(0xa0b0_c0d0);
        w.set_flags_byte(tcp::FIN | tcp::PSH | tcp::CWR);
        w.set_checksum(0x1234);
        assert_eq!(&b[4..8], &[0xa0, 0xb0, 0xc0, 0xd0]);
        assert_eq!((b[13], &b[16..18]), (0x89, &[0x12, 0x34][..]));
        assert_eq!(&b[18..], &TCP[18..], "options untouched");
        assert!(tcp::TcpHeader::new_mut(&mut b[..19], 0).is_none());
        let f: &[u8; tcp::FLAGS_END] = TCP[..14].try_into().unwrap();
        assert_eq!(tcp::flags(f), 0x018);
        let mut ns = *f;
        ns[12] = 0x51; // data offset 5, the NS/AE bit set
        assert_eq!(tcp::flags(&ns), 0x118);
        assert_eq!(checksum_offset(ipproto::TCP), Some(16));
        assert_eq!(checksum_offset(ipproto::UDP), Some(6));
        assert_eq!(checksum_offset(ipproto::SCTP), None);
        assert_eq!(u16::from_be_bytes([TCP[16], TCP[17]]), 0xabcd);
    }

    #[test]
    fn vxlan_header() {
        let mut b = [0xffu8; 10];
        VxlanHeader::new_mut(&mut b, 1).unwrap().fill(0xab12_3456);
        assert_eq!(&b, &[0xff, 0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0, 0xff]);
        let h = VxlanHeader::new(&b, 1).unwrap();
        assert!(h.vni_valid());
        assert_eq!(h.vni(), 0x12_3456);
        assert!(VxlanHeader::new(&b, 3).is_none());
        assert!(VxlanHeader::new(&b[..8], 1).is_none());
        let no_i = [0u8; 8];
        assert!(!VxlanHeader::new(&no_i, 0).unwrap().vni_valid());
    }
}
