//! Moving packets through a started virtqueue: guest TX queues into packets, packets into guest
//! RX queues.
//!
//! Every guest address (rings, descriptors, buffers) is checked against the guest's memory
//! regions before use ([`SplitRing`], `GuestMap`), and every chain is bounded by its table
//! (no loops). A guest that breaks the ring itself (an available index running ahead by more
//! than the ring, a used head out of range) gets the queue marked broken: it stops being
//! served until the frontend sets it up again. Bad buffers only lose that packet.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;

use vm_memory::{Address, GuestAddress, GuestMemoryMmap};

use super::dirty_log::DirtyLog;
use super::split::{RingError, SplitRing, Staged};
use crate::batch::{PacketBatch, BATCH_SIZE};
use crate::packet::{Packet, VnetHdr};
use crate::pool::PacketPool;
// What one burst did: `dropped` counts packets lost for want of room (pool empty, guest ring
// full, packet too long), `errors` malformed buffers or rings.
use crate::port::Burst;

/// The guest's memory as the switch maps it.
pub(crate) type Mem = GuestMemoryMmap<()>;

/// Length of the virtio-net header with `VIRTIO_F_VERSION_1` or `VIRTIO_NET_F_MRG_RXBUF`.
pub(crate) const HDR_LEN_V1: usize = 12;
/// Length of the legacy virtio-net header.
pub(crate) const HDR_LEN_LEGACY: usize = 10;
/// Offset of `num_buffers` in the header.
const NUM_BUFFERS_AT: usize = 10;
/// Most guest buffers one packet may take with mergeable RX buffers (64 KB in 1 KB buffers).
const MAX_MERGED: usize = 64;

/// A started virtqueue, as the PMD thread serving it uses it.
pub(crate) struct ActiveVq {
    /// The ring, over the guest memory it lives in.
    pub ring: SplitRing,
    /// Where to signal the guest that used buffers are ready, if it wants to be told.
    pub call: Option<std::sync::Arc<File>>,
    /// Size of the virtio-net header in front of each packet.
    pub hdr_len: usize,
    /// `VIRTIO_NET_F_MRG_RXBUF`: a received packet may span several guest buffers.
    pub mrg_rxbuf: bool,
    /// What the guest accepts in the virtio-net header of the frames it receives.
    pub offloads: GuestOffloads,
    /// `VIRTIO_NET_F_CSUM` acknowledged: frames the guest sends may carry a partial checksum
    /// or be TCP segmentation offloads (`HOST_TSO4/6`), said in their virtio-net header.
    pub host_offloads: bool,
    /// `VIRTIO_NET_F_HOST_USO` acknowledged (with `CSUM`): frames the guest sends may also be
    /// UDP segmentation offloads (`GSO_UDP_L4`).
    pub host_uso: bool,
    /// The guest broke the ring; the queue is not served until set up again.
    pub broken: bool,
    /// While the VM migrates: where every write into guest memory is marked.
    pub log: Option<Arc<DirtyLog>>,
}

/// Receive offloads the guest negotiated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GuestOffloads {
    /// `VIRTIO_NET_F_GUEST_CSUM`: frames may carry a partial checksum.
    pub csum: bool,
    /// `VIRTIO_NET_F_GUEST_TSO4`: TCP/IPv4 frames may be segmentation offloads.
    pub tso4: bool,
    /// `VIRTIO_NET_F_GUEST_TSO6`: TCP/IPv6 frames may be segmentation offloads.
    pub tso6: bool,
    /// `VIRTIO_NET_F_GUEST_ECN`: segmentation offloads may carry the ECN flag.
    pub ecn: bool,
    /// `VIRTIO_NET_F_GUEST_USO4`: UDP/IPv4 frames may be segmentation offloads.
    pub uso4: bool,
    /// `VIRTIO_NET_F_GUEST_USO6`: UDP/IPv6 frames may be segmentation offloads.
    pub uso6: bool,
}

impl GuestOffloads {
    /// Whether a frame with header `h` may go to the guest as it is.
    pub(crate) fn accept(&self, h: &VnetHdr) -> bool {
        let ecn_ok = h.gso_type & VnetHdr::GSO_ECN == 0 || self.ecn;
        let gso_ok = ecn_ok
            && match h.gso_type & !VnetHdr::GSO_ECN {
                VnetHdr::GSO_NONE => true,
                VnetHdr::GSO_TCPV4 => self.tso4,
                VnetHdr::GSO_TCPV6 => self.tso6,
                // The header does not say which IP version a UDP GSO frame is, so only a guest
                // that takes both gets it whole (Linux guests ack them together).
                VnetHdr::GSO_UDP_L4 => self.uso4 && self.uso6,
                // UFO was not offered.
                _ => false,
            };
        let csum_ok = h.flags & VnetHdr::F_NEEDS_CSUM == 0 || self.csum;
        gso_ok && csum_ok && (h.gso_type == VnetHdr::GSO_NONE || self.csum)
    }
}

