//! `ofp_header`: the 8 bytes in front of every OpenFlow message, and the message types.
//!
//! The header is the same in every version, but the type numbers are not: 1.1 inserted
//! GROUP_MOD and TABLE_MOD and renamed the statistics messages multipart, shifting
//! everything after FLOW_MOD. [`MsgType`] is one enum with per-version numbering.

use crate::codec::{patch_u16, Put, Reader};
use crate::error::{BadRequest, DecodeError, ErrorCode};

/// Length of `ofp_header`.
pub const HEADER_LEN: usize = 8;

/// The OpenFlow versions vswitch speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// OpenFlow 1.0 (wire version 0x01).
    Of10,
    /// OpenFlow 1.3 (wire version 0x04).
    Of13,
}

impl Version {
    /// Every version vswitch speaks, lowest first.
    pub const ALL: [Version; 2] = [Version::Of10, Version::Of13];

    /// The `version` byte of the header.
    pub fn wire(self) -> u8 {
        match self {
            Version::Of10 => 0x01,
            Version::Of13 => 0x04,
        }
    }

    /// The version of a header byte, when vswitch speaks it.
    pub fn from_wire(v: u8) -> Option<Version> {
        match v {
            0x01 => Some(Version::Of10),
            0x04 => Some(Version::Of13),
            _ => None,
        }
    }
}

/// A message type (the `type` byte of the header), named as in OpenFlow 1.3 where the
/// versions differ (1.0's STATS_REQUEST is [`MsgType::MultipartRequest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the OFPT_ constant of the same name
pub enum MsgType {
    Hello,
    Error,
    EchoRequest,
    EchoReply,
    /// VENDOR in 1.0.
    Experimenter,
    FeaturesRequest,
    FeaturesReply,
    GetConfigRequest,
    GetConfigReply,
    SetConfig,
    PacketIn,
    FlowRemoved,
    PortStatus,
    PacketOut,
    FlowMod,
    /// 1.3 only.
    GroupMod,
    PortMod,
    /// 1.3 only.
    TableMod,
    /// STATS_REQUEST in 1.0.
    MultipartRequest,
    /// STATS_REPLY in 1.0.
    MultipartReply,
    BarrierRequest,
    BarrierReply,
    QueueGetConfigRequest,
    QueueGetConfigReply,
    /// 1.3 only.
    RoleRequest,
    /// 1.3 only.
    RoleReply,
    /// 1.3 only.
    GetAsyncRequest,
    /// 1.3 only.
    GetAsyncReply,
    /// 1.3 only.
    SetAsync,
    /// 1.3 only.
    MeterMod,
}

/// Types 0–14 are numbered alike in 1.0 and 1.3.
const COMMON: [MsgType; 15] = [
    MsgType::Hello,
    MsgType::Error,
    MsgType::EchoRequest,
    MsgType::EchoReply,
    MsgType::Experimenter,
    MsgType::FeaturesRequest,
    MsgType::FeaturesReply,
    MsgType::GetConfigRequest,
    MsgType::GetConfigReply,
    MsgType::SetConfig,
    MsgType::PacketIn,
    MsgType::FlowRemoved,
    MsgType::PortStatus,
    MsgType::PacketOut,
    MsgType::FlowMod,
];

/// 1.0's types from 15 on.
const OF10_TAIL: [MsgType; 7] = [
    MsgType::PortMod,
    MsgType::MultipartRequest,
    MsgType::MultipartReply,
    MsgType::BarrierRequest,
    MsgType::BarrierReply,
    MsgType::QueueGetConfigRequest,
    MsgType::QueueGetConfigReply,
];

/// 1.3's types from 15 on.
const OF13_TAIL: [MsgType; 15] = [
    MsgType::GroupMod,
    MsgType::PortMod,
    MsgType::TableMod,
    MsgType::MultipartRequest,
    MsgType::MultipartReply,
    MsgType::BarrierRequest,
    MsgType::BarrierReply,
    MsgType::QueueGetConfigRequest,
    MsgType::QueueGetConfigReply,
    MsgType::RoleRequest,
    MsgType::RoleReply,
    MsgType::GetAsyncRequest,
    MsgType::GetAsyncReply,
    MsgType::SetAsync,
    MsgType::MeterMod,
];

