//! The megaflow cache: installed upcall results, looked up by tuple space search.
//!
//! One cache per PMD thread (no sharing, no locks). A megaflow is a masked key with its datapath
//! actions; megaflows with the same mask share a subtable, a hash table over the masked words.
//! A lookup probes subtables in order of recent hits (re-sorted every [`RESORT_INTERVAL`]
//! lookups, or when the owner calls [`MegaflowCache::resort`]).
//!
//! Megaflows live in slots addressed by [`FlowRef`]; removing one bumps its slot's version, so
//! stale references (held by the exact-match cache) stop resolving.
//!
//! **Invalidation.** A rule change affects only packets the changed rule matches, and only in its
//! table. A megaflow whose packets cannot match the rule (disjoint on the bits both masks share),
//! or that never consulted the rule's table, keeps its answer; every other one is removed.
//! Tainted megaflows (see [`crate::upcall`]) are removed on any change. The affected megaflows
//! are found by hash probes per subtable (with secondary indexes of a subtable's megaflows by
//! the bits the changed rules match on) rather than by comparing each with each change, so a
//! change costs about the same with 10 megaflows cached or 100 000: see
//! [`MegaflowCache::invalidate`].

use std::sync::Arc;

use hashbrown::HashTable;

use crate::actions::DpAction;
use crate::hash::hash_masked;
use crate::hint::FlowHint;
use crate::key::{FlowKey, FlowMask, KEY_WORDS};
use crate::rule::Rule;
use crate::upcall::Translation;

use index::{Indexes, Member};

mod index;
mod invalidate;

/// Lookups between automatic re-sorts of the subtables.
pub const RESORT_INTERVAL: u32 = 1 << 16;

/// Default cap on megaflows per cache (OVS's flow limit).
pub const DEFAULT_FLOW_LIMIT: usize = 200_000;

/// A reference to an installed megaflow; stops resolving once the megaflow is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowRef {
    idx: u32,
    version: u32,
}

impl FlowRef {
    /// A reference that never resolves.
    pub const NONE: FlowRef = FlowRef {
        idx: u32::MAX,
        version: 0,
    };
}

/// An installed megaflow.
#[derive(Debug)]
pub struct Megaflow {
    /// Datapath actions.
    pub actions: Box<[DpAction]>,
    /// Rules whose counters its packets credit.
    pub rules: Box<[Arc<Rule>]>,
    /// See [`Translation::tainted`].
    pub tainted: bool,
    /// See [`Translation::tables`].
    pub tables: u64,
    /// See [`Translation::normal`].
    pub normal: bool,
    /// The translation gave up ([`Translation::error`]): its packets are dropped as upcall
    /// failures rather than by policy.
    pub failed: bool,
    /// Packets that hit it.
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
    /// Last hit (ms, caller's clock), or the install time.
    pub used_ms: u64,
    /// Install time (ms).
    pub created_ms: u64,
    /// Packets and bytes already credited to the rules.
    pushed: (u64, u64),
    subtable: u32,
    hash: u64,
}

impl Megaflow {
    fn push_stats(&mut self) {
        let (p, b) = (self.packets - self.pushed.0, self.bytes - self.pushed.1);
        if p == 0 {
            return;
        }
        for rule in self.rules.iter() {
            rule.stats.credit(p, b, self.used_ms);
        }
        self.pushed = (self.packets, self.bytes);
    }
}

struct Slot {
    /// Masked key (meaningful while `flow` is `Some`).
    key: FlowKey,
    version: u32,
    flow: Option<Megaflow>,
}

impl Slot {
    fn flow_is_tainted(&self) -> bool {
        self.flow.as_ref().is_some_and(|f| f.tainted)
    }
}

struct Subtable {
    mask: FlowMask,
    /// Indexes of the non-zero words of `mask`: the only words hashed and compared.
    words: [u8; KEY_WORDS],
    n_words: u8,
    /// Slot indexes, hashed by masked key.
    flows: HashTable<u32>,
    hits: u64,
    /// The union of its megaflows' [`Megaflow::tables`] (of those it ever held: a superset),
    /// which lets invalidation pass over it for a change in a table none of them consulted.
    tables: u64,
    /// Its megaflows by projections of their keys, for invalidation.
    indexes: Indexes,
}

impl Subtable {
    #[inline(always)]
    fn words(&self) -> &[u8] {
        &self.words[..self.n_words as usize]
    }
}