/// Why a packet could not go into the guest.
enum RxError {
    /// No (more) available buffers: the guest is not keeping up.
    Full,
    /// The guest's buffers cannot hold the packet.
    TooSmall,
    /// A descriptor the device may not write to, outside guest memory, or a bad chain.
    Malformed,
    /// The ring itself is broken.
    Broken,
}

impl From<RingError> for RxError {
    fn from(_: RingError) -> RxError {
        RxError::Broken
    }
}

impl ActiveVq {
    /// A queue over `ring` whose frames carry an `hdr_len`-byte virtio-net header, no
    /// offloads, no signalling and no log (the caller sets what was negotiated).
    pub(crate) fn new(ring: SplitRing, hdr_len: usize, mrg_rxbuf: bool) -> ActiveVq {
        ActiveVq {
            ring,
            call: None,
            hdr_len,
            mrg_rxbuf,
            offloads: GuestOffloads::default(),
            host_offloads: false,
            host_uso: false,
            broken: false,
            log: None,
        }
    }

    /// Receives up to `batch.space()` packets the guest transmitted (a guest TX queue), stamped
    /// with `in_port`.
    pub(crate) fn dequeue(
        &mut self,
        pool: &mut PacketPool,
        batch: &mut PacketBatch,
        in_port: u32,
    ) -> Burst {
        let mut out = Burst::default();
        if self.broken {
            return out;
        }
        let avail = match self.ring.available() {
            Ok(n) => n as usize,
            Err(RingError) => {
                self.broken = true;
                out.errors += 1;
                return out;
            }
        };
        let n = avail.min(batch.space()).min(BATCH_SIZE);
        let mut staged = [Staged::NONE; BATCH_SIZE];
        let staged = &mut staged[..n];
        self.ring.stage(false, self.hdr_len, staged);
        for st in staged.iter() {
            self.ring.take_staged();
            let head = st.head;
            match pool.alloc() {
                None => out.dropped += 1,
                Some(mut pkt) => {
                    let offloads = HostOffloads {
                        on: self.host_offloads,
                        uso: self.host_uso,
                    };
                    match read_staged(&self.ring, st, self.hdr_len, offloads, &mut pkt) {
                        Ok(len) => {
                            pkt.in_port = in_port;
                            out.packets += 1;
                            out.bytes += len as u64;
                            if let Err(p) = batch.push(pkt) {
                                pool.free(p);
                            }
                        }
                        Err(too_long) => {
                            if too_long {
                                out.dropped += 1;
                            } else {
                                out.errors += 1;
                            }
                            pool.free(pkt);
                        }
                    }
                }
            }
            // The device wrote nothing into a TX buffer: used length 0.
            if self.ring.push_used(head, 0).is_err() {
                self.broken = true;
                out.errors += 1;
                break;
            }
        }
        if n > 0 {
            self.ring.publish_used();
            self.log_used();
            self.notify();
        }
        out
    }

    /// Copies every packet of `batch` into the guest (a guest RX queue) and frees them into
    /// `pool`.
    pub(crate) fn enqueue(&mut self, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        let mut out = Burst::default();
        let mut used = false;
        let mut avail = match self.ring.available() {
            Ok(n) if !self.broken => n as usize,
            Ok(_) => 0,
            Err(RingError) => {
                self.broken = true;
                out.errors += 1;
                0
            }
        };
        let mut staged = [Staged::NONE; BATCH_SIZE];
        let staged = &mut staged[..avail.min(batch.len()).min(BATCH_SIZE)];
        self.ring.stage(true, self.hdr_len, staged);
        let base = self.ring.next_avail();
        for mut pkt in batch.drain() {
            if avail == 0 {
                out.dropped += 1;
                pool.free(pkt);
                continue;
            }
            // Offload metadata goes to the guest if it accepts it; otherwise checksums are
            // finished here. GSO frames the guest does not take were segmented by the port's
            // `send_resolved`; one that reaches this point cannot go.
            let vnet = pkt.vnet.filter(|h| self.offloads.accept(h));
            if vnet.is_none() && !pkt.resolve_offloads() {
                out.errors += 1;
                pool.free(pkt);
                continue;
            }
            // The chain this packet goes to first, if staged (packets before it may have taken
            // several chains, or given theirs back).
            let st = staged.get(self.ring.next_avail().wrapping_sub(base) as usize);
            match self.write_packet(pkt.data(), vnet, st, &mut avail) {
                Ok(()) => {
                    used = true;
                    out.packets += 1;
                    out.bytes += pkt.len() as u64;
                }
                Err(RxError::Full) => {
                    avail = 0;
                    out.dropped += 1;
                }
                Err(RxError::TooSmall) => {
                    used = true;
                    out.dropped += 1;
                }
                Err(RxError::Malformed) => {
                    used = true;
                    out.errors += 1;
                }
                Err(RxError::Broken) => {
                    self.broken = true;
                    avail = 0;
                    out.errors += 1;
                }
            }
            pool.free(pkt);
        }
        if used {
            self.ring.publish_used();
            self.log_used();
            self.notify();
        }
        out
    }

