//! A split virtqueue as the PMD thread drives it: available ring, descriptor chains, used ring.
//!
//! Hand-rolled on purpose: through `virtio-queue` every ring access looked the address up in
//! the region list again (a third of the time of a 64-byte forward in the profile). Here the
//! rings are checked once, when the queue starts, to be aligned and to lie whole inside one
//! guest region; after that each access is an index check and a load. Descriptor buffers are
//! checked one by one against the guest's regions by [`GuestMap`]. The configuration side
//! (`device.rs`) still validates the rings with `virtio-queue` first.
//!
//! What a guest can get wrong, and what happens:
//! - available index more than a ring ahead: [`RingError`], the queue stops until set up again;
//! - head or next index beyond the ring, chains longer than the ring (loops), nested or
//!   misplaced indirect tables: that chain is an error ([`Desc`] iteration ends with `Err`);
//! - buffers outside guest memory: refused by [`GuestMap`] when copying.

use std::sync::atomic::{fence, AtomicU16, Ordering};

use vm_memory::{Address, GuestAddress};

use super::guest_map::GuestMap;

/// Descriptor flag: the chain goes on at `next`.
pub(crate) const F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer.
pub(crate) const F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of descriptors.
pub(crate) const F_INDIRECT: u16 = 4;
/// Available ring flag: the driver wants no interrupts.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used ring flag: the device wants no kicks.
const USED_F_NO_NOTIFY: u16 = 1;
/// Largest indirect table followed (entries).
const MAX_INDIRECT: usize = 1024;

/// One descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Desc {
    /// Guest address of the buffer.
    pub addr: GuestAddress,
    /// Its length.
    pub len: u32,
    /// `F_*` flags.
    pub flags: u16,
}

impl Desc {
    /// Whether the device may write the buffer.
    pub fn writable(&self) -> bool {
        self.flags & F_WRITE != 0
    }
}

/// An available chain as [`SplitRing::stage`] found it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Staged {
    /// Its head, as the available ring gave it (possibly out of range: the general path
    /// reports that).
    pub head: u16,
    /// Host address of its buffer (after the virtio-net header, for reading), `len` bytes
    /// inside guest memory; null when the chain is not in the common shape.
    pub buf: *mut u8,
    /// Bytes at `buf`.
    pub len: u32,
}

impl Staged {
    /// Nothing staged.
    pub(crate) const NONE: Staged = Staged {
        head: 0,
        buf: std::ptr::null_mut(),
        len: 0,
    };
}

/// The guest broke the ring itself; the queue cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingError;

/// A started split virtqueue.
pub(crate) struct SplitRing {
    map: GuestMap,
    size: u16,
    desc: *const u8,
    avail: *const u8,
    used: *mut u8,
    /// Guest address of the used ring (for the dirty-page log).
    used_gpa: GuestAddress,
    // The two indexes the device moves once per packet, kept in 32 bits and truncated to 16
    // where read (the guest's fields are 16 bits): stored as `u16`, the compiler read each
    // back with a 32-bit load, which the previous packet's 16-bit store cannot forward to,
    // a stall per packet in every burst loop (seen in perf on `push_used`).
    next_avail: u32,
    next_used: u32,
    /// Used index when the guest was last signalled (or checked), for `EVENT_IDX`.
    signalled_used: u16,
    /// Last available index read from the guest.
    avail_idx: u16,
    event_idx: bool,
}

// SAFETY: the ring pointers point into mappings owned by `map` (see `GuestMap`); the ring is
// used by one thread at a time (it lives in a `SpinCell`).
unsafe impl Send for SplitRing {}

/// Where a ring goes, and how the guest laid it out.
pub(crate) struct RingLayout {
    /// Entries (a power of two, at most 32768).
    pub size: u16,
    /// Guest address of the descriptor table.
    pub desc: GuestAddress,
    /// Guest address of the available ring.
    pub avail: GuestAddress,
    /// Guest address of the used ring.
    pub used: GuestAddress,
}

