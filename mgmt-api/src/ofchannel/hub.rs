//! What the OpenFlow connections of the daemon share: per bridge, the asynchronous messages
//! to fan out (packet-ins, flow removals, port changes), the connections with their roles
//! and negotiated settings, and the state of each configured controller target.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openflow::Version;
use tokio::sync::{broadcast, Notify};

/// Events a slow connection may fall behind by before it loses some (it is then told in the
/// log; OpenFlow has no way to say so on the wire).
const EVENT_BACKLOG: usize = 1024;

/// An asynchronous message for a bridge's connections.
#[derive(Debug)]
pub enum Event {
    /// A packet for the controller.
    PacketIn(switch_core::events::PacketIn),
    /// A rule with `send_flow_rem` went away.
    FlowRemoved(switch_core::events::FlowRemoved),
    /// A port was added (`reason` 0), deleted (1) or changed (2).
    PortStatus {
        /// OFPPR_*.
        reason: u8,
        /// The port as it is (or was, when deleted).
        port: openflow::features::PhyPort,
    },
}

/// What kind of peer a connection is, as OVS tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A tool on the bridge's `.mgmt` socket (`ovs-ofctl`): no keepalive, and asynchronous
    /// messages only once it sets a miss length (as `ovs-ofctl monitor` does).
    Service,
    /// A controller of `set-controller`, connected or accepted.
    Controller,
}

/// OpenFlow controller roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full access, shared with other equals (the default).
    Equal,
    /// Full access; the other masters became slaves.
    Master,
    /// Read-only, and no packet-ins or flow removals.
    Slave,
}

/// A live connection, as the others and the fail mode need to know it.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Service or controller.
    pub kind: Kind,
    /// The configured target it belongs to (`None` for the `.mgmt` socket).
    pub target: Option<String>,
    /// Negotiated version.
    pub version: Version,
    /// Role.
    pub role: Role,
    /// Bytes of a table-miss packet to send (OpenFlow's `miss_send_len`).
    pub miss_send_len: u16,
}

impl ConnInfo {
    /// Whether asynchronous messages of this kind go to this connection.
    pub fn wants_async(&self) -> bool {
        self.kind == Kind::Controller || self.miss_send_len > 0
    }
}

/// The state of one configured target, for `get-controller`.
#[derive(Clone, Debug, Default)]
pub struct TargetStatus {
    /// Connections now open (0 or 1 for an active target).
    pub connections: usize,
    /// Why the last attempt or connection ended.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct BridgeHub {
    events: Option<broadcast::Sender<Arc<Event>>>,
    conns: BTreeMap<u64, ConnInfo>,
    /// The last master/slave request's generation id (OpenFlow's stale-master check).
    generation: Option<u64>,
    targets: BTreeMap<String, TargetStatus>,
}

/// The shared state of all OpenFlow connections.
#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    bridges: Mutex<HashMap<String, BridgeHub>>,
    /// Wakes the supervisor when a connection comes or goes, so the fail mode follows at once.
    pub(crate) changed: Notify,
}

