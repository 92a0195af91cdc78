//! Software UDP segmentation (USO) for output ports that cannot take it.
//!
//! A sender using `UDP_SEGMENT` (QUIC stacks, WireGuard, `iperf3 --udp-gso`-like tools) writes
//! one UDP "super-datagram" that stands for many datagrams of `gso_size` payload bytes each (the
//! last one shorter). On a device with `tx-udp-segmentation` (veth, a tap with `TUN_F_USO4/6`)
//! it reaches the switch whole, with a [`VnetHdr`] of `gso_type` [`VnetHdr::GSO_UDP_L4`] and
//! `gso_size` the payload per datagram. A port that cannot carry that (AF_XDP, AF_PACKET without
//! vnet headers, VXLAN, a guest without `GUEST_USO4/6`) sends the datagrams instead, made here
//! the way the Linux stack makes them for a device without USO: each repeats the
//! Ethernet/VLAN/IP/UDP headers with the IPv4 total length (or IPv6 payload length) and the UDP
//! length fitted, the IPv4 identification advanced by one per datagram, the header checksum
//! redone and the UDP checksum computed in full. A computed UDP checksum of zero goes out as
//! `0xffff` (zero means "no checksum", which IPv6 does not allow). Unlike TCP nothing else
//! changes from one segment to the next.
//!
//! Frames handled and refused are as for TCP ([`gso`](super)): Ethernet with up to two VLAN
//! tags, IPv4 (options allowed, not a fragment) or IPv6 without extension headers, then UDP;
//! header positions come from the frame, not from `hdr_len`/`csum_start`, and the incoming UDP
//! checksum (a partial pseudo-header sum) is ignored. Segments are built into pool buffers, with
//! no allocation.

use std::sync::OnceLock;

use flow_table::key::{ethertype, ipproto};
use flow_table::wire::ethernet::{self, is_vlan_tpid, EthernetHeader, TagBody};
use flow_table::wire::l4::udp;
use flow_table::wire::{ipv4, ipv6, Ipv4Header, Ipv6Header};

use super::{GsoError, GsoStats, MAX_VLAN_TAGS};
use crate::checksum::{checksum, fold, ones_sum, pseudo_v4, pseudo_v6};
use crate::packet::{Packet, VnetHdr};
use crate::pool::PacketPool;

/// True if `h` asks for UDP segmentation (`GSO_UDP_L4`; the older UFO, `GSO_UDP`, is not it).
#[inline]
pub fn is_udp_gso(h: &VnetHdr) -> bool {
    h.gso_type & !VnetHdr::GSO_ECN == VnetHdr::GSO_UDP_L4
}

/// Whether the running kernel takes `GSO_UDP_L4` in the virtio-net header of a frame written
/// to a tap or an AF_PACKET socket: `virtio_net_hdr_to_skb` knows it from Linux 6.2 on and
/// refuses it (`EINVAL`, a transmit error) before. Read once.
pub(crate) fn kernel_takes_uso() -> bool {
    static TAKES: OnceLock<bool> = OnceLock::new();
    *TAKES.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        release_at_least(&release, (6, 2))
    })
}

/// Whether kernel release string `r` ("6.18.44-...") is at least `want` (major, minor).
fn release_at_least(r: &str, want: (u32, u32)) -> bool {
    let mut it = r
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= want,
        _ => false,
    }
}

/// What a kernel tap or AF_PACKET socket with virtio-net headers takes as it is: every offload,
/// except UDP segmentation on kernels that predate it ([`kernel_takes_uso`]).
pub(crate) fn kernel_takes(h: &VnetHdr) -> bool {
    !is_udp_gso(h) || kernel_takes_uso()
}

/// Where the headers of a UDP super-datagram are, and what segments derive theirs from.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Offset of the IP header.
    l3: usize,
    /// Offset of the UDP header.
    l4: usize,
    v6: bool,
    /// Payload bytes after the UDP header.
    payload: usize,
    /// Payload bytes per segment (`gso_size`).
    seg: usize,
    ip_id: u16,
}

