//! Real OpenFlow controllers driving a bridge of namespace hosts:
//!
//! - `oskenlearning_*`: an os-ken learning switch (`controllers/learning_switch.py`, in the
//!   manner of simple_switch_13) learns the hosts, installs priority-1 flows, and the switch
//!   forwards by them after the controller stops. Secure mode keeps the flows and nothing
//!   else: a pair whose learnt flows are deleted stays cut off. Standalone mode falls back to
//!   NORMAL: that pair talks again.
//! - `faucet_two_vlans*`: faucet 1.10 with two VLANs (`controllers/faucet.yaml.in`): hosts
//!   ping within a VLAN, not across.
//! - `controller_reconnects*`: the controller stops and starts again on the same port; the
//!   switch reconnects by itself and the new controller learns a new host.
//!
//! Each scenario runs against vswitch (the plain test names; switch side: `vswitchctl
//! set-controller/get-controller/del-controller/set-fail-mode`) and against a private Open
//! vSwitch (`*_on_ovs`), which validates the controllers and the harness.
//!
//! Needs root (namespaces), `ovs-ofctl` (to read the flows), os-ken (Debian's
//! python3-os-ken: `/usr/bin/osken-manager`, or `$OSKEN_MANAGER`) and faucet (a virtual
//! environment, `/opt/vswitch-tests/faucet-venv` or `$FAUCET_VENV`); `scripts/test.sh`
//! installs them. Each scenario prints `TIMING: <test>: <seconds>`; with `CONTROLLERS_KEEP`
//! set, its directory (controller output, faucet's log, the switch's logs: Open vSwitch's has
//! every OpenFlow message at debug level) is kept and named.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::controllers::{faucet_venv, osken_manager, ovs_missing, Controller, Kind, Switch};
use support::free_port;
use testkit::netns::Host;
use testkit::require::{can_run, serial, Need};

/// How long a switch may take to reach a controller (OVS backs off up to 8 s by default).
const CONNECT: Duration = Duration::from_secs(20);
/// How long a standalone switch may take to fall back to NORMAL once its controller is gone
/// (Open vSwitch: three inactivity-probe intervals, 15 s with the default and minimum 5 s).
const FALLBACK: Duration = Duration::from_secs(30);
/// How long, after its controller stopped, a secure switch is watched for not falling back.
const SECURE_HOLDS: Duration = Duration::from_secs(18);

/// The test's directory (switch state, controller output, logs), kept when
/// `CONTROLLERS_KEEP` is set, to read them afterwards.
fn workdir(test: &str) -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix(&format!("{test}-"))
        .tempdir()
        .unwrap();
    if std::env::var_os("CONTROLLERS_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("{test}: keeping {}", dir.path().display());
    }
    dir
}

/// Whether `test` can run against `kind` here; prints `SKIPPED: ...` when not.
fn runnable(test: &str, kind: Kind) -> bool {
    if !can_run(
        test,
        &[Need::Netns, Need::Tool("ping"), Need::Tool("ovs-ofctl")],
    ) {
        return false;
    }
    if kind == Kind::Ovs {
        if let Some(why) = ovs_missing() {
            eprintln!("SKIPPED: {test}: {why}");
            return false;
        }
    }
    true
}

fn need_osken(test: &str) -> Option<PathBuf> {
    let m = osken_manager();
    if m.is_none() {
        eprintln!(
            "SKIPPED: {test}: no /usr/bin/osken-manager (package python3-os-ken) and no $OSKEN_MANAGER"
        );
    }
    m
}

/// `n` hosts 10.`net`.0.1.. on ports 1..n of the switch.
fn hosts(sw: &Switch, net: u8, n: u32) -> Vec<Host> {
    (1..=n)
        .map(|i| {
            let (h, veth) = Host::veth(&format!("10.{net}.0.{i}"));
            sw.add_port(&veth, i);
            h
        })
        .collect()
}

fn ping_ok(sw: &Switch, ctl: &Controller, a: &Host, b: &Host, limit: Duration, why: &str) {
    assert!(
        a.ping_until_ok(&b.ip, limit),
        "{} -> {}: no reply within {limit:?} ({why})\n--- flows:\n{}\n{}",
        a.ip,
        b.ip,
        sw.ofctl("dump-flows", &[]),
        ctl.report()
    );
}

