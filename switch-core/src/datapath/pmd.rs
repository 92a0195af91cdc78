//! Poll-mode driver (PMD) threads: each busy-polls the receive queues of its port instances in
//! bursts of 32 and runs every batch to completion — parse, EMC, megaflow cache, upcall,
//! actions, per-port transmit batches.
//!
//! A burst goes through three stages, each over the whole burst (see `Pmd::process`):
//! `extract_burst` (`pmd/extract.rs`: keys and hashes), `classify_burst` (`pmd/classify.rs`:
//! the flow cache's decision and a verdict per packet) and `dispatch_burst`
//! (`pmd/dispatch.rs`: actions, transmit batches, drops). They hand over through one
//! `BurstScratch` (`pmd/burst.rs`) that the PMD reuses for every burst.
//!
//! A PMD owns everything it touches per packet (its packet pool, its flow caches, its port
//! instances), so the per-packet path takes no lock and allocates nothing. The control plane
//! reaches it through a channel that it drains between iterations; requests that must be
//! complete before an API call returns (rule invalidation, port removal) carry a reply channel.
//!
//! Observability hooks (see `port_obs.rs`) cost one predictable branch when unarmed: a capture
//! check per batch and direction, a trace check per packet; malformed frames and decisions
//! without actions are dropped here with their reason, attributed to the ingress port once
//! per batch.
//!
//! When there is no traffic the thread backs off: after a few empty polls it waits for its
//! receive descriptors with `ppoll` (or sleeps, for ports without one) in growing steps up to
//! [`MAX_IDLE_WAIT`], so an idle switch costs almost no CPU and wakes on the next packet.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use flow_table::{Action, CacheConfig, DpAction, FlowCache, Match, RuleChange};
use ports::{Packet, PacketBatch, PacketPool, Port};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

mod burst;
mod classify;
mod dispatch;
mod extract;
mod packet_out;
mod patch_path;
#[cfg(test)]
mod tests;
use burst::BurstScratch;
use classify::{add_lookups, classify_burst};
use dispatch::dispatch_burst;
use extract::extract_burst;
use patch_path::MAX_PATCH_DEPTH;

use crate::datapath::bridge::Bridge;
use crate::datapath::clock;
use crate::datapath::execute::PmdPort;
use crate::datapath::port_obs::{self, CaptureTap, PortObs, TraceArm};
use crate::datapath::stats::{LocalCounters, PmdCounters};

/// Longest idle wait between polls.
pub const MAX_IDLE_WAIT: Duration = Duration::from_micros(250);
/// Empty polls before the thread starts waiting.
const SPIN_POLLS: u32 = 64;
/// Packets per iteration below which the thread counts as lightly loaded.
const LIGHT_LOAD: usize = 4;
/// Empty polls after which a port whose polls are system calls is polled less often.
const SYSCALL_EMPTY_POLLS: u32 = 64;
/// How often (in loop iterations) such a port is polled then.
const SYSCALL_POLL_EVERY: u64 = 16;
/// Period of housekeeping (pushing rule counters, megaflow expiry, MAC refresh).
const SWEEP_MS: u64 = 100;
/// Busy iterations between readings of the millisecond clock.
const NOW_EVERY: u64 = 64;

