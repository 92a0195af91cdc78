//! ONF's bundle extension for OpenFlow 1.3 (the bundles 1.4 made standard): a controller
//! opens a bundle, adds flow mods to it, and commits them all or none. `ovs-ofctl --bundle`
//! speaks it.
//!
//! Both messages are experimenter messages of ONF's id ([`ONF_EXPERIMENTER`]):
//! ONFT_BUNDLE_CONTROL (open/close/commit/discard, answered by a reply of the same kind)
//! and ONFT_BUNDLE_ADD_MESSAGE (one whole message to hold, with the outer xid).

use crate::codec::{Put, Reader};
use crate::error::{BundleFailed, DecodeError, ErrorCode, ONF_EXPERIMENTER};
use crate::header::{message, Header, MsgType, Version};

/// ONFT_BUNDLE_CONTROL.
pub const ONFT_BUNDLE_CONTROL: u32 = 2300;
/// ONFT_BUNDLE_ADD_MESSAGE.
pub const ONFT_BUNDLE_ADD_MESSAGE: u32 = 2301;

/// OFPBF_ATOMIC: all messages apply, or none.
pub const BUNDLE_ATOMIC: u16 = 1 << 0;
/// OFPBF_ORDERED: messages apply in the order added.
pub const BUNDLE_ORDERED: u16 = 1 << 1;

/// A bundle control request's type (OFPBCT_*_REQUEST); the reply is the next number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleCtrlType {
    /// Open a bundle with a new id.
    Open,
    /// Close it: nothing more may be added.
    Close,
    /// Apply its messages (closing it first if open).
    Commit,
    /// Drop it and its messages.
    Discard,
}

impl BundleCtrlType {
    fn request(self) -> u16 {
        match self {
            BundleCtrlType::Open => 0,
            BundleCtrlType::Close => 2,
            BundleCtrlType::Commit => 4,
            BundleCtrlType::Discard => 6,
        }
    }
}

/// A decoded ONFT_BUNDLE_CONTROL request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleCtrl {
    /// The bundle, chosen by the controller.
    pub bundle_id: u32,
    /// What to do with it.
    pub kind: BundleCtrlType,
    /// OFPBF_* flags ([`BUNDLE_ATOMIC`], [`BUNDLE_ORDERED`]).
    pub flags: u16,
}

fn bundle_err(field: &'static str, msg: String, code: BundleFailed) -> DecodeError {
    DecodeError::new(field, msg, ErrorCode::BundleFailed(code))
}

fn check_flags(flags: u16, field: &'static str) -> Result<(), DecodeError> {
    if flags & !(BUNDLE_ATOMIC | BUNDLE_ORDERED) != 0 {
        return Err(bundle_err(
            field,
            format!("unknown bundle flags {flags:#x}"),
            BundleFailed::BadFlags,
        ));
    }
    Ok(())
}

impl BundleCtrl {
    /// Decodes the body of an ONFT_BUNDLE_CONTROL (after the experimenter header).
    /// Properties after the fixed part are ignored (none is defined for what vswitch does).
    pub(crate) fn parse_body(body: &[u8]) -> Result<BundleCtrl, DecodeError> {
        let mut r = Reader::new(body);
        let bundle_id = r.u32("onf_bundle_ctrl.bundle_id")?;
        let t = r.u16("onf_bundle_ctrl.type")?;
        let flags = r.u16("onf_bundle_ctrl.flags")?;
        let kind = match t {
            0 => BundleCtrlType::Open,
            2 => BundleCtrlType::Close,
            4 => BundleCtrlType::Commit,
            6 => BundleCtrlType::Discard,
            _ => {
                return Err(bundle_err(
                    "onf_bundle_ctrl.type",
                    format!("bundle control type {t} is not a request"),
                    BundleFailed::BadType,
                ))
            }
        };
        check_flags(flags, "onf_bundle_ctrl.flags")?;
        Ok(BundleCtrl {
            bundle_id,
            kind,
            flags,
        })
    }

    /// The reply (same bundle, the matching *_REPLY type, same flags) to the request with
    /// `xid`, sent once the request is done.
    pub fn encode_reply(&self, xid: u32) -> Vec<u8> {
        message(Version::Of13, MsgType::Experimenter, xid, |b| {
            b.put_u32(ONF_EXPERIMENTER);
            b.put_u32(ONFT_BUNDLE_CONTROL);
            b.put_u32(self.bundle_id);
            b.put_u16(self.kind.request() + 1);
            b.put_u16(self.flags);
        })
    }
}

