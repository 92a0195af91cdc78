//! The per-thread lookup pipeline: exact-match cache, then megaflow cache, then upcall.
//!
//! A PMD thread owns one [`FlowCache`]. For each packet it asks [`FlowCache::lookup`] for a
//! decision; rule changes reach it as [`RuleChange`] lists for [`FlowCache::invalidate`].
//!
//! A datapath that works burst by burst calls [`FlowCache::begin_burst`], then
//! [`FlowCache::lookup_next`] for each packet in order with one [`BurstCursor`]: the cache then
//! also takes the shortcuts that consecutive packets of one flow allow, and counts every
//! decision once, in [`FlowCache::stats`], whichever way it was reached.

use crate::actions::DpAction;
use crate::emc::{self, Emc};
use crate::emc_gate::EmcGate;
use crate::hint::FlowHint;
use crate::key::FlowKey;
use crate::megaflow::{self, FlowRef, MegaflowCache};
use crate::tables::{RuleChange, RuleTables};
use crate::upcall::{translate, Translation};

/// Sizes and policies of a [`FlowCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// EMC slots.
    pub emc_entries: usize,
    /// EMC insertion probability is 1 / this; 0 disables the EMC.
    pub emc_insert_inv_prob: u32,
    /// Megaflow limit.
    pub flow_limit: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            emc_entries: emc::DEFAULT_ENTRIES,
            emc_insert_inv_prob: emc::DEFAULT_INSERT_INV_PROB,
            flow_limit: megaflow::DEFAULT_FLOW_LIMIT,
        }
    }
}

/// Where a decision came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// Exact-match cache.
    Emc,
    /// Megaflow cache.
    Megaflow,
    /// Rule tables (a megaflow was installed).
    Upcall,
}

/// The decision for one packet.
#[derive(Debug)]
pub enum Decision {
    /// Actions are those of this installed megaflow.
    Cached(FlowRef, Hit),
    /// The megaflow could not be installed (flow limit): actions come with the translation.
    Uncached(Box<Translation>),
}

/// Counters of a [`FlowCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Decisions from the EMC.
    pub emc_hits: u64,
    /// Decisions from the megaflow cache.
    pub megaflow_hits: u64,
    /// Decisions from the rule tables.
    pub upcalls: u64,
    /// Upcalls whose megaflow could not be installed.
    pub lost: u64,
    /// Megaflows removed by invalidation.
    pub invalidated: u64,
}

/// EMC + megaflow cache + upcall, owned by one thread.
pub struct FlowCache {
    /// The exact-match cache.
    pub emc: Emc,
    /// The megaflow cache.
    pub megaflows: MegaflowCache,
    /// Whether the EMC is worth consulting, burst by burst.
    pub gate: EmcGate,
    /// Whether the current burst's lookups consult the EMC.
    emc_on: bool,
    /// Counters: each decision counted once, shortcuts included.
    pub stats: CacheStats,
}

/// What the lookups of one burst carry from one packet to the next: the previous decision,
/// which only [`FlowCache::lookup_next`] reads and writes.
///
/// Make a new one (`BurstCursor::default()`) for each burst and let it go with the burst:
/// megaflows may be removed between bursts, which would leave it pointing at one that is gone.
/// The caller holds it, rather than the cache, so that it cannot outlive its burst, and lives
/// on the caller's stack while the burst runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct BurstCursor {
    /// The megaflow of the previous packet when the EMC gave it (a repeat of its key is
    /// answered without probing the EMC again).
    emc_repeat: Option<FlowRef>,
    /// The match of the previous cached decision's megaflow, tried first for the next key.
    hint: Option<FlowHint>,
}

impl Default for FlowCache {
    fn default() -> Self {
        FlowCache::new(CacheConfig::default())
    }
}

impl FlowCache {
    /// An empty cache.
    pub fn new(cfg: CacheConfig) -> FlowCache {
        FlowCache {
            emc: Emc::new(cfg.emc_entries, cfg.emc_insert_inv_prob),
            megaflows: MegaflowCache::new(cfg.flow_limit),
            gate: EmcGate::new(),
            emc_on: true,
            stats: CacheStats::default(),
        }
    }

    /// Starts a received burst; returns whether its lookups consult the EMC. When they do not,
    /// the caller need not hash the keys (the hash passed to the lookups is then ignored).
    ///
    /// With at most one megaflow subtable the EMC is skipped: that lookup hashes only the
    /// masked words and probes one table, which costs less than hashing the whole key for the
    /// EMC. Otherwise the [`EmcGate`] decides from the EMC's recent hit rate.
    #[inline]
    pub fn begin_burst(&mut self) -> bool {
        self.emc_on = self.megaflows.n_subtables() > 1 && self.gate.begin_burst();
        self.emc_on
    }