/// Counts of what [`MegaflowCache::insert`] could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The flow limit is reached.
    Full,
}

/// A per-thread megaflow cache.
pub struct MegaflowCache {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Subtables by id (`None` once emptied; ids are reused).
    subtables: Vec<Option<Subtable>>,
    /// Subtable ids in lookup order.
    order: Vec<u32>,
    n_flows: usize,
    limit: usize,
    lookups: u32,
    /// The tainted megaflows, which any rule change removes, so that invalidation finds them
    /// without a walk over all; it may also list removed or no longer tainted ones (checked
    /// when read), but at most about twice as many entries as `n_tainted`.
    tainted: Vec<Member>,
    /// Installed megaflows that are tainted.
    n_tainted: usize,
    /// Invalidations so far (the clock of the indexes' least-recently-used replacement).
    inval_tick: u64,
}

impl Default for MegaflowCache {
    fn default() -> Self {
        MegaflowCache::new(DEFAULT_FLOW_LIMIT)
    }
}

impl MegaflowCache {
    /// An empty cache holding at most `limit` megaflows.
    pub fn new(limit: usize) -> MegaflowCache {
        MegaflowCache {
            slots: Vec::new(),
            free: Vec::new(),
            subtables: Vec::new(),
            order: Vec::new(),
            n_flows: 0,
            limit,
            lookups: 0,
            tainted: Vec::new(),
            n_tainted: 0,
            inval_tick: 0,
        }
    }

    /// Number of megaflows.
    pub fn len(&self) -> usize {
        self.n_flows
    }

    /// True when there is no megaflow.
    pub fn is_empty(&self) -> bool {
        self.n_flows == 0
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.order.len()
    }

    /// The flow limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the flow limit (megaflows above it stay until removed).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The megaflow `r` refers to, if it is still installed.
    #[inline(always)]
    pub fn get(&self, r: FlowRef) -> Option<&Megaflow> {
        let slot = self.slots.get(r.idx as usize)?;
        if slot.version != r.version {
            return None;
        }
        slot.flow.as_ref()
    }

    fn subtable(&self, id: u32) -> &Subtable {
        self.subtables[id as usize]
            .as_ref()
            .expect("a live megaflow's subtable is live")
    }

    /// The masked key and mask of the megaflow `r` refers to.
    pub fn key_and_mask(&self, r: FlowRef) -> Option<(&FlowKey, &FlowMask)> {
        let flow = self.get(r)?;
        let st = self.subtables[flow.subtable as usize].as_ref()?;
        Some((&self.slots[r.idx as usize].key, &st.mask))
    }

