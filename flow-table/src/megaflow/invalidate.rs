//! Finding the megaflows a list of rule changes may affect, without comparing every megaflow
//! with every change.
//!
//! A change (table `t`, key `K_r`, mask `M_r`) affects a megaflow (key `K`, mask `F`) that is
//! tainted, or that consulted table `t` and overlaps the rule: `(K ^ K_r) & M_r & F == 0`. The
//! search goes subtable by subtable, where `F` is fixed, so with `G = M_r & F`:
//!
//! - `G == F`: at most one megaflow overlaps, the one with key `K_r & F`: one probe of the
//!   subtable's own hash table;
//! - `G` empty: every megaflow of the subtable overlaps;
//! - otherwise the overlapping megaflows are those with `K & G == K_r & G`, found by a probe of
//!   a projection index on `G` (see [`super::index`]), or, in a subtable too small for one or
//!   with its indexes all in use, by comparing its megaflows with the changes' projections.
//!
//! Changes are first grouped by mask (a bulk add of rules mostly repeats a few shapes), so `G`
//! and its index are worked out once per group and subtable; a subtable that never consulted
//! the group's tables is skipped. Tainted megaflows are listed apart, all removed at once.
//!
//! The result is exactly the set the plain comparison of every megaflow with every change
//! gives; that plain scan is still used when it is the cheaper one (a cache with few megaflows
//! per subtable).

use hashbrown::HashTable;

use super::index::{agree, Member, Words};
use super::{MegaflowCache, Slot, Subtable};
use crate::hash::hash_masked;
use crate::key::{FlowKey, FlowMask};
use crate::tables::RuleChange;
use crate::upcall::table_bit;

#[cfg(test)]
mod tests;

/// Cost of probing a hash table for one change and subtable, in comparisons of a megaflow with
/// a change (the unit of the plain scan): hashing the key and following the probe.
const PROBE_COST: usize = 4;

/// Changes of one mask.
struct Group<'a> {
    mask: &'a FlowMask,
    /// The union of their tables' bits.
    tables: u64,
    changes: Vec<&'a RuleChange>,
}

/// Groups `changes` by mask, in order of first appearance.
fn group_by_mask(changes: &[RuleChange]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut by_mask: HashTable<usize> = HashTable::new();
    for c in changes {
        let mask = c.r#match.mask();
        let hash = crate::hash::hash_words(mask.words()) as u64;
        let g = match by_mask.find(hash, |&g| groups[g].mask == mask) {
            Some(&g) => g,
            None => {
                groups.push(Group {
                    mask,
                    tables: 0,
                    changes: Vec::new(),
                });
                let g = groups.len() - 1;
                by_mask.insert_unique(hash, g, |&g| {
                    crate::hash::hash_words(groups[g].mask.words()) as u64
                });
                g
            }
        };
        groups[g].tables |= table_bit(c.table);
        groups[g].changes.push(c);
    }
    groups
}

/// `a & b`.
fn intersect(a: &FlowMask, b: &FlowMask) -> FlowMask {
    let mut w = *a.words();
    for (x, y) in w.iter_mut().zip(b.words()) {
        *x &= y;
    }
    FlowMask(FlowKey::from_words(w))
}

/// The live megaflow in slot `i` consulted a table of `tables`.
#[inline]
fn consulted(slots: &[Slot], i: u32, tables: u64) -> bool {
    slots[i as usize]
        .flow
        .as_ref()
        .is_some_and(|f| f.tables & tables != 0)
}

impl MegaflowCache {
    /// Removes every megaflow whose decision the rule changes may alter: the tainted ones,
    /// and those that consulted a changed rule's table and match some packet the rule matches.
    /// Returns how many.
    ///
    /// Costs about one hash probe per change and subtable (plus the removals), however many
    /// megaflows are cached; when megaflows are few, it compares each with each change instead.
    pub fn invalidate(&mut self, changes: &[RuleChange]) -> usize {
        // Per change, the scan compares every megaflow and the search probes every subtable,
        // so the number of changes does not weigh in the choice. Flushing instead, cheaper
        // still for a huge list, would cost an upcall for every flow still active: not done.
        let scan = self.n_flows <= PROBE_COST * self.order.len();
        self.invalidate_by(changes, scan)
    }

    /// [`MegaflowCache::invalidate`], by comparing every megaflow with every change (`scan`)
    /// or by searching subtable by subtable.
    fn invalidate_by(&mut self, changes: &[RuleChange], scan: bool) -> usize {
        if changes.is_empty() {
            return 0;
        }
        let mut doomed = if scan {
            self.doomed_by_scan(changes)
        } else {
            self.doomed_by_index(changes)
        };
        doomed.sort_unstable();
        doomed.dedup();
        for &i in &doomed {
            self.remove_slot(i);
        }
        // Every tainted megaflow was among them.
        debug_assert_eq!(self.n_tainted, 0);
        self.tainted.clear();
        doomed.len()
    }

