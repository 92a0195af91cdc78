//! The packet buffer pool: one allocation made at start, carved into fixed-size buffers.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::batch::PacketBatch;
use crate::packet::Packet;

/// Default bytes of packet data a buffer can hold (an Ethernet frame up to MTU 2000 or so).
pub const DEFAULT_DATA_ROOM: usize = 2048;
/// Default bytes reserved in front of the data, for pushing VLAN tags or tunnel headers and for the
/// virtio-net header that taps and AF_PACKET sockets put in front of a frame.
pub const DEFAULT_HEADROOM: usize = 128;

const HUGEPAGE_SIZE: usize = 2 << 20;
/// Buffers start on cache-line boundaries so that two buffers never share a line.
const BUF_ALIGN: usize = 64;

/// Source of pool ids, so that a packet freed into the wrong pool is recognised.
static NEXT_POOL_ID: AtomicU32 = AtomicU32::new(1);

/// How to size a [`PacketPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Number of buffers; the pool never grows.
    pub n_buffers: usize,
    /// Bytes of data a buffer holds after its headroom.
    pub data_room: usize,
    /// Bytes in front of the data in a fresh buffer.
    pub headroom: usize,
    /// Try to back the pool with 2 MB hugepages (falls back to normal pages when none are free).
    pub hugepages: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            n_buffers: 4096,
            data_room: DEFAULT_DATA_ROOM,
            headroom: DEFAULT_HEADROOM,
            hugepages: false,
        }
    }
}

/// One anonymous mapping holding every buffer of a pool.
struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

/// Bytes of a normal-page pool faulted in at start (or all of it, if smaller): 128 buffers of
/// the default 64 KiB, four 32-packet bursts in flight on each of four ports, which is what a
/// PMD cycles through under load (free buffers are reused lowest index first). The datapath
/// rarely takes a first-touch page fault (and each page faults once at most), while an idle or
/// lightly used switch does not keep every buffer resident.
pub const POPULATE_BYTES: usize = 8 << 20;

impl Region {
    fn map(len: usize, huge: bool) -> Option<Region> {
        // Hugepages are reserved up front anyway: fault them all in now.
        let extra = if huge {
            libc::MAP_HUGETLB | libc::MAP_POPULATE
        } else {
            0
        };
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra;
        // SAFETY: an anonymous mapping at an address of the kernel's choice touches no existing
        // memory; the result is checked for MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let region = NonNull::new(p.cast::<u8>()).map(|ptr| Region { ptr, len })?;
        if !huge {
            region.populate(len.min(POPULATE_BYTES));
        }
        Some(region)
    }

