//! Software segmentation (GSO) of TCP and UDP super-frames, and checksum completion, for output
//! ports that take no offload metadata.
//!
//! A tap or AF_PACKET socket with virtio-net headers (and a vhost-user guest with TSO) hands the
//! switch TCP "super-frames" of up to 64 KB: one Ethernet/IP/TCP header followed by many MSS worth
//! of payload, described by a [`VnetHdr`] with `gso_type` [`VnetHdr::GSO_TCPV4`] or
//! [`VnetHdr::GSO_TCPV6`] and the MSS in `gso_size`. A sender using `UDP_SEGMENT` likewise hands
//! over UDP super-datagrams (`gso_type` [`VnetHdr::GSO_UDP_L4`], `gso_size` the payload of each
//! datagram; see [`udp`] for which kernels take them whole). A port whose wire cannot carry that
//! metadata (AF_XDP, AF_PACKET without vnet headers, a tap with offloads off, VXLAN, a guest
//! without `GUEST_TSO`/`GUEST_USO`) must instead send the frames the super-frame stands for. This
//! module makes them, doing in software what the Linux stack does when a device lacks TSO or
//! USO: each segment repeats the headers with the IPv4 total length (or IPv6 payload length)
//! fitted to its size, the IPv4 identification advanced by one per segment from the original's,
//! the header checksum redone, and the transport checksum computed in full. For TCP the sequence
//! number advances by the payload before the segment, FIN and PSH stay only on the last segment
//! and CWR only on the first. For UDP the length is fitted, and a computed checksum of zero goes
//! out as `0xffff` (zero means "no checksum", which IPv6 does not allow).
//!
//! It is written here rather than taken from a packet library because it runs on the datapath:
//! segments are built straight into [`PacketPool`] buffers, nothing is allocated per packet, and
//! the headers are parsed with only the checks the job needs. Supported: Ethernet with up to two
//! 802.1Q/802.1ad tags, then IPv4 (options allowed, not a fragment) or IPv6 without extension
//! headers, then TCP or UDP as `gso_type` says. Anything else is refused with a [`GsoError`].
//!
//! The header lengths and checksum position are taken from the frame itself, not from the
//! virtio-net header's `hdr_len`/`csum_start` (senders are known to get `hdr_len` wrong), and
//! the transport checksum field's incoming value (a partial pseudo-header sum) is ignored: every
//! segment's checksum is computed from scratch.
//!
//! Entry points: [`segment`] for one packet, [`Segmenter`] to interleave segment building with
//! sending, and [`for_each_burst`], which an output port's `tx_burst` calls to turn a batch into
//! bursts of at most [`BATCH_SIZE`](crate::BATCH_SIZE) frames its wire takes.

use std::fmt;

use crate::batch::PacketBatch;
use flow_table::key::{ethertype, ipproto};
use flow_table::wire::ethernet;
use flow_table::wire::l4::tcp::{self, TcpHeader};
use flow_table::wire::l4::udp as udp_wire;
use flow_table::wire::{ipv4, ipv6, Ipv4Header, Ipv6Header};

use crate::checksum::{checksum, fold, ones_sum, pseudo_v4, pseudo_v6};
use crate::packet::{Packet, VnetHdr};
use crate::pool::PacketPool;

const MAX_VLAN_TAGS: usize = 2;

