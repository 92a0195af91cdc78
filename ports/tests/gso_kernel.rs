//! Software segmentation ([`ports::gso`]) and checksum completion checked byte for byte against
//! what the Linux kernel made of the same frames.
//!
//! The fixtures in `tests/data/gso/` come from `make-fixtures.sh` there (root, namespaces;
//! see its header): for each variant, `<variant>-before.pcap` holds the frames as a sender
//! hands them to a device with TSO and checksum offload (TCP super-frames longer than the MTU,
//! and single frames, all with the TCP checksum field holding only the pseudo-header sum), and
//! `<variant>-after.pcap` what the kernel's own software GSO and checksum code made of them on
//! the way out of a device without those offloads. This test needs no root: it reads the files.
//!
//! Each frame before is paired with the frames after that cover its TCP sequence range, in
//! order. It gets the virtio-net header a tap or AF_PACKET socket would deliver it with
//! (`NEEDS_CSUM` from the TCP header; for a super-frame `gso_type` TCPV4/TCPV6, the ECN bit
//! when CWR is set, `gso_size` the MSS, taken from the kernel's first segment), goes through
//! [`gso::segment`] (super-frames) or [`Packet::resolve_offloads`] (single frames), and every
//! resulting frame must equal the kernel's, every byte: MACs and tags, IPv4 total length, ID
//! (the kernel advances it by one per segment, as we do; it would keep it only for
//! `SKB_GSO_TCP_FIXEDID` frames, which only GRO makes), header checksum, IPv6 payload length,
//! sequence numbers, flags (FIN and PSH only on the last segment, CWR only on the first),
//! options, payload and TCP checksum. No field is exempted: none differs.

use std::path::{Path, PathBuf};

use ports::gso;
use ports::{Packet, PacketPool, PoolConfig, VnetHdr};
use testkit::ovs::pcap;

const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Where a frame's headers are and what its TCP header says, read with plain offsets
/// (independent of the code under test).
#[derive(Debug, Clone, Copy)]
struct Tcp {
    /// Number of VLAN tags in front of the IP header.
    tags: usize,
    v6: bool,
    l4: usize,
    /// End of the TCP header.
    hdr: usize,
    seq: u32,
    flags: u8,
    payload: usize,
}

fn parse(f: &[u8]) -> Tcp {
    let u16_at = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    let mut l3 = 14;
    let mut et = u16_at(12);
    let mut tags = 0;
    while et == 0x8100 || et == 0x88a8 {
        et = u16_at(l3 + 2);
        l3 += 4;
        tags += 1;
    }
    let (v6, l4) = match et {
        0x0800 => {
            assert_eq!(f[l3 + 9], 6, "IPv4 protocol TCP");
            (false, l3 + usize::from(f[l3] & 0x0f) * 4)
        }
        0x86dd => {
            assert_eq!(f[l3 + 6], 6, "IPv6 next header TCP");
            (true, l3 + 40)
        }
        other => panic!("ethertype {other:#06x} in a fixture"),
    };
    let hdr = l4 + usize::from(f[l4 + 12] >> 4) * 4;
    Tcp {
        tags,
        v6,
        l4,
        hdr,
        seq: u32::from_be_bytes([f[l4 + 4], f[l4 + 5], f[l4 + 6], f[l4 + 7]]),
        flags: f[l4 + 13],
        payload: f.len() - hdr,
    }
}

