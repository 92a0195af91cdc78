//! `system` ports over AF_XDP sockets (copy mode), one socket per receive queue.
//!
//! Each socket has its own UMEM (a region of fixed-size frames shared with the kernel) and four
//! single-producer/single-consumer rings in shared memory: the *fill* ring gives the kernel empty
//! frames to receive into, the *rx* ring returns them full, the *tx* ring passes frames to send,
//! the *completion* ring returns them once sent. A small XDP program ([`crate::bpf`]) steers each
//! queue's frames to its socket. Frames are copied between UMEM and pool buffers, so pool packets
//! stay independent of the socket.
//!
//! AF_XDP carries no offload metadata: a frame the peer's stack left with a partial checksum
//! (CHECKSUM_PARTIAL, normal on veth with tx checksum offload on) arrives with that checksum
//! unfinished, and GSO frames cannot be received whole. Turn tx offloads off on the peer
//! (`ethtool -K PEER tx off`), or use AF_PACKET with `vnet_hdr`, which carries the metadata.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::afpacket::TxSocket;
use crate::batch::PacketBatch;
use crate::bpf::{XdpMode, XskRedirect};
use crate::netdev::NetDev;
use crate::pool::PacketPool;
use crate::port::{Burst, Port, PortCounters, PortKind};
use crate::sys::{cvt, getsockopt, setsockopt, socket, Mmap};

/// Ask the kernel for its drop counters once per this many receive calls (a power of two).
const KERNEL_STATS_EVERY: u32 = 1024;

/// How to attach an AF_XDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// Existing kernel interface to attach to.
    pub ifname: String,
    /// Number of queues to open (from 0); `None` opens every receive queue of the device.
    pub n_queues: Option<usize>,
    /// UMEM frame size: 2048 or 4096 (a frame holds 256 bytes of kernel headroom plus the
    /// packet).
    pub frame_size: u32,
    /// UMEM frames per queue (a power of two); half receive, half transmit.
    pub frames_per_queue: u32,
    /// XDP hook; `None` tries the driver hook and falls back to generic (SKB) XDP.
    pub mode: Option<XdpMode>,
}

impl AfXdpConfig {
    /// Defaults: all queues, 2048 frames of 4 KB per queue (8 MB), automatic hook.
    pub fn new(ifname: &str) -> AfXdpConfig {
        AfXdpConfig {
            ifname: ifname.to_owned(),
            n_queues: None,
            frame_size: 4096,
            frames_per_queue: 2048,
            mode: None,
        }
    }
}

/// One mapped XDP ring. The kernel and this side each own one of the two indices; the other is
/// read with acquire ordering, ours published with release ordering.
struct Ring {
    /// Keeps the ring mapped while the pointers below are in use.
    _map: Mmap,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut u8,
    mask: u32,
    size: u32,
    /// Our copy of the index we own (and a cache of the other).
    prod: u32,
    cons: u32,
}

