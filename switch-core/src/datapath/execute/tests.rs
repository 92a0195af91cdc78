//! `execute` on in-memory dummy ports: what each port is sent, what is dropped and why, and
//! that no buffer leaks from the pool. Needs no privileges.

use std::net::Ipv4Addr;
use std::sync::Arc;

use flow_table::testpkt::Pkt;
use flow_table::{extract, DpAction, FlowKey, MacAddr, SetField};
use ports::{DummyHandle, DummyPort, Packet, PacketBatch, PacketPool, PoolConfig, Port};

use super::{execute, single_output, PmdPort};
use crate::datapath::port_obs::{PortDrops, PortObs};
use crate::datapath::stats::{DropReason, LocalCounters};
use crate::events::{EventSink, SwitchEvent};

/// A PMD's view of some dummy ports, with its pool and counters.
struct Rig {
    pool: PacketPool,
    ports: Vec<PmdPort>,
    handles: Vec<DummyHandle>,
    local: LocalCounters,
}

impl Rig {
    fn new(port_nos: &[u32], buffers: usize) -> Rig {
        let pool = PacketPool::new(PoolConfig {
            n_buffers: buffers,
            ..PoolConfig::default()
        })
        .unwrap();
        let (mut ports, mut handles) = (Vec::new(), Vec::new());
        for &no in port_nos {
            let mut port = DummyPort::open_instances(&format!("p{no}"), 1).remove(0);
            port.set_port_no(no);
            handles.push(port.handle());
            ports.push(PmdPort {
                port_no: no,
                obs: PortObs::new(Arc::new(PortDrops::default()), port.n_rxq()),
                port: Box::new(port),
                tx: Box::new(PacketBatch::new()),
                empty_polls: 0,
            });
        }
        Rig {
            pool,
            ports,
            handles,
            local: LocalCounters::default(),
        }
    }

    /// `frame` in a pool buffer, as received on port 1.
    fn packet(&mut self, frame: &[u8]) -> Packet {
        let mut p = self.pool.alloc().expect("buffer");
        assert!(p.set_data(frame));
        p.in_port = 1;
        p
    }

    fn execute(&mut self, actions: &[DpAction], frame: &[u8]) {
        let pkt = self.packet(frame);
        let Rig {
            pool, ports, local, ..
        } = self;
        execute(actions, pkt, 1, ports, pool, local, &EventSink::none("br0"));
    }

    /// Flushes every port and returns the keys of what port number `no` sent, in order.
    fn sent(&mut self, no: u32) -> Vec<FlowKey> {
        for p in &mut self.ports {
            p.flush(&mut self.pool);
        }
        let i = self.ports.iter().position(|p| p.port_no == no).unwrap();
        let (frames, lost) = self.handles[i].take_sent();
        assert_eq!(lost, 0);
        frames.iter().map(|f| extract(f, 0)).collect()
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.local.drops[reason as usize]
    }

    /// Every buffer is back in the pool (after `sent`).
    fn no_leak(&self) {
        assert_eq!(self.pool.available(), self.pool.capacity());
    }
}

fn udp(sport: u16) -> Vec<u8> {
    Pkt::udp4(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        sport,
        53,
    )
    .build()
}

#[test]
fn single_output_goes_to_that_port_only() {
    let mut rig = Rig::new(&[1, 2, 3], 16);
    rig.execute(&[DpAction::Output(2)], &udp(7));
    let sent = rig.sent(2);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].tp_src, 7);
    assert!(rig.sent(3).is_empty() && rig.sent(1).is_empty());
    assert_eq!(rig.local.drops, [0; crate::datapath::stats::N_DROP_REASONS]);
    rig.no_leak();
}

#[test]
fn rewrite_then_output_twice_gives_two_different_copies() {
    let mut rig = Rig::new(&[1, 2, 3], 16);
    let actions = [
        DpAction::Set(SetField::TpDst(1001)),
        DpAction::Output(2),
        DpAction::Set(SetField::TpDst(1002)),
        DpAction::Set(SetField::EthDst(MacAddr([2, 0, 0, 0, 0, 0x33]))),
        DpAction::Output(2),
        DpAction::Output(3),
    ];
    rig.execute(&actions, &udp(7));
    let to2 = rig.sent(2);
    assert_eq!(to2.len(), 2, "{to2:?}");
    // The first copy left before the later rewrites: each copy is its own buffer.
    assert_eq!(to2[0].tp_dst, 1001);
    assert_eq!(to2[0].eth_dst, [2, 0, 0, 0, 0, 2]);
    assert_eq!(to2[1].tp_dst, 1002);
    assert_eq!(to2[1].eth_dst, [2, 0, 0, 0, 0, 0x33]);
    let to3 = rig.sent(3);
    assert_eq!(to3.len(), 1);
    assert_eq!(to3[0], to2[1]);
    rig.no_leak();
}

#[test]
fn flood_skips_the_ingress_port() {
    let mut rig = Rig::new(&[1, 2, 3], 16);
    rig.execute(&[DpAction::Flood], &udp(7));
    assert_eq!(
        (rig.sent(1).len(), rig.sent(2).len(), rig.sent(3).len()),
        (0, 1, 1)
    );
    rig.no_leak();
}