/// The TCP checksum field of a frame handed over with a partial checksum, as Linux leaves it:
/// the folded, uncomplemented sum of the pseudo-header (with the whole frame's TCP length).
/// The frames of `gso::tests` are built that way; this checks that model against the kernel.
fn partial_checksum(f: &[u8], t: &Tcp) -> u16 {
    let l3 = 14 + 4 * t.tags;
    let tcp_len = (f.len() - t.l4) as u32;
    let addrs = if t.v6 {
        &f[l3 + 8..l3 + 40]
    } else {
        &f[l3 + 12..l3 + 20]
    };
    let mut sum: u32 = addrs
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    sum += 6 + (tcp_len >> 16) + (tcp_len & 0xffff);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn fixture(name: &str) -> Vec<Vec<u8>> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/gso")
        .join(name);
    let frames =
        pcap::read_all(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(!frames.is_empty(), "{} holds no frame", path.display());
    frames
}

fn packet(pool: &mut PacketPool, frame: &[u8], h: VnetHdr) -> Packet {
    let mut p = pool.alloc().expect("a free buffer");
    assert!(p.set_data(frame), "frame of {} bytes fits", frame.len());
    p.vnet = Some(h);
    p
}

/// Asserts `ours == kernel`, naming the first differing byte and its place in the headers.
fn assert_same(ours: &[u8], kernel: &[u8], t: &Tcp, what: &str) {
    if ours == kernel {
        return;
    }
    let at = ours
        .iter()
        .zip(kernel)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(kernel.len()));
    let l3 = 14 + 4 * t.tags;
    let place = match at {
        a if a < l3 => "Ethernet/VLAN header".to_string(),
        a if a < t.l4 => format!("IP header byte {}", a - l3),
        a if a < t.hdr => format!("TCP header byte {}", a - t.l4),
        a => format!("payload byte {}", a - t.hdr),
    };
    let window = |d: &[u8]| {
        let s = at.saturating_sub(4);
        format!("{:02x?}", &d[s..(at + 8).min(d.len())])
    };
    panic!(
        "{what}: ours ({} bytes) and the kernel's ({} bytes) differ first at byte {at} \
         ({place}): ours {} kernel {}",
        ours.len(),
        kernel.len(),
        window(ours),
        window(kernel)
    );
}

/// What one fixture pair held, for the checks of coverage.
#[derive(Debug, Default)]
struct Seen {
    super_frames: usize,
    segments: usize,
    singles: usize,
    /// Super-frames with FIN (and so FIN on their last segment only).
    fin: usize,
    /// Super-frames with PSH.
    psh: usize,
    /// Super-frames with CWR.
    cwr: usize,
    /// VLAN tags on every frame.
    tags: Option<usize>,
}

/// Replays `<variant>-before.pcap` through our code and compares with `<variant>-after.pcap`.
fn check(variant: &str) -> Seen {
    let before = fixture(&format!("{variant}-before.pcap"));
    let after = fixture(&format!("{variant}-after.pcap"));
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 64,
        data_room: 65_536 + 256,
        ..PoolConfig::default()
    })
    .expect("pool");
    let mut seen = Seen::default();
    let mut next = 0; // first frame after not yet paired
    for (i, frame) in before.iter().enumerate() {
        let t = parse(frame);
        assert_eq!(
            *seen.tags.get_or_insert(t.tags),
            t.tags,
            "{variant}: frame {i}: same tags"
        );
        assert_eq!(
            u16::from_be_bytes([frame[t.l4 + 16], frame[t.l4 + 17]]),
            partial_checksum(frame, &t),
            "{variant}: frame {i}: TCP checksum field holds the pseudo-header sum"
        );
        // The kernel's frames for this one: in order, contiguous from its sequence number,
        // covering its payload (one frame for a frame without payload).
        let first = next;
        let mut covered = 0;
        loop {
            let k = after.get(next).unwrap_or_else(|| {
                panic!(
                    "{variant}: frame {i} (seq {}): the kernel's frames end",
                    t.seq
                )
            });
            let kt = parse(k);
            assert_eq!(
                kt.seq,
                t.seq.wrapping_add(covered as u32),
                "{variant}: frame {i}: kernel frame {next} continues its sequence"
            );
            covered += kt.payload;
            next += 1;
            if covered >= t.payload {
                break;
            }
        }
        assert_eq!(covered, t.payload, "{variant}: frame {i}: payload covered");
        let kernel = &after[first..next];
        let mut h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_NONE,
            hdr_len: t.hdr as u16,
            gso_size: 0,
            csum_start: t.l4 as u16,
            csum_offset: 16,
        };
        if kernel.len() == 1 {
            // Sent whole: only the checksum was completed.
            let mut p = packet(&mut pool, frame, h);
            assert!(
                p.resolve_offloads(),
                "{variant}: frame {i}: checksum completed"
            );
            assert_same(p.data(), &kernel[0], &t, &format!("{variant}: frame {i}"));
            pool.free(p);
            seen.singles += 1;
            continue;
        }
        let mss = parse(&kernel[0]).payload;
        for (j, k) in kernel.iter().enumerate() {
            let p = parse(k).payload;
            if j + 1 < kernel.len() {
                assert_eq!(p, mss, "{variant}: frame {i}: kernel segment {j} is full");
            } else {
                assert!(
                    p > 0 && p <= mss,
                    "{variant}: frame {i}: last kernel segment"
                );
            }
        }
        h.gso_type = if t.v6 {
            VnetHdr::GSO_TCPV6
        } else {
            VnetHdr::GSO_TCPV4
        };
        if t.flags & CWR != 0 {
            h.gso_type |= VnetHdr::GSO_ECN;
            seen.cwr += 1;
        }
        h.gso_size = mss as u16;
        seen.fin += usize::from(t.flags & FIN != 0);
        seen.psh += usize::from(t.flags & PSH != 0);
        let mut ours = Vec::new();
        let n = gso::segment(packet(&mut pool, frame, h), &mut pool, &mut |s| {
            ours.push(s)
        })
        .unwrap_or_else(|e| panic!("{variant}: frame {i}: segmenting: {e}"));
        assert_eq!(n, kernel.len(), "{variant}: frame {i}: number of segments");
        assert_eq!(ours.len(), n);
        for (j, (s, k)) in ours.iter().zip(kernel).enumerate() {
            assert_eq!(s.vnet, None);
            assert_same(
                s.data(),
                k,
                &t,
                &format!("{variant}: frame {i} (seq {}), segment {j} of {n}", t.seq),
            );
        }
        for s in ours {
            pool.free(s);
        }
        seen.super_frames += 1;
        seen.segments += n;
    }
    assert_eq!(
        next,
        after.len(),
        "{variant}: every kernel frame paired with one before"
    );
    assert_eq!(pool.available(), 64, "{variant}: every buffer back");
    seen
}

