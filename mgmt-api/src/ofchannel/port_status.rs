//! PORT_STATUS: the supervisor compares each bridge's ports with what it saw last and tells
//! the bridge's connections what was added, deleted or changed (link state included).

use std::collections::BTreeMap;
use std::sync::Arc;

use openflow::features::PhyPort;

use super::hub::Event;
use super::session::describe_ports;
use crate::api::AppState;

/// OFPPR_ADD, OFPPR_DELETE, OFPPR_MODIFY.
const ADD: u8 = 0;
const DELETE: u8 = 1;
const MODIFY: u8 = 2;

/// The ports last seen per bridge (only while someone listens).
#[derive(Default)]
pub(super) struct Tracker {
    last: BTreeMap<String, BTreeMap<u16, PhyPort>>,
}

impl Tracker {
    /// Publishes the changes of `bridge`'s ports since the last poll.
    pub fn poll(&mut self, app: &Arc<AppState>, bridge: &str) {
        if !app.openflow.has_listeners(bridge) {
            self.last.remove(bridge);
            return;
        }
        let Ok(ports) = app.service.switch().ports(bridge) else {
            return;
        };
        let (now, _) = describe_ports(&ports);
        let now: BTreeMap<u16, PhyPort> = now.into_iter().map(|p| (p.port_no, p)).collect();
        let Some(before) = self.last.insert(bridge.to_owned(), now.clone()) else {
            return;
        };
        for ev in changes(&before, &now) {
            app.openflow.publish(bridge, ev);
        }
    }

    /// Forgets bridges that are gone.
    pub fn retain(&mut self, bridges: &[String]) {
        self.last.retain(|b, _| bridges.contains(b));
    }
}

/// The PORT_STATUS events that take `before` to `now`.
fn changes(before: &BTreeMap<u16, PhyPort>, now: &BTreeMap<u16, PhyPort>) -> Vec<Event> {
    let mut out = Vec::new();
    for (no, p) in before {
        if !now.contains_key(no) {
            out.push(Event::PortStatus {
                reason: DELETE,
                port: p.clone(),
            });
        }
    }
    for (no, p) in now {
        match before.get(no) {
            None => out.push(Event::PortStatus {
                reason: ADD,
                port: p.clone(),
            }),
            Some(old) if old != p => out.push(Event::PortStatus {
                reason: MODIFY,
                port: p.clone(),
            }),
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(no: u16, state: u32) -> PhyPort {
        PhyPort {
            port_no: no,
            hw_addr: Default::default(),
            name: format!("p{no}"),
            config: 0,
            state,
            curr: 0,
        }
    }

    #[test]
    fn added_deleted_and_changed_ports_are_told() {
        let before: BTreeMap<u16, PhyPort> = [(1, port(1, 0)), (2, port(2, 0))].into();
        let now: BTreeMap<u16, PhyPort> = [(2, port(2, 1)), (3, port(3, 0))].into();
        let got: Vec<(u8, u16)> = changes(&before, &now)
            .into_iter()
            .map(|e| match e {
                Event::PortStatus { reason, port } => (reason, port.port_no),
                #[allow(unreachable_patterns)]
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, vec![(DELETE, 1), (MODIFY, 2), (ADD, 3)]);
        assert!(changes(&now, &now).is_empty());
    }
}