/// Messages from the control plane.
pub(crate) enum PmdMsg {
    /// Start serving a bridge.
    AddBridge(Bridge),
    /// Stop serving a bridge (its ports must be gone already).
    DelBridge(u32, Sender<()>),
    /// Take this instance of a port of a bridge.
    AddPort {
        bridge: u32,
        port_no: u32,
        port: Box<dyn Port>,
    },
    /// Drop the instance of a port (closing its queues), then reply.
    DelPort {
        bridge: u32,
        port_no: u32,
        done: Sender<()>,
    },
    /// Hand the instance of a port back (with this PMD's index), to run it on another PMD.
    TakePort {
        bridge: u32,
        port_no: u32,
        reply: Sender<(usize, Option<Box<dyn Port>>)>,
    },
    /// Remove the cached decisions these rule changes may affect, then reply (if asked).
    Invalidate {
        bridge: u32,
        changes: Arc<[RuleChange]>,
        done: Option<Sender<()>>,
    },
    /// Push megaflow counters into the rules, then reply.
    SyncStats(Sender<()>),
    /// Copy out the megaflows of a bridge (`dpctl-dump-flows`).
    DumpMegaflows {
        bridge: u32,
        reply: Sender<Vec<MegaflowRow>>,
    },
    /// Zero the PMD counters, then reply.
    ClearStats(Sender<()>),
    /// Copy this port's received (and/or sent) frames into a capture.
    ArmCapture {
        bridge: u32,
        port_no: u32,
        tap: CaptureTap,
    },
    /// Stop the capture with this id.
    DisarmCapture { bridge: u32, port_no: u32, id: u64 },
    /// Trace the next packet received on this port that matches the filter.
    ArmTrace {
        bridge: u32,
        port_no: u32,
        arm: TraceArm,
    },
    /// Forget the trace with this id (it timed out or another PMD answered).
    DisarmTrace { bridge: u32, port_no: u32, id: u64 },
    /// Report the busy cycles of each receive queue (`pmd-rxq-show`).
    RxqCycles(Sender<Vec<RxqCycles>>),
    /// OpenFlow packet-out: run `actions` on the frame `data` as if received on `in_port`.
    PacketOut {
        bridge: u32,
        in_port: u32,
        data: Vec<u8>,
        actions: Vec<Action>,
    },
    /// Exit the thread.
    Stop,
}

/// One installed megaflow of one PMD thread, as `dpctl-dump-flows` lists it.
#[derive(Clone, Debug)]
pub struct MegaflowRow {
    /// The PMD whose cache holds it.
    pub pmd: usize,
    /// What it matches: the key bits its mask keeps.
    pub r#match: Match,
    /// What it does.
    pub actions: Vec<DpAction>,
    /// Packets that hit it.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Last hit (ms, `clock::now_ms`).
    pub used_ms: u64,
}

/// Busy cycles a PMD spent on the receive queues of one port instance.
#[derive(Clone, Debug)]
pub(crate) struct RxqCycles {
    pub pmd: usize,
    pub bridge: u32,
    pub port_no: u32,
    /// By queue.
    pub cycles: Vec<u64>,
}

/// Settings of one PMD thread.
#[derive(Clone, Debug)]
pub struct PmdConfig {
    /// Core to pin to, if any.
    pub core: Option<usize>,
    /// Flow cache sizes.
    pub cache: CacheConfig,
    /// Packet pool.
    pub pool: ports::PoolConfig,
    /// Megaflows unused this long are removed.
    pub megaflow_idle_ms: u64,
}

struct PmdBridge {
    shared: Bridge,
    cache: FlowCache,
    ports: Vec<PmdPort>,
    /// Invalidations from this PMD's own MAC learning, applied after the batch in flight.
    learned: Vec<RuleChange>,
    /// Patch ports among `ports` (their outboxes are delivered after each burst).
    n_patch: usize,
}

/// The PMD thread has stopped (its channel is closed).
#[derive(Debug)]
pub(crate) struct PmdGone;

/// Wakes a PMD thread out of its idle wait, so that a control message is handled at once
/// rather than at the end of the back-off step (up to [`MAX_IDLE_WAIT`] per PMD, on every rule
/// change, which waits for every PMD).
pub(crate) struct Wake(EventFd);

impl Wake {
    /// A new, unsignalled wake-up.
    pub(crate) fn new() -> std::io::Result<Wake> {
        EventFd::new(EFD_NONBLOCK).map(Wake)
    }

    /// Sends `msg` to the PMD over `tx` and wakes it.
    pub(crate) fn send(&self, tx: &Sender<PmdMsg>, msg: PmdMsg) -> Result<(), PmdGone> {
        tx.send(msg).map_err(|_| PmdGone)?;
        // A full counter (never, in practice) still leaves the descriptor readable.
        let _ = self.0.write(1);
        Ok(())
    }

    fn fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }

    /// Resets the signal once the thread is awake.
    fn clear(&self) {
        let _ = self.0.read();
    }
}

