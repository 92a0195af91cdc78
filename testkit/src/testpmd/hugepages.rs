//! The 2 MB hugepages testpmd's memory comes from (DPDK needs them even with `--in-memory`),
//! set up on demand: tests should not depend on the machine being prepared by hand.

use std::sync::Mutex;

/// Free 2 MB hugepages [`ensure_hugepages`] aims for: two testpmd instances (128 MB each by
/// default) plus a switch's packet pools, with room to spare.
pub const HUGEPAGES_WANTED: u64 = 512;

/// Below this many free 2 MB hugepages after trying to grow the pool, tests cannot run: two
/// default instances take 128 pages.
const HUGEPAGES_MIN: u64 = 192;

const HUGEPAGES_SYSFS: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB";

fn read_u64(path: &str) -> Result<u64, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    s.trim().parse().map_err(|e| format!("{path}: {e}"))
}

/// Whether a hugetlbfs of 2 MB pages is mounted (DPDK finds page sizes through the mounts, even
/// with `--in-memory`).
fn hugetlbfs_mounted() -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return false;
    };
    mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3
            && f[2] == "hugetlbfs"
            && (f[3].contains("pagesize=2M") || !f[3].contains("pagesize="))
    })
}

fn mount_hugetlbfs() -> Result<(), String> {
    std::fs::create_dir_all("/dev/hugepages").map_err(|e| format!("/dev/hugepages: {e}"))?;
    crate::sys::mount_hugetlbfs("/dev/hugepages", "pagesize=2M")
        .map_err(|e| format!("mount hugetlbfs on /dev/hugepages: {e}"))
}

/// Makes sure 2 MB hugepages are usable: mounts hugetlbfs on `/dev/hugepages` if none is
/// mounted, and grows the pool so that [`HUGEPAGES_WANTED`] pages are free. Needs root when
/// something must change. Succeeds once per process and is a no-op afterwards, so every test
/// can call it; the pool is not shrunk back (other test processes may be using it).
pub fn ensure_hugepages() -> Result<(), String> {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return Ok(());
    }
    if !hugetlbfs_mounted() {
        mount_hugetlbfs()?;
    }
    let free_path = format!("{HUGEPAGES_SYSFS}/free_hugepages");
    let nr_path = format!("{HUGEPAGES_SYSFS}/nr_hugepages");
    let free = read_u64(&free_path).map_err(|e| format!("no 2 MB hugepages: {e}"))?;
    if free < HUGEPAGES_WANTED {
        let total = read_u64(&nr_path)?;
        let want = total + HUGEPAGES_WANTED - free;
        // A partial grant (fragmented memory) is not an error by itself: checked just below.
        std::fs::write(&nr_path, want.to_string())
            .map_err(|e| format!("cannot grow hugepage pool to {want}: {e}"))?;
        let free = read_u64(&free_path)?;
        if free < HUGEPAGES_MIN {
            return Err(format!(
                "only {free} free 2 MB hugepages after asking for {want} (need {HUGEPAGES_MIN})"
            ));
        }
    }
    *done = true;
    Ok(())
}
