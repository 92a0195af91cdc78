//! The protocol handler driven message by message, as a frontend would, with real shared
//! memory (a memfd): when queues start and stop, what their base is, and what bad
//! configurations do.

use std::fs::File;
use std::os::fd::FromRawFd;

use vhost::vhost_user::message::{
    VhostUserLog, VhostUserMemoryRegion, VhostUserSingleMemoryRegion, VhostUserVringAddrFlags,
};
use vhost::vhost_user::VhostUserBackendReqHandlerMut;
use vm_memory::GuestMemoryBackend;

use super::*;
use crate::vhost::config::VhostMode;

/// Where the frontend has the guest memory mapped (its own address space).
const USER: u64 = 0x7f00_0000_0000;
const SIZE: u64 = 1 << 20;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x3000;
const USED: u64 = 0x4000;

fn memfd(size: u64) -> File {
    // SAFETY: a valid NUL-terminated name; memfd_create returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"guest".as_ptr(), 0) };
    assert!(fd >= 0);
    // SAFETY: fd is a new descriptor only this File owns.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(size).unwrap();
    f
}

fn handler() -> (Handler, Arc<Device>) {
    let cfg = VhostUserConfig::new("t", "/nonexistent", VhostMode::Server);
    let dev = Arc::new(Device::new(cfg, PortCounters::new_shared()));
    (Handler::new(Arc::clone(&dev)), dev)
}

fn running(dev: &Device, idx: usize) -> bool {
    dev.vqs[idx].take().is_some()
}

/// Memory at guest address 0, and virtqueue `idx` configured (not yet kicked).
fn configure(h: &mut Handler, idx: u32, features: u64) {
    h.set_features(features).unwrap();
    let region = VhostUserMemoryRegion::new(0, SIZE, USER, 0);
    h.set_mem_table(&[region], vec![memfd(SIZE)], None).unwrap();
    place_ring(h, idx);
    h.set_vring_base(idx, 0).unwrap();
}

/// Virtqueue `idx`'s size and addresses (in the memory at guest address 0).
fn place_ring(h: &mut Handler, idx: u32) {
    h.set_vring_num(idx, 256).unwrap();
    h.set_vring_addr(
        idx,
        VhostUserVringAddrFlags::empty(),
        USER + DESC,
        USER + USED,
        USER + AVAIL,
        0,
    )
    .unwrap();
}

const V1: u64 = 1 << 32;

#[test]
fn without_protocol_features_a_kicked_ring_runs_and_get_vring_base_stops_it() {
    let (mut h, dev) = handler();
    configure(&mut h, 1, V1);
    assert!(!running(&dev, 1));
    h.set_vring_kick(1, None).unwrap();
    assert!(running(&dev, 1), "started by the kick");
    let state = h.get_vring_base(1).unwrap();
    assert_eq!({ state.num }, 0, "the base it was given, nothing consumed");
    assert!(!running(&dev, 1), "stopped");
    assert_eq!(dev.protocol_errors.load(Ordering::Relaxed), 0);
}

#[test]
fn with_protocol_features_a_ring_waits_for_set_vring_enable() {
    let (mut h, dev) = handler();
    configure(&mut h, 0, V1 | F_PROTOCOL_FEATURES);
    h.set_vring_kick(0, None).unwrap();
    assert!(!running(&dev, 0), "disabled until enabled");
    assert_eq!(dev.rx_ready.load(Ordering::Relaxed), 0);
    h.set_vring_enable(0, true).unwrap();
    assert!(running(&dev, 0));
    assert_eq!(
        dev.rx_ready.load(Ordering::Relaxed),
        1,
        "guest RX queue of pair 0"
    );
    h.set_vring_enable(0, false).unwrap();
    assert!(!running(&dev, 0));
    assert_eq!(dev.rx_ready.load(Ordering::Relaxed), 0);
}

/// QEMU 7.2's order (`vhost_net_start`): the enable state first, then the features, then the
/// rings; the enable is not sent again.
#[test]
fn an_enable_before_the_features_holds_once_the_ring_starts() {
    let (mut h, dev) = handler();
    assert!(!h.protocol_features_set());
    h.early(Early::VringEnable {
        index: 0,
        enable: true,
    })
    .unwrap();
    configure(&mut h, 0, V1 | F_PROTOCOL_FEATURES);
    assert!(!running(&dev, 0), "not kicked yet");
    h.set_vring_kick(0, None).unwrap();
    assert!(running(&dev, 0), "enabled before, started now");
    assert_eq!(dev.protocol_errors.load(Ordering::Relaxed), 0);
    // An index beyond the device is refused and counted, not applied.
    let n = h.vrings.len() as u32;
    assert!(h
        .early(Early::VringEnable {
            index: n,
            enable: true
        })
        .is_err());
    assert_eq!(dev.protocol_errors.load(Ordering::Relaxed), 1);
    assert!(dev.last_error.lock().unwrap().is_some());
}

