//! Copying packet-sized byte ranges without a call into libc.
//!
//! Hand-rolled because it is the hot path: a 64-byte frame is copied twice per hop (out of one
//! guest, into another), and perf showed most of the forwarding time sampled at the entry of
//! libc's `memmove` for these calls. Copies up to [`INLINE_MAX`] bytes are done inline with
//! overlapping unaligned word moves (as DPDK's `rte_memcpy` does); longer ones go to
//! `ptr::copy_nonoverlapping`. Every load and store stays inside `[src, src + n)` and
//! `[dst, dst + n)`, which matters for guest memory: a copy never touches a byte next to the
//! buffer it was checked for.

use std::ptr::{read_unaligned, write_unaligned};

/// Longest copy done inline.
pub const INLINE_MAX: usize = 256;

/// Copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// As for `ptr::copy_nonoverlapping`: `src` valid for `n` reads, `dst` for `n` writes, the two
/// ranges not overlapping.
#[inline(always)]
pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) {
    type W32 = [u8; 32];
    // SAFETY: in every arm, each access lies within the first `n` bytes of `src`/`dst`,
    // because the arm's word size is at most `n` and tail words end exactly at `n`.
    unsafe {
        if n <= 16 {
            if n >= 8 {
                let a = read_unaligned(src as *const u64);
                let b = read_unaligned(src.add(n - 8) as *const u64);
                write_unaligned(dst as *mut u64, a);
                write_unaligned(dst.add(n - 8) as *mut u64, b);
            } else if n >= 4 {
                let a = read_unaligned(src as *const u32);
                let b = read_unaligned(src.add(n - 4) as *const u32);
                write_unaligned(dst as *mut u32, a);
                write_unaligned(dst.add(n - 4) as *mut u32, b);
            } else {
                for i in 0..n {
                    *dst.add(i) = *src.add(i);
                }
            }
        } else if n <= 32 {
            let a = read_unaligned(src as *const u128);
            let b = read_unaligned(src.add(n - 16) as *const u128);
            write_unaligned(dst as *mut u128, a);
            write_unaligned(dst.add(n - 16) as *mut u128, b);
        } else if n <= INLINE_MAX {
            // Straight-line code, no loop: LLVM turns a loop of word copies back into a call to
            // libc's `memcpy` (perf showed that call for every 64-byte frame). The first `k`
            // bytes in 32-byte words from the start, the last `k` in words ending at `n`,
            // where `k` (32, 64 or 128) is at least half of `n`, so the two cover it.
            let w = |o: usize| {
                write_unaligned(
                    dst.add(o) as *mut W32,
                    read_unaligned(src.add(o) as *const W32),
                )
            };
            if n <= 64 {
                w(0);
                w(n - 32);
            } else if n <= 128 {
                w(0);
                w(32);
                w(n - 64);
                w(n - 32);
            } else {
                w(0);
                w(32);
                w(64);
                w(96);
                w(n - 128);
                w(n - 96);
                w(n - 64);
                w(n - 32);
            }
        } else {
            std::ptr::copy_nonoverlapping(src, dst, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_copies_exactly_its_bytes() {
        let src: Vec<u8> = (0..400u32).map(|i| (i * 7 + 1) as u8).collect();
        for n in 0..=300 {
            // Guard bytes around the destination must stay untouched.
            let mut dst = vec![0xeeu8; n + 64];
            // SAFETY: `dst` has 32 + n + 32 bytes, `src` 400 >= 3 + n; distinct vectors.
            unsafe { copy(dst.as_mut_ptr().add(32), src.as_ptr().add(3), n) };
            assert_eq!(&dst[32..32 + n], &src[3..3 + n], "n={n}");
            assert!(dst[..32].iter().all(|&b| b == 0xee), "n={n} wrote before");
            assert!(
                dst[32 + n..].iter().all(|&b| b == 0xee),
                "n={n} wrote after"
            );
        }
    }
}
