//! The vhost-user device: state shared with the PMD threads, and the protocol handler that
//! sets it up from the frontend's messages.
//!
//! The handler (on the port's control thread) keeps each virtqueue's configuration as the
//! frontend gives it. A queue is *started* once it has memory, addresses and a kick (and, with
//! `VHOST_USER_F_PROTOCOL_FEATURES`, once enabled); starting it puts an [`ActiveVq`] into the
//! queue's [`SpinCell`], where the PMD serving it finds it. Any change takes the queue out
//! first, keeping its ring indexes, and puts a new one in, so a PMD always sees a complete
//! queue or none.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserProtocolFeatures, VhostUserShMemConfig,
    VhostUserSharedMsg, VhostUserSingleMemoryRegion, VhostUserVirtioFeatures,
    VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{Backend, Error, GpuBackend, Result, VhostUserBackendReqHandlerMut};
use vhost::VhostUserMemoryRegionBase;
use virtio_bindings::virtio_config::{VIRTIO_F_IN_ORDER, VIRTIO_F_VERSION_1};
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_ANNOUNCE, VIRTIO_NET_F_GUEST_CSUM,
    VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_GUEST_USO4, VIRTIO_NET_F_GUEST_USO6, VIRTIO_NET_F_HOST_ECN,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_USO, VIRTIO_NET_F_MQ,
    VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MTU,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap};

use super::cell::SpinCell;
use super::config::VhostUserConfig;
use super::dirty_log::DirtyLog;
use super::guest_map::GuestMap;
use super::intercept::{Early, EarlyHandler};
use super::split::{RingLayout, SplitRing};
use super::vring::{header_len, ActiveVq, GuestOffloads, Mem};
use crate::port::PortCounters;

/// Largest ring the switch accepts (the split-ring maximum).
pub(crate) const MAX_QUEUE_SIZE: u16 = 32768;
/// Memory regions a frontend may add with `CONFIGURE_MEM_SLOTS`.
const MAX_MEM_SLOTS: u64 = 32;

/// `VHOST_USER_F_PROTOCOL_FEATURES`.
const F_PROTOCOL_FEATURES: u64 = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
/// `VHOST_F_LOG_ALL`: log every write into guest memory (while the VM migrates).
const F_LOG_ALL: u64 = VhostUserVirtioFeatures::LOG_ALL.bits();

/// Virtio features the switch offers.
pub(crate) const OFFERED_FEATURES: u64 = (1 << VIRTIO_F_VERSION_1)
    | (1 << VIRTIO_NET_F_MRG_RXBUF)
    | (1 << VIRTIO_NET_F_MQ)
    | (1 << VIRTIO_RING_F_INDIRECT_DESC)
    | (1 << VIRTIO_RING_F_EVENT_IDX)
    // Buffers are used in the order they were made available: the switch serves each queue
    // from one thread, front to back.
    | (1 << VIRTIO_F_IN_ORDER)
    // The guest may receive frames with a partial checksum or as TCP segmentation offload
    // (64 KB), as taps and AF_PACKET ports deliver them; without these a GSO frame cannot go.
    | (1 << VIRTIO_NET_F_GUEST_CSUM)
    | (1 << VIRTIO_NET_F_GUEST_TSO4)
    | (1 << VIRTIO_NET_F_GUEST_TSO6)
    | (1 << VIRTIO_NET_F_GUEST_ECN)
    // ...and UDP segmentation offloads (`UDP_SEGMENT` super-datagrams) of either IP version.
    | (1 << VIRTIO_NET_F_GUEST_USO4)
    | (1 << VIRTIO_NET_F_GUEST_USO6)
    // The guest may send partial checksums and 64 KB TCP segments, kept whole for outputs that
    // take them (other guests, taps, AF_PACKET with vnet headers) and resolved for the rest.
    | (1 << VIRTIO_NET_F_CSUM)
    | (1 << VIRTIO_NET_F_HOST_TSO4)
    | (1 << VIRTIO_NET_F_HOST_TSO6)
    | (1 << VIRTIO_NET_F_HOST_ECN)
    // ...and UDP super-datagrams, segmented in software for outputs that cannot take them.
    // Frontends that do not know these bits (QEMU before 8.2) mask them off.
    | (1 << VIRTIO_NET_F_HOST_USO)
    // The frontend's `host_mtu` reaches the guest only if the backend offers it.
    | (1 << VIRTIO_NET_F_MTU)
    // After a migration the guest announces itself (gratuitous ARP through its TX queue),
    // so the bridge learns its new port.
    | (1 << VIRTIO_NET_F_GUEST_ANNOUNCE)
    | F_LOG_ALL
    | F_PROTOCOL_FEATURES;

