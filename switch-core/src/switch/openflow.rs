//! What an OpenFlow controller needs of the switch besides rules: the datapath's events
//! (packet-in, flow-removed), packet-out, and the fail mode and table-miss behaviour of a
//! bridge.

use crossbeam_channel::Receiver;
use flow_table::{Action, MissConfig};

use super::{Switch, SwitchError};
use crate::datapath::bridge::{CONTROLLER_PORT, LOCAL_PORT, NONE_PORT};
use crate::datapath::pmd::PmdMsg;
use crate::events::{EventSink, SwitchEvent};

/// Shortest frame a packet-out takes: an Ethernet header.
const MIN_FRAME: usize = 14;

impl Switch {
    /// The datapath's events: packet-ins and flow-removed of every bridge. One queue of
    /// [`crate::events::EVENT_QUEUE`] events per switch, which every receiver shares (each
    /// event goes to one of them); while it is full, packet-ins are dropped and counted
    /// ([`crate::DropReason::ControllerQueue`]).
    pub fn events(&self) -> Receiver<SwitchEvent> {
        self.inner.events.1.clone()
    }

    /// A non-blocking eventfd signalled after every event queued on [`Switch::events`], so an
    /// event loop can wait for events on it (read it to clear it, then drain the queue)
    /// instead of a thread blocking on the queue.
    pub fn events_ready(&self) -> std::sync::Arc<vmm_sys_util::eventfd::EventFd> {
        std::sync::Arc::clone(&self.inner.events_ready)
    }

    /// Sets a bridge's fail mode and table-miss behaviour. The rules and their counters stay;
    /// every cached decision of the bridge is dropped before this returns, so the next packet
    /// already gets the new behaviour.
    pub fn set_miss(&self, bridge: &str, cfg: MissConfig) -> Result<(), SwitchError> {
        self.update_rules(bridge, |t| Ok((t.set_miss(cfg), ())), |_| Ok(()))
    }

    /// A bridge's fail mode and table-miss behaviour.
    pub fn miss(&self, bridge: &str) -> Result<MissConfig, SwitchError> {
        Ok(self
            .inner
            .lock()
            .bridge(bridge)?
            .shared
            .tables
            .load()
            .miss())
    }

    /// OpenFlow packet-out: sends `data` through `actions` as if received on `in_port` (a port
    /// of the bridge, [`LOCAL_PORT`], [`CONTROLLER_PORT`] or [`crate::NONE_PORT`]). Outputs
    /// to `in_port` are skipped as in a rule (`Action::InPort` sends there); `Action::Resubmit
    /// { port: None, table: Some(0) }` is OpenFlow's output to `TABLE`: the packet goes
    /// through the bridge's rules, which count it. Returns once a PMD thread has the packet,
    /// not after it was sent.
    pub fn packet_out(
        &self,
        bridge: &str,
        in_port: u32,
        data: Vec<u8>,
        actions: Vec<Action>,
    ) -> Result<(), SwitchError> {
        let id = {
            let ctl = self.inner.lock();
            let br = ctl.bridge(bridge)?;
            let known = br.ports.contains_key(&in_port)
                || [LOCAL_PORT, CONTROLLER_PORT, NONE_PORT].contains(&in_port);
            if !known {
                return Err(SwitchError::NoSuchPort(in_port.to_string()));
            }
            br.shared.id
        };
        if data.len() < MIN_FRAME {
            return Err(SwitchError::BadPacketOut(format!(
                "a frame of {} bytes is shorter than an Ethernet header ({MIN_FRAME} bytes)",
                data.len()
            )));
        }
        let room = self.inner.cfg.pool.data_room;
        if data.len() > room {
            return Err(SwitchError::BadPacketOut(format!(
                "a frame of {} bytes does not fit a packet buffer ({room} bytes)",
                data.len()
            )));
        }
        // One PMD for every packet-out, so that a controller's packet-outs leave in the order
        // it sent them. Every PMD has an instance of every port, so any would do.
        self.inner.pmds[0]
            .send(PmdMsg::PacketOut {
                bridge: id,
                in_port,
                data,
                actions,
            })
            .map_err(|_| SwitchError::Timeout)
    }

    /// The event sink of a bridge.
    pub(super) fn event_sink(&self, bridge: &str) -> Result<EventSink, SwitchError> {
        Ok(self.inner.lock().bridge(bridge)?.shared.events.clone())
    }
}
