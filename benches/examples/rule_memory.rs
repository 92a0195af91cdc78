//! Bytes per installed rule, and what one rule change costs, at a given table size.
//!
//!     cargo run --release -p vswitch-benches --example rule_memory -- [N ...]
//!
//! Installs N rules `priority=100,ip,nw_dst=10.a.b.c,actions=output:2` into fresh
//! `RuleTables` and counts the heap bytes still allocated afterwards (a counting global
//! allocator: the requested sizes, without the allocator's own per-block overhead), then
//! times the control plane's copy-on-write step: clone the tables, add one rule, delete it
//! strictly.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use flow_table::key::ethertype;
use flow_table::{Action, Match, RuleFilter, RuleSpec, RuleTables};

/// The system allocator, counting live bytes and blocks.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the caller's arguments; the
// counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout (caller's contract).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which `System` shares.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn spec(i: u32) -> RuleSpec {
    let m = Match::any()
        .eth_type(ethertype::IPV4)
        .nw_dst(Ipv4Addr::from(0x0a00_0000 + i), 32);
    RuleSpec::new(100, m, vec![Action::Output(2)])
}

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    println!(
        "size_of: Rule {}, Match {}, Action {}, RuleStats {}",
        std::mem::size_of::<flow_table::Rule>(),
        std::mem::size_of::<Match>(),
        std::mem::size_of::<Action>(),
        std::mem::size_of::<flow_table::RuleStats>(),
    );
    for n in sizes {
        let (b0, k0) = (
            LIVE_BYTES.load(Ordering::Relaxed),
            LIVE_BLOCKS.load(Ordering::Relaxed),
        );
        let start = Instant::now();
        let mut t = RuleTables::new();
        t.set_max_rules(usize::MAX);
        for i in 0..n {
            t.add(spec(i), 0).unwrap();
        }
        let build = start.elapsed();
        let bytes = LIVE_BYTES.load(Ordering::Relaxed) - b0;
        let blocks = LIVE_BLOCKS.load(Ordering::Relaxed) - k0;
        println!(
            "{n} rules: {:.1} bytes/rule, {:.2} blocks/rule (built in {build:.2?})",
            bytes as f64 / n as f64,
            blocks as f64 / n as f64,
        );

        // What `Switch::update_rules` does for one add-flow, then one strict del-flows.
        let extra = spec(n);
        let start = Instant::now();
        let mut copy = RuleTables::clone(&t);
        let cloned = start.elapsed();
        copy.add(extra.clone(), 0).unwrap();
        let added = start.elapsed();
        let mut copy = RuleTables::clone(&copy);
        let gone = copy.delete(&RuleFilter::matching(extra.r#match, extra.priority), true);
        let total = start.elapsed();
        assert_eq!(gone.len(), 1);
        assert_eq!(t.len(), n as usize);
        println!("  clone {cloned:.2?}, clone+add {added:.2?}, +clone+strict delete {total:.2?}");
        drop(copy);
        drop(t);
    }
}
