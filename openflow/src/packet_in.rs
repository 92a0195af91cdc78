//! PACKET_IN: a packet the switch sends the controller (a table miss or a `controller`
//! action), with the port it came in on.

use crate::codec::{patch_u16, Put};
use crate::header::{message, MsgType, Version};
use crate::multipart::MAX_MSG_LEN;
use crate::oxm::{ofb, CLASS_BASIC};
use crate::ports;

/// OFP_NO_BUFFER: the PACKET_IN carries the packet itself (vswitch never buffers).
pub const NO_BUFFER: u32 = 0xffff_ffff;

/// OFPR_NO_MATCH: no rule matched (1.3: a table-miss rule sent it).
pub const REASON_NO_MATCH: u8 = 0;
/// OFPR_ACTION: a `controller` action sent it.
pub const REASON_ACTION: u8 = 1;
/// OFPR_INVALID_TTL: the TTL ran out (1.3).
pub const REASON_INVALID_TTL: u8 = 2;

/// What a PACKET_IN says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInMsg<'a> {
    /// The switch's buffer holding the packet, or [`NO_BUFFER`].
    pub buffer_id: u32,
    /// Length of the packet on the wire (`data` may be cut shorter).
    pub total_len: u16,
    /// Ingress port, in vswitch's numbering (LOCAL is 0xfffe).
    pub in_port: u32,
    /// OFPR_* reason.
    pub reason: u8,
    /// Table of the rule that sent it (1.3 only).
    pub table_id: u8,
    /// Cookie of that rule (1.3 only; all ones when no rule is involved).
    pub cookie: u64,
    /// Tunnel id of the packet, sent in the 1.3 match when not 0.
    pub tun_id: u64,
    /// The packet (its first bytes, as the output action or `miss_send_len` allows).
    pub data: &'a [u8],
}

/// The PACKET_IN message (asynchronous: `xid` is normally 0). Data that would take the
/// message past 65535 bytes is cut, as `total_len` keeps the true length.
pub fn encode_packet_in(version: Version, xid: u32, p: &PacketInMsg<'_>) -> Vec<u8> {
    message(version, MsgType::PacketIn, xid, |b| {
        b.put_u32(p.buffer_id);
        b.put_u16(p.total_len);
        match version {
            Version::Of10 => {
                // 1.0 ports are 16 bits; vswitch's numbering is 1.0's.
                b.put_u16(p.in_port as u16);
                b.put_u8(p.reason);
                b.put_u8(0);
            }
            Version::Of13 => {
                b.put_u8(p.reason);
                b.put_u8(p.table_id);
                b.put_u64(p.cookie);
                // The match holds the packet's metadata: in_port always, the tunnel id
                // when the packet came through a tunnel.
                let start = b.len();
                b.put_u16(1); // OFPMT_OXM
                b.put_u16(0);
                b.put_u16(CLASS_BASIC);
                b.put_u8(ofb::IN_PORT << 1);
                b.put_u8(4);
                b.put_u32(ports::to_of13(p.in_port));
                if p.tun_id != 0 {
                    b.put_u16(CLASS_BASIC);
                    b.put_u8(ofb::TUNNEL_ID << 1);
                    b.put_u8(8);
                    b.put_u64(p.tun_id);
                }
                let len = (b.len() - start) as u16;
                patch_u16(b, start + 2, len);
                b.pad8(start);
                b.put_zeros(2);
            }
        }
        // `b` holds the header too.
        let room = MAX_MSG_LEN.saturating_sub(b.len());
        b.extend_from_slice(&p.data[..p.data.len().min(room)]);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(data: &[u8]) -> PacketInMsg<'_> {
        PacketInMsg {
            buffer_id: NO_BUFFER,
            total_len: data.len() as u16,
            in_port: 0xfffe,
            reason: REASON_ACTION,
            table_id: 3,
            cookie: 0x55,
            tun_id: 0,
            data,
        }
    }

    #[test]
    fn layouts() {
        let data = [0xaa; 60];
        let m10 = encode_packet_in(Version::Of10, 0, &msg(&data));
        assert_eq!(m10.len(), 18 + 60);
        assert_eq!(
            &m10[8..18],
            &[0xff, 0xff, 0xff, 0xff, 0, 60, 0xff, 0xfe, 1, 0]
        );
        let m13 = encode_packet_in(Version::Of13, 0, &msg(&data));
        // header 8, fixed 16, match 4 + 8 (padded to 16), pad 2.
        assert_eq!(m13.len(), 8 + 16 + 16 + 2 + 60);
        assert_eq!(&m13[24..28], &[0, 1, 0, 12]);
        assert_eq!(&m13[32..36], &[0xff, 0xff, 0xff, 0xfe]);
        let mut tun = msg(&data);
        tun.tun_id = 5;
        let m = encode_packet_in(Version::Of13, 0, &tun);
        assert_eq!(m.len(), 8 + 16 + 24 + 2 + 60);
        let big = vec![0u8; 70000];
        let m = encode_packet_in(Version::Of13, 0, &msg(&big));
        assert_eq!(m.len(), 65535);
    }
}
