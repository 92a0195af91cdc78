//! Test frames built field by field: Ethernet, up to two VLAN tags, then IPv4, IPv6, ARP or
//! raw bytes, with TCP, UDP, ICMP or ICMPv6 and correct checksums.

use super::checksum;

/// An Ethernet frame to build.
#[derive(Clone, Debug)]
pub struct Frame {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// VLAN tags as (TPID, TCI), outermost first.
    pub tags: Vec<(u16, u16)>,
    pub l3: L3,
}

/// What follows the Ethernet header and its tags.
#[derive(Clone, Debug)]
pub enum L3 {
    Ipv4(Ipv4),
    Ipv6(Ipv6),
    Arp(Arp),
    /// Any other EtherType and its payload.
    Raw(u16, Vec<u8>),
}

/// Where an IPv4 packet sits in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// A whole datagram.
    No,
    /// The first fragment: offset 0, more fragments (it holds the transport header).
    First,
    /// A later fragment: a non-zero offset (no transport header).
    Later,
}

/// An IPv4 header and its payload.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub tos: u8,
    pub ttl: u8,
    pub id: u16,
    pub frag: Fragment,
    pub l4: L4,
}

/// An IPv6 header (no extension headers) and its payload.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub tclass: u8,
    pub label: u32,
    pub hlimit: u8,
    pub l4: L4,
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Clone, Debug)]
pub struct Arp {
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

/// A transport header and its payload.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        src: u16,
        dst: u16,
        flags: u8,
        payload: Vec<u8>,
    },
    Udp {
        src: u16,
        dst: u16,
        payload: Vec<u8>,
    },
    /// ICMP over IPv4, ICMPv6 over IPv6 (echo: identifier and sequence follow).
    Icmp {
        kind: u8,
        code: u8,
        payload: Vec<u8>,
    },
    /// Another protocol number and its bytes.
    Raw(u8, Vec<u8>),
}

impl L4 {
    /// The IP protocol number.
    pub fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } if v6 => 58,
            L4::Icmp { .. } => 1,
            L4::Raw(p, _) => *p,
        }
    }

    /// The header and payload with a zero checksum, and the checksum's offset.
    fn unsummed(&self) -> (Vec<u8>, Option<usize>) {
        match self {
            L4::Tcp {
                src,
                dst,
                flags,
                payload,
            } => {
                let mut b = Vec::with_capacity(20 + payload.len());
                b.extend_from_slice(&src.to_be_bytes());
                b.extend_from_slice(&dst.to_be_bytes());
                b.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // seq
                b.extend_from_slice(&0u32.to_be_bytes()); // ack
                b.extend_from_slice(&[0x50, *flags]); // 5 words, flags
                b.extend_from_slice(&0xffffu16.to_be_bytes()); // window
                b.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
                b.extend_from_slice(payload);
                (b, Some(16))
            }
            L4::Udp { src, dst, payload } => {
                let mut b = Vec::with_capacity(8 + payload.len());
                b.extend_from_slice(&src.to_be_bytes());
                b.extend_from_slice(&dst.to_be_bytes());
                b.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(payload);
                (b, Some(6))
            }
            L4::Icmp {
                kind,
                code,
                payload,
            } => {
                let mut b = vec![*kind, *code, 0, 0];
                b.extend_from_slice(payload);
                (b, Some(2))
            }
            L4::Raw(_, bytes) => (bytes.clone(), None),
        }
    }
}

impl Frame {
    /// The frame's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(&self.dst);
        b.extend_from_slice(&self.src);
        for (tpid, tci) in &self.tags {
            b.extend_from_slice(&tpid.to_be_bytes());
            b.extend_from_slice(&tci.to_be_bytes());
        }
        match &self.l3 {
            L3::Ipv4(ip) => {
                b.extend_from_slice(&0x0800u16.to_be_bytes());
                b.extend_from_slice(&ipv4_bytes(ip));
            }
            L3::Ipv6(ip) => {
                b.extend_from_slice(&0x86ddu16.to_be_bytes());
                b.extend_from_slice(&ipv6_bytes(ip));
            }
            L3::Arp(a) => {
                b.extend_from_slice(&0x0806u16.to_be_bytes());
                b.extend_from_slice(&[0, 1, 0x08, 0, 6, 4]);
                b.extend_from_slice(&a.op.to_be_bytes());
                b.extend_from_slice(&a.sha);
                b.extend_from_slice(&a.spa);
                b.extend_from_slice(&a.tha);
                b.extend_from_slice(&a.tpa);
            }
            L3::Raw(ethertype, payload) => {
                b.extend_from_slice(&ethertype.to_be_bytes());
                b.extend_from_slice(payload);
            }
        }
        b
    }
}