    /// Decides what to do with a packet whose key is `key` (and `key.hash()` is `hash`),
    /// translating through `tables` on a miss.
    #[inline]
    pub fn lookup(
        &mut self,
        key: &FlowKey,
        hash: u32,
        tables: &RuleTables,
        now_ms: u64,
    ) -> Decision {
        self.lookup_with(key, hash, now_ms, |k| translate(tables, k))
    }

    /// Like [`FlowCache::lookup`], with the caller's upcall: `upcall` is called on a miss and
    /// its translation installed. The bridge uses it to resolve `normal` with its MAC table
    /// before the megaflow is cached.
    #[inline]
    pub fn lookup_with(
        &mut self,
        key: &FlowKey,
        hash: u32,
        now_ms: u64,
        upcall: impl FnOnce(&FlowKey) -> Translation,
    ) -> Decision {
        let use_emc = self.emc_on;
        if use_emc {
            let hit = self
                .emc
                .lookup(key, hash)
                .filter(|&r| self.megaflows.get(r).is_some());
            self.gate.record(hit.is_some());
            if let Some(r) = hit {
                self.stats.emc_hits += 1;
                return Decision::Cached(r, Hit::Emc);
            }
        }
        if let Some(r) = self.megaflows.lookup(key) {
            self.stats.megaflow_hits += 1;
            if use_emc {
                self.emc.insert(key, hash, r);
            }
            return Decision::Cached(r, Hit::Megaflow);
        }
        self.stats.upcalls += 1;
        self.install(key, hash, upcall(key), now_ms)
    }

    /// The decision for the next packet of the burst begun by [`FlowCache::begin_burst`], whose
    /// lookups share `cursor`; `prev_key` is the key of the packet just before it when that one
    /// was looked up too (`None` for the first packet, or after a packet that was not looked
    /// up). Otherwise as [`FlowCache::lookup_with`], with two shortcuts for the runs of one
    /// flow that bursts mostly carry:
    ///
    /// - a key equal to `prev_key` whose previous decision came from the EMC gets the same
    ///   decision, as an EMC hit, without probing the EMC again (the EMC would answer the same:
    ///   nothing is removed during a burst);
    /// - otherwise the megaflow of the previous cached decision is tried first (see
    ///   [`FlowHint`]; counted as a megaflow hit), so a run of one megaflow costs one tuple
    ///   space search, then a masked compare per packet.
    ///
    /// No megaflow may be removed between `begin_burst` and the burst's last lookup.
    #[inline]
    pub fn lookup_next(
        &mut self,
        cursor: &mut BurstCursor,
        key: &FlowKey,
        prev_key: Option<&FlowKey>,
        hash: u32,
        now_ms: u64,
        upcall: impl FnOnce(&FlowKey) -> Translation,
    ) -> Decision {
        if let (Some(r), Some(prev)) = (cursor.emc_repeat, prev_key) {
            if prev == key {
                self.stats.emc_hits += 1;
                return Decision::Cached(r, Hit::Emc);
            }
        }
        if let Some(h) = &cursor.hint {
            if h.matches(key) {
                debug_assert!(self.megaflows.matches(h.flow(), key), "stale hint");
                self.stats.megaflow_hits += 1;
                cursor.emc_repeat = None;
                return Decision::Cached(h.flow(), Hit::Megaflow);
            }
        }
        let d = self.lookup_with(key, hash, now_ms, upcall);
        match d {
            Decision::Cached(r, hit) => {
                cursor.emc_repeat = (hit == Hit::Emc).then_some(r);
                // Copied out only when the run of one megaflow changes.
                if cursor.hint.as_ref().map(FlowHint::flow) != Some(r) {
                    cursor.hint = self.megaflows.hint(r);
                }
            }
            // The hint stays: the flow limit does not change which megaflows are installed.
            Decision::Uncached(_) => cursor.emc_repeat = None,
        }
        d
    }

    #[cold]
    fn install(&mut self, key: &FlowKey, hash: u32, x: Translation, now_ms: u64) -> Decision {
        match self.megaflows.insert(key, &x, now_ms) {
            Ok(r) => {
                if self.emc_on {
                    self.emc.insert(key, hash, r);
                }
                Decision::Cached(r, Hit::Upcall)
            }
            Err(_) => {
                self.stats.lost += 1;
                Decision::Uncached(Box::new(x))
            }
        }
    }

    /// The actions of a decision.
    #[inline]
    pub fn actions<'a>(&'a self, d: &'a Decision) -> &'a [DpAction] {
        match d {
            Decision::Cached(r, _) => self.megaflows.get(*r).map_or(&[], |f| &f.actions),
            Decision::Uncached(x) => &x.actions,
        }
    }

    /// Applies rule changes: removes every megaflow they may affect (EMC entries pointing at
    /// them stop resolving).
    pub fn invalidate(&mut self, changes: &[RuleChange]) {
        self.stats.invalidated += self.megaflows.invalidate(changes) as u64;
    }

    /// Empties both caches.
    pub fn flush(&mut self) {
        self.megaflows.flush();
        self.emc.clear();
    }
}

#[cfg(test)]
mod tests;
