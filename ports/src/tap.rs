//! `tap` and `internal` ports: kernel tap devices from `/dev/net/tun`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::batch::PacketBatch;
use crate::gso::udp;
use crate::netdev::NetDev;
use crate::packet::VnetHdr;
use crate::pool::PacketPool;
use crate::port::{Burst, Port, PortCounters, PortKind};
use crate::sys::{self, cvt, ifname_to_string, ifreq, TxFailure};

/// Largest frame a tap hands us (64 KB GSO frames plus the virtio-net header); frames that do not
/// fit a pool buffer are read into a scratch buffer of this size and dropped.
const SCRATCH_LEN: usize = 65536 + VnetHdr::LEN;

/// How to create a tap port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapConfig {
    /// Device name; may contain `%d` for the kernel to pick a number.
    pub name: String,
    /// Number of queues (per instance, see [`TapPort::open_instances`]); more than one queue in
    /// all opens the device with `IFF_MULTI_QUEUE`, one fd per queue.
    pub n_queues: usize,
    /// Exchange a virtio-net header with each frame (`IFF_VNET_HDR`): received packets carry it
    /// in [`Packet::vnet`](crate::Packet::vnet) and it is written back on transmit.
    pub vnet_hdr: bool,
    /// With `vnet_hdr`: tell the kernel the switch takes partial checksums, TCP segmentation
    /// offload and (Linux 6.2 on) UDP segmentation offload (`TUNSETOFFLOAD`), so the host stack
    /// hands over unchecksummed frames, TCP segments and `UDP_SEGMENT` super-datagrams up to
    /// 64 KB. Pool buffers must then hold 64 KB frames or those are dropped. A kernel that
    /// refuses USO gets the rest (it then segments UDP itself).
    pub offloads: bool,
}

impl TapConfig {
    /// One queue, no virtio-net header.
    pub fn new(name: &str) -> TapConfig {
        TapConfig {
            name: name.to_owned(),
            n_queues: 1,
            vnet_hdr: false,
            offloads: false,
        }
    }
}

/// A tap device owned by the switch. The device exists while the port does (it is not made
/// persistent), so dropping the port removes the interface.
pub struct TapPort {
    name: String,
    kind: PortKind,
    /// One non-blocking descriptor per queue.
    fds: Vec<OwnedFd>,
    netdev: NetDev,
    vnet_hdr: bool,
    /// Frames written may be UDP GSO (`GSO_UDP_L4`): the kernel takes them (see
    /// [`udp::kernel_takes_uso`]).
    uso: bool,
    port_no: u32,
    counters: Arc<PortCounters>,
    /// Where frames go when the pool is empty or they are too long for a buffer.
    scratch: Box<[u8]>,
}

impl TapPort {
    /// Creates the tap device, opens its queues non-blocking and sets the link up.
    pub fn open(config: &TapConfig) -> io::Result<TapPort> {
        Self::open_kind(config, PortKind::Tap, 1).map(|mut v| v.remove(0))
    }

    /// The bridge's `internal` port: a tap named like the bridge, so the host stack can talk on
    /// the bridge.
    pub fn internal(bridge: &str) -> io::Result<TapPort> {
        Self::internal_instances(bridge, 1).map(|mut v| v.remove(0))
    }

    /// Creates the tap device as `n` port instances, one per PMD thread: the device gets
    /// `n × config.n_queues` queues (`IFF_MULTI_QUEUE` when more than one) and each instance
    /// owns `config.n_queues` of them, receiving what the kernel steers to those queues (by
    /// flow hash, each frame to one queue) and transmitting on them. The instances share one
    /// set of counters; the device lives until the last instance is dropped. `n = 1` is
    /// [`open`](Self::open).
    pub fn open_instances(config: &TapConfig, n: usize) -> io::Result<Vec<TapPort>> {
        Self::open_kind(config, PortKind::Tap, n)
    }

    /// The bridge's `internal` port as `n` instances (one queue each), as in
    /// [`open_instances`](Self::open_instances).
    pub fn internal_instances(bridge: &str, n: usize) -> io::Result<Vec<TapPort>> {
        Self::open_kind(&TapConfig::new(bridge), PortKind::Internal, n)
    }