    /// Writes one packet (after its virtio-net header) into the guest's next available
    /// buffers (`avail` of them left) and marks them used.
    fn write_packet(
        &mut self,
        data: &[u8],
        vnet: Option<VnetHdr>,
        staged: Option<&Staged>,
        avail: &mut usize,
    ) -> Result<(), RxError> {
        let hdr_len = self.hdr_len;
        if *avail > 0 && self.write_whole(data, vnet, staged)? {
            *avail -= 1;
            return Ok(());
        }
        let mut hdr = [0u8; HDR_LEN_V1];
        if let Some(h) = vnet {
            // The first ten bytes are the same in both header layouts (little-endian on the
            // hosts this runs on, as virtio 1.0 wants).
            hdr[..VnetHdr::LEN].copy_from_slice(&h.to_bytes());
        }
        // One buffer unless merged (the field exists only in the 12-byte header).
        hdr[NUM_BUFFERS_AT] = 1;
        let total = hdr_len + data.len();
        // Chains taken for this packet; each is pushed to the used ring (unpublished) as it is
        // filled, so a failure can take them back or empty them.
        let mut n: u16 = 0;
        let mut written = 0;
        // Guest address of the header's `num_buffers`, to fix up once the count is known.
        let mut num_buffers_at = None::<GuestAddress>;
        let mut malformed = false;
        while written < total && !malformed {
            if n as usize == MAX_MERGED || (n == 1 && !self.mrg_rxbuf) {
                break;
            }
            if *avail == 0 {
                // Give back the buffers taken for this packet: it will not go.
                self.ring.unpush(n);
                self.ring.unpop(n);
                *avail += n as usize;
                return Err(RxError::Full);
            }
            *avail -= 1;
            let head = self.ring.pop();
            let mut chain_len = 0u32;
            for desc in self.ring.chain(head) {
                let Ok(desc) = desc else {
                    malformed = true;
                    break;
                };
                if !desc.writable() {
                    malformed = true;
                    break;
                }
                let mut addr = desc.addr;
                let mut room = desc.len as usize;
                while room > 0 && written < total {
                    let src: &[u8] = if written < hdr_len {
                        &hdr[written..hdr_len]
                    } else {
                        &data[written - hdr_len..]
                    };
                    let k = src.len().min(room);
                    if written == 0 && k >= HDR_LEN_V1 {
                        num_buffers_at = addr.checked_add(NUM_BUFFERS_AT as u64);
                    }
                    if !self.ring.map().write(addr, &src[..k]) {
                        malformed = true;
                        break;
                    }
                    self.log_write(addr, k);
                    written += k;
                    room -= k;
                    chain_len += k as u32;
                    addr = match addr.checked_add(k as u64) {
                        Some(a) => a,
                        None => {
                            malformed = true;
                            break;
                        }
                    };
                }
                if malformed || written == total {
                    break;
                }
            }
            self.ring.push_used(head, chain_len)?;
            n += 1;
        }
        if malformed || written < total {
            // Buffers taken are used either way; a failed packet hands them back empty.
            self.ring.empty_last(n);
            return Err(if malformed {
                RxError::Malformed
            } else {
                RxError::TooSmall
            });
        }
        if n > 1 {
            // Merged buffers: tell the guest how many (a header split over descriptors, which
            // no driver does, keeps 1 and the guest sees a short packet).
            if let Some(at) = num_buffers_at {
                self.ring.map().write(at, &n.to_le_bytes());
                self.log_write(at, 2);
            }
        }
        Ok(())
    }