#[test]
fn drops_are_counted_with_their_reason() {
    let mut rig = Rig::new(&[1, 2], 16);
    // No such port.
    rig.execute(&[DpAction::Output(9)], &udp(1));
    assert_eq!(rig.drops(DropReason::NoPort), 1);
    // Nothing to flood to but the ingress port.
    let mut alone = Rig::new(&[1], 16);
    alone.execute(&[DpAction::Flood], &udp(1));
    assert_eq!(alone.drops(DropReason::NoPort), 1);
    alone.no_leak();
    // Rewrites without an output.
    rig.execute(&[DpAction::DecTtl], &udp(2));
    assert_eq!(rig.drops(DropReason::Policy), 1);
    // A rewrite the frame cannot take (no VLAN tag to pop).
    rig.execute(&[DpAction::PopVlan, DpAction::Output(2)], &udp(3));
    assert_eq!(rig.drops(DropReason::Malformed), 1);
    assert!(rig.sent(2).is_empty());
    rig.no_leak();
}

#[test]
fn a_copy_without_a_buffer_is_dropped_and_the_last_output_still_goes() {
    // One buffer: the packet itself, none for the copy to port 2.
    let mut rig = Rig::new(&[1, 2, 3], 1);
    rig.execute(&[DpAction::Output(2), DpAction::Output(3)], &udp(7));
    assert_eq!(rig.drops(DropReason::NoBuffer), 1);
    assert_eq!((rig.sent(2).len(), rig.sent(3).len()), (0, 1));
    rig.no_leak();
}

#[test]
fn single_output_is_recognised_only_for_a_port_of_the_bridge() {
    let rig = Rig::new(&[1, 2, 3], 1);
    assert_eq!(single_output(&[DpAction::Output(3)], &rig.ports), Some(2));
    assert_eq!(single_output(&[DpAction::Output(9)], &rig.ports), None);
    assert_eq!(
        single_output(&[DpAction::DecTtl, DpAction::Output(3)], &rig.ports),
        None
    );
    assert_eq!(single_output(&[], &rig.ports), None);
}

fn to_controller(max_len: u16) -> DpAction {
    DpAction::Controller {
        max_len,
        reason: flow_table::PacketInReason::Action,
        table: 3,
        cookie: 0x77,
    }
}

#[test]
fn a_packet_in_carries_the_packet_as_modified_so_far_and_the_actions_go_on() {
    let mut rig = Rig::new(&[1, 2], 16);
    let (tx, rx) = crossbeam_channel::bounded(4);
    let sink = EventSink::new("br0", tx);
    let frame = udp(7);
    let pkt = rig.packet(&frame);
    let actions = [
        DpAction::Set(SetField::TpDst(1001)),
        to_controller(20),
        DpAction::Output(2),
    ];
    execute(
        &actions,
        pkt,
        1,
        &mut rig.ports,
        &mut rig.pool,
        &mut rig.local,
        &sink,
    );
    let Ok(SwitchEvent::PacketIn(pi)) = rx.try_recv() else {
        panic!("no packet-in")
    };
    assert_eq!(&*pi.bridge, "br0");
    assert_eq!((pi.in_port, pi.table, pi.cookie), (1, 3, 0x77));
    assert_eq!(pi.total_len as usize, frame.len());
    // Unbuffered: the whole packet, past max_len, with the rewrite before the action.
    assert_eq!(pi.data.len(), frame.len());
    assert_eq!(pi.data[..20], frame[..20]);
    assert_ne!(pi.data, frame);
    assert_eq!(rig.sent(2).len(), 1, "the output after it still runs");
    // The packet as rewritten; alone, the controller action consumes the packet
    // without a drop.
    let pkt = rig.packet(&frame);
    let actions = [DpAction::Set(SetField::TpDst(1001)), to_controller(65535)];
    execute(
        &actions,
        pkt,
        1,
        &mut rig.ports,
        &mut rig.pool,
        &mut rig.local,
        &sink,
    );
    let Ok(SwitchEvent::PacketIn(pi)) = rx.try_recv() else {
        panic!("no packet-in")
    };
    assert_eq!(pi.data.len(), frame.len());
    assert_eq!(extract(&pi.data, 0).tp_dst, 1001);
    assert_eq!(rig.local.drops, [0; crate::datapath::stats::N_DROP_REASONS]);
    rig.no_leak();
}

#[test]
fn a_full_event_queue_drops_the_packet_in_only() {
    let mut rig = Rig::new(&[1, 2], 16);
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let sink = EventSink::new("br0", tx);
    for _ in 0..3 {
        let pkt = rig.packet(&udp(7));
        let actions = [to_controller(64), DpAction::Output(2)];
        execute(
            &actions,
            pkt,
            1,
            &mut rig.ports,
            &mut rig.pool,
            &mut rig.local,
            &sink,
        );
    }
    assert_eq!(rig.drops(DropReason::ControllerQueue), 2);
    assert_eq!(rig.sent(2).len(), 3);
    rig.no_leak();
}
