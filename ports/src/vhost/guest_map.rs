//! Copying packet data to and from guest memory.
//!
//! Hand-rolled on purpose: `vm-memory`'s `read_slice`/`write_slice` go through a generic
//! region-splitting iterator that took over half the time of a 64-byte forward in the profile.
//! Here each buffer is checked once to lie inside one region, then copied with one `memcpy`.
//! Descriptors and rings still go through `virtio-queue` over `vm-memory`.

use std::sync::Arc;

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

use super::vring::Mem;

/// One region: guest physical range and where the switch mapped it.
struct Region {
    gpa: u64,
    len: u64,
    host: *mut u8,
}

/// Guest memory as a short list of mapped regions, for bounds-checked bulk copies.
pub(crate) struct GuestMap {
    /// Keeps the mappings behind `regions[..].host` alive as long as this map.
    _mem: Arc<Mem>,
    regions: Vec<Region>,
}

// SAFETY: the raw pointers point into mappings owned by `_mem` (which is Send + Sync); the map
// itself never hands out references, only copies through them.
unsafe impl Send for GuestMap {}
// SAFETY: as above; every method takes `&self` and copies, so sharing is like sharing `_mem`.
unsafe impl Sync for GuestMap {}

impl GuestMap {
    /// The regions of `mem`.
    pub(crate) fn new(mem: &Arc<Mem>) -> GuestMap {
        let regions = mem
            .iter()
            .filter_map(|r| {
                let host = r.get_host_address(MemoryRegionAddress(0)).ok()?;
                Some(Region {
                    gpa: r.start_addr().0,
                    len: r.len(),
                    host,
                })
            })
            .collect();
        GuestMap {
            _mem: Arc::clone(mem),
            regions,
        }
    }

    /// Host address of guest range `addr .. addr + len`, if all of it lies in one region.
    #[inline]
    pub(crate) fn host(&self, addr: GuestAddress, len: usize) -> Option<*mut u8> {
        for r in &self.regions {
            let off = addr.0.wrapping_sub(r.gpa);
            if addr.0 >= r.gpa && off <= r.len && len as u64 <= r.len - off {
                // SAFETY: off + len <= r.len, so the offset stays inside the region's mapping.
                return Some(unsafe { r.host.add(off as usize) });
            }
        }
        None
    }

    /// Guest address of host address `host`, if it lies in guest memory (the reverse of
    /// [`host`](Self::host); for the dirty-page log, off the common path).
    pub(crate) fn gpa_of(&self, host: *const u8) -> Option<GuestAddress> {
        self.regions.iter().find_map(|r| {
            let off = (host as u64).wrapping_sub(r.host as u64);
            (host as u64 >= r.host as u64 && off < r.len).then(|| GuestAddress(r.gpa + off))
        })
    }

    /// Copies guest bytes at `addr` into `dst`; false (nothing copied) if the range is not
    /// all inside guest memory.
    #[inline]
    pub(crate) fn read(&self, addr: GuestAddress, dst: &mut [u8]) -> bool {
        let Some(src) = self.host(addr, dst.len()) else {
            return false;
        };
        // SAFETY: `src .. src + dst.len()` lies in a live mapping (checked by `host`, kept by
        // `_mem`) that does not overlap `dst`, a buffer of the switch's own. The guest may write
        // the bytes meanwhile; it then gets garbage in its own packet, as with any device.
        unsafe { crate::copy::copy(dst.as_mut_ptr(), src, dst.len()) };
        true
    }

    /// Copies `src` into guest memory at `addr`; false (nothing copied) if the range is not all
    /// inside guest memory.
    #[inline]
    pub(crate) fn write(&self, addr: GuestAddress, src: &[u8]) -> bool {
        let Some(dst) = self.host(addr, src.len()) else {
            return false;
        };
        // SAFETY: as in `read`, with the roles swapped; no Rust reference to guest memory exists.
        unsafe { crate::copy::copy(dst, src.as_ptr(), src.len()) };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    #[test]
    fn copies_stay_inside_single_regions() {
        let mem = Arc::new(
            GuestMemoryMmap::from_ranges(&[
                (GuestAddress(0x1000), 0x1000),
                (GuestAddress(0x10000), 0x2000),
            ])
            .unwrap(),
        );
        let map = GuestMap::new(&mem);
        assert!(map.write(GuestAddress(0x1ff0), &[7; 16]));
        let mut b = [0u8; 16];
        assert!(map.read(GuestAddress(0x1ff0), &mut b));
        assert_eq!(b, [7; 16]);
        // Past the end, across the gap, below the start, wrapping around.
        assert!(!map.write(GuestAddress(0x1ff1), &[1; 16]));
        assert!(!map.read(GuestAddress(0x1800), &mut [0; 0x1000]));
        assert!(!map.write(GuestAddress(0x0ff0), &[1; 16]));
        assert!(!map.read(GuestAddress(u64::MAX - 4), &mut b));
        assert!(!map.read(GuestAddress(0x3000), &mut b));
        assert!(map.read(GuestAddress(0x11ff0), &mut b));
        assert!(map.read(GuestAddress(0x12000), &mut []));
        assert!(!map.read(GuestAddress(0x12000), &mut [0]));
        // Host addresses map back to the guest addresses they came from.
        let h = map.host(GuestAddress(0x10010), 4).unwrap();
        assert_eq!(map.gpa_of(h), Some(GuestAddress(0x10010)));
        let h = map.host(GuestAddress(0x1fff), 1).unwrap();
        assert_eq!(map.gpa_of(h), Some(GuestAddress(0x1fff)));
        assert_eq!(map.gpa_of(std::ptr::null()), None);
    }
}
