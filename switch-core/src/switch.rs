//! The switch: bridges, ports and rules, and the PMD threads that forward between them.
//!
//! Every method is a control-plane operation. Changes reach the PMD threads through their
//! channels; a method that changes what packets do returns only after every PMD has applied the
//! change, so a rule deleted by a returned call never forwards another packet.
//!
//! This module is the control plane: the [`Switch`] and what it needs to build and change
//! bridges — bridge and port settings ([`bridge_options`], [`port_config`]), the placement of
//! receive queues on PMD threads ([`rxq_sched`]), the bridges' L2 settings and patch links kept
//! in step with their ports ([`l2_ctl`]), dummy-port I/O, the observability operations
//! (traces, captures, drop and queue counters), and what an OpenFlow controller needs besides
//! rules ([`openflow`]: events, packet-out, fail mode and table-miss behaviour). Nothing here
//! runs per packet, so it may lock, allocate and wait; what the PMD threads run is in [`crate::datapath`], which the control
//! plane reaches only through the PMDs' channels and the bridge state it replaces whole.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use flow_table::{
    Action, CacheConfig, FlowModError, MacAddr, Match, Rule, RuleChange, RuleFilter, RuleSpec,
    RuleTables,
};
use ports::{LinkWatch, PoolConfig, Port, PortCounters, PortKind, PortStats};

use crate::datapath::bridge::{Bridge, BridgeShared, LOCAL_PORT};
use crate::datapath::clock;
use crate::datapath::mac_table::{FdbRow, MacTable, DEFAULT_AGING_SECS, DEFAULT_MAX_ENTRIES};
use crate::datapath::normal;
use crate::datapath::pmd::{MegaflowRow, Pmd, PmdConfig, PmdGone, PmdMsg, Wake};
use crate::datapath::stats::{PmdCounters, PmdStats};
use crate::events::{FlowRemovedReason, SwitchEvent, EVENT_QUEUE};

pub mod bridge_options;
mod dummy;
pub mod openflow;
// Port VLAN settings, mirrors and patch links (issue 8).
mod inspect;
pub mod l2_ctl;
pub mod port_config;
pub mod rxq_sched;
use bridge_options::{BridgeOptions, DatapathType};
pub use inspect::{Capture, RxqUsage, MAX_TRACE_WAIT};
use port_config::PortConfig;

/// How long a control operation waits for the PMD threads.
const PMD_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Housekeeping period (rule and MAC expiry).
const HOUSEKEEPING: Duration = Duration::from_millis(500);

/// Settings of a switch.
#[derive(Clone, Debug)]
pub struct SwitchConfig {
    /// One entry per PMD thread: the core to pin it to, or `None` to let it float.
    pub pmd_cores: Vec<Option<usize>>,
    /// Flow cache of each PMD.
    pub cache: CacheConfig,
    /// Packet pool of each PMD.
    pub pool: PoolConfig,
    /// Megaflows idle this long are removed (OVS: 10 s).
    pub megaflow_idle_ms: u64,
    /// MAC learning aging time (OVS: 300 s).
    pub mac_aging_secs: u64,
    /// MAC table capacity per bridge.
    pub mac_table_size: usize,
    /// Create each bridge's internal port (a tap named like the bridge), as OVS does.
    pub internal_ports: bool,
    /// Most rules a bridge holds (a change beyond it is refused).
    pub max_rules: usize,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            pmd_cores: vec![None],
            cache: CacheConfig::default(),
            // Room for 64 KB offloaded (GSO) frames, so TCP between kernel ports crosses whole.
            pool: PoolConfig {
                n_buffers: 1024,
                data_room: 65536 + 512,
                ..PoolConfig::default()
            },
            megaflow_idle_ms: 10_000,
            mac_aging_secs: DEFAULT_AGING_SECS,
            mac_table_size: DEFAULT_MAX_ENTRIES,
            internal_ports: true,
            max_rules: flow_table::tables::DEFAULT_MAX_RULES,
        }
    }
}

