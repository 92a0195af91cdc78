//! Messages that arrived together are handled together: consecutive FLOW_MOD adds become one
//! change of the rule tables (one rule-set swap, one journal record, one cache invalidation
//! round with the PMD threads) instead of one each, which is what a controller streaming
//! flows (`ovs-ofctl add-flows`, a reactive controller answering packet-ins) costs.
//!
//! Order is kept as a controller can see it: every message but a PACKET_OUT runs after all
//! adds before it (so a BARRIER's reply still follows them, and a delete or modify sees
//! them); a PACKET_OUT waits for the adds before it and may also see adds that arrived after
//! it in the same batch. OpenFlow lets a switch reorder messages between barriers; this only
//! ever makes a flow visible earlier, never a packet-out run before a flow mod sent before it.
//! A batch the tables refuse is applied again one flow mod at a time, so each refusal is
//! answered with its own error, exactly as if the flow mods had come one by one.

use openflow::request::{Received, Request};
use openflow::{FlowMod, FlowModCommand};

use switch_core::Visibility;

use super::{xid_of, Conn};
use crate::api::{service_call, service_now};
use crate::ofchannel::hub::Role;

/// Adds a batch applies on the connection's own thread; larger batches go to the blocking
/// pool (their journal record and table edit take longer than a worker should be held).
const INLINE_ADDS: usize = 64;

/// What a batch holds back until its adds are applied.
#[derive(Default)]
struct Pending {
    /// Consecutive adds, with their raw messages (for error replies).
    adds: Vec<(FlowMod, Vec<u8>)>,
    /// Packet-outs that came after some of them.
    packet_outs: Vec<Vec<u8>>,
}

impl Conn {
    /// The replies to messages that arrived together, in order.
    pub(super) async fn handle_batch(&mut self, msgs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        if msgs.len() == 1 {
            return self.handle(&msgs[0]).await;
        }
        let slave = self.info().is_some_and(|c| c.role == Role::Slave);
        let mut out = Vec::new();
        let mut pending = Pending::default();
        for msg in msgs {
            match self.peek(&msg, slave) {
                Peek::Add(fm) => pending.adds.push((*fm, msg)),
                Peek::PacketOut if !pending.adds.is_empty() => pending.packet_outs.push(msg),
                Peek::PacketOut | Peek::Other => {
                    self.flush(&mut pending, &mut out).await;
                    out.extend(self.handle(&msg).await);
                }
            }
        }
        self.flush(&mut pending, &mut out).await;
        out
    }

    /// What kind of message `msg` is, for batching.
    fn peek(&self, msg: &[u8], slave: bool) -> Peek {
        match msg.get(1).copied() {
            // PACKET_OUT (13) and FLOW_MOD (14) have the same types in both versions; a
            // packet-out is decoded when it runs, and anything else needs no look here.
            Some(13) if !slave => return Peek::PacketOut,
            Some(14) if !slave => {}
            _ => return Peek::Other,
        }
        match Received::parse_with(msg, self.version, self.opts) {
            Ok(Received {
                request: Request::FlowMod(fm),
                ..
            }) if fm.command == FlowModCommand::Add && !slave => Peek::Add(fm),
            _ => Peek::Other,
        }
    }

    /// Applies the held adds (as one change when there are several), then the held
    /// packet-outs.
    async fn flush(&mut self, p: &mut Pending, out: &mut Vec<Vec<u8>>) {
        let adds = std::mem::take(&mut p.adds);
        match adds.len() {
            0 => {}
            1 => {
                let (fm, raw) = adds.into_iter().next().expect("one add");
                let xid = xid_of(&raw);
                out.extend(self.flow_mod(xid, fm, &raw).await);
            }
            _ => {
                let specs = adds.iter().map(|(fm, _)| fm.to_rule_spec()).collect();
                let b = self.bridge.clone();
                // A few adds take microseconds: on this thread. More go to the blocking pool.
                let all = if adds.len() <= INLINE_ADDS {
                    service_now(&self.app, move |s| {
                        s.add_rules_visible(&b, specs, None, Visibility::Tables)
                    })
                } else {
                    service_call(&self.app, move |s| {
                        s.add_rules_visible(&b, specs, None, Visibility::Tables)
                    })
                    .await
                };
                if let Err(e) = all {
                    tracing::debug!(bridge = %self.bridge, "a batch of {} flow mods refused ({e:?}); applying them one by one", adds.len());
                    for (fm, raw) in adds {
                        let xid = xid_of(&raw);
                        out.extend(self.flow_mod(xid, fm, &raw).await);
                    }
                }
            }
        }
        for po in std::mem::take(&mut p.packet_outs) {
            out.extend(self.handle(&po).await);
        }
    }
}

/// A message as batching sees it.
enum Peek {
    /// A FLOW_MOD ADD from a connection that may change the switch.
    Add(Box<FlowMod>),
    /// A PACKET_OUT.
    PacketOut,
    /// Anything else: the held adds are applied before it.
    Other,
}
