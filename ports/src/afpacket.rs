//! `system` ports over AF_PACKET: a TPACKET_V3 receive ring (mmap) and `sendmmsg` transmit.
//!
//! The receive ring is a set of blocks the kernel fills with many frames each and hands over
//! whole; reading a block costs no syscall. Transmit batches a burst into one `sendmmsg`, with
//! `PACKET_QDISC_BYPASS` so frames go straight to the driver as DPDK-style ports expect.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use flow_table::key::ethertype;
use flow_table::wire::ethernet;

use crate::batch::{PacketBatch, BATCH_SIZE};
use crate::gso::udp;
use crate::netdev::NetDev;
use crate::packet::VnetHdr;
use crate::pool::PacketPool;
use crate::port::{Burst, Port, PortCounters, PortKind};
use crate::sys::{self, cvt, getsockopt, setsockopt, socket, Mmap};

/// Ask the kernel for its ring-overflow drop count once per this many receive calls (a power of
/// two), so the counter stays current without a syscall per burst.
const KERNEL_STATS_EVERY: u32 = 1024;

/// `PACKET_FANOUT` mode: pick the socket by flow hash.
const PACKET_FANOUT_HASH: u32 = 0;
/// `PACKET_FANOUT` flag: let the kernel choose an unused group id.
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

/// How to attach an AF_PACKET port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Existing kernel interface to attach to.
    pub ifname: String,
    /// Exchange a virtio-net header with each frame (`PACKET_VNET_HDR`), carrying checksum and
    /// GSO offload state in [`Packet::vnet`](crate::Packet::vnet). On by default: without it a
    /// frame whose checksum the sender left to offload (normal on veth) is received with that
    /// checksum unfinished and nothing says so. GSO frames (up to 64 KB) are only received if
    /// both a ring block and a pool buffer can hold them; otherwise they are dropped and counted.
    pub vnet_hdr: bool,
    /// Size of one ring block in bytes (a power of two, a multiple of the page size, larger than
    /// the largest frame).
    pub block_size: u32,
    /// Number of ring blocks.
    pub block_count: u32,
    /// How long (ms) the kernel keeps a partly filled block before handing it over; bounds the
    /// latency added at low packet rates.
    pub block_timeout_ms: u32,
    /// Put the interface in promiscuous mode (a switch port must see every frame).
    pub promisc: bool,
    /// Number of sockets (queues) the kernel spreads received flows over, per instance (see
    /// [`AfPacketPort::open_instances`]).
    pub n_queues: usize,
}

impl AfPacketConfig {
    /// Defaults: 64 blocks of 64 KB (4 MB ring), 1 ms block timeout, promiscuous, virtio-net
    /// header on.
    pub fn new(ifname: &str) -> AfPacketConfig {
        AfPacketConfig {
            ifname: ifname.to_owned(),
            vnet_hdr: true,
            block_size: 1 << 16,
            block_count: 64,
            block_timeout_ms: 1,
            promisc: true,
            n_queues: 1,
        }
    }
}

/// One AF_PACKET socket with its receive ring: a queue of the port.
struct Queue {
    sock: OwnedFd,
    ring: Mmap,
    block_size: usize,
    block_count: usize,
    /// Block being read, frames left in it and offset of the next one (a burst may stop in the
    /// middle of a block).
    cur_block: usize,
    pkts_left: u32,
    next_off: usize,
    rx_calls: u32,
}