/// Why a packet could not be segmented. The packet has been freed back to its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoError {
    /// The packet carries no TCP or UDP GSO request (no virtio-net header, `GSO_NONE`, or the
    /// old UFO `GSO_UDP`).
    NotGso,
    /// `gso_size` is zero.
    ZeroGsoSize,
    /// The frame ends inside its headers.
    Truncated,
    /// The Ethernet type (after at most two VLAN tags) is neither IPv4 nor IPv6.
    UnsupportedEtherType(u16),
    /// The IP header is malformed (wrong version, IPv4 header length below 20).
    BadIpHeader,
    /// The L4 protocol (IPv4 protocol or IPv6 next header) is not the one `gso_type` names (TCP
    /// or UDP); IPv6 extension headers land here too.
    WrongL4(u8),
    /// The IPv4 packet is a fragment.
    Fragment,
    /// `gso_type` says TCPv4 and the frame holds IPv6, or the other way round (UDP GSO names no
    /// IP version).
    GsoTypeMismatch,
    /// A segment would not fit in a pool buffer.
    SegmentTooLarge {
        /// Bytes of the largest segment.
        needed: usize,
        /// Bytes of data a pool buffer holds.
        room: usize,
    },
    /// The pool has fewer free buffers than segments to build.
    PoolExhausted {
        /// Buffers the segments need.
        needed: usize,
        /// Buffers free when segmentation was tried.
        available: usize,
    },
}

impl fmt::Display for GsoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GsoError::NotGso => write!(f, "not a TCP or UDP GSO packet"),
            GsoError::ZeroGsoSize => write!(f, "GSO packet with gso_size 0"),
            GsoError::Truncated => write!(f, "frame ends inside its headers"),
            GsoError::UnsupportedEtherType(t) => {
                write!(f, "unsupported Ethernet type {t:#06x} for segmentation")
            }
            GsoError::BadIpHeader => write!(f, "malformed IP header"),
            GsoError::WrongL4(p) => write!(
                f,
                "L4 protocol {p} is not the one gso_type names (or an IPv6 extension header)"
            ),
            GsoError::Fragment => write!(f, "IPv4 fragment cannot be segmented"),
            GsoError::GsoTypeMismatch => write!(f, "gso_type does not match the IP version"),
            GsoError::SegmentTooLarge { needed, room } => {
                write!(f, "segment of {needed} bytes exceeds pool buffer of {room}")
            }
            GsoError::PoolExhausted { needed, available } => {
                write!(f, "{needed} segment buffers needed, {available} free")
            }
        }
    }
}

impl std::error::Error for GsoError {}

/// True if `h` asks for TCP segmentation (with or without the ECN flag).
#[inline]
pub fn is_tcp_gso(h: &VnetHdr) -> bool {
    matches!(
        h.gso_type & !VnetHdr::GSO_ECN,
        VnetHdr::GSO_TCPV4 | VnetHdr::GSO_TCPV6
    )
}

/// The transport of a super-frame, with what its segments derive from it.
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// TCP: the first segment's sequence number and the original flags.
    Tcp { seq: u32, flags: u8 },
    /// UDP: nothing changes from one datagram to the next but the length and checksum.
    Udp,
}

impl Transport {
    fn proto(self) -> u8 {
        match self {
            Transport::Tcp { .. } => ipproto::TCP,
            Transport::Udp => ipproto::UDP,
        }
    }
}

/// Where the headers of a super-frame are, and the per-frame values that segments derive
/// theirs from.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Offset of the IP header.
    l3: usize,
    /// Offset of the TCP or UDP header.
    l4: usize,
    /// End of the transport header: bytes repeated on every segment.
    hdr: usize,
    v6: bool,
    /// Payload bytes after the headers.
    payload: usize,
    /// Payload bytes per segment (`gso_size`: the MSS for TCP).
    seg: usize,
    ip_id: u16,
    transport: Transport,
}

