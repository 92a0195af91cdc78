//! Sample frames the port tests send: numbered frames of a private EtherType (so stray
//! traffic is easy to tell apart and losses or reordering show), and Ethernet/IPv4/UDP frames
//! that are one flow each (so flow-hash steering spreads them).

/// EtherType of test frames (IEEE local experimental), so stray traffic is easy to ignore.
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// Whether `f` is one of ours (EtherType [`TEST_ETHERTYPE`]).
pub fn is_test_frame(f: &[u8]) -> bool {
    f.len() >= 14 && u16::from_be_bytes([f[12], f[13]]) == TEST_ETHERTYPE
}

/// A test frame of `len` bytes (≥ 60) numbered `seq`, from `src` to `dst`.
pub fn test_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len.max(60) {
        f.push((f.len() as u32 ^ seq) as u8);
    }
    f
}

/// Sequence number of a test frame.
pub fn seq_of(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[14], f[15], f[16], f[17]])
}

/// Two locally administered MACs for test frames; [`udp_frame`]s go from B to A.
pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
/// See [`MAC_A`].
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// Whether the UDP checksum of an Ethernet/IPv4/UDP frame (no IP options) is correct.
pub fn udp4_checksum_ok(f: &[u8]) -> bool {
    let sum16 = |b: &[u8]| -> u64 {
        b.chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64)
            .sum()
    };
    let udp = &f[34..];
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as u64;
    let mut s = sum16(&f[26..34]) + 17 + udp_len + sum16(&udp[..udp_len as usize]);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

/// Whether `f` is an Ethernet/IPv4/UDP frame.
pub fn is_udp4(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17
}

/// UDP destination port of the frames below, to tell them from anything else.
pub const UDP_DPORT: u16 = 9;

/// An Ethernet/IPv4/UDP frame from UDP source port `sport`: each is its own flow, so flow-hash
/// steering (fanout, multiqueue tap, veth queues) spreads them over the instances.
pub fn udp_frame(sport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![
        0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 77, 1, 1, 10, 77, 1, 2,
    ];
    let mut s = 0u32;
    for c in ip.chunks(2) {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&UDP_DPORT.to_be_bytes());
    f.extend_from_slice(&26u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed on IPv4)
    f.extend_from_slice(&[0x5a; 18]);
    f
}