impl Queue {
    /// Opens a socket with its ring, bound to `ifindex`.
    fn open(config: &AfPacketConfig, ifindex: u32) -> io::Result<Queue> {
        // Protocol 0: the socket sees nothing until it is bound to the interface below, so no
        // frame of another interface slips into the ring.
        let sock = socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)?;
        let fd = sock.as_raw_fd();
        setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V3 as libc::c_int),
        )?;
        if config.vnet_hdr {
            setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &1i32)?;
        }
        // Frames the host itself sends out of the interface are not input to the switch.
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)?;
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32)?;
        let frame_size = 2048u32;
        let req = libc::tpacket_req3 {
            tp_block_size: config.block_size,
            tp_block_nr: config.block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: config.block_size / frame_size * config.block_count,
            tp_retire_blk_tov: config.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        let ring_len = config.block_size as usize * config.block_count as usize;
        let ring = Mmap::shared(fd, ring_len, 0, true)?;
        bind_to(fd, ifindex, (libc::ETH_P_ALL as u16).to_be())?;
        Ok(Queue {
            sock,
            ring,
            block_size: config.block_size as usize,
            block_count: config.block_count as usize,
            cur_block: 0,
            pkts_left: 0,
            next_off: 0,
            rx_calls: 0,
        })
    }

    fn block(&self, i: usize) -> *mut u8 {
        // SAFETY: i < block_count, so the offset stays inside the ring mapping.
        unsafe { self.ring.ptr.add(i * self.block_size) }
    }

    /// The `block_status` word of block `i`, shared with the kernel.
    fn block_status(&self, i: usize) -> &AtomicU32 {
        let bd = self.block(i).cast::<libc::tpacket_block_desc>();
        // SAFETY: every block starts with a `tpacket_block_desc` (block starts are page aligned);
        // its status word is written by the kernel concurrently, hence accessed atomically only.
        unsafe { AtomicU32::from_ptr(std::ptr::addr_of_mut!((*bd).hdr.bh1.block_status)) }
    }

    /// Gives block `cur_block` back to the kernel and moves on.
    fn release_block(&mut self) {
        // Release: our reads of the block happen before the kernel may refill it.
        self.block_status(self.cur_block)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.cur_block = (self.cur_block + 1) % self.block_count;
    }

    /// The kernel's ring-full drop count since the last call (each read resets it).
    fn kernel_drops(&self) -> u64 {
        // SAFETY: tpacket_stats_v3 is plain integers; all-zero is valid.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        match getsockopt(
            self.sock.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut st,
        ) {
            Ok(()) => st.tp_drops as u64,
            Err(_) => 0,
        }
    }
}

/// AF_PACKET sockets bound to one kernel interface: one socket (with its own receive ring) per
/// queue; with several queues the kernel spreads flows over them (`PACKET_FANOUT_HASH`).
pub struct AfPacketPort {
    name: String,
    netdev: NetDev,
    ifindex: u32,
    queues: Vec<Queue>,
    vnet_hdr: bool,
    promisc: bool,
    port_no: u32,
    counters: Arc<PortCounters>,
}

// SAFETY: the ring mappings (raw pointers) are owned by the port alone and only touched through
// `&mut self`; moving the port to another thread moves that ownership.
unsafe impl Send for AfPacketPort {}

impl AfPacketPort {
    /// Opens the sockets, sets up their receive rings and binds them to the interface.
    pub fn open(config: &AfPacketConfig) -> io::Result<AfPacketPort> {
        let mut v = Self::open_instances(config, 1)?;
        Ok(v.remove(0))
    }

