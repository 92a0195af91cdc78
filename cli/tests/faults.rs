//! Fault injection against a real vswitchd: a read-only state directory, `kill -9` in the
//! middle of a 100k-flow `add-flows`, a namespace deleted and a tap removed under ports, and
//! a peer VM (testpmd) killed mid-traffic. After each the daemon still answers, the rest of
//! the switch still forwards, and the saved configuration is whole.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{Daemon, Netns};
use testkit::netns::unique;
use testkit::require::{can_run, serial, Need};

/// Flows of a bridge as `dump-flows` prints them, without counters.
fn flow_count(d: &Daemon, br: &str) -> usize {
    d.ok(&["dump-flows", br])
        .lines()
        .filter(|l| l.contains("actions="))
        .count()
}

/// `dump-flows` without the durations (a failed change that is undone re-creates its rules).
fn flows_text(d: &Daemon, br: &str) -> String {
    d.ok(&["dump-flows", br])
        .split(", ")
        .filter(|f| !f.starts_with("duration="))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A read-only bind mount of a directory, undone on drop.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn new(dir: &std::path::Path) -> ReadOnly {
        let d = dir.to_str().unwrap();
        let ok = Command::new("mount")
            .args(["--bind", d, d])
            .status()
            .unwrap()
            .success()
            && Command::new("mount")
                .args(["-o", "remount,bind,ro", d])
                .status()
                .unwrap()
                .success();
        assert!(ok, "read-only bind mount of {d}");
        ReadOnly(dir.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_state_dir_answers_an_error_and_changes_nothing() {
    let _serial = serial();
    if !can_run(
        "a_read_only_state_dir",
        &[Need::Netns, Need::Tool("mount"), Need::Tool("umount")],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsro");
    d.ok(&["add-br", &br]);
    d.ok(&["add-flow", &br, "priority=5,ip,actions=drop"]);
    let show = d.ok(&["show"]);
    let flows = flows_text(&d, &br);
    let saved = std::fs::read_to_string(d.state.join("state.toml")).unwrap();
    {
        let _ro = ReadOnly::new(&d.state);
        let br2 = unique("vsro");
        for args in [
            vec!["add-br", br2.as_str()],
            vec!["add-flow", &br, "priority=6,ip,actions=drop"],
            vec!["del-flows", &br],
            vec!["add-port", &br, &unique("vsrt"), "type=tap"],
        ] {
            let e = d.fails(&args);
            assert!(
                e.contains("not saved") || e.contains("nothing was changed"),
                "{args:?}: {e}"
            );
        }
        // Deletions of bridges are saved first, so they fail without touching the datapath.
        let e = d.fails(&["del-br", &br]);
        assert!(e.contains("nothing was changed"), "{e}");
        assert_eq!(d.ok(&["show"]), show, "a failed change left a trace");
        assert_eq!(flows_text(&d, &br), flows);
        assert!(!d.ok(&["list-br"]).contains(&br2));
    }
    assert_eq!(
        std::fs::read_to_string(d.state.join("state.toml")).unwrap(),
        saved
    );
    // Writable again: changes are saved again, and a restart restores them.
    d.ok(&["add-flow", &br, "priority=6,ip,actions=drop"]);
    d.kill9();
    d.spawn();
    assert_eq!(flow_count(&d, &br), 3);
    d.ok(&["del-br", &br]);
}

#[test]
fn kill_9_during_a_100k_flow_add_flows_leaves_the_old_or_the_new_config() {
    let _serial = serial();
    if !can_run("kill_9_during_add_flows", &[Need::Netns]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsk9");
    d.ok(&["add-br", &br]);
    let file = dir.path().join("flows.txt");
    let mut text = String::new();
    for i in 0..100_000u32 {
        let [_, a, b, c] = i.to_be_bytes();
        text.push_str(&format!(
            "priority=100,ip,nw_dst=10.{a}.{b}.{c},actions=drop\n"
        ));
    }
    std::fs::write(&file, text).unwrap();
    let old = flow_count(&d, &br);
    let add = |d: &Daemon| {
        Command::new(support::VSWITCHCTL)
            .args(["--url", &format!("http://{}", d.addr), "add-flows", &br])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Once to the end, to time it.
    let t0 = Instant::now();
    assert!(add(&d).wait().unwrap().success());
    let full = t0.elapsed();
    assert_eq!(flow_count(&d, &br), old + 100_000);
    d.ok(&["del-flows", &br, "ip"]);
    let mut outcomes = Vec::new();
    // Kill at moments spread over the request: while it is read, while the flows are
    // installed, while the state file is written, and around the answer.
    for pct in [10u32, 50, 80, 90, 97, 103] {
        let mut client = add(&d);
        std::thread::sleep(full * pct / 100);
        d.kill9();
        let _ = client.wait();
        d.spawn();
        let after = flow_count(&d, &br);
        assert!(
            after == old || after == old + 100_000,
            "after kill -9 at {pct}% of the request: {after} flows, want {old} or {}",
            old + 100_000
        );
        outcomes.push((pct, after == old));
        if after != old {
            d.ok(&["del-flows", &br, "ip"]);
            assert_eq!(flow_count(&d, &br), old);
        }
    }
    eprintln!("kill -9 during add-flows of {full:?}: (at %, old config kept) {outcomes:?}");
    d.ok(&["del-br", &br]);
}

#[test]
fn a_deleted_namespace_and_a_removed_tap_do_not_stop_the_switch() {
    let _serial = serial();
    if !can_run(
        "a_deleted_namespace_and_a_removed_tap",
        &[Need::Netns, Need::Tool("ping")],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsfd");
    d.ok(&["add-br", &br]);
    let (n1, n2) = (Netns::new(), Netns::new());
    let mut n3 = Netns::new();
    for (n, ip) in [
        (&n1, "10.77.0.1/24"),
        (&n2, "10.77.0.2/24"),
        (&n3, "10.77.0.3/24"),
    ] {
        d.ok(&["attach-netns", &br, &n.0, "--ip", ip]);
    }
    let tap = unique("vsft");
    d.ok(&["add-port", &br, &tap, "type=tap"]);
    assert!(n1.ping_until_ok("10.77.0.3"));
    assert!(n1.ping_until_ok("10.77.0.2"));
    // From outside the switch: the namespace goes (taking its veth end, so the pair goes),
    // and the tap is deleted.
    let gone = std::mem::take(&mut n3.0);
    assert!(Command::new("ip")
        .args(["netns", "del", &gone])
        .status()
        .unwrap()
        .success());
    let _ = Command::new("ip").args(["link", "del", &tap]).status();
    // Traffic keeps flowing among the others, for a while, and the daemon keeps answering.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert!(
            n1.ping("10.77.0.2", 2),
            "forwarding stopped after the faults"
        );
        assert!(d.alive(), "vswitchd died: {}", d.log());
        d.ok(&["dump-flows", &br]);
        d.ok(&["pmd-stats-show"]);
    }
    assert!(!n1.ping("10.77.0.3", 1));
    // The broken ports can be removed, and a restart comes back (the vanished ones reported).
    d.ok(&["del-port", &br, &tap]);
    d.kill9();
    d.spawn();
    assert!(
        n1.ping_until_ok("10.77.0.2"),
        "no forwarding after restart: {}",
        d.log()
    );
    d.ok(&["del-br", &br]);
}

/// A VM (testpmd) killed with SIGKILL while it sends through vhost-user ports: the switch keeps
/// forwarding on its kernel path, and a new VM on the same sockets gets traffic through.
#[test]
fn a_peer_vm_killed_mid_traffic_does_not_stop_the_switch() {
    use testkit::testpmd::{self, TestPmd};
    let needs = [Need::Testpmd, Need::Netns, Need::Tool("ping")];
    if !can_run("a_peer_vm_killed_mid_traffic", &needs) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsvk");
    d.ok(&["add-br", &br]);
    let (n1, n2) = (Netns::new(), Netns::new());
    d.ok(&["attach-netns", &br, &n1.0, "--ip", "10.78.0.1/24"]);
    d.ok(&["attach-netns", &br, &n2.0, "--ip", "10.78.0.2/24"]);
    let (a, b) = (testpmd::temp_socket("fka"), testpmd::temp_socket("fkb"));
    let vm = TestPmd::vm_pair(&a, &b, true, 1).spawn_nowait().unwrap();
    for (name, sock) in [("vma", &a), ("vmb", &b)] {
        let path = format!("vhost-server-path={}", sock.display());
        d.ok(&["add-port", &br, name, "type=vhostuserclient", &path]);
    }
    vm.wait_ready(Duration::from_secs(20)).unwrap();
    for p in 0..2 {
        vm.wait_link_up(p, Duration::from_secs(10)).unwrap();
    }
    // Traffic in flight in both directions when the VM dies.
    vm.set_forward_mode("txonly");
    vm.start();
    std::thread::sleep(Duration::from_millis(500));
    let _ = kill(Pid::from_raw(vm.pid() as i32), Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.alive(), "vswitchd died with its VM: {}", d.log());
    assert!(n1.ping_until_ok("10.78.0.2"), "kernel path stopped");
    d.ok(&["pmd-stats-show"]);
    drop(vm);
    // A new VM on the same sockets: the client ports reconnect and traffic flows.
    let vm = TestPmd::vm_pair(&a, &b, true, 1).spawn().unwrap();
    for p in 0..2 {
        vm.wait_link_up(p, Duration::from_secs(15)).unwrap();
    }
    support::probe_until_traffic(&vm, "no traffic with the new VM", || d.log());
    vm.clear_stats();
    vm.start();
    assert_eq!(vm.send_burst(0, 500).unwrap(), 500);
    assert_eq!(vm.wait_rx(1, 500, Duration::from_secs(10)).rx_packets, 500);
    vm.stop();
    d.ok(&["del-br", &br]);
}