fn table(version: Version) -> impl Iterator<Item = MsgType> {
    let tail: &'static [MsgType] = match version {
        Version::Of10 => &OF10_TAIL,
        Version::Of13 => &OF13_TAIL,
    };
    COMMON.iter().chain(tail.iter()).copied()
}

impl MsgType {
    /// The type of a header byte in `version`, if it has one.
    pub fn from_wire(version: Version, t: u8) -> Option<MsgType> {
        table(version).nth(t as usize)
    }

    /// The header byte of this type in `version`, `None` when the version lacks the message.
    pub fn to_wire(self, version: Version) -> Option<u8> {
        table(version).position(|m| m == self).map(|i| i as u8)
    }
}

/// A parsed `ofp_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The raw version byte: a HELLO may carry one vswitch does not speak (ovs-ofctl sends
    /// 0x06), so the header keeps it as is; see [`Header::version`].
    pub version: u8,
    /// The raw type byte (its meaning depends on the version).
    pub msg_type: u8,
    /// Length of the whole message, header included.
    pub length: u16,
    /// Transaction id, echoed by replies.
    pub xid: u32,
}

impl Header {
    /// Parses the header at the start of `buf`, which must hold the whole message it
    /// announces (a stream reader first waits for `length` bytes; see [`Header::peek_len`]).
    /// A length below 8 is BAD_LEN; bytes after the message are left alone (the next message).
    pub fn parse(buf: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(buf);
        let version = r.u8("ofp_header.version")?;
        let msg_type = r.u8("ofp_header.type")?;
        let length = r.u16("ofp_header.length")?;
        let xid = r.u32("ofp_header.xid")?;
        if (length as usize) < HEADER_LEN {
            return Err(DecodeError::new(
                "ofp_header.length",
                format!("{length} is shorter than the header"),
                ErrorCode::BadRequest(BadRequest::BadLen),
            ));
        }
        if (length as usize) > buf.len() {
            return Err(DecodeError::new(
                "ofp_header.length",
                format!("says {length} bytes, only {} given", buf.len()),
                ErrorCode::BadRequest(BadRequest::BadLen),
            ));
        }
        Ok(Header {
            version,
            msg_type,
            length,
            xid,
        })
    }

    /// The message length announced by a header prefix, once 8 bytes are in (for framing a
    /// stream); `None` before that.
    pub fn peek_len(buf: &[u8]) -> Option<usize> {
        (buf.len() >= HEADER_LEN).then(|| u16::from_be_bytes([buf[2], buf[3]]) as usize)
    }

    /// The version, or BAD_REQUEST/BAD_VERSION for one vswitch does not speak.
    pub fn version(&self) -> Result<Version, DecodeError> {
        Version::from_wire(self.version).ok_or_else(|| {
            DecodeError::new(
                "ofp_header.version",
                format!("version {:#04x} is not spoken", self.version),
                ErrorCode::BadRequest(BadRequest::BadVersion),
            )
        })
    }

    /// The message type, or BAD_REQUEST/BAD_TYPE (BAD_VERSION for an unknown version).
    pub fn msg_type(&self) -> Result<MsgType, DecodeError> {
        let v = self.version()?;
        MsgType::from_wire(v, self.msg_type).ok_or_else(|| {
            DecodeError::new(
                "ofp_header.type",
                format!("unknown message type {} in {v:?}", self.msg_type),
                ErrorCode::BadRequest(BadRequest::BadType),
            )
        })
    }
}

/// The header, version and body (after the header, up to its length) of a whole message
/// that must be of type `want` (BAD_REQUEST/BAD_TYPE otherwise).
pub(crate) fn expect_type(
    msg: &[u8],
    want: MsgType,
) -> Result<(Header, Version, &[u8]), DecodeError> {
    let h = Header::parse(msg)?;
    let version = h.version()?;
    let got = h.msg_type()?;
    if got != want {
        return Err(DecodeError::new(
            "ofp_header.type",
            format!("expected {want:?}, got {got:?}"),
            ErrorCode::BadRequest(BadRequest::BadType),
        ));
    }
    Ok((h, version, &msg[HEADER_LEN..h.length as usize]))
}

