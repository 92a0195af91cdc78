//! HELLO and version negotiation.
//!
//! Since 1.3.1 a HELLO may list every version its sender speaks in a version-bitmap element;
//! then the agreed version is the highest in both lists. Without a bitmap the agreed version
//! is the lower of the two header versions, which must be one both speak. ovs-ofctl offers
//! 1.0–1.5 by bitmap in a header of version 0x06.

use crate::codec::{Put, Reader};
use crate::error::{encode_hello_failed, BadRequest, DecodeError, ErrorCode};
use crate::header::{raw_message, Header, Version, HEADER_LEN};

/// OFPHET_VERSIONBITMAP.
const ELEM_VERSIONBITMAP: u16 = 1;

/// A received HELLO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The header's version byte (the highest the peer speaks).
    pub version: u8,
    /// The version bitmap, bit `n` of word `n / 32` standing for wire version `n`, when sent.
    pub bitmap: Option<Vec<u32>>,
    /// The header's xid.
    pub xid: u32,
}

impl Hello {
    /// Parses a whole HELLO message; unknown elements are skipped, as the spec asks.
    pub fn parse(msg: &[u8]) -> Result<Hello, DecodeError> {
        let h = Header::parse(msg)?;
        if h.msg_type != 0 {
            return Err(DecodeError::new(
                "ofp_header.type",
                format!("expected HELLO (0), got {}", h.msg_type),
                ErrorCode::BadRequest(BadRequest::BadType),
            ));
        }
        let mut r = Reader::new(&msg[HEADER_LEN..h.length as usize]);
        let mut bitmap = None;
        while r.remaining() >= 4 {
            let t = r.u16("ofp_hello_elem_header.type")?;
            let len = r.u16("ofp_hello_elem_header.length")? as usize;
            if len < 4 {
                return Err(DecodeError::new(
                    "ofp_hello_elem_header.length",
                    format!("{len} is shorter than the element header"),
                    ErrorCode::BadRequest(BadRequest::BadLen),
                ));
            }
            let body = r.bytes(len - 4, "ofp_hello_elem_header.length")?;
            // Elements are padded to 8 bytes; the last one's padding may be missing.
            let pad = len.next_multiple_of(8) - len;
            r.skip(pad.min(r.remaining()), "ofp_hello_elem.pad")?;
            if t == ELEM_VERSIONBITMAP {
                let words = body
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                bitmap = Some(words);
            }
        }
        Ok(Hello {
            version: h.version,
            bitmap,
            xid: h.xid,
        })
    }

    /// Whether the peer speaks wire version `v`.
    fn offers(&self, v: u8) -> bool {
        match &self.bitmap {
            Some(words) => words
                .get(v as usize / 32)
                .is_some_and(|w| w & (1 << (v % 32)) != 0),
            None => v == self.version,
        }
    }
}

/// Our HELLO, offering `versions` (non-empty) by bitmap in a header of the highest of them.
pub fn encode_hello(versions: &[Version], xid: u32) -> Vec<u8> {
    let top = versions.iter().max().expect("no version to offer");
    let bits = versions.iter().fold(0u32, |w, v| w | 1 << v.wire());
    raw_message(top.wire(), 0, xid, |b| {
        // A 1.0 peer reads only the header; anything after it is ignored.
        if *top > Version::Of10 {
            b.put_u16(ELEM_VERSIONBITMAP);
            b.put_u16(8);
            b.put_u32(bits);
        }
    })
}

