//! Asynchronous messages: what a connection is sent of the bridge's events, as its role, its
//! SET_ASYNC masks and (for a service connection) its miss length allow.

use openflow::flow_removed::{encode_flow_removed, FlowRemovedMsg, RemovedReason};
use openflow::packet_in::{encode_packet_in, PacketInMsg, NO_BUFFER};
use openflow::port_status::{encode_port_status, PortReason};
use switch_core::FlowRemovedReason;

use super::Conn;
use crate::ofchannel::hub::{Event, Role};

impl Conn {
    /// The OpenFlow message for an event, when this connection is to get it.
    pub(super) fn encode_event(&self, ev: &Event) -> Option<Vec<u8>> {
        let info = self.info()?;
        if !info.wants_async() {
            return None;
        }
        let slave = info.role == Role::Slave;
        match ev {
            Event::PacketIn(p) => {
                let reason = p.reason.wire();
                if !self.async_cfg.wants_packet_in(slave, reason) {
                    return None;
                }
                Some(encode_packet_in(
                    self.version,
                    0,
                    &PacketInMsg {
                        buffer_id: NO_BUFFER,
                        total_len: p.total_len.min(u32::from(u16::MAX)) as u16,
                        in_port: p.in_port,
                        reason,
                        table_id: p.table,
                        cookie: p.cookie,
                        tun_id: p.tun_id,
                        data: &p.data,
                    },
                ))
            }
            Event::FlowRemoved(f) => {
                let reason = match f.reason {
                    FlowRemovedReason::IdleTimeout => RemovedReason::IdleTimeout,
                    FlowRemovedReason::HardTimeout => RemovedReason::HardTimeout,
                    FlowRemovedReason::Delete => RemovedReason::Delete,
                };
                if !self.async_cfg.wants_flow_removed(slave, reason as u8) {
                    return None;
                }
                let mut m = FlowRemovedMsg::from_rule(&f.rule, reason, 0);
                m.duration_sec = (f.duration_ms / 1000) as u32;
                m.duration_nsec = (f.duration_ms % 1000) as u32 * 1_000_000;
                m.packet_count = f.packets;
                m.byte_count = f.bytes;
                Some(encode_flow_removed(self.version, &m))
            }
            Event::PortStatus { reason, port } => {
                if !self.async_cfg.wants_port_status(slave, *reason) {
                    return None;
                }
                let reason = match reason {
                    0 => PortReason::Add,
                    1 => PortReason::Delete,
                    _ => PortReason::Modify,
                };
                Some(encode_port_status(self.version, reason, port))
            }
        }
    }
}