    /// Opens the port as `n` instances, one per PMD thread, each with `config.n_queues`
    /// sockets of its own. All `n × n_queues` sockets join one `PACKET_FANOUT_HASH` group, so
    /// the kernel hands each received frame to exactly one of them (flows stay on one socket);
    /// each instance transmits on its own sockets. The instances share one set of counters.
    /// `n = 1` is [`open`](Self::open).
    pub fn open_instances(config: &AfPacketConfig, n: usize) -> io::Result<Vec<AfPacketPort>> {
        let netdev = NetDev::new(&config.ifname)?;
        let ifindex = netdev.ifindex()?;
        let page = 4096;
        if !config.block_size.is_power_of_two()
            || config.block_size < page
            || config.block_count == 0
            || config.n_queues == 0
            || n == 0
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "block_size must be a power of two ≥ 4096, block_count, n_queues and the \
                 number of instances nonzero",
            ));
        }
        let total = config.n_queues * n;
        let mut queues = Vec::with_capacity(total);
        for _ in 0..total {
            queues.push(Queue::open(config, ifindex)?);
        }
        if queues.len() > 1 {
            // The first socket asks the kernel for a fanout group id no one uses; the others
            // join that group.
            let first = queues[0].sock.as_raw_fd();
            let arg = ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16) as i32;
            setsockopt(first, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)?;
            let mut got = 0i32;
            getsockopt(first, libc::SOL_PACKET, libc::PACKET_FANOUT, &mut got)?;
            let join = (PACKET_FANOUT_HASH << 16) as i32 | (got & 0xffff);
            for q in &queues[1..] {
                setsockopt(
                    q.sock.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_FANOUT,
                    &join,
                )?;
            }
        }
        let counters = PortCounters::new_shared();
        let mut queues = queues.into_iter();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let queues: Vec<Queue> = queues.by_ref().take(config.n_queues).collect();
            if config.promisc {
                // Membership-based promiscuity is reference-counted by the kernel and undone
                // when the socket closes, unlike setting IFF_PROMISC. Every instance holds its
                // own reference, so the interface stays promiscuous while any instance lives.
                let mreq = libc::packet_mreq {
                    mr_ifindex: ifindex as i32,
                    mr_type: libc::PACKET_MR_PROMISC as u16,
                    mr_alen: 0,
                    mr_address: [0; 8],
                };
                let fd = queues[0].sock.as_raw_fd();
                setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
            }
            out.push(AfPacketPort {
                name: config.ifname.clone(),
                netdev: NetDev::new(&config.ifname)?,
                ifindex,
                queues,
                vnet_hdr: config.vnet_hdr,
                promisc: config.promisc,
                port_no: 0,
                counters: Arc::clone(&counters),
            });
        }
        Ok(out)
    }

    /// Interface index of the attached interface.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Whether frames carry a virtio-net header.
    pub fn has_vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// Whether the port asked for promiscuous mode.
    pub fn is_promisc(&self) -> bool {
        self.promisc
    }
}

/// Copies one ring frame into `dst` (a whole pool buffer, data to start at `off`), putting back
/// the VLAN tag the kernel stripped into the metadata. Returns the frame length, or `None` when it
/// does not fit.
fn copy_frame(frame: &[u8], vlan: Option<(u16, u16)>, dst: &mut [u8], off: usize) -> Option<usize> {
    let room = dst.len() - off;
    match vlan {
        Some((tpid, tci)) if frame.len() >= ethernet::ADDRS_LEN => {
            let len = frame.len() + ethernet::TAG_LEN;
            if len > room {
                return None;
            }
            let d = &mut dst[off..off + len];
            let (addrs, rest) = frame.split_at(ethernet::ADDRS_LEN);
            d[..ethernet::ADDRS_LEN].copy_from_slice(addrs);
            ethernet::write_tag(d, tpid, tci);
            d[ethernet::ADDRS_LEN + ethernet::TAG_LEN..].copy_from_slice(rest);
            Some(len)
        }
        _ => {
            if frame.len() > room {
                return None;
            }
            dst[off..off + frame.len()].copy_from_slice(frame);
            Some(frame.len())
        }
    }
}

