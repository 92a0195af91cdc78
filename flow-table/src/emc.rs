//! The exact-match cache (EMC): a small per-thread table from whole flow keys to megaflows.
//!
//! Each hash has two candidate slots. Insertion is probabilistic (by default one miss in 100
//! inserts) so that traffic with many short flows does not keep evicting the few heavy flows that
//! benefit most. Entries hold a [`FlowRef`]; when the megaflow is removed the reference stops
//! resolving, so the EMC needs no invalidation of its own.

use crate::key::FlowKey;
use crate::megaflow::FlowRef;

/// Default number of entries (as OVS).
pub const DEFAULT_ENTRIES: usize = 8192;
/// Default insertion probability is 1 / this (as OVS); 0 disables the EMC, 1 always inserts.
pub const DEFAULT_INSERT_INV_PROB: u32 = 100;

/// One slot: 116 bytes laid out in two whole cache lines, hash and reference first so that the
/// first line decides most misses.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    hash: u32,
    flow: FlowRef,
    key: FlowKey,
}

const EMPTY: Entry = Entry {
    hash: 0,
    flow: FlowRef::NONE,
    key: FlowKey::ZERO,
};

const _: () = assert!(std::mem::size_of::<Entry>() == 128);

/// An exact-match cache owned by one thread.
pub struct Emc {
    entries: Box<[Entry]>,
    mask: u32,
    /// Shift that selects the second candidate's index bits.
    shift: u32,
    inv_prob: u32,
    /// An insert happens when the random number is at most this.
    threshold: u32,
    rng: u32,
}

impl Default for Emc {
    fn default() -> Self {
        Emc::new(DEFAULT_ENTRIES, DEFAULT_INSERT_INV_PROB)
    }
}

impl Emc {
    /// An EMC of `entries` slots (rounded up to a power of two, at least 2) inserting with
    /// probability `1 / insert_inv_prob` (0 = never).
    pub fn new(entries: usize, insert_inv_prob: u32) -> Emc {
        let n = entries.max(2).next_power_of_two();
        let mut emc = Emc {
            entries: vec![EMPTY; n].into_boxed_slice(),
            mask: (n - 1) as u32,
            shift: n.trailing_zeros(),
            inv_prob: 0,
            threshold: 0,
            rng: 0x9e37_79b9,
        };
        emc.set_insert_inv_prob(insert_inv_prob);
        emc
    }

    /// Changes the insertion probability to `1 / inv_prob` (0 = never insert).
    pub fn set_insert_inv_prob(&mut self, inv_prob: u32) {
        self.inv_prob = inv_prob;
        self.threshold = u32::MAX.checked_div(inv_prob).unwrap_or(0);
    }

