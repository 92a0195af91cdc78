//! Test-packet builder (feature `testpkt`): describes a frame, writes it with smoltcp's wire
//! views (checksums included), and says which [`FlowKey`] extraction must give for it.
//!
//! Shared by the unit tests, the property tests, the benchmarks and later the datapath tests, so
//! that every test speaks of packets the same way.

use smoltcp::wire::{
    ArpHardware, ArpOperation, ArpPacket, EthernetAddress, EthernetFrame, EthernetProtocol,
    Icmpv4Message, Icmpv4Packet, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UdpPacket,
};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::key::{ethertype, ipproto, FlowKey, FRAG_ANY, FRAG_LATER, VLAN_PRESENT};
use crate::wire::MacAddr;

/// Layer 4 of a test packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    /// UDP with ports and payload length.
    Udp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
        /// Payload bytes after the UDP header.
        payload: usize,
    },
    /// TCP with ports and flags (low 9 bits used).
    Tcp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
        /// TCP flags (FIN=0x01, SYN=0x02, RST=0x04, PSH=0x08, ACK=0x10, URG=0x20, ECE, CWR, NS).
        flags: u16,
    },
    /// ICMP (over IPv4) or ICMPv6 (over IPv6) with type and code.
    Icmp {
        /// Message type.
        ty: u8,
        /// Message code.
        code: u8,
    },
    /// Another protocol number with `len` opaque payload bytes.
    Other {
        /// IP protocol number.
        proto: u8,
        /// Payload length.
        len: usize,
    },
}

/// Layer 3 of a test packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L3 {
    /// IPv4.
    Ipv4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
        /// TOS byte (DSCP << 2 | ECN).
        tos: u8,
        /// TTL.
        ttl: u8,
        /// Fragment offset in 8-byte units (non-zero: a later fragment without L4 header).
        frag_offset: u16,
        /// More-fragments flag.
        more_frags: bool,
        /// Layer 4.
        l4: L4,
    },
    /// IPv6.
    Ipv6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
        /// Traffic class.
        tc: u8,
        /// Hop limit.
        hop: u8,
        /// Flow label (20 bits).
        label: u32,
        /// Layer 4.
        l4: L4,
    },
    /// Ethernet/IPv4 ARP.
    Arp {
        /// Opcode (1 request, 2 reply).
        op: u16,
        /// Sender hardware address.
        sha: [u8; 6],
        /// Sender protocol address.
        spa: Ipv4Addr,
        /// Target hardware address.
        tha: [u8; 6],
        /// Target protocol address.
        tpa: Ipv4Addr,
    },
    /// Any other ethertype with an opaque payload.
    Raw {
        /// Ethertype (≥ 0x0600).
        eth_type: u16,
        /// Payload length.
        len: usize,
    },
}

/// A whole test frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkt {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// VLAN tags, outermost first, as (TPID, TCI); at most two are reflected in the key.
    pub vlans: Vec<(u16, u16)>,
    /// Layer 3.
    pub l3: L3,
}

impl Pkt {
    /// An IPv4/UDP frame.
    pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Pkt {
        Pkt {
            dst: [0x02, 0, 0, 0, 0, 2],
            src: [0x02, 0, 0, 0, 0, 1],
            vlans: vec![],
            l3: L3::Ipv4 {
                src,
                dst,
                tos: 0,
                ttl: 64,
                frag_offset: 0,
                more_frags: false,
                l4: L4::Udp {
                    src: sport,
                    dst: dport,
                    payload: 18,
                },
            },
        }
    }