/// The kernel counts the virtio-net header's offsets (`csum_start`, `hdr_len`) in the frame
/// as it was with the VLAN tag still in the metadata; with the tag put back in the frame
/// ([`copy_frame`]) the headers they point at are a tag further on.
fn tag_moves_offsets(mut v: VnetHdr, tag_inserted: bool) -> VnetHdr {
    if tag_inserted {
        if v.flags & VnetHdr::F_NEEDS_CSUM != 0 {
            v.csum_start += ethernet::TAG_LEN as u16;
        }
        if v.hdr_len != 0 {
            v.hdr_len += ethernet::TAG_LEN as u16;
        }
    }
    v
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::SystemAfPacket
    }

    fn n_rxq(&self) -> usize {
        self.queues.len()
    }

    fn n_txq(&self) -> usize {
        self.queues.len()
    }

    fn port_no(&self) -> u32 {
        self.port_no
    }

    fn set_port_no(&mut self, port_no: u32) {
        self.port_no = port_no;
    }

    fn rx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> usize {
        let nq = self.queues.len();
        let q = &mut self.queues[qid % nq];
        let (mut n, mut bytes, mut dropped, mut errors) = (0usize, 0u64, 0u64, 0u64);
        q.rx_calls = q.rx_calls.wrapping_add(1);
        if q.rx_calls & (KERNEL_STATS_EVERY - 1) == 0 {
            dropped += q.kernel_drops();
        }
        // Empty blocks (timed out with no frame) are skipped; at most one lap of the ring.
        let mut empty_blocks = 0;
        while batch.space() > 0 && empty_blocks < q.block_count {
            if q.pkts_left == 0 {
                // Acquire: the block's contents are visible once we see it is ours.
                let status = q.block_status(q.cur_block).load(Ordering::Acquire);
                if status & libc::TP_STATUS_USER == 0 {
                    break;
                }
                let bd = q.block(q.cur_block).cast::<libc::tpacket_block_desc>();
                // SAFETY: the block is ours (status USER), so the kernel does not write its
                // header until we release it.
                let (num, first) = unsafe {
                    let h = std::ptr::addr_of!((*bd).hdr.bh1);
                    ((*h).num_pkts, (*h).offset_to_first_pkt as usize)
                };
                if num == 0 {
                    q.release_block();
                    empty_blocks += 1;
                    continue;
                }
                q.pkts_left = num;
                q.next_off = first;
            }
            let block = q.block(q.cur_block);
            // SAFETY: next_off points at a `tpacket3_hdr` inside the block (the kernel's chain of
            // tp_next_offset, within blk_len ≤ block_size), 16-byte aligned; the block is ours.
            let h: libc::tpacket3_hdr = unsafe { std::ptr::read(block.add(q.next_off).cast()) };
            let mac = q.next_off + h.tp_mac as usize;
            let snap = h.tp_snaplen as usize;
            if mac + snap > q.block_size {
                // Corrupt offsets: give up on the rest of this block rather than read outside.
                errors += q.pkts_left as u64;
                q.pkts_left = 0;
                q.release_block();
                continue;
            }
            // SAFETY: mac..mac+snap lies inside the block (checked above), which is ours.
            let frame = unsafe { std::slice::from_raw_parts(block.add(mac), snap) };
            let vnet = if self.vnet_hdr && mac >= VnetHdr::LEN {
                let mut b = [0u8; VnetHdr::LEN];
                // SAFETY: the kernel writes the virtio-net header just before the frame, inside
                // the same block (mac ≥ its length, checked).
                b.copy_from_slice(unsafe {
                    std::slice::from_raw_parts(block.add(mac - VnetHdr::LEN), VnetHdr::LEN)
                });
                Some(VnetHdr::from_bytes(&b))
            } else {
                None
            };
            let vlan = (h.tp_status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
                let tpid = if h.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    h.hv1.tp_vlan_tpid
                } else {
                    ethertype::VLAN
                };
                (tpid, h.hv1.tp_vlan_tci as u16)
            });
            if snap < h.tp_len as usize {
                // Cut by the ring (longer than a ring frame allows).
                dropped += 1;
            } else if let Some(mut pkt) = pool.alloc() {
                let off = pkt.headroom();
                match copy_frame(frame, vlan, pkt.buffer_mut(), off) {
                    Some(len) => {
                        pkt.set_bounds(off, len);
                        pkt.in_port = self.port_no;
                        pkt.vnet = vnet.map(|v| tag_moves_offsets(v, vlan.is_some()));
                        bytes += len as u64;
                        n += 1;
                        if let Err(p) = batch.push(pkt) {
                            pool.free(p);
                        }
                    }
                    None => {
                        pool.free(pkt);
                        dropped += 1;
                    }
                }
            } else {
                dropped += 1;
            }
            q.next_off += h.tp_next_offset as usize;
            q.pkts_left -= 1;
            if q.pkts_left == 0 {
                q.release_block();
            }
        }
        self.counters.add_rx(&Burst {
            packets: n as u64,
            bytes,
            dropped,
            errors,
        });
        n
    }

    fn tx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        let fd = self.queues[qid % self.queues.len()].sock.as_raw_fd();
        send_burst(fd, self.vnet_hdr, pool, batch, &self.counters)
    }

    fn counters(&self) -> Arc<PortCounters> {
        Arc::clone(&self.counters)
    }

    fn netdev(&self) -> Option<&NetDev> {
        Some(&self.netdev)
    }

    fn rx_fd(&self, qid: usize) -> Option<RawFd> {
        self.queues.get(qid).map(|q| q.sock.as_raw_fd())
    }
}

