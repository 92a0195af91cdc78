//! Stage 2 of a burst: decide what each packet gets, from the flow cache (EMC, megaflows,
//! upcall on a miss), and answer an armed packet trace.
//!
//! The cache takes the shortcuts that runs of one flow allow (`FlowCache::lookup_next`); this
//! stage takes the ones that concern what happens next: a run of one megaflow is credited
//! once when it ends, and what its packets get (a single output port, actions to run, or a
//! drop) is worked out once when it starts.

use flow_table::cache::BurstCursor;
use flow_table::key::FlowKey;
use flow_table::{CacheStats, Decision, FlowCache, FlowRef, Hit};
use ports::PacketBatch;

use super::burst::{BurstScratch, Verdict};
use super::PmdBridge;
use crate::datapath::bridge::Bridge;
use crate::datapath::execute::{single_output, PmdPort};
use crate::datapath::port_obs::PacketTrace;
use crate::datapath::stats::{DropReason, LocalCounters};

/// Decides a verdict for each packet of the burst `extract_burst` left in `s` (received on
/// port index `p` of bridge `br`, by PMD `pmd`), credits the megaflows and rules their packets
/// hit, and answers the port's armed trace if a packet matches it. Nothing is sent or freed
/// here: `batch` is only read.
#[inline]
pub(super) fn classify_burst(
    s: &mut BurstScratch,
    br: &mut PmdBridge,
    p: usize,
    batch: &PacketBatch,
    pmd: usize,
    now: u64,
) {
    let PmdBridge {
        shared,
        cache,
        ports,
        learned,
        ..
    } = br;
    // Counts of `s.dest` and `s.slow` in use, kept in registers for the loop (through `s` they
    // would be a load and a store per packet, each waiting for the last).
    let (mut kept, mut n_slow) = (0, 0);
    // What the cache carries from packet to packet within this burst.
    let mut cursor = BurstCursor::default();
    // One branch per packet while no trace is armed.
    let mut tracing = ports[p].obs.trace.is_some();
    // The current run of one megaflow: its packets and bytes, credited when the run ends, and
    // the verdict its packets get.
    let mut run = (FlowRef::NONE, 0u64, 0u64);
    let mut run_verdict = Verdict::Drop(DropReason::Policy);
    for i in 0..s.n {
        if !s.valid[i] {
            s.slow[n_slow] = (i as u8, Verdict::Drop(DropReason::Malformed));
            n_slow += 1;
            continue;
        }
        let Some(len) = batch.get(i).map(|p| p.len() as u64) else {
            continue;
        };
        let key = &s.keys[i];
        // The cache may reuse the previous packet's decision only if it made one.
        let prev_key = (i > 0 && s.valid[i - 1]).then(|| &s.keys[i - 1]);
        let d = cache.lookup_next(&mut cursor, key, prev_key, s.hashes[i], now, |k| {
            shared.upcall(k, now, learned)
        });
        if tracing
            && trace_one(
                pmd,
                shared,
                key,
                &d,
                cache,
                ports,
                p,
                batch.get(i).map_or(&[][..], |f| f.data()),
                now,
            )
        {
            tracing = false;
        }
        let v = match &d {
            Decision::Cached(r, hit) => {
                if *r != run.0 {
                    cache.megaflows.credit(run.0, run.1, run.2, now);
                    run = (*r, 0, 0);
                    run_verdict = verdict(*r, *hit, cache, ports);
                }
                run.1 += 1;
                run.2 += len;
                run_verdict
            }
            Decision::Uncached(x) => {
                for rule in &x.rules {
                    rule.stats.credit(1, len, now);
                }
                if x.actions.is_empty() {
                    Verdict::Drop(drop_reason(&d, cache))
                } else {
                    Verdict::Uncached(s.uncached.len() as u8)
                }
            }
        };
        if let (Verdict::Uncached(_), Decision::Uncached(x)) = (v, d) {
            s.uncached.push(*x);
        }
        if let Verdict::Port(to) = v {
            s.dest[kept] = to;
            kept += 1;
        } else {
            s.slow[n_slow] = (i as u8, v);
            n_slow += 1;
        }
    }
    cache.megaflows.credit(run.0, run.1, run.2, now);
    s.kept = kept;
    s.n_slow = n_slow;
}

/// What the packets of megaflow `r` (found as `hit` says) get: a single output port of this
/// bridge, the megaflow's actions, or a drop with its reason when there are none.
#[inline]
fn verdict(r: FlowRef, hit: Hit, cache: &FlowCache, ports: &[PmdPort]) -> Verdict {
    let d = Decision::Cached(r, hit);
    let actions = cache.actions(&d);
    if let Some(to) = single_output(actions, ports) {
        Verdict::Port(to)
    } else if actions.is_empty() {
        Verdict::Drop(drop_reason(&d, cache))
    } else {
        Verdict::Flow(r)
    }
}

/// Adds to the PMD's counters the decisions `cache` counted since `before` (a copy of its
/// counters taken before the burst). The cache counts each decision once, shortcuts
/// included; the PMD's totals (what `pmd-stats-show` reports) follow from it, a burst at a
/// time, rather than being counted a second time per packet.
#[inline]
pub(super) fn add_lookups(local: &mut LocalCounters, before: &CacheStats, after: &CacheStats) {
    local.emc_hits += after.emc_hits - before.emc_hits;
    local.megaflow_hits += after.megaflow_hits - before.megaflow_hits;
    local.upcalls += after.upcalls - before.upcalls;
    local.lost += after.lost - before.lost;
}

/// Why a decision with no actions drops: the translation gave up (resubmit loop, too many
/// lookups), NORMAL had nowhere to send (the destination was learnt on the ingress port), or
/// policy (a rule, or no rule, said drop). Asked only for drops.
#[cold]
fn drop_reason(d: &Decision, cache: &FlowCache) -> DropReason {
    let (failed, normal) = match d {
        Decision::Cached(r, _) => cache
            .megaflows
            .get(*r)
            .map_or((false, false), |m| (m.failed, m.normal)),
        Decision::Uncached(x) => (x.error.is_some(), x.normal),
    };
    if failed {
        DropReason::UpcallFailed
    } else if normal {
        DropReason::NoPort
    } else {
        DropReason::Policy
    }
}

/// Answers an armed packet trace when `key` matches its filter; true when it fired (the trace
/// is then disarmed). Runs only while a trace is armed on the port.
#[cold]
#[allow(clippy::too_many_arguments)]
fn trace_one(
    pmd: usize,
    shared: &Bridge,
    key: &FlowKey,
    d: &Decision,
    cache: &FlowCache,
    ports: &mut [PmdPort],
    p: usize,
    frame: &[u8],
    now: u64,
) -> bool {
    let Some(arm) = &ports[p].obs.trace else {
        return false;
    };
    if !arm.filter.matches(key) {
        return false;
    }
    let trace = PacketTrace {
        pmd,
        len: frame.len(),
        key: *key,
        hit: match d {
            Decision::Cached(_, hit) => *hit,
            Decision::Uncached(_) => Hit::Upcall,
        },
        actions: cache.actions(d).to_vec(),
        report: crate::datapath::trace::trace(shared, key, Some(frame), now),
    };
    let _ = arm.reply.try_send(trace);
    ports[p].obs.trace = None;
    true
}