    /// An IPv6/TCP frame.
    pub fn tcp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, flags: u16) -> Pkt {
        Pkt {
            dst: [0x02, 0, 0, 0, 0, 2],
            src: [0x02, 0, 0, 0, 0, 1],
            vlans: vec![],
            l3: L3::Ipv6 {
                src,
                dst,
                tc: 0,
                hop: 64,
                label: 0,
                l4: L4::Tcp {
                    src: sport,
                    dst: dport,
                    flags,
                },
            },
        }
    }

    /// A broadcast ARP request from `sha`/`spa` asking for `tpa`.
    pub fn arp_request(sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Pkt {
        Pkt {
            dst: [0xff; 6],
            src: sha,
            vlans: vec![],
            l3: L3::Arp {
                op: 1,
                sha,
                spa,
                tha: [0; 6],
                tpa,
            },
        }
    }

    /// The same frame with MAC addresses replaced.
    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Pkt {
        self.src = src;
        self.dst = dst;
        self
    }

    /// The same frame with an 802.1Q tag (TPID 0x8100) added inside any existing tags.
    pub fn vlan(mut self, tci: u16) -> Pkt {
        self.vlans.push((ethertype::VLAN, tci));
        self
    }

    fn l3_len(&self) -> usize {
        fn l4_len(l4: &L4) -> usize {
            match l4 {
                L4::Udp { payload, .. } => 8 + payload,
                L4::Tcp { .. } => 20,
                L4::Icmp { .. } => 8,
                L4::Other { len, .. } => *len,
            }
        }
        match &self.l3 {
            L3::Ipv4 {
                l4, frag_offset, ..
            } => 20 + if *frag_offset != 0 { 8 } else { l4_len(l4) },
            L3::Ipv6 { l4, .. } => 40 + l4_len(l4),
            L3::Arp { .. } => 28,
            L3::Raw { len, .. } => *len,
        }
    }

    /// Writes the frame (no FCS; Ethernet padding to 60 bytes).
    pub fn build(&self) -> Vec<u8> {
        let hdr = 14 + 4 * self.vlans.len();
        let mut buf = vec![0u8; (hdr + self.l3_len()).max(60)];
        let (eth_type, l3) = match &self.l3 {
            L3::Ipv4 { .. } => (ethertype::IPV4, &mut buf[hdr..]),
            L3::Ipv6 { .. } => (ethertype::IPV6, &mut buf[hdr..]),
            L3::Arp { .. } => (ethertype::ARP, &mut buf[hdr..]),
            L3::Raw { eth_type, .. } => (*eth_type, &mut buf[hdr..]),
        };
        self.write_l3(l3);
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        frame.set_dst_addr(EthernetAddress(self.dst));
        frame.set_src_addr(EthernetAddress(self.src));
        let first_type = self.vlans.first().map_or(eth_type, |v| v.0);
        frame.set_ethertype(EthernetProtocol::from(first_type));
        for (i, (_, tci)) in self.vlans.iter().enumerate() {
            let off = 14 + 4 * i;
            let next = self.vlans.get(i + 1).map_or(eth_type, |v| v.0);
            buf[off..off + 2].copy_from_slice(&tci.to_be_bytes());
            buf[off + 2..off + 4].copy_from_slice(&next.to_be_bytes());
        }
        buf
    }

    fn write_l3(&self, buf: &mut [u8]) {
        match &self.l3 {
            L3::Ipv4 {
                src,
                dst,
                tos,
                ttl,
                frag_offset,
                more_frags,
                l4,
            } => {
                let len = self.l3_len();
                let mut ip = Ipv4Packet::new_unchecked(&mut buf[..len]);
                ip.set_version(4);
                ip.set_header_len(20);
                ip.set_dscp(tos >> 2);
                ip.set_ecn(tos & 3);
                ip.set_total_len(len as u16);
                ip.set_ident(0x1234);
                ip.set_more_frags(*more_frags);
                ip.set_frag_offset(frag_offset * 8);
                ip.set_hop_limit(*ttl);
                ip.set_next_header(IpProtocol::from(l4_proto(l4, false)));
                ip.set_src_addr(*src);
                ip.set_dst_addr(*dst);
                ip.fill_checksum();
                if *frag_offset == 0 {
                    write_l4(
                        l4,
                        &mut buf[20..len],
                        &IpAddress::Ipv4(*src),
                        &IpAddress::Ipv4(*dst),
                    );
                }
            }
            L3::Ipv6 {
                src,
                dst,
                tc,
                hop,
                label,
                l4,
            } => {
                let len = self.l3_len();
                let mut ip = Ipv6Packet::new_unchecked(&mut buf[..len]);
                ip.set_version(6);
                ip.set_traffic_class(*tc);
                ip.set_flow_label(*label);
                ip.set_payload_len((len - 40) as u16);
                ip.set_next_header(IpProtocol::from(l4_proto(l4, true)));
                ip.set_hop_limit(*hop);
                ip.set_src_addr(*src);
                ip.set_dst_addr(*dst);
                write_l4(
                    l4,
                    &mut buf[40..len],
                    &IpAddress::Ipv6(*src),
                    &IpAddress::Ipv6(*dst),
                );
            }
            L3::Arp {
                op,
                sha,
                spa,
                tha,
                tpa,
            } => {
                let mut arp = ArpPacket::new_unchecked(&mut buf[..28]);
                arp.set_hardware_type(ArpHardware::Ethernet);
                arp.set_protocol_type(EthernetProtocol::Ipv4);
                arp.set_hardware_len(6);
                arp.set_protocol_len(4);
                arp.set_operation(ArpOperation::from(*op));
                arp.set_source_hardware_addr(sha);
                arp.set_source_protocol_addr(&spa.octets());
                arp.set_target_hardware_addr(tha);
                arp.set_target_protocol_addr(&tpa.octets());
            }
            L3::Raw { .. } => {}
        }
    }

    /// The key [`crate::extract`] must give for this frame received on `in_port`.
    pub fn expected_key(&self, in_port: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = in_port;
        k.eth_dst = MacAddr(self.dst);
        k.eth_src = MacAddr(self.src);
        if let Some((_, tci)) = self.vlans.first() {
            k.vlan_tci = tci | VLAN_PRESENT;
        }
        if let Some((_, tci)) = self.vlans.get(1) {
            k.inner_vlan_tci = tci | VLAN_PRESENT;
        }
        if self.vlans.len() > 2 {
            // A third tag is not parsed: its TPID stands as the ethertype.
            k.eth_type = self.vlans[2].0;
            return k;
        }
        match &self.l3 {
            L3::Ipv4 {
                src,
                dst,
                tos,
                ttl,
                frag_offset,
                more_frags,
                l4,
            } => {
                k.eth_type = ethertype::IPV4;
                k.nw_src = u32::from(*src);
                k.nw_dst = u32::from(*dst);
                k.nw_tos = *tos;
                k.nw_ttl = *ttl;
                k.nw_proto = l4_proto(l4, false);
                if *frag_offset != 0 || *more_frags {
                    k.nw_frag = FRAG_ANY;
                }
                if *frag_offset != 0 {
                    k.nw_frag |= FRAG_LATER;
                } else {
                    expected_l4(l4, &mut k);
                }
            }
            L3::Ipv6 {
                src,
                dst,
                tc,
                hop,
                label,
                l4,
            } => {
                k.eth_type = ethertype::IPV6;
                k.ipv6_src = src.octets();
                k.ipv6_dst = dst.octets();
                k.nw_tos = *tc;
                k.nw_ttl = *hop;
                k.ipv6_label = label & 0xf_ffff;
                k.nw_proto = l4_proto(l4, true);
                expected_l4(l4, &mut k);
            }
            L3::Arp {
                op,
                sha,
                spa,
                tha,
                tpa,
            } => {
                k.eth_type = ethertype::ARP;
                if *op <= 0xff {
                    k.nw_proto = *op as u8;
                }
                k.arp_sha = MacAddr(*sha);
                k.arp_tha = MacAddr(*tha);
                k.nw_src = u32::from(*spa);
                k.nw_dst = u32::from(*tpa);
            }
            L3::Raw { eth_type, .. } => k.eth_type = *eth_type,
        }
        k
    }
}