fn ping_fails(sw: &Switch, a: &Host, b: &Host, why: &str) {
    assert!(
        !a.ping(&b.ip, 3) && !a.ping_until_ok(&b.ip, Duration::from_millis(1500)),
        "{} -> {}: got a reply ({why})\n--- flows:\n{}",
        a.ip,
        b.ip,
        sw.ofctl("dump-flows", &[])
    );
}

/// The priority-1 flow the learning switch installs for frames from `a` (port `pa`) to `b`
/// (port `pb`), as `ovs-ofctl -O OpenFlow13 dump-flows` prints it.
fn learnt(pa: u32, a: &Host, pb: u32, b: &Host) -> (String, String) {
    (
        format!(
            "priority=1,in_port={pa},dl_src={},dl_dst={}",
            a.mac(),
            b.mac()
        ),
        format!("actions=output:{pb}"),
    )
}

fn has_flow(dump: &str, (m, a): &(String, String)) -> bool {
    dump.lines()
        .any(|l| l.contains(m.as_str()) && l.contains(a.as_str()))
}

/// Starts the switch, 3 hosts, the learning switch, and connects them in `mode`; every pair
/// pings and every ordered pair has its learnt flow. Returns them for the rest of the test.
fn learning_setup(
    kind: Kind,
    mode: &str,
    manager: &std::path::Path,
    dir: &std::path::Path,
) -> (Switch, Vec<Host>, Controller) {
    let sw = Switch::start(kind, dir);
    let h = hosts(&sw, 221, 3);
    sw.set_fail_mode(mode);
    sw.ofctl("del-flows", &[]);
    let port = free_port();
    let ctl = Controller::learning_switch(manager, dir, port, "osken");
    let target = format!("tcp:127.0.0.1:{port}");
    sw.set_controller(&target);
    let got = sw.get_controller();
    assert!(got.contains(&target), "get-controller: {got}");
    let dpid = sw.dpid();
    ctl.wait_lines("the switch's FEATURES_REPLY", 1, CONNECT, |l| {
        l == format!("SWITCH dpid={dpid:016x}")
    });
    // The table-miss flow arrives.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dump = sw.ofctl("dump-flows", &[]);
        if dump
            .lines()
            .any(|l| l.contains("priority=0 actions=CONTROLLER:65535"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no table-miss flow:\n{dump}");
        std::thread::sleep(Duration::from_millis(50));
    }
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        ping_ok(
            &sw,
            &ctl,
            &h[a],
            &h[b],
            Duration::from_secs(10),
            "controller up",
        );
        ping_ok(
            &sw,
            &ctl,
            &h[b],
            &h[a],
            Duration::from_secs(10),
            "controller up",
        );
    }
    // Every ordered pair has its learnt flow, and the controller said it installed it.
    ctl.wait_lines("six FLOW lines", 6, Duration::from_secs(5), |l| {
        l.starts_with("FLOW ")
    });
    let dump = sw.ofctl("dump-flows", &[]);
    for a in 0..3 {
        for b in 0..3 {
            if a != b {
                let f = learnt(a as u32 + 1, &h[a], b as u32 + 1, &h[b]);
                assert!(has_flow(&dump, &f), "no learnt flow {f:?}:\n{dump}");
            }
        }
    }
    (sw, h, ctl)
}

/// Secure mode: flows outlive the controller; nothing else forwards.
fn oskenlearning_secure_on(kind: Kind, test: &str) {
    let _serial = serial();
    if !runnable(test, kind) {
        return;
    }
    let Some(manager) = need_osken(test) else {
        return;
    };
    let t0 = Instant::now();
    let dir = workdir(test);
    let (sw, h, mut ctl) = learning_setup(kind, "secure", &manager, dir.path());

    ctl.stop();
    let stopped = Instant::now();
    for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)] {
        assert!(
            h[a].ping(&h[b].ip, 2),
            "{} -> {} after the controller stopped (secure keeps flows)\n--- flows:\n{}",
            h[a].ip,
            h[b].ip,
            sw.ofctl("dump-flows", &[])
        );
    }
    // h1 <-> h2 loses its learnt flows; h1 <-> h3 keeps them.
    for (a, b) in [(0, 1), (1, 0)] {
        let m = format!("in_port={},dl_dst={}", a + 1, h[b].mac());
        sw.ofctl("del-flows", &[&m]);
    }
    while stopped.elapsed() < SECURE_HOLDS {
        ping_fails(&sw, &h[0], &h[1], "secure mode, controller gone, no flow");
    }
    assert!(h[0].ping(&h[2].ip, 2), "h1 -> h3 still has its flows");
    let dump = sw.ofctl("dump-flows", &[]);
    assert!(
        has_flow(&dump, &learnt(1, &h[0], 3, &h[2])),
        "learnt flow gone:\n{dump}"
    );
    eprintln!("TIMING: {test}: {:.1} s", t0.elapsed().as_secs_f64());
}

