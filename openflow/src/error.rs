//! OFPT_ERROR: the error types and codes a switch answers with, and decode failures that
//! carry the error to send.
//!
//! The numbering of types differs between versions (1.1 added BAD_INSTRUCTION and BAD_MATCH
//! before FLOW_MOD_FAILED), so [`ErrorCode::wire`] takes the version. An error 1.0 has no
//! type for (a bad match) is sent as the nearest 1.0 error.

use std::fmt;

use crate::codec::Put;
use crate::header::{message, raw_message, MsgType, Version};

/// How much of the offending message an error carries (the spec asks for at least 64 bytes).
pub const ERROR_DATA_LEN: usize = 64;

/// OFPET_HELLO_FAILED codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloFailed {
    /// No common version.
    Incompatible,
}

/// OFPET_BAD_REQUEST codes (numbered alike in 1.0 and 1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// Version not spoken.
    BadVersion,
    /// Message type not known or not handled.
    BadType,
    /// Statistics (multipart) type not known (BAD_STAT in 1.0).
    BadMultipart,
    /// Wrong length for the message type.
    BadLen,
    /// Experimenter (1.0: vendor) id not known.
    BadExperimenter,
    /// Experimenter message subtype not known or not handled (1.0 BAD_SUBTYPE, 1.3
    /// BAD_EXP_TYPE).
    BadExpType,
    /// Permissions error: known but refused (a Nicira format vswitch does not speak).
    Eperm,
    /// The buffer id does not exist (vswitch buffers no packets).
    BufferUnknown,
    /// A controller in the slave role sent a message that changes the switch (1.3).
    IsSlave,
    /// A port number that is no port here (1.3 BAD_PORT; 1.0 has none and gets EPERM).
    BadPort,
}

/// OFPET_BAD_ACTION codes (numbered alike in 1.0 and 1.3 for these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadAction {
    /// Unknown or unsupported action type.
    BadType,
    /// Wrong length for the action type.
    BadLen,
    /// Output to a port vswitch cannot send to.
    BadOutPort,
    /// An argument out of range.
    BadArgument,
    /// GROUP (1.3): vswitch has no group table.
    BadOutGroup,
    /// SET_FIELD of a field vswitch cannot set (1.3).
    BadSetType,
    /// SET_FIELD with a bad length (1.3).
    BadSetLen,
    /// Experimenter (1.0: vendor) action of an unknown experimenter id.
    BadExperimenter,
    /// Experimenter action of a known experimenter with an unknown or unsupported subtype.
    BadExpType,
}

/// OFPET_BAD_INSTRUCTION codes (1.3 only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadInstruction {
    /// Unknown instruction.
    UnknownInst,
    /// Known but not supported (WRITE_ACTIONS, METER...).
    UnsupInst,
    /// GOTO_TABLE to a bad table.
    BadTableId,
    /// Wrong length.
    BadLen,
}

/// OFPET_BAD_MATCH codes (1.3; sent as FLOW_MOD_FAILED/UNSUPPORTED in 1.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadMatch {
    /// Unsupported match type.
    BadType,
    /// Wrong length.
    BadLen,
    /// A field vswitch cannot match.
    BadField,
    /// A value out of range.
    BadValue,
    /// A mask vswitch cannot express.
    BadMask,
    /// A field without its prerequisite (e.g. `nw_src` without an IP `eth_type`).
    BadPrereq,
    /// A field given twice.
    DupField,
}

/// OFPET_FLOW_MOD_FAILED codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowModFailed {
    /// Unspecified (1.3 UNKNOWN; 1.0 has no such code and gets UNSUPPORTED).
    Unknown,
    /// No room for the rule (1.3 TABLE_FULL, 1.0 ALL_TABLES_FULL).
    TableFull,
    /// Table id out of range.
    BadTableId,
    /// Unknown command.
    BadCommand,
    /// Unsupported flags (1.3 BAD_FLAGS).
    BadFlags,
    /// Something vswitch does not implement (1.0 UNSUPPORTED).
    Unsupported,
}

