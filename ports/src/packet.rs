//! A packet: a pool buffer plus the metadata that travels with it.

use std::ptr::NonNull;

use crate::checksum::complete_partial;

/// The virtio-net header (`struct virtio_net_hdr`) that taps with `IFF_VNET_HDR` and AF_PACKET
/// sockets with `PACKET_VNET_HDR` put in front of each frame.
///
/// It carries the offload state of a packet: a checksum still to be filled in (`csum_start`,
/// `csum_offset`) and GSO segmentation (`gso_type`, `gso_size`). Keeping it with the packet lets
/// an output port that accepts offloads take a 64 KB TCP segment whole. Fields are in host byte
/// order (the kernel uses host order for these interfaces on little-endian machines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*` flags, e.g. [`VnetHdr::F_NEEDS_CSUM`].
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`, e.g. [`VnetHdr::GSO_TCPV4`].
    pub gso_type: u8,
    /// Length of the headers to repeat on each segment.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts (from the start of the frame).
    pub csum_start: u16,
    /// Where the checksum goes, counted from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Size of the header on the wire.
    pub const LEN: usize = 10;
    /// Flag: the checksum from `csum_start` is partial and must be completed.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// Flag: the checksum has been validated.
    pub const F_DATA_VALID: u8 = 2;
    /// GSO type: not a GSO packet.
    pub const GSO_NONE: u8 = 0;
    /// GSO type: TCP over IPv4.
    pub const GSO_TCPV4: u8 = 1;
    /// GSO type: UDP (UFO).
    pub const GSO_UDP: u8 = 3;
    /// GSO type: TCP over IPv6.
    pub const GSO_TCPV6: u8 = 4;
    /// GSO type: UDP segmentation (USO).
    pub const GSO_UDP_L4: u8 = 5;
    /// GSO flag: ECN set.
    pub const GSO_ECN: u8 = 0x80;

    /// Parses the 10-byte header.
    pub fn from_bytes(b: &[u8; Self::LEN]) -> VnetHdr {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    /// Serialises the 10-byte header.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// True when the header asks for nothing (no checksum to complete, no segmentation).
    pub fn is_plain(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM == 0 && self.gso_type & !Self::GSO_ECN == Self::GSO_NONE
    }
}

/// One packet in a [`PacketPool`](crate::PacketPool) buffer.
///
/// The buffer is `[headroom | data | tailroom]`; [`prepend`](Self::prepend) and
/// [`adjust_head`](Self::adjust_head) move the start of the data into or out of the headroom (VLAN
/// push/pop, encapsulation) without copying. A packet owns its buffer exclusively; give it back with
/// [`PacketPool::free`](crate::PacketPool::free) (or hand it to a port's `tx_burst`, which does).
/// Dropping a `Packet` any other way leaks its buffer from the pool (memory stays valid).
#[must_use = "a packet must be sent or freed back to its pool"]
pub struct Packet {
    /// Start of the buffer (of the headroom, not of the data).
    base: NonNull<u8>,
    idx: u32,
    pool_id: u32,
    /// Size of the whole buffer.
    cap: u32,
    /// Offset of the data from `base`.
    off: u32,
    len: u32,
    /// Number of the port the packet came in on (set by `rx_burst`).
    pub in_port: u32,
    /// Offload metadata, when the input port delivered a virtio-net header.
    pub vnet: Option<VnetHdr>,
    /// Tunnel metadata: set by a tunnel port on decapsulation (and by `set_tunnel`), read by a
    /// tunnel port on encapsulation.
    pub tun: TunMeta,
}

/// Tunnel metadata that travels beside a packet (as OVS's `flow_tnl`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunMeta {
    /// Tunnel id (VXLAN VNI).
    pub id: u64,
    /// Outer source IPv4 address (host order).
    pub src: u32,
    /// Outer destination IPv4 address (host order).
    pub dst: u32,
}

// SAFETY: a packet is the only user of its buffer (the pool hands each buffer to one packet at a
// time and the mapping outlives every packet), so moving it to another thread is like moving a
// `Box<[u8]>`.
unsafe impl Send for Packet {}

impl Packet {
    /// Wraps a free pool buffer.
    ///
    /// # Safety
    /// `base..base+cap` must be a buffer that stays mapped for as long as the packet lives and
    /// that nothing else reads or writes until the packet is given back; `headroom <= cap`.
    pub(crate) unsafe fn from_raw(
        base: NonNull<u8>,
        idx: u32,
        pool_id: u32,
        cap: u32,
        headroom: u32,
    ) -> Packet {
        debug_assert!(headroom <= cap);
        Packet {
            base,
            idx,
            pool_id,
            cap,
            off: headroom,
            len: 0,
            in_port: 0,
            vnet: None,
            tun: TunMeta::default(),
        }
    }

    /// Gives up the buffer, returning its start, index and pool id.
    pub(crate) fn into_raw(self) -> (NonNull<u8>, u32, u32) {
        (self.base, self.idx, self.pool_id)
    }

    /// The packet's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: off + len <= cap is kept by every method that changes them, and the buffer is
        // exclusively ours (see `from_raw`), so a shared borrow of `self` gives a shared slice.
        unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(self.off as usize), self.len as usize)
        }
    }

    /// The packet's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes the slice unique.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.base.as_ptr().add(self.off as usize),
                self.len as usize,
            )
        }
    }

    /// The whole buffer, headroom included. Ports read frames straight into it.
    #[inline]
    pub(crate) fn buffer_mut(&mut self) -> &mut [u8] {
        // SAFETY: base..base+cap is the packet's own buffer (see `from_raw`).
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.cap as usize) }
    }

    /// Sets where the data starts and how long it is, within the whole buffer.
    #[inline]
    pub(crate) fn set_bounds(&mut self, off: usize, len: usize) {
        assert!(
            off + len <= self.cap as usize,
            "packet bounds outside buffer"
        );
        self.off = off as u32;
        self.len = len as u32;
    }

    /// Length of the data in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the packet holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.off as usize
    }

    /// Free bytes after the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        (self.cap - self.off - self.len) as usize
    }

    /// Sets the data length (growing exposes whatever bytes the buffer held).
    ///
    /// # Panics
    /// If `len` exceeds `len() + tailroom()`; use [`try_set_len`](Self::try_set_len) to check.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        assert!(self.try_set_len(len), "set_len beyond the buffer");
    }

    /// Sets the data length if it fits in the buffer; returns whether it did.
    #[inline]
    pub fn try_set_len(&mut self, len: usize) -> bool {
        if len > (self.cap - self.off) as usize {
            return false;
        }
        self.len = len as u32;
        true
    }

    /// Copies `bytes` in as the packet's data (keeping the current start). Returns false, leaving
    /// the packet unchanged, if they do not fit.
    pub fn set_data(&mut self, bytes: &[u8]) -> bool {
        if !self.try_set_len(bytes.len()) {
            return false;
        }
        self.data_mut().copy_from_slice(bytes);
        true
    }

    /// Grows the data by `n` bytes at the front, taken from the headroom, and returns the new
    /// front bytes (uninitialised contents) for the caller to fill. `None` if the headroom is too
    /// small.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if !self.adjust_head(-(n as isize)) {
            return None;
        }
        Some(&mut self.data_mut()[..n])
    }

    /// Moves the start of the data: a positive `delta` strips bytes from the front (decapsulate,
    /// pop a VLAN tag), a negative one grows into the headroom. Returns false, leaving the packet
    /// unchanged, if that would leave the buffer or strip more than the data.
    #[inline]
    pub fn adjust_head(&mut self, delta: isize) -> bool {
        if delta >= 0 {
            let d = delta as usize;
            if d > self.len as usize {
                return false;
            }
            self.off += d as u32;
            self.len -= d as u32;
        } else {
            let d = delta.unsigned_abs();
            if d > self.off as usize {
                return false;
            }
            self.off -= d as u32;
            self.len += d as u32;
        }
        true
    }
}

impl Packet {
    /// Makes the packet valid on a wire that takes no offload metadata: completes a partial
    /// checksum in software and clears the header. Returns false for a GSO packet, which needs
    /// segmenting ([`gso::segment`](crate::gso::segment) or
    /// [`gso::for_each_burst`](crate::gso::for_each_burst)), or for a header pointing outside the
    /// packet.
    pub fn resolve_offloads(&mut self) -> bool {
        let Some(h) = self.vnet else {
            return true;
        };
        if h.gso_type & !VnetHdr::GSO_ECN != VnetHdr::GSO_NONE {
            return false;
        }
        if h.flags & VnetHdr::F_NEEDS_CSUM != 0
            && !complete_partial(
                self.data_mut(),
                h.csum_start as usize,
                h.csum_offset as usize,
            )
        {
            return false;
        }
        self.vnet = None;
        true
    }
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packet")
            .field("len", &self.len)
            .field("headroom", &self.off)
            .field("in_port", &self.in_port)
            .field("vnet", &self.vnet)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{fold, ones_sum};
    use crate::{PacketPool, PoolConfig};

    fn pool() -> PacketPool {
        PacketPool::new(PoolConfig {
            n_buffers: 4,
            ..PoolConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn set_data_and_read_back() {
        let mut pool = pool();
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(&[1, 2, 3, 4]));
        assert_eq!(p.data(), &[1, 2, 3, 4]);
        assert_eq!(p.len(), 4);
        p.data_mut()[0] = 9;
        assert_eq!(p.data(), &[9, 2, 3, 4]);
        pool.free(p);
    }

    #[test]
    fn length_limits() {
        let mut pool = pool();
        let mut p = pool.alloc().unwrap();
        let room = p.tailroom();
        assert!(p.try_set_len(room));
        assert!(!p.try_set_len(room + 1));
        assert_eq!(p.len(), room);
        assert_eq!(p.tailroom(), 0);
        assert!(!p.set_data(&vec![0u8; room + 1]));
        pool.free(p);
    }

    #[test]
    #[should_panic(expected = "set_len beyond the buffer")]
    fn set_len_too_long_panics() {
        let mut pool = pool();
        let mut p = pool.alloc().unwrap();
        p.set_len(1 << 20);
        pool.free(p);
    }

    #[test]
    fn prepend_vlan_tag() {
        let mut pool = pool();
        let mut p = pool.alloc().unwrap();
        let frame: Vec<u8> = (0..60).collect();
        assert!(p.set_data(&frame));
        // Push an 802.1Q tag: move the MAC addresses 4 bytes forward, insert the tag after them.
        let head = p.prepend(4).unwrap();
        assert_eq!(head.len(), 4);
        p.data_mut().copy_within(4..16, 0);
        p.data_mut()[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        assert_eq!(p.len(), 64);
        assert_eq!(&p.data()[..12], &frame[..12]);
        assert_eq!(&p.data()[16..], &frame[12..]);
        assert_eq!(p.headroom(), crate::DEFAULT_HEADROOM - 4);
        pool.free(p);
    }

    #[test]
    fn adjust_head_bounds() {
        let mut pool = pool();
        let mut p = pool.alloc().unwrap();
        p.set_len(20);
        assert!(p.adjust_head(14));
        assert_eq!((p.len(), p.headroom()), (6, crate::DEFAULT_HEADROOM + 14));
        assert!(!p.adjust_head(7));
        assert!(p.adjust_head(-14));
        assert_eq!(p.len(), 20);
        let hr = p.headroom() as isize;
        assert!(!p.adjust_head(-(hr + 1)));
        assert!(p.adjust_head(-hr));
        assert_eq!(p.headroom(), 0);
        assert!(p.prepend(1).is_none());
        pool.free(p);
    }

    #[test]
    fn resolve_offloads_completes_udp_checksum() {
        let mut pool = pool();
        let mut p = pool.alloc().unwrap();
        // IPv4/UDP 10.0.0.1:1000 → 10.0.0.2:2000, payload "hello!", checksum field holding the
        // pseudo-header sum as a sender with checksum offload leaves it.
        let payload = b"hello!";
        let udp_len = 8 + payload.len() as u16;
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
        f.extend_from_slice(&ip);
        let pseudo = fold(ones_sum(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 17]) + udp_len as u64);
        f.extend_from_slice(&1000u16.to_be_bytes());
        f.extend_from_slice(&2000u16.to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&pseudo.to_be_bytes());
        f.extend_from_slice(payload);
        assert!(p.set_data(&f));
        p.vnet = Some(VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            ..VnetHdr::default()
        });
        assert!(p.resolve_offloads());
        assert_eq!(p.vnet, None);
        // Verify: pseudo header + UDP segment (with checksum) sums to 0xffff.
        let total = ones_sum(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 17])
            + udp_len as u64
            + ones_sum(&p.data()[34..]);
        assert_eq!(fold(total), 0xffff);
        // GSO cannot be resolved here.
        p.vnet = Some(VnetHdr {
            gso_type: VnetHdr::GSO_TCPV4,
            ..VnetHdr::default()
        });
        assert!(!p.resolve_offloads());
        pool.free(p);
    }

    #[test]
    fn vnet_hdr_round_trip() {
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::from_bytes(&h.to_bytes()), h);
        assert!(!h.is_plain());
        assert!(VnetHdr::default().is_plain());
    }
}
