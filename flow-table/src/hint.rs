//! The previous packet's megaflow, copied out for the next packets of a burst.
//!
//! Consecutive packets mostly hit the same megaflow (they differ in fields its mask leaves
//! out), so the datapath tries the previous packet's megaflow first. Checking a key against
//! it in the cache means following a chain of dependent loads (slot, subtable, mask words,
//! masked key); a [`FlowHint`] holds the few words that matter in one small struct, so each
//! check is a handful of loads from one place.

use crate::key::{FlowKey, KEY_WORDS};
use crate::megaflow::FlowRef;

/// A megaflow's match (the words its mask covers, the mask and the masked key there) and its
/// reference.
///
/// Valid while the megaflow stays installed. Megaflows are removed only between bursts
/// (revalidation, idle sweeps, rule changes), never by a lookup or an install, so a hint
/// taken during a burst may be used for the rest of that burst, and must not be kept longer.
#[derive(Clone, Copy, Debug)]
pub struct FlowHint {
    flow: FlowRef,
    n: usize,
    idx: [u8; KEY_WORDS],
    mask: [u64; KEY_WORDS],
    key: [u64; KEY_WORDS],
}

impl FlowHint {
    /// A hint for megaflow `flow`, whose mask covers the words `idx` (each below
    /// [`KEY_WORDS`]), with mask words `mask` and masked key `key` (indexed by word).
    pub(crate) fn new(
        flow: FlowRef,
        idx: &[u8],
        mask: &[u64; KEY_WORDS],
        key: &[u64; KEY_WORDS],
    ) -> FlowHint {
        let mut h = FlowHint {
            flow,
            n: 0,
            idx: [0; KEY_WORDS],
            mask: [0; KEY_WORDS],
            key: [0; KEY_WORDS],
        };
        for &w in idx.iter().take(KEY_WORDS) {
            let w = usize::from(w).min(KEY_WORDS - 1);
            h.idx[h.n] = w as u8;
            h.mask[h.n] = mask[w];
            h.key[h.n] = key[w] & mask[w];
            h.n += 1;
        }
        h
    }

    /// The megaflow.
    #[inline]
    pub fn flow(&self) -> FlowRef {
        self.flow
    }

    /// Whether `key` matches the megaflow.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        let kw = key.words();
        let word = |j: usize| (kw[usize::from(self.idx[j])] & self.mask[j]) ^ self.key[j];
        // Most masks cover at most four words: those four without a loop or a branch (unused
        // entries are word 0 with an empty mask and key, which always agree).
        let mut d = word(0) | word(1) | word(2) | word(3);
        for j in 4..self.n.min(KEY_WORDS) {
            d |= word(j);
        }
        d == 0
    }
}