    /// The insertion probability's inverse.
    pub fn insert_inv_prob(&self) -> u32 {
        self.inv_prob
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    #[inline(always)]
    fn slots(&self, hash: u32) -> [usize; 2] {
        [
            (hash & self.mask) as usize,
            ((hash >> self.shift) & self.mask) as usize,
        ]
    }

    /// The megaflow cached for exactly `key` (whose [`FlowKey::hash`] is `hash`). The caller
    /// must still check that the reference resolves.
    #[inline(always)]
    pub fn lookup(&self, key: &FlowKey, hash: u32) -> Option<FlowRef> {
        for i in self.slots(hash) {
            let e = &self.entries[i];
            if e.hash == hash && e.key == *key && e.flow != FlowRef::NONE {
                return Some(e.flow);
            }
        }
        None
    }

    /// Starts loading the two candidate slots of `hash` into the cache, so that a lookup a few
    /// packets later does not wait for memory.
    #[inline(always)]
    // The crate's one unsafe operation (the crate denies `unsafe_code` otherwise).
    #[allow(unsafe_code)]
    pub fn prefetch(&self, hash: u32) {
        #[cfg(target_arch = "x86_64")]
        for i in self.slots(hash) {
            let p = self.entries[i..].as_ptr() as *const i8;
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch is a hint that never faults; both lines belong to entry `i`
            // (entries are 128 bytes, 64-byte aligned).
            unsafe {
                _mm_prefetch(p, _MM_HINT_T0);
                _mm_prefetch(p.wrapping_add(64), _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    #[inline(always)]
    fn next_random(&mut self) -> u32 {
        // xorshift32: cheap, and quality is irrelevant beyond spreading insertions.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    /// Offers `key → flow` to the cache. An entry for the same key is always updated; otherwise
    /// the insertion happens with the configured probability, into an empty candidate slot if
    /// there is one, else over a random one of the two.
    #[inline]
    pub fn insert(&mut self, key: &FlowKey, hash: u32, flow: FlowRef) {
        if self.inv_prob == 0 {
            return;
        }
        let [a, b] = self.slots(hash);
        for i in [a, b] {
            let e = &mut self.entries[i];
            if e.hash == hash && e.key == *key {
                e.flow = flow;
                return;
            }
        }
        if self.inv_prob > 1 && self.next_random() > self.threshold {
            return;
        }
        let victim = if self.entries[a].flow == FlowRef::NONE {
            a
        } else if self.entries[b].flow == FlowRef::NONE {
            b
        } else if self.next_random() & 1 == 0 {
            a
        } else {
            b
        };
        self.entries[victim] = Entry {
            key: *key,
            hash,
            flow,
        };
    }

    /// Empties the cache.
    pub fn clear(&mut self) {
        self.entries.fill(EMPTY);
    }

    /// Number of occupied slots (an O(capacity) count, for statistics).
    pub fn occupied(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.flow != FlowRef::NONE)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Action;
    use crate::matches::Match;
    use crate::megaflow::MegaflowCache;
    use crate::rule::RuleSpec;
    use crate::tables::RuleTables;
    use crate::upcall::translate;

    fn flow_ref(c: &mut MegaflowCache, t: &RuleTables, k: &FlowKey) -> FlowRef {
        c.insert(k, &translate(t, k), 0).unwrap()
    }

    fn setup() -> (RuleTables, MegaflowCache) {
        let mut t = RuleTables::new();
        t.add(RuleSpec::new(0, Match::any(), vec![Action::Output(1)]), 0)
            .unwrap();
        (t, MegaflowCache::default())
    }

    fn key(i: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = i;
        k.nw_src = i.wrapping_mul(2_654_435_761);
        k
    }

    #[test]
    fn always_insert_then_hit() {
        let (t, mut c) = setup();
        let mut emc = Emc::new(8192, 1);
        let k = key(1);
        let r = flow_ref(&mut c, &t, &k);
        assert_eq!(emc.lookup(&k, k.hash()), None);
        emc.insert(&k, k.hash(), r);
        assert_eq!(emc.lookup(&k, k.hash()), Some(r));
        let mut other = k;
        other.tp_dst = 1;
        assert_eq!(emc.lookup(&other, other.hash()), None);
        emc.clear();
        assert_eq!(emc.lookup(&k, k.hash()), None);
    }

    #[test]
    fn disabled_never_inserts() {
        let mut emc = Emc::new(64, 0);
        let k = key(1);
        emc.insert(&k, k.hash(), FlowRef::NONE);
        assert_eq!(emc.occupied(), 0);
    }

    #[test]
    fn probabilistic_insertion_is_about_one_in_n() {
        let (t, mut c) = setup();
        let mut emc = Emc::new(1 << 16, 100);
        let r = flow_ref(&mut c, &t, &key(0));
        for i in 0..100_000 {
            let k = key(i);
            emc.insert(&k, k.hash(), r);
        }
        let n = emc.occupied();
        // Expect ~1000 insertions; allow wide bounds for randomness and collisions.
        assert!((700..1300).contains(&n), "{n} insertions");
    }

    #[test]
    fn stale_references_do_not_resolve() {
        let (t, mut c) = setup();
        let mut emc = Emc::new(64, 1);
        let k = key(5);
        let r = flow_ref(&mut c, &t, &k);
        emc.insert(&k, k.hash(), r);
        c.flush();
        let hit = emc.lookup(&k, k.hash()).unwrap();
        assert!(c.get(hit).is_none());
    }

    #[test]
    fn an_entry_for_the_same_key_is_always_updated() {
        let (t, mut c) = setup();
        let mut emc = Emc::new(64, 1);
        let k = key(3);
        let r1 = flow_ref(&mut c, &t, &k);
        emc.insert(&k, k.hash(), r1);
        assert!(c.remove(r1));
        let r2 = flow_ref(&mut c, &t, &k);
        assert_ne!(r1, r2);
        // Even when new insertions are all but disabled, the stale entry is refreshed.
        emc.set_insert_inv_prob(u32::MAX);
        emc.insert(&k, k.hash(), r2);
        assert_eq!(emc.lookup(&k, k.hash()), Some(r2));
    }
}
