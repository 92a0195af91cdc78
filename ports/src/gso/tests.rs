//! Tests of software segmentation: super-frames built the way Linux hands them over, segments
//! checked with smoltcp's parsers and checksum code (independent of the code under test). The
//! frame builders are shared with the ports' transmit tests.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use smoltcp::wire::{IpAddress, Ipv4Packet, Ipv6Packet, TcpPacket};

use super::*;
use crate::checksum::{fold, ones_sum, pseudo_v4, pseudo_v6};
use crate::{PoolConfig, BATCH_SIZE};
use flow_table::wire::l4::tcp::{CWR as TCP_CWR, FIN as TCP_FIN, PSH as TCP_PSH};

pub(crate) const SRC4: [u8; 4] = [192, 168, 7, 1];
pub(crate) const DST4: [u8; 4] = [192, 168, 7, 2];
pub(crate) const SRC6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub(crate) const DST6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub(crate) const IP_ID: u16 = 0xfffe; // wraps during segmentation
const SEQ: u32 = 0xffff_f000; // wraps too
const ACK: u8 = 0x10;

/// A pool whose buffers take a whole 64 KB super-frame.
pub(crate) fn big_pool(n: usize) -> PacketPool {
    PacketPool::new(PoolConfig {
        n_buffers: n,
        data_room: 65_536 + 256,
        ..PoolConfig::default()
    })
    .unwrap()
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) v6: bool,
    pub(crate) vlans: usize,
    /// Bytes of IPv4 options (multiple of 4).
    pub(crate) ip_opts: usize,
    pub(crate) flags: u8,
    pub(crate) mss: u16,
}

impl Spec {
    fn l3(&self) -> usize {
        14 + 4 * self.vlans
    }
    fn l4(&self) -> usize {
        self.l3() + if self.v6 { 40 } else { 20 + self.ip_opts }
    }
}

pub(crate) fn payload_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Ethernet (with `vlans` tags, VIDs from `vid0`, outer ones 802.1ad) and IP headers for a
/// `proto` payload of `l4_len` bytes, as the Linux stack writes them for an offloading device:
/// lengths covering the payload, DF, TTL 64, [`IP_ID`], a valid IPv4 header checksum and
/// `ip_opts` bytes of options (NOPs, then end-of-list).
pub(crate) fn headers(
    v6: bool,
    vlans: usize,
    vid0: u16,
    ip_opts: usize,
    proto: u8,
    l4_len: usize,
) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for t in 0..vlans {
        let tpid: u16 = if t + 1 < vlans { 0x88a8 } else { 0x8100 };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(vid0 + t as u16).to_be_bytes());
    }
    let l3 = f.len();
    if v6 {
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&SRC6);
        f.extend_from_slice(&DST6);
    } else {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let l3 = l3 + 2;
        let ihl = 20 + ip_opts;
        f.push(0x40 | (ihl / 4) as u8);
        f.push(0);
        f.extend_from_slice(&((ihl + l4_len) as u16).to_be_bytes());
        f.extend_from_slice(&IP_ID.to_be_bytes());
        f.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]); // DF, TTL 64, checksum 0
        f.extend_from_slice(&SRC4);
        f.extend_from_slice(&DST4);
        let start = f.len();
        f.resize(start + ip_opts, 1);
        if ip_opts > 0 {
            *f.last_mut().unwrap() = 0;
        }
        let c = !fold(ones_sum(&f[l3..l3 + ihl]));
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    f
}

/// The folded, uncomplemented pseudo-header sum for a `proto` payload of `l4_len` bytes
/// between the test addresses: what a sender with checksum offload leaves in the field.
pub(crate) fn partial_checksum(v6: bool, proto: u8, l4_len: usize) -> u16 {
    fold(if v6 {
        pseudo_v6(&SRC6, &DST6, proto, l4_len as u32)
    } else {
        pseudo_v4(&SRC4, &DST4, proto, l4_len as u32)
    })
}

