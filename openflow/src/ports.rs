//! Port numbers on the wire and in vswitch.
//!
//! vswitch numbers ports as OpenFlow 1.0 does (16-bit, reserved ports from 0xff00, LOCAL is
//! 0xfffe), like flow-table's flow syntax. OpenFlow 1.3 widened them to 32 bits with the
//! reserved ports from 0xffffff00; they are folded back on decode and widened on encode.

use flow_table::Action;

use crate::error::{BadAction, DecodeError, ErrorCode};

/// OFPP_IN_PORT (1.0 numbering, as every constant here).
pub const OFPP_IN_PORT: u32 = 0xfff8;
/// OFPP_TABLE.
pub const OFPP_TABLE: u32 = 0xfff9;
/// OFPP_NORMAL.
pub const OFPP_NORMAL: u32 = 0xfffa;
/// OFPP_FLOOD.
pub const OFPP_FLOOD: u32 = 0xfffb;
/// OFPP_ALL.
pub const OFPP_ALL: u32 = 0xfffc;
/// OFPP_CONTROLLER.
pub const OFPP_CONTROLLER: u32 = 0xfffd;
/// OFPP_LOCAL.
pub const OFPP_LOCAL: u32 = 0xfffe;
/// OFPP_ANY (OFPP_NONE in 1.0): "no port", as a filter "any port".
pub const OFPP_ANY: u32 = 0xffff;
/// First reserved port number.
pub const OFPP_MAX: u32 = 0xff00;

/// A 1.3 port number in vswitch's numbering.
pub fn from_of13(p: u32) -> u32 {
    if p >= 0xffff_ff00 {
        p - 0xffff_0000
    } else {
        p
    }
}

/// A vswitch port number in 1.3's numbering.
pub fn to_of13(p: u32) -> u32 {
    if (OFPP_MAX..=OFPP_ANY).contains(&p) {
        p + 0xffff_0000
    } else {
        p
    }
}

/// Which message an action list comes from: OFPP_TABLE is valid in a PACKET_OUT only
/// (it means "run the packet through the tables", meaningless inside a rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionContext {
    /// A FLOW_MOD (or anything installing a rule).
    FlowMod,
    /// A PACKET_OUT.
    PacketOut,
}

/// The action of an OUTPUT to `port` (vswitch numbering) in a flow mod; see [`output_in`].
pub fn output(port: u32) -> Result<Action, DecodeError> {
    output_in(port, 0xffff, ActionContext::FlowMod)
}

/// The action of an OUTPUT to `port` (vswitch numbering) with the output action's
/// `max_len` (used by CONTROLLER only), as flow-table's `output:` reads it. ALL is FLOOD
/// (vswitch has no port excluded from flooding); TABLE is `resubmit(,0)` in a packet-out and
/// BAD_OUT_PORT in a flow mod, as are the reserved ports vswitch does not implement.
pub fn output_in(port: u32, max_len: u16, ctx: ActionContext) -> Result<Action, DecodeError> {
    let unsupported = |what: &str| {
        Err(DecodeError::new(
            "ofp_action_output.port",
            format!("output to {what} is not supported by vswitch"),
            ErrorCode::BadAction(BadAction::BadOutPort),
        ))
    };
    match port {
        OFPP_IN_PORT => Ok(Action::InPort),
        OFPP_NORMAL => Ok(Action::Normal),
        OFPP_FLOOD | OFPP_ALL => Ok(Action::Flood),
        OFPP_LOCAL => Ok(Action::Output(OFPP_LOCAL)),
        OFPP_CONTROLLER => Ok(Action::Controller { max_len }),
        OFPP_TABLE if ctx == ActionContext::PacketOut => Ok(Action::Resubmit {
            port: None,
            table: Some(0),
        }),
        OFPP_TABLE => unsupported("TABLE outside a packet-out"),
        p if (OFPP_MAX..=OFPP_ANY).contains(&p) => unsupported(&format!("reserved port {p:#x}")),
        p => Ok(Action::Output(p)),
    }
}

/// The `out_port` filter of a flow mod or stats request: ANY selects every rule.
pub fn filter(port: u32) -> Option<u32> {
    (port != OFPP_ANY).then_some(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved() {
        assert_eq!(from_of13(0xffff_fffe), OFPP_LOCAL);
        assert_eq!(to_of13(OFPP_LOCAL), 0xffff_fffe);
        assert_eq!(from_of13(7), 7);
        assert_eq!(to_of13(7), 7);
        assert_eq!(output(OFPP_IN_PORT), Ok(Action::InPort));
        assert_eq!(output(OFPP_FLOOD), Ok(Action::Flood));
        assert_eq!(output(3), Ok(Action::Output(3)));
        assert_eq!(output(OFPP_ALL), Ok(Action::Flood));
        assert_eq!(
            output_in(OFPP_CONTROLLER, 128, ActionContext::FlowMod),
            Ok(Action::Controller { max_len: 128 })
        );
        let e = output(OFPP_TABLE).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BadAction(BadAction::BadOutPort));
        assert_eq!(
            output_in(OFPP_TABLE, 0, ActionContext::PacketOut),
            Ok(Action::Resubmit {
                port: None,
                table: Some(0)
            })
        );
        assert!(output(OFPP_ANY).is_err());
        assert!(output(0xff00).is_err());
        assert_eq!(filter(OFPP_ANY), None);
        assert_eq!(filter(2), Some(2));
    }
}