/// A running PMD thread's state.
pub(crate) struct Pmd {
    idx: usize,
    cfg: PmdConfig,
    rx: Receiver<PmdMsg>,
    /// Signalled by the control plane with each message.
    wake: Arc<Wake>,
    /// Senders of every PMD (for learning events), this one included.
    peers: Vec<Sender<PmdMsg>>,
    pool: PacketPool,
    bridges: Vec<PmdBridge>,
    local: LocalCounters,
    counters: Arc<PmdCounters>,
    idle_polls: u32,
    last_sweep_ms: u64,
    fds: Vec<libc::pollfd>,
    fds_dirty: bool,
    /// What an idle wait polls: `fds` when usable, and the wake-up (reused, no allocation).
    poll_set: Vec<libc::pollfd>,
    /// Scratch state of the burst being processed, reused for every burst.
    burst: BurstScratch,
    /// The receive batch, reused: a new batch per poll writes its 32 empty slots each time.
    rx_batch: Option<Box<PacketBatch>>,
    /// One buffer per patch depth for packets crossing patch ports (allocated once).
    patch_spares: Vec<Vec<Packet>>,
}

impl Pmd {
    pub(crate) fn new(
        idx: usize,
        cfg: PmdConfig,
        rx: Receiver<PmdMsg>,
        wake: Arc<Wake>,
        peers: Vec<Sender<PmdMsg>>,
        counters: Arc<PmdCounters>,
    ) -> std::io::Result<Pmd> {
        let pool = PacketPool::new(cfg.pool)?;
        Ok(Pmd {
            idx,
            cfg,
            rx,
            wake,
            peers,
            pool,
            bridges: Vec::new(),
            local: LocalCounters::default(),
            counters,
            idle_polls: 0,
            last_sweep_ms: 0,
            fds: Vec::new(),
            fds_dirty: true,
            poll_set: Vec::new(),
            burst: BurstScratch::new(),
            rx_batch: Some(Box::new(PacketBatch::new())),
            patch_spares: (0..MAX_PATCH_DEPTH)
                .map(|_| Vec::with_capacity(ports::PATCH_OUTBOX))
                .collect(),
        })
    }

    /// The thread body: poll until told to stop.
    pub(crate) fn run(mut self) {
        if let Some(core) = self.cfg.core {
            pin_to_core(core);
        }
        let mut now = clock::now_ms();
        loop {
            let t0 = clock::cycles();
            // The millisecond clock (a vDSO call) is read every NOW_EVERY busy iterations (a
            // busy iteration takes microseconds) and after every idle wait.
            if self.local.iterations.is_multiple_of(NOW_EVERY) || self.idle_polls > SPIN_POLLS {
                now = clock::now_ms();
            }
            let got = self.poll_all(now);
            let t1 = clock::cycles();
            if got > 0 {
                self.local.busy_cycles += t1 - t0;
            } else {
                self.local.idle_cycles += t1 - t0;
            }
            // Light traffic counts towards back-off too: on kernel-socket ports the packets
            // come from other threads of this machine, and a PMD spinning between small
            // bursts takes the CPU they need. The wait ends as soon as a queue is readable.
            if got >= LIGHT_LOAD {
                self.idle_polls = 0;
            } else {
                self.idle_polls = self.idle_polls.saturating_add(1);
                if self.idle_polls > SPIN_POLLS {
                    self.idle_wait();
                    self.local.idle_cycles += clock::cycles() - t1;
                }
            }
            self.local.iterations += 1;
            if !self.handle_messages() {
                break;
            }
            if now >= self.last_sweep_ms + SWEEP_MS {
                self.sweep(now);
                self.last_sweep_ms = now;
            }
            let megaflows = self
                .bridges
                .iter()
                .map(|b| b.cache.megaflows.len() as u64)
                .sum();
            self.local.publish(&self.counters, megaflows);
        }
        // Return every pending buffer before the pool goes.
        for b in &mut self.bridges {
            for p in &mut b.ports {
                self.pool.free_batch(&mut p.tx);
            }
        }
    }

