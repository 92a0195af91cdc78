//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the descriptor-chain walk
//! of both queue directions against a guest memory map laid out by the input, and the
//! vhost-user protocol handler fed arbitrary messages (each carrying a real shared-memory fd,
//! so memory tables map and the queues they set up are then polled).

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use vhost::vhost_user::BackendReqHandler;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use super::config::{VhostMode, VhostUserConfig};
use super::device::{Device, Handler};
use super::guest_map::GuestMap;
use super::split::{RingLayout, SplitRing};
use super::vring::{ActiveVq, Mem, HDR_LEN_LEGACY, HDR_LEN_V1};
use crate::batch::PacketBatch;
use crate::pool::{PacketPool, PoolConfig};
use crate::port::PortCounters;

/// Guest memory: two regions with a hole between them, so addresses may fall outside memory.
const LOW: (u64, usize) = (0, 0x10000);
const HIGH: (u64, usize) = (0x18000, 0x8000);

thread_local! {
    /// Made once per process: mapping memory and a packet pool per input would dominate the
    /// run time. Every input frees all its packets and rewrites all guest memory.
    static POOL: RefCell<PacketPool> = RefCell::new(
        PacketPool::new(PoolConfig {
            n_buffers: 256,
            ..PoolConfig::default()
        })
        .expect("packet pool"),
    );
    static GUEST: Arc<Mem> = Arc::new(
        GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(LOW.0), LOW.1),
            (GuestAddress(HIGH.0), HIGH.1),
        ])
        .expect("guest memory"),
    );
    static SHM_FILE: std::fs::File = shm_file();
}

/// Shared memory for the messages' fds.
fn shm_file() -> std::fs::File {
    // SAFETY: a valid NUL-terminated name; memfd_create returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"fuzzmem".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: fd is a new descriptor only this File owns.
    let f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.set_len(SHM).expect("memfd size");
    f
}

/// Polls both directions of `vq` a few times: what the guest offers is received, and frames
/// of the sizes `sizes` names are sent into the guest's buffers.
fn exercise(vq: &mut ActiveVq, pool: &mut PacketPool, sizes: &[u8]) {
    for round in 0..3 {
        let mut batch = PacketBatch::new();
        let b = vq.dequeue(pool, &mut batch, 1);
        assert!(b.packets as usize <= crate::batch::BATCH_SIZE);
        for p in batch.drain() {
            pool.free(p);
        }
        let mut batch = PacketBatch::new();
        for (i, s) in sizes.iter().enumerate().take(8) {
            let Some(mut p) = pool.alloc() else { break };
            let len = 14 + (*s as usize) * (1 + round * 40);
            let frame: Vec<u8> = (0..len).map(|k| (k + i) as u8).collect();
            if p.set_data(&frame) {
                if let Err(p) = batch.push(p) {
                    pool.free(p);
                }
            } else {
                pool.free(p);
            }
        }
        vq.enqueue(pool, &mut batch);
        for p in batch.drain() {
            pool.free(p);
        }
    }
}

/// Walks descriptor chains the input lays out. Input: ring size exponent, flags (mergeable
/// buffers, legacy header, event index, free layout), three ring offsets, the first avail
/// index, frame sizes, then the bytes of low guest memory (descriptor table, rings, buffers).
#[doc(hidden)]
pub fn fuzz_descriptor_chains(data: &[u8]) {
    if data.len() < 16 {
        return;
    }
    let (head, rest) = data.split_at(16);
    let size = 1u16 << (head[0] % 9);
    let flags = head[1];
    let word = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]) as u64;
    let layout = if flags & 8 != 0 {
        // Anywhere, including misaligned, straddling the hole, or in the high region.
        RingLayout {
            size,
            desc: GuestAddress(word(2) * 2),
            avail: GuestAddress(word(4) * 2),
            used: GuestAddress(word(6) * 2),
        }
    } else {
        RingLayout {
            size,
            desc: GuestAddress(0),
            avail: GuestAddress(0x1000),
            used: GuestAddress(0x2000),
        }
    };
    let next_avail = u16::from_le_bytes([head[8], head[9]]);
    let sizes = &head[10..16];
    let mem = GUEST.with(Arc::clone);
    let n = rest.len().min(LOW.1);
    mem.write_slice(&rest[..n], GuestAddress(0))
        .expect("inside memory");
    mem.write_slice(&vec![0; LOW.1 - n], GuestAddress(n as u64))
        .expect("inside memory");
    mem.write_slice(&vec![0; HIGH.1], GuestAddress(HIGH.0))
        .expect("inside memory");
    let Ok(ring) = SplitRing::new(
        GuestMap::new(&mem),
        &layout,
        next_avail,
        next_avail,
        flags & 4 != 0,
    ) else {
        return;
    };
    let hdr_len = if flags & 2 != 0 {
        HDR_LEN_LEGACY
    } else {
        HDR_LEN_V1
    };
    let mut vq = ActiveVq::new(ring, hdr_len, flags & 1 != 0);
    // Offloads too: the header the guest wrote is read and checked.
    vq.host_offloads = flags & 16 != 0;
    // And UDP segmentation (USO) from guests that acked it.
    vq.host_uso = vq.host_offloads && flags & 32 != 0;
    POOL.with(|p| exercise(&mut vq, &mut p.borrow_mut(), sizes));
}

