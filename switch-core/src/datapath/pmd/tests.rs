//! The PMD's burst stages on in-memory dummy ports, driven without a thread: frames are
//! injected on port 1, one `poll_all` runs them through extract → classify → dispatch, and
//! what each port sent and what the PMD counted is checked. Needs no privileges.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam_channel::{unbounded, Sender};
use flow_table::flow_syntax::{parse_flow, FlowMode};
use flow_table::testpkt::Pkt;
use flow_table::{extract, CacheConfig, FlowKey, RuleTables};
use ports::{DummyHandle, DummyPort, PacketBatch, PoolConfig, Port};

use super::burst::Verdict;
use super::{classify_burst, dispatch_burst, extract_burst, Pmd, PmdConfig, PmdMsg};
use crate::datapath::bridge::{Bridge, BridgeShared};
use crate::datapath::l2::L2Config;
use crate::datapath::mac_table::MacTable;
use crate::datapath::stats::{DropReason, PmdCounters};

/// The PMD clock in these tests (ms).
const NOW: u64 = 1_000;

/// One PMD serving bridge 1, whose ports are dummy ports numbered `port_nos` (port 1 first).
struct Rig {
    pmd: Pmd,
    bridge: Bridge,
    handles: Vec<(u32, DummyHandle)>,
    /// Keeps the PMD's channel open.
    _tx: Sender<PmdMsg>,
}

impl Rig {
    fn new(flows: &[&str], port_nos: &[u32], cache: CacheConfig) -> Rig {
        let mut tables = RuleTables::new();
        for f in flows {
            let spec = parse_flow(f, FlowMode::Add, &|_| None)
                .unwrap_or_else(|e| panic!("{f}: {e}"))
                .to_rule_spec();
            tables.add(spec, 0).unwrap();
        }
        let shared = BridgeShared::new(1, "br0", tables, MacTable::default());
        shared.l2.store(Arc::new(L2Config {
            ports: port_nos.to_vec(),
            ..L2Config::default()
        }));
        let bridge = Arc::new(shared);
        let (tx, rx) = unbounded();
        let cfg = PmdConfig {
            core: None,
            cache,
            pool: PoolConfig {
                n_buffers: 256,
                ..PoolConfig::default()
            },
            megaflow_idle_ms: 10_000,
        };
        let counters = Arc::new(PmdCounters::default());
        let wake = Arc::new(super::Wake::new().unwrap());
        let mut pmd = Pmd::new(0, cfg, rx, wake, vec![tx.clone()], counters).unwrap();
        tx.send(PmdMsg::AddBridge(Arc::clone(&bridge))).unwrap();
        let mut handles = Vec::new();
        for &no in port_nos {
            let mut port = DummyPort::open_instances(&format!("p{no}"), 1).remove(0);
            port.set_port_no(no);
            handles.push((no, port.handle()));
            let port = Box::new(port);
            tx.send(PmdMsg::AddPort {
                bridge: 1,
                port_no: no,
                port,
            })
            .unwrap();
        }
        assert!(pmd.handle_messages());
        Rig {
            pmd,
            bridge,
            handles,
            _tx: tx,
        }
    }

    /// Receives `frames` on port 1 as one burst and runs the PMD's poll over it.
    fn burst(&mut self, frames: Vec<Vec<u8>>) {
        let n = frames.len();
        assert!(n <= ports::BATCH_SIZE);
        self.handles[0].1.receive(frames).unwrap();
        assert_eq!(self.pmd.poll_all(NOW), n);
    }

    /// The keys of the frames port `no` sent, in order.
    fn sent(&self, no: u32) -> Vec<FlowKey> {
        let (_, h) = self.handles.iter().find(|(n, _)| *n == no).unwrap();
        let (frames, lost) = h.take_sent();
        assert_eq!(lost, 0);
        frames.iter().map(|f| extract(f, 0)).collect()
    }

    /// (EMC hits, megaflow hits, upcalls, lost) as the PMD reports them.
    fn lookups(&self) -> (u64, u64, u64, u64) {
        let l = &self.pmd.local;
        (l.emc_hits, l.megaflow_hits, l.upcalls, l.lost)
    }

    /// The same, as the bridge's flow cache counted them: the PMD's come from these, so the
    /// two agree.
    fn cache_lookups(&self) -> (u64, u64, u64, u64) {
        let s = &self.pmd.bridges[0].cache.stats;
        (s.emc_hits, s.megaflow_hits, s.upcalls, s.lost)
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.pmd.local.drops[reason as usize]
    }
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    Pkt::udp4(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        sport,
        dport,
    )
    .build()
}

fn sports(keys: &[FlowKey]) -> Vec<u16> {
    keys.iter().map(|k| k.tp_src).collect()
}

