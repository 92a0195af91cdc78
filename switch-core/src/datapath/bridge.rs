//! What PMD threads share about a bridge: its rule tables and its MAC table.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use flow_table::Translation;
use flow_table::{
    translate_actions, translate_traced, translate_with, Action, FlowKey, RuleChange, RuleTables,
    TraceStep,
};

use crate::datapath::l2::L2Config;
use crate::datapath::mac_table::MacTable;
use crate::datapath::normal::{BridgeResolver, NormalNote};
use crate::datapath::port_obs::PortDrops;
use crate::events::{EventSink, SwitchEvent};

/// OpenFlow's number for the bridge's own (internal) port.
pub const LOCAL_PORT: u32 = 65534;
/// OpenFlow's `CONTROLLER` port (as the flow syntax numbers it): the `in_port` of a packet the
/// controller sends out.
pub const CONTROLLER_PORT: u32 = flow_table::flow_syntax::OFPP_CONTROLLER;
/// OpenFlow's `NONE` port (OpenFlow 1.0's `in_port` for a packet the controller sends out).
pub const NONE_PORT: u32 = flow_table::flow_syntax::OFPP_NONE;

/// The state of a bridge that PMD threads read.
#[derive(Debug)]
pub struct BridgeShared {
    /// Datapath-wide bridge id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Rule tables, replaced whole by the control plane (PMDs read them lock-free on upcalls).
    pub tables: ArcSwap<RuleTables>,
    /// Held by the control plane from reading `tables` to storing the changed copy, so that
    /// changes to one bridge apply one after the other while other bridges' go on.
    pub rules_lock: Mutex<()>,
    /// MAC learning table. Locked only on upcalls that run NORMAL and by housekeeping, never
    /// per packet.
    pub macs: Mutex<MacTable>,
    /// Port VLAN settings and mirrors (see [`super::l2`]), replaced whole by the control plane.
    pub l2: ArcSwap<L2Config>,
    /// Datapath drops by reason of the packets each port (by number) received. Locked only
    /// when a port is added or removed and when counters are read.
    pub port_drops: Mutex<BTreeMap<u32, Arc<PortDrops>>>,
    /// Where packet-ins and flow-removed events go.
    pub(crate) events: EventSink,
}

impl BridgeShared {
    /// A bridge with the given rule tables and MAC table.
    pub fn new(id: u32, name: &str, tables: RuleTables, macs: MacTable) -> BridgeShared {
        BridgeShared {
            id,
            name: name.to_owned(),
            tables: ArcSwap::from_pointee(tables),
            rules_lock: Mutex::new(()),
            macs: Mutex::new(macs),
            l2: ArcSwap::from_pointee(L2Config::default()),
            port_drops: Mutex::new(BTreeMap::new()),
            events: EventSink::none(name),
        }
    }

    /// The same bridge, its events going to `tx`.
    pub(crate) fn with_events(
        mut self,
        tx: crossbeam_channel::Sender<SwitchEvent>,
        ready: Arc<vmm_sys_util::eventfd::EventFd>,
    ) -> Self {
        self.events = EventSink::new(&self.name, tx).with_ready(ready);
        self
    }

    /// The drop counters of a port (created on first use).
    pub fn drops_of(&self, port_no: u32) -> Arc<PortDrops> {
        let mut m = self.port_drops.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(m.entry(port_no).or_default())
    }

    /// The MAC table, recovering it if a thread panicked while holding it (the table stays
    /// consistent: every update is a single insert or remove).
    pub fn macs(&self) -> MutexGuard<'_, MacTable> {
        self.macs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The upcall of this bridge: translate through the current rules, NORMAL and FLOOD
    /// resolved with the bridge's ports and MAC table (learning), mirrors added. A learning
    /// event is appended to `learned`.
    pub fn upcall(&self, key: &FlowKey, now_ms: u64, learned: &mut Vec<RuleChange>) -> Translation {
        let tables = self.tables.load();
        let l2 = self.l2.load();
        let mut r = BridgeResolver::new(&l2, &self.macs, now_ms, true);
        let mut x = translate_with(&tables, key, &mut r);
        learned.append(&mut r.learned);
        l2.apply_mirrors(&mut x, key);
        x
    }

    /// The translation of a packet-out's `actions` for a packet of `key` (see
    /// [`translate_actions`]), NORMAL and FLOOD resolved as on an upcall (learning), mirrors
    /// added. A learning event is appended to `learned`.
    pub fn packet_out(
        &self,
        key: &FlowKey,
        actions: &[Action],
        now_ms: u64,
        learned: &mut Vec<RuleChange>,
    ) -> Translation {
        let tables = self.tables.load();
        let l2 = self.l2.load();
        let mut r = BridgeResolver::new(&l2, &self.macs, now_ms, true);
        let mut x = translate_actions(&tables, key, actions, &mut r);
        learned.append(&mut r.learned);
        l2.apply_mirrors(&mut x, key);
        x
    }

    /// The same translation as [`BridgeShared::upcall`], without learning, also recording each
    /// table lookup and what each NORMAL decided (`ofproto/trace`).
    pub fn xlate_traced(
        &self,
        key: &FlowKey,
        now_ms: u64,
    ) -> (Translation, Vec<TraceStep>, Vec<NormalNote>) {
        let tables = self.tables.load();
        let l2 = self.l2.load();
        let mut r = BridgeResolver::new(&l2, &self.macs, now_ms, false);
        let (mut x, steps) = translate_traced(&tables, key, &mut r);
        let notes = std::mem::take(&mut r.notes);
        drop(r);
        l2.apply_mirrors(&mut x, key);
        (x, steps, notes)
    }
}

/// Shared handle.
pub type Bridge = Arc<BridgeShared>;