impl Layout {
    fn parse(d: &[u8], h: &VnetHdr) -> Result<Layout, GsoError> {
        if !is_udp_gso(h) {
            return Err(GsoError::NotUdpGso);
        }
        if h.gso_size == 0 {
            return Err(GsoError::ZeroGsoSize);
        }
        let eth = EthernetHeader::new(d, 0).ok_or(GsoError::Truncated)?;
        let mut l3 = ethernet::HEADER_LEN;
        let mut et = eth.ethertype();
        for _ in 0..MAX_VLAN_TAGS {
            if !is_vlan_tpid(et) {
                break;
            }
            et = TagBody::new(d, l3).ok_or(GsoError::Truncated)?.ethertype();
            l3 += ethernet::TAG_LEN;
        }
        let (v6, l4, ip_id) = match et {
            ethertype::IPV4 => {
                let ip = Ipv4Header::new(d, l3).ok_or(GsoError::Truncated)?;
                let ihl = ip.header_len();
                if ip.version() != 4 || ihl < ipv4::HEADER_LEN {
                    return Err(GsoError::BadIpHeader);
                }
                if ip.is_fragment() {
                    return Err(GsoError::Fragment);
                }
                if ip.protocol() != ipproto::UDP {
                    return Err(GsoError::NotUdp(ip.protocol()));
                }
                (false, l3 + ihl, ip.ident())
            }
            ethertype::IPV6 => {
                let ip = Ipv6Header::new(d, l3).ok_or(GsoError::Truncated)?;
                if ip.version() != 6 {
                    return Err(GsoError::BadIpHeader);
                }
                if ip.next_header() != ipproto::UDP {
                    return Err(GsoError::NotUdp(ip.next_header()));
                }
                (true, l3 + ipv6::HEADER_LEN, 0)
            }
            other => return Err(GsoError::UnsupportedEtherType(other)),
        };
        let hdr = l4 + udp::HEADER_LEN;
        if d.len() < hdr {
            return Err(GsoError::Truncated);
        }
        Ok(Layout {
            l3,
            l4,
            v6,
            payload: d.len() - hdr,
            seg: h.gso_size as usize,
            ip_id,
        })
    }

    /// End of the UDP header: the bytes repeated on every segment.
    fn hdr(&self) -> usize {
        self.l4 + udp::HEADER_LEN
    }

    /// Number of segments (at least one, even for an empty datagram).
    fn segments(&self) -> usize {
        self.payload.div_ceil(self.seg).max(1)
    }

    /// Payload bytes of segment `i`.
    fn seg_payload(&self, i: usize) -> usize {
        (self.payload - i * self.seg).min(self.seg)
    }

    /// Rewrites the headers at the front of `f` (headers then payload, `f.len()` the whole
    /// segment) for segment `i`, with both checksums computed in full.
    fn fix_headers(&self, f: &mut [u8], i: usize) {
        const CHECKED: &str = "headers checked by Layout::parse";
        let (l3, l4) = (self.l3, self.l4);
        let udp_len = f.len() - l4;
        let pseudo = if self.v6 {
            let mut ip = Ipv6Header::new_mut(f, l3).expect(CHECKED);
            ip.set_payload_len(udp_len as u16);
            pseudo_v6(ip.src(), ip.dst(), ipproto::UDP, udp_len as u32)
        } else {
            let total = (f.len() - l3) as u16;
            let mut ip = Ipv4Header::new_mut(f, l3).expect(CHECKED);
            ip.set_total_len(total);
            ip.set_ident(self.ip_id.wrapping_add(i as u16));
            ip.set_checksum(0);
            let (src, dst) = (ip.src_bytes(), ip.dst_bytes());
            let csum = checksum(&f[l3..l4]);
            Ipv4Header::new_mut(f, l3)
                .expect(CHECKED)
                .set_checksum(csum);
            pseudo_v4(&src, &dst, ipproto::UDP, udp_len as u32)
        };
        let len_at = l4 + udp::field::LENGTH;
        let csum_at = l4 + udp::field::CHECKSUM;
        f[len_at..len_at + 2].copy_from_slice(&(udp_len as u16).to_be_bytes());
        f[csum_at..csum_at + 2].fill(0);
        let csum = match !fold(pseudo + ones_sum(&f[l4..])) {
            0 => 0xffff,
            c => c,
        };
        f[csum_at..csum_at + 2].copy_from_slice(&csum.to_be_bytes());
    }
}

/// Splits one UDP GSO packet into its datagrams step by step, as
/// [`Segmenter`](super::Segmenter) does for TCP (same contract: [`new`](Self::new) checks the
/// pool has a buffer per segment, [`finish`](Self::finish) gives the original back).
#[must_use = "call finish() to give the original buffer back to the pool"]
#[derive(Debug)]
pub struct UdpSegmenter {
    /// The super-datagram (taken as the only segment when there is just one).
    orig: Option<Packet>,
    layout: Layout,
    next: usize,
    n: usize,
}

