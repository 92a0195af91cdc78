//! PACKET_OUT: a packet the controller asks the switch to send, with the actions to run
//! on it.

use flow_table::Action;

use crate::actions::{parse_actions10_in, parse_actions13_in};
use crate::codec::Reader;
use crate::error::{BadRequest, DecodeError, ErrorCode};
use crate::header::{expect_type, MsgType, Version};
use crate::packet_in::NO_BUFFER;
use crate::ports::{self, ActionContext};

/// A decoded PACKET_OUT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketOut {
    /// Always [`NO_BUFFER`]: vswitch keeps no buffers, so any other id is refused when
    /// decoding.
    pub buffer_id: u32,
    /// The port the packet is taken to have come in on, in vswitch's numbering: a port,
    /// LOCAL, or CONTROLLER (0xfffd; 1.0's NONE, 0xffff, means the same: no port).
    pub in_port: u32,
    /// The actions, in order. Output to TABLE is `resubmit(,0)`: run the packet through
    /// the tables.
    pub actions: Vec<Action>,
    /// The packet.
    pub data: Vec<u8>,
}

impl PacketOut {
    /// Decodes a whole PACKET_OUT of either version. A buffer id other than NO_BUFFER is
    /// BAD_REQUEST/BUFFER_UNKNOWN.
    pub fn parse(msg: &[u8]) -> Result<PacketOut, DecodeError> {
        let (_, version, body) = expect_type(msg, MsgType::PacketOut)?;
        let mut r = Reader::new(body);
        let buffer_id = r.u32("ofp_packet_out.buffer_id")?;
        let (in_port, actions_len) = match version {
            Version::Of10 => {
                let p = r.u16("ofp_packet_out.in_port")? as u32;
                (p, r.u16("ofp_packet_out.actions_len")?)
            }
            Version::Of13 => {
                let p = ports::from_of13(r.u32("ofp_packet_out.in_port")?);
                let len = r.u16("ofp_packet_out.actions_len")?;
                r.skip(6, "ofp_packet_out.pad")?;
                (p, len)
            }
        };
        let list = r.bytes(actions_len as usize, "ofp_packet_out.actions_len")?;
        if buffer_id != NO_BUFFER {
            return Err(DecodeError::new(
                "ofp_packet_out.buffer_id",
                format!("buffer {buffer_id:#x}: vswitch keeps no buffers"),
                ErrorCode::BadRequest(BadRequest::BufferUnknown),
            ));
        }
        // A packet can only have come in on a port (a real one or LOCAL) or from the
        // controller; the other reserved numbers are no ingress.
        if (ports::OFPP_MAX..ports::OFPP_CONTROLLER).contains(&in_port) {
            return Err(DecodeError::new(
                "ofp_packet_out.in_port",
                format!("reserved port {in_port:#x} is no ingress port"),
                ErrorCode::BadRequest(BadRequest::BadPort),
            ));
        }
        let actions = match version {
            Version::Of10 => parse_actions10_in(list, ActionContext::PacketOut)?,
            Version::Of13 => parse_actions13_in(list, ActionContext::PacketOut)?,
        };
        Ok(PacketOut {
            buffer_id,
            in_port,
            actions,
            data: r.rest().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BadAction;
    use crate::header::message;

    fn of13(buffer: u32, in_port: u32, actions: &[u8], data: &[u8]) -> Vec<u8> {
        message(Version::Of13, MsgType::PacketOut, 9, |b| {
            b.extend_from_slice(&buffer.to_be_bytes());
            b.extend_from_slice(&in_port.to_be_bytes());
            b.extend_from_slice(&(actions.len() as u16).to_be_bytes());
            b.extend_from_slice(&[0; 6]);
            b.extend_from_slice(actions);
            b.extend_from_slice(data);
        })
    }

    #[test]
    fn decode13() {
        let table = [
            0, 0, 0, 16, 0xff, 0xff, 0xff, 0xf9, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
        ];
        let m = of13(NO_BUFFER, 0xffff_fffd, &table, b"packet");
        let p = PacketOut::parse(&m).unwrap();
        assert_eq!(p.in_port, ports::OFPP_CONTROLLER);
        assert_eq!(
            p.actions,
            vec![Action::Resubmit {
                port: None,
                table: Some(0)
            }]
        );
        assert_eq!(p.data, b"packet");
        let e = PacketOut::parse(&of13(7, 1, &table, b"")).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BadRequest(BadRequest::BufferUnknown));
        assert_eq!(e.reply.wire(Version::Of13), (1, 8));
        let e = PacketOut::parse(&of13(NO_BUFFER, 0xffff_fffa, &table, b"")).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BadRequest(BadRequest::BadPort));
        let bad = [
            0, 0, 0, 16, 0xff, 0xff, 0xff, 0xf0, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
        ];
        let e = PacketOut::parse(&of13(NO_BUFFER, 1, &bad, b"")).unwrap_err();
        assert_eq!(e.reply, ErrorCode::BadAction(BadAction::BadOutPort));
        // actions_len past the end.
        let mut m = of13(NO_BUFFER, 1, &table, b"");
        m[17] = 40;
        assert!(PacketOut::parse(&m).is_err());
    }

    #[test]
    fn decode10() {
        let m = message(Version::Of10, MsgType::PacketOut, 1, |b| {
            b.extend_from_slice(&[0xff; 4]);
            b.extend_from_slice(&[0xff, 0xfe, 0, 16]);
            b.extend_from_slice(&[0, 0, 0, 8, 0xff, 0xfc, 0, 0]); // ALL
            b.extend_from_slice(&[0, 0, 0, 8, 0xff, 0xfd, 0, 64]); // CONTROLLER:64
            b.extend_from_slice(b"xy");
        });
        let p = PacketOut::parse(&m).unwrap();
        assert_eq!(p.in_port, ports::OFPP_LOCAL);
        assert_eq!(
            p.actions,
            vec![Action::Flood, Action::Controller { max_len: 64 }]
        );
        assert_eq!(p.data, b"xy");
    }
}