/// Sends every packet of `batch` on AF_PACKET socket `fd` and frees all their buffers into
/// `pool`; adds what happened to `counters` and returns it. With `vnet_hdr` each frame is
/// preceded by its virtio-net header (the socket must have `PACKET_VNET_HDR`) and the kernel
/// takes every offload (UDP segmentation from Linux 6.2 on, [`udp::kernel_takes`]); without,
/// the wire takes no offload metadata: partial checksums are completed and GSO packets
/// segmented here ([`PacketBatch::send_resolved`]).
pub(crate) fn send_burst(
    fd: RawFd,
    vnet_hdr: bool,
    pool: &mut PacketPool,
    batch: &mut PacketBatch,
    counters: &PortCounters,
) -> Burst {
    batch.send_resolved(
        pool,
        counters,
        |h| vnet_hdr && udp::kernel_takes(h),
        |pool, burst| send_frames(fd, vnet_hdr, pool, burst),
    )
}

/// Sends the frames of `batch` (at most [`BATCH_SIZE`]) with [`sys::send_mmsg`] and frees all
/// their buffers into `pool`; returns what happened. With `vnet_hdr` each frame is preceded by
/// its virtio-net header; without, any offload metadata is ignored (the caller has resolved it).
fn send_frames(fd: RawFd, vnet_hdr: bool, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
    if batch.is_empty() {
        return Burst::default();
    }
    // Per-burst arrays on the stack: no allocation, and the pointers in them stay valid for
    // the send below.
    let mut hdrs = [[0u8; VnetHdr::LEN]; BATCH_SIZE];
    // SAFETY: iovec and mmsghdr are plain C data; all-zero (null pointers, zero lengths) is
    // valid and every used entry is filled in below.
    let mut iov: [libc::iovec; 2 * BATCH_SIZE] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
    let per = if vnet_hdr { 2 } else { 1 };
    let mut lens = [0usize; BATCH_SIZE];
    let mut n = 0;
    for pkt in batch.iter().take(BATCH_SIZE) {
        let i = n;
        n += 1;
        let mut k = i * per;
        if vnet_hdr {
            hdrs[i] = pkt.vnet.unwrap_or_default().to_bytes();
            iov[k] = libc::iovec {
                iov_base: hdrs[i].as_mut_ptr().cast(),
                iov_len: VnetHdr::LEN,
            };
            k += 1;
        }
        iov[k] = libc::iovec {
            iov_base: pkt.data().as_ptr() as *mut _,
            iov_len: pkt.len(),
        };
        lens[i] = pkt.len();
    }
    for (i, m) in msgs.iter_mut().enumerate().take(n) {
        m.msg_hdr.msg_iov = iov[i * per..].as_mut_ptr();
        m.msg_hdr.msg_iovlen = per as _;
    }
    // SAFETY: msgs[..n] point at `per` iovecs each, into `hdrs` and into packets still held by
    // `batch`; all outlive the call. No address, no control data.
    let out = unsafe { sys::send_mmsg(fd, &mut msgs[..n], &lens[..n]) };
    pool.free_batch(batch);
    out
}