    /// Faults in the first `len` bytes (the buffers handed out first).
    fn populate(&self, len: usize) {
        // SAFETY: the range lies inside this region's own mapping; MADV_POPULATE_WRITE only
        // faults pages in (as writes would), it changes no content.
        let r = unsafe { libc::madvise(self.ptr.as_ptr().cast(), len, libc::MADV_POPULATE_WRITE) };
        if r != 0 {
            // Kernels before 5.14: touch one byte a page (zero, as the page already holds).
            for off in (0..len).step_by(4096) {
                // SAFETY: `off < len <= self.len`, inside the mapping, which nothing else uses
                // yet (the pool is being built).
                unsafe { self.ptr.as_ptr().add(off).write_volatile(0) };
            }
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made by `Region::map` and unmapped only here; the
        // pool only drops its region when no packet points into it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A fixed set of packet buffers owned by one PMD thread.
///
/// All buffers come from a single mapping made by [`PacketPool::new`]; [`alloc`](Self::alloc) and
/// [`free`](Self::free) only move an index on and off a free stack, so the datapath never touches
/// the heap. The pool is `Send` (it can be built on one thread and moved to its PMD) but not
/// `Sync`: one thread allocates and frees.
pub struct PacketPool {
    region: ManuallyDrop<Region>,
    huge: bool,
    id: u32,
    buf_size: usize,
    headroom: u32,
    n_buffers: u32,
    /// Indices of free buffers; capacity `n_buffers`, so pushes never reallocate.
    free: Vec<u32>,
    alloc_failures: u64,
    foreign_frees: u64,
}

// SAFETY: the pool exclusively owns its mapping and free stack, so moving it to another thread
// moves that ownership (the `NonNull` in `Region` is what stops the automatic impl). It stays
// `!Sync`: the free stack is unsynchronised and must be used by one thread at a time.
unsafe impl Send for PacketPool {}

impl PacketPool {
    /// Allocates the pool. Fails only if the kernel refuses the mapping (or `config` is empty).
    pub fn new(config: PoolConfig) -> std::io::Result<PacketPool> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned());
        if config.n_buffers == 0 || config.n_buffers > u32::MAX as usize / 2 {
            return Err(invalid("n_buffers must be between 1 and 2^31"));
        }
        if config.data_room == 0 || config.data_room + config.headroom > u32::MAX as usize / 2 {
            return Err(invalid("data_room must be nonzero and buffers below 2 GB"));
        }
        let buf_size = (config.headroom + config.data_room).div_ceil(BUF_ALIGN) * BUF_ALIGN;
        let total = buf_size
            .checked_mul(config.n_buffers)
            .ok_or_else(|| invalid("pool too large"))?;
        let mut huge = false;
        let mut region = None;
        if config.hugepages {
            region = Region::map(total.div_ceil(HUGEPAGE_SIZE) * HUGEPAGE_SIZE, true);
            huge = region.is_some();
        }
        let region = match region {
            Some(r) => r,
            None => Region::map(total, false).ok_or_else(std::io::Error::last_os_error)?,
        };
        // Hand out low indices first (popped from the end), which keeps a lightly loaded PMD's
        // working set small.
        let free: Vec<u32> = (0..config.n_buffers as u32).rev().collect();
        Ok(PacketPool {
            region: ManuallyDrop::new(region),
            huge,
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            buf_size,
            headroom: config.headroom as u32,
            n_buffers: config.n_buffers as u32,
            free,
            alloc_failures: 0,
            foreign_frees: 0,
        })
    }

    /// Takes a buffer: empty data, default headroom, `in_port` 0, no offload metadata. `None`
    /// when the pool is exhausted (counted in [`alloc_failures`](Self::alloc_failures)).
    #[inline]
    pub fn alloc(&mut self) -> Option<Packet> {
        let Some(idx) = self.free.pop() else {
            self.alloc_failures += 1;
            return None;
        };
        // SAFETY: idx < n_buffers, so the offset stays inside the region; the region is non-null
        // and so is any address inside it.
        let base = unsafe {
            NonNull::new_unchecked(self.region.ptr.as_ptr().add(idx as usize * self.buf_size))
        };
        // SAFETY: idx was on the free stack, so no live packet uses this buffer; the new packet
        // is its only user until it comes back through `free`.
        Some(unsafe { Packet::from_raw(base, idx, self.id, self.buf_size as u32, self.headroom) })
    }

    /// Returns a packet's buffer to the pool.
    ///
    /// A packet from another pool is not taken (its buffer stays out of both pools, which keeps
    /// memory safe); such mistakes are counted in [`foreign_frees`](Self::foreign_frees).
    #[inline]
    pub fn free(&mut self, pkt: Packet) {
        let (base, idx, pool_id) = pkt.into_raw();
        // The address check alone decides (ids could in theory repeat after 2^32 pools): only
        // a buffer of this pool's live mapping at its index's place is taken back.
        let ours = pool_id == self.id
            && idx < self.n_buffers
            && base.as_ptr() as usize
                == self.region.ptr.as_ptr() as usize + idx as usize * self.buf_size;
        if !ours {
            self.foreign_frees += 1;
            return;
        }
        self.free.push(idx);
    }

    /// Frees every packet in `batch`, leaving it empty.
    pub fn free_batch(&mut self, batch: &mut PacketBatch) {
        while let Some(p) = batch.pop() {
            self.free(p);
        }
    }

    /// Number of buffers currently free.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Total number of buffers.
    pub fn capacity(&self) -> usize {
        self.n_buffers as usize
    }

    /// Headroom of a fresh buffer.
    pub fn headroom(&self) -> usize {
        self.headroom as usize
    }

    /// Bytes of data a fresh buffer can take (buffer size minus headroom).
    pub fn data_room(&self) -> usize {
        self.buf_size - self.headroom as usize
    }

    /// Whether the pool got 2 MB hugepages.
    pub fn is_hugepage_backed(&self) -> bool {
        self.huge
    }

    /// How many times [`alloc`](Self::alloc) found the pool empty.
    pub fn alloc_failures(&self) -> u64 {
        self.alloc_failures
    }

    /// How many packets of another pool were handed to [`free`](Self::free).
    pub fn foreign_frees(&self) -> u64 {
        self.foreign_frees
    }
}

impl Drop for PacketPool {
    fn drop(&mut self) {
        if self.free.len() == self.n_buffers as usize {
            // SAFETY: every buffer is back on the free stack, so no packet points into the
            // region; it is dropped exactly once, here.
            unsafe { ManuallyDrop::drop(&mut self.region) };
        }
        // Otherwise live packets (possibly on other threads) still point into the region:
        // leaking the mapping keeps them valid.
    }
}

impl std::fmt::Debug for PacketPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketPool")
            .field("capacity", &self.n_buffers)
            .field("available", &self.free.len())
            .field("buf_size", &self.buf_size)
            .field("hugepages", &self.huge)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(n: usize) -> PacketPool {
        PacketPool::new(PoolConfig {
            n_buffers: n,
            ..PoolConfig::default()
        })
        .unwrap()
    }

