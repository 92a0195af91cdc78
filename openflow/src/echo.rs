//! ECHO_REQUEST/ECHO_REPLY and BARRIER_REQUEST/BARRIER_REPLY: the replies a switch sends
//! without looking at its state.

use crate::error::DecodeError;
use crate::header::{message, Header, MsgType, Version};

/// The ECHO_REPLY to a whole ECHO_REQUEST `request`: same version, xid and payload (the peer
/// may time its round trip with the payload).
pub fn echo_reply(request: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let h = Header::parse(request)?;
    let v = h.version()?;
    let payload = &request[crate::header::HEADER_LEN..h.length as usize];
    Ok(message(v, MsgType::EchoReply, h.xid, |b| {
        b.extend_from_slice(payload)
    }))
}

/// An ECHO_REQUEST with `payload` (the switch's own keepalive).
pub fn echo_request(version: Version, xid: u32, payload: &[u8]) -> Vec<u8> {
    message(version, MsgType::EchoRequest, xid, |b| {
        b.extend_from_slice(payload)
    })
}

/// A BARRIER_REPLY (sent once every earlier message of the connection has been processed).
pub fn barrier_reply(version: Version, xid: u32) -> Vec<u8> {
    message(version, MsgType::BarrierReply, xid, |_| {})
}

/// A BARRIER_REQUEST.
pub fn barrier_request(version: Version, xid: u32) -> Vec<u8> {
    message(version, MsgType::BarrierRequest, xid, |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_keeps_xid_and_payload() {
        let req = echo_request(Version::Of10, 9, b"abc");
        let rep = echo_reply(&req).unwrap();
        assert_eq!(rep, [1, 3, 0, 11, 0, 0, 0, 9, b'a', b'b', b'c']);
        // Bytes after the message are not part of it.
        let mut two = req.clone();
        two.extend_from_slice(&req);
        assert_eq!(echo_reply(&two).unwrap(), rep);
    }

    #[test]
    fn barrier_numbering() {
        assert_eq!(barrier_reply(Version::Of10, 5), [1, 19, 0, 8, 0, 0, 0, 5]);
        assert_eq!(barrier_reply(Version::Of13, 5), [4, 21, 0, 8, 0, 0, 0, 5]);
    }
}