impl Ring {
    /// Maps ring `pgoff` of `fd` with `size` entries of `entry` bytes, at offsets `off`.
    fn map(
        fd: i32,
        off: &libc::xdp_ring_offset,
        pgoff: u64,
        size: u32,
        entry: usize,
    ) -> io::Result<Ring> {
        let len = off.desc as usize + size as usize * entry;
        let map = Mmap::shared(fd, len, pgoff as i64, true)?;
        // SAFETY: the kernel's offsets all lie within the mapping of `len` bytes it describes;
        // the index words are 4-byte aligned and only ever accessed atomically.
        let (producer, consumer, flags, descs) = unsafe {
            (
                map.ptr.add(off.producer as usize) as *const AtomicU32,
                map.ptr.add(off.consumer as usize) as *const AtomicU32,
                map.ptr.add(off.flags as usize) as *const AtomicU32,
                map.ptr.add(off.desc as usize),
            )
        };
        let mut r = Ring {
            _map: map,
            producer,
            consumer,
            flags,
            descs,
            mask: size - 1,
            size,
            prod: 0,
            cons: 0,
        };
        r.prod = r.producer().load(Ordering::Relaxed);
        r.cons = r.consumer().load(Ordering::Relaxed);
        Ok(r)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into `self.map`, which lives as long as `self` (see `map`).
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as in `producer`.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as in `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Producer side: free slots.
    fn free_slots(&mut self) -> u32 {
        self.cons = self.consumer().load(Ordering::Acquire);
        self.size - self.prod.wrapping_sub(self.cons)
    }

    /// Producer side: publishes `n` written entries.
    fn submit(&mut self, n: u32) {
        self.prod = self.prod.wrapping_add(n);
        self.producer().store(self.prod, Ordering::Release);
    }

    /// Producer side: entries the kernel has not consumed yet.
    fn pending(&self) -> u32 {
        self.prod
            .wrapping_sub(self.consumer().load(Ordering::Acquire))
    }

    /// Consumer side: entries ready.
    fn available(&mut self) -> u32 {
        self.prod = self.producer().load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons)
    }

    /// Consumer side: hands `n` read entries back.
    fn release(&mut self, n: u32) {
        self.cons = self.cons.wrapping_add(n);
        self.consumer().store(self.cons, Ordering::Release);
    }

    /// Address of entry `idx` (any counter value; wrapped by the mask).
    fn entry<T>(&self, idx: u32) -> *mut T {
        // SAFETY: (idx & mask) < size, and the mapping holds `size` entries after `descs`.
        unsafe { self.descs.cast::<T>().add((idx & self.mask) as usize) }
    }

    fn read_addr(&self, idx: u32) -> u64 {
        // SAFETY: an entry of a consumer ring the kernel has published (idx < prod), u64-sized
        // and aligned in an address ring.
        unsafe { self.entry::<u64>(idx).read() }
    }

    fn write_addr(&self, idx: u32, addr: u64) {
        // SAFETY: a free slot of a producer ring (not yet published), so the kernel does not
        // read it concurrently.
        unsafe { self.entry::<u64>(idx).write(addr) }
    }

    fn read_desc(&self, idx: u32) -> libc::xdp_desc {
        // SAFETY: as in `read_addr`, for a descriptor ring.
        unsafe { self.entry::<libc::xdp_desc>(idx).read() }
    }

    fn write_desc(&self, idx: u32, d: libc::xdp_desc) {
        // SAFETY: as in `write_addr`, for a descriptor ring.
        unsafe { self.entry::<libc::xdp_desc>(idx).write(d) }
    }
}

/// One AF_XDP socket with its UMEM and rings.
struct Xsk {
    // Rings before the socket and UMEM: unmapped first, then the socket closes.
    fill: Ring,
    comp: Ring,
    rx: Ring,
    tx: Ring,
    fd: OwnedFd,
    umem: Mmap,
    frame_size: u64,
    /// Transmit frames not in flight (capacity = all transmit frames, so never reallocates).
    tx_free: Vec<u64>,
    /// Kernel drop counters last seen (they are cumulative).
    seen_drops: u64,
}

impl Xsk {
    fn open(ifindex: u32, queue: u32, cfg: &AfXdpConfig) -> io::Result<Xsk> {
        let fsz = cfg.frame_size;
        let nframes = cfg.frames_per_queue;
        if !(fsz == 2048 || fsz == 4096) || !nframes.is_power_of_two() || nframes < 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame_size must be 2048 or 4096, frames_per_queue a power of two ≥ 64",
            ));
        }
        let half = nframes / 2;
        let sock = socket(libc::AF_XDP, libc::SOCK_RAW, 0)?;
        let fd = sock.as_raw_fd();
        let umem = Mmap::anon(fsz as usize * nframes as usize)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr as u64,
            len: umem.len as u64,
            chunk_size: fsz,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)?;
        // Fill and completion rings can hold every receive/transmit frame, so recycling a
        // frame never finds its ring full.
        setsockopt(fd, libc::SOL_XDP, libc::XDP_UMEM_FILL_RING, &half)?;
        setsockopt(fd, libc::SOL_XDP, libc::XDP_UMEM_COMPLETION_RING, &half)?;
        setsockopt(fd, libc::SOL_XDP, libc::XDP_RX_RING, &half)?;
        setsockopt(fd, libc::SOL_XDP, libc::XDP_TX_RING, &half)?;
        // SAFETY: plain integers; all-zero is valid.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        getsockopt(fd, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS, &mut off)?;
        let desc = std::mem::size_of::<libc::xdp_desc>();
        let rx = Ring::map(fd, &off.rx, libc::XDP_PGOFF_RX_RING as u64, half, desc)?;
        let tx = Ring::map(fd, &off.tx, libc::XDP_PGOFF_TX_RING as u64, half, desc)?;
        let mut fill = Ring::map(fd, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING, half, 8)?;
        let comp = Ring::map(fd, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING, half, 8)?;

        // Frames [0, half) receive, [half, nframes) transmit.
        for i in 0..half {
            fill.write_addr(fill.prod.wrapping_add(i), i as u64 * fsz as u64);
        }
        fill.submit(half);
        let tx_free: Vec<u64> = (half..nframes).map(|i| i as u64 * fsz as u64).collect();

        // SAFETY: all-zero is a valid sockaddr_xdp.
        let mut sa: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
        sa.sxdp_family = libc::AF_XDP as u16;
        sa.sxdp_flags = libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP;
        sa.sxdp_ifindex = ifindex;
        sa.sxdp_queue_id = queue;
        // A socket closed just before (e.g. the port being re-created) releases its queue
        // asynchronously; until then bind says EBUSY. Retry for up to a second.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            // SAFETY: `sa` is a live sockaddr_xdp of the stated size.
            let r = cvt(unsafe {
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as u32,
                )
            });
            match r {
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => {
                    r?;
                    break;
                }
            }
        }
        Ok(Xsk {
            fill,
            comp,
            rx,
            tx,
            fd: sock,
            umem,
            frame_size: fsz as u64,
            tx_free,
            seen_drops: 0,
        })
    }

    /// The UMEM bytes of a frame descriptor, if it lies inside the UMEM.
    fn frame(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let end = addr.checked_add(len as u64)?;
        if end > self.umem.len as u64 {
            return None;
        }
        // SAFETY: addr..end is inside the UMEM (checked); the frame belongs to us (it came out
        // of the rx ring and has not gone back to the fill ring).
        Some(unsafe { std::slice::from_raw_parts(self.umem.ptr.add(addr as usize), len as usize) })
    }

    /// Moves completed transmit frames back to the free list.
    fn reclaim_tx(&mut self) {
        let n = self.comp.available();
        for i in 0..n {
            let addr = self.comp.read_addr(self.comp.cons.wrapping_add(i));
            self.tx_free.push(addr & !(self.frame_size - 1));
        }
        if n > 0 {
            self.comp.release(n);
        }
    }

    /// Asks the kernel to process the tx ring (copy mode sends only on a syscall).
    fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: an empty, address-less send only wakes the socket; no memory is passed.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        cvt(r).map(drop)
    }

    /// Kernel-side drops since the last call (ring full, no fill frame, other).
    fn new_kernel_drops(&mut self) -> u64 {
        // SAFETY: plain integers; all-zero is valid.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        if getsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            &mut st,
        )
        .is_err()
        {
            return 0;
        }
        let total = st.rx_dropped + st.rx_ring_full;
        let d = total.saturating_sub(self.seen_drops);
        self.seen_drops = total;
        d
    }
}

/// An AF_XDP port on an existing kernel interface. Dropping it (the last of its instances)
/// detaches the XDP program.
pub struct AfXdpPort {
    // Declared first so it drops first: the program is detached before the sockets close. With
    // several instances the program lives until the last one goes; a socket closed earlier is
    // taken out of the XSKMAP by the kernel, and its queue's frames then go to the host stack.
    prog: Arc<XskRedirect>,
    xsks: Vec<Xsk>,
    /// Transmit path of an instance with no XSK of its own (more instances than queues).
    tx_fallback: Option<TxSocket>,
    name: String,
    netdev: NetDev,
    ifindex: u32,
    rx_calls: u32,
    port_no: u32,
    counters: Arc<PortCounters>,
}

// SAFETY: the rings and UMEM (raw pointers into mappings) are owned by the port alone and only
// used through `&mut self`; moving the port moves that ownership. The shared `XskRedirect` holds
// only descriptors.
unsafe impl Send for AfXdpPort {}

impl AfXdpPort {
    /// Creates the sockets, loads the XDP program and attaches it to the interface.
    pub fn open(config: &AfXdpConfig) -> io::Result<AfXdpPort> {
        Self::open_instances(config, 1).map(|mut v| v.remove(0))
    }

    /// Opens the port as `n` instances, one per PMD thread. There is one AF_XDP socket per
    /// device queue (`config.n_queues`, or all receive queues) and one XDP program for all of
    /// them; instance `i` gets the sockets of queues `q` with `q % n == i`, receiving on them
    /// and transmitting on them.
    ///
    /// An AF_XDP socket is bound to one queue, so when `n` exceeds the number of queues the
    /// instances past it have no socket: their [`n_rxq`](Port::n_rxq) is 0 (nothing to poll)
    /// and they transmit through a plain AF_PACKET socket on the same interface instead
    /// (without offload metadata, like AF_XDP: checksums are completed, GSO packets refused).
    /// The instances share one set of counters and report the same kind. `n = 1` is
    /// [`open`](Self::open).
    pub fn open_instances(config: &AfXdpConfig, n: usize) -> io::Result<Vec<AfXdpPort>> {
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a port needs at least one instance",
            ));
        }
        let netdev = NetDev::new(&config.ifname)?;
        let ifindex = netdev.ifindex()?;
        let nq = config
            .n_queues
            .unwrap_or_else(|| netdev.n_rx_queues())
            .max(1);
        let mut prog = XskRedirect::load(nq as u32)?;
        let mut xsks = Vec::with_capacity(nq);
        for q in 0..nq as u32 {
            let x = Xsk::open(ifindex, q, config).map_err(|e| {
                io::Error::new(e.kind(), format!("AF_XDP socket on queue {q}: {e}"))
            })?;
            prog.set_socket(q, x.fd.as_raw_fd())?;
            xsks.push(x);
        }
        match config.mode {
            Some(m) => prog.attach(ifindex, m)?,
            None => {
                if prog.attach(ifindex, XdpMode::Driver).is_err() {
                    prog.attach(ifindex, XdpMode::Skb)?;
                }
            }
        }
        let prog = Arc::new(prog);
        let mut per_instance: Vec<Vec<Xsk>> = (0..n).map(|_| Vec::new()).collect();
        for (q, x) in xsks.into_iter().enumerate() {
            per_instance[q % n].push(x);
        }
        let counters = PortCounters::new_shared();
        let mut out = Vec::with_capacity(n);
        for xsks in per_instance {
            let tx_fallback = if xsks.is_empty() {
                Some(TxSocket::open(ifindex)?)
            } else {
                None
            };
            out.push(AfXdpPort {
                prog: Arc::clone(&prog),
                xsks,
                tx_fallback,
                name: config.ifname.clone(),
                netdev: NetDev::new(&config.ifname)?,
                ifindex,
                rx_calls: 0,
                port_no: 0,
                counters: Arc::clone(&counters),
            });
        }
        Ok(out)
    }

    /// The XDP hook the program got attached at.
    pub fn xdp_mode(&self) -> XdpMode {
        self.prog.mode()
    }

    /// Interface index of the attached interface.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Copies the frames of `batch` (at most a burst, offloads resolved) into transmit UMEM
    /// frames of `x`, kicks the kernel and frees every buffer into `pool`; returns what
    /// happened.
    fn tx_frames(x: &mut Xsk, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        x.reclaim_tx();
        let mut slots = x.tx.free_slots();
        let (mut sent, mut bytes, mut dropped, mut errors) = (0u64, 0u64, 0u64, 0u64);
        let mut k = 0u32;
        for mut pkt in batch.drain() {
            let len = pkt.len();
            // Offloads are resolved by the caller (`resolve_offloads` is then a no-op kept as a
            // guard). The kernel needs the frame to fit a UMEM chunk after its headroom.
            if !pkt.resolve_offloads() || len as u64 > x.frame_size - 256 || len == 0 {
                errors += 1;
            } else if slots == 0 || x.tx_free.is_empty() {
                dropped += 1;
            } else if let Some(addr) = x.tx_free.pop() {
                // SAFETY: addr is a transmit frame not in flight (from tx_free), inside the UMEM,
                // and len ≤ frame_size, so the copy stays in the frame we own.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        pkt.data().as_ptr(),
                        x.umem.ptr.add(addr as usize),
                        len,
                    )
                };
                x.tx.write_desc(
                    x.tx.prod.wrapping_add(k),
                    libc::xdp_desc {
                        addr,
                        len: len as u32,
                        options: 0,
                    },
                );
                k += 1;
                slots -= 1;
                sent += 1;
                bytes += len as u64;
            }
            pool.free(pkt);
        }
        if k > 0 {
            x.tx.submit(k);
        }
        if x.tx.pending() > 0 {
            // Whatever the kick says (busy, queue full, link down), unsent descriptors stay in
            // the ring and go with the next kick; the packets were counted when queued.
            let _ = x.kick_tx();
        }
        x.reclaim_tx();
        Burst {
            packets: sent,
            bytes,
            dropped,
            errors,
        }
    }
}

impl Port for AfXdpPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::SystemAfXdp
    }

    fn n_rxq(&self) -> usize {
        self.xsks.len()
    }

    fn n_txq(&self) -> usize {
        // An instance without a socket still transmits, through its AF_PACKET socket.
        self.xsks.len().max(1)
    }

    fn port_no(&self) -> u32 {
        self.port_no
    }

    fn set_port_no(&mut self, port_no: u32) {
        self.port_no = port_no;
    }

    fn rx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> usize {
        let nq = self.xsks.len();
        if nq == 0 {
            // An instance with no queue of its own (see `open_instances`) never receives.
            return 0;
        }
        let x = &mut self.xsks[qid % nq];
        self.rx_calls = self.rx_calls.wrapping_add(1);
        let mut dropped = 0u64;
        if self.rx_calls & (KERNEL_STATS_EVERY - 1) == 0 {
            dropped += x.new_kernel_drops();
        }
        let avail = x.rx.available().min(batch.space() as u32);
        if avail == 0 {
            if x.fill.needs_wakeup() {
                // SAFETY: an empty receive only wakes the socket; no memory is passed.
                unsafe {
                    libc::recvfrom(
                        x.fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
            }
            self.counters.add_rx(&Burst {
                dropped,
                ..Burst::default()
            });
            return 0;
        }
        // Every frame taken from rx goes straight back to fill; fill holds all receive frames,
        // so it has room.
        let room = x.fill.free_slots();
        let avail = avail.min(room);
        let (mut n, mut bytes, mut errors) = (0usize, 0u64, 0u64);
        for i in 0..avail {
            let d = x.rx.read_desc(x.rx.cons.wrapping_add(i));
            match x.frame(d.addr, d.len) {
                Some(frame) => match pool.alloc() {
                    Some(mut pkt) => {
                        if pkt.set_data(frame) {
                            pkt.in_port = self.port_no;
                            bytes += frame.len() as u64;
                            n += 1;
                            if let Err(p) = batch.push(pkt) {
                                pool.free(p);
                            }
                        } else {
                            pool.free(pkt);
                            dropped += 1;
                        }
                    }
                    None => dropped += 1,
                },
                None => errors += 1,
            }
            x.fill
                .write_addr(x.fill.prod.wrapping_add(i), d.addr & !(x.frame_size - 1));
        }
        x.rx.release(avail);
        x.fill.submit(avail);
        self.counters.add_rx(&Burst {
            packets: n as u64,
            bytes,
            dropped,
            errors,
        });
        n
    }

    fn tx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        if let Some(sock) = &self.tx_fallback {
            return sock.send(pool, batch, &self.counters);
        }
        // AF_XDP takes no offload metadata: complete partial checksums and segment GSO packets
        // first; what cannot be resolved counts as an error.
        // An instance without a transmit fallback has a socket of its own (`open_instances`).
        let nq = self.xsks.len();
        let x = &mut self.xsks[qid % nq];
        batch.send_resolved(
            pool,
            &self.counters,
            |_| false,
            |pool, burst| Self::tx_frames(x, pool, burst),
        )
    }

    fn counters(&self) -> Arc<PortCounters> {
        Arc::clone(&self.counters)
    }

    fn netdev(&self) -> Option<&NetDev> {
        Some(&self.netdev)
    }

    fn rx_fd(&self, qid: usize) -> Option<RawFd> {
        self.xsks.get(qid).map(|x| x.fd.as_raw_fd())
    }
}