    /// The common case of [`write_packet`](Self::write_packet): header and frame fit the first
    /// buffer of the next chain, as [`SplitRing::stage`] found and checked it (`staged`), and
    /// are written with the header as two word stores (built in registers: a header assembled
    /// byte by byte on the stack and then copied stalled on store forwarding). Returns false,
    /// with the ring untouched, when the packet needs the general path.
    #[inline]
    fn write_whole(
        &mut self,
        data: &[u8],
        vnet: Option<VnetHdr>,
        staged: Option<&Staged>,
    ) -> Result<bool, RxError> {
        let hdr_len = self.hdr_len;
        let total = hdr_len + data.len();
        let Some(st) = staged.filter(|st| !st.buf.is_null() && st.len as usize >= total) else {
            return Ok(false);
        };
        let (head, dst) = (st.head, st.buf);
        self.ring.take_staged();
        let (lo, hi) = match vnet {
            Some(h) => {
                let b = h.to_bytes();
                (
                    u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
                    u16::from_le_bytes([b[8], b[9]]),
                )
            }
            None => (0, 0),
        };
        // The header is written only where it differs from what the buffer holds (as DPDK's
        // vhost library does). A recycled guest buffer usually holds this very header, and
        // the guest reads it back right after: left unwritten, its line stays shared and the
        // guest reads it from its own cache, instead of fetching it from this core's.
        // SAFETY: `dst .. dst + total` lies in guest memory (`stage` checked `st.len` bytes) and
        // is not the switch's own memory, which `data` is; no Rust reference to guest memory
        // exists.
        unsafe {
            if std::ptr::read_unaligned(dst as *const u64) != lo.to_le() {
                std::ptr::write_unaligned(dst as *mut u64, lo.to_le());
            }
            if hdr_len == HDR_LEN_V1 {
                // csum_offset, then num_buffers = 1.
                let tail = (u32::from(hi) | (1 << 16)).to_le();
                if std::ptr::read_unaligned(dst.add(8) as *const u32) != tail {
                    std::ptr::write_unaligned(dst.add(8) as *mut u32, tail);
                }
            } else if std::ptr::read_unaligned(dst.add(8) as *const u16) != hi.to_le() {
                std::ptr::write_unaligned(dst.add(8) as *mut u16, hi.to_le());
            }
            crate::copy::copy(dst.add(hdr_len), data.as_ptr(), data.len());
        }
        if let Some(log) = &self.log {
            if let Some(gpa) = self.ring.map().gpa_of(dst) {
                log.mark(gpa.0, total as u64);
            }
        }
        self.ring.push_used(head, total as u32)?;
        Ok(true)
    }

    /// Marks guest range `addr .. addr + len` dirty while the VM migrates.
    #[inline]
    fn log_write(&self, addr: GuestAddress, len: usize) {
        if let Some(log) = &self.log {
            log.mark(addr.0, len as u64);
        }
    }

    /// Marks the used ring dirty while the VM migrates (after the device wrote to it).
    #[inline]
    pub(crate) fn log_used(&self) {
        if self.log.is_some() {
            let (at, len) = self.ring.used_range();
            self.log_write(at, len);
        }
    }

    /// Signals the guest if it asked to be told about the used buffers just published.
    fn notify(&mut self) {
        if let Some(call) = &self.call {
            if self.ring.needs_notification() {
                // An eventfd: adding 1 wakes the guest's interrupt handler.
                let _ = (&**call).write(&1u64.to_ne_bytes());
            }
        }
    }
}

/// What the guest may ask for in the virtio-net header of the frames it sends.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HostOffloads {
    /// `CSUM`: partial checksums and TCP segmentation offloads; the header is read at all.
    pub on: bool,
    /// `HOST_USO`: UDP segmentation offloads too.
    pub uso: bool,
}

/// Copies the guest TX chain `st` into `pkt`: straight from the buffer [`SplitRing::stage`]
/// checked when it has one, else as [`read_chain`] does. With `offloads.on` the virtio-net
/// header in front of the frame is read too, and a header asking for something allowed is kept
/// in `pkt.vnet`.
fn read_staged(
    ring: &SplitRing,
    st: &Staged,
    hdr_len: usize,
    offloads: HostOffloads,
    pkt: &mut Packet,
) -> Result<usize, bool> {
    let len = st.len as usize;
    if !st.buf.is_null() && len <= pkt.len() + pkt.tailroom() {
        pkt.set_len(len);
        // SAFETY: `st.buf .. + len` lies in guest memory (checked by `stage`), which is not
        // the switch's own memory, where `pkt` is; `pkt` has room for `len` bytes.
        unsafe { crate::copy::copy(pkt.data_mut().as_mut_ptr(), st.buf, len) };
        // `pkt` is fresh from the pool: no offload metadata unless the guest's header asks.
        if offloads.on {
            let mut hdr = [0u8; VnetHdr::LEN];
            // SAFETY: `stage` checked the whole descriptor, header included, so the `hdr_len`
            // (>= VnetHdr::LEN) bytes before `st.buf` lie in the same guest region.
            unsafe { crate::copy::copy(hdr.as_mut_ptr(), st.buf.sub(hdr_len), VnetHdr::LEN) };
            pkt.vnet = offload_header(&hdr, len, offloads.uso)?;
        }
        return Ok(len);
    }
    read_chain(ring, st.head, hdr_len, offloads, pkt)
}

