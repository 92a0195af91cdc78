//! The protocol handler driven message by message, as a frontend would, with real shared
//! memory (a memfd): when queues start and stop, what their base is, and what bad
//! configurations do.

use std::fs::File;
use std::os::fd::FromRawFd;

use vhost::vhost_user::message::{
    VhostUserMemoryRegion, VhostUserSingleMemoryRegion, VhostUserVringAddrFlags,
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
    h.set_vring_base(idx, 0).unwrap();
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

#[test]
fn set_vring_enable_needs_protocol_features() {
    let (mut h, _dev) = handler();
    configure(&mut h, 0, V1);
    assert!(h.set_vring_enable(0, true).is_err());
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
    h.set_vring_num(1, 256).unwrap();
    h.set_vring_addr(
        1,
        VhostUserVringAddrFlags::empty(),
        USER + DESC,
        USER + USED,
        USER + AVAIL,
        0,
    )
    .unwrap();
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