/// What went wrong with a control operation.
#[derive(Debug)]
pub enum SwitchError {
    /// No bridge of that name.
    NoSuchBridge(String),
    /// A bridge of that name exists.
    BridgeExists(String),
    /// No port of that name or number on the bridge.
    NoSuchPort(String),
    /// A port of that name or number exists.
    PortExists(String),
    /// Opening the port failed.
    Port(String, io::Error),
    /// The flow mod was refused.
    FlowMod(FlowModError),
    /// A PMD thread did not answer in time.
    Timeout,
    /// An `fdb-add` of a group address or a VLAN beyond 4095.
    BadFdbEntry,
    /// A mirror that cannot be added (the message says why).
    BadMirror(String),
    /// The port is not a dummy port (frames can be injected and taken only on those).
    NotDummy(String),
    /// The dummy port's receive queue has no room for the frames (none was queued).
    DummyFull(String, ports::DummyFull),
    /// The caller's record of a rule change failed, so the change was not made.
    NotRecorded(String),
    /// A packet-out that cannot be sent (the message says why).
    BadPacketOut(String),
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::NoSuchBridge(b) => write!(f, "no bridge named '{b}'"),
            SwitchError::BridgeExists(b) => write!(f, "bridge '{b}' already exists"),
            SwitchError::NoSuchPort(p) => write!(f, "no port '{p}' on this bridge"),
            SwitchError::PortExists(p) => write!(f, "port '{p}' already exists"),
            SwitchError::Port(p, e) => write!(f, "cannot open port '{p}': {e}"),
            SwitchError::FlowMod(e) => write!(f, "{e}"),
            SwitchError::Timeout => write!(f, "the datapath did not answer in time"),
            SwitchError::BadFdbEntry => write!(
                f,
                "an FDB entry needs a unicast MAC address and a VLAN from 0 to 4095"
            ),
            SwitchError::BadMirror(m) => f.write_str(m),
            SwitchError::NotRecorded(m) => f.write_str(m),
            SwitchError::BadPacketOut(m) => write!(f, "packet-out refused: {m}"),
            SwitchError::NotDummy(p) => write!(
                f,
                "port '{p}' is not a dummy port: frames are injected and taken only on \
                 type=dummy ports"
            ),
            SwitchError::DummyFull(p, e) => write!(f, "dummy port '{p}': {e}"),
        }
    }
}

impl std::error::Error for SwitchError {}

impl From<FlowModError> for SwitchError {
    fn from(e: FlowModError) -> Self {
        SwitchError::FlowMod(e)
    }
}

/// A port as the control plane lists it.
#[derive(Clone, Debug)]
pub struct PortInfo {
    /// Name.
    pub name: String,
    /// OpenFlow port number.
    pub port_no: u32,
    /// Kind.
    pub kind: PortKind,
    /// How it was configured.
    pub config: PortConfig,
    /// MAC address.
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u32,
    /// Counters.
    pub stats: PortStats,
    /// Link up (vhost-user: a VM is connected and its queues run).
    pub link_up: bool,
    /// The peer's state in words (vhost-user: the VM, its queues, why nothing flows).
    pub status: Option<String>,
    /// VLAN settings (`tag`, `trunks`, `vlan_mode`).
    pub vlan: crate::datapath::vlan::PortVlan,
}

/// One PMD's share of a port: the receive queues of the instance it runs (`pmd-rxq-show`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxqInfo {
    /// PMD index.
    pub pmd: usize,
    /// Core the PMD is pinned to.
    pub core: Option<usize>,
    /// Bridge name.
    pub bridge: String,
    /// Port name.
    pub port: String,
    /// OpenFlow port number.
    pub port_no: u32,
    /// Receive queues this PMD polls on the port (0: it only transmits there).
    pub n_rxq: usize,
}

struct PortCtl {
    name: String,
    kind: PortKind,
    config: PortConfig,
    mac: MacAddr,
    mtu: u32,
    counters: Arc<PortCounters>,
    link: LinkWatch,
    /// Receive queues of each instance (instance `i` runs on PMD `(i + rotation) % n`).
    rxqs: Vec<usize>,
    /// Where the instances run (see [`rxq_sched`]).
    rotation: usize,
    /// A patch port's link to its peer, set by the control plane.
    patch: Option<Arc<ports::PatchLink>>,
    /// A dummy port's handle, through which frames are injected and taken.
    dummy: Option<ports::DummyHandle>,
}

struct BridgeCtl {
    shared: Bridge,
    options: BridgeOptions,
    ports: BTreeMap<u32, PortCtl>,
}

struct Ctl {
    bridges: BTreeMap<String, BridgeCtl>,
    /// Mirrors of each bridge, by bridge name.
    mirrors: BTreeMap<String, Vec<l2_ctl::MirrorSpec>>,
    next_bridge_id: u32,
}

struct PmdHandle {
    tx: Sender<PmdMsg>,
    wake: Arc<Wake>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<PmdCounters>,
    core: Option<usize>,
}

struct Inner {
    cfg: SwitchConfig,
    ctl: Mutex<Ctl>,
    pmds: Vec<PmdHandle>,
    stop: AtomicBool,
    /// The datapath's events (packet-ins, flow-removed), for [`Switch::events`].
    events: (Sender<SwitchEvent>, Receiver<SwitchEvent>),
    /// Signalled after each event queued, for [`Switch::events_ready`].
    events_ready: Arc<vmm_sys_util::eventfd::EventFd>,
}

/// When a rule change returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Once every PMD thread dropped the cached decisions it affects: no packet is handled by
    /// the old rules after the call (what the REST API promises).
    Datapath,
    /// Once the rule tables have it: every new lookup sees it, and the PMD threads drop the
    /// cached decisions it affects as soon as they next look at their messages (within a
    /// poll loop, or an idle PMD's back-off step: at most 250 µs). Open vSwitch's barrier promises this much (its revalidators update the
    /// datapath's flows afterwards); an OpenFlow add uses it.
    Tables,
}