/// Builds a whole message: the header, then what `body` appends, with the length patched in.
///
/// Panics if `t` does not exist in `version` or the message exceeds 65535 bytes: both are
/// bugs of the caller (multipart replies page themselves below the limit).
pub fn message(version: Version, t: MsgType, xid: u32, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let t = t
        .to_wire(version)
        .unwrap_or_else(|| panic!("{t:?} does not exist in {version:?}"));
    raw_message(version.wire(), t, xid, body)
}

/// [`message`] with raw version and type bytes (for a HELLO or an ERROR in a version that
/// was not negotiated).
pub fn raw_message(version: u8, t: u8, xid: u32, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.put_u8(version);
    m.put_u8(t);
    m.put_u16(0);
    m.put_u32(xid);
    body(&mut m);
    let len = u16::try_from(m.len()).expect("OpenFlow message over 65535 bytes");
    patch_u16(&mut m, 2, len);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_differs_after_flow_mod() {
        assert_eq!(
            MsgType::from_wire(Version::Of10, 14),
            Some(MsgType::FlowMod)
        );
        assert_eq!(
            MsgType::from_wire(Version::Of13, 14),
            Some(MsgType::FlowMod)
        );
        assert_eq!(MsgType::BarrierRequest.to_wire(Version::Of10), Some(18));
        assert_eq!(MsgType::BarrierRequest.to_wire(Version::Of13), Some(20));
        assert_eq!(MsgType::MultipartReply.to_wire(Version::Of10), Some(17));
        assert_eq!(MsgType::MultipartReply.to_wire(Version::Of13), Some(19));
        assert_eq!(MsgType::MeterMod.to_wire(Version::Of13), Some(29));
        assert_eq!(MsgType::GroupMod.to_wire(Version::Of10), None);
        assert_eq!(MsgType::from_wire(Version::Of10, 22), None);
        assert_eq!(MsgType::from_wire(Version::Of13, 30), None);
        for v in Version::ALL {
            for t in 0..=255u8 {
                if let Some(m) = MsgType::from_wire(v, t) {
                    assert_eq!(m.to_wire(v), Some(t));
                }
            }
        }
    }

    #[test]
    fn parse_and_errors() {
        let m = message(Version::Of13, MsgType::EchoRequest, 0x01020304, |b| {
            b.extend_from_slice(b"hi")
        });
        assert_eq!(m, [4, 2, 0, 10, 1, 2, 3, 4, b'h', b'i']);
        let h = Header::parse(&m).unwrap();
        assert_eq!((h.length, h.xid), (10, 0x01020304));
        assert_eq!(h.msg_type().unwrap(), MsgType::EchoRequest);
        assert_eq!(Header::peek_len(&m[..8]), Some(10));
        assert_eq!(Header::peek_len(&m[..7]), None);

        let short = Header::parse(&m[..5]).unwrap_err();
        assert_eq!(short.field, "ofp_header.xid");
        let over = Header::parse(&m[..9]).unwrap_err();
        assert_eq!(over.field, "ofp_header.length");
        assert_eq!(over.reply, ErrorCode::BadRequest(BadRequest::BadLen));
        let tiny = Header::parse(&[4, 2, 0, 4, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(tiny.reply, ErrorCode::BadRequest(BadRequest::BadLen));
        // A longer buffer holds the next message too.
        assert!(Header::parse(&[m.clone(), m.clone()].concat()).is_ok());

        let v6 = Header::parse(&[6, 0, 0, 8, 0, 0, 0, 1]).unwrap();
        assert_eq!(
            v6.version().unwrap_err().reply,
            ErrorCode::BadRequest(BadRequest::BadVersion)
        );
        let bad_type = Header::parse(&[1, 25, 0, 8, 0, 0, 0, 1]).unwrap();
        assert_eq!(
            bad_type.msg_type().unwrap_err().reply,
            ErrorCode::BadRequest(BadRequest::BadType)
        );
    }
}
