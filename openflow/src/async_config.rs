//! SET_ASYNC / GET_ASYNC (1.3): which asynchronous messages a connection gets, by reason,
//! for the master/equal role and for the slave role.

use crate::codec::{Put, Reader};
use crate::error::DecodeError;
use crate::header::{expect_type, message, MsgType, Version};

/// Masks of the reasons (bit `1 << reason`) for which each kind of asynchronous message is
/// sent; index 0 applies in the master and equal roles, index 1 in the slave role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncConfig {
    /// PACKET_IN reasons (OFPR_*).
    pub packet_in_mask: [u32; 2],
    /// PORT_STATUS reasons (OFPPR_*).
    pub port_status_mask: [u32; 2],
    /// FLOW_REMOVED reasons (OFPRR_*).
    pub flow_removed_mask: [u32; 2],
}

impl Default for AsyncConfig {
    /// OpenFlow 1.3's defaults: master and equal get every PACKET_IN (no match, action,
    /// invalid TTL), PORT_STATUS and FLOW_REMOVED (idle, hard, delete, group delete); a
    /// slave gets PORT_STATUS only.
    fn default() -> Self {
        AsyncConfig {
            packet_in_mask: [0b111, 0],
            port_status_mask: [0b111, 0b111],
            flow_removed_mask: [0b1111, 0],
        }
    }
}

fn wants(mask: [u32; 2], slave: bool, reason: u8) -> bool {
    reason < 32 && mask[usize::from(slave)] & (1 << reason) != 0
}

impl AsyncConfig {
    /// Decodes a whole SET_ASYNC (or GET_ASYNC_REPLY: the same body).
    pub fn parse(msg: &[u8]) -> Result<AsyncConfig, DecodeError> {
        let (_, _, body) = match expect_type(msg, MsgType::SetAsync) {
            Ok(x) => x,
            Err(e) => expect_type(msg, MsgType::GetAsyncReply).map_err(|_| e)?,
        };
        let mut r = Reader::new(body);
        let mut pair = |f| -> Result<[u32; 2], DecodeError> { Ok([r.u32(f)?, r.u32(f)?]) };
        Ok(AsyncConfig {
            packet_in_mask: pair("ofp_async_config.packet_in_mask")?,
            port_status_mask: pair("ofp_async_config.port_status_mask")?,
            flow_removed_mask: pair("ofp_async_config.flow_removed_mask")?,
        })
    }

    /// The GET_ASYNC_REPLY to a GET_ASYNC_REQUEST with `xid`.
    pub fn encode_reply(&self, xid: u32) -> Vec<u8> {
        message(Version::Of13, MsgType::GetAsyncReply, xid, |b| {
            for m in [
                self.packet_in_mask,
                self.port_status_mask,
                self.flow_removed_mask,
            ] {
                b.put_u32(m[0]);
                b.put_u32(m[1]);
            }
        })
    }

    /// Whether a connection in the slave role (`slave`) or not gets a PACKET_IN for
    /// `reason`.
    pub fn wants_packet_in(&self, slave: bool, reason: u8) -> bool {
        wants(self.packet_in_mask, slave, reason)
    }

    /// Whether it gets a PORT_STATUS for `reason`.
    pub fn wants_port_status(&self, slave: bool, reason: u8) -> bool {
        wants(self.port_status_mask, slave, reason)
    }

    /// Whether it gets a FLOW_REMOVED for `reason`.
    pub fn wants_flow_removed(&self, slave: bool, reason: u8) -> bool {
        wants(self.flow_removed_mask, slave, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get() {
        let m = message(Version::Of13, MsgType::SetAsync, 5, |b| {
            for v in [1u32, 0, 7, 7, 4, 0] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        });
        let c = AsyncConfig::parse(&m).unwrap();
        assert_eq!(c.packet_in_mask, [1, 0]);
        assert!(c.wants_flow_removed(false, 2));
        assert!(!c.wants_flow_removed(false, 0));
        assert!(!c.wants_packet_in(true, 0));
        assert!(!c.wants_packet_in(false, 200));
        let reply = c.encode_reply(5);
        assert_eq!(&reply[8..], &m[8..]);
        assert_eq!(AsyncConfig::parse(&reply).unwrap(), c);
        assert!(AsyncConfig::parse(&m[..20]).is_err());
        let d = AsyncConfig::default();
        assert!(d.wants_port_status(true, 1) && !d.wants_packet_in(true, 1));
    }
}