fn l4_proto(l4: &L4, v6: bool) -> u8 {
    match l4 {
        L4::Udp { .. } => ipproto::UDP,
        L4::Tcp { .. } => ipproto::TCP,
        L4::Icmp { .. } if v6 => ipproto::ICMPV6,
        L4::Icmp { .. } => ipproto::ICMP,
        L4::Other { proto, .. } => *proto,
    }
}

fn expected_l4(l4: &L4, k: &mut FlowKey) {
    match l4 {
        L4::Udp { src, dst, .. } => {
            k.tp_src = *src;
            k.tp_dst = *dst;
        }
        L4::Tcp { src, dst, flags } => {
            k.tp_src = *src;
            k.tp_dst = *dst;
            k.tcp_flags = flags & 0x1ff;
        }
        L4::Icmp { ty, code } => {
            k.tp_src = *ty as u16;
            k.tp_dst = *code as u16;
        }
        L4::Other { .. } => {}
    }
}

fn write_l4(l4: &L4, buf: &mut [u8], src: &IpAddress, dst: &IpAddress) {
    match l4 {
        L4::Udp {
            src: sp, dst: dp, ..
        } => {
            let len = buf.len() as u16;
            let mut udp = UdpPacket::new_unchecked(buf);
            udp.set_src_port(*sp);
            udp.set_dst_port(*dp);
            udp.set_len(len);
            udp.fill_checksum(src, dst);
        }
        L4::Tcp {
            src: sp,
            dst: dp,
            flags,
        } => {
            let mut tcp = TcpPacket::new_unchecked(buf);
            tcp.set_src_port(*sp);
            tcp.set_dst_port(*dp);
            tcp.set_header_len(20);
            tcp.set_fin(flags & 0x01 != 0);
            tcp.set_syn(flags & 0x02 != 0);
            tcp.set_rst(flags & 0x04 != 0);
            tcp.set_psh(flags & 0x08 != 0);
            tcp.set_ack(flags & 0x10 != 0);
            tcp.set_urg(flags & 0x20 != 0);
            tcp.set_ece(flags & 0x40 != 0);
            tcp.set_cwr(flags & 0x80 != 0);
            tcp.set_ns(flags & 0x100 != 0);
            tcp.set_window_len(65535);
            tcp.fill_checksum(src, dst);
        }
        L4::Icmp { ty, code } => {
            let mut icmp = Icmpv4Packet::new_unchecked(buf);
            icmp.set_msg_type(Icmpv4Message::from(*ty));
            icmp.set_msg_code(*code);
            icmp.fill_checksum();
        }
        L4::Other { .. } => {}
    }
}
