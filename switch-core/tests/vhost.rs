//! VMs on the switch: dpdk-testpmd's virtio-user ports play the VMs' virtio-net devices,
//! connected to the bridge's vhost-user ports. Frames from one testpmd port cross the bridge to
//! the other, counted at every step, in both socket roles; the VM restarts, the port goes away
//! under traffic, and several queue pairs spread over two PMD threads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flow_table::{Action, Match, RuleSpec};
use switch_core::{PortConfig, Switch, SwitchConfig};
use testkit::require::{can_run, serial, Need};
use testkit::testpmd::{self, TestPmd};

const LINK: Duration = Duration::from_secs(10);

fn switch(pmds: usize) -> Switch {
    Switch::start(SwitchConfig {
        pmd_cores: vec![None; pmds],
        internal_ports: false,
        ..SwitchConfig::default()
    })
    .expect("switch starts")
}

fn vhost(socket: &Path, client: bool) -> PortConfig {
    PortConfig::VhostUser {
        socket: socket.to_path_buf(),
        client,
        mtu_request: None,
    }
}

/// The "VM": two virtio-user ports, A and B, counting what they receive.
fn vm(a: &Path, b: &Path, listen: bool, queues: u16) -> testpmd::TestPmdBuilder {
    TestPmd::vm_pair(a, b, listen, queues)
}

fn links_up(tp: &TestPmd) {
    for p in 0..tp.num_ports() {
        tp.wait_link_up(p, LINK).unwrap();
    }
}

/// A bridge with vhost-user ports 1 (A) and 2 (B).
fn bridge(sw: &Switch, a: &Path, b: &Path, client: bool) -> String {
    let br = format!("vsvh{}", std::process::id() % 100_000);
    sw.add_bridge(&br).unwrap();
    assert_eq!(sw.add_port(&br, "vha", vhost(a, client), None).unwrap(), 1);
    assert_eq!(sw.add_port(&br, "vhb", vhost(b, client), None).unwrap(), 2);
    br
}

/// Sends `n` 64-byte frames A→B and B→A; every one must arrive, whole, and be counted by the
/// switch's ports.
fn exchange(sw: &Switch, br: &str, vm: &TestPmd, n: u64) {
    let before: Vec<_> = sw.ports(br).unwrap().iter().map(|p| p.stats).collect();
    vm.clear_stats();
    vm.start();
    assert_eq!(vm.send_burst(0, n).unwrap(), n);
    let got = vm.wait_rx(1, n, Duration::from_secs(10));
    assert_eq!(got.rx_packets, n, "A→B arrived: {got:?}");
    assert_eq!(got.rx_bytes, 64 * n);
    assert_eq!(vm.send_burst(1, n).unwrap(), n);
    let got = vm.wait_rx(0, n, Duration::from_secs(10));
    assert_eq!(got.rx_packets, n, "B→A arrived: {got:?}");
    assert_eq!(got.rx_errors, 0);
    vm.stop();
    let after: Vec<_> = sw.ports(br).unwrap().iter().map(|p| p.stats).collect();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.rx_packets - b.rx_packets, n, "switch rx {a:?}");
        assert_eq!(a.tx_packets - b.tx_packets, n, "switch tx {a:?}");
        assert_eq!(a.rx_bytes - b.rx_bytes, 64 * n);
        assert_eq!(a.tx_dropped, b.tx_dropped);
    }
}

fn sockets(tag: &str) -> (PathBuf, PathBuf) {
    (
        testpmd::temp_socket(&format!("{tag}a")),
        testpmd::temp_socket(&format!("{tag}b")),
    )
}

