//! What the datapath tells the control plane on its own: packets for the controller
//! (packet-in) and rules that went away (flow-removed), for the OpenFlow connections to relay.
//!
//! One bounded channel per [`crate::Switch`]. PMD threads only `try_send` on it (a packet-in is
//! a slow path like OVS's upcall: one allocation for the copy, never a wait), so a consumer that
//! falls behind costs packet-ins, counted as [`crate::DropReason::ControllerQueue`], never
//! forwarding. Flow-removed events come from control threads and are dropped the same way when
//! the queue is full (and logged).

use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};
use flow_table::{PacketInReason, Rule};
use vmm_sys_util::eventfd::EventFd;

/// Events the channel holds before PMDs start dropping packet-ins.
pub const EVENT_QUEUE: usize = 4096;

/// A packet for the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketIn {
    /// The bridge that sent it.
    pub bridge: Arc<str>,
    /// The port it was received on (or the packet-out's `in_port`).
    pub in_port: u32,
    /// Why it was sent.
    pub reason: PacketInReason,
    /// Table of the rule that sent it, or where it missed.
    pub table: u8,
    /// That rule's cookie (all ones when no rule sent it).
    pub cookie: u64,
    /// Length of the whole packet.
    pub total_len: u32,
    /// The whole packet, as modified by earlier actions (unbuffered, as OpenFlow wants).
    pub data: Vec<u8>,
    /// Its tunnel id (0 when it came in no tunnel).
    pub tun_id: u64,
}

/// Why a rule went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowRemovedReason {
    /// Its idle timeout ran out.
    IdleTimeout,
    /// Its hard timeout ran out.
    HardTimeout,
    /// A flow mod deleted it.
    Delete,
}

/// A rule with `send_flow_rem` went away.
#[derive(Clone, Debug)]
pub struct FlowRemoved {
    /// Its bridge.
    pub bridge: Arc<str>,
    /// The rule as it was (its counters final).
    pub rule: Arc<Rule>,
    /// Why.
    pub reason: FlowRemovedReason,
    /// Packets it matched.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// How long it was installed.
    pub duration_ms: u64,
}

/// An event from the datapath.
#[derive(Clone, Debug)]
pub enum SwitchEvent {
    /// A packet for the controller.
    PacketIn(PacketIn),
    /// A rule with `send_flow_rem` went away.
    FlowRemoved(FlowRemoved),
}

/// A bridge's end of the event channel: the sender and the bridge's name, which every event
/// carries (shared, so an event costs no name copy).
#[derive(Clone, Debug)]
pub(crate) struct EventSink {
    pub bridge: Arc<str>,
    tx: Option<Sender<SwitchEvent>>,
    /// Signalled after each event queued (see [`crate::Switch::events_ready`]).
    ready: Option<Arc<EventFd>>,
}

impl EventSink {
    /// A sink for `bridge` on `tx`.
    pub fn new(bridge: &str, tx: Sender<SwitchEvent>) -> EventSink {
        EventSink {
            bridge: bridge.into(),
            tx: Some(tx),
            ready: None,
        }
    }

    /// The same sink, signalling `ready` after each event it queues.
    pub fn with_ready(mut self, ready: Arc<EventFd>) -> EventSink {
        self.ready = Some(ready);
        self
    }

    /// A sink that takes nothing (a bridge outside a switch, in tests).
    pub fn none(bridge: &str) -> EventSink {
        EventSink {
            bridge: bridge.into(),
            tx: None,
            ready: None,
        }
    }

    /// True when an event would not be taken now (the queue is full, or nobody listens): the
    /// caller can skip building it.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.tx.as_ref().is_none_or(|tx| tx.is_full())
    }

    /// Queues `event` without waiting; false when the queue is full (or nobody listens).
    pub fn try_send(&self, event: SwitchEvent) -> bool {
        match &self.tx {
            Some(tx) => match tx.try_send(event) {
                Ok(()) => {
                    if let Some(r) = &self.ready {
                        // Never blocks (a full counter still reads as ready).
                        let _ = r.write(1);
                    }
                    true
                }
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        }
    }

    /// Tells of the rules in `gone` that asked for it (`send_flow_rem`) that they went away
    /// for `reason` (or, with `reason` `None`, for the timeout that ran out at `now_ms`).
    pub fn flows_removed(
        &self,
        gone: &[Arc<Rule>],
        reason: Option<FlowRemovedReason>,
        now_ms: u64,
    ) {
        for r in gone.iter().filter(|r| r.send_flow_rem) {
            let reason = reason.unwrap_or_else(|| expiry_reason(r, now_ms));
            let ev = SwitchEvent::FlowRemoved(FlowRemoved {
                bridge: Arc::clone(&self.bridge),
                rule: Arc::clone(r),
                reason,
                packets: r.stats.packets(),
                bytes: r.stats.bytes(),
                duration_ms: now_ms.saturating_sub(r.created_ms),
            });
            if !self.try_send(ev) {
                tracing::warn!(bridge = %self.bridge, "event queue full: flow-removed lost");
            }
        }
    }
}

/// Which timeout of an expired rule ran out (the hard one when both did).
fn expiry_reason(r: &Rule, now_ms: u64) -> FlowRemovedReason {
    if r.hard_timeout != 0 && now_ms >= r.created_ms + u64::from(r.hard_timeout) * 1000 {
        FlowRemovedReason::HardTimeout
    } else {
        FlowRemovedReason::IdleTimeout
    }
}
