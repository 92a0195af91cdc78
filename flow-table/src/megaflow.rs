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
//! Tainted megaflows (see [`crate::upcall`]) are removed on any change.

use std::sync::Arc;

use hashbrown::HashTable;

use crate::actions::DpAction;
use crate::hash::hash_masked;
use crate::hint::FlowHint;
use crate::key::{FlowKey, FlowMask, KEY_WORDS};
use crate::rule::Rule;
use crate::tables::RuleChange;
use crate::upcall::{table_bit, Translation};

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

struct Subtable {
    mask: FlowMask,
    /// Indexes of the non-zero words of `mask`: the only words hashed and compared.
    words: [u8; KEY_WORDS],
    n_words: u8,
    /// Slot indexes, hashed by masked key.
    flows: HashTable<u32>,
    hits: u64,
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
        let masked = key.masked(&x.mask);
        let hash = hash_masked(masked.words(), st.mask.words(), st.words());
        let slots = &self.slots;
        if let Some(&i) = st.flows.find(hash, |&i| slots[i as usize].key == masked) {
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
        self.n_flows += 1;
        Ok(FlowRef {
            idx,
            version: self.slots[idx as usize].version,
        })
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

    /// Removes every megaflow whose decision the rule changes may alter. Returns how many.
    pub fn invalidate(&mut self, changes: &[RuleChange]) -> usize {
        if changes.is_empty() {
            return 0;
        }
        let mut doomed = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(flow) = &slot.flow else { continue };
            let mask = &self.subtables[flow.subtable as usize]
                .as_ref()
                .expect("live subtable")
                .mask;
            let hit = flow.tainted
                || changes.iter().any(|c| {
                    flow.tables & table_bit(c.table) != 0 && c.r#match.overlaps(&slot.key, mask)
                });
            if hit {
                doomed.push(i as u32);
            }
        }
        for &i in &doomed {
            self.remove_slot(i);
        }
        doomed.len()
    }

    /// Removes every megaflow.
    pub fn flush(&mut self) {
        for i in 0..self.slots.len() as u32 {
            self.remove_slot(i);
        }
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
mod tests {
    use super::*;
    use crate::actions::Action;
    use crate::key::ethertype;
    use crate::matches::Match;
    use crate::rule::RuleSpec;
    use crate::tables::RuleTables;
    use crate::upcall::translate;
    use std::net::Ipv4Addr;

    fn key(in_port: u32, dst: [u8; 4], tp_dst: u16) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = in_port;
        k.eth_type = ethertype::IPV4;
        k.nw_proto = 17;
        k.nw_dst = u32::from(Ipv4Addr::from(dst));
        k.tp_dst = tp_dst;
        k
    }

    fn tables() -> RuleTables {
        let ip = Match::any().eth_type(ethertype::IPV4);
        let mut t = RuleTables::new();
        t.add(RuleSpec::new(1, Match::any(), vec![Action::Output(9)]), 0)
            .unwrap();
        t.add(
            RuleSpec::new(
                10,
                ip.nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8),
                vec![Action::Output(2)],
            ),
            0,
        )
        .unwrap();
        t
    }

    #[test]
    fn insert_lookup_remove() {
        let t = tables();
        let mut c = MegaflowCache::default();
        let k = key(1, [10, 1, 2, 3], 53);
        assert!(c.lookup(&k).is_none());
        let x = translate(&t, &k);
        let r = c.insert(&k, &x, 0).unwrap();
        assert_eq!(c.len(), 1);
        // Another packet of the same megaflow (different host and port) hits it.
        let k2 = key(1, [10, 9, 9, 9], 80);
        assert_eq!(c.lookup(&k2), Some(r));
        assert_eq!(&*c.get(r).unwrap().actions, &[DpAction::Output(2)]);
        // A different in_port does not.
        assert!(c.lookup(&key(2, [10, 1, 2, 3], 53)).is_none());
        assert!(c.remove(r));
        assert!(c.get(r).is_none(), "stale references stop resolving");
        assert!(c.lookup(&k2).is_none());
        assert_eq!(c.n_subtables(), 0);
    }

    /// A cache holding the megaflows of two keys of port 1 that the rules tell apart: the
    /// tables, the cache, the keys and their megaflows.
    fn two_megaflows() -> (
        RuleTables,
        MegaflowCache,
        FlowKey,
        FlowRef,
        FlowKey,
        FlowRef,
    ) {
        let t = tables();
        let mut c = MegaflowCache::default();
        let a = key(1, [10, 1, 2, 3], 53);
        let ra = c.insert(&a, &translate(&t, &a), 0).unwrap();
        let other = key(1, [192, 168, 0, 1], 53);
        let ro = c.insert(&other, &translate(&t, &other), 0).unwrap();
        (t, c, a, ra, other, ro)
    }