/// A running switch. Dropping it stops its threads and closes its ports.
pub struct Switch {
    inner: Arc<Inner>,
    housekeeper: Option<JoinHandle<()>>,
}

/// The rules of a new bridge: one `priority=0,actions=NORMAL`, as Open vSwitch installs.
pub fn default_rules() -> RuleTables {
    let mut t = RuleTables::new();
    t.add(
        RuleSpec::new(0, Match::any(), vec![Action::Normal]),
        clock::now_ms(),
    )
    .expect("the default rule is valid");
    t
}

impl Switch {
    /// Starts the PMD threads (no bridges yet).
    pub fn start(cfg: SwitchConfig) -> io::Result<Switch> {
        let n = cfg.pmd_cores.len().max(1);
        let channels: Vec<_> = (0..n).map(|_| unbounded::<PmdMsg>()).collect();
        let senders: Vec<Sender<PmdMsg>> = channels.iter().map(|(s, _)| s.clone()).collect();
        let mut pmds = Vec::with_capacity(n);
        for (i, (tx, rx)) in channels.into_iter().enumerate() {
            let core = cfg.pmd_cores.get(i).copied().flatten();
            let counters = Arc::new(PmdCounters::default());
            let wake = Arc::new(Wake::new()?);
            let pmd = Pmd::new(
                i,
                PmdConfig {
                    core,
                    cache: cfg.cache,
                    pool: cfg.pool,
                    megaflow_idle_ms: cfg.megaflow_idle_ms,
                },
                rx,
                Arc::clone(&wake),
                senders.clone(),
                Arc::clone(&counters),
            )?;
            let thread = std::thread::Builder::new()
                .name(format!("pmd{i}"))
                .spawn(move || pmd.run())?;
            pmds.push(PmdHandle {
                tx,
                wake,
                thread: Some(thread),
                counters,
                core,
            });
        }
        let inner = Arc::new(Inner {
            cfg,
            ctl: Mutex::new(Ctl {
                bridges: BTreeMap::new(),
                mirrors: BTreeMap::new(),
                next_bridge_id: 1,
            }),
            pmds,
            stop: AtomicBool::new(false),
            events: bounded(EVENT_QUEUE),
            events_ready: Arc::new(vmm_sys_util::eventfd::EventFd::new(
                vmm_sys_util::eventfd::EFD_NONBLOCK,
            )?),
        });
        let weak = Arc::downgrade(&inner);
        let housekeeper = std::thread::Builder::new()
            .name("housekeeping".into())
            .spawn(move || loop {
                // Parked, not asleep: dropping the switch unparks it, so a stop does not wait
                // out the period.
                std::thread::park_timeout(HOUSEKEEPING);
                let Some(inner) = weak.upgrade() else { return };
                if inner.stop.load(Ordering::Relaxed) {
                    return;
                }
                inner.housekeeping();
            })?;
        Ok(Switch {
            inner,
            housekeeper: Some(housekeeper),
        })
    }

    /// Number of PMD threads.
    pub fn n_pmds(&self) -> usize {
        self.inner.pmds.len()
    }

    /// Creates a bridge whose only rule is `priority=0,actions=NORMAL`, with its internal port
    /// (when configured): a `netdev` bridge, as [`add_bridge_with`](Self::add_bridge_with)
    /// with the default options.
    pub fn add_bridge(&self, name: &str) -> Result<(), SwitchError> {
        self.add_bridge_with(name, BridgeOptions::default())
    }

