//! Tests of software UDP segmentation: super-datagrams built as Linux hands them over with
//! `UDP_SEGMENT`, segments checked with smoltcp's parsers and checksum code.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use smoltcp::wire::UdpPacket;

use super::*;
use crate::batch::PacketBatch;
use crate::checksum::{fold, ones_sum, pseudo_v4, pseudo_v6};
use crate::gso::tests::{
    big_pool, check_headers, headers, partial_checksum, payload_bytes, DST4, DST6, SRC4, SRC6,
};
use crate::gso::{for_each_burst, segment, GsoError, GsoStats, Segmenter};
use crate::{Packet, PacketPool, PoolConfig, BATCH_SIZE};

const SPORT: u16 = 4433;
const DPORT: u16 = 51820;

/// What to build.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) v6: bool,
    pub(crate) vlans: usize,
    /// Bytes of IPv4 options (multiple of 4).
    pub(crate) ip_opts: usize,
    /// Payload bytes per datagram (`gso_size`).
    pub(crate) seg: u16,
}

impl Spec {
    fn l3(&self) -> usize {
        14 + 4 * self.vlans
    }
    fn l4(&self) -> usize {
        self.l3() + if self.v6 { 40 } else { 20 + self.ip_opts }
    }
}

/// A UDP super-datagram as the Linux stack leaves it for a device with USO: IP and UDP lengths
/// covering the whole frame, a valid IPv4 header checksum, the UDP checksum field holding the
/// folded pseudo-header sum, and the virtio-net header `virtio_net_hdr_from_skb` makes.
pub(crate) fn super_datagram(s: Spec, payload: &[u8]) -> (Vec<u8>, VnetHdr) {
    let udp_len = 8 + payload.len();
    let mut f = headers(s.v6, s.vlans, 200, s.ip_opts, 17, udp_len);
    let l4 = f.len();
    assert_eq!(l4, s.l4());
    f.extend_from_slice(&SPORT.to_be_bytes());
    f.extend_from_slice(&DPORT.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&partial_checksum(s.v6, 17, udp_len).to_be_bytes());
    f.extend_from_slice(payload);
    let h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_UDP_L4,
        hdr_len: (l4 + 8) as u16,
        gso_size: s.seg,
        csum_start: l4 as u16,
        csum_offset: 6,
    };
    (f, h)
}

fn packet(pool: &mut PacketPool, frame: &[u8], h: VnetHdr) -> Packet {
    let mut p = pool.alloc().unwrap();
    assert!(p.set_data(frame));
    p.vnet = Some(h);
    p.in_port = 7;
    p
}

/// Checks every datagram with smoltcp and the rules of segmentation; returns the concatenated
/// payloads.
fn check_segments(s: Spec, frame: &[u8], segs: &[Packet]) -> Vec<u8> {
    let (l3, l4) = (s.l3(), s.l4());
    let n = segs.len();
    let mut joined = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        let d = seg.data();
        assert_eq!(seg.vnet, None, "segment {i}: vnet cleared");
        assert_eq!(seg.in_port, 7, "segment {i}: in_port kept");
        let (udp_bytes, src, dst) = check_headers(d, frame, (l3, l4), s.v6, i);
        let udp = UdpPacket::new_checked(udp_bytes).expect("UDP header");
        assert_eq!(
            udp.len() as usize,
            udp_bytes.len(),
            "segment {i}: UDP length"
        );
        assert_ne!(udp.checksum(), 0, "segment {i}: UDP checksum present");
        assert!(udp.verify_checksum(&src, &dst), "segment {i}: UDP checksum");
        assert_eq!((udp.src_port(), udp.dst_port()), (SPORT, DPORT));
        let plen = udp.payload().len();
        assert!(plen <= s.seg as usize, "segment {i}: payload ≤ gso_size");
        if i + 1 < n {
            assert_eq!(plen, s.seg as usize, "segment {i}: full size");
        }
        joined.extend_from_slice(udp.payload());
    }
    joined
}