/// The version agreed with a peer whose HELLO is `peer` when we speak `ours`, or the
/// HELLO_FAILED/INCOMPATIBLE error message to send before closing the connection.
pub fn negotiate(peer: &Hello, ours: &[Version]) -> Result<Version, Vec<u8>> {
    let agreed = match peer.bitmap {
        Some(_) => ours.iter().filter(|v| peer.offers(v.wire())).max().copied(),
        None => {
            let top = ours.iter().max().map_or(0, |v| v.wire());
            Version::from_wire(peer.version.min(top)).filter(|v| ours.contains(v))
        }
    };
    agreed.ok_or_else(|| {
        let ours_text: Vec<String> = ours.iter().map(|v| format!("{:#04x}", v.wire())).collect();
        let text = format!(
            "We support versions {}, you support {}",
            ours_text.join(", "),
            match &peer.bitmap {
                Some(w) => format!("the bitmap {w:x?}"),
                None => format!("{:#04x} and below", peer.version),
            }
        );
        let lowest = ours.iter().min().map_or(0x01, |v| v.wire());
        encode_hello_failed(peer.version.clamp(lowest, 0x04), peer.xid, &text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [Version; 2] = [Version::Of10, Version::Of13];

    /// What ovs-ofctl sends by default: 1.0–1.5 by bitmap, header version 0x06.
    const OVS_OFCTL: [u8; 16] = [6, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x7e];

    #[test]
    fn ovs_ofctl_gets_13() {
        let h = Hello::parse(&OVS_OFCTL).unwrap();
        assert_eq!(h.bitmap, Some(vec![0x7e]));
        assert_eq!(negotiate(&h, &OURS), Ok(Version::Of13));
    }

    #[test]
    fn bitmap_of_10_only() {
        let mut m = OVS_OFCTL;
        m[15] = 0x02;
        assert_eq!(
            negotiate(&Hello::parse(&m).unwrap(), &OURS),
            Ok(Version::Of10)
        );
    }

    #[test]
    fn plain_headers() {
        let hello = |v: u8| Hello::parse(&[v, 0, 0, 8, 0, 0, 0, 3]).unwrap();
        assert_eq!(negotiate(&hello(1), &OURS), Ok(Version::Of10));
        assert_eq!(negotiate(&hello(4), &OURS), Ok(Version::Of13));
        // 1.4 without a bitmap: the lower version, 1.3, is ours.
        assert_eq!(negotiate(&hello(5), &OURS), Ok(Version::Of13));
        // 1.2: the lower version is 1.2, which we do not speak.
        let err = negotiate(&hello(3), &OURS).unwrap_err();
        assert_eq!(
            &err[..12],
            &[3, 1, 0, err.len() as u8, 0, 0, 0, 3, 0, 0, 0, 0]
        );
        assert!(String::from_utf8_lossy(&err[12..]).contains("We support versions 0x01, 0x04"));
    }

    #[test]
    fn no_common_bitmap() {
        let mut m = OVS_OFCTL;
        m[15] = 0x60; // 1.4, 1.5 only
        let err = negotiate(&Hello::parse(&m).unwrap(), &OURS).unwrap_err();
        assert_eq!(err[0], 4);
        assert_eq!(&err[8..12], &[0, 0, 0, 0]);
    }

    #[test]
    fn our_hello_round_trips() {
        let m = encode_hello(&OURS, 1);
        assert_eq!(m, [4, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x12]);
        let h = Hello::parse(&m).unwrap();
        assert_eq!(negotiate(&h, &OURS), Ok(Version::Of13));
        assert_eq!(negotiate(&h, &[Version::Of10]), Ok(Version::Of10));
        assert_eq!(encode_hello(&[Version::Of10], 2), [1, 0, 0, 8, 0, 0, 0, 2]);
    }

    #[test]
    fn bad_elements() {
        // Unknown element type 9 is skipped.
        let m = [4, 0, 0, 16, 0, 0, 0, 1, 0, 9, 0, 8, 1, 2, 3, 4];
        assert_eq!(Hello::parse(&m).unwrap().bitmap, None);
        let m = [4, 0, 0, 12, 0, 0, 0, 1, 0, 1, 0, 2];
        assert_eq!(
            Hello::parse(&m).unwrap_err().field,
            "ofp_hello_elem_header.length"
        );
        let m = [4, 0, 0, 12, 0, 0, 0, 1, 0, 1, 0, 12];
        assert_eq!(
            Hello::parse(&m).unwrap_err().field,
            "ofp_hello_elem_header.length"
        );
    }
}
