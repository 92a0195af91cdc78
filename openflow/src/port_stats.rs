//! PORT statistics (OFPST_PORT / OFPMP_PORT_STATS): the request's port and the reply's
//! per-port counters.

use crate::codec::{Put, Reader};
use crate::error::{BadRequest, DecodeError, ErrorCode};
use crate::header::Version;
use crate::multipart::{paged, MultipartRequest};
use crate::ports;

/// OFPMP_PORT_STATS (OFPST_PORT in 1.0).
pub const MP_PORT_STATS: u16 = 4;

/// Counters the spec asks for that vswitch does not keep: all ones means "unavailable".
const UNAVAILABLE: u64 = u64::MAX;

/// One port's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Port number, in vswitch's numbering (LOCAL is 0xfffe).
    pub port_no: u32,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Packets dropped on send.
    pub tx_dropped: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// How long the port has existed, in milliseconds (1.3 only).
    pub duration_ms: u64,
}

impl MultipartRequest<'_> {
    /// The port a PORT_STATS request asks about (vswitch numbering), `None` for every port
    /// (OFPP_ANY; OFPP_NONE in 1.0). BAD_REQUEST/BAD_MULTIPART for another kind.
    pub fn port_stats_port(&self) -> Result<Option<u32>, DecodeError> {
        if self.kind != MP_PORT_STATS {
            return Err(DecodeError::new(
                "ofp_multipart_request.type",
                format!("{} is not a port statistics request", self.kind),
                ErrorCode::BadRequest(BadRequest::BadMultipart),
            ));
        }
        let mut r = Reader::new(self.body);
        let port = match self.version {
            Version::Of10 => {
                let p = r.u16("ofp_port_stats_request.port_no")? as u32;
                r.skip(6, "ofp_port_stats_request.pad")?;
                p
            }
            Version::Of13 => {
                let p = ports::from_of13(r.u32("ofp_port_stats_request.port_no")?);
                r.skip(4, "ofp_port_stats_request.pad")?;
                p
            }
        };
        Ok(ports::filter(port))
    }
}

fn put_port_stats(b: &mut Vec<u8>, version: Version, s: &PortStats) {
    match version {
        Version::Of10 => {
            b.put_u16(s.port_no as u16);
            b.put_zeros(6);
        }
        Version::Of13 => {
            b.put_u32(ports::to_of13(s.port_no));
            b.put_zeros(4);
        }
    }
    for v in [
        s.rx_packets,
        s.tx_packets,
        s.rx_bytes,
        s.tx_bytes,
        s.rx_dropped,
        s.tx_dropped,
        s.rx_errors,
        s.tx_errors,
    ] {
        b.put_u64(v);
    }
    // rx_frame_err, rx_over_err, rx_crc_err, collisions: not kept by vswitch's ports.
    for _ in 0..4 {
        b.put_u64(UNAVAILABLE);
    }
    if version == Version::Of13 {
        b.put_u32((s.duration_ms / 1000) as u32);
        b.put_u32((s.duration_ms % 1000) as u32 * 1_000_000);
    }
}

/// The PORT_STATS reply (1.0: 104-byte entries; 1.3: 112 with the duration), as messages
/// of at most `max_len` bytes, REPLY_MORE on all but the last.
pub fn encode_port_stats(
    version: Version,
    xid: u32,
    stats: &[PortStats],
    max_len: usize,
) -> Vec<Vec<u8>> {
    let entries = stats.iter().map(|s| {
        let mut e = Vec::new();
        put_port_stats(&mut e, version, s);
        e
    });
    paged(version, xid, MP_PORT_STATS, entries, max_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{message, MsgType};
    use crate::multipart::MAX_MSG_LEN;

    #[test]
    fn request_and_reply() {
        let m = message(Version::Of13, MsgType::MultipartRequest, 4, |b| {
            b.extend_from_slice(&[0, 4, 0, 0, 0, 0, 0, 0]);
            b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        });
        let r = MultipartRequest::parse(&m).unwrap();
        assert_eq!(r.port_stats_port().unwrap(), None);
        let m = message(Version::Of10, MsgType::MultipartRequest, 4, |b| {
            b.extend_from_slice(&[0, 4, 0, 0]);
            b.extend_from_slice(&[0xff, 0xfe, 0, 0, 0, 0, 0, 0]);
        });
        let r = MultipartRequest::parse(&m).unwrap();
        assert_eq!(r.port_stats_port().unwrap(), Some(0xfffe));
        let short = message(Version::Of10, MsgType::MultipartRequest, 4, |b| {
            b.extend_from_slice(&[0, 4, 0, 0, 0, 1]);
        });
        let r = MultipartRequest::parse(&short).unwrap();
        assert!(r.port_stats_port().is_err());

        let stats: Vec<PortStats> = (1..=5)
            .map(|p| PortStats {
                port_no: p,
                ..Default::default()
            })
            .collect();
        let one = encode_port_stats(Version::Of10, 1, &stats, MAX_MSG_LEN);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].len(), 12 + 5 * 104);
        let pages = encode_port_stats(Version::Of13, 1, &stats, 16 + 2 * 112);
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0].len(), 16 + 2 * 112);
    }
}