/// Protocol features the switch offers.
pub(crate) fn offered_protocol() -> VhostUserProtocolFeatures {
    VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::REPLY_ACK
        | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
        | VhostUserProtocolFeatures::LOG_SHMFD
        | VhostUserProtocolFeatures::MTU
        | VhostUserProtocolFeatures::RARP
}

/// State of one vhost-user port shared by its control thread and its PMD instances.
pub(crate) struct Device {
    /// Configuration.
    pub cfg: VhostUserConfig,
    /// Counters of all instances.
    pub counters: Arc<PortCounters>,
    /// Virtqueue `2q` is the guest's RX queue of pair `q` (the switch transmits on it), `2q + 1`
    /// its TX queue (the switch receives from it).
    pub vqs: Box<[SpinCell<Option<ActiveVq>>]>,
    /// Bit `q` set: the guest RX queue of pair `q` is started.
    pub rx_ready: AtomicU64,
    /// Bit `q` set: the guest TX queue of pair `q` is started (the switch polls only these).
    pub tx_ready: AtomicU64,
    /// A frontend is connected.
    pub connected: Arc<AtomicBool>,
    /// Frontends that connected, over the port's life.
    pub connections: AtomicU64,
    /// Protocol errors and broken rings seen.
    pub protocol_errors: AtomicU64,
    /// Packets moved through each virtqueue (indexed as `vqs`), for telling which queues of
    /// a multiqueue guest carry traffic.
    pub vq_packets: Box<[AtomicU64]>,
    /// The MTU the frontend gave the guest (`NET_SET_MTU`), 0 if none.
    pub guest_mtu: AtomicU32,
    /// A RARP to send for the guest after a migration: its MAC in the low 48 bits, bit 63
    /// set while pending (taken by the instance that polls first).
    pub rarp: AtomicU64,
    /// Virtio features the frontend acknowledged (for the port's status).
    pub features: AtomicU64,
    /// Dirty-page logging is on (a migration is under way).
    pub logging: AtomicBool,
    /// The frontend has given the guest's memory.
    pub has_memory: AtomicBool,
    /// The last refusal or error, for the port's status.
    pub last_error: Mutex<Option<String>>,
}

/// Bit of [`Device::rarp`] saying a RARP is pending.
pub(crate) const RARP_PENDING: u64 = 1 << 63;