/// The guest's offload request in header `hdr` of a `len`-byte frame: `None` when it asks for
/// nothing, `Err(false)` (malformed) when it asks for what was not offered or negotiated
/// (UDP segmentation needs `uso`, `HOST_USO`) or points outside the frame.
fn offload_header(
    hdr: &[u8; VnetHdr::LEN],
    len: usize,
    uso: bool,
) -> Result<Option<VnetHdr>, bool> {
    let h = VnetHdr::from_bytes(hdr);
    if h.is_plain() {
        return Ok(None);
    }
    let gso_ok = match h.gso_type & !VnetHdr::GSO_ECN {
        VnetHdr::GSO_NONE | VnetHdr::GSO_TCPV4 | VnetHdr::GSO_TCPV6 => true,
        VnetHdr::GSO_UDP_L4 => uso,
        _ => false,
    };
    let csum_ok = h.flags & VnetHdr::F_NEEDS_CSUM == 0
        || h.csum_start as usize + h.csum_offset as usize + 2 <= len;
    // A segmentation offload always comes with a partial checksum (virtio 1.x, 5.1.6.2).
    let gso_csum = h.gso_type == VnetHdr::GSO_NONE || h.flags & VnetHdr::F_NEEDS_CSUM != 0;
    if gso_ok && csum_ok && gso_csum {
        Ok(Some(h))
    } else {
        Err(false)
    }
}

/// Copies the guest TX chain at `head` (header, then frame) into `pkt`, descriptor by
/// descriptor (the common shape, one descriptor, goes straight: [`read_staged`]). Returns the
/// frame length, or `Err(true)` when it does not fit the buffer, `Err(false)` when the chain
/// is malformed (a writable descriptor, a buffer outside guest memory, a bad chain, no frame).
/// With `offloads.on`, the header's request is kept in `pkt.vnet` as in [`read_staged`].
fn read_chain(
    ring: &SplitRing,
    head: u16,
    hdr_len: usize,
    offloads: HostOffloads,
    pkt: &mut Packet,
) -> Result<usize, bool> {
    let room = pkt.len() + pkt.tailroom();
    pkt.set_len(room);
    let buf = pkt.data_mut();
    let mut hdr = [0u8; HDR_LEN_V1];
    let mut skip = hdr_len;
    let mut len = 0;
    for desc in ring.chain(head) {
        let desc = desc.map_err(|()| false)?;
        if desc.writable() {
            return Err(false);
        }
        let mut addr = desc.addr;
        let mut dlen = desc.len as usize;
        if skip > 0 {
            let s = skip.min(dlen);
            let got = hdr_len - skip;
            if !ring.map().read(addr, &mut hdr[got..got + s]) {
                return Err(false);
            }
            skip -= s;
            dlen -= s;
            addr = addr.checked_add(s as u64).ok_or(false)?;
        }
        if dlen == 0 {
            continue;
        }
        if len + dlen > room {
            return Err(true);
        }
        if !ring.map().read(addr, &mut buf[len..len + dlen]) {
            return Err(false);
        }
        len += dlen;
    }
    if len == 0 {
        return Err(false);
    }
    pkt.set_len(len);
    if offloads.on {
        let h: &[u8; VnetHdr::LEN] = hdr[..VnetHdr::LEN].try_into().expect("10 bytes");
        pkt.vnet = offload_header(h, len, offloads.uso)?;
    }
    Ok(len)
}

/// The virtio-net header length for negotiated `features`.
pub(crate) fn header_len(features: u64) -> usize {
    use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
    use virtio_bindings::virtio_net::VIRTIO_NET_F_MRG_RXBUF;
    if features & (1 << VIRTIO_F_VERSION_1) != 0 || features & (1 << VIRTIO_NET_F_MRG_RXBUF) != 0 {
        HDR_LEN_V1
    } else {
        HDR_LEN_LEGACY
    }
}

#[cfg(test)]
mod tests;
