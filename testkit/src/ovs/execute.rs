//! Executes Open vSwitch datapath actions ([`OdpAction`]) on a frame's bytes, as a datapath
//! does: each output sends a copy of the frame as the actions before it left it.
//!
//! Header offsets are found once, on the frame as received, and moved by the VLAN pushes and
//! pops, as a datapath keeps them; rewrites update the checksums that cover the rewritten bytes
//! incrementally (RFC 1624): the IPv4 header checksum, and the TCP, UDP or ICMP checksum for
//! ports, ICMP type and code, and the addresses of the pseudo-header. A UDP checksum of zero
//! ("none") stays zero, and one that the update makes zero is written as `0xffff`.
//!
//! As Open vSwitch's datapath does (checked against its real output, `tests/ovs.rs`), the
//! transport header is taken to start right after the IP header even in a later IPv4
//! fragment: an address rewrite there also "updates" the bytes where a TCP or UDP checksum
//! would be, which are payload.

use super::odp::{Header, OdpAction, SetField, Unsupported};
use crate::packet::{checksum, Layout, VLAN_TPIDS};

/// A copy of the frame sent to a datapath port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpOutput {
    pub odp_port: u32,
    pub frame: Vec<u8>,
}

/// Runs `actions` on `frame`; returns the copies in the order they were sent.
pub fn execute(actions: &[OdpAction], frame: &[u8]) -> Result<Vec<DpOutput>, Unsupported> {
    let mut p = Packet {
        b: frame.to_vec(),
        l: Layout::parse(frame),
    };
    let mut out = Vec::new();
    for a in actions {
        match a {
            OdpAction::Output(port) => out.push(DpOutput {
                odp_port: *port,
                frame: p.b.clone(),
            }),
            OdpAction::PushVlan { tpid, tci } => {
                // The action's CFI bit says "a tag is present"; the frame's DEI bit is 0.
                let mut tag = tpid.to_be_bytes().to_vec();
                tag.extend_from_slice(&(tci & !0x1000).to_be_bytes());
                p.b.splice(12..12, tag);
                p.shift(4);
            }
            OdpAction::PopVlan => {
                let tpid = p.b.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]));
                if p.b.len() >= 18 && tpid.is_some_and(|t| VLAN_TPIDS.contains(&t)) {
                    p.b.drain(12..16);
                    p.shift(-4);
                }
            }
            OdpAction::Set(h, fields) => p.set(*h, fields, a)?,
            OdpAction::Controller(_) => {}
        }
    }
    Ok(out)
}

/// The frame being worked on and where its headers are.
struct Packet {
    b: Vec<u8>,
    l: Layout,
}

impl Packet {
    /// Moves the offsets behind the Ethernet addresses by `by` bytes (a tag pushed or popped).
    fn shift(&mut self, by: isize) {
        let mv = |o: &mut Option<usize>| *o = o.map(|x| x.wrapping_add_signed(by));
        mv(&mut self.l.l3);
        mv(&mut self.l.l4);
        mv(&mut self.l.after_ip);
    }

    fn set(&mut self, h: Header, fields: &[SetField], a: &OdpAction) -> Result<(), Unsupported> {
        let missing = |what: &str| Unsupported(format!("{a:?} on a frame without {what}"));
        let (l3, proto) = (self.l.l3, self.l.proto);
        let ethertype = self.l.ethertype;
        let base = match h {
            Header::Eth => 0,
            Header::Ipv4 if ethertype == 0x0800 => l3.ok_or_else(|| missing("IPv4"))?,
            Header::Ipv6 if ethertype == 0x86dd => l3.ok_or_else(|| missing("IPv6"))?,
            Header::Arp if ethertype == 0x0806 => l3.ok_or_else(|| missing("ARP"))?,
            Header::Ipv4 | Header::Ipv6 | Header::Arp => return Err(missing("that header")),
            Header::Tcp | Header::Udp | Header::Icmp | Header::Icmpv6 => {
                let want = match h {
                    Header::Tcp => 6,
                    Header::Udp => 17,
                    Header::Icmp => 1,
                    _ => 58,
                };
                match self.l.after_ip {
                    Some(_) if proto != want => return Err(missing("that transport header")),
                    // A datapath rewrites what it has room for, and nothing in a frame too
                    // short.
                    Some(t) if self.b.len() >= t + l4_len(proto) => t,
                    _ => return Ok(()),
                }
            }
        };
        let len = match h {
            Header::Eth => 12,
            Header::Ipv4 => 20,
            Header::Ipv6 => 40,
            Header::Arp => 28,
            _ => 4,
        };
        let old = self.b[base..base + len].to_vec();
        for f in fields {
            self.write(h, base, f);
        }
        let new = self.b[base..base + len].to_vec();
        if old == new {
            return Ok(());
        }
        match h {
            Header::Ipv4 => {
                self.update_csum(base + 10, &old, &new, false);
                if old[12..20] != new[12..20] && proto != 1 {
                    self.update_l4(&old[12..20], &new[12..20]);
                }
            }
            Header::Ipv6 if old[8..40] != new[8..40] => self.update_l4(&old[8..40], &new[8..40]),
            Header::Tcp | Header::Udp | Header::Icmp | Header::Icmpv6 => self.update_l4(&old, &new),
            _ => {}
        }
        Ok(())
    }