/// Checks a segment's Ethernet/VLAN and IP headers (copied, lengths fitted, IPv4 header
/// checksum, id advanced by `i`, DF, options copied) against the original `frame`, whose IP
/// and transport headers start at `l3` and `l4`; returns its transport bytes and addresses.
pub(crate) fn check_headers<'a>(
    d: &'a [u8],
    frame: &[u8],
    (l3, l4): (usize, usize),
    v6: bool,
    i: usize,
) -> (&'a [u8], IpAddress, IpAddress) {
    assert_eq!(
        &d[..l3],
        &frame[..l3],
        "segment {i}: Ethernet/VLAN header copied"
    );
    if v6 {
        let ip = Ipv6Packet::new_checked(&d[l3..]).expect("IPv6 header");
        assert_eq!(
            ip.total_len(),
            d.len() - l3,
            "segment {i}: IPv6 payload length"
        );
        (
            ip.payload(),
            IpAddress::from(ip.src_addr()),
            IpAddress::from(ip.dst_addr()),
        )
    } else {
        let ip = Ipv4Packet::new_checked(&d[l3..]).expect("IPv4 header");
        assert!(ip.verify_checksum(), "segment {i}: IPv4 header checksum");
        assert_eq!(
            ip.total_len() as usize,
            d.len() - l3,
            "segment {i}: total length"
        );
        assert_eq!(
            ip.ident(),
            IP_ID.wrapping_add(i as u16),
            "segment {i}: IP id"
        );
        assert!(ip.dont_frag());
        assert_eq!(&d[l3 + 20..l4], &frame[l3 + 20..l4], "IPv4 options copied");
        (
            ip.payload(),
            IpAddress::from(ip.src_addr()),
            IpAddress::from(ip.dst_addr()),
        )
    }
}

/// Builds a TCP super-frame as the Linux stack leaves it for a device with TSO and checksum
/// offload: IP lengths covering the whole frame, a valid IPv4 header checksum, the TCP
/// checksum field holding the folded, uncomplemented pseudo-header sum (with the whole frame's
/// TCP length), and the virtio-net header `virtio_net_hdr_from_skb` would make.
pub(crate) fn super_frame(s: Spec, payload: &[u8]) -> (Vec<u8>, VnetHdr) {
    let tcp_hlen = 32; // with the timestamps option, as Linux sends
    let tcp_len = tcp_hlen + payload.len();
    let mut f = headers(s.v6, s.vlans, 100, s.ip_opts, 6, tcp_len);
    let l4 = f.len();
    assert_eq!(l4, s.l4());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&5201u16.to_be_bytes());
    f.extend_from_slice(&SEQ.to_be_bytes());
    f.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    f.push(((tcp_hlen / 4) as u8) << 4);
    f.push(s.flags);
    f.extend_from_slice(&[0x01, 0xf5, 0, 0, 0, 0]); // window, checksum, urgent
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamps
    f[l4 + 16..l4 + 18].copy_from_slice(&partial_checksum(s.v6, 6, tcp_len).to_be_bytes());
    f.extend_from_slice(payload);
    let h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: if s.v6 {
            VnetHdr::GSO_TCPV6
        } else {
            VnetHdr::GSO_TCPV4
        } | if s.flags & TCP_CWR != 0 {
            VnetHdr::GSO_ECN
        } else {
            0
        },
        hdr_len: (l4 + tcp_hlen) as u16,
        gso_size: s.mss,
        csum_start: l4 as u16,
        csum_offset: 16,
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