/// IPv4, untagged, from the kernel's TCP end to end: super-frames (one with FIN and PSH) and
/// single frames (SYN, ACKs, MSS-sized data) whose checksum is completed.
#[test]
fn ipv4_segments_equal_the_kernels() {
    let s = check("tcp4");
    assert!(s.super_frames >= 2, "{s:?}");
    assert!(s.singles >= 2, "{s:?}");
    assert!(s.fin >= 1 && s.psh >= 1, "{s:?}");
    assert_eq!(s.tags, Some(0));
}

/// The same over IPv6.
#[test]
fn ipv6_segments_equal_the_kernels() {
    let s = check("tcp6");
    assert!(s.super_frames >= 2, "{s:?}");
    assert!(s.singles >= 2, "{s:?}");
    assert!(s.fin >= 1 && s.psh >= 1, "{s:?}");
    assert_eq!(s.tags, Some(0));
}

/// IPv4 super-frames with an 802.1Q tag (written into a tap; see make-fixtures.sh).
#[test]
fn vlan_tagged_segments_equal_the_kernels() {
    let s = check("tcp4-vlan");
    assert!(s.super_frames >= 2 && s.fin >= 1, "{s:?}");
    assert_eq!(s.tags, Some(1));
}

/// IPv6 super-frames with an 802.1ad and an 802.1Q tag.
#[test]
fn double_tagged_segments_equal_the_kernels() {
    let s = check("tcp6-qinq");
    assert!(s.super_frames >= 2 && s.fin >= 1, "{s:?}");
    assert_eq!(s.tags, Some(2));
}

/// From the kernel's TCP with ECN, CE marked on the way: super-frames with CWR (sent with
/// `SKB_GSO_TCP_ECN`, delivered with the ECN bit), where the kernel keeps CWR on the first
/// segment only, and so must we; and CE-marked super-frames, whose segments all keep the mark.
#[test]
fn cwr_only_on_the_first_segment_as_the_kernel() {
    for variant in ["tcp4-ecn", "tcp6-ecn"] {
        let s = check(variant);
        assert!(s.super_frames >= 2, "{variant}: {s:?}");
        assert!(s.cwr >= 1, "{variant}: a super-frame with CWR: {s:?}");
        assert_eq!(s.tags, Some(0));
    }
}

/// IPv4 super-frames with 8 bytes of options (Record Route, not "copied" on fragmentation):
/// every segment repeats them, as the kernel's do.
#[test]
fn ipv4_options_repeated_as_the_kernel() {
    let s = check("tcp4-ipopts");
    assert!(s.super_frames >= 2 && s.fin >= 1, "{s:?}");
    let first = &fixture("tcp4-ipopts-after.pcap")[0];
    assert_eq!(
        first[14], 0x47,
        "the kernel's segment has a 28-byte IPv4 header"
    );
}
