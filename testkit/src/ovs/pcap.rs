//! Reading pcap files: the ones a dummy port writes what it transmits to (`options:tx_pcap`),
//! and tcpdump's (the kernel-made GSO fixtures of `ports/tests/gso_kernel.rs`).

use std::io;
use std::path::Path;

/// The length of a pcap file's global header.
pub const HEADER_LEN: u64 = 24;

/// The whole frames recorded in `file` from byte `from` (a record boundary) on, and the offset
/// after the last whole one (a record still being written is left for the next read).
pub fn read_from(file: &Path, from: u64) -> io::Result<(Vec<Vec<u8>>, u64)> {
    let b = std::fs::read(file)?;
    if b.len() < HEADER_LEN as usize {
        return Ok((Vec::new(), from));
    }
    // Written in the host's byte order; the magic number (microsecond or nanosecond
    // timestamps) tells which.
    let le = matches!(b[0..4], [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let u32_at = |at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let (mut at, mut frames) = (from as usize, Vec::new());
    while at + 16 <= b.len() {
        let len = u32_at(at + 8) as usize;
        if at + 16 + len > b.len() {
            break;
        }
        frames.push(b[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    Ok((frames, at as u64))
}

/// Every frame recorded in `file` (a whole file, as tcpdump leaves it).
pub fn read_all(file: &Path) -> io::Result<Vec<Vec<u8>>> {
    read_from(file, HEADER_LEN).map(|(frames, _)| frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_records_only() {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        f.extend_from_slice(&[0; 16]);
        for frame in [&[1u8, 2, 3][..], &[4, 5]] {
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            f.extend_from_slice(frame);
        }
        f.extend_from_slice(&[0; 10]); // half a record header
        let path = std::env::temp_dir().join(format!("pcap-test-{}", std::process::id()));
        std::fs::write(&path, &f).unwrap();
        let (frames, end) = read_from(&path, HEADER_LEN).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(frames, vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(end as usize, f.len() - 10);
    }

    #[test]
    fn reads_nanosecond_files_whole() {
        let mut f = vec![0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0];
        f.extend_from_slice(&[0; 16]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&2u32.to_le_bytes());
        f.extend_from_slice(&2u32.to_le_bytes());
        f.extend_from_slice(&[6, 7]);
        let path = std::env::temp_dir().join(format!("pcap-ns-test-{}", std::process::id()));
        std::fs::write(&path, &f).unwrap();
        let frames = read_all(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(frames, vec![vec![6, 7]]);
    }
}
