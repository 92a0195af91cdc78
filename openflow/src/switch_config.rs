//! GET_CONFIG_REPLY and SET_CONFIG (`ofp_switch_config`, the same in 1.0 and 1.3).

use crate::codec::{Put, Reader};
use crate::error::DecodeError;
use crate::header::{message, Header, MsgType, Version, HEADER_LEN};

/// OFPC_FRAG_NORMAL: fragments are processed like any packet (what vswitch does).
pub const FRAG_NORMAL: u16 = 0;

/// The switch configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchConfig {
    /// OFPC_FRAG_* handling of IP fragments.
    pub flags: u16,
    /// Bytes of a packet sent to the controller in a PACKET_IN.
    pub miss_send_len: u16,
}

impl Default for SwitchConfig {
    /// The spec's defaults: normal fragment handling, 128 bytes to the controller.
    fn default() -> Self {
        SwitchConfig {
            flags: FRAG_NORMAL,
            miss_send_len: 128,
        }
    }
}

impl SwitchConfig {
    /// The GET_CONFIG_REPLY to a GET_CONFIG_REQUEST with `xid`.
    pub fn encode_reply(&self, version: Version, xid: u32) -> Vec<u8> {
        message(version, MsgType::GetConfigReply, xid, |b| {
            b.put_u16(self.flags);
            b.put_u16(self.miss_send_len);
        })
    }

    /// Reads a whole SET_CONFIG (or GET_CONFIG_REPLY) message.
    pub fn parse(msg: &[u8]) -> Result<SwitchConfig, DecodeError> {
        let h = Header::parse(msg)?;
        let mut r = Reader::new(&msg[HEADER_LEN..h.length as usize]);
        Ok(SwitchConfig {
            flags: r.u16("ofp_switch_config.flags")?,
            miss_send_len: r.u16("ofp_switch_config.miss_send_len")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = SwitchConfig {
            flags: 0,
            miss_send_len: 0xffff,
        };
        let m = c.encode_reply(Version::Of13, 4);
        assert_eq!(m, [4, 8, 0, 12, 0, 0, 0, 4, 0, 0, 0xff, 0xff]);
        assert_eq!(SwitchConfig::parse(&m), Ok(c));
        assert_eq!(
            SwitchConfig::parse(&m[..10]).unwrap_err().field,
            "ofp_header.length"
        );
        let mut short = m.clone();
        short[3] = 10;
        assert_eq!(
            SwitchConfig::parse(&short[..10]).unwrap_err().field,
            "ofp_switch_config.miss_send_len"
        );
    }
}
