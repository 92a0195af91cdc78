//! The classic pcap file format (what `tcpdump -w` writes): a global header, then one record
//! per frame. Microsecond timestamps, Ethernet link type.

/// Link type of Ethernet frames (LINKTYPE_ETHERNET).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Magic number of a microsecond-resolution pcap file (written in host byte order; readers
/// detect the order from it).
pub const MAGIC: u32 = 0xa1b2_c3d4;

/// The 24-byte file header.
pub fn global_header(snaplen: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&MAGIC.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes()); // GMT offset
    h.extend_from_slice(&0u32.to_le_bytes()); // timestamp accuracy
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// Appends one record: the frame's first bytes `data`, its length on the wire `orig_len`, seen
/// at `ts_ns` nanoseconds after the UNIX epoch.
pub fn write_record(out: &mut Vec<u8>, ts_ns: u64, orig_len: u32, data: &[u8]) {
    let secs = (ts_ns / 1_000_000_000) as u32;
    let usecs = ((ts_ns % 1_000_000_000) / 1000) as u32;
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&usecs.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

/// Reads the records of a pcap file written by this module: `(ts_ns, orig_len, data)`.
/// `None` when the bytes are not such a file.
pub fn read(bytes: &[u8]) -> Option<Vec<(u64, u32, Vec<u8>)>> {
    let u32_at = |b: &[u8], i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
    };
    if u32_at(bytes, 0)? != MAGIC || u32_at(bytes, 20)? != LINKTYPE_ETHERNET {
        return None;
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let secs = u32_at(bytes, at)? as u64;
        let usecs = u32_at(bytes, at + 4)? as u64;
        let incl = u32_at(bytes, at + 8)? as usize;
        let orig = u32_at(bytes, at + 12)?;
        let data = bytes.get(at + 16..at + 16 + incl)?.to_vec();
        out.push((secs * 1_000_000_000 + usecs * 1000, orig, data));
        at += 16 + incl;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records_read_back() {
        let mut f = global_header(128);
        assert_eq!(f.len(), 24);
        assert_eq!(&f[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(f[16..20].try_into().unwrap()), 128);
        write_record(&mut f, 1_700_000_000_123_456_789, 98, &[1, 2, 3]);
        write_record(&mut f, 5_000_001_000, 2, &[9, 9]);
        assert_eq!(f.len(), 24 + 16 + 3 + 16 + 2);
        let recs = read(&f).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0], (1_700_000_000_123_456_000, 98, vec![1, 2, 3]));
        assert_eq!(recs[1], (5_000_001_000, 2, vec![9, 9]));
        // A truncated record is refused rather than misread.
        assert!(read(&f[..f.len() - 1]).is_none());
        assert!(read(b"not a pcap file at all.....").is_none());
    }

    #[test]
    fn tcpdump_reads_it() {
        // Only where tcpdump is installed (scripts/test.sh installs it).
        if std::process::Command::new("tcpdump")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: tcpdump_reads_it: tcpdump is not installed");
            return;
        }
        let mut f = global_header(65535);
        // A broadcast ARP request for 10.0.0.2 from 10.0.0.1.
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        write_record(&mut f, 1_000_000_000, arp.len() as u32, &arp);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        std::fs::write(&path, &f).unwrap();
        let out = std::process::Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("Request who-has 10.0.0.2 tell 10.0.0.1"),
            "{text}"
        );
    }
}
