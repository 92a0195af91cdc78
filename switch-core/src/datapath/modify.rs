//! Header rewrites of datapath actions, applied to frame bytes in place.
//!
//! Checksums are updated incrementally (RFC 1624) rather than recomputed, so a rewrite costs the
//! same for a 64-byte and a 64-kilobyte packet. Header offsets and the checksum arithmetic come
//! from [`flow_table::wire`]. A frame too short or malformed for an action is
//! left unchanged and the action reports failure (the caller counts it); nothing here panics on
//! bad input.

use flow_table::key::{ethertype, ipproto};
use flow_table::wire::ethernet::{self, is_vlan_tpid};
use flow_table::wire::l4::{self, Ports};
use flow_table::wire::{checksum, ipv4, ipv6, view_mut};
use flow_table::wire::{EthernetHeader, Ipv4Header, Ipv6Header, VlanTag};
use flow_table::SetField;

/// The bytes of a packet with room to grow at the front (VLAN push, encapsulation).
pub trait Frame {
    /// The frame bytes.
    fn data(&self) -> &[u8];
    /// The frame bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the frame by `n` bytes at the front; false when there is no headroom.
    fn push_front(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false when the frame is shorter.
    fn pull_front(&mut self, n: usize) -> bool;
    /// True when the L4 checksum field holds only the pseudo-header sum, to be completed by
    /// whoever sends the packet (virtio-net `NEEDS_CSUM`).
    fn l4_csum_partial(&self) -> bool {
        false
    }
    /// The L3 header moved by `delta` bytes (a tag was pushed or popped): offsets kept beside
    /// the frame must follow.
    fn headers_moved(&mut self, _delta: isize) {}
}

impl Frame for ports::Packet {
    fn data(&self) -> &[u8] {
        ports::Packet::data(self)
    }
    fn data_mut(&mut self) -> &mut [u8] {
        ports::Packet::data_mut(self)
    }
    fn push_front(&mut self, n: usize) -> bool {
        self.prepend(n).is_some()
    }
    fn pull_front(&mut self, n: usize) -> bool {
        n <= self.len() && self.adjust_head(n as isize)
    }
    fn l4_csum_partial(&self) -> bool {
        self.vnet
            .is_some_and(|v| v.flags & ports::VnetHdr::F_NEEDS_CSUM != 0)
    }
    fn headers_moved(&mut self, delta: isize) {
        if let Some(v) = self.vnet.as_mut() {
            if v.flags & ports::VnetHdr::F_NEEDS_CSUM != 0 {
                v.csum_start = (v.csum_start as isize + delta) as u16;
            }
            if v.hdr_len != 0 {
                v.hdr_len = (v.hdr_len as isize + delta) as u16;
            }
        }
    }
}

/// A frame in its own vector (traces, tests): grows at the front by moving the bytes.
impl Frame for Vec<u8> {
    fn data(&self) -> &[u8] {
        self
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self
    }
    fn push_front(&mut self, n: usize) -> bool {
        self.splice(0..0, std::iter::repeat_n(0, n));
        true
    }
    fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.drain(..n);
        true
    }
}

/// Most VLAN tags looked through to find the L3 header.
const MAX_TAGS: usize = 8;

/// Where the headers of a frame start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    eth_type: u16,
    l3: usize,
    /// L4 header offset and protocol, for first fragments with a long enough IP header.
    l4: Option<(usize, u8)>,
}

fn layout(f: &[u8]) -> Option<Layout> {
    // More tags than the flow key holds (two): a `push_vlan` on a QinQ frame makes three, and
    // the rewrites the translation chose must still reach the headers behind them.
    let (l3, t) = ethernet::skip_tags(f, MAX_TAGS)?;
    let l4 = match t {
        ethertype::IPV4 => {
            let h = Ipv4Header::new(f, l3)?;
            let ihl = h.header_len();
            (ihl >= ipv4::HEADER_LEN && !h.is_later_fragment() && f.len() >= l3 + ihl)
                .then_some((l3 + ihl, h.protocol()))
        }
        // Only a plain IPv6 header is rewritten below; extension headers keep L4 untouched.
        ethertype::IPV6 => {
            let h = Ipv6Header::new(f, l3)?;
            Some((l3 + ipv6::HEADER_LEN, h.next_header()))
        }
        _ => None,
    };
    Some(Layout {
        eth_type: t,
        l3,
        l4,
    })
}