/// OFPET_ROLE_REQUEST_FAILED codes (1.3; 1.0 answers Nicira's role request with the
/// BAD_REQUEST codes OVS uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleRequestFailed {
    /// A generation id older than one already seen.
    Stale,
    /// Role change not supported.
    Unsup,
    /// Unknown role.
    BadRole,
}

/// Bundle errors of the ONF extension for 1.3 (`ONFERR_ET_BUNDLE_*`, OFPET_BUNDLE_FAILED in
/// 1.4), sent as experimenter errors of ONF's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleFailed {
    /// Unspecified.
    Unknown,
    /// Permission error.
    Eperm,
    /// No open bundle with this id.
    BadId,
    /// A bundle with this id is already open.
    BundleExist,
    /// The bundle is closed: nothing can be added.
    BundleClosed,
    /// Too many bundles open at once.
    OutOfBundles,
    /// Unknown control type.
    BadType,
    /// Unknown or inconsistent flags.
    BadFlags,
    /// The inner message's length is wrong.
    MsgBadLen,
    /// The inner message's xid differs from the outer one's.
    MsgBadXid,
    /// The inner message is of a type bundles cannot hold.
    MsgUnsup,
    /// Messages of the bundle conflict.
    MsgConflict,
    /// Too many messages in one bundle.
    MsgTooMany,
    /// A message failed: the commit was undone.
    MsgFailed,
    /// The bundle took too long.
    Timeout,
    /// Another bundle holds the resource.
    BundleInProgress,
}

impl BundleFailed {
    /// The ONF experimenter error code (2300 and on, in declaration order).
    fn exp_code(self) -> u16 {
        2300 + self as u16
    }
}

/// ONF's experimenter id, which its 1.3 extensions (bundles) use.
pub const ONF_EXPERIMENTER: u32 = 0x4f4e_4600;

/// OFPET_EXPERIMENTER: an error whose code belongs to an experimenter (1.3).
const OFPET_EXPERIMENTER: u16 = 0xffff;

/// An OpenFlow error type and code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the OFPET_ type of the same name
pub enum ErrorCode {
    HelloFailed(HelloFailed),
    BadRequest(BadRequest),
    BadAction(BadAction),
    BadInstruction(BadInstruction),
    BadMatch(BadMatch),
    FlowModFailed(FlowModFailed),
    RoleRequestFailed(RoleRequestFailed),
    /// Sent as an ONF experimenter error (1.3 only: bundles are not spoken in 1.0).
    BundleFailed(BundleFailed),
}

impl ErrorCode {
    /// The experimenter id an error of type OFPET_EXPERIMENTER carries after its code.
    pub fn experimenter(self, version: Version) -> Option<u32> {
        (self.wire(version).0 == OFPET_EXPERIMENTER).then_some(ONF_EXPERIMENTER)
    }

