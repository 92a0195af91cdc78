//! FLOW_REMOVED: the switch tells the controller a rule with OFPFF_SEND_FLOW_REM is gone
//! (expired or deleted), with its final counters.

use flow_table::{Match, Rule};

use crate::codec::Put;
use crate::header::{message, MsgType, Version};
use crate::match10::put_match10;
use crate::oxm::put_match13;

/// OFPFF_SEND_FLOW_REM: the flow mod flag asking for a FLOW_REMOVED (see
/// [`crate::FlowMod::flags`]).
pub const FF_SEND_FLOW_REM: u16 = 1 << 0;

/// OFPRR_*: why the rule went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovedReason {
    /// Idle timeout.
    IdleTimeout = 0,
    /// Hard timeout.
    HardTimeout = 1,
    /// A DELETE flow mod (or any removal the controller asked for).
    Delete = 2,
}

/// What a FLOW_REMOVED says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRemovedMsg {
    /// The rule's cookie.
    pub cookie: u64,
    /// The rule's priority.
    pub priority: u16,
    /// Why it was removed.
    pub reason: RemovedReason,
    /// Its table (sent in 1.3 only).
    pub table_id: u8,
    /// How long it lived: seconds...
    pub duration_sec: u32,
    /// ...and nanoseconds beyond.
    pub duration_nsec: u32,
    /// Its idle timeout.
    pub idle_timeout: u16,
    /// Its hard timeout (sent in 1.3 only).
    pub hard_timeout: u16,
    /// Packets it matched.
    pub packet_count: u64,
    /// Bytes it matched.
    pub byte_count: u64,
    /// Its match.
    pub r#match: Match,
}

impl FlowRemovedMsg {
    /// The message for `rule`, removed at `now_ms` (the rules' clock) for `reason`.
    pub fn from_rule(rule: &Rule, reason: RemovedReason, now_ms: u64) -> FlowRemovedMsg {
        let age = now_ms.saturating_sub(rule.created_ms);
        FlowRemovedMsg {
            cookie: rule.cookie,
            priority: rule.priority,
            reason,
            table_id: rule.table,
            duration_sec: (age / 1000) as u32,
            duration_nsec: (age % 1000) as u32 * 1_000_000,
            idle_timeout: rule.idle_timeout,
            hard_timeout: rule.hard_timeout,
            packet_count: rule.stats.packets(),
            byte_count: rule.stats.bytes(),
            r#match: rule.r#match,
        }
    }
}

/// The FLOW_REMOVED message (asynchronous: xid 0). The match is encoded as flow statistics
/// encode it (1.0 `ofp_match`, 1.3 OXM).
pub fn encode_flow_removed(version: Version, f: &FlowRemovedMsg) -> Vec<u8> {
    message(version, MsgType::FlowRemoved, 0, |b| match version {
        Version::Of10 => {
            put_match10(b, &f.r#match);
            b.put_u64(f.cookie);
            b.put_u16(f.priority);
            b.put_u8(f.reason as u8);
            b.put_u8(0);
            b.put_u32(f.duration_sec);
            b.put_u32(f.duration_nsec);
            b.put_u16(f.idle_timeout);
            b.put_zeros(2);
            b.put_u64(f.packet_count);
            b.put_u64(f.byte_count);
        }
        Version::Of13 => {
            b.put_u64(f.cookie);
            b.put_u16(f.priority);
            b.put_u8(f.reason as u8);
            b.put_u8(f.table_id);
            b.put_u32(f.duration_sec);
            b.put_u32(f.duration_nsec);
            b.put_u16(f.idle_timeout);
            b.put_u16(f.hard_timeout);
            b.put_u64(f.packet_count);
            b.put_u64(f.byte_count);
            put_match13(b, &f.r#match);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let f = FlowRemovedMsg {
            cookie: 1,
            priority: 2,
            reason: RemovedReason::HardTimeout,
            table_id: 3,
            duration_sec: 4,
            duration_nsec: 5,
            idle_timeout: 6,
            hard_timeout: 7,
            packet_count: 8,
            byte_count: 9,
            r#match: Match::any(),
        };
        assert_eq!(encode_flow_removed(Version::Of10, &f).len(), 88);
        // 48 fixed bytes and an empty OXM match (4, padded to 8).
        assert_eq!(encode_flow_removed(Version::Of13, &f).len(), 56);
    }
}