    fn open_kind(config: &TapConfig, kind: PortKind, n: usize) -> io::Result<Vec<TapPort>> {
        let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_owned());
        if config.n_queues == 0 || n == 0 {
            return Err(invalid("a tap needs at least one queue and one instance"));
        }
        if config.offloads && !config.vnet_hdr {
            return Err(invalid("tap offloads need the virtio-net header"));
        }
        let total = config.n_queues * n;
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if config.vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        if total > 1 {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        let mut name = config.name.clone();
        let mut fds = Vec::with_capacity(total);
        // Known to work once TUNSETOFFLOAD took the USO flags; otherwise by kernel version.
        let mut uso = config.vnet_hdr && udp::kernel_takes_uso();
        for _ in 0..total {
            // SAFETY: the path is a NUL-terminated literal; a non-negative result is a fresh
            // descriptor owned by nobody else.
            let fd = unsafe {
                let fd = cvt(libc::open(
                    c"/dev/net/tun".as_ptr(),
                    libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
                ))?;
                OwnedFd::from_raw_fd(fd)
            };
            let mut req = ifreq(&name)?;
            req.ifr_ifru.ifru_flags = flags as i16;
            // SAFETY: TUNSETIFF reads and writes the `ifreq`, which outlives the call.
            cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut req) })?;
            // With `%d` the kernel picked the name; later queues attach to that device.
            name = ifname_to_string(&req.ifr_name);
            if config.offloads {
                uso = set_offloads(fd.as_raw_fd(), uso)?;
            }
            fds.push(fd);
        }
        NetDev::new(&name)?.set_up()?;
        let counters = PortCounters::new_shared();
        let mut fds = fds.into_iter();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(TapPort {
                name: name.clone(),
                kind,
                fds: fds.by_ref().take(config.n_queues).collect(),
                netdev: NetDev::new(&name)?,
                vnet_hdr: config.vnet_hdr,
                uso,
                port_no: 0,
                counters: Arc::clone(&counters),
                scratch: vec![0u8; SCRATCH_LEN].into_boxed_slice(),
            });
        }
        Ok(out)
    }

    /// The handle used for interface queries (MTU, MAC, flags).
    pub fn netdev(&self) -> &NetDev {
        &self.netdev
    }

    /// Whether frames carry a virtio-net header.
    pub fn has_vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// Whether UDP GSO frames (`GSO_UDP_L4`) go to the kernel whole: the tap has virtio-net
    /// headers and the kernel takes USO in them (Linux 6.2 on). Otherwise they are segmented.
    pub fn takes_uso(&self) -> bool {
        self.uso
    }

    /// Writes the frames of `batch` to the tap, one `write` each (with its virtio-net header
    /// when the tap has them; without, the offloads must already be resolved), freeing every
    /// buffer into `pool`; returns what happened. Failures follow the transmit errno policy of
    /// the kernel ports ([`sys::no_eintr`], [`sys::tx_errno`]): `EINTR` is retried, a transient
    /// failure (queue full, device down) drops the rest of the burst, any other refuses the
    /// frame (an error) and the next is tried.
    fn write_frames(&self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        let fd = self.fds[qid % self.fds.len()].as_raw_fd();
        let vnet_hdr = self.vnet_hdr;
        let mut out = Burst::default();
        let mut give_up = false;
        for pkt in batch.drain() {
            if give_up {
                out.dropped += 1;
                pool.free(pkt);
                continue;
            }
            let r = if vnet_hdr {
                let h = pkt.vnet.unwrap_or_default().to_bytes();
                let iov = [
                    libc::iovec {
                        iov_base: h.as_ptr() as *mut _,
                        iov_len: h.len(),
                    },
                    libc::iovec {
                        iov_base: pkt.data().as_ptr() as *mut _,
                        iov_len: pkt.len(),
                    },
                ];
                // SAFETY: both iovecs point to live readable memory of the stated lengths;
                // writev only reads them.
                sys::no_eintr(|| unsafe { libc::writev(fd, iov.as_ptr(), 2) })
            } else {
                // SAFETY: the packet's data is readable for `len` bytes.
                sys::no_eintr(|| unsafe { libc::write(fd, pkt.data().as_ptr().cast(), pkt.len()) })
            };
            match r {
                Ok(_) => {
                    out.packets += 1;
                    out.bytes += pkt.len() as u64;
                }
                Err(e) => match sys::tx_errno(e) {
                    TxFailure::DropRest => {
                        out.dropped += 1;
                        give_up = true;
                    }
                    TxFailure::Error => out.errors += 1,
                },
            }
            pool.free(pkt);
        }
        out
    }
}

