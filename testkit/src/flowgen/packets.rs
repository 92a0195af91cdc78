//! Random test frames and the port they arrive on.

use super::{ipv6_bytes, Config, Rng, HOST_MACS, IPV4S, IPV6S, L4_PORTS, MULTICAST_MACS};
use crate::packet::build::{Arp, Fragment, Frame, Ipv4, Ipv6, L3, L4};

/// A frame and the port it arrives on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestPacket {
    pub in_port: u32,
    pub frame: Vec<u8>,
    /// A short description ("udp4 1q(vid=2) frag=first"), for reports.
    pub what: String,
}

pub(super) fn generate(r: &mut Rng, cfg: &Config) -> TestPacket {
    let in_port = r.range(1, u64::from(cfg.ports)) as u32;
    let dst = match r.weighted(&[(45, 0), (5, 1), (15, 2), (10, 3), (15, 4)]) {
        0 => r.pick(&HOST_MACS),
        1 => [0x0a, 0, 0, 0, 0, 0x05],
        2 => [0xff; 6],
        3 => r.pick(&MULTICAST_MACS),
        _ => [0x01, 0x80, 0xc2, 0, 0, r.below(16) as u8],
    };
    let src = loop {
        let s = match r.below(50) {
            0 => [0x01, 0, 0x5e, 0, 0, 0x09], // a multicast source, which is invalid
            1..=4 => [0x0a, 0, 0, 0, 0, 0x05],
            _ => r.pick(&HOST_MACS),
        };
        // A frame from a host to itself would be learnt by one switch's trace and not the
        // other's (a trace learns in Open vSwitch only); there is nothing to learn from it.
        if s != dst {
            break s;
        }
    };
    let mut what = Vec::new();
    // A TCI with a random priority: VID 0 (a priority tag) or 1-3.
    let tci = |r: &mut Rng, priority_tag: bool| {
        let vid = if priority_tag {
            0
        } else {
            r.range(1, 3) as u16
        };
        (r.below(8) as u16) << 13 | vid
    };
    let tags = match r.weighted(&[(45, 0), (15, 1), (30, 2), (10, 3)]) {
        0 => vec![],
        1 => vec![(0x8100, tci(r, true))],
        2 => vec![(0x8100, tci(r, false))],
        _ => {
            let outer = r.pick(&[0x88a8, 0x8100]);
            vec![(outer, tci(r, false)), (0x8100, tci(r, false))]
        }
    };
    for (tpid, tci) in &tags {
        what.push(format!(
            "{}(vid={},pcp={})",
            if *tpid == 0x88a8 { "ad" } else { "1q" },
            tci & 0xfff,
            tci >> 13
        ));
    }
    let l3 = match r.weighted(&[(45, 0), (25, 1), (20, 2), (10, 3)]) {
        0 => {
            let frag = r.weighted(&[
                (85, Fragment::No),
                (8, Fragment::First),
                (7, Fragment::Later),
            ]);
            let l4 = l4(r, false);
            what.insert(0, format!("{}4", l4_name(&l4)));
            if frag != Fragment::No {
                what.push(format!("frag={frag:?}").to_lowercase());
            }
            L3::Ipv4(Ipv4 {
                src: r.pick(&IPV4S),
                dst: r.pick(&IPV4S),
                tos: r.pick(&[0, 0, 4, 0x10, 0x20, 0xb8, 0x03, 0xff]),
                ttl: r.pick(&[1, 2, 64, 64, 255]),
                id: r.next_u64() as u16,
                frag,
                l4,
            })
        }
        1 => {
            let l4 = l4(r, true);
            what.insert(0, format!("{}6", l4_name(&l4)));
            L3::Ipv6(Ipv6 {
                src: ipv6_bytes(&r.pick(&IPV6S)),
                dst: ipv6_bytes(&r.pick(&IPV6S)),
                tclass: r.pick(&[0, 0, 0x20, 0xb8, 0x03]),
                label: r.pick(&[0, 0x12345]),
                hlimit: r.pick(&[1, 2, 64, 255]),
                l4,
            })
        }
        2 => {
            let op = r.range(1, 2) as u16;
            what.insert(0, format!("arp(op={op})"));
            L3::Arp(Arp {
                op,
                sha: src,
                spa: r.pick(&IPV4S),
                tha: if op == 1 { [0; 6] } else { dst },
                tpa: r.pick(&IPV4S),
            })
        }
        _ => {
            let ethertype = r.pick(&[0x88b5, 0x88cc, 0x9000]);
            what.insert(0, format!("eth_type=0x{ethertype:04x}"));
            let n = r.range(10, 40) as usize;
            L3::Raw(ethertype, r.bytes(n))
        }
    };
    let frame = Frame { dst, src, tags, l3 }.to_bytes();
    what.push(format!(
        "{} > {}",
        crate::packet::mac(&src),
        crate::packet::mac(&dst)
    ));
    TestPacket {
        in_port,
        frame,
        what: what.join(" "),
    }
}

fn l4(r: &mut Rng, v6: bool) -> L4 {
    let payload = {
        let n = r.below(17) as usize;
        r.bytes(n)
    };
    match r.weighted(&[(35, 0), (35, 1), (25, 2), (5, 3)]) {
        0 => L4::Tcp {
            src: r.pick(&L4_PORTS),
            dst: r.pick(&L4_PORTS),
            flags: r.pick(&[0x02, 0x10, 0x12, 0x11, 0x04, 0x18]),
            payload,
        },
        1 => L4::Udp {
            src: r.pick(&L4_PORTS),
            dst: r.pick(&L4_PORTS),
            payload,
        },
        2 => {
            let (kind, code) = match v6 {
                true => r.pick(&[(128, 0), (129, 0), (1, 4), (135, 0)]),
                false => r.pick(&[(8, 0), (0, 0), (3, 1), (11, 0)]),
            };
            let mut p = vec![0x12, 0x34, 0, 1]; // identifier, sequence
            p.extend_from_slice(&payload);
            L4::Icmp {
                kind,
                code,
                payload: p,
            }
        }
        _ => L4::Raw(47, payload),
    }
}

fn l4_name(l4: &L4) -> &'static str {
    match l4 {
        L4::Tcp { .. } => "tcp",
        L4::Udp { .. } => "udp",
        L4::Icmp { .. } => "icmp",
        L4::Raw(..) => "gre",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Layout;

    #[test]
    fn packets_are_well_formed_and_varied() {
        let cfg = Config::default();
        let mut r = Rng::new(3);
        let ps: Vec<TestPacket> = (0..500).map(|_| generate(&mut r, &cfg)).collect();
        for p in &ps {
            let l = Layout::parse(&p.frame);
            assert!(l.checksums_ok(&p.frame), "{}", p.what);
            assert!((1..=cfg.ports).contains(&p.in_port));
            assert_ne!(p.frame[0..6], p.frame[6..12], "{}", p.what);
        }
        for kind in [
            "tcp4",
            "udp6",
            "icmp4",
            "arp",
            "ad(",
            "1q(vid=0",
            "frag=later",
            "eth_type",
        ] {
            assert!(ps.iter().any(|p| p.what.contains(kind)), "no {kind}");
        }
    }
}
