//! Hashing of flow keys for the caches.
//!
//! Hand-rolled because it sits on the per-packet path: a general-purpose byte hasher walks the
//! 104-byte key serially, while keys here are fixed arrays of words, so pairs of words can be mixed
//! with independent 64×64→128-bit multiplies that the CPU runs in parallel (the "folded multiply"
//! of wyhash and aHash). The result only needs to spread keys over hash-table buckets; it is not
//! meant to resist an adversary choosing keys (the tables stay correct, only slower, on
//! collisions).

use crate::key::KEY_WORDS;

/// Per-position constants: odd, high-entropy 64-bit values (digits of pi and e in hex).
const K: [u64; KEY_WORDS + 1] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
    0x9216_d5d9_8979_fb1b,
    0xb7e1_5162_8aed_2a6a,
    0xbf71_5880_9cf4_f3c7,
    0x62e7_160f_38b4_da56,
    0xa784_d904_5190_cfef,
    0x324e_7738_926c_fbe5,
];

/// Multiplies two words to 128 bits and folds the halves together.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
fn finish(acc: u64) -> u64 {
    fold_mul(acc ^ K[1], 0x9e37_79b9_7f4a_7c15)
}

/// Hash of every word of a key.
#[inline(always)]
pub fn hash_words(w: &[u64; KEY_WORDS]) -> u32 {
    let mut acc = 0u64;
    let mut i = 0;
    while i + 1 < KEY_WORDS {
        acc = acc.wrapping_add(fold_mul(w[i] ^ K[i], w[i + 1] ^ K[i + 1]));
        i += 2;
    }
    acc = acc.wrapping_add(fold_mul(w[KEY_WORDS - 1] ^ K[KEY_WORDS - 1], K[KEY_WORDS]));
    finish(acc) as u32
}

/// Hash of `key & mask` over the words listed in `idx` (those where the mask is non-zero).
///
/// Equal for two keys exactly when their masked words are equal (up to collisions), so a
/// megaflow subtable can hash a packet without building the masked key first.
#[inline(always)]
pub fn hash_masked(key: &[u64; KEY_WORDS], mask: &[u64; KEY_WORDS], idx: &[u8]) -> u64 {
    let mut acc = idx.len() as u64;
    let mut pairs = idx.chunks_exact(2);
    for p in &mut pairs {
        let (a, b) = (p[0] as usize, p[1] as usize);
        acc = acc.wrapping_add(fold_mul(
            (key[a] & mask[a]) ^ K[a],
            (key[b] & mask[b]) ^ K[b],
        ));
    }
    if let [a] = *pairs.remainder() {
        let a = a as usize;
        acc = acc.wrapping_add(fold_mul((key[a] & mask[a]) ^ K[a], K[KEY_WORDS]));
    }
    finish(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_hash_ignores_bits_outside_the_mask() {
        let mut a = [0u64; KEY_WORDS];
        let mut m = [0u64; KEY_WORDS];
        m[3] = 0xffff;
        m[7] = u64::MAX;
        a[3] = 0x1234;
        a[7] = 99;
        let mut b = a;
        b[3] |= 0xabcd_0000;
        b[0] = 5;
        assert_eq!(hash_masked(&a, &m, &[3, 7]), hash_masked(&b, &m, &[3, 7]));
        b[7] = 100;
        assert_ne!(hash_masked(&a, &m, &[3, 7]), hash_masked(&b, &m, &[3, 7]));
    }

    #[test]
    fn word_hash_spreads_small_changes() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u64 {
            let mut w = [0u64; KEY_WORDS];
            w[4] = i;
            seen.insert(hash_words(&w) & 0x1fff);
        }
        // 10k keys into 8192 buckets: a good hash fills most of them.
        assert!(seen.len() > 5000, "only {} buckets used", seen.len());
    }
}