    fn poll_all(&mut self, now: u64) -> usize {
        let mut got = 0;
        for b in 0..self.bridges.len() {
            for p in 0..self.bridges[b].ports.len() {
                let port = &self.bridges[b].ports[p];
                // A port that stays empty and costs a system call per poll (a tap) is polled
                // every SYSCALL_POLL_EVERY iterations while the PMD is busy elsewhere; an idle
                // PMD waits on its descriptor instead, so its latency is unchanged.
                if port.empty_polls > SYSCALL_EMPTY_POLLS
                    && !self.local.iterations.is_multiple_of(SYSCALL_POLL_EVERY)
                {
                    continue;
                }
                let syscall = port.port.rx_polls_by_syscall();
                let mut n = 0;
                for q in 0..port.port.n_rxq() {
                    let t = clock::cycles();
                    let got = self.poll_queue(b, p, q, now);
                    if got > 0 {
                        if let Some(c) = self.bridges[b].ports[p].obs.rxq_cycles.get_mut(q) {
                            *c += clock::cycles() - t;
                        }
                    }
                    n += got;
                }
                let port = &mut self.bridges[b].ports[p];
                port.empty_polls = if n == 0 && syscall {
                    port.empty_polls.saturating_add(1)
                } else {
                    0
                };
                got += n;
            }
            let br = &mut self.bridges[b];
            for port in &mut br.ports {
                port.flush(&mut self.pool);
            }
            if !br.learned.is_empty() {
                let changes: Arc<[RuleChange]> = br.learned.drain(..).collect();
                br.cache.invalidate(&changes);
                // Other PMDs may have cached decisions towards the learned address too.
                for (i, peer) in self.peers.iter().enumerate() {
                    if i != self.idx {
                        let _ = peer.send(PmdMsg::Invalidate {
                            bridge: br.shared.id,
                            changes: Arc::clone(&changes),
                            done: None,
                        });
                    }
                }
            }
        }
        got
    }

    #[inline]
    fn poll_queue(&mut self, b: usize, p: usize, q: usize, now: u64) -> usize {
        let Pmd {
            bridges,
            pool,
            rx_batch,
            ..
        } = self;
        let PmdBridge { ports, .. } = &mut bridges[b];
        let Some(mut batch) = rx_batch.take() else {
            return 0;
        };
        let n = ports[p].port.rx_burst(q, pool, &mut batch);
        if n > 0 {
            self.process(b, p, &mut batch, now);
        }
        // `process` drains the batch; whatever a port left in it goes back to the pool.
        self.pool.free_batch(&mut batch);
        self.rx_batch = Some(batch);
        if n == 0 {
            return 0;
        }
        if self.bridges[b].n_patch > 0 {
            self.deliver_patches(b, now, 0);
        }
        n
    }

    /// Runs a batch received on port `p` of bridge `b` through the bridge's pipeline, in
    /// stages over the whole burst (as OVS's `dp_netdev_input__`): parse and hash every
    /// packet, decide every packet from the flow cache, then send, run actions or drop.
    #[inline]
    fn process(&mut self, b: usize, p: usize, batch: &mut Box<PacketBatch>, now: u64) {
        let Pmd {
            idx,
            bridges,
            pool,
            local,
            burst,
            ..
        } = self;
        let br = &mut bridges[b];
        local.packets += batch.len() as u64;
        local.rx_batches += 1;
        br.ports[p]
            .obs
            .capture(false, batch.iter().map(|f| f.data()));
        let drops_before = local.drops;
        let lookups_before = br.cache.stats;
        extract_burst(burst, batch, br.ports[p].port_no, &mut br.cache);
        classify_burst(burst, br, p, batch, *idx, now);
        dispatch_burst(burst, batch, br, pool, local);
        add_lookups(local, &lookups_before, &br.cache.stats);
        port_obs::attribute_drops(&drops_before, &local.drops, &br.ports[p].obs.drops);
    }

