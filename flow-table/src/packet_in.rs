//! Why a packet goes to the OpenFlow controller, as a packet-in says it.

use std::fmt;

/// The reason of a packet-in (OpenFlow's `ofp_packet_in_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketInReason {
    /// No rule matched: a table-miss entry sent it, or the bridge sends misses to the
    /// controller (`OFPR_NO_MATCH`).
    NoMatch,
    /// A rule's `controller` action sent it (`OFPR_ACTION`).
    Action,
    /// Its TTL ran out (`OFPR_INVALID_TTL`).
    InvalidTtl,
}

impl PacketInReason {
    /// The value on the wire (the same in OpenFlow 1.0 to 1.3).
    pub fn wire(self) -> u8 {
        match self {
            PacketInReason::NoMatch => 0,
            PacketInReason::Action => 1,
            PacketInReason::InvalidTtl => 2,
        }
    }

    /// The name ovs-ofctl prints (`no_match`, `action`, `invalid_ttl`).
    pub fn name(self) -> &'static str {
        match self {
            PacketInReason::NoMatch => "no_match",
            PacketInReason::Action => "action",
            PacketInReason::InvalidTtl => "invalid_ttl",
        }
    }
}

impl fmt::Display for PacketInReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_are_openflows() {
        assert_eq!(PacketInReason::NoMatch.wire(), 0);
        assert_eq!(PacketInReason::Action.wire(), 1);
        assert_eq!(PacketInReason::InvalidTtl.wire(), 2);
        assert_eq!(PacketInReason::NoMatch.to_string(), "no_match");
    }
}