    /// The (type, code) pair of this error in `version` (type 0xffff: an experimenter
    /// error, whose id [`ErrorCode::experimenter`] gives).
    pub fn wire(self, version: Version) -> (u16, u16) {
        let of10 = version == Version::Of10;
        match self {
            ErrorCode::HelloFailed(HelloFailed::Incompatible) => (0, 0),
            ErrorCode::BadRequest(c) => (
                1,
                match c {
                    BadRequest::BadVersion => 0,
                    BadRequest::BadType => 1,
                    BadRequest::BadMultipart => 2,
                    BadRequest::BadExperimenter => 3,
                    BadRequest::BadExpType => 4,
                    BadRequest::Eperm => 5,
                    BadRequest::BadLen => 6,
                    BadRequest::BufferUnknown => 8,
                    // 1.0 has no role: EPERM is the nearest.
                    BadRequest::IsSlave if of10 => 5,
                    BadRequest::IsSlave => 10,
                    BadRequest::BadPort if of10 => 5,
                    BadRequest::BadPort => 11,
                },
            ),
            ErrorCode::BadAction(c) => (
                2,
                match c {
                    BadAction::BadType => 0,
                    BadAction::BadLen => 1,
                    BadAction::BadExperimenter => 2,
                    BadAction::BadExpType => 3,
                    BadAction::BadOutPort => 4,
                    BadAction::BadArgument => 5,
                    // 1.0 has neither groups nor set-field: the action type is what is bad.
                    BadAction::BadOutGroup if of10 => 0,
                    BadAction::BadSetType | BadAction::BadSetLen if of10 => 0,
                    BadAction::BadOutGroup => 9,
                    BadAction::BadSetType => 13,
                    BadAction::BadSetLen => 14,
                },
            ),
            // 1.0 has neither instructions nor BAD_MATCH: "unsupported flow mod".
            ErrorCode::BadInstruction(_) | ErrorCode::BadMatch(_) if of10 => (3, 5),
            ErrorCode::BadInstruction(c) => (
                3,
                match c {
                    BadInstruction::UnknownInst => 0,
                    BadInstruction::UnsupInst => 1,
                    BadInstruction::BadTableId => 2,
                    BadInstruction::BadLen => 7,
                },
            ),
            ErrorCode::BadMatch(c) => (
                4,
                match c {
                    BadMatch::BadType => 0,
                    BadMatch::BadLen => 1,
                    BadMatch::BadField => 6,
                    BadMatch::BadValue => 7,
                    BadMatch::BadMask => 8,
                    BadMatch::BadPrereq => 9,
                    BadMatch::DupField => 10,
                },
            ),
            // OVS answers a 1.0 NXT_ROLE_REQUEST's failures with EPERM too.
            ErrorCode::RoleRequestFailed(_) if of10 => (1, 5),
            ErrorCode::RoleRequestFailed(c) => (
                11,
                match c {
                    RoleRequestFailed::Stale => 0,
                    RoleRequestFailed::Unsup => 1,
                    RoleRequestFailed::BadRole => 2,
                },
            ),
            // Bundles exist in 1.3 only; a 1.0 peer cannot have asked for one.
            ErrorCode::BundleFailed(_) if of10 => (1, 5),
            ErrorCode::BundleFailed(c) => (OFPET_EXPERIMENTER, c.exp_code()),
            ErrorCode::FlowModFailed(c) if of10 => (
                3,
                match c {
                    FlowModFailed::TableFull => 0,
                    FlowModFailed::BadCommand => 4,
                    _ => 5,
                },
            ),
            ErrorCode::FlowModFailed(c) => (
                5,
                match c {
                    FlowModFailed::Unknown | FlowModFailed::Unsupported => 0,
                    FlowModFailed::TableFull => 1,
                    FlowModFailed::BadTableId => 2,
                    FlowModFailed::BadCommand => 6,
                    FlowModFailed::BadFlags => 7,
                },
            ),
        }
    }
}

impl From<&flow_table::FlowModError> for ErrorCode {
    /// The error answering a flow mod the rule tables refused.
    fn from(e: &flow_table::FlowModError) -> ErrorCode {
        use flow_table::FlowModError as E;
        match e {
            E::BadMatch(_) => ErrorCode::BadMatch(BadMatch::BadPrereq),
            E::BadGoto { .. } => ErrorCode::BadInstruction(BadInstruction::BadTableId),
            E::BadTable(_) => ErrorCode::FlowModFailed(FlowModFailed::BadTableId),
            E::TooManyRules(_) => ErrorCode::FlowModFailed(FlowModFailed::TableFull),
        }
    }
}

/// A message vswitch cannot take: which field, why, and the error to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The offending field, as `struct.member` of the spec (`ofp_header.length`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
    /// The OpenFlow error to send back.
    pub reply: ErrorCode,
}

impl DecodeError {
    /// A failure of `field`.
    pub fn new(field: &'static str, message: impl Into<String>, reply: ErrorCode) -> Self {
        DecodeError {
            field,
            message: message.into(),
            reply,
        }
    }