impl SplitRing {
    /// A ring over `map` at `layout`, continuing from `next_avail`/`next_used`. Fails unless
    /// the size is a power of two, the rings are aligned as the spec requires and each lies
    /// whole inside one guest region.
    pub(crate) fn new(
        map: GuestMap,
        layout: &RingLayout,
        next_avail: u16,
        next_used: u16,
        event_idx: bool,
    ) -> Result<SplitRing, &'static str> {
        let size = layout.size;
        if size == 0 || size > 32768 || !size.is_power_of_two() {
            return Err("ring size not a power of two up to 32768");
        }
        let n = size as usize;
        if layout.desc.0 % 16 != 0 || layout.avail.0 % 2 != 0 || layout.used.0 % 4 != 0 {
            return Err("misaligned ring");
        }
        // With the EVENT_IDX words at the end of both rings.
        let desc = map
            .host(layout.desc, 16 * n)
            .ok_or("descriptor table outside memory")?;
        let avail = map
            .host(layout.avail, 6 + 2 * n)
            .ok_or("available ring outside memory")?;
        let used = map
            .host(layout.used, 6 + 8 * n)
            .ok_or("used ring outside memory")?;
        Ok(SplitRing {
            map,
            size,
            desc,
            avail,
            used,
            used_gpa: layout.used,
            next_avail: next_avail.into(),
            next_used: next_used.into(),
            signalled_used: next_used,
            avail_idx: next_avail,
            event_idx,
        })
    }

    /// Index mask of the ring (its size is a power of two).
    #[inline]
    fn mask(&self) -> u32 {
        u32::from(self.size) - 1
    }

    /// The guest memory map.
    pub(crate) fn map(&self) -> &GuestMap {
        &self.map
    }

    /// Guest range of the used ring, with the `avail_event` word after its entries.
    pub(crate) fn used_range(&self) -> (GuestAddress, usize) {
        (self.used_gpa, 6 + 8 * usize::from(self.size))
    }

    /// Next available entry the device will take.
    pub(crate) fn next_avail(&self) -> u16 {
        self.next_avail as u16
    }

    /// Next used entry the device will fill.
    pub(crate) fn next_used(&self) -> u16 {
        self.next_used as u16
    }

    fn atomic(&self, p: *const u8) -> &AtomicU16 {
        // SAFETY: `p` is a 2-aligned address inside a live ring mapping (checked in `new`; ring
        // offsets used here are even and in bounds), and guest memory is only ever accessed
        // atomically or by copies, never through plain references.
        unsafe { &*(p as *const AtomicU16) }
    }

    /// Chains the guest made available and the device has not taken, after reading the
    /// guest's index afresh.
    pub(crate) fn available(&mut self) -> Result<u16, RingError> {
        // SAFETY: offset 2 is the `idx` field of the available ring (inside, see `new`).
        self.avail_idx = u16::from_le(
            self.atomic(unsafe { self.avail.add(2) })
                .load(Ordering::Acquire),
        );
        let n = self.avail_idx.wrapping_sub(self.next_avail as u16);
        if n > self.size {
            return Err(RingError);
        }
        Ok(n)
    }

    /// Looks at the next `out.len()` available chains once, before any is taken (the caller
    /// checked [`available`](Self::available)): notes each head and, for a chain in the common
    /// shape, its buffer, checked against guest memory; and starts loading the buffers' first
    /// lines. For writing when `write` (guest RX: the header's line for reading, the frame's
    /// for writing), else for reading the frame after the `hdr_len`-byte virtio-net header
    /// (guest TX). The burst's guest memory then arrives in parallel instead of one miss per
    /// packet as each is copied (the other core, the guest, wrote these lines last), and the
    /// copies need not read the ring and the descriptors again.
    ///
    /// The common shapes: for reading, one read-only descriptor holding the header and a
    /// frame; for writing, a first descriptor the device may write. Other chains get
    /// [`Staged::buf`] null and go the general way ([`chain`](Self::chain)). What is noted is
    /// what the guest had written when it was read; a guest changing a descriptor it made
    /// available gets the buffer it first named, checked as any other.
    pub(crate) fn stage(&self, write: bool, hdr_len: usize, out: &mut [Staged]) {
        for (k, st) in out.iter_mut().enumerate() {
            let slot = (self.next_avail.wrapping_add(k as u32) & self.mask()) as usize;
            // SAFETY: `slot` < size, inside the available ring checked in `new`.
            let head = u16::from_le(
                self.atomic(unsafe { self.avail.add(4 + 2 * slot) })
                    .load(Ordering::Relaxed),
            );
            *st = Staged {
                head,
                ..Staged::NONE
            };
            if head >= self.size {
                continue;
            }
            let (d, next) = read_desc(self.desc, head as usize);
            if write {
                if d.flags & (F_WRITE | F_INDIRECT) == F_WRITE {
                    if let Some(p) = self.map.host(d.addr, d.len as usize) {
                        *st = Staged {
                            head,
                            buf: p,
                            len: d.len,
                        };
                        // The header's line for reading (it is often left as it is, see
                        // `ActiveVq::write_whole`), the frame's first line for writing.
                        let data = p.wrapping_add(hdr_len.min(d.len as usize));
                        if (data as usize) >> 6 != (p as usize) >> 6 {
                            prefetch(p, false);
                        }
                        prefetch(data, true);
                    }
                }
                continue;
            }
            if d.flags & (F_NEXT | F_WRITE | F_INDIRECT) == 0 && d.len as usize > hdr_len {
                let len = d.len - hdr_len as u32;
                // The whole descriptor, header included (read with offloads).
                if let Some(p) = self.map.host(d.addr, d.len as usize) {
                    let p = p.wrapping_add(hdr_len);
                    *st = Staged { head, buf: p, len };
                    prefetch_frame(p, len as usize);
                }
                continue;
            }
            // Another shape: only a hint for the frame's first lines (after a first descriptor
            // holding the header alone, in the next one).
            let (mut d, mut off) = (d, hdr_len);
            if d.len as usize <= off {
                if d.flags & F_NEXT == 0 || next >= self.size {
                    continue;
                }
                d = read_desc(self.desc, next as usize).0;
                off = 0;
            }
            if d.flags & F_INDIRECT != 0 {
                continue;
            }
            let len = (d.len as usize - off).min(128);
            if let Some(p) = d
                .addr
                .checked_add(off as u64)
                .and_then(|a| self.map.host(a, len))
            {
                prefetch_frame(p, len);
            }
        }
    }

    /// Takes the next available chain, whose head [`stage`](Self::stage) noted.
    pub(crate) fn take_staged(&mut self) {
        self.next_avail = self.next_avail.wrapping_add(1);
    }

    /// Takes the next available chain's head (the caller checked [`available`](Self::available)).
    pub(crate) fn pop(&mut self) -> u16 {
        let slot = (self.next_avail & self.mask()) as usize;
        self.next_avail = self.next_avail.wrapping_add(1);
        // SAFETY: `4 + 2 * slot` is inside the available ring (slot < size, see `new`).
        u16::from_le(
            self.atomic(unsafe { self.avail.add(4 + 2 * slot) })
                .load(Ordering::Relaxed),
        )
    }

    /// Gives back the last `n` chains taken (they were not used).
    pub(crate) fn unpop(&mut self, n: u16) {
        self.next_avail = self.next_avail.wrapping_sub(n.into());
    }

    /// The descriptors of the chain starting at `head`.
    pub(crate) fn chain(&self, head: u16) -> Chain<'_> {
        Chain {
            ring: self,
            table: self.desc,
            entries: self.size as usize,
            next: head as usize,
            ttl: self.size as usize,
            indirect: false,
            done: false,
        }
    }

    /// Puts chain `head` in the used ring with `len` bytes written; seen by the guest at the
    /// next [`publish_used`](Self::publish_used).
    pub(crate) fn push_used(&mut self, head: u16, len: u32) -> Result<(), RingError> {
        if head >= self.size {
            return Err(RingError);
        }
        let slot = (self.next_used & self.mask()) as usize;
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&(head as u32).to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        // SAFETY: `4 + 8 * slot .. + 8` is inside the used ring (slot < size, see `new`); a
        // plain copy into guest memory, which no Rust reference covers.
        unsafe { std::ptr::copy_nonoverlapping(elem.as_ptr(), self.used.add(4 + 8 * slot), 8) };
        self.next_used = self.next_used.wrapping_add(1);
        Ok(())
    }

    /// Takes back the last `n` used entries pushed (not yet published).
    pub(crate) fn unpush(&mut self, n: u16) {
        self.next_used = self.next_used.wrapping_sub(n.into());
    }

    /// Sets the length of the last `n` used entries pushed (not yet published) to zero: their
    /// buffers come back empty.
    pub(crate) fn empty_last(&mut self, n: u16) {
        for k in 1..=n {
            let slot = (self.next_used.wrapping_sub(k.into()) & self.mask()) as usize;
            // SAFETY: the `len` field of used element `slot` (< size) is inside the used ring.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    0u32.to_le_bytes().as_ptr(),
                    self.used.add(4 + 8 * slot + 4),
                    4,
                )
            };
        }
    }

    /// Makes the used entries pushed so far visible to the guest.
    pub(crate) fn publish_used(&mut self) {
        // Release: the buffers' contents and used elements are written before the index.
        // SAFETY: offset 2 is the `idx` field of the used ring.
        self.atomic(unsafe { self.used.add(2) })
            .store((self.next_used as u16).to_le(), Ordering::Release);
    }

    /// Whether the guest wants an interrupt for the entries published since the last call:
    /// with `EVENT_IDX` when the used index passed the guest's `used_event`, else unless it
    /// set `VRING_AVAIL_F_NO_INTERRUPT`.
    pub(crate) fn needs_notification(&mut self) -> bool {
        // The guest's fields are read after the used index was written.
        fence(Ordering::SeqCst);
        let new = self.next_used as u16;
        let old = std::mem::replace(&mut self.signalled_used, new);
        if self.event_idx {
            let at = 4 + 2 * self.size as usize;
            // SAFETY: `used_event` follows the available ring's entries (inside, see `new`).
            let event = u16::from_le(
                self.atomic(unsafe { self.avail.add(at) })
                    .load(Ordering::Relaxed),
            );
            new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            let flags = u16::from_le(self.atomic(self.avail).load(Ordering::Relaxed));
            new != old && flags & AVAIL_F_NO_INTERRUPT == 0
        }
    }

    /// Continues from the guest's used index when it differs from the base the frontend gave
    /// (a frontend reconnecting after the switch went away knows no better base): chains made
    /// available but never used are taken again. Returns whether the indexes moved.
    pub(crate) fn sync_with_used(&mut self) -> bool {
        // SAFETY: offset 2 is the `idx` field of the used ring.
        let used = u16::from_le(
            self.atomic(unsafe { self.used.add(2) })
                .load(Ordering::Acquire),
        );
        if used == self.next_used as u16 {
            return false;
        }
        self.next_used = used.into();
        self.next_avail = used.into();
        self.signalled_used = used;
        self.avail_idx = used;
        true
    }

    /// Asks the guest not to kick: the switch polls.
    pub(crate) fn disable_kicks(&mut self) {
        if !self.event_idx {
            self.atomic(self.used)
                .store(USED_F_NO_NOTIFY.to_le(), Ordering::Relaxed);
        }
        // With EVENT_IDX, `avail_event` is never moved forward, so the guest kicks at most once
        // per wrap of the ring.
    }
}

