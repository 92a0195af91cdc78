//! The internet (ones'-complement) checksum of IP, TCP and UDP (RFC 1071), in full and as an
//! incremental update (RFC 1624).
//!
//! Why here: the header rewrites update checksums incrementally, offload completion and
//! software segmentation compute them in full; both arithmetics live in this one file.
//!
//! Full sums are kept unfolded in a `u64` while they are built up (any mix of [`ones_sum`] and
//! the pseudo-header helpers can be added together) and folded to 16 bits once at the end.

/// Ones'-complement sum of `b` as big-endian 16-bit words (an odd tail byte padded with zero),
/// unfolded.
///
/// Reads 8 bytes at a time and adds them as two 32-bit words: as `2^16 ≡ 1` modulo `2^16 - 1`,
/// folding a sum of 32-bit big-endian words gives the same 16-bit result as summing 16-bit words.
/// The `u64` cannot overflow for any slice shorter than 16 GB.
#[inline]
pub fn ones_sum(b: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        sum += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut words = chunks.remainder().chunks_exact(2);
    for c in &mut words {
        sum += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = words.remainder() {
        sum += (*last as u64) << 8;
    }
    sum
}

/// Folds an unfolded ones'-complement sum to 16 bits (not complemented).
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum of `b` as a header carries it: its folded sum, complemented.
#[inline]
pub fn checksum(b: &[u8]) -> u16 {
    !fold(ones_sum(b))
}

/// Unfolded sum of the IPv4 pseudo-header for an L4 segment of `l4_len` bytes of protocol
/// `proto`; `src` and `dst` are the addresses as they sit in the IP header.
#[inline]
pub fn pseudo_v4(src: &[u8; 4], dst: &[u8; 4], proto: u8, l4_len: u32) -> u64 {
    ones_sum(src) + ones_sum(dst) + proto as u64 + (l4_len >> 16) as u64 + (l4_len & 0xffff) as u64
}

/// Unfolded sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer packet of `l4_len`
/// bytes with next header `proto`.
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4_len: u32) -> u64 {
    ones_sum(src) + ones_sum(dst) + proto as u64 + (l4_len >> 16) as u64 + (l4_len & 0xffff) as u64
}

/// Completes a partial checksum in place, as a sender with checksum offload leaves it: the
/// field at `start + offset` already holds the pseudo-header sum, so summing from `start` to the
/// end of `data` with the field in place and complementing gives the final checksum. Returns
/// false (changing nothing) if the field lies outside `data`.
#[inline]
pub fn complete_partial(data: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start + offset;
    if at + 2 > data.len() {
        return false;
    }
    let sum = checksum(&data[start..]);
    data[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Updates a checksum `sum` (as the header carries it) for a 16-bit word of the covered data
/// changing from `old` to `new` (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`).
#[inline(always)]
pub fn update16(sum: u16, old: u16, new: u16) -> u16 {
    let mut s = (!sum as u32) + (!old as u32) + new as u32;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// [`update16`] for a 32-bit word (an IPv4 address) changing from `old` to `new`.
#[inline(always)]
pub fn update32(sum: u16, old: u32, new: u32) -> u16 {
    let s = update16(sum, (old >> 16) as u16, (new >> 16) as u16);
    update16(s, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition: 16-bit words one by one.
    fn reference(b: &[u8]) -> u16 {
        let mut sum = 0u64;
        for c in b.chunks(2) {
            sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64;
        }
        fold(sum)
    }

    #[test]
    fn wide_sum_matches_word_sum() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 151 + 7) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(
                fold(ones_sum(&data[..len])),
                reference(&data[..len]),
                "{len}"
            );
        }
        let ones = [0xffu8; 64];
        for len in 0..ones.len() {
            assert_eq!(
                fold(ones_sum(&ones[..len])),
                reference(&ones[..len]),
                "{len}"
            );
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(
            fold(ones_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }

    /// A well-known IPv4 header (the Wikipedia example): checksum 0xb861.
    const IP: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn known_header_checksum() {
        let mut h = IP;
        assert_eq!(fold(ones_sum(&h)), 0xffff, "valid as it is");
        h[10..12].fill(0);
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        let full = |h: &[u8; 20]| {
            let mut z = *h;
            z[10..12].fill(0);
            checksum(&z)
        };
        let mut h = IP;
        // TTL 64 → 63 (the word at 8 is TTL, protocol).
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] = 63;
        let s = update16(0xb861, old, u16::from_be_bytes([h[8], h[9]]));
        assert_eq!(s, full(&h));
        assert_eq!(s, 0xb961);
        // Source 192.168.0.1 → 10.0.0.1.
        let sum = s;
        h[12..16].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(update32(sum, 0xc0a8_0001, 0x0a00_0001), full(&h));
        // RFC 1624 §4's example: eqn. 3 gives the right 0x0000 (RFC 1141's formula, 0xffff).
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
        // Changing nothing changes nothing.
        assert_eq!(update16(0x1234, 0xabcd, 0xabcd), 0x1234);
    }

    #[test]
    fn pseudo_headers() {
        let v4 = pseudo_v4(&[10, 0, 0, 1], &[10, 0, 0, 2], 17, 14);
        assert_eq!(fold(v4), 0x0a00 + 1 + 0x0a00 + 2 + 17 + 14);
        let mut a = [0u8; 16];
        a[15] = 1;
        let mut b = [0u8; 16];
        b[0] = 0xff;
        assert_eq!(fold(pseudo_v6(&a, &b, 6, 0x1_0002)), 1 + 0xff00 + 6 + 1 + 2);
    }

    #[test]
    fn complete_partial_out_of_range() {
        let mut d = [0u8; 10];
        assert!(!complete_partial(&mut d, 4, 5));
        assert!(complete_partial(&mut d, 4, 4));
        assert_eq!(&d[8..], &[0xff, 0xff]);
    }
}