/// Standalone mode: once the controller is gone the switch falls back to NORMAL, so even a
/// pair without learnt flows talks.
fn oskenlearning_standalone_on(kind: Kind, test: &str) {
    let _serial = serial();
    if !runnable(test, kind) {
        return;
    }
    let Some(manager) = need_osken(test) else {
        return;
    };
    let t0 = Instant::now();
    let dir = workdir(test);
    let (sw, h, mut ctl) = learning_setup(kind, "standalone", &manager, dir.path());

    ctl.stop();
    let stopped = Instant::now();
    for (a, b) in [(0, 1), (1, 0)] {
        let m = format!("in_port={},dl_dst={}", a + 1, h[b].mac());
        sw.ofctl("del-flows", &[&m]);
    }
    ping_ok(
        &sw,
        &ctl,
        &h[0],
        &h[1],
        FALLBACK,
        "standalone mode falls back to NORMAL",
    );
    eprintln!(
        "{test}: fell back {:.1} s after the controller stopped",
        stopped.elapsed().as_secs_f64()
    );
    assert!(h[1].ping(&h[0].ip, 2) && h[0].ping(&h[2].ip, 2) && h[2].ping(&h[1].ip, 2));
    eprintln!("TIMING: {test}: {:.1} s", t0.elapsed().as_secs_f64());
}

/// faucet, VLAN 100 on ports 1-2, VLAN 200 on ports 3-4.
fn faucet_two_vlans_on(kind: Kind, test: &str) {
    let _serial = serial();
    if !runnable(test, kind) {
        return;
    }
    let Some(venv) = faucet_venv() else {
        eprintln!(
            "SKIPPED: {test}: no faucet (scripts/test.sh installs it in /opt/vswitch-tests/faucet-venv; or set $FAUCET_VENV)"
        );
        return;
    };
    let t0 = Instant::now();
    let dir = workdir(test);
    let sw = Switch::start(kind, dir.path());
    // One subnet for all four: what separates them is the VLAN, not routing.
    let h = hosts(&sw, 222, 4);
    sw.set_fail_mode("secure");
    sw.ofctl("del-flows", &[]);
    let dpid = sw.dpid();
    let template =
        std::fs::read_to_string(support::controllers::assets().join("faucet.yaml.in")).unwrap();
    let config = dir.path().join("faucet.yaml");
    std::fs::write(&config, template.replace("@DP_ID@", &format!("0x{dpid:x}"))).unwrap();
    let port = free_port();
    let ctl = Controller::faucet(&venv, dir.path(), &config, port);
    sw.set_controller(&format!("tcp:127.0.0.1:{port}"));
    let tag = format!("(0x{dpid:x})");
    ctl.wait_lines("faucet configures the datapath", 1, CONNECT, |l| {
        l.contains(&tag) && l.contains("Cold start configuring DP")
    });

    let limit = Duration::from_secs(20);
    ping_ok(&sw, &ctl, &h[0], &h[1], limit, "both in VLAN 100");
    ping_ok(&sw, &ctl, &h[1], &h[0], limit, "both in VLAN 100");
    ping_ok(&sw, &ctl, &h[2], &h[3], limit, "both in VLAN 200");
    ping_ok(&sw, &ctl, &h[3], &h[2], limit, "both in VLAN 200");
    for (a, b) in [(0, 2), (2, 0), (1, 3), (3, 0)] {
        ping_fails(&sw, &h[a], &h[b], "VLAN 100 and VLAN 200");
    }
    // faucet learnt the hosts in their VLANs, and its pipeline is in the switch.
    ctl.wait_lines("faucet learns 4 hosts", 4, Duration::from_secs(5), |l| {
        l.contains(&tag) && l.contains("L2 learned on Port")
    });
    let dump = sw.ofctl("dump-flows", &[]);
    for want in [
        "push_vlan:0x8100,set_field:4196->vlan_vid",
        "push_vlan:0x8100,set_field:4296->vlan_vid",
        "dl_vlan=100",
        "dl_vlan=200",
    ] {
        assert!(dump.contains(want), "no {want} in the flows:\n{dump}");
    }
    if kind == Kind::Ovs {
        report_messages(test, &sw);
    }
    eprintln!("TIMING: {test}: {:.1} s", t0.elapsed().as_secs_f64());
}