    /// Finds the megaflow matching `key`.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey) -> Option<FlowRef> {
        self.lookups += 1;
        if self.lookups >= RESORT_INTERVAL {
            self.resort();
        }
        let kw = key.words();
        let slots = &self.slots;
        for &id in &self.order {
            // Every id in `order` names a live subtable.
            let Some(st) = self.subtables[id as usize].as_mut() else {
                continue;
            };
            let mw = st.mask.words();
            let words = &st.words[..st.n_words as usize];
            let h = hash_masked(kw, mw, words);
            let found = st.flows.find(h, |&i| {
                let sk = slots[i as usize].key.words();
                words
                    .iter()
                    .all(|&w| sk[w as usize] == kw[w as usize] & mw[w as usize])
            });
            if let Some(&i) = found {
                st.hits += 1;
                return Some(FlowRef {
                    idx: i,
                    version: slots[i as usize].version,
                });
            }
        }
        None
    }

    /// Whether the megaflow `r` is still installed and matches `key`: the check that lets a
    /// packet reuse the previous packet's megaflow without a tuple space search. Any installed
    /// megaflow that matches a key gives that key's actions (a megaflow's mask holds every bit
    /// its translation read), so this answers as [`lookup`](Self::lookup) would.
    ///
    /// The one-off form of [`hint`](Self::hint): the datapath takes a hint once for a run of
    /// packets and checks each against it.
    pub fn matches(&self, r: FlowRef, key: &FlowKey) -> bool {
        self.hint(r).is_some_and(|h| h.matches(key))
    }

    /// The match of megaflow `r`, copied out for checking many keys (see [`FlowHint`]); `None`
    /// when `r` is not installed.
    pub fn hint(&self, r: FlowRef) -> Option<FlowHint> {
        let slot = self.slots.get(r.idx as usize)?;
        let flow = slot.flow.as_ref()?;
        if slot.version != r.version {
            return None;
        }
        let st = self.subtables[flow.subtable as usize].as_ref()?;
        Some(FlowHint::new(
            r,
            st.words(),
            st.mask.words(),
            slot.key.words(),
        ))
    }

    /// Orders subtables by hits since the last sort, most first, and restarts the counts.
    pub fn resort(&mut self) {
        self.lookups = 0;
        let subtables = &self.subtables;
        let hits = |id: &u32| subtables[*id as usize].as_ref().map_or(0, |s| s.hits);
        self.order.sort_by_key(|id| std::cmp::Reverse(hits(id)));
        for st in self.subtables.iter_mut().flatten() {
            st.hits = 0;
        }
    }

    /// Installs the translation of `key` as a megaflow (replacing one with the same masked
    /// key and mask).
    pub fn insert(
        &mut self,
        key: &FlowKey,
        x: &Translation,
        now_ms: u64,
    ) -> Result<FlowRef, InsertError> {
        let sid = self.subtable_for(&x.mask);
        let st = self.subtables[sid as usize]
            .as_mut()
            .expect("live subtable");
        // Set before the outcome is known: a superset is all it has to be.
        st.tables |= x.tables;
        let masked = key.masked(&x.mask);
        let hash = hash_masked(masked.words(), st.mask.words(), st.words());
        let slots = &self.slots;
        if let Some(&i) = st.flows.find(hash, |&i| slots[i as usize].key == masked) {
            let slot = &self.slots[i as usize];
            let version = slot.version;
            match (slot.flow_is_tainted(), x.tainted) {
                (false, true) => self.note_tainted(Member { idx: i, version }),
                // Its entry in `tainted` stays, and is passed over as no longer tainted.
                (true, false) => self.n_tainted -= 1,
                _ => {}
            }
            let slot = &mut self.slots[i as usize];
            let flow = slot.flow.as_mut().expect("indexed slot is live");
            flow.actions = x.actions.clone().into_boxed_slice();
            flow.rules = x.rules.clone().into_boxed_slice();
            flow.tainted = x.tainted;
            flow.tables = x.tables;
            flow.normal = x.normal;
            return Ok(FlowRef {
                idx: i,
                version: slot.version,
            });
        }
        if self.n_flows >= self.limit {
            if st.flows.is_empty() {
                self.drop_subtable(sid);
            }
            return Err(InsertError::Full);
        }
        let flow = Megaflow {
            actions: x.actions.clone().into_boxed_slice(),
            rules: x.rules.clone().into_boxed_slice(),
            tainted: x.tainted,
            tables: x.tables,
            normal: x.normal,
            failed: x.error.is_some(),
            packets: 0,
            bytes: 0,
            used_ms: now_ms,
            created_ms: now_ms,
            pushed: (0, 0),
            subtable: sid,
            hash,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.key = masked;
                slot.flow = Some(flow);
                i
            }
            None => {
                self.slots.push(Slot {
                    key: masked,
                    version: 0,
                    flow: Some(flow),
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        let st = self.subtables[sid as usize]
            .as_mut()
            .expect("live subtable");
        st.flows.insert_unique(hash, idx, |&i| {
            slots[i as usize].flow.as_ref().map_or(0, |f| f.hash)
        });
        let member = Member {
            idx,
            version: slots[idx as usize].version,
        };
        st.indexes.add(&masked, member, st.flows.len());
        self.n_flows += 1;
        if x.tainted {
            self.note_tainted(member);
        }
        Ok(FlowRef {
            idx,
            version: member.version,
        })
    }

    /// Lists a megaflow that just became tainted. Compacts the list when its stale entries
    /// outnumber the live ones, so that it stays in proportion to the tainted megaflows even
    /// when rule changes are rare.
    fn note_tainted(&mut self, m: Member) {
        self.n_tainted += 1;
        self.tainted.push(m);
        if self.tainted.len() > 2 * self.n_tainted + 32 {
            let slots = &self.slots;
            self.tainted.retain(|m| {
                let s = &slots[m.idx as usize];
                s.version == m.version && s.flow_is_tainted()
            });
            // A megaflow tainted, untainted and tainted again is listed twice.
            self.tainted.sort_unstable_by_key(|m| m.idx);
            self.tainted.dedup();
        }
    }

    fn subtable_for(&mut self, mask: &FlowMask) -> u32 {
        if let Some(&id) = self.order.iter().find(|&&id| {
            self.subtables[id as usize]
                .as_ref()
                .is_some_and(|s| s.mask == *mask)
        }) {
            return id;
        }
        let mut words = [0u8; KEY_WORDS];
        let mut n = 0;
        for w in mask.nonzero_words() {
            words[n] = w as u8;
            n += 1;
        }
        let st = Subtable {
            mask: *mask,
            words,
            n_words: n as u8,
            flows: HashTable::new(),
            hits: 0,
            tables: 0,
            indexes: Indexes::default(),
        };
        let id = match self.subtables.iter().position(Option::is_none) {
            Some(i) => {
                self.subtables[i] = Some(st);
                i as u32
            }
            None => {
                self.subtables.push(Some(st));
                (self.subtables.len() - 1) as u32
            }
        };
        // New subtables go last: established ones keep their rank until the next sort.
        self.order.push(id);
        id
    }

    fn drop_subtable(&mut self, id: u32) {
        self.subtables[id as usize] = None;
        self.order.retain(|&i| i != id);
    }

    /// Removes the megaflow `r` refers to; false when it was already gone.
    pub fn remove(&mut self, r: FlowRef) -> bool {
        if self.get(r).is_none() {
            return false;
        }
        self.remove_slot(r.idx);
        true
    }

    fn remove_slot(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        let Some(mut flow) = slot.flow.take() else {
            return;
        };
        flow.push_stats();
        if flow.tainted {
            self.n_tainted -= 1;
        }
        // Index entries of the megaflow go stale with this version change (see `index`).
        slot.version = slot.version.wrapping_add(1);
        let sid = flow.subtable;
        let st = self.subtables[sid as usize]
            .as_mut()
            .expect("live subtable");
        if let Ok(e) = st.flows.find_entry(flow.hash, |&i| i == idx) {
            e.remove();
        }
        let empty = st.flows.is_empty();
        self.free.push(idx);
        self.n_flows -= 1;
        if empty {
            self.drop_subtable(sid);
        }
    }

    /// Removes every megaflow.
    pub fn flush(&mut self) {
        for i in 0..self.slots.len() as u32 {
            self.remove_slot(i);
        }
        self.tainted.clear();
    }

    /// Removes megaflows unused for `idle_ms` at `now_ms`. Returns how many.
    pub fn expire_idle(&mut self, now_ms: u64, idle_ms: u64) -> usize {
        let doomed: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.flow
                    .as_ref()
                    .is_some_and(|f| now_ms.saturating_sub(f.used_ms) >= idle_ms)
            })
            .map(|(i, _)| i as u32)
            .collect();
        for &i in &doomed {
            self.remove_slot(i);
        }
        doomed.len()
    }

    /// Counts `packets` packets of `bytes` bytes against the megaflow. Only the megaflow's own
    /// counters change here (no shared cache line is written per packet); the rules hear of
    /// it at the next [`MegaflowCache::push_stats`] or when the megaflow goes away.
    #[inline]
    pub fn credit(&mut self, r: FlowRef, packets: u64, bytes: u64, now_ms: u64) {
        let Some(slot) = self.slots.get_mut(r.idx as usize) else {
            return;
        };
        if slot.version != r.version {
            return;
        }
        if let Some(flow) = slot.flow.as_mut() {
            flow.packets += packets;
            flow.bytes += bytes;
            flow.used_ms = now_ms;
        }
    }

    /// Credits the rules of every megaflow with what its packets added since the last push.
    pub fn push_stats(&mut self) {
        for flow in self.slots.iter_mut().filter_map(|s| s.flow.as_mut()) {
            flow.push_stats();
        }
    }

    /// Every installed megaflow with its reference, masked key and mask.
    pub fn iter(&self) -> impl Iterator<Item = (FlowRef, &FlowKey, &FlowMask, &Megaflow)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let flow = s.flow.as_ref()?;
            let st = self.subtables[flow.subtable as usize].as_ref()?;
            Some((
                FlowRef {
                    idx: i as u32,
                    version: s.version,
                },
                &s.key,
                &st.mask,
                flow,
            ))
        })
    }
}

#[cfg(test)]
mod tests;
