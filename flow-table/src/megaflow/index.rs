//! Secondary indexes of a megaflow subtable, by projection.
//!
//! A changed rule with key `K_r` and mask `M_r` overlaps a megaflow `(K, F)` of a subtable
//! exactly when `K` and `K_r` agree on `G = M_r & F`. When `G` is neither all of `F` (then the
//! subtable's own hash table answers) nor empty (then every megaflow overlaps), the megaflows
//! to remove are those whose key has a given projection `K & G`: what a [`ProjIndex`] on `G`
//! finds with one probe instead of a walk over the subtable.
//!
//! Indexes cost memory and a little work on every insert, and only pay off for the projections
//! that rule changes actually use, so they are built on first use (by invalidation, never on
//! the packet path), kept up to date on insert, and at most [`MAX_INDEXES`] of them live per
//! subtable, the least recently used giving way.
//!
//! Removal does not touch them: entries name a megaflow by slot and version, and a slot's
//! version changes when its megaflow goes, so an entry of a removed megaflow is recognised as
//! stale wherever it is met. Probes drop the stale entries of the bucket they read, and an index
//! holding more stale entries than live ones is rebuilt (or dropped) rather than carried.

use hashbrown::HashTable;

use crate::hash::hash_masked;
use crate::key::{FlowKey, FlowMask, KEY_WORDS};

/// Most projection indexes kept per subtable: enough for the few rule shapes a table mixes
/// (exact hosts, prefixes, ports), without making every insert into the subtable pay for many.
pub(super) const MAX_INDEXES: usize = 4;

/// Smallest subtable worth an index: below this, comparing every megaflow costs about what
/// building and probing would. Tests index small subtables too, so that their random caches
/// go through indexes often (the threshold only weighs cost: the results are the same).
pub(super) const MIN_INDEXED_FLOWS: usize = if cfg!(test) { 4 } else { 32 };

/// One megaflow as an index knows it: its slot and the slot's version when it was indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Member {
    pub(super) idx: u32,
    pub(super) version: u32,
}

/// The members whose projections hash alike (nearly always: the members of one projection).
struct Bucket {
    hash: u64,
    members: Vec<Member>,
}

/// The nonzero words of a mask, as the masked hash and compares take them.
#[derive(Clone, Copy)]
pub(super) struct Words {
    idx: [u8; KEY_WORDS],
    n: u8,
}

impl Words {
    pub(super) fn of(mask: &FlowMask) -> Words {
        let mut idx = [0u8; KEY_WORDS];
        let mut n = 0;
        for w in mask.nonzero_words() {
            idx[n] = w as u8;
            n += 1;
        }
        Words { idx, n: n as u8 }
    }

    #[inline]
    pub(super) fn get(&self) -> &[u8] {
        &self.idx[..self.n as usize]
    }
}

/// True when `a` and `b` agree on every bit of `mask` (whose nonzero words are `words`).
#[inline]
pub(super) fn agree(a: &FlowKey, b: &FlowKey, mask: &FlowMask, words: &Words) -> bool {
    let (a, b, m) = (a.words(), b.words(), mask.words());
    words.get().iter().all(|&w| {
        let w = w as usize;
        (a[w] ^ b[w]) & m[w] == 0
    })
}

/// A hash index of one subtable's megaflows by the projection `K & G` of their keys.
pub(super) struct ProjIndex {
    /// `G`: a subset of the subtable's mask.
    mask: FlowMask,
    words: Words,
    buckets: HashTable<Bucket>,
    /// Members over all buckets, stale ones included.
    entries: usize,
    /// The invalidation that last used it (for least-recently-used replacement).
    last_used: u64,
}

impl ProjIndex {
    fn new(mask: &FlowMask, tick: u64) -> ProjIndex {
        ProjIndex {
            mask: *mask,
            words: Words::of(mask),
            buckets: HashTable::new(),
            entries: 0,
            last_used: tick,
        }
    }

