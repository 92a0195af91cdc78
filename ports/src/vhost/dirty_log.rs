//! The dirty-page log of a live migration (`VHOST_F_LOG_ALL`, `VHOST_USER_PROTOCOL_F_LOG_SHMFD`).
//!
//! While a VM migrates, QEMU copies its memory to the destination in rounds and copies again
//! every page written since. It cannot see the switch's writes (packets into RX buffers, used
//! ring entries), so the switch marks them in a bitmap QEMU shares through `SET_LOG_BASE`: one
//! bit per 4 KiB page of guest physical memory, set atomically because QEMU clears bits
//! concurrently as it copies pages.

use std::fs::File;
use std::sync::atomic::{AtomicU8, Ordering};

use vm_memory::mmap::MmapRegion;
use vm_memory::FileOffset;

/// Bytes of guest memory one bit stands for (`VHOST_LOG_PAGE`).
const PAGE: u64 = 4096;

/// A mapped dirty-page bitmap.
pub(crate) struct DirtyLog {
    /// Keeps the mapping behind `bits` alive.
    _map: MmapRegion<()>,
    bits: *mut u8,
    /// Bytes of bitmap from `bits`.
    len: u64,
}

// SAFETY: `bits` points into `_map`, a shared mapping owned by the log; it is only accessed
// through atomic byte operations, so any thread may hold and use it.
unsafe impl Send for DirtyLog {}
// SAFETY: as above: every access is an atomic `fetch_or`.
unsafe impl Sync for DirtyLog {}

impl DirtyLog {
    /// Maps `size` bytes of bitmap found at `offset` in `file`.
    pub(crate) fn map(file: File, size: u64, offset: u64) -> Result<DirtyLog, &'static str> {
        if size == 0 {
            return Err("empty dirty log");
        }
        let end = offset.checked_add(size).ok_or("dirty log size overflows")?;
        // Touching pages past the end of the file raises SIGBUS (as for memory regions).
        let meta = file
            .metadata()
            .map_err(|_| "dirty log fd cannot be inspected")?;
        if meta.is_file() && end > meta.len() {
            return Err("dirty log extends beyond the end of its file");
        }
        let total = usize::try_from(end).map_err(|_| "dirty log too large")?;
        // Mapped from the start of the file: the offset need not be page-aligned.
        let map = MmapRegion::from_file(FileOffset::new(file, 0), total)
            .map_err(|_| "dirty log cannot be mapped")?;
        // SAFETY: offset < offset + size = total, the mapping's length.
        let bits = unsafe { map.as_ptr().add(offset as usize) };
        Ok(DirtyLog {
            _map: map,
            bits,
            len: size,
        })
    }

    /// Marks the pages of guest physical range `gpa .. gpa + len` dirty. Pages beyond the
    /// bitmap (which covers all of the guest's memory) are ignored.
    pub(crate) fn mark(&self, gpa: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = gpa / PAGE;
        let last = gpa.saturating_add(len - 1) / PAGE;
        for page in first..=last {
            let byte = page / 8;
            if byte >= self.len {
                break;
            }
            // SAFETY: byte < len, inside the mapping (see `map`); the bitmap is shared with
            // another process and only ever accessed atomically here.
            let cell = unsafe { AtomicU8::from_ptr(self.bits.add(byte as usize)) };
            let bit = 1u8 << (page % 8);
            // Most marks hit pages already dirty: read first, write only a new bit.
            if cell.load(Ordering::Relaxed) & bit == 0 {
                cell.fetch_or(bit, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::FileExt;

    fn memfd(size: u64) -> File {
        // SAFETY: a valid NUL-terminated name; memfd_create returns a new descriptor or -1.
        let fd = unsafe { libc::memfd_create(c"log".as_ptr(), 0) };
        assert!(fd >= 0);
        // SAFETY: fd is a new descriptor only this File owns.
        let f = unsafe { File::from_raw_fd(fd) };
        f.set_len(size).unwrap();
        f
    }

    #[test]
    fn marks_every_page_of_a_range_in_the_shared_file() {
        let f = memfd(4096);
        let reader = f.try_clone().unwrap();
        // The bitmap at offset 100 of the file, 16 bytes: 128 pages.
        let log = DirtyLog::map(f, 16, 100).unwrap();
        log.mark(0x1000, 1); // page 1
        log.mark(0x2fff, 2); // pages 2 and 3
        log.mark(0x9000, 0x2000); // pages 9 and 10
        log.mark(0, 0); // nothing
        log.mark(127 * 4096, 1 << 20); // page 127, the rest is past the bitmap
        let mut b = [0u8; 18];
        reader.read_exact_at(&mut b, 99).unwrap();
        assert_eq!(b[0], 0, "before the bitmap");
        assert_eq!(b[1], 0b0000_1110);
        assert_eq!(b[2], 0b0000_0110);
        assert_eq!(b[16], 0b1000_0000);
        assert_eq!(b[17], 0, "after the bitmap");
    }

    #[test]
    fn a_log_past_the_end_of_its_file_is_refused() {
        assert!(DirtyLog::map(memfd(4096), 4096, 1).is_err());
        assert!(DirtyLog::map(memfd(4096), 0, 0).is_err());
        assert!(DirtyLog::map(memfd(4096), u64::MAX, 2).is_err());
    }
}