impl Layout {
    fn parse(d: &[u8], h: &VnetHdr) -> Result<Layout, GsoError> {
        // The protocol `gso_type` asks for, and the IP version if it names one.
        let (proto, want_v6) = match h.gso_type & !VnetHdr::GSO_ECN {
            VnetHdr::GSO_TCPV4 => (ipproto::TCP, Some(false)),
            VnetHdr::GSO_TCPV6 => (ipproto::TCP, Some(true)),
            VnetHdr::GSO_UDP_L4 => (ipproto::UDP, None),
            _ => return Err(GsoError::NotGso),
        };
        if h.gso_size == 0 {
            return Err(GsoError::ZeroGsoSize);
        }
        let (l3, et) = ethernet::skip_tags(d, MAX_VLAN_TAGS).ok_or(GsoError::Truncated)?;
        let (v6, l4, ip_id) = match et {
            ethertype::IPV4 => {
                let h = Ipv4Header::new(d, l3).ok_or(GsoError::Truncated)?;
                let ihl = h.header_len();
                if h.version() != 4 || ihl < ipv4::HEADER_LEN {
                    return Err(GsoError::BadIpHeader);
                }
                if d.len() < l3 + ihl {
                    return Err(GsoError::Truncated);
                }
                if h.is_fragment() {
                    return Err(GsoError::Fragment);
                }
                if h.protocol() != proto {
                    return Err(GsoError::WrongL4(h.protocol()));
                }
                (false, l3 + ihl, h.ident())
            }
            ethertype::IPV6 => {
                let h = Ipv6Header::new(d, l3).ok_or(GsoError::Truncated)?;
                if h.version() != 6 {
                    return Err(GsoError::BadIpHeader);
                }
                if h.next_header() != proto {
                    return Err(GsoError::WrongL4(h.next_header()));
                }
                (true, l3 + ipv6::HEADER_LEN, 0)
            }
            other => return Err(GsoError::UnsupportedEtherType(other)),
        };
        if want_v6.is_some_and(|w| w != v6) {
            return Err(GsoError::GsoTypeMismatch);
        }
        let (hdr, transport) = if proto == ipproto::TCP {
            let t = TcpHeader::new(d, l4).ok_or(GsoError::Truncated)?;
            let doff = t.header_len();
            if doff < tcp::HEADER_LEN {
                return Err(GsoError::Truncated);
            }
            let flags = t.flags_byte();
            (
                l4 + doff,
                Transport::Tcp {
                    seq: t.seq(),
                    flags,
                },
            )
        } else {
            (l4 + udp_wire::HEADER_LEN, Transport::Udp)
        };
        if d.len() < hdr {
            return Err(GsoError::Truncated);
        }
        Ok(Layout {
            l3,
            l4,
            hdr,
            v6,
            payload: d.len() - hdr,
            seg: h.gso_size as usize,
            ip_id,
            transport,
        })
    }

    /// Number of segments (at least one, even for a frame without payload).
    fn segments(&self) -> usize {
        self.payload.div_ceil(self.seg).max(1)
    }

    /// Payload bytes of segment `i`.
    fn seg_payload(&self, i: usize) -> usize {
        (self.payload - i * self.seg).min(self.seg)
    }

    /// Rewrites the headers at the front of `f` (headers then payload, `f.len()` the whole
    /// segment) for segment `i` of `n`, with both checksums computed in full.
    fn fix_headers(&self, f: &mut [u8], i: usize, n: usize) {
        const CHECKED: &str = "headers checked by Layout::parse";
        let (l3, l4) = (self.l3, self.l4);
        let proto = self.transport.proto();
        let l4_len = f.len() - l4;
        let pseudo = if self.v6 {
            let ip_payload = (f.len() - l3 - ipv6::HEADER_LEN) as u16;
            let mut ip = Ipv6Header::new_mut(f, l3).expect(CHECKED);
            ip.set_payload_len(ip_payload);
            pseudo_v6(ip.src(), ip.dst(), proto, l4_len as u32)
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
            pseudo_v4(&src, &dst, proto, l4_len as u32)
        };
        match self.transport {
            Transport::Tcp { seq, flags } => {
                let mut flags = flags;
                if i + 1 < n {
                    flags &= !(tcp::FIN | tcp::PSH);
                }
                if i > 0 {
                    flags &= !tcp::CWR;
                }
                let mut t = TcpHeader::new_mut(f, l4).expect(CHECKED);
                t.set_seq(seq.wrapping_add((i * self.seg) as u32));
                t.set_flags_byte(flags);
                t.set_checksum(0);
                let csum = !fold(pseudo + ones_sum(&f[l4..]));
                TcpHeader::new_mut(f, l4).expect(CHECKED).set_checksum(csum);
            }
            Transport::Udp => {
                let len_at = l4 + udp_wire::field::LENGTH;
                let csum_at = l4 + udp_wire::field::CHECKSUM;
                f[len_at..len_at + 2].copy_from_slice(&(l4_len as u16).to_be_bytes());
                f[csum_at..csum_at + 2].fill(0);
                // Zero would mean "no checksum" (refused over IPv6).
                let csum = match !fold(pseudo + ones_sum(&f[l4..])) {
                    0 => 0xffff,
                    c => c,
                };
                f[csum_at..csum_at + 2].copy_from_slice(&csum.to_be_bytes());
            }
        }
    }
}

