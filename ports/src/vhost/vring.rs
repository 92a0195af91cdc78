//! Moving packets through a started virtqueue: guest TX queues into packets, packets into guest
//! RX queues.
//!
//! Every address the guest gives (descriptor table, rings, buffers) is reached through
//! `vm-memory`, which checks it against the guest's memory regions, and every descriptor chain
//! through `virtio-queue`, which bounds its length by the ring size (no loops) and checks
//! indirect tables. A guest that breaks the ring itself (an available index running ahead by
//! more than the ring, a used head out of range) gets the queue marked broken: it stops being
//! served until the frontend sets it up again. Bad buffers only lose that packet.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use virtio_bindings::virtio_ring::VRING_AVAIL_F_NO_INTERRUPT as NO_INTERRUPT;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::guest_map::GuestMap;
use crate::batch::{PacketBatch, BATCH_SIZE};
use crate::packet::Packet;
use crate::pool::PacketPool;

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
    /// Ring state (addresses, next indexes) from `virtio-queue`.
    pub queue: Queue,
    /// The guest memory the ring and its buffers live in.
    pub mem: Arc<Mem>,
    /// The same memory, for copying packet data.
    pub map: GuestMap,
    /// Where to signal the guest that used buffers are ready, if it wants to be told.
    pub call: Option<Arc<File>>,
    /// Size of the virtio-net header in front of each packet.
    pub hdr_len: usize,
    /// `VIRTIO_NET_F_MRG_RXBUF`: a received packet may span several guest buffers.
    pub mrg_rxbuf: bool,
    /// The guest broke the ring; the queue is not served until set up again.
    pub broken: bool,
}

/// What one burst did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Burst {
    /// Packets moved.
    pub packets: u64,
    /// Their bytes (without virtio-net headers).
    pub bytes: u64,
    /// Packets lost for want of room (pool empty, guest ring full, packet too long).
    pub dropped: u64,
    /// Malformed buffers or rings.
    pub errors: u64,
}

/// Why a packet could not go into the guest.
enum RxError {
    /// No (more) available buffers: the guest is not keeping up.
    Full,
    /// The guest's buffers cannot hold the packet.
    TooSmall,
    /// A descriptor the device may not write to, or outside guest memory.
    Malformed,
    /// The used ring cannot be written.
    Broken,
}

