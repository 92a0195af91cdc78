//! The per-thread lookup pipeline: exact-match cache, then megaflow cache, then upcall.
//!
//! A PMD thread owns one [`FlowCache`]. For each packet it asks [`FlowCache::lookup`] for a
//! decision; rule changes reach it as [`RuleChange`] lists for [`FlowCache::invalidate`].

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
    /// Counters.
    pub stats: CacheStats,
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

    /// Like [`FlowCache::lookup_with`], trying first the megaflow `hint` (the previous packet's
    /// in the burst, see [`FlowHint`]): a burst of one megaflow's packets then costs one tuple
    /// space search, and the others a masked compare of the mask's few words. A hinted hit is
    /// counted as a megaflow hit (`Hit::Megaflow`).
    #[inline]
    pub fn lookup_hinted(
        &mut self,
        key: &FlowKey,
        hash: u32,
        hint: Option<&FlowHint>,
        now_ms: u64,
        upcall: impl FnOnce(&FlowKey) -> Translation,
    ) -> Decision {
        if let Some(h) = hint {
            if h.matches(key) {
                debug_assert!(self.megaflows.matches(h.flow(), key), "stale hint");
                self.stats.megaflow_hits += 1;
                return Decision::Cached(h.flow(), Hit::Megaflow);
            }
        }
        self.lookup_with(key, hash, now_ms, upcall)
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
