use super::*;
use crate::key::{ethertype, ipproto};
use crate::testpkt::{Pkt, L3, L4};
use std::net::{Ipv4Addr, Ipv6Addr};

fn v4(l4: L4) -> Pkt {
    Pkt {
        dst: [0x02, 0, 0, 0, 0, 2],
        src: [0x02, 0, 0, 0, 0, 1],
        vlans: vec![],
        l3: L3::Ipv4 {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            tos: 0xb8,
            ttl: 17,
            frag_offset: 0,
            more_frags: false,
            l4,
        },
    }
}

fn check(p: &Pkt) {
    let frame = p.build();
    assert_eq!(extract(&frame, 3), p.expected_key(3), "{p:?}");
}

#[test]
fn ipv4_udp_tcp_icmp() {
    check(&v4(L4::Udp {
        src: 1234,
        dst: 53,
        payload: 10,
    }));
    check(&v4(L4::Tcp {
        src: 40000,
        dst: 80,
        flags: 0x12,
    }));
    check(&v4(L4::Icmp { ty: 8, code: 0 }));
    check(&v4(L4::Other {
        proto: ipproto::SCTP,
        len: 12,
    }));
    let k = extract(
        &v4(L4::Tcp {
            src: 1,
            dst: 80,
            flags: 0x02,
        })
        .build(),
        1,
    );
    assert_eq!(k.tp_dst, 80);
    assert_eq!(k.tcp_flags, 0x02);
    assert_eq!(k.nw_tos, 0xb8);
    assert_eq!(k.nw_ttl, 17);
}

#[test]
fn ipv6_tcp_and_icmpv6() {
    let p = Pkt::tcp6(
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        5555,
        443,
        0x18,
    );
    check(&p);
    let k = extract(&p.build(), 1);
    assert_eq!(k.eth_type, ethertype::IPV6);
    assert_eq!(k.tp_dst, 443);
    let mut icmp = p.clone();
    if let L3::Ipv6 { l4, label, .. } = &mut icmp.l3 {
        *l4 = L4::Icmp { ty: 135, code: 0 };
        *label = 0xabcde;
    }
    check(&icmp);
    assert_eq!(extract(&icmp.build(), 1).nw_proto, ipproto::ICMPV6);
}

#[test]
fn ipv6_extension_headers_and_fragments() {
    let p = Pkt::tcp6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, 1, 2, 0);
    let mut f = p.build();
    // Insert a hop-by-hop header (8 bytes) in front of TCP.
    let l4 = 14 + 40;
    f[14 + 6] = 0; // next header: hop-by-hop
    let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    f.splice(l4..l4, [ipproto::TCP, 0, 1, 4, 0, 0, 0, 0]);
    let k = extract(&f, 1);
    assert_eq!((k.nw_proto, k.tp_src, k.tp_dst), (ipproto::TCP, 1, 2));

    // A first fragment keeps its ports; a later one has none.
    f[l4] = 44; // hop-by-hop's next: fragment header
    f.splice(l4 + 8..l4 + 8, [ipproto::TCP, 0, 0, 1, 0, 0, 0, 9]);
    let plen = plen + 8;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    let k = extract(&f, 1);
    assert_eq!((k.nw_frag, k.tp_dst), (crate::key::FRAG_ANY, 2));
    f[l4 + 8 + 2] = 0x01; // offset 32 bytes
    let k = extract(&f, 1);
    assert_eq!(k.nw_frag, crate::key::FRAG_ANY | crate::key::FRAG_LATER);
    assert_eq!((k.nw_proto, k.tp_dst), (ipproto::TCP, 0));
}

#[test]
fn ipv4_fragments() {
    let mut p = v4(L4::Udp {
        src: 1,
        dst: 2,
        payload: 4,
    });
    if let L3::Ipv4 { more_frags, .. } = &mut p.l3 {
        *more_frags = true;
    }
    check(&p);
    if let L3::Ipv4 { frag_offset, .. } = &mut p.l3 {
        *frag_offset = 10;
    }
    check(&p);
    assert_eq!(extract(&p.build(), 0).tp_dst, 0);
}

#[test]
fn vlan_and_qinq() {
    let p = v4(L4::Udp {
        src: 1,
        dst: 2,
        payload: 0,
    })
    .vlan(0x6000 | 100);
    check(&p);
    let k = extract(&p.build(), 0);
    assert_eq!(k.vlan_tci, 0x6000 | 100 | crate::key::VLAN_PRESENT);
    assert_eq!(k.eth_type, ethertype::IPV4);

    let mut q = p.clone();
    q.vlans[0].0 = ethertype::QINQ;
    let q = q.vlan(200);
    check(&q);
    let k = extract(&q.build(), 0);
    assert_eq!(k.inner_vlan_tci & 0xfff, 200);
    assert_eq!(k.tp_dst, 2);

    // A third tag stops the parse with its TPID as the ethertype.
    check(&q.vlan(300));
}

#[test]
fn arp() {
    let p = Pkt::arp_request(
        [2, 0, 0, 0, 0, 1],
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
    );
    check(&p);
    let k = extract(&p.build(), 0);
    assert_eq!(k.nw_proto, 1);
    assert_eq!(k.nw_dst, u32::from(Ipv4Addr::new(10, 0, 0, 2)));
}

#[test]
fn other_ethertypes_and_llc() {
    check(&Pkt {
        dst: [1; 6],
        src: [2; 6],
        vlans: vec![],
        l3: L3::Raw {
            eth_type: 0x88cc,
            len: 30,
        },
    });
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&46u16.to_be_bytes()); // 802.3 length
    assert_eq!(extract(&f, 0).eth_type, ETH_TYPE_NONE);
}