#[test]
fn two_flows_in_one_burst_go_out_in_order_to_their_ports() {
    let mut rig = Rig::new(
        &[
            "priority=10,udp,tp_dst=1,actions=output:2",
            "priority=10,udp,tp_dst=2,actions=output:3",
        ],
        &[1, 2, 3],
        CacheConfig::default(),
    );
    rig.burst(vec![
        udp(11, 1),
        udp(21, 2),
        udp(12, 1),
        udp(22, 2),
        udp(13, 1),
    ]);
    assert_eq!(sports(&rig.sent(2)), [11, 12, 13]);
    assert_eq!(sports(&rig.sent(3)), [21, 22]);
    assert!(rig.sent(1).is_empty());
    assert_eq!(rig.pmd.local.packets, 5);
    assert_eq!(rig.pmd.local.rx_batches, 1);
    // One upcall per flow; the others hit the megaflow (the previous packet's, or found).
    assert_eq!(rig.lookups(), (0, 3, 2, 0));
    assert_eq!(rig.lookups(), rig.cache_lookups());
}

#[test]
fn a_flow_with_actions_beside_a_single_output_flow_each_keep_their_order() {
    let mut rig = Rig::new(
        &[
            "priority=10,udp,tp_dst=1,actions=output:2",
            "priority=10,udp,tp_dst=2,actions=mod_tp_dst:9,output:3",
        ],
        &[1, 2, 3],
        CacheConfig::default(),
    );
    rig.burst(vec![udp(11, 1), udp(21, 2), udp(12, 1), udp(22, 2)]);
    assert_eq!(sports(&rig.sent(2)), [11, 12]);
    let to3 = rig.sent(3);
    assert_eq!(sports(&to3), [21, 22]);
    assert!(to3.iter().all(|k| k.tp_dst == 9));
}

#[test]
fn emc_hits_after_the_first_packets_and_each_is_counted_once() {
    let cache = CacheConfig {
        emc_insert_inv_prob: 1,
        ..CacheConfig::default()
    };
    let mut rig = Rig::new(
        &[
            "priority=20,udp,tp_dst=1,actions=output:2",
            "priority=10,dl_src=02:00:00:00:00:01,actions=output:3",
        ],
        &[1, 2, 3],
        cache,
    );
    // Two megaflows with different masks (the second packet fell through to the rule on
    // dl_src): the EMC is consulted from the next burst on (with one subtable it is skipped,
    // see `FlowCache::begin_burst`).
    rig.burst(vec![udp(11, 1), udp(21, 2)]);
    assert!(rig.pmd.bridges[0].cache.megaflows.n_subtables() > 1);
    assert_eq!(rig.lookups(), (0, 0, 2, 0));
    // Found in the megaflow cache, and entered in the EMC.
    rig.burst(vec![udp(11, 1)]);
    assert_eq!(rig.lookups(), (0, 1, 2, 0));
    // An EMC hit, then repeats of its key: the cache answers them as EMC hits, once each.
    rig.burst(vec![udp(11, 1), udp(11, 1), udp(11, 1)]);
    assert_eq!(rig.lookups(), (3, 1, 2, 0));
    assert_eq!(rig.lookups(), rig.cache_lookups());
    assert_eq!(sports(&rig.sent(2)), [11; 5]);
    assert_eq!(sports(&rig.sent(3)), [21]);
    assert_eq!(rig.pmd.local.packets, 6);
}

#[test]
fn drops_are_counted_with_their_reason_and_charged_to_the_ingress_port() {
    let mut rig = Rig::new(
        &[
            "priority=10,udp,tp_dst=7,actions=drop",
            "priority=5,actions=output:2",
        ],
        &[1, 2],
        CacheConfig::default(),
    );
    // Too short for an Ethernet header.
    let runt = vec![0u8; 10];
    rig.burst(vec![udp(11, 7), runt, udp(12, 1)]);
    assert_eq!(sports(&rig.sent(2)), [12]);
    assert_eq!(rig.drops(DropReason::Policy), 1);
    assert_eq!(rig.drops(DropReason::Malformed), 1);
    let port1 = rig.bridge.drops_of(1).snapshot();
    assert_eq!(port1[DropReason::Policy as usize], 1);
    assert_eq!(port1[DropReason::Malformed as usize], 1);
    // The malformed frame was not looked up.
    assert_eq!(rig.pmd.local.packets, 3);
    assert_eq!(rig.lookups(), (0, 0, 2, 0));
    assert_eq!(rig.pmd.pool.available(), rig.pmd.pool.capacity());
}

#[test]
fn at_the_flow_limit_packets_are_still_forwarded_and_counted_as_lost() {
    let cache = CacheConfig {
        flow_limit: 0,
        ..CacheConfig::default()
    };
    let mut rig = Rig::new(
        &[
            "priority=10,udp,tp_dst=1,actions=mod_tp_dst:5,output:2",
            "priority=10,udp,tp_dst=2,actions=output:2",
            "priority=10,udp,tp_dst=7,actions=drop",
        ],
        &[1, 2],
        cache,
    );
    rig.burst(vec![udp(11, 1), udp(12, 2), udp(13, 7), udp(14, 1)]);
    let sent = rig.sent(2);
    assert_eq!(sports(&sent), [11, 12, 14]);
    assert_eq!(sent[0].tp_dst, 5);
    assert_eq!(sent[1].tp_dst, 2);
    assert_eq!(rig.lookups(), (0, 0, 4, 4));
    assert_eq!(rig.lookups(), rig.cache_lookups());
    assert_eq!(rig.drops(DropReason::Policy), 1);
    assert!(rig.pmd.bridges[0].cache.megaflows.is_empty());
    let credited: u64 = rig
        .bridge
        .tables
        .load()
        .rules()
        .iter()
        .map(|r| r.stats.packets())
        .sum();
    assert_eq!(credited, 4);
}