/// Segments a datagram built from `s` and `payload`, checks the result and the pool, frees.
fn run(pool: &mut PacketPool, s: Spec, payload: &[u8]) -> usize {
    let start = pool.available();
    let (frame, h) = super_datagram(s, payload);
    let p = packet(pool, &frame, h);
    let mut segs = Vec::new();
    let n = segment(p, pool, &mut |seg| segs.push(seg)).unwrap();
    assert_eq!(n, segs.len());
    assert_eq!(n, payload.len().div_ceil(s.seg as usize).max(1), "count");
    let joined = check_segments(s, &frame, &segs);
    assert!(joined == payload, "payloads concatenate to the original");
    for seg in segs {
        pool.free(seg);
    }
    assert_eq!(pool.available(), start, "every buffer back in the pool");
    n
}

fn spec(v6: bool, vlans: usize, seg: u16) -> Spec {
    Spec {
        v6,
        vlans,
        ip_opts: 0,
        seg,
    }
}

#[test]
fn ipv4_last_segment_shorter() {
    let mut pool = big_pool(64);
    assert_eq!(
        run(&mut pool, spec(false, 0, 1200), &payload_bytes(24_500)),
        21
    );
}

#[test]
fn ipv6_even_and_shorter_last() {
    let mut pool = big_pool(64);
    assert_eq!(
        run(&mut pool, spec(true, 0, 1232), &payload_bytes(1232 * 40)),
        40
    );
    assert_eq!(
        run(&mut pool, spec(true, 0, 1232), &payload_bytes(60_001)),
        49
    );
}

#[test]
fn vlan_tags_and_ip_options() {
    let mut pool = big_pool(64);
    let s = Spec {
        ip_opts: 12,
        ..spec(false, 1, 1000)
    };
    assert_eq!(run(&mut pool, s, &payload_bytes(10_001)), 11);
    assert_eq!(
        run(&mut pool, spec(true, 2, 1400), &payload_bytes(14_000)),
        10
    );
}

#[test]
fn single_segment_is_fixed_in_place() {
    let mut one = big_pool(1);
    for v6 in [false, true] {
        assert_eq!(run(&mut one, spec(v6, 1, 1400), &payload_bytes(1400)), 1);
        assert_eq!(run(&mut one, spec(v6, 0, 1400), &[]), 1);
    }
}

/// A datagram whose checksum comes out as zero is sent with 0xffff (RFC 768; IPv6 forbids a
/// zero UDP checksum).
#[test]
fn zero_checksum_is_sent_as_all_ones() {
    let mut pool = big_pool(4);
    for v6 in [false, true] {
        let s = spec(v6, 0, 1400);
        // Two payload bytes chosen so that the whole sum is 0xffff: the checksum is then 0.
        let mut payload = payload_bytes(100);
        payload[98..].fill(0);
        let (frame, _) = super_datagram(s, &payload);
        let mut f = frame.clone();
        let l4 = s.l4();
        f[l4 + 6..l4 + 8].fill(0);
        let pseudo = if v6 {
            pseudo_v6(&SRC6, &DST6, 17, 108)
        } else {
            pseudo_v4(&SRC4, &DST4, 17, 108)
        };
        let fix = !fold(pseudo + ones_sum(&f[l4..]));
        payload[98..].copy_from_slice(&fix.to_be_bytes());
        let (frame, h) = super_datagram(s, &payload);
        let mut segs = Vec::new();
        let p = packet(&mut pool, &frame, h);
        assert_eq!(segment(p, &mut pool, &mut |p| segs.push(p)), Ok(1));
        let d = segs[0].data();
        assert_eq!(&d[l4 + 6..l4 + 8], &[0xff, 0xff]);
        check_segments(s, &frame, &segs);
        pool.free(segs.pop().unwrap());
    }
    assert_eq!(pool.available(), 4);
}

#[test]
fn pool_exhaustion_leaks_nothing() {
    // 10 segments needed, 1 buffer holds the frame, 5 others free.
    let mut pool = big_pool(6);
    let (frame, h) = super_datagram(spec(false, 0, 1000), &payload_bytes(10_000));
    let p = packet(&mut pool, &frame, h);
    let mut made = 0;
    let r = segment(p, &mut pool, &mut |seg: Packet| {
        made += 1;
        let _ = seg.into_raw();
    });
    assert_eq!(
        r,
        Err(GsoError::PoolExhausted {
            needed: 10,
            available: 5
        })
    );
    assert_eq!(made, 0, "all or nothing");
    assert_eq!(pool.available(), 6);
}