    /// Writes one field under its mask.
    fn write(&mut self, h: Header, base: usize, f: &SetField) {
        let masked = |old: u8, i: usize| (old & !f.mask[i]) | (f.value[i] & f.mask[i]);
        // The bits of IPv6's first word: version 4, traffic class 8, flow label 20.
        let bits = |shift: u32, width: u32| {
            let v = f.value.iter().fold(0u32, |a, &x| a << 8 | u32::from(x));
            let m = f.mask.iter().fold(0u32, |a, &x| a << 8 | u32::from(x));
            let m = (m & ((1 << width) - 1)) << shift;
            (v << shift & m, m)
        };
        let at = match (h, f.name) {
            (Header::Ipv6, "tclass" | "label") => {
                let (v, m) = if f.name == "tclass" {
                    bits(20, 8)
                } else {
                    bits(0, 20)
                };
                let w = &mut self.b[base..base + 4];
                let word = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                w.copy_from_slice(&((word & !m) | v).to_be_bytes());
                return;
            }
            (Header::Eth, "dst") => 0,
            (Header::Eth, _) => 6,
            (Header::Ipv4, "tos") => 1,
            (Header::Ipv4, "ttl") => 8,
            (Header::Ipv4, "proto") => 9,
            (Header::Ipv4, "src") => 12,
            (Header::Ipv4, _) => 16,
            (Header::Ipv6, "proto") => 6,
            (Header::Ipv6, "hlimit") => 7,
            (Header::Ipv6, "src") => 8,
            (Header::Ipv6, _) => 24,
            (Header::Arp, "op") => 6,
            (Header::Arp, "sha") => 8,
            (Header::Arp, "sip") => 14,
            (Header::Arp, "tha") => 18,
            (Header::Arp, _) => 24,
            (_, "src" | "type") => 0,
            (_, "code") => 1,
            (_, _) => 2,
        };
        for i in 0..f.value.len() {
            self.b[base + at + i] = masked(self.b[base + at + i], i);
        }
    }