    /// The megaflows to remove, by comparing each with each change.
    fn doomed_by_scan(&self, changes: &[RuleChange]) -> Vec<u32> {
        let mut doomed = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(flow) = &slot.flow else { continue };
            let mask = &self.subtable(flow.subtable).mask;
            let hit = flow.tainted
                || changes.iter().any(|c| {
                    flow.tables & table_bit(c.table) != 0 && c.r#match.overlaps(&slot.key, mask)
                });
            if hit {
                doomed.push(i as u32);
            }
        }
        doomed
    }

    /// The megaflows to remove (possibly listed twice), subtable by subtable.
    fn doomed_by_index(&mut self, changes: &[RuleChange]) -> Vec<u32> {
        let slots = &self.slots;
        let mut doomed: Vec<u32> = self
            .tainted
            .iter()
            .filter(|m| is_live(slots, **m) && slots[m.idx as usize].flow_is_tainted())
            .map(|m| m.idx)
            .collect();
        let groups = group_by_mask(changes);
        self.inval_tick += 1;
        let tick = self.inval_tick;
        for st in self.subtables.iter_mut().flatten() {
            for g in &groups {
                if st.tables & g.tables != 0 {
                    st.doomed_by(g, slots, tick, &mut doomed);
                }
            }
        }
        doomed
    }
}

/// Whether `m` still stands for the megaflow it was listed for.
#[inline]
fn is_live(slots: &[Slot], m: Member) -> bool {
    let s = &slots[m.idx as usize];
    s.version == m.version && s.flow.is_some()
}

impl Subtable {
    /// Adds to `doomed` the megaflows of this subtable that the changes of `g` affect.
    fn doomed_by(&mut self, g: &Group<'_>, slots: &[Slot], tick: u64, doomed: &mut Vec<u32>) {
        let proj = intersect(g.mask, &self.mask);
        if proj == self.mask {
            // At most one megaflow per change: the one whose key is the rule's, masked.
            let (mw, words) = (self.mask.words(), &self.words[..self.n_words as usize]);
            for c in &g.changes {
                let kw = c.r#match.key().words();
                let hash = hash_masked(kw, mw, words);
                let found = self.flows.find(hash, |&i| {
                    let sk = slots[i as usize].key.words();
                    words
                        .iter()
                        .all(|&w| sk[w as usize] == kw[w as usize] & mw[w as usize])
                });
                if let Some(&i) = found {
                    if consulted(slots, i, table_bit(c.table)) {
                        doomed.push(i);
                    }
                }
            }
            return;
        }
        if proj.is_empty() {
            // The rules constrain none of the bits these megaflows match on.
            doomed.extend(
                self.flows
                    .iter()
                    .filter(|&&i| consulted(slots, i, g.tables)),
            );
            return;
        }
        let words = Words::of(&proj);
        let live = self.flows.len();
        let members = self.flows.iter().map(|&i| {
            let s = &slots[i as usize];
            (
                Member {
                    idx: i,
                    version: s.version,
                },
                &s.key,
            )
        });
        if let Some(ix) = self.indexes.get_or_build(&proj, tick, live, members) {
            for c in &g.changes {
                let (kr, bit) = (c.r#match.key(), table_bit(c.table));
                ix.probe(
                    kr,
                    |m| is_live(slots, m),
                    |i| {
                        if agree(&slots[i as usize].key, kr, &proj, &words)
                            && consulted(slots, i, bit)
                        {
                            doomed.push(i);
                        }
                    },
                );
            }
            return;
        }
        self.doomed_by_projections(g, &proj, &words, slots, doomed);
    }

    /// As [`Subtable::doomed_by`] without an index: each megaflow's projection is looked up
    /// among the changes' projections (hashed once here), so the cost is one pass over the
    /// subtable and one over the changes, not their product.
    fn doomed_by_projections(
        &self,
        g: &Group<'_>,
        proj: &FlowMask,
        words: &Words,
        slots: &[Slot],
        doomed: &mut Vec<u32>,
    ) {
        /// The changes of one projection: one of their keys, and the union of their tables.
        struct Entry<'a> {
            hash: u64,
            key: &'a FlowKey,
            tables: u64,
        }
        let hash_of = |k: &FlowKey| hash_masked(k.words(), proj.words(), words.get());
        let mut set: HashTable<Entry<'_>> = HashTable::new();
        for c in &g.changes {
            let key = c.r#match.key();
            let hash = hash_of(key);
            let bit = table_bit(c.table);
            match set.find_mut(hash, |e| e.hash == hash && agree(e.key, key, proj, words)) {
                Some(e) => e.tables |= bit,
                None => {
                    set.insert_unique(
                        hash,
                        Entry {
                            hash,
                            key,
                            tables: bit,
                        },
                        |e| e.hash,
                    );
                }
            }
        }
        for &i in self.flows.iter() {
            let key = &slots[i as usize].key;
            let hash = hash_of(key);
            if let Some(e) = set.find(hash, |e| e.hash == hash && agree(e.key, key, proj, words)) {
                if consulted(slots, i, e.tables) {
                    doomed.push(i);
                }
            }
        }
    }
}