#[test]
fn segmenter_exhausted_midway_leaks_nothing() {
    let mut pool = big_pool(12);
    let (frame, h) = super_datagram(spec(true, 0, 1000), &payload_bytes(10_000));
    let p = packet(&mut pool, &frame, h);
    let mut seg = Segmenter::new(p, &mut pool).unwrap();
    assert_eq!(seg.segments(), 10);
    // The caller takes buffers behind the segmenter's back.
    let stolen: Vec<Packet> = (0..pool.available() - 3)
        .map(|_| pool.alloc().unwrap())
        .collect();
    let mut out = Vec::new();
    let err = loop {
        match seg.next_segment(&mut pool) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => panic!("cannot finish"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, GsoError::PoolExhausted { .. }));
    assert_eq!((out.len(), seg.remaining()), (3, 0));
    assert!(seg.next_segment(&mut pool).unwrap().is_none());
    seg.finish(&mut pool);
    for p in out.into_iter().chain(stolen) {
        pool.free(p);
    }
    assert_eq!(pool.available(), 12);
}

#[test]
fn segment_larger_than_buffer_is_refused() {
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 8,
        ..PoolConfig::default()
    })
    .unwrap();
    let room = pool.data_room();
    let (frame, h) = super_datagram(spec(false, 0, 2100), &payload_bytes(2120));
    let mut p = pool.alloc().unwrap();
    assert!(p.adjust_head(-(p.headroom() as isize)));
    assert!(p.set_data(&frame));
    p.vnet = Some(h);
    let r = segment(p, &mut pool, &mut |p: Packet| {
        let _ = p.into_raw();
        panic!("nothing may be sent");
    });
    assert_eq!(
        r,
        Err(GsoError::SegmentTooLarge {
            needed: 42 + 2100,
            room
        })
    );
    assert_eq!(pool.available(), 8);
}

#[test]
fn refuses_what_it_cannot_segment() {
    let mut pool = big_pool(8);
    let (frame, h) = super_datagram(spec(false, 0, 500), &payload_bytes(2000));
    let try_seg = |pool: &mut PacketPool, f: &[u8], h: Option<VnetHdr>| {
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(f));
        p.vnet = h;
        segment(p, pool, &mut |p: Packet| {
            let _ = p.into_raw();
            panic!("nothing may be sent");
        })
    };
    assert_eq!(try_seg(&mut pool, &frame, None), Err(GsoError::NotGso));
    let tcp = VnetHdr {
        gso_type: VnetHdr::GSO_TCPV4,
        ..h
    };
    assert_eq!(
        try_seg(&mut pool, &frame, Some(tcp)),
        Err(GsoError::WrongL4(17))
    );
    let ufo = VnetHdr {
        gso_type: VnetHdr::GSO_UDP,
        ..h
    };
    assert_eq!(try_seg(&mut pool, &frame, Some(ufo)), Err(GsoError::NotGso));
    let zero = VnetHdr { gso_size: 0, ..h };
    assert_eq!(
        try_seg(&mut pool, &frame, Some(zero)),
        Err(GsoError::ZeroGsoSize)
    );
    assert_eq!(
        try_seg(&mut pool, &frame[..40], Some(h)),
        Err(GsoError::Truncated)
    );
    let mut frag = frame.clone();
    frag[14 + 6] |= 0x20; // more fragments
    assert_eq!(try_seg(&mut pool, &frag, Some(h)), Err(GsoError::Fragment));
    let mut tcp_ip = frame.clone();
    tcp_ip[14 + 9] = 6;
    assert_eq!(
        try_seg(&mut pool, &tcp_ip, Some(h)),
        Err(GsoError::WrongL4(6))
    );
    let mut arp = frame.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(
        try_seg(&mut pool, &arp, Some(h)),
        Err(GsoError::UnsupportedEtherType(0x0806))
    );
    let (mut ext, h6) = super_datagram(spec(true, 0, 500), &payload_bytes(2000));
    ext[14 + 6] = 0; // hop-by-hop options header
    assert_eq!(
        try_seg(&mut pool, &ext, Some(h6)),
        Err(GsoError::WrongL4(0))
    );
    assert_eq!(pool.available(), 8);
}