    /// Updates the checksum at `at` for covered bytes `old` becoming `new`; `udp` keeps a zero
    /// checksum zero and never writes zero.
    fn update_csum(&mut self, at: usize, old: &[u8], new: &[u8], udp: bool) {
        let c = u16::from_be_bytes([self.b[at], self.b[at + 1]]);
        if udp && c == 0 {
            return;
        }
        let mut c = checksum::update(c, old, new);
        if udp && c == 0 {
            c = 0xffff;
        }
        self.b[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// Updates the transport checksum, if there is one, for covered bytes (of the header or
    /// the pseudo-header) `old` becoming `new`.
    fn update_l4(&mut self, old: &[u8], new: &[u8]) {
        let Some(t) = self.l.after_ip else { return };
        if self.b.len() < t + l4_len(self.l.proto) {
            return;
        }
        match self.l.proto {
            6 => self.update_csum(t + 16, old, new, false),
            17 => self.update_csum(t + 6, old, new, true),
            1 | 58 => self.update_csum(t + 2, old, new, false),
            _ => {}
        }
    }
}

/// The length of the transport header a datapath needs to find before touching it.
fn l4_len(proto: u8) -> usize {
    match proto {
        6 => 20,
        17 => 8,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovs::odp::parse;
    use crate::packet::build::{Fragment, Frame, Ipv4, Ipv6, L3, L4};
    use crate::packet::{diff, unhex};

    fn run(actions: &str, frame: &[u8]) -> Vec<DpOutput> {
        execute(&parse(actions).unwrap(), frame).unwrap()
    }

    fn udp(frag: Fragment, csum: bool) -> Vec<u8> {
        let mut b = Frame {
            dst: [0xff; 6],
            src: [2, 0, 0, 0, 0, 1],
            tags: vec![],
            l3: L3::Ipv4(Ipv4 {
                src: [10, 0, 0, 1],
                dst: [10, 0, 0, 2],
                tos: 0,
                ttl: 64,
                id: 1,
                frag,
                l4: L4::Udp {
                    src: 1000,
                    dst: 2000,
                    payload: b"abcd".to_vec(),
                },
            }),
        }
        .to_bytes();
        if !csum {
            b[40..42].copy_from_slice(&[0, 0]);
        }
        b
    }

    /// The trace of the first OVS experiment, and the two frames a real OVS sent to p4 for it
    /// (read back from the dummy port's tx_pcap).
    #[test]
    fn a_recorded_ovs_trace_gives_the_frames_ovs_sent() {
        // A hand-made frame: no UDP checksum, a wrong IPv4 checksum (0xf9c8, not 0x66ca),
        // 14 bytes of padding. OVS updates the wrong checksum incrementally, as we do.
        let frame = unhex(
            "ffffffffffff020000000001080045000020000100004011f9c80a0000010a00000203e807d0000c0000\
             616263640000000000000000000000000000",
        )
        .unwrap();
        let out = run(
            "set(ipv4(src=1.2.3.4,tos=0x8/0xfc)),set(udp(dst=99)),2,push_vlan(vid=5,pcp=0),3,\
             set(eth(src=01:80:c2:00:00:01)),set(ipv4(ttl=7)),pop_vlan,4,\
             push_vlan(tpid=0x88a8,vid=0,pcp=3),1,set(eth(dst=00:00:00:00:00:09)),4,100,2,3",
            &frame,
        );
        let ports: Vec<u32> = out.iter().map(|o| o.odp_port).collect();
        assert_eq!(ports, [2, 3, 4, 1, 4, 100, 2, 3]);
        let p4 = unhex(
            "ffffffffffff0180c2000001080045080020000100000711 38bc 01020304 0a000002 03e80063000c0000 6162 6364 0000000000000000000000000000",
        )
        .unwrap();
        assert_eq!(out[2].frame, p4, "{:?}", diff(&out[2].frame, &p4));
        let p4b = unhex(
            "0000000000090180c200000188a86000080045080020000100000711 38bc 01020304 0a000002 03e80063000c0000 6162 6364 0000000000000000000000000000",
        )
        .unwrap();
        assert_eq!(out[4].frame, p4b, "{:?}", diff(&out[4].frame, &p4b));
        assert_eq!(out[1].frame.len(), frame.len() + 4);
    }

    #[test]
    fn rewrites_keep_checksums_right() {
        for (actions, frame) in [
            (
                "set(ipv4(src=9.9.9.9,dst=1.1.1.1)),1",
                udp(Fragment::No, true),
            ),
            (
                "set(ipv4(ttl=3,tos=0xfc/0xfc)),set(udp(src=1,dst=2)),1",
                udp(Fragment::No, true),
            ),
            (
                "push_vlan(vid=1,pcp=2),set(ipv4(dst=8.8.8.8)),1",
                udp(Fragment::No, true),
            ),
        ] {
            let out = run(actions, &frame);
            let f = &out[0].frame;
            assert_eq!(Layout::parse(f).l4_checksum_ok(f), Some(true), "{actions}");
            assert_eq!(Layout::parse(f).ip_checksum_ok(f), Some(true), "{actions}");
        }
        // No UDP checksum stays none.
        let out = run("set(udp(dst=7)),1", &udp(Fragment::No, false));
        assert_eq!(out[0].frame[40..42], [0, 0]);
    }

    /// A later fragment and the frames a real OVS sent for it: the IPv4 source rewrite also
    /// changed the payload bytes where a UDP checksum would be (0x171d -> 0x171e).
    #[test]
    fn a_later_fragment_gets_its_payload_changed_as_ovs_does() {
        let frame = unhex(
            "020000000004020000000001080045030022 38c5 2008 0211 4bf9 0a000002 0a000001 \
             01bb1f90000e 171d 9680a8cf7417",
        )
        .unwrap();
        let sent = unhex(
            "020000000004020000000001080045030022 38c5 2008 0211 4bfa 0a000001 0a000001 \
             01bb1f90000e 171e 9680a8cf7417",
        )
        .unwrap();
        let out = run("set(ipv4(src=10.0.0.1)),100,1,2,3", &frame);
        assert_eq!(out.len(), 4);
        assert!(
            out.iter().all(|o| o.frame == sent),
            "{:?}",
            diff(&out[0].frame, &sent)
        );
    }

    #[test]
    fn ipv6_fields_and_icmp() {
        let frame = Frame {
            dst: [2, 0, 0, 0, 0, 2],
            src: [2, 0, 0, 0, 0, 1],
            tags: vec![(0x8100, 0x0003)],
            l3: L3::Ipv6(Ipv6 {
                src: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                dst: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                tclass: 0x03,
                label: 0xabcde,
                hlimit: 64,
                l4: L4::Icmp {
                    kind: 128,
                    code: 0,
                    payload: vec![0, 1, 0, 2],
                },
            }),
        }
        .to_bytes();
        let out = run(
            "set(ipv6(tclass=0x20/0xfc,hlimit=1)),pop_vlan,set(icmpv6(type=129)),\
             set(ipv6(src=2001:db8::9)),7",
            &frame,
        );
        let f = &out[0].frame;
        let l = Layout::parse(f);
        assert!(l.tags.is_empty());
        let n = l.l3.unwrap();
        assert_eq!(
            &f[n..n + 4],
            &[0x62, 0x3a, 0xbc, 0xde],
            "class 0x23, label kept"
        );
        assert_eq!(f[n + 7], 1);
        assert_eq!(f[l.l4.unwrap()], 129);
        assert_eq!(l.l4_checksum_ok(f), Some(true));
    }
}
