//! Giving freed heap memory back to the kernel after large control-plane work.
//!
//! A bulk `add-flows` or a snapshot of a million rules allocates and frees hundreds of
//! megabytes of small strings. glibc's allocator keeps freed memory inside its heap for reuse,
//! so the daemon's resident size would stay at its peak though the rules need far less;
//! `malloc_trim` releases the free pages in the middle of the heap too.

/// Returns the heap's free pages to the kernel (glibc only; elsewhere nothing to do). Costs a
/// walk over the heap's free lists: call it after large changes, not per request.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and madvises the allocator's own free memory; it is
    // thread-safe (it takes the arenas' locks) and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn freed_memory_leaves_the_resident_set() {
        fn rss_kb() -> u64 {
            let s = std::fs::read_to_string("/proc/self/status").unwrap();
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap()
        }
        // Many small blocks (below the mmap threshold), touched, then freed but the last one,
        // which keeps the heap's top in place so an ordinary trim could not shrink it.
        let mut blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 512]).collect();
        let keep = blocks.pop();
        drop(blocks);
        let before = rss_kb();
        super::release_free_heap();
        let after = rss_kb();
        drop(keep);
        assert!(
            after + 50_000 < before,
            "RSS {before} kB before the trim, {after} kB after: the ~100 MB freed stayed"
        );
    }
}