/// Checks every segment with smoltcp and the rules of segmentation; returns the concatenated
/// payloads.
fn check_segments(s: Spec, frame: &[u8], segs: &[Packet]) -> Vec<u8> {
    let (l3, l4) = (s.l3(), s.l4());
    let n = segs.len();
    let mut joined = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        let d = seg.data();
        assert_eq!(seg.vnet, None, "segment {i}: vnet cleared");
        assert_eq!(seg.in_port, 7, "segment {i}: in_port kept");
        let (tcp_bytes, src, dst) = check_headers(d, frame, (l3, l4), s.v6, i);
        let tcp = TcpPacket::new_checked(tcp_bytes).expect("TCP header");
        assert!(tcp.verify_checksum(&src, &dst), "segment {i}: TCP checksum");
        let before = joined.len();
        assert_eq!(
            tcp.seq_number().0 as u32,
            SEQ.wrapping_add(before as u32),
            "segment {i}: sequence number"
        );
        let last = i + 1 == n;
        assert_eq!(
            tcp.fin(),
            last && s.flags & TCP_FIN != 0,
            "segment {i}: FIN"
        );
        assert_eq!(
            tcp.psh(),
            last && s.flags & TCP_PSH != 0,
            "segment {i}: PSH"
        );
        assert_eq!(
            tcp.cwr(),
            i == 0 && s.flags & TCP_CWR != 0,
            "segment {i}: CWR"
        );
        assert_eq!(tcp.ack(), s.flags & ACK != 0, "segment {i}: ACK kept");
        assert_eq!(tcp.ack_number().0, 0x1234_5678);
        assert_eq!(tcp.header_len(), 32);
        // Options are repeated unchanged.
        assert_eq!(&d[l4 + 20..l4 + 32], &frame[l4 + 20..l4 + 32]);
        assert!(
            tcp.payload().len() <= s.mss as usize,
            "segment {i}: payload ≤ gso_size"
        );
        if !last {
            assert_eq!(tcp.payload().len(), s.mss as usize, "segment {i}: full MSS");
        }
        joined.extend_from_slice(tcp.payload());
    }
    joined
}

/// Segments a frame built from `s` and `payload`, checks the result and the pool, and frees.
fn run(pool: &mut PacketPool, s: Spec, payload: &[u8]) -> usize {
    let start = pool.available();
    let (frame, h) = super_frame(s, payload);
    let p = packet(pool, &frame, h);
    let mut segs = Vec::new();
    let n = segment(p, pool, &mut |seg| segs.push(seg)).unwrap();
    assert_eq!(n, segs.len());
    assert_eq!(
        n,
        payload.len().div_ceil(s.mss as usize).max(1),
        "segment count"
    );
    let joined = check_segments(s, &frame, &segs);
    assert!(joined == payload, "payloads concatenate to the original");
    for seg in segs {
        pool.free(seg);
    }
    assert_eq!(pool.available(), start, "every buffer back in the pool");
    n
}

const ALL: u8 = ACK | TCP_PSH | TCP_FIN;

#[test]
fn ipv4_fin_psh_only_on_last() {
    let mut pool = big_pool(64);
    let s = Spec {
        v6: false,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 1448,
    };
    assert_eq!(run(&mut pool, s, &payload_bytes(64_000)), 45);
}

#[test]
fn ipv6_fin_psh_only_on_last() {
    let mut pool = big_pool(64);
    let s = Spec {
        v6: true,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 1428,
    };
    assert_eq!(run(&mut pool, s, &payload_bytes(65_000)), 46);
}

#[test]
fn ipv4_with_vlan_tag_and_ip_options() {
    let mut pool = big_pool(64);
    let s = Spec {
        v6: false,
        vlans: 1,
        ip_opts: 8,
        flags: ALL,
        mss: 1000,
    };
    assert_eq!(run(&mut pool, s, &payload_bytes(10_001)), 11);
}

#[test]
fn ipv6_with_two_vlan_tags() {
    let mut pool = big_pool(64);
    let s = Spec {
        v6: true,
        vlans: 2,
        ip_opts: 0,
        flags: ALL,
        mss: 1200,
    };
    assert_eq!(run(&mut pool, s, &payload_bytes(12_000)), 10);
}

#[test]
fn cwr_only_on_first() {
    let mut pool = big_pool(16);
    for v6 in [false, true] {
        let s = Spec {
            v6,
            vlans: 0,
            ip_opts: 0,
            flags: ACK | TCP_CWR | TCP_PSH,
            mss: 1448,
        };
        assert_eq!(run(&mut pool, s, &payload_bytes(5000)), 4);
    }
}