/// A decoded ONFT_BUNDLE_ADD_MESSAGE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleAdd<'a> {
    /// The bundle to add to.
    pub bundle_id: u32,
    /// OFPBF_* flags (as the bundle was opened with).
    pub flags: u16,
    /// The whole message to hold (a FLOW_MOD), to decode with [`crate::FlowMod::parse`]
    /// when the bundle commits.
    pub message: &'a [u8],
}

impl<'a> BundleAdd<'a> {
    /// Decodes the body of an ONFT_BUNDLE_ADD_MESSAGE (after the experimenter header) whose
    /// header had `outer` (the inner message must have the same version and xid). Only
    /// FLOW_MODs can be bundled by vswitch: anything else is BUNDLE_FAILED/MSG_UNSUP.
    pub(crate) fn parse_body(outer: &Header, body: &'a [u8]) -> Result<BundleAdd<'a>, DecodeError> {
        let mut r = Reader::new(body);
        let bundle_id = r.u32("onf_bundle_add_msg.bundle_id")?;
        r.skip(2, "onf_bundle_add_msg.pad")?;
        let flags = r.u16("onf_bundle_add_msg.flags")?;
        check_flags(flags, "onf_bundle_add_msg.flags")?;
        let rest = r.rest();
        let inner = Header::parse(rest).map_err(|e| {
            bundle_err(
                "onf_bundle_add_msg.message",
                format!("inner message: {e}"),
                BundleFailed::MsgBadLen,
            )
        })?;
        let message = &rest[..inner.length as usize];
        if inner.version != outer.version {
            return Err(bundle_err(
                "onf_bundle_add_msg.message",
                format!("inner version {:#04x}", inner.version),
                BundleFailed::MsgUnsup,
            ));
        }
        if inner.xid != outer.xid {
            return Err(bundle_err(
                "onf_bundle_add_msg.message",
                format!("inner xid {:#x} differs from {:#x}", inner.xid, outer.xid),
                BundleFailed::MsgBadXid,
            ));
        }
        if inner.msg_type().ok() != Some(MsgType::FlowMod) {
            return Err(bundle_err(
                "onf_bundle_add_msg.message",
                format!(
                    "message type {} cannot be bundled by vswitch",
                    inner.msg_type
                ),
                BundleFailed::MsgUnsup,
            ));
        }
        Ok(BundleAdd {
            bundle_id,
            flags,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nicira::{parse_experimenter, Experimenter};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// What `ovs-ofctl -O OpenFlow13 --bundle add-flows` sent (open, add, commit).
    #[test]
    fn ovs_ofctl_bundle() {
        let open = hex("04040018000000044f4e4600000008fc0000000000000003");
        let Experimenter::BundleControl(c) = parse_experimenter(&open).unwrap() else {
            panic!("not a bundle control")
        };
        assert_eq!((c.bundle_id, c.kind, c.flags), (0, BundleCtrlType::Open, 3));
        let reply = c.encode_reply(4);
        assert_eq!(
            reply,
            hex("04040018000000044f4e4600000008fc0000000000010003")
        );
        let add = hex(concat!(
            "04040058000000034f4e4600000008fd0000000000000003040e004000000003",
            "000000000000000000000000000000000200000000008000ffffffffffffffff",
            "ffffffff000000000001000a80000a020800000000000000"
        ));
        let Experimenter::BundleAdd(a) = parse_experimenter(&add).unwrap() else {
            panic!("not a bundle add")
        };
        assert_eq!((a.bundle_id, a.flags, a.message.len()), (0, 3, 64));
        let fm = crate::FlowMod::parse(a.message).unwrap();
        assert_eq!(fm.table_id, 2);
        // The inner xid must be the outer one.
        let mut bad = add.clone();
        bad[7] = 9;
        let e = parse_experimenter(&bad).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BundleFailed(BundleFailed::MsgBadXid));
        // Inner length past the end.
        let mut bad = add.clone();
        bad[27] = 0x70;
        let e = parse_experimenter(&bad).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BundleFailed(BundleFailed::MsgBadLen));
        // A reply type is no request.
        let mut bad = open.clone();
        bad[21] = 1;
        let e = parse_experimenter(&bad).unwrap_err();
        assert_eq!(e.reply.wire(Version::Of13), (0xffff, 2306));
        let commit = hex("04040018000000064f4e4600000008fc0000000000040003");
        assert!(matches!(
            parse_experimenter(&commit).unwrap(),
            Experimenter::BundleControl(BundleCtrl {
                kind: BundleCtrlType::Commit,
                ..
            })
        ));
    }
}