/// The descriptors of one chain, following an indirect table if there is one. Yields `Err`
/// once (and then ends) when the chain is malformed.
pub(crate) struct Chain<'a> {
    ring: &'a SplitRing,
    table: *const u8,
    entries: usize,
    next: usize,
    /// Descriptors left before the chain counts as a loop.
    ttl: usize,
    indirect: bool,
    done: bool,
}

impl Chain<'_> {
    fn read(&self, i: usize) -> (Desc, u16) {
        read_desc(self.table, i)
    }
}

/// Descriptor `i` of the table at `table` (with its `next` field).
#[inline(always)]
fn read_desc(table: *const u8, i: usize) -> (Desc, u16) {
    let mut raw = [0u8; 16];
    // SAFETY: callers pass a table checked to lie in guest memory with more than `i` entries
    // (the ring's own table, checked in `new`, or an indirect table checked in `next`). A
    // copy: the guest may change it meanwhile, then it gets what it wrote.
    unsafe { std::ptr::copy_nonoverlapping(table.add(16 * i), raw.as_mut_ptr(), 16) };
    let u16_at = |o: usize| u16::from_le_bytes([raw[o], raw[o + 1]]);
    let desc = Desc {
        addr: GuestAddress(u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"))),
        len: u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes")),
        flags: u16_at(12),
    };
    (desc, u16_at(14))
}

/// Starts loading the lines of the first (up to) 128 of the `len` bytes at `p`: those a copy
/// out of the buffer touches first.
#[inline(always)]
fn prefetch_frame(p: *const u8, len: usize) {
    prefetch(p, false);
    if (p as usize & 63) + len.min(128) > 64 {
        prefetch(p.wrapping_add(64), false);
    }
}

/// Starts loading the cache line at `p` (for writing when `write`). A hint: it never faults.
#[inline(always)]
fn prefetch(p: *const u8, write: bool) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetches do not access memory architecturally and never fault. `prefetchw`
    // (asked for by ownership, so the later stores need no second trip to the other core) is
    // a NOP on x86-64 CPUs without it; std's `_MM_HINT_ET0` only emits it when the crate is
    // built for that target feature.
    unsafe {
        if write {
            std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        } else {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, write);
}

impl Iterator for Chain<'_> {
    type Item = Result<Desc, ()>;

    fn next(&mut self) -> Option<Result<Desc, ()>> {
        if self.done {
            return None;
        }
        loop {
            if self.ttl == 0 || self.next >= self.entries {
                // A loop, a chain longer than its table, or an index beyond it.
                self.done = true;
                return Some(Err(()));
            }
            let (d, next) = self.read(self.next);
            self.ttl -= 1;
            if d.flags & F_INDIRECT != 0 {
                let n = d.len as usize / 16;
                // No nesting, no NEXT beside INDIRECT, a whole table of bounded size.
                if self.indirect
                    || d.flags & F_NEXT != 0
                    || d.len as usize % 16 != 0
                    || n == 0
                    || n > MAX_INDIRECT
                {
                    self.done = true;
                    return Some(Err(()));
                }
                let Some(table) = self.ring.map.host(d.addr, d.len as usize) else {
                    self.done = true;
                    return Some(Err(()));
                };
                self.table = table;
                self.entries = n;
                self.ttl = n;
                self.next = 0;
                self.indirect = true;
                continue;
            }
            if d.flags & F_NEXT != 0 {
                self.next = next as usize;
            } else {
                self.done = true;
            }
            return Some(Ok(d));
        }
    }
}