#[test]
fn single_segment_is_fixed_in_place() {
    let mut pool = big_pool(4);
    for v6 in [false, true] {
        let s = Spec {
            v6,
            vlans: 1,
            ip_opts: 0,
            flags: ALL,
            mss: 1448,
        };
        assert_eq!(run(&mut pool, s, &payload_bytes(1448)), 1);
        assert_eq!(run(&mut pool, s, &[]), 1);
    }
    // With a single buffer in the pool: in place needs no other.
    let mut one = big_pool(1);
    let s = Spec {
        v6: false,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 1448,
    };
    assert_eq!(run(&mut one, s, &payload_bytes(100)), 1);
}

#[test]
fn pool_exhaustion_leaks_nothing() {
    // 10 segments needed, 1 buffer holds the frame, 5 others free.
    let mut pool = big_pool(6);
    let s = Spec {
        v6: false,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 1000,
    };
    let (frame, h) = super_frame(s, &payload_bytes(10_000));
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
    let s = Spec {
        v6: true,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 1000,
    };
    let (frame, h) = super_frame(s, &payload_bytes(10_000));
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
    assert_eq!(out.len(), 3);
    assert_eq!(seg.remaining(), 0);
    assert!(seg.next_segment(&mut pool).unwrap().is_none());
    seg.finish(&mut pool);
    for p in out.into_iter().chain(stolen) {
        pool.free(p);
    }
    assert_eq!(pool.available(), 12);
}

#[test]
fn segment_larger_than_buffer_is_refused() {
    // Default buffers: 128 bytes of headroom, 2048 of data room. A frame that also fills the
    // headroom makes segments that would not fit in a fresh buffer's data room.
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 8,
        ..PoolConfig::default()
    })
    .unwrap();
    let room = pool.data_room();
    let s = Spec {
        v6: false,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 2000,
    };
    let (frame, h) = super_frame(s, &payload_bytes(2100));
    assert!(frame.len() > room);
    let mut p = pool.alloc().unwrap();
    assert!(p.adjust_head(-(p.headroom() as isize)));
    assert!(p.set_data(&frame));
    p.vnet = Some(h);
    let mut made = 0;
    let r = segment(p, &mut pool, &mut |p: Packet| {
        made += 1;
        let _ = p.into_raw();
    });
    assert_eq!(
        r,
        Err(GsoError::SegmentTooLarge {
            needed: 66 + 2000,
            room
        })
    );
    assert_eq!(made, 0);
    // The same frame as a single segment (mss above its payload) is fixed in place.
    let mut p = pool.alloc().unwrap();
    assert!(p.adjust_head(-(p.headroom() as isize)));
    assert!(p.set_data(&frame));
    p.in_port = 7;
    p.vnet = Some(VnetHdr {
        gso_size: 2100,
        ..h
    });
    let mut segs = Vec::new();
    assert_eq!(segment(p, &mut pool, &mut |p| segs.push(p)), Ok(1));
    check_segments(Spec { mss: 2100, ..s }, &frame, &segs);
    pool.free(segs.pop().unwrap());
    assert_eq!(pool.available(), 8);
}