#[test]
fn mtu_and_rarp_need_their_protocol_features() {
    let (mut h, dev) = handler();
    assert!(h.early(Early::Mtu(9000)).is_err(), "NET_MTU not acked");
    h.set_protocol_features(offered_protocol().bits()).unwrap();
    assert!(h.early(Early::Mtu(60)).is_err(), "below 68");
    h.early(Early::Mtu(9000)).unwrap();
    assert_eq!(dev.guest_mtu.load(Ordering::Relaxed), 9000);
    h.early(Early::Rarp([0x52, 0x54, 0, 0, 0, 7])).unwrap();
    let word = dev.rarp.load(Ordering::Relaxed);
    assert_ne!(word & RARP_PENDING, 0);
    assert_eq!(&word.to_le_bytes()[..6], &[0x52, 0x54, 0, 0, 0, 7]);
    assert_eq!(dev.protocol_errors.load(Ordering::Relaxed), 2);
}

/// QEMU with `queues=2` runs one vhost device per pair on the one socket, each sending the
/// guest's memory with `ADD_MEM_REG` and taking it back with `REM_MEM_REG`.
#[test]
fn a_region_added_once_per_queue_pair_is_mapped_once_and_kept_until_the_last_removal() {
    let (mut h, dev) = handler();
    h.set_features(V1).unwrap();
    let a = VhostUserSingleMemoryRegion::new(0, SIZE, USER, 0);
    h.add_mem_region(&a, memfd(SIZE), None).unwrap();
    h.add_mem_region(&a, memfd(SIZE), None).unwrap();
    assert_eq!(h.mem.as_ref().unwrap().num_regions(), 1);
    place_ring(&mut h, 1);
    h.set_vring_kick(1, None).unwrap();
    assert!(running(&dev, 1));
    // The second pair lets go: the first still uses the memory.
    h.remove_mem_region(&a).unwrap();
    assert!(running(&dev, 1));
    assert_eq!(h.mem.as_ref().unwrap().num_regions(), 1);
    h.remove_mem_region(&a).unwrap();
    assert!(!running(&dev, 1));
    // A different region over the same guest addresses still overlaps.
    h.add_mem_region(&a, memfd(SIZE), None).unwrap();
    let errors = dev.protocol_errors.load(Ordering::Relaxed);
    let b = VhostUserSingleMemoryRegion::new(0, SIZE, USER + 8 * SIZE, 0);
    assert!(h.add_mem_region(&b, memfd(SIZE), None).is_err());
    assert_eq!(dev.protocol_errors.load(Ordering::Relaxed), errors + 1);
}

/// Migration: with a log and `VHOST_F_LOG_ALL`, every write of the switch into guest memory
/// (frames into RX buffers, used rings) is marked; without `LOG_ALL` nothing is.
#[test]
fn with_log_all_the_queues_mark_the_pages_they_write() {
    use std::os::unix::fs::FileExt;
    let (mut h, dev) = handler();
    configure(&mut h, 0, V1 | F_PROTOCOL_FEATURES);
    h.set_vring_kick(0, None).unwrap();
    h.set_vring_enable(0, true).unwrap();
    // 1 MiB of guest memory: 256 pages, 32 bytes of bitmap.
    let log = memfd(4096);
    let reader = log.try_clone().unwrap();
    h.set_log_base(&VhostUserLog::new(32, 0), log).unwrap();
    let bitmap = || {
        let mut b = [0u8; 32];
        reader.read_exact_at(&mut b, 0).unwrap();
        b
    };
    assert_eq!(bitmap(), [0; 32], "no LOG_ALL yet");
    assert!(!dev.logging.load(Ordering::Relaxed));
    h.set_features(V1 | F_PROTOCOL_FEATURES | F_LOG_ALL)
        .unwrap();
    assert!(dev.logging.load(Ordering::Relaxed));
    // Starting the queue wrote the used ring's flags: its page is marked.
    let used_page = (USED / 4096) as usize;
    assert_ne!(bitmap()[used_page / 8] & (1 << (used_page % 8)), 0);
    assert!(running(&dev, 0));
    h.set_features(V1 | F_PROTOCOL_FEATURES).unwrap();
    assert!(!dev.logging.load(Ordering::Relaxed));
}

