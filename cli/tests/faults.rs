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

/// Every file of a directory with its contents.
fn files(dir: &std::path::Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    all.sort();
    all
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
    let saved = files(&d.state);
    let config = d.saved();
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
        files(&d.state),
        saved,
        "a refused change left a trace on disk"
    );
    assert_eq!(d.saved(), config);
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

/// Four clients add flows one request at a time while the daemon is killed with `kill -9`:
/// after a restart every flow whose request was answered is there, and nothing else but the
/// requests in flight at the kill.
#[test]
fn kill_9_under_concurrent_single_changes_loses_no_acknowledged_change() {
    let _serial = serial();
    if !can_run("kill_9_under_concurrent_changes", &[Need::Netns]) {
        return;
    }
    for sync in ["batch", "always"] {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Daemon::start(dir.path(), "", &format!("[state]\nsync = \"{sync}\"\n"));
        let br = unique("vsjc");
        d.ok(&["add-br", &br]);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let addr = d.addr.clone();
        let acked: Vec<Vec<u32>> = std::thread::scope(|s| {
            let clients: Vec<_> = (0..4u32)
                .map(|c| {
                    let (addr, br, stop) = (&addr, &br, &stop);
                    s.spawn(move || {
                        let mut ok = Vec::new();
                        for i in 0.. {
                            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                                break;
                            }
                            let Ok(conn) = std::net::TcpStream::connect(addr) else {
                                break;
                            };
                            let body = format!(
                                "{{\"flow\":\"priority=10,ip,nw_dst=10.{c}.{}.{},actions=drop\"}}",
                                i >> 8,
                                i & 255
                            );
                            let (status, _) =
                                support::http(conn, "POST", &format!("/bridges/{br}/flows"), &body);
                            if status != 201 {
                                break;
                            }
                            ok.push(i);
                        }
                        ok
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(1500));
            d.kill9();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            clients.into_iter().map(|c| c.join().unwrap()).collect()
        });
        d.spawn();
        let flows = d.ok(&["dump-flows", &br]);
        let n_acked: usize = acked.iter().map(Vec::len).sum();
        assert!(
            n_acked > 20,
            "{sync}: only {n_acked} changes answered before the kill"
        );
        for (c, ids) in acked.iter().enumerate() {
            for i in ids {
                let m = format!("nw_dst=10.{c}.{}.{} ", i >> 8, i & 255);
                assert!(flows.contains(&m), "{sync}: acknowledged {m} lost");
            }
        }
        let restored = flow_count(&d, &br) - 1; // the default NORMAL rule
        assert!(
            restored >= n_acked && restored <= n_acked + 4,
            "{sync}: {restored} flows restored, {n_acked} acknowledged"
        );
        eprintln!("sync={sync}: {n_acked} acknowledged changes in 1.5 s, all restored");
        d.ok(&["del-br", &br]);
    }
}

/// A journal whose last record was cut short (a crash in the middle of a write): the daemon
/// starts with every whole record, cuts the torn one off, and appends after it.
#[test]
fn a_torn_last_journal_record_is_dropped_and_appends_go_on() {
    let _serial = serial();
    if !can_run("a_torn_last_journal_record", &[Need::Netns]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsjt");
    d.ok(&["add-br", &br]);
    d.ok(&["add-flow", &br, "priority=5,ip,actions=drop"]);
    d.kill9();
    let journal = d.state.join("journal.0");
    let whole = std::fs::read(&journal).unwrap();
    let torn = b"0badc0de {\"op\":\"add\",\"bridge\":\"x\",\"flo";
    std::fs::write(&journal, [whole.as_slice(), torn].concat()).unwrap();
    d.spawn();
    assert_eq!(flow_count(&d, &br), 2);
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        whole,
        "the torn record is cut off"
    );
    d.ok(&["add-flow", &br, "priority=6,ip,actions=drop"]);
    d.kill9();
    d.spawn();
    assert_eq!(flow_count(&d, &br), 3);
    // Damage before the last record is not a crash: the daemon refuses to start and says where.
    d.kill9();
    let mut text = std::fs::read(&journal).unwrap();
    text[3] ^= 1;
    std::fs::write(&journal, &text).unwrap();
    let o = Command::new(support::VSWITCHD)
        .arg("--config")
        .arg(&d.config)
        .arg("--state-dir")
        .arg(&d.state)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("journal.0 line 1"), "{err}");
}

/// A journal past its threshold is folded into a new snapshot while the daemon runs; the
/// old journal goes and a restart restores the same flows from the snapshot.
#[test]
fn compaction_folds_the_journal_into_a_snapshot() {
    let _serial = serial();
    if !can_run("compaction", &[Need::Netns]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsjs");
    d.ok(&["add-br", &br]);
    let file = dir.path().join("flows.txt");
    let text: String = (0..100_000u32)
        .map(|i| {
            let [_, a, b, c] = i.to_be_bytes();
            format!("priority=100,ip,nw_dst=10.{a}.{b}.{c},actions=drop\n")
        })
        .collect();
    std::fs::write(&file, text).unwrap();
    d.ok(&["add-flows", &br, file.to_str().unwrap()]);
    // The 5 MB record passes the 4 MiB threshold: the next change starts the compaction.
    d.ok(&["add-flow", &br, "priority=7,arp,actions=drop"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.state.join("journal.0").exists() || !d.state.join("state.toml").exists() {
        assert!(Instant::now() < deadline, "no compaction");
        std::thread::sleep(Duration::from_millis(50));
    }
    let snapshot = std::fs::read_to_string(d.state.join("state.toml")).unwrap();
    assert!(snapshot.contains("journal = 1"), "{}", &snapshot[..200]);
    assert!(snapshot.contains("nw_dst=10.1.134.159"));
    d.ok(&[
        "del-flows",
        &br,
        "priority=100,ip,nw_dst=10.0.0.7",
        "--strict",
    ]);
    let before = d.ok(&["dump-config"]);
    d.kill9();
    d.spawn();
    assert_eq!(flow_count(&d, &br), 100_001);
    assert_eq!(d.ok(&["dump-config"]), before);
}