/// The shared transmit path: UDP GSO packets are segmented beside TCP ones and plain frames,
/// in order and in bursts, and counted with them; a port that takes USO gets them whole.
#[test]
fn for_each_burst_segments_udp_gso() {
    let mut pool = big_pool(128);
    let start = pool.available();
    let mut batch = PacketBatch::new();
    let (f4, h4) = super_datagram(spec(false, 1, 1200), &payload_bytes(24_500)); // 21
    let (f6, h6) = super_datagram(spec(true, 0, 1000), &payload_bytes(40_000)); // 40
    let mut p = pool.alloc().unwrap();
    assert!(p.set_data(&f4[..100]));
    p.in_port = 100;
    batch.push(p).unwrap();
    let mut p = packet(&mut pool, &f4, h4);
    p.in_port = 101;
    batch.push(p).unwrap();
    let mut p = packet(&mut pool, &f6, h6);
    p.in_port = 102;
    batch.push(p).unwrap();
    // UDP GSO over a TCP packet: dropped.
    let mut bad = f4.clone();
    bad[18 + 9] = 6;
    batch.push(packet(&mut pool, &bad, h4)).unwrap();
    let mut bursts = Vec::new();
    let mut ports = Vec::new();
    let st = for_each_burst(
        &mut batch,
        &mut pool,
        |_| false,
        |pool, burst| {
            bursts.push(burst.len());
            for p in burst.drain() {
                assert_eq!(p.vnet, None);
                ports.push(p.in_port);
                pool.free(p);
            }
        },
    );
    assert_eq!(
        st,
        GsoStats {
            segmented: 2,
            segments: 61,
            csums: 0,
            dropped: 1
        }
    );
    assert!(bursts.iter().all(|&n| n <= BATCH_SIZE), "{bursts:?}");
    let mut want = vec![100];
    want.extend([101; 21]);
    want.extend([102; 40]);
    assert_eq!(ports, want, "order kept");
    assert_eq!(pool.available(), start);

    // A port that takes USO gets the packet as it is.
    batch.push(packet(&mut pool, &f6, h6)).unwrap();
    let mut seen = Vec::new();
    let st = for_each_burst(&mut batch, &mut pool, is_udp_gso, |_, burst| {
        seen.extend(burst.iter().map(|p| (p.vnet, p.len())));
    });
    assert_eq!(st, GsoStats::default());
    assert_eq!(seen, vec![(Some(h6), f6.len())]);
    assert_eq!(pool.available(), start);
}

#[test]
fn kernel_release_comparison() {
    assert!(release_at_least("6.18.44-fc-v1300\n", (6, 2)));
    assert!(release_at_least("6.2.0", (6, 2)));
    assert!(!release_at_least("6.1.90-generic", (6, 2)));
    assert!(!release_at_least("5.19.0", (6, 2)));
    assert!(release_at_least("7.0", (6, 2)));
    assert!(!release_at_least("", (6, 2)));
    assert!(!release_at_least("garbage", (6, 2)));
}

#[test]
fn proptest_payloads_concatenate_to_the_original() {
    // One pool for all cases (64 KB buffers are costly to map per case); it must come back full
    // after each (`run` checks).
    let pool = std::cell::RefCell::new(big_pool(160));
    let cases = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    let strategy = (
        0usize..=65_000,
        400u16..=9000,
        any::<bool>(),
        0usize..=2,
        0usize..=2,
    );
    runner
        .run(&strategy, |(len, seg, v6, vlans, opts)| {
            let s = Spec {
                v6,
                vlans,
                ip_opts: if v6 { 0 } else { 4 * opts },
                seg,
            };
            let n = run(&mut pool.borrow_mut(), s, &payload_bytes(len));
            prop_assert_eq!(n, len.div_ceil(seg as usize).max(1));
            cases.set(cases.get() + 1);
            Ok(())
        })
        .unwrap();
    assert!(cases.get() >= 256, "{} cases ran", cases.get());
}