impl Device {
    /// A device with no frontend yet.
    pub(crate) fn new(cfg: VhostUserConfig, counters: Arc<PortCounters>) -> Device {
        let n = 2 * cfg.max_queue_pairs.clamp(1, 64);
        Device {
            cfg,
            counters,
            vqs: (0..n).map(|_| SpinCell::new(None)).collect(),
            rx_ready: AtomicU64::new(0),
            tx_ready: AtomicU64::new(0),
            connected: Arc::new(AtomicBool::new(false)),
            connections: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            vq_packets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            guest_mtu: AtomicU32::new(0),
            rarp: AtomicU64::new(0),
            features: AtomicU64::new(0),
            logging: AtomicBool::new(false),
            has_memory: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    /// Counts and logs a refused message or a queue that cannot run, and keeps it as the
    /// port's last error.
    pub(crate) fn refuse(&self, what: &str, why: &dyn std::fmt::Display) {
        self.protocol_errors.fetch_add(1, Ordering::Relaxed);
        let line = format!("{what}: {why}");
        tracing::warn!(port = %self.cfg.name, "vhost-user: {line}");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(line);
    }

    /// Queue pairs the device offers.
    pub(crate) fn queue_pairs(&self) -> usize {
        self.vqs.len() / 2
    }
}

/// A virtqueue as the frontend configured it.
#[derive(Default)]
struct VringCfg {
    size: u16,
    /// Frontend virtual addresses of the descriptor table, used and available rings.
    desc: u64,
    used: u64,
    avail: u64,
    addr_set: bool,
    next_avail: u16,
    next_used: u16,
    /// A kick was set: the ring is started (until `GET_VRING_BASE` stops it).
    started: bool,
    enabled: bool,
    call: Option<Arc<File>>,
    /// Kept open while the ring runs (the switch polls and never waits on it).
    _kick: Option<File>,
}

/// One mapped region: where the frontend has it, and where the guest has it.
struct Mapping {
    user_addr: u64,
    size: u64,
    gpa: u64,
    /// `ADD_MEM_REG`s of this very region not yet removed: QEMU sends the guest's memory
    /// once per queue pair (each pair is a vhost device of its own on the same socket).
    refs: u32,
}

/// The vhost-user protocol handler of one connection.
pub(crate) struct Handler {
    dev: Arc<Device>,
    acked_features: u64,
    acked_protocol: u64,
    mem: Option<Arc<Mem>>,
    maps: Vec<Mapping>,
    vrings: Vec<VringCfg>,
    /// The dirty-page log QEMU gave (`SET_LOG_BASE`); used while `VHOST_F_LOG_ALL` is set.
    log: Option<Arc<DirtyLog>>,
}

fn bad(msg: &'static str) -> Error {
    Error::InvalidOperation(msg)
}

impl Handler {
    /// A handler for a new connection to `dev` (whose queues must all be stopped).
    pub(crate) fn new(dev: Arc<Device>) -> Handler {
        let n = dev.vqs.len();
        Handler {
            dev,
            acked_features: 0,
            acked_protocol: 0,
            mem: None,
            maps: Vec::new(),
            vrings: (0..n).map(|_| VringCfg::default()).collect(),
            log: None,
        }
    }

    /// Logs and counts a refused message (see [`Device::refuse`]) and passes its error on.
    fn refused(&self, what: &str, e: Error) -> Error {
        self.dev.refuse(what, &e);
        e
    }

    fn vring(&mut self, index: u32) -> Result<&mut VringCfg> {
        let n = self.vrings.len();
        match self.vrings.get_mut(index as usize) {
            Some(v) => Ok(v),
            None => {
                let why = format!("virtqueue {index} (the port has {n})");
                self.dev.refuse("no such virtqueue", &why);
                Err(Error::InvalidParam)
            }
        }
    }

    /// Guest physical address of frontend virtual address `va` (ring addresses come as the
    /// frontend's own pointers).
    fn va_to_gpa(&self, va: u64) -> Option<GuestAddress> {
        self.maps
            .iter()
            .find(|m| va >= m.user_addr && va - m.user_addr < m.size)
            .map(|m| GuestAddress(va - m.user_addr + m.gpa))
    }

    /// Takes virtqueue `idx` away from the PMDs (keeping its indexes) and, if it is ready to
    /// run, gives them a new one built from the current configuration.
    fn refresh(&mut self, idx: usize) {
        let dev = Arc::clone(&self.dev);
        let mut slot = dev.vqs[idx].take();
        if let Some(old) = slot.take() {
            if old.broken {
                dev.protocol_errors.fetch_add(1, Ordering::Relaxed);
            }
            let v = &mut self.vrings[idx];
            v.next_avail = old.ring.next_avail();
            v.next_used = old.ring.next_used();
        }
        match self.build(idx) {
            Ok(Some(vq)) => *slot = Some(vq),
            Ok(None) => {}
            Err(why) => dev.refuse(&format!("virtqueue {idx} not started"), &why),
        }
        let bit = 1u64 << ((idx / 2) % 64);
        let ready = if idx % 2 == 0 {
            &dev.rx_ready
        } else {
            &dev.tx_ready
        };
        if slot.is_some() {
            ready.fetch_or(bit, Ordering::Release);
        } else {
            ready.fetch_and(!bit, Ordering::Release);
        }
    }

    fn refresh_all(&mut self) {
        for idx in 0..self.vrings.len() {
            self.refresh(idx);
        }
    }

    /// The runnable queue for virtqueue `idx`, `None` if it is not ready, or why its
    /// configuration cannot run.
    fn build(&self, idx: usize) -> std::result::Result<Option<ActiveVq>, &'static str> {
        let v = &self.vrings[idx];
        let Some(mem) = &self.mem else {
            return Ok(None);
        };
        if !(v.started && v.enabled && v.addr_set && v.size > 0) {
            return Ok(None);
        }
        let mut q = Queue::new(MAX_QUEUE_SIZE).map_err(|_| "bad queue")?;
        q.try_set_size(v.size).map_err(|_| "bad ring size")?;
        let addr = |va| self.va_to_gpa(va).ok_or("ring outside guest memory");
        q.try_set_desc_table_address(addr(v.desc)?)
            .map_err(|_| "misaligned descriptor table")?;
        q.try_set_avail_ring_address(addr(v.avail)?)
            .map_err(|_| "misaligned available ring")?;
        q.try_set_used_ring_address(addr(v.used)?)
            .map_err(|_| "misaligned used ring")?;
        q.set_ready(true);
        // virtio-queue's checks first; the ring below checks alignment and placement again.
        if !q.is_valid(&**mem) {
            return Err("rings outside guest memory");
        }
        let layout = RingLayout {
            size: v.size,
            desc: GuestAddress(q.desc_table()),
            avail: GuestAddress(q.avail_ring()),
            used: GuestAddress(q.used_ring()),
        };
        let event_idx = self.acked(VIRTIO_RING_F_EVENT_IDX);
        let mut ring = SplitRing::new(
            GuestMap::new(mem),
            &layout,
            v.next_avail,
            v.next_used,
            event_idx,
        )?;
        if ring.sync_with_used() {
            tracing::info!(
                port = %self.dev.cfg.name,
                "vhost-user: virtqueue {idx} resumes at the guest's used index {}",
                ring.next_used()
            );
        }
        // The switch polls: ask the guest not to kick.
        ring.disable_kicks();
        let mut vq = ActiveVq::new(
            ring,
            header_len(self.acked_features),
            self.acked(VIRTIO_NET_F_MRG_RXBUF),
        );
        vq.call = v.call.clone();
        vq.offloads = GuestOffloads {
            csum: self.acked(VIRTIO_NET_F_GUEST_CSUM),
            tso4: self.acked(VIRTIO_NET_F_GUEST_TSO4),
            tso6: self.acked(VIRTIO_NET_F_GUEST_TSO6),
            ecn: self.acked(VIRTIO_NET_F_GUEST_ECN),
            uso4: self.acked(VIRTIO_NET_F_GUEST_USO4),
            uso6: self.acked(VIRTIO_NET_F_GUEST_USO6),
        };
        vq.host_offloads = self.acked(VIRTIO_NET_F_CSUM);
        vq.host_uso = vq.host_offloads && self.acked(VIRTIO_NET_F_HOST_USO);
        vq.log = self.log.clone().filter(|_| self.logging());
        // The used ring's flags were just written.
        vq.log_used();
        Ok(Some(vq))
    }

    /// Whether the frontend acknowledged virtio feature `bit`.
    fn acked(&self, bit: u32) -> bool {
        self.acked_features & (1 << bit) != 0
    }

    /// Why no queue runs, in words (for the log when a connected VM forwards nothing).
    pub(crate) fn why_idle(&self) -> String {
        if self.acked_features == 0 {
            return "the frontend has not set the features (no driver yet)".to_owned();
        }
        if self.mem.is_none() {
            return "the frontend has sent no memory table".to_owned();
        }
        let mut why = Vec::new();
        for (idx, v) in self.vrings.iter().enumerate() {
            let missing = match (v.size > 0 && v.addr_set, v.started, v.enabled) {
                (false, false, _) => continue,
                (false, true, _) => "kicked before its size and addresses were set",
                (true, false, _) => "never kicked (SET_VRING_KICK)",
                (true, true, false) => "kicked but never enabled (SET_VRING_ENABLE)",
                (true, true, true) => "configured but not started (see the errors above)",
            };
            why.push(format!("virtqueue {idx} {missing}"));
        }
        if why.is_empty() {
            "no virtqueue has been configured".to_owned()
        } else {
            why.join("; ")
        }
    }

    /// Whether writes into guest memory are logged now.
    fn logging(&self) -> bool {
        self.acked_features & F_LOG_ALL != 0 && self.log.is_some()
    }

    /// Stops every queue and forgets the frontend's state (on disconnect or reset).
    pub(crate) fn reset(&mut self) {
        for v in &mut self.vrings {
            *v = VringCfg::default();
        }
        self.mem = None;
        self.maps.clear();
        self.log = None;
        self.refresh_all();
        self.acked_features = 0;
        self.acked_protocol = 0;
        self.dev.features.store(0, Ordering::Relaxed);
        self.dev.logging.store(false, Ordering::Relaxed);
        self.dev.has_memory.store(false, Ordering::Relaxed);
        self.dev.guest_mtu.store(0, Ordering::Relaxed);
        for n in self.dev.vq_packets.iter() {
            n.store(0, Ordering::Relaxed);
        }
    }

    fn install_memory(&mut self, mem: Mem, maps: Vec<Mapping>) {
        self.mem = Some(Arc::new(mem));
        self.dev
            .has_memory
            .store(!maps.is_empty(), Ordering::Relaxed);
        self.maps = maps;
        self.refresh_all();
    }
}

fn map_region(region: &VhostUserMemoryRegion, file: File) -> Result<(GuestRegionMmap, Mapping)> {
    let (gpa, size, user_addr) = (region.guest_phys_addr, region.memory_size, region.user_addr);
    // Pages past the end of the file raise SIGBUS when touched: a frontend sending a short
    // file must get an error, not crash the switch (found by fuzz target vhost_messages).
    let meta = file
        .metadata()
        .map_err(|_| bad("memory region fd cannot be inspected"))?;
    if meta.is_file()
        && region
            .mmap_offset
            .checked_add(size)
            .is_none_or(|e| e > meta.len())
    {
        return Err(bad("memory region extends beyond the end of its file"));
    }
    let mapped = GuestRegionMmap::new(region.mmap_region(file)?, GuestAddress(gpa))
        .ok_or(Error::InvalidParam)?;
    Ok((
        mapped,
        Mapping {
            user_addr,
            size,
            gpa,
            refs: 1,
        },
    ))
}

impl VhostUserBackendReqHandlerMut for Handler {
    fn set_owner(&mut self) -> Result<()> {
        Ok(())
    }