/// Rewrites the L4 checksum of a frame for a change of a covered word (`is32`: an address,
/// which the pseudo-header covers; else a port). A UDP checksum of zero means "none" and stays
/// zero. A partial checksum holds only the (uncomplemented) pseudo-header sum: it follows
/// address changes and ignores port changes, which the final checksum will cover.
fn fix_l4_csum(f: &mut [u8], lay: &Layout, old: u32, new: u32, is32: bool, partial: bool) {
    let Some((l4, proto)) = lay.l4 else { return };
    let Some(off) = l4::checksum_offset(proto) else {
        return;
    };
    let Some(field) = view_mut::<2>(f, l4 + off) else {
        return;
    };
    let sum = u16::from_be_bytes(*field);
    if partial {
        if is32 {
            *field = (!checksum::update32(!sum, old, new)).to_be_bytes();
        }
        return;
    }
    if proto == ipproto::UDP && sum == 0 {
        return;
    }
    let mut n = if is32 {
        checksum::update32(sum, old, new)
    } else {
        checksum::update16(sum, old as u16, new as u16)
    };
    if proto == ipproto::UDP && n == 0 {
        n = 0xffff;
    }
    *field = n.to_be_bytes();
}

/// Pushes an outer VLAN tag. False when there is no headroom or the frame is too short.
pub fn push_vlan<F: Frame + ?Sized>(frame: &mut F, tpid: u16, tci: u16) -> bool {
    if frame.data().len() < ethernet::ADDRS_LEN || !frame.push_front(ethernet::TAG_LEN) {
        return false;
    }
    let d = frame.data_mut();
    d.copy_within(
        ethernet::TAG_LEN..ethernet::TAG_LEN + ethernet::ADDRS_LEN,
        0,
    );
    ethernet::write_tag(d, tpid, tci);
    frame.headers_moved(ethernet::TAG_LEN as isize);
    true
}

/// Removes the outer VLAN tag, if there is one. False when the frame has no tag.
pub fn pop_vlan<F: Frame + ?Sized>(frame: &mut F) -> bool {
    let d = frame.data();
    if d.len() < ethernet::HEADER_LEN + ethernet::TAG_LEN {
        return false;
    }
    if !EthernetHeader::new(d, 0).is_some_and(|e| is_vlan_tpid(e.ethertype())) {
        return false;
    }
    frame
        .data_mut()
        .copy_within(0..ethernet::ADDRS_LEN, ethernet::TAG_LEN);
    let ok = frame.pull_front(ethernet::TAG_LEN);
    if ok {
        frame.headers_moved(-(ethernet::TAG_LEN as isize));
    }
    ok
}

/// Decrements the TTL / hop limit (the caller checked it is above 1). False when not IP.
pub fn dec_ttl(f: &mut [u8]) -> bool {
    let Some(lay) = layout(f) else { return false };
    match lay.eth_type {
        ethertype::IPV4 => Ipv4Header::new_mut(f, lay.l3).is_some_and(|mut h| {
            let ttl = h.ttl();
            h.set_ttl_update_checksum(ttl.wrapping_sub(1));
            true
        }),
        ethertype::IPV6 => Ipv6Header::new_mut(f, lay.l3).is_some_and(|mut h| {
            let hops = h.hop_limit();
            h.set_hop_limit(hops.wrapping_sub(1));
            true
        }),
        _ => false,
    }
}

