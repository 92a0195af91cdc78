//! What a controller may send the switch, decoded by type: the dispatch point of the channel.
//!
//! Messages a switch never receives or vswitch does not implement (PORT_MOD, GROUP_MOD,
//! METER_MOD, TABLE_MOD, queue configuration...) are BAD_REQUEST/BAD_TYPE, which tells the
//! controller to do without them; experimenter messages vswitch does not know get
//! BAD_EXPERIMENTER or BAD_EXP_TYPE ([`crate::nicira`]).

use crate::async_config::AsyncConfig;
use crate::error::{BadRequest, DecodeError, ErrorCode};
use crate::flow_mod::FlowMod;
use crate::header::{Header, MsgType, Version, HEADER_LEN};
use crate::hello::Hello;
use crate::multipart::MultipartRequest;
use crate::nicira::{parse_experimenter_with, Experimenter};
use crate::packet_out::PacketOut;
use crate::role::RoleRequest;
use crate::switch_config::SwitchConfig;

/// Per-connection state that changes how messages decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// The peer enabled NXT_FLOW_MOD_TABLE_ID ([`Experimenter::FlowModTableId`]): 1.0 flow
    /// mods carry their table in the command's high byte.
    pub flow_mod_table_id: bool,
    /// The connection answers Nicira's NXST_FLOW/NXST_AGGREGATE (with
    /// [`crate::multipart::encode_nx_flow_stats`], [`crate::multipart::encode_nx_aggregate`]
    /// for requests whose [`MultipartRequest::nx`] is set), so NXT_SET_FLOW_FORMAT(NXM) is
    /// accepted ([`Experimenter::SetFlowFormatNxm`]); refused (EPERM) otherwise.
    pub nxm: bool,
}

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
    /// PACKET_OUT.
    PacketOut(Box<PacketOut>),
    /// ROLE_REQUEST (1.3; 1.0's Nicira one is [`Experimenter::NxRoleRequest`]).
    RoleRequest(RoleRequest),
    /// GET_ASYNC_REQUEST (1.3): answer with [`AsyncConfig::encode_reply`].
    GetAsyncRequest,
    /// SET_ASYNC (1.3).
    SetAsync(AsyncConfig),
    /// An experimenter (1.0: vendor) message vswitch takes: Nicira's, ONF's bundles.
    Experimenter(Experimenter<'a>),
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
    /// Decodes `msg` (one whole message) on a connection that agreed on `version`, with
    /// default [`ParseOptions`]. A message in another version is BAD_REQUEST/BAD_VERSION.
    pub fn parse(msg: &'a [u8], version: Version) -> Result<Received<'a>, DecodeError> {
        Received::parse_with(msg, version, ParseOptions::default())
    }

    /// [`Received::parse`] with the connection's [`ParseOptions`].
    pub fn parse_with(
        msg: &'a [u8],
        version: Version,
        opts: ParseOptions,
    ) -> Result<Received<'a>, DecodeError> {
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
            MsgType::FlowMod => {
                Request::FlowMod(Box::new(FlowMod::parse_with(msg, opts.flow_mod_table_id)?))
            }
            MsgType::MultipartRequest => Request::Multipart(MultipartRequest::parse(msg)?),
            MsgType::BarrierRequest => Request::BarrierRequest,
            MsgType::PacketOut => Request::PacketOut(Box::new(PacketOut::parse(msg)?)),
            MsgType::RoleRequest => Request::RoleRequest(RoleRequest::parse(msg)?),
            MsgType::GetAsyncRequest => Request::GetAsyncRequest,
            MsgType::SetAsync => Request::SetAsync(AsyncConfig::parse(msg)?),
            // NXT_FLOW_MOD is a flow mod with an NXM match.
            MsgType::Experimenter
                if crate::nicira::experimenter_ids(msg)
                    == Some((crate::actions::NX_VENDOR, crate::nicira::nxt::FLOW_MOD)) =>
            {
                Request::FlowMod(Box::new(FlowMod::parse_with(msg, opts.flow_mod_table_id)?))
            }
            MsgType::Experimenter => Request::Experimenter(parse_experimenter_with(msg, opts.nxm)?),
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
        // PORT_MOD: not handled.
        let pm = [4, 16, 0, 8, 0, 0, 0, 1];
        let e = Received::parse(&pm, Version::Of13).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BadRequest(BadRequest::BadType));
        // A PACKET_OUT cut short.
        let po = [4, 13, 0, 8, 0, 0, 0, 1];
        let e = Received::parse(&po, Version::Of13).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BadRequest(BadRequest::BadLen));
        let ga = [4, 26, 0, 8, 0, 0, 0, 1];
        assert_eq!(
            Received::parse(&ga, Version::Of13).unwrap().request,
            Request::GetAsyncRequest
        );
        let hello = crate::hello::encode_hello(&[Version::Of10], 1);
        assert!(matches!(
            Received::parse(&hello, Version::Of13).unwrap().request,
            Request::Hello(_)
        ));
    }

    /// Malformed input from the network never panics: every truncation and many byte
    /// corruptions of real messages decode to a value or an error.
    #[test]
    fn no_panic_on_garbage() {
        use crate::multipart::{encode_flow_stats, MAX_MSG_LEN};
        let flow_mod13: &[u8] = &[
            4, 14, 0, 104, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 100, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0,
            0, 1, 0, 30, 128, 0, 0, 4, 0, 0, 0, 1, 128, 0, 10, 2, 8, 0, 128, 0, 25, 8, 10, 0, 0, 0,
            255, 0, 0, 0, 0, 0, 0, 4, 0, 24, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
            0, 0,
        ];
        let mut samples: Vec<(Vec<u8>, Version)> = vec![
            (flow_mod13.to_vec(), Version::Of13),
            (echo::echo_request(Version::Of10, 1, b"abc"), Version::Of10),
            (crate::hello::encode_hello(&Version::ALL, 1), Version::Of13),
        ];
        // A 1.0 flow stats request with an all-wildcard match.
        let mut stats10 = vec![1, 16, 0, 56, 0, 0, 0, 9, 0, 1, 0, 0];
        stats10.extend_from_slice(&[0, 0x3f, 0xff, 0xff]);
        stats10.extend_from_slice(&[0; 36]);
        stats10.extend_from_slice(&[0xff, 0, 0xff, 0xff]);
        samples.push((stats10, Version::Of10));
        assert_eq!(
            encode_flow_stats(Version::Of10, 1, [], 0, MAX_MSG_LEN).len(),
            1
        );
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (m, v) in &samples {
            assert!(Received::parse(m, *v).is_ok(), "{m:?}");
            for len in 0..m.len() {
                let mut t = m[..len].to_vec();
                if t.len() >= 4 {
                    t[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                }
                let _ = Received::parse(&t, *v);
                if let Ok(r) = Received::parse(&t, *v) {
                    if let Request::Multipart(mp) = r.request {
                        let _ = mp.flow_filter();
                    }
                }
            }
            for _ in 0..2000 {
                let mut t = m.clone();
                for _ in 0..3 {
                    let i = (next() as usize) % t.len();
                    t[i] = next() as u8;
                }
                t[0] = v.wire();
                let n = t.len() as u16;
                t[2..4].copy_from_slice(&n.to_be_bytes());
                if let Ok(r) = Received::parse(&t, *v) {
                    if let Request::Multipart(mp) = r.request {
                        let _ = mp.flow_filter();
                    }
                }
            }
        }
    }
}
