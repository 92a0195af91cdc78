//! Cuts the byte stream into whole OpenFlow messages. Reading into it is cancel-safe (a
//! `read_buf` that loses a `select!` has read nothing), so the session can wait for input,
//! events and its keepalive timer in one `select!` without a reader task between the socket
//! and the handler: one thread hand-off less per message.

/// Bytes read and not yet cut into messages.
#[derive(Default)]
pub(super) struct Framer {
    buf: Vec<u8>,
    /// Where the first unconsumed byte is (consumed bytes are dropped in bulk).
    start: usize,
}

/// Read at least this much room at a time.
const READ_CHUNK: usize = 64 * 1024;

impl Framer {
    /// The buffer to read into, with room at its end.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        if self.start > 0 && (self.start == self.buf.len() || self.start >= self.buf.len() / 2) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        &mut self.buf
    }

    /// Whether part of a message is waiting for the rest.
    pub fn is_partial(&self) -> bool {
        self.start < self.buf.len()
    }

    /// The next whole message, if one has been read. A header that is not OpenFlow's is an
    /// error: versions 1.0 to 1.5 are 1 to 6, so anything else (an HTTP request, say) is not
    /// OpenFlow and its "length" is not worth waiting for.
    pub fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
        let rest = &self.buf[self.start..];
        if rest.len() < 8 {
            return Ok(None);
        }
        if !(1..=6).contains(&rest[0]) {
            return Err(format!(
                "not an OpenFlow message (version byte {:#04x})",
                rest[0]
            ));
        }
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len < 8 {
            return Err(format!("message length {len} is shorter than its header"));
        }
        if rest.len() < len {
            return Ok(None);
        }
        let msg = rest[..len].to_vec();
        self.start += len;
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_whatever_the_reads() {
        let stream: Vec<u8> = [
            vec![4, 0, 0, 8, 0, 0, 0, 1],
            vec![4, 2, 0, 12, 0, 0, 0, 2, 9, 9, 9, 9],
            vec![4, 20, 0, 8, 0, 0, 0, 3],
        ]
        .concat();
        for step in 1..stream.len() {
            let mut f = Framer::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(step) {
                f.buf_mut().extend_from_slice(chunk);
                while let Some(m) = f.next().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 3, "reads of {step}");
            assert_eq!(got[1], stream[8..20]);
            assert!(!f.is_partial());
        }
        let mut f = Framer::default();
        f.buf_mut().extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert!(f.next().unwrap_err().contains("version byte 0x47"));
        let mut f = Framer::default();
        f.buf_mut().extend_from_slice(&[4, 5, 0, 4, 0, 0, 0, 2]);
        assert!(f.next().unwrap_err().contains("shorter than its header"));
    }
}