#[test]
fn vm_traffic_crosses_a_bridge_with_server_ports() {
    if !can_run("vm_traffic_server_ports", &[Need::Testpmd]) {
        return;
    }
    let _serial = serial();
    let (a, b) = sockets("s");
    let sw = switch(1);
    let br = bridge(&sw, &a, &b, false);
    let vm = vm(&a, &b, false, 1).spawn().unwrap();
    links_up(&vm);
    // NORMAL: the first frames flood (to the only other port), then both MACs are learned.
    exchange(&sw, &br, &vm, 1000);
    let fdb = sw.fdb(&br).unwrap();
    assert_eq!(fdb.len(), 2, "{fdb:?}");
    // The decisions the PMD cached: NORMAL resolved to an output per destination MAC. (The
    // A→B one, flooded before B was learned, went when B's address was learned.)
    let mf = sw.megaflows(&br).unwrap();
    assert!(
        mf.iter().any(|m| m.packets == 1000
            && m.actions == [flow_table::DpAction::Output(1)]
            && m.r#match.to_string().contains("dl_dst=02:00:00:00:00:0a")),
        "{mf:?}"
    );
    // An explicit rule, and the counters of the rule.
    sw.add_flow(
        &br,
        RuleSpec::new(10, Match::any().in_port(1), vec![Action::Output(2)]),
    )
    .unwrap();
    exchange(&sw, &br, &vm, 500);
    let rule = sw
        .flows(&br)
        .unwrap()
        .into_iter()
        .find(|r| r.priority == 10)
        .unwrap();
    assert_eq!(rule.stats.packets(), 500);
    drop(vm);
    sw.del_bridge(&br).unwrap();
    assert!(
        !a.exists() && !b.exists(),
        "server sockets removed with the ports"
    );
}

#[test]
fn vm_traffic_crosses_a_bridge_with_client_ports_and_survives_a_vm_restart() {
    if !can_run("vm_traffic_client_ports", &[Need::Testpmd]) {
        return;
    }
    let _serial = serial();
    let (a, b) = sockets("c");
    let sw = switch(1);
    // The ports exist before the VM: they keep trying to connect.
    let br = bridge(&sw, &a, &b, true);
    let vm1 = vm(&a, &b, true, 1).spawn().unwrap();
    links_up(&vm1);
    exchange(&sw, &br, &vm1, 1000);
    // The VM is killed outright, then started again on the same sockets.
    // SAFETY: plain kill(2) on the child testpmd's pid.
    unsafe { libc::kill(vm1.pid() as i32, libc::SIGKILL) };
    drop(vm1);
    let vm2 = vm(&a, &b, true, 1).spawn().unwrap();
    links_up(&vm2);
    exchange(&sw, &br, &vm2, 1000);
}

#[test]
fn deleting_a_port_under_traffic_leaves_the_rest_running() {
    if !can_run("vhost_port_deleted_under_traffic", &[Need::Testpmd]) {
        return;
    }
    let _serial = serial();
    let (a, b) = sockets("d");
    let sw = switch(1);
    let br = bridge(&sw, &a, &b, false);
    let vm = vm(&a, &b, false, 1).spawn().unwrap();
    links_up(&vm);
    // Continuous traffic from A (and B) into the switch.
    vm.set_forward_mode("txonly");
    vm.start();
    std::thread::sleep(Duration::from_millis(300));
    let rx = sw.ports(&br).unwrap()[0].stats.rx_packets;
    assert!(rx > 1000, "traffic flows: {rx}");
    sw.del_port(&br, "vha").unwrap();
    assert!(!a.exists(), "the socket goes with the port");
    // The VM sees its link go down; the switch goes on serving B.
    vm.wait_link(0, false, LINK).unwrap();
    vm.stop();
    vm.set_forward_mode("rxonly");
    let ports = sw.ports(&br).unwrap();
    assert_eq!(ports.len(), 1);
    let start = Instant::now();
    let rx_b = ports[0].stats.rx_packets;
    vm.start();
    assert_eq!(vm.send_burst(1, 100).unwrap(), 100);
    vm.stop();
    while sw.ports(&br).unwrap()[0].stats.rx_packets < rx_b + 100 {
        assert!(start.elapsed() < Duration::from_secs(5), "B stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn queue_pairs_spread_over_two_pmds() {
    if !can_run("vhost_multiqueue", &[Need::Testpmd]) {
        return;
    }
    let _serial = serial();
    let (a, b) = sockets("m");
    let sw = switch(2);
    let br = bridge(&sw, &a, &b, false);
    // Both PMDs poll each port (pair 0 on one, pair 1 on the other).
    let rows = sw.rxqs();
    assert_eq!(rows.iter().filter(|r| r.n_rxq > 0).count(), 4, "{rows:?}");
    let vm = vm(&a, &b, false, 2).spawn().unwrap();
    links_up(&vm);
    sw.clear_pmd_stats().unwrap();
    exchange(&sw, &br, &vm, 1000);
    let per_pmd: Vec<u64> = sw.pmd_stats().iter().map(|s| s.packets).collect();
    assert!(
        per_pmd.iter().all(|&p| p >= 500),
        "each PMD served its queue pair: {per_pmd:?}"
    );
}