/// Applies a field rewrite. False when the frame lacks the header (left unchanged).
pub fn set_field<F: Frame + ?Sized>(frame: &mut F, sf: &SetField) -> bool {
    let partial = frame.l4_csum_partial();
    let f = frame.data_mut();
    match *sf {
        SetField::EthDst(m) => ethernet::set_dst(f, m),
        SetField::EthSrc(m) => ethernet::set_src(f, m),
        SetField::VlanVid(_) | SetField::VlanPcp(_) => {
            let Some(mut tag) = VlanTag::new_mut(f, ethernet::ADDRS_LEN) else {
                return false;
            };
            if !is_vlan_tpid(tag.tpid()) {
                return false;
            }
            let tci = tag.tci();
            let tci = match *sf {
                SetField::VlanVid(v) => (tci & !0x0fff) | (v & 0x0fff),
                SetField::VlanPcp(p) => (tci & 0x1fff) | (((p & 7) as u16) << 13),
                _ => unreachable!("matched VLAN fields above"),
            };
            tag.set_tci(tci);
            true
        }
        SetField::Ipv4Src(a) | SetField::Ipv4Dst(a) => {
            let Some(lay) = layout(f) else { return false };
            if lay.eth_type != ethertype::IPV4 {
                return false;
            }
            let Some(mut h) = Ipv4Header::new_mut(f, lay.l3) else {
                return false;
            };
            let old = if matches!(sf, SetField::Ipv4Src(_)) {
                h.set_src_update_checksum(a)
            } else {
                h.set_dst_update_checksum(a)
            };
            fix_l4_csum(f, &lay, old, a, true, partial);
            true
        }
        SetField::IpTos(t) => {
            let Some(lay) = layout(f) else { return false };
            match lay.eth_type {
                ethertype::IPV4 => Ipv4Header::new_mut(f, lay.l3).is_some_and(|mut h| {
                    let tos = (h.tos() & 0x03) | (t & 0xfc);
                    h.set_tos_update_checksum(tos);
                    true
                }),
                // Keep the ECN bits.
                ethertype::IPV6 => Ipv6Header::new_mut(f, lay.l3).is_some_and(|mut h| {
                    let tc = (h.traffic_class() & 0x03) | (t & 0xfc);
                    h.set_traffic_class(tc);
                    true
                }),
                _ => false,
            }
        }
        SetField::IpTtl(t) => {
            let Some(lay) = layout(f) else { return false };
            match lay.eth_type {
                ethertype::IPV4 => Ipv4Header::new_mut(f, lay.l3).is_some_and(|mut h| {
                    h.set_ttl_update_checksum(t);
                    true
                }),
                ethertype::IPV6 => Ipv6Header::new_mut(f, lay.l3).is_some_and(|mut h| {
                    h.set_hop_limit(t);
                    true
                }),
                _ => false,
            }
        }
        SetField::TpSrc(p) | SetField::TpDst(p) => {
            let Some(lay) = layout(f) else { return false };
            let Some((l4, proto)) = lay.l4 else {
                return false;
            };
            if !matches!(proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP) {
                return false;
            }
            let Some(mut ports) = Ports::new_mut(f, l4) else {
                return false;
            };
            let old = if matches!(sf, SetField::TpSrc(_)) {
                let old = ports.src_port();
                ports.set_src_port(p);
                old
            } else {
                let old = ports.dst_port();
                ports.set_dst_port(p);
                old
            };
            fix_l4_csum(f, &lay, old as u32, p as u32, false, partial);
            true
        }
        // Tunnel metadata travels beside the packet, not in it (tunnel ports read it).
        SetField::TunId(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow_table::extract;
    use flow_table::testpkt::{Pkt, L3, L4};
    use flow_table::MacAddr;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{EthernetFrame, IpAddress, Ipv4Packet, TcpPacket, UdpPacket};
    use std::net::Ipv4Addr;

    fn read16(f: &[u8], off: usize) -> u16 {
        u16::from_be_bytes([f[off], f[off + 1]])
    }

    fn write16(f: &mut [u8], off: usize, v: u16) {
        f[off..off + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// A frame in a buffer with headroom.
    struct Buf {
        bytes: Vec<u8>,
        head: usize,
    }

    impl Buf {
        fn new(frame: &[u8]) -> Buf {
            let mut bytes = vec![0; 64];
            bytes.extend_from_slice(frame);
            Buf { bytes, head: 64 }
        }
    }

    impl Frame for Buf {
        fn data(&self) -> &[u8] {
            &self.bytes[self.head..]
        }
        fn data_mut(&mut self) -> &mut [u8] {
            &mut self.bytes[self.head..]
        }
        fn push_front(&mut self, n: usize) -> bool {
            if n > self.head {
                return false;
            }
            self.head -= n;
            true
        }
        fn pull_front(&mut self, n: usize) -> bool {
            if n > self.bytes.len() - self.head {
                return false;
            }
            self.head += n;
            true
        }
    }

    fn udp() -> Pkt {
        Pkt::udp4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            1000,
            53,
        )
    }

    fn tcp() -> Pkt {
        let mut p = udp();
        if let L3::Ipv4 { l4, .. } = &mut p.l3 {
            *l4 = L4::Tcp {
                src: 1000,
                dst: 80,
                flags: 0x18,
            };
        }
        p
    }

    /// Checks every checksum of an IPv4 frame with smoltcp.
    fn checksums_ok(f: &[u8]) -> bool {
        let eth = EthernetFrame::new_checked(f).unwrap();
        let mut off = 0;
        let mut payload = eth.payload();
        while u16::from_be_bytes([f[12 + off], f[13 + off]]) == 0x8100 {
            payload = &payload[4..];
            off += 4;
        }
        let ip = Ipv4Packet::new_checked(payload).unwrap();
        if !ip.verify_checksum() {
            return false;
        }
        let (s, d) = (
            IpAddress::Ipv4(ip.src_addr()),
            IpAddress::Ipv4(ip.dst_addr()),
        );
        let _ = ChecksumCapabilities::default();
        match ip.next_header() {
            smoltcp::wire::IpProtocol::Udp => UdpPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(&s, &d),
            smoltcp::wire::IpProtocol::Tcp => TcpPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(&s, &d),
            _ => true,
        }
    }

    #[test]
    fn vlan_push_pop_round_trip() {
        let orig = udp().build();
        let mut b = Buf::new(&orig);
        assert!(push_vlan(&mut b, 0x8100, 0x2000 | 42));
        let k = extract(b.data(), 0);
        assert_eq!(k.vlan_tci & 0xfff, 42);
        assert_eq!(k.eth_type, ethertype::IPV4);
        assert!(set_field(&mut b, &SetField::VlanVid(7)));
        assert!(set_field(&mut b, &SetField::VlanPcp(5)));
        assert_eq!(extract(b.data(), 0).vlan_tci, 0x1000 | (5 << 13) | 7);
        assert!(pop_vlan(&mut b));
        assert_eq!(b.data(), &orig[..]);
        assert!(!pop_vlan(&mut b), "no tag left");
        assert!(!set_field(&mut b, &SetField::VlanVid(1)));
    }

    /// Three tags (a push on a QinQ frame): the IP rewrites still find the header.
    #[test]
    fn rewrites_reach_ip_behind_three_tags() {
        let orig = udp().build();
        let mut b = Buf::new(&orig);
        for tci in [2, 1, 0] {
            assert!(push_vlan(&mut b, 0x8100, tci));
        }
        assert!(set_field(&mut b, &SetField::IpTtl(9)));
        assert!(dec_ttl(b.data_mut()));
        for _ in 0..3 {
            assert!(pop_vlan(&mut b));
        }
        let k = extract(b.data(), 0);
        assert_eq!(k.eth_type, ethertype::IPV4);
        assert_eq!(k.nw_ttl, 8);
    }

    #[test]
    fn push_without_headroom_fails_cleanly() {
        let orig = udp().build();
        let mut b = Buf {
            bytes: orig.clone(),
            head: 0,
        };
        assert!(!push_vlan(&mut b, 0x8100, 1));
        assert_eq!(b.data(), &orig[..]);
    }

    #[test]
    fn ip_and_port_rewrites_keep_checksums_valid() {
        for p in [udp(), tcp(), udp().vlan(3)] {
            let mut b = Buf::new(&p.build());
            assert!(checksums_ok(b.data()));
            let new_src = u32::from(Ipv4Addr::new(192, 168, 77, 1));
            let new_dst = u32::from(Ipv4Addr::new(172, 16, 5, 9));
            for sf in [
                SetField::Ipv4Src(new_src),
                SetField::Ipv4Dst(new_dst),
                SetField::TpSrc(5555),
                SetField::TpDst(8080),
                SetField::IpTos(0xb8),
                SetField::IpTtl(3),
            ] {
                assert!(set_field(&mut b, &sf), "{sf:?}");
                assert!(checksums_ok(b.data()), "{sf:?} broke a checksum");
            }
            assert!(dec_ttl(b.data_mut()));
            assert!(checksums_ok(b.data()));
            let k = extract(b.data(), 0);
            assert_eq!((k.nw_src, k.nw_dst), (new_src, new_dst));
            assert_eq!((k.tp_src, k.tp_dst), (5555, 8080));
            assert_eq!((k.nw_tos, k.nw_ttl), (0xb8, 2));
        }
    }

    #[test]
    fn partial_checksums_follow_addresses_not_ports() {
        // A partial checksum: the pseudo-header sum of the frame, as a sender with offload
        // leaves it. Rewrite, then complete it in software and compare with a fresh build.
        struct Partial(Buf);
        impl Frame for Partial {
            fn data(&self) -> &[u8] {
                self.0.data()
            }
            fn data_mut(&mut self) -> &mut [u8] {
                self.0.data_mut()
            }
            fn push_front(&mut self, n: usize) -> bool {
                self.0.push_front(n)
            }
            fn pull_front(&mut self, n: usize) -> bool {
                self.0.pull_front(n)
            }
            fn l4_csum_partial(&self) -> bool {
                true
            }
        }
        fn pseudo_sum(f: &[u8]) -> u16 {
            // Sum of src, dst, proto and UDP length, folded, not complemented.
            let mut s: u32 = 0;
            for i in (26..34).step_by(2) {
                s += read16(f, 14 + i - 14) as u32;
            }
            s += 17 + read16(f, 38) as u32;
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        }
        let mut f = udp().build();
        let ps = pseudo_sum(&f);
        write16(&mut f, 40, ps);
        let mut b = Partial(Buf::new(&f));
        assert!(set_field(&mut b, &SetField::Ipv4Src(0xc0a8_0101)));
        assert!(set_field(&mut b, &SetField::TpDst(999)));
        let d = b.data().to_vec();
        assert_eq!(
            read16(&d, 40),
            pseudo_sum(&d),
            "still the pseudo-header sum"
        );
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut f = udp().build();
        f[14 + 20 + 6] = 0;
        f[14 + 20 + 7] = 0;
        let mut b = Buf::new(&f);
        assert!(set_field(&mut b, &SetField::TpDst(99)));
        assert_eq!(&b.data()[40..42], &[0, 0]);
    }

    #[test]
    fn mac_rewrites_and_missing_headers() {
        let mut b = Buf::new(&udp().build());
        assert!(set_field(&mut b, &SetField::EthSrc(MacAddr([2; 6]))));
        assert!(set_field(&mut b, &SetField::EthDst(MacAddr([4; 6]))));
        let k = extract(b.data(), 0);
        assert_eq!((k.eth_src.0[0], k.eth_dst.0[0]), (2, 4));
        // ARP has no IP header: rewrites fail and change nothing.
        let arp = Pkt::arp_request(
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        )
        .build();
        let mut b = Buf::new(&arp);
        assert!(!set_field(&mut b, &SetField::Ipv4Dst(1)));
        assert!(!set_field(&mut b, &SetField::TpDst(1)));
        assert!(!dec_ttl(b.data_mut()));
        assert_eq!(b.data(), &arp[..]);
        // Truncated frames never panic.
        for len in 0..arp.len() {
            let mut b = Buf::new(&udp().build()[..len]);
            for sf in [SetField::Ipv4Dst(1), SetField::TpDst(1), SetField::IpTos(4)] {
                let _ = set_field(&mut b, &sf);
            }
            let _ = dec_ttl(b.data_mut());
            let _ = pop_vlan(&mut b);
        }
    }
}