#[test]
fn refuses_what_it_cannot_segment() {
    let mut pool = big_pool(8);
    let s = Spec {
        v6: false,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 500,
    };
    let (frame, h) = super_frame(s, &payload_bytes(2000));
    let try_seg = |pool: &mut PacketPool, f: &[u8], h: Option<VnetHdr>| {
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(f));
        p.vnet = h;
        let mut n = 0;
        let r = segment(p, pool, &mut |p: Packet| {
            n += 1;
            let _ = p.into_raw();
        });
        assert_eq!(n, 0);
        r
    };
    assert_eq!(try_seg(&mut pool, &frame, None), Err(GsoError::NotGso));
    let udp = VnetHdr {
        gso_type: VnetHdr::GSO_UDP_L4,
        ..h
    };
    assert_eq!(
        try_seg(&mut pool, &frame, Some(udp)),
        Err(GsoError::WrongL4(6))
    );
    let zero = VnetHdr { gso_size: 0, ..h };
    assert_eq!(
        try_seg(&mut pool, &frame, Some(zero)),
        Err(GsoError::ZeroGsoSize)
    );
    let v6 = VnetHdr {
        gso_type: VnetHdr::GSO_TCPV6,
        ..h
    };
    assert_eq!(
        try_seg(&mut pool, &frame, Some(v6)),
        Err(GsoError::GsoTypeMismatch)
    );
    assert_eq!(
        try_seg(&mut pool, &frame[..40], Some(h)),
        Err(GsoError::Truncated)
    );
    let mut arp = frame.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(
        try_seg(&mut pool, &arp, Some(h)),
        Err(GsoError::UnsupportedEtherType(0x0806))
    );
    let mut frag = frame.clone();
    frag[14 + 6] |= 0x20; // more fragments
    assert_eq!(try_seg(&mut pool, &frag, Some(h)), Err(GsoError::Fragment));
    let mut udp_ip = frame.clone();
    udp_ip[14 + 9] = 17;
    assert_eq!(
        try_seg(&mut pool, &udp_ip, Some(h)),
        Err(GsoError::WrongL4(17))
    );
    let mut three_tags = frame[..12].to_vec();
    for _ in 0..3 {
        three_tags.extend_from_slice(&[0x81, 0x00, 0, 1]);
    }
    three_tags.extend_from_slice(&frame[12..]);
    assert_eq!(
        try_seg(&mut pool, &three_tags, Some(h)),
        Err(GsoError::UnsupportedEtherType(0x8100))
    );
    let s6 = Spec { v6: true, ..s };
    let (mut ext, h6) = super_frame(s6, &payload_bytes(2000));
    ext[14 + 6] = 0; // hop-by-hop options header
    assert_eq!(
        try_seg(&mut pool, &ext, Some(h6)),
        Err(GsoError::WrongL4(0))
    );
    assert_eq!(pool.available(), 8);
}

/// A batch of mixed packets: plain, partial checksum, GSO, and an unsupported GSO frame.
#[test]
fn for_each_burst_splits_into_bursts_in_order() {
    let mut pool = big_pool(200);
    let start = pool.available();
    let mut batch = PacketBatch::new();
    let s4 = Spec {
        v6: false,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 1448,
    };
    let s6 = Spec {
        v6: true,
        vlans: 1,
        ip_opts: 0,
        flags: ALL,
        mss: 1000,
    };
    let (f4, h4) = super_frame(s4, &payload_bytes(60_000)); // 42 segments
    let (f6, h6) = super_frame(s6, &payload_bytes(30_000)); // 30 segments
                                                            // 0: plain
    let mut p = pool.alloc().unwrap();
    assert!(p.set_data(&f4[..200]));
    p.in_port = 100;
    batch.push(p).unwrap();
    // 1: GSO v4
    let mut p = packet(&mut pool, &f4, h4);
    p.in_port = 101;
    batch.push(p).unwrap();
    // 2: partial checksum (a one-segment frame with a partial TCP checksum)
    let (fc, hc) = super_frame(Spec { mss: 1448, ..s4 }, &payload_bytes(1000));
    let mut p = packet(
        &mut pool,
        &fc,
        VnetHdr {
            gso_type: 0,
            gso_size: 0,
            ..hc
        },
    );
    p.in_port = 102;
    batch.push(p).unwrap();
    // 3: UDP GSO: dropped
    let mut p = packet(
        &mut pool,
        &f4,
        VnetHdr {
            gso_type: VnetHdr::GSO_UDP_L4,
            ..h4
        },
    );
    p.in_port = 103;
    batch.push(p).unwrap();
    // 4: GSO v6
    let mut p = packet(&mut pool, &f6, h6);
    p.in_port = 104;
    batch.push(p).unwrap();
    let mut bursts = Vec::new();
    let mut frames: Vec<(u32, Vec<u8>)> = Vec::new();
    let st = for_each_burst(
        &mut batch,
        &mut pool,
        |_| false,
        |pool, burst| {
            bursts.push(burst.len());
            for p in burst.drain() {
                assert_eq!(p.vnet, None);
                frames.push((p.in_port, p.data().to_vec()));
                pool.free(p);
            }
        },
    );
    assert!(batch.is_empty());
    assert_eq!(
        st,
        GsoStats {
            segmented: 2,
            segments: 72,
            csums: 1,
            dropped: 1
        }
    );
    assert!(bursts.iter().all(|&n| n <= BATCH_SIZE), "{bursts:?}");
    assert_eq!(bursts.iter().sum::<usize>(), 1 + 42 + 1 + 30);
    let ports: Vec<u32> = frames.iter().map(|f| f.0).collect();
    let mut want = vec![100];
    want.extend([101; 42]);
    want.push(102);
    want.extend([104; 30]);
    assert_eq!(ports, want, "order kept");
    // The completed checksum verifies.
    let c = &frames[43].1;
    let ip = Ipv4Packet::new_checked(&c[14..]).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.verify_checksum(
        &IpAddress::from(ip.src_addr()),
        &IpAddress::from(ip.dst_addr())
    ));
    assert_eq!(pool.available(), start);
}