/// A transmit-only AF_PACKET socket bound to one interface, without a receive ring or virtio-net
/// header: how an AF_XDP port instance that has no queue of its own sends (see
/// [`AfXdpPort::open_instances`](crate::AfXdpPort::open_instances)).
pub(crate) struct TxSocket {
    sock: OwnedFd,
}

impl TxSocket {
    /// Opens the socket and binds it to `ifindex` with protocol 0, so the kernel delivers no
    /// received frames to it (a bound `ETH_P_ALL` socket would get a copy of every frame).
    pub(crate) fn open(ifindex: u32) -> io::Result<TxSocket> {
        let sock = socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)?;
        let fd = sock.as_raw_fd();
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32)?;
        // Protocol 0: the socket receives nothing, it only transmits.
        bind_to(fd, ifindex, 0)?;
        Ok(TxSocket { sock })
    }

    /// Sends a burst (see [`send_burst`]), counted in `counters`.
    pub(crate) fn send(
        &self,
        pool: &mut PacketPool,
        batch: &mut PacketBatch,
        counters: &PortCounters,
    ) -> Burst {
        send_burst(self.sock.as_raw_fd(), false, pool, batch, counters)
    }
}

/// Binds AF_PACKET socket `fd` to interface `ifindex` for frames of `protocol` (network byte
/// order; 0 for none).
fn bind_to(fd: RawFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll; bind reads it for the given length.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a live sockaddr_ll of the stated size.
    cvt(unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_frame_reinserts_vlan_tag() {
        let frame: Vec<u8> = (0..64).collect();
        let mut dst = vec![0u8; 256];
        let len = copy_frame(&frame, Some((0x8100, 0x2005)), &mut dst, 128).unwrap();
        assert_eq!(len, 68);
        let d = &dst[128..128 + len];
        assert_eq!(&d[..12], &frame[..12]);
        assert_eq!(&d[12..16], &[0x81, 0x00, 0x20, 0x05]);
        assert_eq!(&d[16..], &frame[12..]);
    }

    #[test]
    fn a_reinserted_tag_moves_the_vnet_offsets() {
        let v = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let moved = tag_moves_offsets(v, true);
        assert_eq!((moved.csum_start, moved.hdr_len), (38, 70));
        assert_eq!(moved.csum_offset, 16);
        assert_eq!(tag_moves_offsets(v, false), v);
        let plain = VnetHdr {
            flags: 0,
            hdr_len: 0,
            csum_start: 0,
            ..v
        };
        assert_eq!(tag_moves_offsets(plain, true), plain);
    }

    #[test]
    fn copy_frame_refuses_what_does_not_fit() {
        let frame = [0u8; 100];
        let mut dst = [0u8; 200];
        assert_eq!(copy_frame(&frame, None, &mut dst, 100), Some(100));
        assert_eq!(copy_frame(&frame, None, &mut dst, 101), None);
        assert_eq!(copy_frame(&frame, Some((0x8100, 1)), &mut dst, 100), None);
    }

    /// A connected pair of Unix datagram sockets: `send_burst` only needs `sendmmsg`.
    fn dgram_pair() -> (OwnedFd, OwnedFd) {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, fds.as_mut_ptr()) };
        assert_eq!(r, 0);
        // SAFETY: both descriptors were just created and are owned by nothing else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    /// Lengths of the datagrams waiting on `fd`.
    fn recv_lens(fd: &OwnedFd) -> Vec<usize> {
        let mut buf = vec![0u8; 1 << 17];
        let mut lens = Vec::new();
        loop {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                return lens;
            }
            lens.push(n as usize);
        }
    }

    /// Sends one offloaded frame with `send_burst` on `sock`; returns what it reported, the
    /// counters and the (emptied) batch.
    fn send_one(
        sock: &OwnedFd,
        vnet_hdr: bool,
        pool: &mut PacketPool,
        frame: &[u8],
        h: VnetHdr,
    ) -> (Burst, crate::PortStats, PacketBatch) {
        let mut batch = PacketBatch::new();
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(frame));
        p.vnet = Some(h);
        batch.push(p).unwrap();
        let counters = PortCounters::default();
        let out = send_burst(sock.as_raw_fd(), vnet_hdr, pool, &mut batch, &counters);
        (out, counters.snapshot(), batch)
    }

    #[test]
    fn send_burst_segments_gso_without_vnet_hdr_only() {
        use crate::gso::tests::{big_pool, payload_bytes, super_frame, Spec};
        let mut pool = big_pool(16);
        let s = Spec {
            v6: false,
            vlans: 1,
            ip_opts: 0,
            flags: 0x19,
            mss: 1000,
        };
        let (frame, h) = super_frame(s, &payload_bytes(7500));
        let (a, b) = dgram_pair();
        for vnet_hdr in [false, true] {
            let (out, s, batch) = send_one(&a, vnet_hdr, &mut pool, &frame, h);
            let counted = Burst {
                packets: s.tx_packets,
                bytes: s.tx_bytes,
                dropped: s.tx_dropped,
                errors: s.tx_errors,
            };
            assert_eq!(out, counted, "returns what it counted");
            let (sent, bytes, dropped, errors) =
                (s.tx_packets, s.tx_bytes, s.tx_dropped, s.tx_errors);
            let lens = recv_lens(&b);
            if vnet_hdr {
                // Whole, behind its virtio-net header.
                assert_eq!((sent, dropped, errors), (1, 0, 0));
                assert_eq!(s.tx_segments, 0);
                assert_eq!(lens, vec![VnetHdr::LEN + frame.len()]);
            } else {
                // 7 full segments and one of 500 bytes, each with 70 bytes of headers.
                assert_eq!((sent, dropped, errors), (8, 0, 0));
                assert_eq!(s.tx_segments, 8, "counted as made in software");
                let mut want = vec![70 + 1000; 7];
                want.push(70 + 500);
                assert_eq!(lens, want);
                assert_eq!(bytes, want.iter().sum::<usize>() as u64);
            }
            assert!(batch.is_empty());
            assert_eq!(pool.available(), 16);
        }
    }

    #[test]
    fn send_burst_segments_udp_gso_without_vnet_hdr_only() {
        use crate::gso::tests::{big_pool, payload_bytes};
        use crate::gso::udp::tests::{super_datagram, Spec};
        let mut pool = big_pool(32);
        let s = Spec {
            v6: true,
            vlans: 0,
            ip_opts: 0,
            seg: 1200,
        };
        let (frame, h) = super_datagram(s, &payload_bytes(20 * 1200 + 500));
        let (a, b) = dgram_pair();
        for vnet_hdr in [false, true] {
            let (_, st, _) = send_one(&a, vnet_hdr, &mut pool, &frame, h);
            let lens = recv_lens(&b);
            if vnet_hdr && udp::kernel_takes_uso() {
                // Whole: the kernel splits it if it must.
                assert_eq!((st.tx_packets, st.tx_segments, st.tx_errors), (1, 0, 0));
                assert_eq!(lens, vec![VnetHdr::LEN + frame.len()]);
            } else {
                // 20 datagrams of 1200 bytes and one of 500, each with 62 bytes of headers
                // (also with vnet headers on a kernel before 6.2, which would refuse USO).
                assert_eq!((st.tx_packets, st.tx_segments, st.tx_errors), (21, 21, 0));
                let mut want = vec![62 + 1200; 20];
                want.push(62 + 500);
                assert_eq!(lens, want);
            }
            assert_eq!(pool.available(), 32);
        }
    }

    #[test]
    fn open_fails_cleanly_on_missing_interface() {
        assert!(AfPacketPort::open(&AfPacketConfig::new("nosuchdev0")).is_err());
    }
}