    /// The hash of `key`'s projection.
    #[inline]
    fn hash_of(&self, key: &FlowKey) -> u64 {
        hash_masked(key.words(), self.mask.words(), self.words.get())
    }

    /// Adds the megaflow `m`, whose (masked) key is `key`.
    fn add(&mut self, key: &FlowKey, m: Member) {
        let hash = self.hash_of(key);
        self.entries += 1;
        if let Some(b) = self.buckets.find_mut(hash, |b| b.hash == hash) {
            b.members.push(m);
            return;
        }
        self.buckets.insert_unique(
            hash,
            Bucket {
                hash,
                members: vec![m],
            },
            |b| b.hash,
        );
    }

    /// More stale entries than live ones (`live` megaflows in the subtable), past a small
    /// floor: time to start over rather than carry them.
    fn too_stale(&self, live: usize) -> bool {
        self.entries > 2 * live + MIN_INDEXED_FLOWS
    }

    /// Calls `found` with the slot of every live member whose projection hashes as `key`'s
    /// does (the caller compares the keys: a hash collision may bring in others). `live` tells
    /// whether a member still stands for its megaflow; the stale members met are dropped.
    pub(super) fn probe(
        &mut self,
        key: &FlowKey,
        live: impl Fn(Member) -> bool,
        mut found: impl FnMut(u32),
    ) {
        let hash = self.hash_of(key);
        let Ok(mut e) = self.buckets.find_entry(hash, |b| b.hash == hash) else {
            return;
        };
        let members = &mut e.get_mut().members;
        let before = members.len();
        members.retain(|&m| live(m));
        self.entries -= before - members.len();
        for m in members.iter() {
            found(m.idx);
        }
        if members.is_empty() {
            e.remove();
        }
    }
}

/// The projection indexes of one subtable.
#[derive(Default)]
pub(super) struct Indexes {
    list: Vec<ProjIndex>,
}

impl Indexes {
    /// Adds a new megaflow of the subtable (`live` megaflows, itself included) to every index.
    /// An index gone stale is dropped here (it is rebuilt when next needed), which bounds the
    /// memory that removed megaflows hold.
    pub(super) fn add(&mut self, key: &FlowKey, m: Member, live: usize) {
        self.list.retain(|ix| !ix.too_stale(live));
        for ix in &mut self.list {
            ix.add(key, m);
        }
    }

    /// The index on `mask`, built from `members` when there is none (or only a stale one),
    /// if one may be: the subtable has [`MIN_INDEXED_FLOWS`] megaflows, and fewer than
    /// [`MAX_INDEXES`] indexes or one not used by this invalidation (`tick`), which gives way.
    /// `None` tells the caller to compare the subtable's megaflows one by one.
    pub(super) fn get_or_build<'a>(
        &mut self,
        mask: &FlowMask,
        tick: u64,
        live: usize,
        members: impl Iterator<Item = (Member, &'a FlowKey)>,
    ) -> Option<&mut ProjIndex> {
        let pos = match self.list.iter().position(|ix| ix.mask == *mask) {
            Some(p) if !self.list[p].too_stale(live) => p,
            found => {
                if live < MIN_INDEXED_FLOWS {
                    return None;
                }
                let p = match found {
                    Some(p) => p,
                    None if self.list.len() < MAX_INDEXES => {
                        self.list.push(ProjIndex::new(mask, tick));
                        self.list.len() - 1
                    }
                    None => {
                        let (p, lru) = self
                            .list
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, ix)| ix.last_used)
                            .expect("MAX_INDEXES > 0");
                        // Every index serves this invalidation: replacing one would only make
                        // a later group of changes rebuild it.
                        if lru.last_used == tick {
                            return None;
                        }
                        p
                    }
                };
                let mut ix = ProjIndex::new(mask, tick);
                for (m, key) in members {
                    ix.add(key, m);
                }
                self.list[p] = ix;
                p
            }
        };
        let ix = &mut self.list[pos];
        ix.last_used = tick;
        Some(ix)
    }

    /// Number of indexes (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }
}