/// Prints how many of each OpenFlow message the controller sent (Open vSwitch's debug log):
/// what a switch must answer.
fn report_messages(test: &str, sw: &Switch) {
    let mut count = std::collections::BTreeMap::<String, usize>::new();
    for m in sw.received_messages() {
        let kind = m.split(" (").next().unwrap_or("").to_owned();
        *count.entry(kind).or_default() += 1;
    }
    eprintln!("{test}: the controller sent {count:?}");
}

/// The controller stops and comes back on the same port: the switch reconnects by itself.
fn controller_reconnects_on(kind: Kind, test: &str) {
    let _serial = serial();
    if !runnable(test, kind) {
        return;
    }
    let Some(manager) = need_osken(test) else {
        return;
    };
    let t0 = Instant::now();
    let dir = workdir(test);
    let sw = Switch::start(kind, dir.path());
    let h = hosts(&sw, 223, 3);
    sw.set_fail_mode("secure");
    sw.ofctl("del-flows", &[]);
    let port = free_port();
    let target = format!("tcp:127.0.0.1:{port}");
    let mut first = Controller::learning_switch(&manager, dir.path(), port, "osken-1");
    sw.set_controller(&target);
    let dpid = sw.dpid();
    let hello = format!("SWITCH dpid={dpid:016x}");
    first.wait_lines("first connection", 1, CONNECT, |l| l == hello);
    ping_ok(
        &sw,
        &first,
        &h[0],
        &h[1],
        Duration::from_secs(10),
        "first controller",
    );
    first.wait_lines("first controller's flows", 2, Duration::from_secs(5), |l| {
        l.starts_with("FLOW ")
    });
    first.stop();
    // Let the switch notice and back off a few times.
    std::thread::sleep(Duration::from_secs(3));
    let restarted = Instant::now();
    let second = Controller::learning_switch(&manager, dir.path(), port, "osken-2");
    second.wait_lines("the switch reconnects by itself", 1, CONNECT, |l| {
        l == hello
    });
    eprintln!(
        "{test}: reconnected {:.1} s after the controller came back",
        restarted.elapsed().as_secs_f64()
    );
    let got = sw.get_controller();
    assert!(got.contains(&target), "get-controller: {got}");
    // The new controller is in charge: a host it has never seen gets through it.
    ping_ok(
        &sw,
        &second,
        &h[0],
        &h[2],
        Duration::from_secs(10),
        "second controller",
    );
    let mac3 = h[2].mac();
    second.wait_lines(
        "the second controller learns h3",
        1,
        Duration::from_secs(5),
        |l| l.starts_with("LEARN ") && l.contains(&format!("mac={mac3} port=3")),
    );
    // And it lets go: without a controller the bridge has no connection target.
    sw.del_controller();
    let got = sw.get_controller();
    assert!(!got.contains(&target), "get-controller after del: {got}");
    eprintln!("TIMING: {test}: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn oskenlearning_secure() {
    oskenlearning_secure_on(Kind::Vswitch, "oskenlearning_secure");
}

#[test]
fn oskenlearning_secure_on_ovs() {
    oskenlearning_secure_on(Kind::Ovs, "oskenlearning_secure_on_ovs");
}

#[test]
fn oskenlearning_standalone() {
    oskenlearning_standalone_on(Kind::Vswitch, "oskenlearning_standalone");
}

#[test]
fn oskenlearning_standalone_on_ovs() {
    oskenlearning_standalone_on(Kind::Ovs, "oskenlearning_standalone_on_ovs");
}

#[test]
fn faucet_two_vlans() {
    faucet_two_vlans_on(Kind::Vswitch, "faucet_two_vlans");
}

#[test]
fn faucet_two_vlans_on_ovs() {
    faucet_two_vlans_on(Kind::Ovs, "faucet_two_vlans_on_ovs");
}

#[test]
fn controller_reconnects() {
    controller_reconnects_on(Kind::Vswitch, "controller_reconnects");
}

#[test]
fn controller_reconnects_on_ovs() {
    controller_reconnects_on(Kind::Ovs, "controller_reconnects_on_ovs");
}