    /// Creates a bridge whose only rule is `priority=0,actions=NORMAL`, with its own port
    /// (LOCAL, named like the bridge) as `options.datapath_type` says: a tap for
    /// [`DatapathType::Netdev`] (when [`SwitchConfig::internal_ports`]), a dummy port for
    /// [`DatapathType::Dummy`] (always; no kernel device is created).
    pub fn add_bridge_with(&self, name: &str, options: BridgeOptions) -> Result<(), SwitchError> {
        let mut ctl = self.inner.lock();
        if ctl.bridges.contains_key(name) {
            return Err(SwitchError::BridgeExists(name.to_owned()));
        }
        let id = ctl.next_bridge_id;
        ctl.next_bridge_id += 1;
        let cfg = &self.inner.cfg;
        let mut rules = default_rules();
        rules.set_max_rules(cfg.max_rules);
        let shared = Arc::new(
            BridgeShared::new(
                id,
                name,
                rules,
                MacTable::new(cfg.mac_aging_secs, cfg.mac_table_size),
            )
            .with_events(
                self.inner.events.0.clone(),
                Arc::clone(&self.inner.events_ready),
            ),
        );
        for pmd in &self.inner.pmds {
            let _ = pmd.send(PmdMsg::AddBridge(Arc::clone(&shared)));
        }
        ctl.bridges.insert(
            name.to_owned(),
            BridgeCtl {
                shared,
                options,
                ports: BTreeMap::new(),
            },
        );
        let local = match options.datapath_type {
            DatapathType::Netdev => cfg.internal_ports.then_some(PortConfig::Internal),
            DatapathType::Dummy => Some(PortConfig::Dummy),
        };
        if let Some(local) = local {
            if let Err(e) = self
                .inner
                .attach(&mut ctl, name, name, local, Some(LOCAL_PORT))
            {
                drop(ctl);
                let _ = self.del_bridge(name);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Deletes a bridge with its ports.
    pub fn del_bridge(&self, name: &str) -> Result<(), SwitchError> {
        let mut ctl = self.inner.lock();
        let br = ctl
            .bridges
            .get_mut(name)
            .ok_or_else(|| SwitchError::NoSuchBridge(name.to_owned()))?;
        let nos: Vec<u32> = br.ports.keys().copied().collect();
        for no in nos {
            self.inner.detach(br, no)?;
        }
        let id = br.shared.id;
        self.inner.each_pmd(|done| PmdMsg::DelBridge(id, done))?;
        ctl.bridges.remove(name);
        ctl.mirrors.remove(name);
        self.inner.relink_patches(&ctl);
        self.inner.rebalance(&mut ctl)
    }

    /// Bridge names, sorted.
    pub fn bridges(&self) -> Vec<String> {
        self.inner.lock().bridges.keys().cloned().collect()
    }

    /// The options a bridge was created with.
    pub fn bridge_options(&self, bridge: &str) -> Result<BridgeOptions, SwitchError> {
        Ok(self.inner.lock().bridge(bridge)?.options)
    }

    /// Adds a port to a bridge; `port_no` picks its OpenFlow number (else the lowest free one
    /// from 1). Returns the number.
    pub fn add_port(
        &self,
        bridge: &str,
        name: &str,
        config: PortConfig,
        port_no: Option<u32>,
    ) -> Result<u32, SwitchError> {
        let mut ctl = self.inner.lock();
        self.inner.attach(&mut ctl, bridge, name, config, port_no)
    }

    /// Removes a port (by name or number); returns after no PMD uses it any more.
    pub fn del_port(&self, bridge: &str, port: &str) -> Result<(), SwitchError> {
        let mut ctl = self.inner.lock();
        let br = ctl.bridge_mut(bridge)?;
        let no = resolve_port(br, port)?;
        self.inner.detach(br, no)?;
        self.inner.ports_changed(&mut ctl, bridge)?;
        self.inner.rebalance(&mut ctl)
    }

    /// The ports of a bridge, by number.
    pub fn ports(&self, bridge: &str) -> Result<Vec<PortInfo>, SwitchError> {
        let ctl = self.inner.lock();
        let br = ctl.bridge(bridge)?;
        Ok(br
            .ports
            .iter()
            .map(|(&port_no, p)| PortInfo {
                name: p.name.clone(),
                port_no,
                kind: p.kind,
                config: p.config.clone(),
                mac: p.mac,
                mtu: p.link.mtu().unwrap_or(p.mtu),
                stats: p.counters.snapshot(),
                link_up: p.link.is_up(),
                status: p.link.status(),
                vlan: br
                    .shared
                    .l2
                    .load()
                    .vlans
                    .get(&port_no)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// The OpenFlow number of a port given by name or number.
    pub fn port_no(&self, bridge: &str, port: &str) -> Result<u32, SwitchError> {
        let ctl = self.inner.lock();
        resolve_port(ctl.bridge(bridge)?, port)
    }

    /// `add-flow`. Returns once every PMD dropped the cached decisions the rule changes.
    pub fn add_flow(&self, bridge: &str, spec: RuleSpec) -> Result<(), SwitchError> {
        self.add_flows(bridge, vec![spec])
    }

    /// `add-flows`: all or nothing (the first invalid rule refuses the whole set).
    pub fn add_flows(&self, bridge: &str, specs: Vec<RuleSpec>) -> Result<(), SwitchError> {
        self.add_flows_recorded(bridge, specs, || Ok(()))
    }

    /// `add-flows`, with `record` run once the change is known valid and before it takes
    /// effect: when it fails, nothing changes and its message is the error.
    pub fn add_flows_recorded(
        &self,
        bridge: &str,
        specs: Vec<RuleSpec>,
        record: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), SwitchError> {
        self.add_flows_visible(bridge, specs, record, Visibility::Datapath)
    }

    /// [`Switch::add_flows_recorded`], returning when the change is as visible as `vis` says.
    pub fn add_flows_visible(
        &self,
        bridge: &str,
        specs: Vec<RuleSpec>,
        record: impl FnOnce() -> Result<(), String>,
        vis: Visibility,
    ) -> Result<(), SwitchError> {
        self.update_rules_visible(
            bridge,
            vis,
            |t| {
                let now = clock::now_ms();
                let mut changes = Vec::with_capacity(specs.len());
                for spec in specs {
                    changes.extend(t.add(spec, now)?);
                }
                Ok((changes, ()))
            },
            |_| record(),
        )
    }

    /// `mod-flows`: returns how many rules changed.
    pub fn mod_flows(
        &self,
        bridge: &str,
        filter: &RuleFilter,
        actions: &[Action],
        strict: bool,
    ) -> Result<usize, SwitchError> {
        self.mod_flows_recorded(bridge, filter, actions, strict, |_| Ok(()))
    }

    /// `mod-flows`, with `record` given the changed rules (as they are now) before the change
    /// takes effect; when it fails, nothing changes.
    pub fn mod_flows_recorded(
        &self,
        bridge: &str,
        filter: &RuleFilter,
        actions: &[Action],
        strict: bool,
        record: impl FnOnce(&[Arc<Rule>]) -> Result<(), String>,
    ) -> Result<usize, SwitchError> {
        self.update_rules(
            bridge,
            |t| {
                let changed = t.modify(filter, actions, strict)?;
                Ok((changed.iter().map(|r| RuleChange::of(r)).collect(), changed))
            },
            |changed| {
                if changed.is_empty() {
                    Ok(())
                } else {
                    record(changed)
                }
            },
        )
        .map(|changed| changed.len())
    }

    /// `del-flows`: returns the removed rules.
    pub fn del_flows(
        &self,
        bridge: &str,
        filter: &RuleFilter,
        strict: bool,
    ) -> Result<Vec<Arc<Rule>>, SwitchError> {
        self.del_flows_recorded(bridge, filter, strict, |_| Ok(()))
    }

    /// `del-flows`, with `record` given the removed rules before the change takes effect;
    /// when it fails, nothing changes.
    pub fn del_flows_recorded(
        &self,
        bridge: &str,
        filter: &RuleFilter,
        strict: bool,
        record: impl FnOnce(&[Arc<Rule>]) -> Result<(), String>,
    ) -> Result<Vec<Arc<Rule>>, SwitchError> {
        let gone = self.update_rules(
            bridge,
            |t| {
                let gone = t.delete(filter, strict);
                Ok((gone.iter().map(|r| RuleChange::of(r)).collect(), gone))
            },
            |gone| {
                if gone.is_empty() {
                    Ok(())
                } else {
                    record(gone)
                }
            },
        )?;
        // Every PMD has dropped the rules' megaflows, which pushed their last counts into them:
        // the counters the events carry are final.
        if gone.iter().any(|r| r.send_flow_rem) {
            if let Ok(sink) = self.event_sink(bridge) {
                sink.flows_removed(&gone, Some(FlowRemovedReason::Delete), clock::now_ms());
            }
        }
        Ok(gone)
    }

    /// Replaces every rule of a bridge by `tables` (a restored configuration).
    pub fn install_rules(&self, bridge: &str, mut tables: RuleTables) -> Result<(), SwitchError> {
        tables.set_max_rules(self.inner.cfg.max_rules);
        self.update_rules(
            bridge,
            |t| {
                // Every table that had or gets a rule: whatever was cached from it goes.
                let changes = (0..flow_table::tables::N_TABLES as u8)
                    .filter(|&id| t.table(id).is_some() || tables.table(id).is_some())
                    .map(|table| RuleChange {
                        table,
                        r#match: Match::any(),
                    })
                    .collect();
                // The bridge's fail mode and miss behaviour are not part of a rule set.
                tables.set_miss(t.miss());
                *t = tables;
                Ok((changes, ()))
            },
            |_| Ok(()),
        )
    }

    /// Applies `f` to a copy of a bridge's rules, lets `record` keep the outcome, then
    /// publishes the copy and waits until every PMD dropped what the change invalidates.
    /// Changes to one bridge are serialised by its `rules_lock`; other bridges' changes run
    /// meanwhile (the switch-wide lock is held only to find the bridge).
    fn update_rules<T>(
        &self,
        bridge: &str,
        f: impl FnOnce(&mut RuleTables) -> Result<(Vec<RuleChange>, T), FlowModError>,
        record: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<T, SwitchError> {
        self.update_rules_visible(bridge, Visibility::Datapath, f, record)
    }

    fn update_rules_visible<T>(
        &self,
        bridge: &str,
        vis: Visibility,
        f: impl FnOnce(&mut RuleTables) -> Result<(Vec<RuleChange>, T), FlowModError>,
        record: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<T, SwitchError> {
        let shared = Arc::clone(&self.inner.lock().bridge(bridge)?.shared);
        let changes = {
            let _one_at_a_time = shared.rules_lock.lock().unwrap_or_else(|e| e.into_inner());
            // Edit a copy so that PMDs keep translating with a consistent table set meanwhile;
            // the copy shares every rule and subtable it does not change.
            let mut tables = RuleTables::clone(&shared.tables.load());
            let (changes, out) = f(&mut tables)?;
            record(&out).map_err(SwitchError::NotRecorded)?;
            shared.tables.store(Arc::new(tables));
            (changes, out)
        };
        let (changes, out) = changes;
        match vis {
            Visibility::Datapath => self.inner.invalidate(&shared, changes)?,
            Visibility::Tables => self.inner.invalidate_later(&shared, changes),
        }
        Ok(out)
    }

    /// The rules of a bridge as they are now, without fresh counters (cheap: a shared
    /// snapshot).
    pub fn rules_snapshot(&self, bridge: &str) -> Result<Arc<RuleTables>, SwitchError> {
        Ok(self.inner.lock().bridge(bridge)?.shared.tables.load_full())
    }

    /// Number of rules of a bridge.
    pub fn n_flows(&self, bridge: &str) -> Result<usize, SwitchError> {
        Ok(self.inner.lock().bridge(bridge)?.shared.tables.load().len())
    }

    /// The rules of a bridge with up-to-date counters.
    pub fn flows(&self, bridge: &str) -> Result<Vec<Arc<Rule>>, SwitchError> {
        self.inner.each_pmd(PmdMsg::SyncStats)?;
        let ctl = self.inner.lock();
        Ok(ctl.bridge(bridge)?.shared.tables.load().rules())
    }

    /// The MAC learning table of a bridge.
    pub fn fdb(&self, bridge: &str) -> Result<Vec<FdbRow>, SwitchError> {
        let ctl = self.inner.lock();
        let rows = ctl.bridge(bridge)?.shared.macs().rows(clock::now_ms());
        Ok(rows)
    }

    /// `fdb/add`: pins `mac` in `vlan` to `port` (name or number) so NORMAL sends there
    /// without learning it; the entry stays until deleted or the port goes.
    pub fn fdb_add(
        &self,
        bridge: &str,
        port: &str,
        vlan: u16,
        mac: MacAddr,
    ) -> Result<(), SwitchError> {
        let ctl = self.inner.lock();
        let br = ctl.bridge(bridge)?;
        let no = resolve_port(br, port)?;
        if mac.is_multicast() || vlan > 4095 {
            return Err(SwitchError::BadFdbEntry);
        }
        br.shared.macs().add_static(vlan, mac, no, clock::now_ms());
        self.inner
            .invalidate(&br.shared, vec![normal::towards(mac)])
    }

    /// `fdb/del`: forgets `mac` in `vlan` (static or learned); false if it was not there.
    pub fn fdb_del(&self, bridge: &str, vlan: u16, mac: MacAddr) -> Result<bool, SwitchError> {
        let ctl = self.inner.lock();
        let br = ctl.bridge(bridge)?;
        let had = br.shared.macs().remove(vlan, &mac).is_some();
        self.inner
            .invalidate(&br.shared, vec![normal::towards(mac)])?;
        Ok(had)
    }

    /// Counters of every PMD thread.
    pub fn pmd_stats(&self) -> Vec<PmdStats> {
        self.inner
            .pmds
            .iter()
            .enumerate()
            .map(|(i, p)| p.counters.snapshot(i, p.core))
            .collect()
    }

    /// The megaflows every PMD thread holds for a bridge (`dpctl-dump-flows`), with counters.
    pub fn megaflows(&self, bridge: &str) -> Result<Vec<MegaflowRow>, SwitchError> {
        let id = self.inner.lock().bridge(bridge)?.shared.id;
        let (tx, rx) = bounded(self.inner.pmds.len());
        for pmd in &self.inner.pmds {
            pmd.send(PmdMsg::DumpMegaflows {
                bridge: id,
                reply: tx.clone(),
            })
            .map_err(|_| SwitchError::Timeout)?;
        }
        let mut rows = Vec::new();
        for _ in &self.inner.pmds {
            rows.extend(
                rx.recv_timeout(PMD_REPLY_TIMEOUT)
                    .map_err(|_| SwitchError::Timeout)?,
            );
        }
        Ok(rows)
    }

    /// Which PMD runs which receive queues, by PMD then bridge then port.
    pub fn rxqs(&self) -> Vec<RxqInfo> {
        let ctl = self.inner.lock();
        let n = self.inner.pmds.len();
        let mut rows = Vec::new();
        for (bname, br) in &ctl.bridges {
            for (&no, p) in &br.ports {
                for (i, &q) in p.rxqs.iter().enumerate() {
                    let pmd = (i + p.rotation) % n;
                    rows.push(RxqInfo {
                        pmd,
                        core: self.inner.pmds[pmd].core,
                        bridge: bname.clone(),
                        port: p.name.clone(),
                        port_no: no,
                        n_rxq: q,
                    });
                }
            }
        }
        rows.sort_by(|a, b| (a.pmd, &a.bridge, a.port_no).cmp(&(b.pmd, &b.bridge, b.port_no)));
        rows
    }

    /// Zeroes the PMD counters.
    pub fn clear_pmd_stats(&self) -> Result<(), SwitchError> {
        self.inner.each_pmd(PmdMsg::ClearStats)
    }
}

/// The number a new port gets: `port_no` if given and free, else the lowest free one from 1.
fn pick_port_no(br: &BridgeCtl, port_no: Option<u32>) -> Result<u32, SwitchError> {
    match port_no {
        Some(n) if br.ports.contains_key(&n) => Err(SwitchError::PortExists(n.to_string())),
        Some(n) => Ok(n),
        None => Ok((1..)
            .find(|n| !br.ports.contains_key(n))
            .expect("a free number")),
    }
}

fn resolve_port(br: &BridgeCtl, port: &str) -> Result<u32, SwitchError> {
    if let Some((&no, _)) = br.ports.iter().find(|(_, p)| p.name == port) {
        return Ok(no);
    }
    let no = match port {
        "LOCAL" | "local" => Some(LOCAL_PORT),
        _ => port.parse::<u32>().ok(),
    };
    no.filter(|n| br.ports.contains_key(n))
        .ok_or_else(|| SwitchError::NoSuchPort(port.to_owned()))
}

impl Ctl {
    fn bridge(&self, name: &str) -> Result<&BridgeCtl, SwitchError> {
        self.bridges
            .get(name)
            .ok_or_else(|| SwitchError::NoSuchBridge(name.to_owned()))
    }

    fn bridge_mut(&mut self, name: &str) -> Result<&mut BridgeCtl, SwitchError> {
        self.bridges
            .get_mut(name)
            .ok_or_else(|| SwitchError::NoSuchBridge(name.to_owned()))
    }
}

impl PmdHandle {
    /// Sends a control message and wakes the thread to handle it now.
    fn send(&self, msg: PmdMsg) -> Result<(), PmdGone> {
        self.wake.send(&self.tx, msg)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Ctl> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a message with a reply channel to every PMD and waits for every reply.
    fn each_pmd(&self, msg: impl Fn(Sender<()>) -> PmdMsg) -> Result<(), SwitchError> {
        let (done, replies) = bounded(self.pmds.len());
        for pmd in &self.pmds {
            pmd.send(msg(done.clone()))
                .map_err(|_| SwitchError::Timeout)?;
        }
        for _ in &self.pmds {
            replies
                .recv_timeout(PMD_REPLY_TIMEOUT)
                .map_err(|_| SwitchError::Timeout)?;
        }
        Ok(())
    }

    fn invalidate(
        &self,
        bridge: &BridgeShared,
        changes: Vec<RuleChange>,
    ) -> Result<(), SwitchError> {
        if changes.is_empty() {
            return Ok(());
        }
        let changes: Arc<[RuleChange]> = changes.into();
        self.each_pmd(|done| PmdMsg::Invalidate {
            bridge: bridge.id,
            changes: Arc::clone(&changes),
            done: Some(done),
        })
    }

    /// Tells every PMD to drop the cached decisions `changes` affect, without waiting.
    fn invalidate_later(&self, bridge: &BridgeShared, changes: Vec<RuleChange>) {
        if changes.is_empty() {
            return;
        }
        let changes: Arc<[RuleChange]> = changes.into();
        for pmd in &self.pmds {
            // Not woken: an idle PMD reads its messages at the end of its back-off step
            // anyway, and a wake-up per flow mod would cost a system call here and a
            // scheduler round on the PMD's core. A PMD that is gone has no caches left.
            let _ = pmd.tx.send(PmdMsg::Invalidate {
                bridge: bridge.id,
                changes: Arc::clone(&changes),
                done: None,
            });
        }
    }

    /// Receive queues each PMD polls now.
    fn pmd_loads(&self, ctl: &Ctl) -> Vec<usize> {
        let ports = ctl.bridges.values().flat_map(|b| b.ports.values());
        let shape: Vec<Vec<usize>> = ports.clone().map(|p| p.rxqs.clone()).collect();
        let rotations: Vec<usize> = ports.map(|p| p.rotation).collect();
        rxq_sched::pmd_loads(&shape, &rotations, self.pmds.len())
    }

    fn attach(
        &self,
        ctl: &mut Ctl,
        bridge: &str,
        name: &str,
        config: PortConfig,
        port_no: Option<u32>,
    ) -> Result<u32, SwitchError> {
        let load = self.pmd_loads(ctl);
        let br = ctl.bridge_mut(bridge)?;
        if br.ports.values().any(|p| p.name == name) {
            return Err(SwitchError::PortExists(name.to_owned()));
        }
        let no = pick_port_no(br, port_no)?;
        let instances = config
            .open(name, &br.shared.name, self.pmds.len())
            .map_err(|e| SwitchError::Port(name.to_owned(), e))?;
        let rxqs: Vec<usize> = instances.iter().map(|p| p.n_rxq()).collect();
        let rotation = rxq_sched::best_rotation(&load, &rxqs);
        let mut instances = instances;
        let patch = instances[0].patch().map(|p| p.link());
        let first: &dyn Port = instances[0].as_ref();
        let dummy = first.dummy();
        let port_ctl = PortCtl {
            name: name.to_owned(),
            kind: first.kind(),
            config,
            mac: MacAddr(first.mac()),
            mtu: first.mtu(),
            counters: first.counters(),
            link: first.link_watch(),
            rxqs,
            rotation,
            patch,
            dummy,
        };
        let n = self.pmds.len();
        for (i, mut port) in instances.into_iter().enumerate() {
            port.set_port_no(no);
            let _ = self.pmds[(i + rotation) % n].send(PmdMsg::AddPort {
                bridge: br.shared.id,
                port_no: no,
                port,
            });
        }
        br.ports.insert(no, port_ctl);
        self.ports_changed(ctl, bridge)?;
        Ok(no)
    }

    /// Places every port's receive queues afresh (after a port left) and moves the instances
    /// whose PMD changed. A moved port misses from its PMDs for the time of the move, as in OVS
    /// when rxqs are reassigned.
    fn rebalance(&self, ctl: &mut Ctl) -> Result<(), SwitchError> {
        let n = self.pmds.len();
        if n < 2 {
            return Ok(());
        }
        let ports: Vec<(u32, u32, &PortCtl)> = ctl
            .bridges
            .values()
            .flat_map(|b| b.ports.iter().map(|(&no, p)| (b.shared.id, no, p)))
            .collect();
        let shape: Vec<Vec<usize>> = ports.iter().map(|(_, _, p)| p.rxqs.clone()).collect();
        let current: Vec<usize> = ports.iter().map(|(_, _, p)| p.rotation).collect();
        let wanted = rxq_sched::assign(&shape, n);
        // Moving costs a gap in forwarding: only when it makes the busiest PMD less busy.
        let max = |rot: &[usize]| {
            rxq_sched::pmd_loads(&shape, rot, n)
                .into_iter()
                .max()
                .unwrap_or(0)
        };
        if max(&wanted) >= max(&current) {
            return Ok(());
        }
        let moves: Vec<(u32, u32, usize, usize)> = ports
            .iter()
            .zip(current.iter().zip(&wanted))
            .filter(|(_, (c, w))| c != w)
            .map(|((b, no, _), (c, w))| (*b, *no, *c, *w))
            .collect();
        for (bridge, port_no, old, new) in moves {
            let (tx, rx) = bounded(n);
            for pmd in &self.pmds {
                pmd.send(PmdMsg::TakePort {
                    bridge,
                    port_no,
                    reply: tx.clone(),
                })
                .map_err(|_| SwitchError::Timeout)?;
            }
            for _ in 0..n {
                let (pmd, port) = rx
                    .recv_timeout(PMD_REPLY_TIMEOUT)
                    .map_err(|_| SwitchError::Timeout)?;
                let Some(port) = port else { continue };
                let instance = (pmd + n - old) % n;
                let _ = self.pmds[(instance + new) % n].send(PmdMsg::AddPort {
                    bridge,
                    port_no,
                    port,
                });
            }
            if let Some(p) = ctl
                .bridges
                .values_mut()
                .find(|b| b.shared.id == bridge)
                .and_then(|b| b.ports.get_mut(&port_no))
            {
                p.rotation = new;
            }
        }
        Ok(())
    }

    fn detach(&self, br: &mut BridgeCtl, no: u32) -> Result<(), SwitchError> {
        let id = br.shared.id;
        self.each_pmd(|done| PmdMsg::DelPort {
            bridge: id,
            port_no: no,
            done,
        })?;
        br.ports.remove(&no);
        br.shared
            .port_drops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&no);
        // Forget what was learned on the port, and what was decided about traffic from it or
        // to it.
        let gone = br.shared.macs().flush_port(no);
        let mut changes: Vec<RuleChange> =
            gone.iter().map(|(_, mac)| normal::towards(*mac)).collect();
        changes.push(RuleChange {
            table: 0,
            r#match: Match::any().in_port(no),
        });
        self.invalidate(&br.shared, changes)
    }

    /// Expires rules and MAC entries whose time ran out.
    fn housekeeping(&self) {
        let now = clock::now_ms();
        let ctl = self.lock();
        for br in ctl.bridges.values() {
            let mut changes = Vec::new();
            let mut expired = Vec::new();
            // Only rules with a timeout are visited, and the copy costs O(tables), not
            // O(rules); it is published only when a rule did expire.
            if br.shared.tables.load().has_timeouts() {
                let _one_at_a_time = br
                    .shared
                    .rules_lock
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let mut t = RuleTables::clone(&br.shared.tables.load());
                let gone = t.expire(now);
                if !gone.is_empty() {
                    changes.extend(gone.iter().map(|r| RuleChange::of(r)));
                    br.shared.tables.store(Arc::new(t));
                    expired = gone;
                }
            }
            changes.extend(
                br.shared
                    .macs()
                    .expire(now)
                    .into_iter()
                    .map(|(_, mac, _)| normal::towards(mac)),
            );
            if let Err(e) = self.invalidate(&br.shared, changes) {
                tracing::error!(bridge = %br.shared.name, "housekeeping: {e}");
            }
            // After the invalidation, which pushed the megaflows' last counts into the rules.
            br.shared.events.flows_removed(&expired, None, now);
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        for pmd in &self.inner.pmds {
            let _ = pmd.send(PmdMsg::Stop);
        }
        // The PMD handles live in `inner`, which the housekeeper may briefly hold too.
        if let Some(h) = self.housekeeper.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            for pmd in &mut inner.pmds {
                if let Some(t) = pmd.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}