/// Splits one TCP or UDP GSO packet into its segments, step by step, so that a caller can send (and
/// free) segments between steps while keeping the pool to itself.
///
/// [`new`](Self::new) checks the frame and reserves nothing, but refuses unless the pool has a
/// free buffer for every segment, so that (as long as the caller takes no buffers from the pool
/// in between) building never runs out half way. Call [`next_segment`](Self::next_segment)
/// until it gives `None`, then [`finish`](Self::finish), which gives the original buffer back.
/// Dropping a `Segmenter` without `finish` leaks the original buffer from the pool.
#[must_use = "call finish() to give the original buffer back to the pool"]
#[derive(Debug)]
pub struct Segmenter {
    /// The super-frame (taken as the only segment when there is just one).
    orig: Option<Packet>,
    layout: Layout,
    next: usize,
    n: usize,
}

impl Segmenter {
    /// Checks that `pkt` is a TCP or UDP GSO frame this module handles and that the pool can
    /// take its segments. On error `pkt` has been freed into `pool`.
    pub fn new(pkt: Packet, pool: &mut PacketPool) -> Result<Segmenter, GsoError> {
        let Some(h) = pkt.vnet else {
            pool.free(pkt);
            return Err(GsoError::NotGso);
        };
        let layout = match Layout::parse(pkt.data(), &h) {
            Ok(l) => l,
            Err(e) => {
                pool.free(pkt);
                return Err(e);
            }
        };
        let n = layout.segments();
        // A single segment is rewritten in the original buffer; otherwise each gets its own.
        if n > 1 {
            let needed = layout.hdr + layout.seg;
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
        Ok(Segmenter {
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

    /// Builds the next segment: a complete frame with `vnet` `None` and the original's
    /// `in_port` and tunnel metadata. `Ok(None)` when all are made. Fails with
    /// [`GsoError::PoolExhausted`] only if the caller took buffers from the pool since
    /// [`new`](Self::new); the segments not yet made are then lost (the caller should
    /// [`finish`](Self::finish) and count the packet as dropped).
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
            l.fix_headers(p.data_mut(), 0, 1);
            p.vnet = None;
            return Ok(Some(p));
        }
        let Some(orig) = self.orig.as_ref() else {
            return Ok(None);
        };
        let Some(mut seg) = pool.alloc() else {
            // Nothing more can be made for this packet.
            self.next = self.n;
            return Err(GsoError::PoolExhausted {
                needed: self.n - i,
                available: 0,
            });
        };
        self.next += 1;
        let plen = l.seg_payload(i);
        let from = l.hdr + i * l.seg;
        let src = orig.data();
        // `new` checked hdr + seg against the data room, so this always fits.
        seg.set_len(l.hdr + plen);
        let f = seg.data_mut();
        f[..l.hdr].copy_from_slice(&src[..l.hdr]);
        f[l.hdr..].copy_from_slice(&src[from..from + plen]);
        l.fix_headers(f, i, self.n);
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

/// Segments a TCP or UDP GSO packet: passes each segment, in order, to `out` (as a complete
/// frame with `vnet` `None`) and returns how many there were. `pkt` is consumed: its buffer is
/// freed into `pool` (or, if the frame makes a single segment, fixed up in place and passed on).
///
/// All or nothing: on error no segment has been passed on and `pkt` is freed. `out` must not
/// take buffers from `pool` (it cannot: it does not get the pool).
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

/// Segments `pkt`, passing the pool and each segment to `push` (which may send a burst with the
/// pool), and adds what it did to `st`. The packet is gone either way.
fn segment_each(
    pkt: Packet,
    pool: &mut PacketPool,
    st: &mut GsoStats,
    mut push: impl FnMut(&mut PacketPool, Packet),
) -> Result<(), GsoError> {
    let mut s = match Segmenter::new(pkt, pool) {
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
            // Only if `push` took buffers from the pool: the rest of the packet is lost.
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

/// What [`for_each_burst`] did, for a port's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GsoStats {
    /// GSO packets split in software.
    pub segmented: u64,
    /// Segments made from them.
    pub segments: u64,
    /// Partial checksums completed in software (non-GSO packets).
    pub csums: u64,
    /// Packets dropped because their offloads could not be resolved (malformed or unsupported
    /// GSO frame, checksum position outside the packet, pool exhausted); count them as transmit
    /// errors.
    pub dropped: u64,
}

/// Resolves the offloads of every packet in `batch` that the output cannot take, and passes the
/// resulting frames to `send` in bursts of at most [`BATCH_SIZE`](crate::BATCH_SIZE), in order.
///
/// For each packet: without a virtio-net header, with one that asks for nothing
/// ([`VnetHdr::is_plain`]), or with one `accepts` returns true for, the packet goes on
/// unchanged (`vnet` kept, for ports that write it to the wire). Otherwise a TCP GSO packet is
/// segmented ([`Segmenter`]), as is a UDP one, a partial checksum is
/// completed ([`Packet::resolve_offloads`]), and anything else is freed and counted in
/// [`GsoStats::dropped`].
///
/// `send` gets the pool and a burst, and must take every packet out of it (send or free them,
/// as a port's `tx_burst` does); whatever it leaves is freed. `batch` is empty on return. A
/// port that takes no offloads at all passes `|_| false`. Ports call it through
/// [`PacketBatch::send_resolved`], which also does the counting.
pub fn for_each_burst(
    batch: &mut PacketBatch,
    pool: &mut PacketPool,
    accepts: impl Fn(&VnetHdr) -> bool,
    mut send: impl FnMut(&mut PacketPool, &mut PacketBatch),
) -> GsoStats {
    let mut st = GsoStats::default();
    // Fast path: nothing to resolve, send the batch as it is.
    let needs_work = |p: &Packet| p.vnet.is_some_and(|h| !h.is_plain() && !accepts(&h));
    if !batch.iter().any(needs_work) {
        if !batch.is_empty() {
            send(pool, batch);
            pool.free_batch(batch);
        }
        return st;
    }
    let mut burst = PacketBatch::new();
    let mut push = |pool: &mut PacketPool, burst: &mut PacketBatch, p: Packet| {
        if let Err(p) = burst.push(p) {
            send(pool, burst);
            pool.free_batch(burst);
            // The burst is empty now, so this push succeeds.
            if let Err(p) = burst.push(p) {
                pool.free(p);
            }
        }
    };
    for mut pkt in batch.drain() {
        let Some(h) = pkt.vnet.filter(|h| !h.is_plain() && !accepts(h)) else {
            push(pool, &mut burst, pkt);
            continue;
        };
        if is_tcp_gso(&h) || udp::is_udp_gso(&h) {
            // Errors are counted in `st`; the packet is gone either way.
            let _ = segment_each(pkt, pool, &mut st, |pool, seg| push(pool, &mut burst, seg));
        } else if pkt.resolve_offloads() {
            // Not plain and not GSO: a partial checksum, now completed.
            st.csums += 1;
            push(pool, &mut burst, pkt);
        } else {
            st.dropped += 1;
            pool.free(pkt);
        }
    }
    if !burst.is_empty() {
        send(pool, &mut burst);
        pool.free_batch(&mut burst);
    }
    st
}

pub mod udp;

#[cfg(test)]
pub(crate) mod tests;