    #[test]
    fn matches_answers_as_lookup_does_and_stops_once_removed() {
        let (t, mut c, a, ra, other, ro) = two_megaflows();
        // Same megaflow (bits outside its mask differ): matches, as lookup finds it.
        let a2 = key(1, [10, 9, 9, 9], 80);
        assert_eq!(c.lookup(&a2), Some(ra));
        assert!(c.matches(ra, &a2));
        // A key of another megaflow, or one on another port, does not match.
        assert!(!c.matches(ra, &other));
        assert!(c.matches(ro, &other));
        assert!(!c.matches(ra, &key(2, [10, 1, 2, 3], 53)));
        assert!(!c.matches(FlowRef::NONE, &a));
        // Removed: the stale reference never matches, even when its slot is reused.
        assert!(c.remove(ra));
        assert!(!c.matches(ra, &a2));
        let rb = c.insert(&a, &translate(&t, &a), 0).unwrap();
        assert!(!c.matches(ra, &a2));
        assert!(c.matches(rb, &a2));
    }

    #[test]
    fn a_hint_matches_as_the_cache_does() {
        let (_, mut c, a, ra, other, ro) = two_megaflows();
        let (ha, ho) = (c.hint(ra).unwrap(), c.hint(ro).unwrap());
        assert_eq!((ha.flow(), ho.flow()), (ra, ro));
        let keys = [
            a,
            other,
            key(1, [10, 9, 9, 9], 80),
            key(2, [10, 1, 2, 3], 53),
            key(1, [192, 168, 7, 7], 22),
        ];
        for k in &keys {
            assert_eq!(ha.matches(k), c.matches(ra, k), "{k:?}");
            assert_eq!(ho.matches(k), c.matches(ro, k), "{k:?}");
        }
        assert!(ha.matches(&keys[2]) && !ha.matches(&keys[1]) && !ha.matches(&keys[3]));
        assert!(c.remove(ra));
        assert!(c.hint(ra).is_none(), "no hint for a removed megaflow");
        assert!(c.hint(FlowRef::NONE).is_none());
    }

    #[test]
    fn flow_limit() {
        let t = tables();
        let mut c = MegaflowCache::new(2);
        for p in 1..=2 {
            let k = key(p, [10, 0, 0, 1], 1);
            c.insert(&k, &translate(&t, &k), 0).unwrap();
        }
        let k = key(3, [10, 0, 0, 1], 1);
        assert_eq!(c.insert(&k, &translate(&t, &k), 0), Err(InsertError::Full));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn targeted_invalidation_keeps_unrelated_megaflows() {
        let mut t = tables();
        let mut c = MegaflowCache::default();
        let a = key(1, [10, 1, 2, 3], 53);
        let b = key(1, [192, 168, 0, 1], 53);
        let ra = c.insert(&a, &translate(&t, &a), 0).unwrap();
        let rb = c.insert(&b, &translate(&t, &b), 0).unwrap();
        let ip = Match::any().eth_type(ethertype::IPV4);
        let ch = t
            .add(
                RuleSpec::new(20, ip.nw_dst(Ipv4Addr::new(10, 1, 0, 0), 16), vec![]),
                0,
            )
            .unwrap();
        assert_eq!(c.invalidate(&ch), 1);
        assert!(c.get(ra).is_none());
        assert!(c.get(rb).is_some());
        // Rules in a table the megaflow never consulted do not touch it.
        let ch = t
            .add(RuleSpec::new(5, Match::any(), vec![]).in_table(3), 0)
            .unwrap();
        assert_eq!(c.invalidate(&ch), 0);
    }

    #[test]
    fn credit_counts_flow_and_rules_and_idle_expiry() {
        let t = tables();
        let mut c = MegaflowCache::default();
        let k = key(1, [10, 1, 2, 3], 53);
        let x = translate(&t, &k);
        let r = c.insert(&k, &x, 100).unwrap();
        c.credit(r, 3, 180, 200);
        assert_eq!(c.get(r).unwrap().packets, 3);
        assert_eq!(
            x.rules[0].stats.packets(),
            0,
            "rules hear of it at the next push"
        );
        c.push_stats();
        c.push_stats();
        assert_eq!(x.rules[0].stats.packets(), 3);
        assert_eq!(x.rules[0].stats.last_used_ms(), 200);
        c.credit(r, 1, 60, 300);
        assert_eq!(c.expire_idle(1_000, 1_000), 0);
        assert_eq!(c.expire_idle(1_300, 1_000), 1);
        assert!(c.is_empty());
        assert_eq!(
            x.rules[0].stats.packets(),
            4,
            "a removed megaflow pushes what it had"
        );
    }

    #[test]
    fn slots_and_subtables_are_reused() {
        let t = tables();
        let mut c = MegaflowCache::default();
        for round in 0..3 {
            let k = key(1, [10, 1, 2, round], 53);
            let r = c.insert(&k, &translate(&t, &k), 0).unwrap();
            assert!(c.remove(r));
        }
        assert_eq!(c.slots.len(), 1);
        assert_eq!(c.subtables.len(), 1);
    }
}