// vhost-user requests that carry fds.
const SET_MEM_TABLE: u32 = 5;
const SET_LOG_BASE: u32 = 6;
const SET_LOG_FD: u32 = 7;
const SET_VRING_KICK: u32 = 12;
const SET_VRING_CALL: u32 = 13;
const SET_VRING_ERR: u32 = 14;
const SET_BACKEND_REQ_FD: u32 = 21;
const SET_INFLIGHT_FD: u32 = 32;
const ADD_MEM_REG: u32 = 37;

/// Size of the shared memory the messages' fds refer to.
const SHM: u64 = 1 << 20;

/// Feeds the protocol handler the vhost-user messages of the input (12-byte header: request,
/// flags, payload size; then the payload), each sent with the fds it carries (all of one real shared memory), then polls every queue the messages started.
#[doc(hidden)]
pub fn fuzz_vhost_messages(data: &[u8]) {
    let cfg = VhostUserConfig::new("fuzz", "/nonexistent", VhostMode::Server);
    let dev = Arc::new(Device::new(cfg, PortCounters::new_shared()));
    let handler = Arc::new(Mutex::new(Handler::new(Arc::clone(&dev))));
    let Ok((front, back)) = UnixStream::pair() else {
        return;
    };
    let shm = SHM_FILE.with(|f| f.as_raw_fd());
    let _ = front.set_nonblocking(true);
    // Bounded: a message promising more than it holds fails instead of waiting.
    let _ = back.set_read_timeout(Some(std::time::Duration::from_millis(20)));
    let mut req = BackendReqHandler::from_stream(back, Arc::clone(&handler));
    let mut rest = data;
    let mut sink = [0u8; 4096];
    // Bounded: at most 64 messages per input.
    for _ in 0..64 {
        if rest.len() < 12 {
            break;
        }
        let size = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        let len = (12 + size.min(rest.len() - 12)).min(rest.len());
        let (msg, tail) = rest.split_at(len);
        rest = tail;
        // As many fds as the request carries (a frontend sends them only where the protocol
        // has them: the handler refuses unexpected ones).
        let request = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
        let word = |at: usize| {
            msg.get(12 + at..12 + at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let n_fds = match request {
            SET_MEM_TABLE => word(0).min(8) as usize,
            SET_VRING_KICK | SET_VRING_CALL | SET_VRING_ERR => usize::from(word(0) & 0x100 == 0),
            SET_LOG_BASE | SET_LOG_FD | SET_BACKEND_REQ_FD | SET_INFLIGHT_FD | ADD_MEM_REG => 1,
            _ => 0,
        };
        let fds = vec![shm; n_fds];
        if front.send_with_fds(&[msg], &fds).is_err() {
            break;
        }
        if rest.len() < 12 {
            // A truncated last message reads as end of stream rather than blocking.
            let _ = front.shutdown(std::net::Shutdown::Write);
        }
        if req.handle_request().is_err() {
            break;
        }
        // Replies the frontend would read, so the socket never fills.
        while let Ok(n) = std::io::Read::read(&mut &front, &mut sink) {
            if n == 0 {
                break;
            }
        }
    }
    POOL.with(|pool| {
        for cell in dev.vqs.iter() {
            if let Some(vq) = cell.take().as_mut() {
                vq.call = None;
                exercise(vq, &mut pool.borrow_mut(), &[60, 0, 200, 7]);
            }
        }
    });
    drop(req);
    drop(handler);
}