impl UdpSegmenter {
    /// Checks that `pkt` is a UDP GSO frame this module handles and that the pool can take its
    /// segments. On error `pkt` has been freed into `pool`.
    pub fn new(pkt: Packet, pool: &mut PacketPool) -> Result<UdpSegmenter, GsoError> {
        let parsed = match pkt.vnet {
            Some(h) => Layout::parse(pkt.data(), &h),
            None => Err(GsoError::NotUdpGso),
        };
        let layout = match parsed {
            Ok(l) => l,
            Err(e) => {
                pool.free(pkt);
                return Err(e);
            }
        };
        let n = layout.segments();
        // A single segment is rewritten in the original buffer; otherwise each gets its own.
        if n > 1 {
            let needed = layout.hdr() + layout.seg;
            let room = pool.data_room();
            if needed > room {
                pool.free(pkt);
                return Err(GsoError::SegmentTooLarge { needed, room });
            }
            let available = pool.available();
            if available < n {
                pool.free(pkt);
                return Err(GsoError::PoolExhausted {
                    needed: n,
                    available,
                });
            }
        }
        Ok(UdpSegmenter {
            orig: Some(pkt),
            layout,
            next: 0,
            n,
        })
    }

    /// Total number of segments this packet makes.
    pub fn segments(&self) -> usize {
        self.n
    }

    /// Segments not yet returned by [`next_segment`](Self::next_segment).
    pub fn remaining(&self) -> usize {
        self.n - self.next
    }

    /// Builds the next datagram: a complete frame with `vnet` `None` and the original's
    /// `in_port` and tunnel metadata; `Ok(None)` when all are made. Fails with
    /// [`GsoError::PoolExhausted`] only if the caller took buffers from the pool since
    /// [`new`](Self::new) (the rest of the packet is then lost).
    pub fn next_segment(&mut self, pool: &mut PacketPool) -> Result<Option<Packet>, GsoError> {
        let i = self.next;
        if i >= self.n {
            return Ok(None);
        }
        let l = self.layout;
        if self.n == 1 {
            let Some(mut p) = self.orig.take() else {
                return Ok(None);
            };
            self.next = 1;
            l.fix_headers(p.data_mut(), 0);
            p.vnet = None;
            return Ok(Some(p));
        }
        let Some(orig) = self.orig.as_ref() else {
            return Ok(None);
        };
        let Some(mut seg) = pool.alloc() else {
            self.next = self.n;
            return Err(GsoError::PoolExhausted {
                needed: self.n - i,
                available: 0,
            });
        };
        self.next += 1;
        let (hdr, plen) = (l.hdr(), l.seg_payload(i));
        let from = hdr + i * l.seg;
        let src = orig.data();
        // `new` checked hdr + seg against the data room, so this always fits.
        seg.set_len(hdr + plen);
        let f = seg.data_mut();
        f[..hdr].copy_from_slice(&src[..hdr]);
        f[hdr..].copy_from_slice(&src[from..from + plen]);
        l.fix_headers(f, i);
        seg.in_port = orig.in_port;
        seg.tun = orig.tun;
        Ok(Some(seg))
    }

    /// Gives the original buffer back to the pool (if it was not itself the only segment).
    pub fn finish(mut self, pool: &mut PacketPool) {
        if let Some(p) = self.orig.take() {
            pool.free(p);
        }
    }
}

/// Segments a UDP GSO packet: passes each datagram, in order, to `out` and returns how many
/// there were; all or nothing, as [`gso::segment`](super::segment) for TCP.
pub fn segment(
    pkt: Packet,
    pool: &mut PacketPool,
    out: &mut impl FnMut(Packet),
) -> Result<usize, GsoError> {
    let mut n = 0;
    segment_each(pkt, pool, &mut GsoStats::default(), |_, seg| {
        out(seg);
        n += 1;
    })
    .map(|()| n)
}

/// The UDP arm of [`for_each_burst`](super::for_each_burst): segments `pkt`, passing the pool
/// and each datagram to `push` (which may send a burst with the pool), and adds to `st`.
pub(super) fn segment_each(
    pkt: Packet,
    pool: &mut PacketPool,
    st: &mut GsoStats,
    mut push: impl FnMut(&mut PacketPool, Packet),
) -> Result<(), GsoError> {
    let mut s = match UdpSegmenter::new(pkt, pool) {
        Ok(s) => s,
        Err(e) => {
            st.dropped += 1;
            return Err(e);
        }
    };
    st.segmented += 1;
    let mut r = Ok(());
    loop {
        match s.next_segment(pool) {
            Ok(Some(seg)) => {
                st.segments += 1;
                push(pool, seg);
            }
            Ok(None) => break,
            Err(e) => {
                st.dropped += 1;
                r = Err(e);
                break;
            }
        }
    }
    s.finish(pool);
    r
}

#[cfg(test)]
pub(crate) mod tests;