/// Why a role request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RoleError {
    /// Its generation id is older than one seen before.
    Stale,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, BridgeHub>> {
        self.bridges.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Receives the bridge's asynchronous messages from now on.
    pub fn subscribe(&self, bridge: &str) -> broadcast::Receiver<Arc<Event>> {
        let mut bridges = self.lock();
        let b = bridges.entry(bridge.to_owned()).or_default();
        b.events
            .get_or_insert_with(|| broadcast::channel(EVENT_BACKLOG).0)
            .subscribe()
    }

    /// Hands an event to the bridge's connections; dropped when none listens.
    pub fn publish(&self, bridge: &str, ev: Event) {
        if let Some(tx) = self.lock().get(bridge).and_then(|b| b.events.as_ref()) {
            let _ = tx.send(Arc::new(ev));
        }
    }

    /// Whether anything listens to the bridge's events.
    pub fn has_listeners(&self, bridge: &str) -> bool {
        self.lock()
            .get(bridge)
            .and_then(|b| b.events.as_ref())
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Registers a connection that finished its handshake; it is forgotten when the returned
    /// guard drops.
    pub fn register(self: &Arc<Self>, bridge: &str, info: ConnInfo) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut bridges = self.lock();
            let b = bridges.entry(bridge.to_owned()).or_default();
            if let Some(t) = &info.target {
                let s = b.targets.entry(t.clone()).or_default();
                s.connections += 1;
                s.last_error = None;
            }
            b.conns.insert(id, info);
        }
        self.changed.notify_one();
        Registration {
            hub: Arc::clone(self),
            bridge: bridge.to_owned(),
            id,
        }
    }

    /// A copy of a connection's entry.
    pub fn conn(&self, bridge: &str, id: u64) -> Option<ConnInfo> {
        self.lock().get(bridge)?.conns.get(&id).cloned()
    }

    /// Changes a connection's entry.
    pub fn update(&self, bridge: &str, id: u64, f: impl FnOnce(&mut ConnInfo)) {
        if let Some(c) = self
            .lock()
            .get_mut(bridge)
            .and_then(|b| b.conns.get_mut(&id))
        {
            f(c);
        }
        self.changed.notify_one();
    }

    /// Applies a role request of connection `id`: a new master makes the other masters slaves.
    /// `generation` is checked, as OpenFlow 1.3 says, for master and slave requests.
    pub fn set_role(
        &self,
        bridge: &str,
        id: u64,
        role: Role,
        generation: u64,
    ) -> Result<(), RoleError> {
        let mut bridges = self.lock();
        let Some(b) = bridges.get_mut(bridge) else {
            return Ok(());
        };
        if role != Role::Equal {
            if let Some(g) = b.generation {
                // Wrapping distance, as the specification defines it.
                if (generation.wrapping_sub(g) as i64) < 0 {
                    return Err(RoleError::Stale);
                }
            }
            b.generation = Some(generation);
        }
        if role == Role::Master {
            for (other, c) in b.conns.iter_mut() {
                if *other != id && c.role == Role::Master {
                    c.role = Role::Slave;
                }
            }
        }
        if let Some(c) = b.conns.get_mut(&id) {
            c.role = role;
        }
        Ok(())
    }

    /// The bridge's live connections.
    pub fn conns(&self, bridge: &str) -> Vec<ConnInfo> {
        self.lock()
            .get(bridge)
            .map(|b| b.conns.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Notes why a target's attempt or connection ended.
    pub fn target_error(&self, bridge: &str, target: &str, error: String) {
        let mut bridges = self.lock();
        let b = bridges.entry(bridge.to_owned()).or_default();
        b.targets.entry(target.to_owned()).or_default().last_error = Some(error);
    }

    /// The state of a configured target.
    pub fn target_status(&self, bridge: &str, target: &str) -> TargetStatus {
        self.lock()
            .get(bridge)
            .and_then(|b| b.targets.get(target).cloned())
            .unwrap_or_default()
    }

    /// Forgets targets no longer configured, and bridges gone.
    pub fn retain_targets(&self, bridge: &str, keep: &[String]) {
        if let Some(b) = self.lock().get_mut(bridge) {
            b.targets.retain(|t, _| keep.contains(t));
        }
    }

    /// Forgets a deleted bridge.
    pub fn forget_bridge(&self, bridge: &str) {
        self.lock().remove(bridge);
    }
}

/// A registered connection; dropping it unregisters it.
pub struct Registration {
    hub: Arc<Hub>,
    bridge: String,
    /// The connection's id in the hub.
    pub id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        {
            let mut bridges = self.hub.lock();
            if let Some(b) = bridges.get_mut(&self.bridge) {
                if let Some(c) = b.conns.remove(&self.id) {
                    if let Some(s) = c.target.and_then(|t| b.targets.get_mut(&t)) {
                        s.connections = s.connections.saturating_sub(1);
                    }
                }
            }
        }
        self.hub.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(role: Role) -> ConnInfo {
        ConnInfo {
            kind: Kind::Controller,
            target: Some("tcp:127.0.0.1:6653".into()),
            version: Version::Of13,
            role,
            miss_send_len: 128,
        }
    }

    #[test]
    fn a_new_master_demotes_the_old_one_and_stale_generations_are_refused() {
        let hub = Arc::new(Hub::default());
        let a = hub.register("br0", info(Role::Equal));
        let b = hub.register("br0", info(Role::Equal));
        hub.set_role("br0", a.id, Role::Master, 5).unwrap();
        assert_eq!(hub.conn("br0", a.id).unwrap().role, Role::Master);
        hub.set_role("br0", b.id, Role::Master, 6).unwrap();
        assert_eq!(hub.conn("br0", a.id).unwrap().role, Role::Slave);
        assert_eq!(hub.conn("br0", b.id).unwrap().role, Role::Master);
        assert_eq!(
            hub.set_role("br0", a.id, Role::Master, 5),
            Err(RoleError::Stale)
        );
        // Equal takes no generation.
        hub.set_role("br0", a.id, Role::Equal, 0).unwrap();
        assert_eq!(
            hub.target_status("br0", "tcp:127.0.0.1:6653").connections,
            2
        );
        drop(a);
        assert_eq!(hub.conns("br0").len(), 1);
        assert_eq!(
            hub.target_status("br0", "tcp:127.0.0.1:6653").connections,
            1
        );
    }

    #[test]
    fn events_reach_subscribers_only() {
        let hub = Hub::default();
        assert!(!hub.has_listeners("br0"));
        hub.publish(
            "br0",
            Event::PortStatus {
                reason: 0,
                port: openflow::features::PhyPort {
                    port_no: 1,
                    hw_addr: Default::default(),
                    name: "p1".into(),
                    config: 0,
                    state: 0,
                    curr: 0,
                },
            },
        );
        let mut rx = hub.subscribe("br0");
        assert!(hub.has_listeners("br0"));
        hub.publish(
            "br0",
            Event::PortStatus {
                reason: 1,
                port: openflow::features::PhyPort {
                    port_no: 2,
                    hw_addr: Default::default(),
                    name: "p2".into(),
                    config: 0,
                    state: 0,
                    curr: 0,
                },
            },
        );
        match &*rx.try_recv().unwrap() {
            Event::PortStatus { reason, port } => assert_eq!((*reason, port.port_no), (1, 2)),
            e => panic!("{e:?}"),
        }
        assert!(rx.try_recv().is_err());
    }
}