impl ActiveVq {
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
        let mem: &Mem = &self.mem;
        let mut done = [0u16; BATCH_SIZE];
        let mut n_done = 0;
        let space = batch.space().min(BATCH_SIZE);
        match self.queue.iter(mem) {
            Ok(chains) => {
                for chain in chains.take(space) {
                    done[n_done] = chain.head_index();
                    n_done += 1;
                    let Some(mut pkt) = pool.alloc() else {
                        out.dropped += 1;
                        continue;
                    };
                    match read_chain(chain, &self.map, self.hdr_len, &mut pkt) {
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
            // The available index ran ahead by more than the ring holds.
            Err(_) => {
                self.broken = true;
                out.errors += 1;
                return out;
            }
        }
        for &head in &done[..n_done] {
            // The device wrote nothing into a TX buffer: used length 0.
            if self.queue.add_used(mem, head, 0).is_err() {
                self.broken = true;
                out.errors += 1;
                return out;
            }
        }
        if n_done > 0 {
            self.notify();
        }
        out
    }

    /// Copies every packet of `batch` into the guest (a guest RX queue) and frees them into
    /// `pool`.
    pub(crate) fn enqueue(&mut self, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        let mut out = Burst::default();
        let mut used = false;
        let mut full = self.broken;
        for mut pkt in batch.drain() {
            if full {
                out.dropped += 1;
                pool.free(pkt);
                continue;
            }
            // The guest negotiated no offloads: finish checksums here; GSO frames cannot go.
            if pkt.vnet.is_some() && !pkt.resolve_offloads() {
                out.errors += 1;
                pool.free(pkt);
                continue;
            }
            match self.write_packet(pkt.data()) {
                Ok(()) => {
                    used = true;
                    out.packets += 1;
                    out.bytes += pkt.len() as u64;
                }
                Err(RxError::Full) => {
                    full = true;
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
                    full = true;
                    out.errors += 1;
                }
            }
            pool.free(pkt);
        }
        if used {
            self.notify();
        }
        out
    }

    /// Writes one packet (after its virtio-net header) into the guest's next available
    /// buffers and marks them used.
    fn write_packet(&mut self, data: &[u8]) -> Result<(), RxError> {
        let mem: &Mem = &self.mem;
        let hdr_len = self.hdr_len;
        let mut hdr = [0u8; HDR_LEN_V1];
        // One buffer unless merged (the field exists only in the 12-byte header).
        hdr[NUM_BUFFERS_AT] = 1;
        let total = hdr_len + data.len();
        let mut heads = [(0u16, 0u32); MAX_MERGED];
        let mut n = 0;
        let mut written = 0;
        // Guest addresses of the two `num_buffers` bytes, to fix up once the count is known.
        let mut num_buffers_at = [None::<GuestAddress>; 2];
        let mut malformed = false;
        while written < total {
            if n == MAX_MERGED || (n == 1 && !self.mrg_rxbuf) {
                break;
            }
            let Some(chain) = self.queue.pop_descriptor_chain(mem) else {
                // Give back the buffers taken for this packet: it will not go.
                self.queue
                    .set_next_avail(self.queue.next_avail().wrapping_sub(n as u16));
                return Err(RxError::Full);
            };
            let head = chain.head_index();
            let mut chain_len = 0u32;
            let mut descs = 0;
            for desc in chain {
                descs += 1;
                if !desc.is_write_only() {
                    malformed = true;
                    break;
                }
                let mut addr = desc.addr();
                let mut room = desc.len() as usize;
                while room > 0 && written < total {
                    let src: &[u8] = if written < hdr_len {
                        &hdr[written..hdr_len]
                    } else {
                        &data[written - hdr_len..]
                    };
                    let k = src.len().min(room);
                    if written <= NUM_BUFFERS_AT + 1 && written + k > NUM_BUFFERS_AT {
                        for (i, at) in num_buffers_at.iter_mut().enumerate() {
                            let pos = NUM_BUFFERS_AT + i;
                            if pos >= written && pos < written + k {
                                *at = addr.checked_add((pos - written) as u64);
                            }
                        }
                    }
                    if !self.map.write(addr, &src[..k]) {
                        malformed = true;
                        break;
                    }
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
                // The chain ends here while saying "next": cut short (see `read_chain`).
                if desc.has_next() && descs >= self.queue.size() as usize {
                    malformed = true;
                    break;
                }
            }
            if descs == 0 {
                // Head out of range or unreadable descriptor.
                malformed = true;
            }
            heads[n] = (head, chain_len);
            n += 1;
            if malformed {
                break;
            }
        }
        let result = if malformed {
            Err(RxError::Malformed)
        } else if written < total {
            Err(RxError::TooSmall)
        } else {
            Ok(())
        };
        if result.is_ok() && self.mrg_rxbuf && hdr_len == HDR_LEN_V1 && n > 1 {
            let count = (n as u16).to_le_bytes();
            for (at, b) in num_buffers_at.iter().zip(count) {
                if let Some(at) = at {
                    let _ = mem.write_obj(b, *at);
                }
            }
        }
        // Buffers taken are used either way; a failed packet hands them back empty.
        for &(head, len) in &heads[..n] {
            let len = if result.is_ok() { len } else { 0 };
            if self.queue.add_used(mem, head, len).is_err() {
                return Err(RxError::Broken);
            }
        }
        result
    }

    /// Signals the guest if it asked to be told about these used buffers: with `EVENT_IDX`
    /// when the used index passed the guest's `used_event`, else unless the guest set
    /// `VRING_AVAIL_F_NO_INTERRUPT` (which `virtio-queue` does not look at).
    fn notify(&mut self) {
        let Some(call) = &self.call else { return };
        let wanted = if self.queue.event_idx_enabled() {
            self.queue.needs_notification(&*self.mem)
        } else {
            // Order the used-ring writes before reading the guest's flags.
            std::sync::atomic::fence(Ordering::SeqCst);
            self.mem
                .load::<u16>(GuestAddress(self.queue.avail_ring()), Ordering::Acquire)
                .map(|flags| u16::from_le(flags) & NO_INTERRUPT as u16 == 0)
                .map_err(virtio_queue::Error::GuestMemory)
        };
        match wanted {
            Ok(true) => {
                // An eventfd: adding 1 wakes the guest's interrupt handler.
                let _ = (&**call).write(&1u64.to_ne_bytes());
            }
            Ok(false) => {}
            Err(_) => self.broken = true,
        }
    }
}

/// Copies a guest TX chain (header, then frame) into `pkt`. Returns the frame length, or
/// `Err(true)` when it does not fit the buffer, `Err(false)` when the chain is malformed (a
/// writable descriptor, a buffer outside guest memory, no frame at all).
fn read_chain(
    chain: virtio_queue::DescriptorChain<&Mem>,
    map: &GuestMap,
    hdr_len: usize,
    pkt: &mut Packet,
) -> Result<usize, bool> {
    let room = pkt.len() + pkt.tailroom();
    pkt.set_len(room);
    let buf = pkt.data_mut();
    let mut skip = hdr_len;
    let mut len = 0;
    let mut cut = false;
    for desc in chain {
        // A chain whose last descriptor still says "next" was cut short by `virtio-queue`: a
        // loop, a chain longer than the ring, a next index out of range or an unreadable
        // descriptor.
        cut = desc.has_next();
        if desc.is_write_only() {
            return Err(false);
        }
        let mut addr = desc.addr();
        let mut dlen = desc.len() as usize;
        if skip > 0 {
            let s = skip.min(dlen);
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
        if !map.read(addr, &mut buf[len..len + dlen]) {
            return Err(false);
        }
        len += dlen;
    }
    if len == 0 || cut {
        return Err(false);
    }
    pkt.set_len(len);
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
#[path = "vring_tests.rs"]
mod tests;