#[test]
fn truncated_frames_keep_what_could_be_read() {
    let full = v4(L4::Tcp {
        src: 7,
        dst: 8,
        flags: 0x10,
    })
    .vlan(5)
    .build();
    let want = extract(&full, 1);
    for len in 0..full.len() {
        let k = extract(&full[..len], 1);
        // Every field the truncated parse produced is a correct field of the whole frame.
        for f in crate::fields::Field::ALL {
            let v = f.get(&k);
            assert!(
                v == 0 || v == f.get(&want),
                "len {len}: {} = {v:#x}",
                f.name()
            );
        }
        if len >= 12 {
            assert_eq!(k.eth_src, want.eth_src);
        }
        if len >= 18 + 20 {
            assert_eq!(k.nw_dst, want.nw_dst, "len {len}");
        }
        if len >= 18 + 20 + 4 {
            assert_eq!(k.tp_dst, 8, "len {len}");
        }
    }
}

#[test]
fn malformed_headers_stop_the_parse() {
    let mut f = v4(L4::Udp {
        src: 1,
        dst: 2,
        payload: 0,
    })
    .build();
    f[14] = 0x44; // IHL 4 (< 20 bytes)
    let k = extract(&f, 0);
    assert_eq!((k.eth_type, k.nw_dst), (ethertype::IPV4, 0));
    f[14] = 0x4f; // IHL 60: L4 beyond the frame
    let k = extract(&f, 0);
    assert_eq!(k.tp_dst, 0);
    assert_ne!(k.nw_dst, 0);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&10u16.to_be_bytes()); // total length < IHL
    assert_eq!(extract(&f, 0).tp_dst, 0);
    f[14] = 0x65; // version 6 in an IPv4 frame
    assert_eq!(extract(&f, 0).nw_dst, 0);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn l4() -> impl Strategy<Value = L4> {
        prop_oneof![
            (any::<u16>(), any::<u16>(), 0usize..40).prop_map(|(src, dst, payload)| L4::Udp {
                src,
                dst,
                payload
            }),
            (any::<u16>(), any::<u16>(), 0u16..0x200).prop_map(|(src, dst, flags)| L4::Tcp {
                src,
                dst,
                flags
            }),
            (any::<u8>(), any::<u8>()).prop_map(|(ty, code)| L4::Icmp { ty, code }),
        ]
    }

    fn pkt() -> impl Strategy<Value = Pkt> {
        let l3 = prop_oneof![
            (any::<u32>(), any::<u32>(), any::<u8>(), any::<u8>(), l4()).prop_map(
                |(s, d, tos, ttl, l4)| L3::Ipv4 {
                    src: s.into(),
                    dst: d.into(),
                    tos,
                    ttl,
                    frag_offset: 0,
                    more_frags: false,
                    l4
                }
            ),
            (
                any::<u128>(),
                any::<u128>(),
                any::<u8>(),
                0u32..0x10_0000,
                l4()
            )
                .prop_map(|(s, d, tc, label, l4)| L3::Ipv6 {
                    src: s.into(),
                    dst: d.into(),
                    tc,
                    hop: 9,
                    label,
                    l4
                }),
            (1u16..3, any::<[u8; 6]>(), any::<u32>(), any::<u32>()).prop_map(
                |(op, sha, spa, tpa)| L3::Arp {
                    op,
                    sha,
                    spa: spa.into(),
                    tha: [0; 6],
                    tpa: tpa.into()
                }
            ),
        ];
        (
            any::<[u8; 6]>(),
            any::<[u8; 6]>(),
            proptest::collection::vec(any::<u16>(), 0..3),
            l3,
        )
            .prop_map(|(dst, src, tags, l3)| Pkt {
                dst,
                src,
                vlans: tags.into_iter().map(|t| (ethertype::VLAN, t)).collect(),
                l3,
            })
    }

    proptest! {
        #[test]
        fn built_packets_extract_to_their_description(p in pkt(), port in any::<u32>()) {
            prop_assert_eq!(extract(&p.build(), port), p.expected_key(port));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = extract(&bytes, 1);
            prop_assert_eq!(k.in_port, 1);
        }

        #[test]
        fn corrupted_packets_never_panic(p in pkt(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let mut f = p.build();
            for (i, b) in flips {
                let n = f.len();
                f[i % n] ^= b;
            }
            let n = f.len();
            let _ = extract(&f[..cut % (n + 1)], 0);
        }
    }
}

#[test]
fn malformed_frames_are_reported() {
    let good = v4(L4::Udp {
        src: 1,
        dst: 2,
        payload: 4,
    })
    .build();
    let mut key = FlowKey::ZERO;
    assert!(extract_checked(&good, 1, &mut key));
    assert_eq!(key, extract(&good, 1), "same key as extract");
    // Shorter than an Ethernet header.
    assert!(!extract_checked(&good[..10], 1, &mut key));
    // IPv4 header cut off.
    assert!(!extract_checked(&good[..14 + 12], 1, &mut key));
    // IPv4 header length below 20, and a wrong version.
    let mut bad = good.clone();
    bad[14] = 0x43;
    assert!(!extract_checked(&bad, 1, &mut key));
    bad[14] = 0x65;
    assert!(!extract_checked(&bad, 1, &mut key));
    // Total length below the header length.
    let mut bad = good.clone();
    bad[16..18].copy_from_slice(&10u16.to_be_bytes());
    assert!(!extract_checked(&bad, 1, &mut key));
    // A frame of an unknown type, and a bare Ethernet header, are fine.
    let mut other = good[..14].to_vec();
    other[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    assert!(extract_checked(&other, 1, &mut key));
}