#[test]
fn rings_outside_guest_memory_do_not_start_and_are_counted() {
    let (mut h, dev) = handler();
    configure(&mut h, 1, V1);
    // A used ring past the end of the region (the frontend's address is inside its mapping of
    // something else).
    h.set_vring_addr(
        1,
        VhostUserVringAddrFlags::empty(),
        USER + DESC,
        USER + SIZE - 16,
        USER + AVAIL,
        0,
    )
    .unwrap();
    h.set_vring_kick(1, None).unwrap();
    assert!(!running(&dev, 1));
    assert!(dev.protocol_errors.load(Ordering::Relaxed) >= 1);
    // An address the frontend never mapped at all.
    h.set_vring_addr(1, VhostUserVringAddrFlags::empty(), 0x10, 0x20, 0x30, 0)
        .unwrap();
    assert!(!running(&dev, 1));
}

#[test]
fn bad_parameters_are_refused() {
    let (mut h, _dev) = handler();
    let n = h.vrings.len() as u32;
    assert!(h.set_vring_num(n, 256).is_err(), "index beyond the device");
    assert!(h.set_vring_num(0, 100).is_err(), "not a power of two");
    assert!(
        h.set_vring_num(0, 65536).is_err(),
        "beyond the split-ring maximum"
    );
    assert!(h.set_vring_base(n, 0).is_err());
    assert!(h.set_vring_kick(n as u8, None).is_err());
    assert!(h.set_features(1 << 63).is_err(), "a feature not offered");
    // Overlapping regions.
    let r1 = VhostUserMemoryRegion::new(0, SIZE, USER, 0);
    let r2 = VhostUserMemoryRegion::new(SIZE / 2, SIZE, USER + SIZE, 0);
    assert!(h
        .set_mem_table(&[r1, r2], vec![memfd(SIZE), memfd(SIZE)], None)
        .is_err());
}

#[test]
fn memory_slots_come_and_go_under_a_running_ring() {
    let (mut h, dev) = handler();
    h.set_features(V1).unwrap();
    let a = VhostUserSingleMemoryRegion::new(0, SIZE, USER, 0);
    h.add_mem_region(&a, memfd(SIZE), None).unwrap();
    place_ring(&mut h, 1);
    h.set_vring_kick(1, None).unwrap();
    assert!(running(&dev, 1));
    // Another region (hot-plugged memory) and its removal leave the ring running.
    let b = VhostUserSingleMemoryRegion::new(4 * SIZE, SIZE, USER + 4 * SIZE, 0);
    h.add_mem_region(&b, memfd(SIZE), None).unwrap();
    assert!(running(&dev, 1));
    assert_eq!(h.mem.as_ref().unwrap().num_regions(), 2);
    h.remove_mem_region(&b).unwrap();
    assert!(running(&dev, 1));
    // Removing the region the ring lives in stops it.
    h.remove_mem_region(&a).unwrap();
    assert!(!running(&dev, 1));
    assert!(h.remove_mem_region(&a).is_err(), "not there any more");
}

#[test]
fn a_reset_stops_everything() {
    let (mut h, dev) = handler();
    configure(&mut h, 0, V1);
    h.set_vring_kick(0, None).unwrap();
    configure(&mut h, 1, V1);
    h.set_vring_kick(1, None).unwrap();
    assert!(running(&dev, 0) && running(&dev, 1));
    h.reset();
    assert!(!running(&dev, 0) && !running(&dev, 1));
    assert_eq!(dev.rx_ready.load(Ordering::Relaxed), 0);
    assert!(h.mem.is_none());
}

/// Found by the fuzz target `vhost_messages`: a region larger than its file mapped pages that
/// raise SIGBUS when the ring is read.
#[test]
fn a_memory_region_beyond_its_file_is_refused() {
    let (mut h, _dev) = handler();
    let region = VhostUserMemoryRegion::new(0, SIZE, USER, 0);
    assert!(h
        .set_mem_table(&[region], vec![memfd(SIZE / 2)], None)
        .is_err());
    let region = VhostUserMemoryRegion::new(0, SIZE, USER, SIZE / 2);
    assert!(h.set_mem_table(&[region], vec![memfd(SIZE)], None).is_err());
    let region = VhostUserMemoryRegion::new(0, SIZE, USER, u64::MAX);
    assert!(h.set_mem_table(&[region], vec![memfd(SIZE)], None).is_err());
    let region = VhostUserMemoryRegion::new(0, SIZE, USER, 0);
    assert!(h.set_mem_table(&[region], vec![memfd(SIZE)], None).is_ok());
}