    /// Pages of `region` the kernel holds in memory, by `mincore`.
    fn resident_pages(region: &Region) -> usize {
        let mut vec = vec![0u8; region.len.div_ceil(4096)];
        // SAFETY: the range is the region's own mapping and `vec` has one byte per page.
        let r = unsafe { libc::mincore(region.ptr.as_ptr().cast(), region.len, vec.as_mut_ptr()) };
        assert_eq!(r, 0);
        vec.iter().filter(|b| *b & 1 != 0).count()
    }

    #[test]
    fn only_the_first_buffers_are_resident_at_start() {
        let pool = PacketPool::new(PoolConfig {
            n_buffers: 64,
            data_room: 1 << 20,
            headroom: 0,
            hugepages: false,
        })
        .unwrap();
        let resident = resident_pages(&pool.region);
        // The buffers handed out first are in memory; the rest wait for use.
        assert!(
            (POPULATE_BYTES / 4096..POPULATE_BYTES / 4096 + 64).contains(&resident),
            "{resident} pages resident"
        );
    }

    #[test]
    fn alloc_free_round_trip() {
        let mut pool = small(4);
        assert_eq!(pool.available(), 4);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert_eq!(pool.available(), 2);
        assert_eq!(a.len(), 0);
        assert_eq!(a.headroom(), DEFAULT_HEADROOM);
        assert!(a.tailroom() >= DEFAULT_DATA_ROOM);
        pool.free(a);
        pool.free(b);
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn buffers_do_not_overlap() {
        let mut pool = small(8);
        let mut pkts: Vec<Packet> = (0..8).map(|_| pool.alloc().unwrap()).collect();
        for (i, p) in pkts.iter_mut().enumerate() {
            p.set_len(DEFAULT_DATA_ROOM);
            p.data_mut().fill(i as u8);
        }
        for (i, p) in pkts.iter().enumerate() {
            assert!(
                p.data().iter().all(|&b| b == i as u8),
                "buffer {i} overwritten"
            );
        }
        for p in pkts {
            pool.free(p);
        }
    }

    #[test]
    fn exhaustion_returns_none_and_counts() {
        let mut pool = small(2);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert!(pool.alloc().is_none());
        assert!(pool.alloc().is_none());
        assert_eq!(pool.alloc_failures(), 2);
        pool.free(a);
        let c = pool.alloc().unwrap();
        pool.free(b);
        pool.free(c);
    }

    #[test]
    fn foreign_free_is_refused() {
        let mut p1 = small(2);
        let mut p2 = small(2);
        let a = p1.alloc().unwrap();
        p2.free(a);
        assert_eq!(p2.foreign_frees(), 1);
        assert_eq!(p2.available(), 2);
        assert_eq!(p1.available(), 1);
        // p1 is dropped with a buffer outstanding: its mapping is leaked, not unmapped.
    }

    #[test]
    fn fresh_buffer_is_reset() {
        let mut pool = small(1);
        let mut a = pool.alloc().unwrap();
        a.set_len(10);
        a.in_port = 7;
        a.vnet = Some(crate::VnetHdr::default());
        assert!(a.adjust_head(-4));
        pool.free(a);
        let b = pool.alloc().unwrap();
        assert_eq!(
            (b.len(), b.in_port, b.vnet, b.headroom()),
            (0, 0, None, 128)
        );
        pool.free(b);
    }

    #[test]
    fn hugepage_request_falls_back() {
        // Whether or not hugepages are reserved on this machine, the pool must come up.
        let mut pool = PacketPool::new(PoolConfig {
            n_buffers: 16,
            hugepages: true,
            ..PoolConfig::default()
        })
        .unwrap();
        // Not asserted: whether hugepages are free depends on the machine (and on other users).
        eprintln!("hugepage-backed: {}", pool.is_hugepage_backed());
        let mut p = pool.alloc().unwrap();
        p.set_len(100);
        p.data_mut().fill(0xab);
        assert!(p.data().iter().all(|&b| b == 0xab));
        pool.free(p);
    }

    #[test]
    fn invalid_config_is_rejected() {
        assert!(PacketPool::new(PoolConfig {
            n_buffers: 0,
            ..PoolConfig::default()
        })
        .is_err());
    }
}
