//! What a controller may send the switch, decoded by type: the dispatch point of the channel.
//!
//! Messages a switch never receives or vswitch does not implement (PACKET_OUT, PORT_MOD,
//! GROUP_MOD, METER_MOD, ROLE_REQUEST, experimenter messages...) are BAD_REQUEST/BAD_TYPE,
//! which tells the controller to do without them.

use crate::error::{BadRequest, DecodeError, ErrorCode};
use crate::flow_mod::FlowMod;
use crate::header::{Header, MsgType, Version, HEADER_LEN};
use crate::hello::Hello;
use crate::multipart::MultipartRequest;
use crate::switch_config::SwitchConfig;

/// A decoded message from the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// HELLO (normally handled by [`crate::hello::negotiate`] before anything else).
    Hello(Hello),
    /// ECHO_REQUEST: answer with [`crate::echo::echo_reply`].
    EchoRequest,
    /// ECHO_REPLY to our keepalive.
    EchoReply,
    /// ERROR from the controller, with its raw type and code.
    Error {
        /// Error type.
        err_type: u16,
        /// Error code.
        code: u16,
    },
    /// FEATURES_REQUEST.
    FeaturesRequest,
    /// GET_CONFIG_REQUEST.
    GetConfigRequest,
    /// SET_CONFIG.
    SetConfig(SwitchConfig),
    /// FLOW_MOD.
    FlowMod(Box<FlowMod>),
    /// STATS_REQUEST / MULTIPART_REQUEST.
    Multipart(MultipartRequest<'a>),
    /// BARRIER_REQUEST.
    BarrierRequest,
}

/// A whole message from the controller: its header and what it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received<'a> {
    /// The version agreed (the message's own must equal it).
    pub version: Version,
    /// Transaction id, for the reply.
    pub xid: u32,
    /// The request.
    pub request: Request<'a>,
}

impl<'a> Received<'a> {
    /// Decodes `msg` (one whole message) on a connection that agreed on `version`. A message
    /// in another version is BAD_REQUEST/BAD_VERSION.
    pub fn parse(msg: &'a [u8], version: Version) -> Result<Received<'a>, DecodeError> {
        let h = Header::parse(msg)?;
        let msg = &msg[..h.length as usize];
        if h.msg_type == 0 {
            // A HELLO may carry any version.
            return Ok(Received {
                version,
                xid: h.xid,
                request: Request::Hello(Hello::parse(msg)?),
            });
        }
        if h.version != version.wire() {
            return Err(DecodeError::new(
                "ofp_header.version",
                format!("{:#04x} on a connection of {version:?}", h.version),
                ErrorCode::BadRequest(BadRequest::BadVersion),
            ));
        }
        let body = &msg[HEADER_LEN..];
        let request = match h.msg_type()? {
            MsgType::EchoRequest => Request::EchoRequest,
            MsgType::EchoReply => Request::EchoReply,
            MsgType::Error if body.len() >= 4 => Request::Error {
                err_type: u16::from_be_bytes([body[0], body[1]]),
                code: u16::from_be_bytes([body[2], body[3]]),
            },
            MsgType::FeaturesRequest => Request::FeaturesRequest,
            MsgType::GetConfigRequest => Request::GetConfigRequest,
            MsgType::SetConfig => Request::SetConfig(SwitchConfig::parse(msg)?),
            MsgType::FlowMod => Request::FlowMod(Box::new(FlowMod::parse(msg)?)),
            MsgType::MultipartRequest => Request::Multipart(MultipartRequest::parse(msg)?),
            MsgType::BarrierRequest => Request::BarrierRequest,
            t => {
                return Err(DecodeError::new(
                    "ofp_header.type",
                    format!("{t:?} is not handled by vswitch"),
                    ErrorCode::BadRequest(BadRequest::BadType),
                ))
            }
        };
        Ok(Received {
            version,
            xid: h.xid,
            request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo;

    #[test]
    fn dispatch() {
        let m = echo::echo_request(Version::Of13, 3, b"x");
        let r = Received::parse(&m, Version::Of13).unwrap();
        assert_eq!((r.xid, r.request), (3, Request::EchoRequest));
        let b = echo::barrier_request(Version::Of10, 4);
        assert_eq!(
            Received::parse(&b, Version::Of10).unwrap().request,
            Request::BarrierRequest
        );
        // The wrong version for the connection.
        let e = Received::parse(&b, Version::Of13).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BadRequest(BadRequest::BadVersion));
        // PACKET_OUT: not handled.
        let po = [4, 13, 0, 8, 0, 0, 0, 1];
        let e = Received::parse(&po, Version::Of13).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BadRequest(BadRequest::BadType));
        let hello = crate::hello::encode_hello(&[Version::Of10], 1);
        assert!(matches!(
            Received::parse(&hello, Version::Of13).unwrap().request,
            Request::Hello(_)
        ));
    }
}