/// Tells the kernel which offloads the switch takes on tap queue `fd` (`TUNSETOFFLOAD`):
/// partial checksums, TCP segmentation and, with `uso`, UDP segmentation. A kernel that does
/// not know the USO flags (before 6.2) refuses the whole set with `EINVAL`; it then gets the
/// set without them. Returns whether USO was taken.
fn set_offloads(fd: RawFd, uso: bool) -> io::Result<bool> {
    let tso = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
    let set = |f: libc::c_uint| {
        // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is passed.
        cvt(unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD as _, f as libc::c_ulong) })
    };
    if uso {
        match set(tso | libc::TUN_F_USO4 | libc::TUN_F_USO6) {
            Ok(_) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::info!(
                    "tap: the kernel refuses UDP segmentation offload ({e}): \
                     UDP GSO is segmented in software"
                );
            }
            Err(e) => return Err(e),
        }
    }
    set(tso)?;
    Ok(false)
}

/// Result of one `read` on a tap descriptor.
fn io_result(n: isize) -> Result<usize, i32> {
    if n < 0 {
        Err(sys::errno())
    } else {
        Ok(n as usize)
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        self.kind
    }

    fn n_rxq(&self) -> usize {
        self.fds.len()
    }

    fn n_txq(&self) -> usize {
        self.fds.len()
    }

    fn port_no(&self) -> u32 {
        self.port_no
    }

    fn set_port_no(&mut self, port_no: u32) {
        self.port_no = port_no;
    }

    fn rx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> usize {
        let fd = self.fds[qid % self.fds.len()].as_raw_fd();
        let hdr = if self.vnet_hdr { VnetHdr::LEN } else { 0 };
        let (mut n, mut bytes, mut dropped, mut errors) = (0usize, 0u64, 0u64, 0u64);
        // A tap gives one frame per read; bounding the loop by the batch size also bounds the
        // number of frames dropped per call when the pool is empty.
        for _ in 0..batch.space() {
            let Some(mut pkt) = pool.alloc() else {
                // No buffer: take the frame out of the kernel anyway so it is counted here
                // (and the queue keeps moving) rather than silently dropped by the kernel.
                // SAFETY: scratch is a writable buffer of the given length.
                let r = unsafe { libc::read(fd, self.scratch.as_mut_ptr().cast(), SCRATCH_LEN) };
                match io_result(r) {
                    Ok(_) => dropped += 1,
                    Err(_) => break,
                }
                continue;
            };
            // Read the header into the headroom just before the data so the frame lands at the
            // usual offset without a copy.
            let start = pkt.headroom().saturating_sub(hdr);
            let buf = &mut pkt.buffer_mut()[start..];
            let room = buf.len();
            // SAFETY: `buf` is writable for `room` bytes (the packet's own buffer).
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), room) };
            match io_result(r) {
                Ok(len) if len >= room => {
                    // Filled the buffer: the frame was (probably) longer and got cut.
                    pool.free(pkt);
                    dropped += 1;
                }
                Ok(len) if len < hdr + 1 => {
                    pool.free(pkt);
                    errors += 1;
                }
                Ok(len) => {
                    if hdr > 0 {
                        let mut h = [0u8; VnetHdr::LEN];
                        h.copy_from_slice(&pkt.buffer_mut()[start..start + hdr]);
                        pkt.vnet = Some(VnetHdr::from_bytes(&h));
                    }
                    pkt.set_bounds(start + hdr, len - hdr);
                    pkt.in_port = self.port_no;
                    bytes += (len - hdr) as u64;
                    n += 1;
                    // Cannot fail: the loop runs at most `space` times.
                    if let Err(p) = batch.push(pkt) {
                        pool.free(p);
                    }
                }
                Err(e) => {
                    pool.free(pkt);
                    if e != libc::EAGAIN && e != libc::EINTR {
                        errors += 1;
                    }
                    break;
                }
            }
        }
        self.counters.add_rx(&Burst {
            packets: n as u64,
            bytes,
            dropped,
            errors,
        });
        n
    }

    fn tx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        // With virtio-net headers the kernel takes every offload (USO only from Linux 6.2);
        // without, partial checksums are completed and GSO packets segmented first (what
        // cannot be resolved is an error).
        let this = &*self;
        batch.send_resolved(
            pool,
            &self.counters,
            |h| this.vnet_hdr && (this.uso || !udp::is_udp_gso(h)),
            |pool, burst| this.write_frames(qid, pool, burst),
        )
    }

    fn counters(&self) -> Arc<PortCounters> {
        Arc::clone(&self.counters)
    }

    fn netdev(&self) -> Option<&NetDev> {
        Some(&self.netdev)
    }

    fn rx_polls_by_syscall(&self) -> bool {
        true
    }

    fn rx_fd(&self, qid: usize) -> Option<RawFd> {
        self.fds.get(qid).map(AsRawFd::as_raw_fd)
    }
}
