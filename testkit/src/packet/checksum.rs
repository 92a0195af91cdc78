//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// The ones' complement sum of `data` as big-endian 16-bit words (an odd last byte is padded
/// with zero), added to `initial`, not yet folded.
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut s = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        s += u32::from(*last) << 8;
    }
    s
}

/// Folds a sum to 16 bits and complements it: the value to store in a header.
pub fn finish(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The checksum of `data` (with its checksum field zeroed by the caller).
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// `csum` after one covered 16-bit word changed from `old` to `new`: RFC 1624, equation 3,
/// `HC' = ~(~HC + ~m + m')`, which never turns a valid non-zero checksum into `0x0000`.
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    finish(u32::from(!csum) + u32::from(!old) + u32::from(new))
}

/// `csum` after the covered bytes `old` became `new` (same length; word-aligned with the
/// start of what the checksum covers).
pub fn update(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let word = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b.get(i + 1).copied().unwrap_or(0)]);
    (0..old.len())
        .step_by(2)
        .fold(csum, |c, i| match word(old, i) == word(new, i) {
            true => c,
            false => update16(c, word(old, i), word(new, i)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071's worked example: the sum of these words is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn an_incremental_update_equals_a_recomputation() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1,
            10, 0, 0, 2,
        ];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&hdr), 0, "a valid header sums to zero");
        let old = hdr;
        hdr[12..16].copy_from_slice(&[1, 2, 3, 4]);
        hdr[8] = 7;
        let inc = update(c, &old[8..16], &hdr[8..16]);
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&hdr));
    }
}