#[test]
fn for_each_burst_passes_accepted_offloads_through() {
    let mut pool = big_pool(8);
    let s = Spec {
        v6: false,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 1448,
    };
    let (f, h) = super_frame(s, &payload_bytes(5000));
    let mut batch = PacketBatch::new();
    batch.push(packet(&mut pool, &f, h)).unwrap();
    let mut seen = Vec::new();
    let st = for_each_burst(&mut batch, &mut pool, is_tcp_gso, |pool, burst| {
        // Leave them in the burst: for_each_burst frees what send leaves.
        seen.extend(burst.iter().map(|p| (p.vnet, p.len())));
        let _ = pool;
    });
    assert_eq!(st, GsoStats::default());
    assert_eq!(seen, vec![(Some(h), f.len())]);
    assert_eq!(pool.available(), 8);
}

#[test]
fn for_each_burst_counts_pool_exhaustion_as_dropped() {
    let mut pool = big_pool(5);
    let s = Spec {
        v6: false,
        vlans: 0,
        ip_opts: 0,
        flags: ALL,
        mss: 1000,
    };
    let (f, h) = super_frame(s, &payload_bytes(9000));
    let mut batch = PacketBatch::new();
    batch.push(packet(&mut pool, &f, h)).unwrap();
    let mut sent = 0;
    let st = for_each_burst(
        &mut batch,
        &mut pool,
        |_| false,
        |pool, burst| {
            sent += burst.len();
            pool.free_batch(burst);
        },
    );
    assert_eq!((st.dropped, st.segments, sent), (1, 0, 0));
    assert_eq!(pool.available(), 5);
}

#[test]
fn proptest_payload_and_counts() {
    // One pool for all cases (buffers of 64 KB are costly to map per case); it must come back
    // full after each.
    let pool = std::cell::RefCell::new(big_pool(160));
    let cases = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    let strategy = (
        1usize..=65_000,
        500u16..=9000,
        any::<bool>(),
        0usize..=2,
        any::<u8>(),
    );
    runner
        .run(&strategy, |(len, mss, v6, vlans, flags)| {
            let s = Spec {
                v6,
                vlans,
                ip_opts: if v6 { 0 } else { 4 * (flags as usize % 3) },
                flags,
                mss,
            };
            let payload = payload_bytes(len);
            let n = run(&mut pool.borrow_mut(), s, &payload);
            prop_assert_eq!(n, len.div_ceil(mss as usize));
            cases.set(cases.get() + 1);
            Ok(())
        })
        .unwrap();
    assert!(cases.get() >= 256, "{} cases ran", cases.get());
}