    fn reset_owner(&mut self) -> Result<()> {
        self.reset();
        Ok(())
    }

    fn reset_device(&mut self) -> Result<()> {
        self.reset();
        Ok(())
    }

    fn get_features(&mut self) -> Result<u64> {
        Ok(OFFERED_FEATURES)
    }

    fn set_features(&mut self, features: u64) -> Result<()> {
        if features & !OFFERED_FEATURES != 0 {
            let why = format!(
                "features {:#x} were not offered",
                features & !OFFERED_FEATURES
            );
            self.dev.refuse("SET_FEATURES", &why);
            return Err(bad("feature not offered"));
        }
        let was_logging = self.logging();
        self.acked_features = features;
        self.dev.features.store(features, Ordering::Relaxed);
        if self.logging() != was_logging {
            tracing::info!(
                port = %self.dev.cfg.name,
                "vhost-user: dirty-page logging {}",
                if self.logging() { "on (migration)" } else { "off" }
            );
        }
        self.dev.logging.store(self.logging(), Ordering::Relaxed);
        // The header length, offloads, event index and log follow the features.
        self.refresh_all();
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        ctx: &[VhostUserMemoryRegion],
        files: Vec<File>,
        _postcopy: Option<bool>,
    ) -> Result<Option<Vec<VhostUserMemoryRegionBase>>> {
        let mut regions = Vec::with_capacity(ctx.len());
        let mut maps = Vec::with_capacity(ctx.len());
        for (r, f) in ctx.iter().zip(files) {
            let (region, map) = map_region(r, f).map_err(|e| self.refused("SET_MEM_TABLE", e))?;
            regions.push(region);
            maps.push(map);
        }
        // Overlapping regions are refused here.
        let mem = GuestMemoryMmap::from_regions(regions)
            .map_err(|_| self.refused("SET_MEM_TABLE", bad("overlapping regions")))?;
        self.install_memory(mem, maps);
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> Result<()> {
        if num == 0 || num > MAX_QUEUE_SIZE as u32 || !num.is_power_of_two() {
            let why = format!("virtqueue {index}: size {num} is not a power of two up to 32768");
            self.dev.refuse("SET_VRING_NUM", &why);
            return Err(Error::InvalidParam);
        }
        self.vring(index)?.size = num as u16;
        self.refresh(index as usize);
        Ok(())
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> Result<()> {
        // The used ring's guest address for the log (`_log`) is found from `used` like the
        // ring's own, so the flag and the address need not be kept.
        let v = self.vring(index)?;
        v.desc = descriptor;
        v.used = used;
        v.avail = available;
        v.addr_set = true;
        self.refresh(index as usize);
        Ok(())
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> Result<()> {
        let v = self.vring(index)?;
        v.next_avail = base as u16;
        v.next_used = base as u16;
        self.refresh(index as usize);
        Ok(())
    }

    fn get_vring_base(&mut self, index: u32) -> Result<VhostUserVringState> {
        self.vring(index)?.started = false;
        // Stops the ring: no PMD touches it after this returns.
        self.refresh(index as usize);
        let v = self.vring(index)?;
        v._kick = None;
        v.call = None;
        Ok(VhostUserVringState::new(index, v.next_avail as u32))
    }

    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        let protocol = self.acked_features & F_PROTOCOL_FEATURES != 0;
        let v = self.vring(index as u32)?;
        v._kick = fd;
        v.started = true;
        // Without protocol features a ring starts enabled (vhost-user spec, "Ring states").
        if !protocol {
            v.enabled = true;
        }
        self.refresh(index as usize);
        Ok(())
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        self.vring(index as u32)?.call = fd.map(Arc::new);
        self.refresh(index as usize);
        Ok(())
    }

    fn set_vring_err(&mut self, index: u8, _fd: Option<File>) -> Result<()> {
        self.vring(index as u32).map(|_| ())
    }

    fn get_protocol_features(&mut self) -> Result<VhostUserProtocolFeatures> {
        Ok(offered_protocol())
    }

    fn set_protocol_features(&mut self, features: u64) -> Result<()> {
        self.acked_protocol = features;
        Ok(())
    }

    fn get_queue_num(&mut self) -> Result<u64> {
        Ok(self.dev.queue_pairs() as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> Result<()> {
        // Also before SET_FEATURES (see `intercept`): the state is kept for when the ring
        // starts, as the spec's ring states have it.
        self.vring(index)?.enabled = enable;
        self.refresh(index as usize);
        Ok(())
    }

    fn get_config(
        &mut self,
        _offset: u32,
        _size: u32,
        _flags: VhostUserConfigFlags,
    ) -> Result<Vec<u8>> {
        Err(bad("no device configuration space"))
    }

    fn set_config(&mut self, _o: u32, _b: &[u8], _f: VhostUserConfigFlags) -> Result<()> {
        Err(bad("no device configuration space"))
    }

    fn set_backend_req_fd(&mut self, _backend: Backend) {}

    fn set_gpu_socket(&mut self, _gpu: GpuBackend) -> Result<()> {
        Err(bad("not a GPU"))
    }

    fn get_shared_object(&mut self, _uuid: VhostUserSharedMsg) -> Result<File> {
        Err(bad("no shared objects"))
    }

    fn get_inflight_fd(&mut self, _i: &VhostUserInflight) -> Result<(VhostUserInflight, File)> {
        Err(bad("no inflight tracking"))
    }

    fn set_inflight_fd(&mut self, _i: &VhostUserInflight, _file: File) -> Result<()> {
        Err(bad("no inflight tracking"))
    }

    fn get_max_mem_slots(&mut self) -> Result<u64> {
        Ok(MAX_MEM_SLOTS)
    }

    fn add_mem_region(
        &mut self,
        region: &VhostUserSingleMemoryRegion,
        fd: File,
        _postcopy: Option<bool>,
    ) -> Result<Option<VhostUserMemoryRegionBase>> {
        let same = |m: &Mapping| {
            m.gpa == region.guest_phys_addr
                && m.size == region.memory_size
                && m.user_addr == region.user_addr
        };
        if let Some(m) = self.maps.iter_mut().find(|m| same(m)) {
            // Another queue pair's copy of a region already mapped: the same memory.
            m.refs += 1;
            return Ok(None);
        }
        if self.maps.len() as u64 >= MAX_MEM_SLOTS {
            return Err(self.refused("ADD_MEM_REG", bad("all memory slots in use")));
        }
        let (mapped, map) = map_region(region, fd).map_err(|e| self.refused("ADD_MEM_REG", e))?;
        let mem = match &self.mem {
            Some(m) => m.insert_region(Arc::new(mapped)),
            None => GuestMemoryMmap::from_regions(vec![mapped]),
        }
        .map_err(|_| {
            let (gpa, size) = (region.guest_phys_addr, region.memory_size);
            let why = format!("region at guest address {gpa:#x} (+{size:#x}) overlaps another");
            self.dev.refuse("ADD_MEM_REG", &why);
            Error::InvalidParam
        })?;
        let mut maps = std::mem::take(&mut self.maps);
        maps.push(map);
        self.install_memory(mem, maps);
        Ok(None)
    }

    fn remove_mem_region(&mut self, region: &VhostUserSingleMemoryRegion) -> Result<()> {
        let (gpa, size) = (region.guest_phys_addr, region.memory_size);
        let Some(at) = self
            .maps
            .iter()
            .position(|m| m.gpa == gpa && m.size == size)
        else {
            let why = format!("no region at guest address {gpa:#x} (+{size:#x})");
            self.dev.refuse("REM_MEM_REG", &why);
            return Err(Error::InvalidParam);
        };
        // Unmapped when the last queue pair that added it removes it.
        self.maps[at].refs -= 1;
        if self.maps[at].refs > 0 {
            return Ok(());
        }
        let Some(m) = &self.mem else {
            return Err(Error::InvalidParam);
        };
        let (mem, _gone) = m
            .remove_region(GuestAddress(gpa), size)
            .map_err(|_| self.refused("REM_MEM_REG", bad("region not mapped")))?;
        let mut maps = std::mem::take(&mut self.maps);
        maps.remove(at);
        self.install_memory(mem, maps);
        Ok(())
    }

    fn set_device_state_fd(
        &mut self,
        _d: VhostTransferStateDirection,
        _p: VhostTransferStatePhase,
        _fd: File,
    ) -> Result<Option<File>> {
        Err(bad("no device state transfer"))
    }

    fn check_device_state(&mut self) -> Result<()> {
        Err(bad("no device state transfer"))
    }

    fn get_shmem_config(&mut self) -> Result<VhostUserShMemConfig> {
        Err(bad("no shared memory regions"))
    }

    fn set_log_base(&mut self, log: &VhostUserLog, file: File) -> Result<()> {
        let (size, offset) = (log.mmap_size, log.mmap_offset);
        let mapped = DirtyLog::map(file, size, offset)
            .map_err(|why| self.refused("SET_LOG_BASE", bad(why)))?;
        tracing::info!(
            port = %self.dev.cfg.name,
            "vhost-user: dirty-page log of {size} bytes (guest memory up to {} MiB)",
            size.saturating_mul(8 * 4096) >> 20
        );
        self.log = Some(Arc::new(mapped));
        self.dev.logging.store(self.logging(), Ordering::Relaxed);
        self.refresh_all();
        Ok(())
    }
}

impl EarlyHandler for Handler {
    fn protocol_features_set(&self) -> bool {
        self.acked_features & F_PROTOCOL_FEATURES != 0
    }

    fn acked_protocol(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::from_bits_truncate(self.acked_protocol)
    }

    fn early(&mut self, msg: Early) -> std::result::Result<(), String> {
        let refuse = |h: &Handler, what: &str, why: String| {
            h.dev.refuse(what, &why);
            Err(why)
        };
        match msg {
            Early::VringEnable { index, enable } => {
                if index as usize >= self.vrings.len() {
                    let why = format!("virtqueue {index} (the port has {})", self.vrings.len());
                    return refuse(self, "SET_VRING_ENABLE", why);
                }
                self.set_vring_enable(index, enable)
                    .map_err(|e| e.to_string())
            }
            Early::Mtu(mtu) => {
                if !self
                    .acked_protocol()
                    .contains(VhostUserProtocolFeatures::MTU)
                {
                    return refuse(self, "NET_SET_MTU", "protocol feature not acked".into());
                }
                if !(68..=65535).contains(&mtu) {
                    return refuse(self, "NET_SET_MTU", format!("MTU {mtu} out of 68..=65535"));
                }
                tracing::info!(port = %self.dev.cfg.name, "vhost-user: guest MTU {mtu}");
                if let Some(want) = self.dev.cfg.mtu_request.filter(|&w| u64::from(w) != mtu) {
                    tracing::warn!(
                        port = %self.dev.cfg.name,
                        "vhost-user: the guest's MTU {mtu} differs from the port's mtu_request \
                         {want}: give QEMU host_mtu={want}"
                    );
                }
                self.dev.guest_mtu.store(mtu as u32, Ordering::Relaxed);
                Ok(())
            }
            Early::Rarp(mac) => {
                if !self
                    .acked_protocol()
                    .contains(VhostUserProtocolFeatures::RARP)
                {
                    return refuse(self, "SEND_RARP", "protocol feature not acked".into());
                }
                let mut word = [0u8; 8];
                word[..6].copy_from_slice(&mac);
                self.dev
                    .rarp
                    .store(u64::from_le_bytes(word) | RARP_PENDING, Ordering::Release);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