    /// Waits up to the current back-off step for traffic on any receive descriptor.
    fn idle_wait(&mut self) {
        let step = (self.idle_polls - SPIN_POLLS).min(16);
        let wait = Duration::from_micros(1u64 << step.min(8)).min(MAX_IDLE_WAIT);
        if self.fds_dirty {
            self.fds = self
                .bridges
                .iter()
                .flat_map(|b| b.ports.iter())
                .flat_map(|p| (0..p.port.n_rxq()).map(|q| p.port.rx_fd(q)))
                .map(|fd: Option<RawFd>| libc::pollfd {
                    fd: fd.unwrap_or(-1),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            self.fds_dirty = false;
        }
        // The ports' descriptors when every port has one (else a wait on them alone could
        // miss a port's packets: sleep on the wake-up alone), and the control plane's wake-up.
        let all_have_fds = !self.fds.is_empty() && self.fds.iter().all(|f| f.fd >= 0);
        self.poll_set.clear();
        if all_have_fds {
            self.poll_set.extend_from_slice(&self.fds);
        }
        self.poll_set.push(libc::pollfd {
            fd: self.wake.fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: wait.as_nanos() as libc::c_long,
        };
        // SAFETY: `poll_set` is a valid, exclusively borrowed array of `len` pollfd structs
        // and `ts` outlives the call; ppoll only writes `revents`.
        unsafe {
            libc::ppoll(
                self.poll_set.as_mut_ptr(),
                self.poll_set.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            );
        }
        if self.poll_set.last().is_some_and(|f| f.revents != 0) {
            self.wake.clear();
        }
    }

    /// Applies control messages; false when told to stop.
    fn handle_messages(&mut self) -> bool {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                PmdMsg::AddBridge(shared) => self.bridges.push(PmdBridge {
                    shared,
                    cache: FlowCache::new(self.cfg.cache),
                    ports: Vec::new(),
                    learned: Vec::new(),
                    n_patch: 0,
                }),
                PmdMsg::DelBridge(id, done) => {
                    if let Some(i) = self.bridges.iter().position(|b| b.shared.id == id) {
                        let mut b = self.bridges.remove(i);
                        b.cache.flush();
                        for p in &mut b.ports {
                            self.pool.free_batch(&mut p.tx);
                        }
                    }
                    self.fds_dirty = true;
                    let _ = done.send(());
                }
                PmdMsg::AddPort {
                    bridge,
                    port_no,
                    mut port,
                } => {
                    let patch = usize::from(port.patch().is_some());
                    if let Some(b) = self.bridge_mut(bridge) {
                        b.n_patch += patch;
                        let obs = PortObs::new(b.shared.drops_of(port_no), port.n_rxq());
                        b.ports.push(PmdPort {
                            port_no,
                            port,
                            empty_polls: 0,
                            tx: Box::new(PacketBatch::new()),
                            obs,
                        });
                    }
                    self.fds_dirty = true;
                }
                PmdMsg::DelPort {
                    bridge,
                    port_no,
                    done,
                } => {
                    let pool = &mut self.pool;
                    if let Some(b) = self.bridges.iter_mut().find(|b| b.shared.id == bridge) {
                        if let Some(i) = b.ports.iter().position(|p| p.port_no == port_no) {
                            let mut gone = b.ports.remove(i);
                            pool.free_batch(&mut gone.tx);
                            b.n_patch -= usize::from(gone.port.patch().is_some());
                        }
                    }
                    self.fds_dirty = true;
                    let _ = done.send(());
                }
                PmdMsg::TakePort {
                    bridge,
                    port_no,
                    reply,
                } => {
                    let pool = &mut self.pool;
                    let mut taken = None;
                    if let Some(b) = self.bridges.iter_mut().find(|b| b.shared.id == bridge) {
                        if let Some(i) = b.ports.iter().position(|p| p.port_no == port_no) {
                            let mut gone = b.ports.remove(i);
                            pool.free_batch(&mut gone.tx);
                            b.n_patch -= usize::from(gone.port.patch().is_some());
                            taken = Some(gone.port);
                        }
                    }
                    self.fds_dirty = true;
                    let _ = reply.send((self.idx, taken));
                }
                PmdMsg::Invalidate {
                    bridge,
                    changes,
                    done,
                } => {
                    if let Some(b) = self.bridge_mut(bridge) {
                        b.cache.invalidate(&changes);
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                PmdMsg::DumpMegaflows { bridge, reply } => {
                    let rows = self
                        .bridges
                        .iter()
                        .filter(|b| b.shared.id == bridge)
                        .flat_map(|b| b.cache.megaflows.iter())
                        .map(|(_, key, mask, m)| MegaflowRow {
                            pmd: self.idx,
                            r#match: Match::new(*key, *mask),
                            actions: m.actions.to_vec(),
                            packets: m.packets,
                            bytes: m.bytes,
                            used_ms: m.used_ms,
                        })
                        .collect();
                    let _ = reply.send(rows);
                }
                PmdMsg::SyncStats(done) => {
                    for b in &mut self.bridges {
                        b.cache.megaflows.push_stats();
                    }
                    let _ = done.send(());
                }
                PmdMsg::ClearStats(done) => {
                    self.local = LocalCounters::default();
                    for p in self.bridges.iter_mut().flat_map(|b| b.ports.iter_mut()) {
                        p.obs.rxq_cycles.iter_mut().for_each(|c| *c = 0);
                    }
                    let _ = done.send(());
                }
                PmdMsg::ArmCapture {
                    bridge,
                    port_no,
                    tap,
                } => {
                    if let Some(p) = self.port_mut(bridge, port_no) {
                        p.obs.captures.push(tap);
                    }
                }
                PmdMsg::DisarmCapture {
                    bridge,
                    port_no,
                    id,
                } => {
                    if let Some(p) = self.port_mut(bridge, port_no) {
                        p.obs.captures.retain(|c| c.id != id);
                    }
                }
                PmdMsg::ArmTrace {
                    bridge,
                    port_no,
                    arm,
                } => {
                    if let Some(p) = self.port_mut(bridge, port_no) {
                        p.obs.trace = Some(arm);
                    }
                }
                PmdMsg::DisarmTrace {
                    bridge,
                    port_no,
                    id,
                } => {
                    if let Some(p) = self.port_mut(bridge, port_no) {
                        if p.obs.trace.as_ref().is_some_and(|t| t.id == id) {
                            p.obs.trace = None;
                        }
                    }
                }
                PmdMsg::RxqCycles(reply) => {
                    let rows = self
                        .bridges
                        .iter()
                        .flat_map(|b| b.ports.iter().map(move |p| (b.shared.id, p)))
                        .map(|(bridge, p)| RxqCycles {
                            pmd: self.idx,
                            bridge,
                            port_no: p.port_no,
                            cycles: p.obs.rxq_cycles.clone(),
                        })
                        .collect();
                    let _ = reply.send(rows);
                }
                PmdMsg::PacketOut {
                    bridge,
                    in_port,
                    data,
                    actions,
                } => self.packet_out(bridge, in_port, &data, &actions),
                PmdMsg::Stop => return false,
            }
        }
        true
    }

    fn bridge_mut(&mut self, id: u32) -> Option<&mut PmdBridge> {
        self.bridges.iter_mut().find(|b| b.shared.id == id)
    }

    fn port_mut(&mut self, bridge: u32, port_no: u32) -> Option<&mut PmdPort> {
        self.bridge_mut(bridge)?
            .ports
            .iter_mut()
            .find(|p| p.port_no == port_no)
    }

    /// Periodic housekeeping: rule counters, idle megaflows, and keeping alive the MAC
    /// entries of sources whose traffic only hits cached megaflows.
    fn sweep(&mut self, now: u64) {
        for b in &mut self.bridges {
            b.cache.megaflows.push_stats();
            let since = now.saturating_sub(SWEEP_MS * 2);
            let l2 = b.shared.l2.load();
            let touches: Vec<(u16, flow_table::MacAddr, u32)> = b
                .cache
                .megaflows
                .iter()
                .filter(|(_, _, _, f)| f.normal && f.used_ms >= since)
                .filter_map(|(_, k, _, _)| Some((l2.learn_vlan(k)?, k.eth_src, k.in_port)))
                .collect();
            if !touches.is_empty() {
                let mut macs = b.shared.macs();
                for (vlan, mac, port) in touches {
                    // Only refresh an entry that still points where this traffic comes from.
                    if macs.lookup(vlan, &mac, now) == Some(port) {
                        macs.touch(vlan, &mac, now);
                    }
                }
            }
            b.cache
                .megaflows
                .expire_idle(now, self.cfg.megaflow_idle_ms);
        }
    }
}

/// Pins the calling thread to `core` (best effort: a failure is reported, not fatal).
fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write inside it, and
    // sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        tracing::warn!(
            core,
            error = %std::io::Error::last_os_error(),
            "could not pin PMD thread to core"
        );
    }
}