fn ipv4_bytes(ip: &Ipv4) -> Vec<u8> {
    let (mut l4, csum_at) = ip.l4.unsummed();
    if let Some(at) = csum_at {
        let mut s = 0;
        if !matches!(ip.l4, L4::Icmp { .. }) {
            let mut pseudo = Vec::with_capacity(12);
            pseudo.extend_from_slice(&ip.src);
            pseudo.extend_from_slice(&ip.dst);
            pseudo.extend_from_slice(&[0, ip.l4.proto(false)]);
            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            s = checksum::sum(&pseudo, 0);
        }
        let mut c = checksum::finish(checksum::sum(&l4, s));
        if c == 0 && matches!(ip.l4, L4::Udp { .. }) {
            c = 0xffff; // 0 would mean "no checksum"
        }
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let frag: u16 = match ip.frag {
        Fragment::No => 0,
        Fragment::First => 0x2000,     // MF
        Fragment::Later => 0x2000 | 8, // MF, offset 64 bytes
    };
    // A later fragment's bytes are the middle of a datagram; they keep the shape of a
    // transport header, so a switch that wrongly rewrites one there shows it.
    let mut h = vec![0x45, ip.tos];
    h.extend_from_slice(&(20 + l4.len() as u16).to_be_bytes());
    h.extend_from_slice(&ip.id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[ip.ttl, ip.l4.proto(false), 0, 0]);
    h.extend_from_slice(&ip.src);
    h.extend_from_slice(&ip.dst);
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(&l4);
    h
}

fn ipv6_bytes(ip: &Ipv6) -> Vec<u8> {
    let (mut l4, csum_at) = ip.l4.unsummed();
    let proto = ip.l4.proto(true);
    if let Some(at) = csum_at {
        let mut pseudo = Vec::with_capacity(40);
        pseudo.extend_from_slice(&ip.src);
        pseudo.extend_from_slice(&ip.dst);
        pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, proto]);
        let mut c = checksum::finish(checksum::sum(&l4, checksum::sum(&pseudo, 0)));
        if c == 0 && matches!(ip.l4, L4::Udp { .. }) {
            c = 0xffff;
        }
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let word = (6u32 << 28) | (u32::from(ip.tclass) << 20) | (ip.label & 0xf_ffff);
    let mut h = word.to_be_bytes().to_vec();
    h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    h.extend_from_slice(&[proto, ip.hlimit]);
    h.extend_from_slice(&ip.src);
    h.extend_from_slice(&ip.dst);
    h.extend_from_slice(&l4);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{checksum, Layout};

    fn udp4() -> Frame {
        Frame {
            dst: [0xff; 6],
            src: [2, 0, 0, 0, 0, 1],
            tags: vec![],
            l3: L3::Ipv4(Ipv4 {
                src: [10, 0, 0, 1],
                dst: [10, 0, 0, 2],
                tos: 0,
                ttl: 64,
                id: 1,
                frag: Fragment::No,
                l4: L4::Udp {
                    src: 1000,
                    dst: 2000,
                    payload: b"abcd".to_vec(),
                },
            }),
        }
    }

    #[test]
    fn a_udp_datagram_has_the_bytes_a_capture_shows() {
        // The frame of the OVS trace experiments (checksums as tcpdump verified them).
        let hex = "ffffffffffff020000000001080045000020000100004011";
        let b = udp4().to_bytes();
        assert_eq!(crate::packet::hex(&b[..hex.len() / 2]), hex);
        let l = Layout::parse(&b);
        assert!(l.checksums_ok(&b));
        assert_eq!(checksum::checksum(&b[14..34]), 0);
    }

    #[test]
    fn every_kind_has_valid_checksums() {
        let l4s = [
            L4::Tcp {
                src: 80,
                dst: 443,
                flags: 0x02,
                payload: vec![1, 2, 3],
            },
            L4::Udp {
                src: 53,
                dst: 53,
                payload: vec![],
            },
            L4::Icmp {
                kind: 8,
                code: 0,
                payload: vec![0, 1, 0, 1, 9],
            },
        ];
        for l4 in l4s {
            let mut f = udp4();
            f.tags = vec![(0x88a8, 5), (0x8100, 0x2003)];
            if let L3::Ipv4(ip) = &mut f.l3 {
                ip.l4 = l4.clone();
            }
            let b = f.to_bytes();
            assert!(Layout::parse(&b).checksums_ok(&b), "{l4:?} over IPv4");
            f.l3 = L3::Ipv6(Ipv6 {
                src: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                dst: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                tclass: 0x28,
                label: 0x12345,
                hlimit: 2,
                l4: l4.clone(),
            });
            let b = f.to_bytes();
            assert!(Layout::parse(&b).checksums_ok(&b), "{l4:?} over IPv6");
        }
    }
}