/// Builds a receive batch of `frames` from the PMD's pool, as port 1 would.
fn batch_of(pmd: &mut Pmd, frames: &[Vec<u8>]) -> Box<PacketBatch> {
    let mut batch = Box::new(PacketBatch::new());
    for f in frames {
        let mut p = pmd.pool.alloc().unwrap();
        assert!(p.set_data(f));
        p.in_port = 1;
        batch.push(p).unwrap();
    }
    batch
}

#[test]
fn the_stages_one_by_one() {
    let mut rig = Rig::new(
        &[
            "priority=10,udp,tp_dst=1,actions=output:2",
            "priority=10,udp,tp_dst=2,actions=mod_tp_dst:9,output:3",
        ],
        &[1, 2, 3],
        CacheConfig::default(),
    );
    let frames = [udp(11, 1), vec![0; 10], udp(21, 2), udp(12, 1)];
    let mut batch = batch_of(&mut rig.pmd, &frames);
    let Pmd {
        bridges,
        burst,
        pool,
        local,
        ..
    } = &mut rig.pmd;
    let br = &mut bridges[0];

    extract_burst(burst, &batch, 1, &mut br.cache);
    assert_eq!(burst.n, 4);
    assert_eq!(burst.valid[..4], [true, false, true, true]);
    assert_eq!(burst.keys[0], extract(&frames[0], 1));
    assert_eq!(burst.keys[2].tp_dst, 2);

    classify_burst(burst, br, 0, &batch, 0, NOW);
    // Port 2 is at index 1: both packets of the first flow stay in the batch for it.
    assert_eq!(burst.dest[..burst.kept], [1, 1]);
    let slow = &burst.slow[..burst.n_slow];
    assert_eq!(slow.len(), 2);
    assert_eq!(slow[0], (1, Verdict::Drop(DropReason::Malformed)));
    assert!(matches!(slow[1], (2, Verdict::Flow(_))));
    // Nothing left the batch yet.
    assert_eq!(batch.iter().count(), 4);

    dispatch_burst(burst, &mut batch, br, pool, local);
    assert!(batch.is_empty());
    assert_eq!(br.ports[1].tx.len(), 2);
    assert_eq!(br.ports[2].tx.len(), 1);
    assert_eq!(local.drops[DropReason::Malformed as usize], 1);
}

#[test]
fn a_burst_for_one_port_is_handed_over_whole() {
    let mut rig = Rig::new(
        &["priority=10,udp,actions=output:2"],
        &[1, 2],
        CacheConfig::default(),
    );
    let frames: Vec<_> = (0..ports::BATCH_SIZE as u16).map(|i| udp(i, 1)).collect();
    let mut batch = batch_of(&mut rig.pmd, &frames);
    let before = &*batch as *const PacketBatch;
    let Pmd {
        bridges,
        burst,
        pool,
        local,
        ..
    } = &mut rig.pmd;
    let br = &mut bridges[0];
    extract_burst(burst, &batch, 1, &mut br.cache);
    classify_burst(burst, br, 0, &batch, 0, NOW);
    dispatch_burst(burst, &mut batch, br, pool, local);
    // The port's transmit batch is now the receive batch itself; the PMD got the empty one.
    assert!(std::ptr::eq(&*br.ports[1].tx, before));
    assert!(batch.is_empty());
    br.ports[1].flush(pool);
    assert_eq!(
        sports(&rig.sent(2)),
        (0..ports::BATCH_SIZE as u16).collect::<Vec<_>>()
    );
}

#[test]
fn the_burst_scratch_is_reused_without_allocating() {
    let mut rig = Rig::new(
        &["priority=10,udp,tp_dst=1,actions=mod_tp_dst:5,output:2"],
        &[1, 2],
        CacheConfig {
            flow_limit: 0,
            ..CacheConfig::default()
        },
    );
    let cap = rig.pmd.burst.uncached.capacity();
    assert!(cap >= ports::BATCH_SIZE);
    let keys = rig.pmd.burst.keys.as_ptr();
    for _ in 0..3 {
        rig.burst((0..ports::BATCH_SIZE as u16).map(|i| udp(i, 1)).collect());
    }
    assert_eq!(rig.pmd.burst.uncached.capacity(), cap);
    assert!(rig.pmd.burst.uncached.is_empty());
    assert_eq!(rig.pmd.burst.keys.as_ptr(), keys);
    assert_eq!(rig.sent(2).len(), 3 * ports::BATCH_SIZE);
}