    /// The ERROR message answering `offending` (a whole received message) in `version`.
    pub fn to_error_msg(&self, version: Version, offending: &[u8]) -> Vec<u8> {
        let xid = offending
            .get(4..8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        encode_error(version, xid, self.reply, offending)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({:?})", self.field, self.message, self.reply)
    }
}

impl std::error::Error for DecodeError {}

/// An ERROR message with `code`, carrying the first [`ERROR_DATA_LEN`] bytes of `data` (the
/// offending message, so the peer can tell which request failed).
pub fn encode_error(version: Version, xid: u32, code: ErrorCode, data: &[u8]) -> Vec<u8> {
    let data = &data[..data.len().min(ERROR_DATA_LEN)];
    message(version, MsgType::Error, xid, |b| {
        match code.experimenter(version) {
            // ofp_error_experimenter_msg: type, exp_code, experimenter, data.
            Some(exp) => {
                let (t, c) = code.wire(version);
                b.put_u16(t);
                b.put_u16(c);
                b.put_u32(exp);
                b.extend_from_slice(data);
            }
            None => put_error_body(b, code.wire(version), data),
        }
    })
}

/// HELLO_FAILED/INCOMPATIBLE in header version `version` (raw: none may have been agreed),
/// with an ASCII explanation as data, as the spec asks.
pub fn encode_hello_failed(version: u8, xid: u32, text: &str) -> Vec<u8> {
    // ERROR is type 1 and HELLO_FAILED/INCOMPATIBLE is (0, 0) in every version.
    raw_message(version, 1, xid, |b| {
        put_error_body(b, (0, 0), text.as_bytes())
    })
}

fn put_error_body(b: &mut Vec<u8>, (t, c): (u16, u16), data: &[u8]) {
    b.put_u16(t);
    b.put_u16(c);
    b.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_per_version() {
        let bad_field = ErrorCode::BadMatch(BadMatch::BadField);
        assert_eq!(bad_field.wire(Version::Of13), (4, 6));
        assert_eq!(bad_field.wire(Version::Of10), (3, 5));
        let cmd = ErrorCode::FlowModFailed(FlowModFailed::BadCommand);
        assert_eq!(cmd.wire(Version::Of13), (5, 6));
        assert_eq!(cmd.wire(Version::Of10), (3, 4));
        let port = ErrorCode::BadAction(BadAction::BadOutPort);
        assert_eq!(port.wire(Version::Of10), (2, 4));
        assert_eq!(
            ErrorCode::BadRequest(BadRequest::BadMultipart).wire(Version::Of10),
            (1, 2)
        );
    }

    #[test]
    fn rule_table_refusals() {
        let e = flow_table::FlowModError::BadGoto { from: 3, to: 1 };
        assert_eq!(ErrorCode::from(&e).wire(Version::Of13), (3, 2));
        let full = flow_table::FlowModError::TooManyRules(10);
        assert_eq!(ErrorCode::from(&full).wire(Version::Of13), (5, 1));
        assert_eq!(ErrorCode::from(&full).wire(Version::Of10), (3, 0));
    }

    #[test]
    fn error_carries_64_bytes() {
        let offending: Vec<u8> = (0..100).collect();
        let m = encode_error(
            Version::Of13,
            7,
            ErrorCode::BadRequest(BadRequest::BadType),
            &offending,
        );
        assert_eq!(m.len(), 8 + 4 + 64);
        assert_eq!(&m[..8], &[4, 1, 0, 76, 0, 0, 0, 7]);
        assert_eq!(&m[8..12], &[0, 1, 0, 1]);
        assert_eq!(&m[12..], &offending[..64]);
        let short = encode_error(
            Version::Of10,
            1,
            ErrorCode::BadRequest(BadRequest::BadLen),
            &[1, 2],
        );
        assert_eq!(short, [1, 1, 0, 14, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2]);
    }
}
