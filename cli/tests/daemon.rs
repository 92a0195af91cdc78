//! The daemon and its client for real: `vswitchd` runs as a process, `vswitchctl` drives it,
//! namespaces ping each other through it, and restarts (clean and `kill -9`) lose nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::netns::{unique, Host};
use testkit::require::{can_run, serial, Need};

mod support;
use support::{Daemon, Netns, VSWITCHD};

#[test]
fn vswitchctl_builds_a_bridge_that_forwards() {
    let _serial = serial();
    if !can_run(
        "vswitchctl_builds_a_bridge_that_forwards",
        &[Need::Netns, Need::Tool("ping")],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", "");
    let (h1, v1) = Host::veth("10.211.0.1");
    let (h2, v2) = Host::veth("10.211.0.2");
    let br = unique("vsbr");
    d.ok(&["add-br", &br]);
    d.ok(&["add-port", &br, &v1, "type=system", "mode=afpacket"]);
    d.ok(&["add-port", &br, &v2, "mode=afpacket"]);
    assert_eq!(d.ok(&["list-br"]), format!("{br}\n"));
    assert_eq!(d.ok(&["list-ports", &br]), format!("{v1}\n{v2}\n"));
    let show = d.ok(&["show"]);
    assert!(
        show.contains(&format!("Bridge {br}")) && show.contains(&format!("Port {v2}")),
        "{show}"
    );

    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    d.ok(&[
        "add-flow",
        &br,
        &format!("priority=100,ip,in_port={v1},actions=drop"),
    ]);
    assert!(!h1.ping(&h2.ip, 1));
    let flows = d.ok(&["dump-flows", &br]);
    assert!(flows.contains("n_packets=1"), "{flows}");
    d.ok(&["del-flows", &br, "priority=100,ip,in_port=1", "--strict"]);
    assert!(h1.ping(&h2.ip, 2));

    let ports = d.ok(&["dump-ports", &br]);
    assert!(ports.contains("OFPST_PORT reply: 3 ports"), "{ports}");
    let fdb = d.ok(&["fdb-show", &br]);
    assert!(fdb.lines().count() >= 3, "{fdb}");
    let pmd = d.ok(&["pmd-stats-show"]);
    assert!(pmd.contains("packets received:"), "{pmd}");
    d.ok(&["pmd-stats-clear"]);

    // Errors are clear and change nothing.
    let o = d.ctl(&["add-flow", &br, "priority=5,nw_dts=1.2.3.4,actions=drop"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nw_dts"), "{err}");
    let o = d.ctl(&["add-port", "nobr", "x"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no bridge named 'nobr'"));
    let flows_file = dir.path().join("flows.txt");
    std::fs::write(
        &flows_file,
        "# comment\npriority=7,arp,actions=normal\n\npriority=8,udp,tp_dst=53,actions=drop\n",
    )
    .unwrap();
    d.ok(&["add-flows", &br, flows_file.to_str().unwrap()]);
    assert_eq!(d.ok(&["dump-flows", &br]).lines().count(), 3);
}

#[test]
fn restarts_and_kill_9_lose_nothing() {
    let _serial = serial();
    if !can_run("restarts_and_kill_9_lose_nothing", &[Need::Netns]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsbr");
    let tap = unique("vsct");
    d.ok(&["add-br", &br]);
    d.ok(&["add-port", &br, &tap, "type=tap", "ofport_request=7"]);
    d.ok(&[
        "add-flow",
        &br,
        "table=0,priority=50,ip,nw_dst=10.9.0.0/16,actions=output:7",
    ]);
    d.ok(&[
        "add-flow",
        &br,
        "priority=40,cookie=0x99,tcp,tp_dst=22,actions=drop",
    ]);
    let strip = |s: String| -> Vec<String> {
        // Counters and durations change across restarts; the rules must not.
        s.lines()
            .map(|l| {
                l.split(", ")
                    .filter(|f| {
                        !f.contains("duration=")
                            && !f.contains("n_packets")
                            && !f.contains("n_bytes")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect()
    };
    let flows = strip(d.ok(&["dump-flows", &br]));
    let show = d.ok(&["show"]);

    d.kill9();
    d.spawn();
    assert_eq!(
        strip(d.ok(&["dump-flows", &br])),
        flows,
        "kill -9 lost flows"
    );
    assert_eq!(d.ok(&["show"]), show, "kill -9 lost bridges or ports");
    assert!(d.ok(&["dump-ports", &br, "7"]).contains(&tap));

    // A clean stop removes the taps it made, then a restart brings them back.
    assert!(d.terminate().success());
    assert!(
        !Path::new(&format!("/sys/class/net/{br}")).exists(),
        "internal port left behind"
    );
    assert!(
        !Path::new(&format!("/sys/class/net/{tap}")).exists(),
        "tap left behind"
    );
    d.spawn();
    assert_eq!(strip(d.ok(&["dump-flows", &br])), flows);
    assert!(Path::new(&format!("/sys/class/net/{tap}")).exists());
}

#[test]
fn a_broken_state_file_stops_the_daemon_and_is_kept() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let broken = "[[bridges]]\nname = \"br0\"\nflows = [\"priority=0 actions=NORMAL\"\n";
    std::fs::write(state.join("state.toml"), broken).unwrap();
    let o = Command::new(VSWITCHD)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line"), "{err}");
    assert_eq!(
        std::fs::read_to_string(state.join("state.toml")).unwrap(),
        broken
    );

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[datapath]\npmd_cores = \"one\"\n").unwrap();
    let o = Command::new(VSWITCHD)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pmd_cores"));
}

#[test]
fn a_vanished_interface_does_not_stop_a_restart() {
    let _serial = serial();
    if !can_run(
        "a_vanished_interface_does_not_stop_a_restart",
        &[Need::Netns],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsbr");
    let (host, v) = Host::veth("10.212.0.1");
    d.ok(&["add-br", &br]);
    d.ok(&["add-port", &br, &v, "mode=afpacket"]);
    d.ok(&[
        "add-flow",
        &br,
        &format!("priority=9,in_port={v},actions=drop"),
    ]);
    d.kill9();
    drop(host); // the namespace goes, and the veth with it
    d.spawn();
    let flows = d.ok(&["dump-flows", &br]);
    assert!(flows.contains("in_port=1"), "{flows}");
    // The port stays configured, so it comes back when the interface does.
    let state = d.saved();
    assert!(state.contains(&v), "{state}");
}

/// vswitchd restarted (SIGTERM, then `kill -9`) under VMs that keep running: its
/// `vhostuserclient` ports come back from the state file and reconnect to the VMs' sockets,
/// and traffic between the VMs flows again.
#[test]
fn vhost_client_ports_reconnect_to_running_vms_after_a_restart() {
    use testkit::testpmd::{self, TestPmd};
    if !can_run(
        "vhost_client_ports_reconnect_after_restart",
        &[Need::Testpmd],
    ) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (testpmd::temp_socket("dva"), testpmd::temp_socket("dvb"));
    // The VM listens (server=1); it waits for the switch to connect.
    let vm = TestPmd::vm_pair(&a, &b, true, 1).spawn_nowait().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsvd");
    d.ok(&["add-br", &br]);
    for (name, sock) in [("vma", &a), ("vmb", &b)] {
        let path = format!("vhost-server-path={}", sock.display());
        d.ok(&["add-port", &br, name, "type=vhostuserclient", &path]);
    }
    vm.wait_ready(Duration::from_secs(20)).unwrap();
    let exchange = |n: u64| {
        for p in 0..2 {
            vm.wait_link_up(p, Duration::from_secs(10)).unwrap();
        }
        // The VM's link may still read "up" from before the restart, or come up before the
        // switch has started its rings: wait until a probe gets through.
        support::probe_until_traffic(&vm, "no traffic after the restart; vswitchd said", || {
            std::fs::read_to_string(dir.path().join("vswitchd.log")).unwrap_or_default()
        });
        vm.clear_stats();
        vm.start();
        assert_eq!(vm.send_burst(0, n).unwrap(), n);
        let got = vm.wait_rx(1, n, Duration::from_secs(10));
        assert_eq!(got.rx_packets, n, "through the restarted switch: {got:?}");
        vm.stop();
    };
    exchange(200);
    assert!(d.ok(&["show"]).contains("vhost-server-path="));
    assert!(d.terminate().success());
    vm.wait_link(0, false, Duration::from_secs(10)).unwrap();
    d.spawn();
    exchange(200);
    d.kill9();
    vm.wait_link(0, false, Duration::from_secs(10)).unwrap();
    d.spawn();
    exchange(200);
}

#[test]
fn attach_netns_vlans_and_mirrors_through_vswitchctl_survive_a_restart() {
    let _serial = serial();
    if !can_run("attach_netns", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsbr");
    d.ok(&["add-br", &br]);
    let (c1, c2, c3) = (Netns::new(), Netns::new(), Netns::new());
    let p1 = d
        .ok(&[
            "attach-netns",
            &br,
            &c1.0,
            "--ip",
            "10.213.0.1/24",
            "--mac",
            "02:00:00:00:13:01",
            "--vlan",
            "10",
        ])
        .trim()
        .to_owned();
    let p2 = d
        .ok(&[
            "attach-netns",
            &br,
            &c2.0,
            "--ip",
            "10.213.0.2/24",
            "--vlan",
            "10",
        ])
        .trim()
        .to_owned();
    let p3 = d
        .ok(&[
            "attach-netns",
            &br,
            &c3.0,
            "--ifname",
            "mon0",
            "--port",
            &unique("vsmon"),
        ])
        .trim()
        .to_owned();
    assert!(
        c1.link("eth0").unwrap().contains("02:00:00:00:13:01"),
        "the MAC was set"
    );
    assert!(c3.link("mon0").is_some(), "the interface name was used");
    assert!(c1.ping_until_ok("10.213.0.2"), "containers in VLAN 10");
    let show = d.ok(&["show"]);
    assert!(
        show.contains(&format!("Port {p1}\n            tag: 10")),
        "{show}"
    );
    // Moving c2 to VLAN 20 cuts it off; back to 10 joins it again.
    d.ok(&["set-port", &br, &p2, "tag=20"]);
    assert!(!c1.ping("10.213.0.2", 2), "VLAN 10 reached VLAN 20");
    d.ok(&["set-port", &br, &p2, "tag=10"]);
    assert!(c1.ping_until_ok("10.213.0.2"));
    // Bad settings and requests are refused with the reason.
    let err = |d: &Daemon, args: &[&str]| String::from_utf8_lossy(&d.ctl(args).stderr).into_owned();
    assert!(err(&d, &["set-port", &br, &p2, "tag=5000"]).contains("tag=5000"));
    assert!(err(&d, &["set-port", &br, &p2, "mode=afxdp"]).contains("cannot be changed"));
    assert!(err(
        &d,
        &["attach-netns", &br, "nosuchns0", "--ip", "10.0.0.1/24"]
    )
    .contains("no network namespace"));
    assert!(err(&d, &["attach-netns", &br, &c1.0]).contains("attached"));
    assert!(err(&d, &["attach-netns", &br, &c1.0, "--ip", "10.0.0.1"]).contains("--ip"));
    assert!(err(&d, &["add-mirror", &br, "m1", "select-all"]).contains("output-port"));
    assert!(err(
        &d,
        &[
            "add-mirror",
            &br,
            "m1",
            "select-src-port=nope",
            "output-port=x"
        ]
    )
    .contains("no port"));

    // A mirror of what c1 sends, to c3's port.
    d.ok(&[
        "add-mirror",
        &br,
        "m1",
        &format!("select-src-port={p1}"),
        &format!("output-port={p3}"),
    ]);
    assert_eq!(
        d.ok(&["list-mirrors", &br]),
        format!("m1 select-src-port={p1} output-port={p3}\n")
    );
    let rx = || {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &c3.0,
                "cat",
                "/sys/class/net/mon0/statistics/rx_packets",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let before = rx();
    assert!(c1.ping("10.213.0.2", 4));
    assert!(rx() - before >= 4, "the mirror port saw c1's requests");

    // After a restart everything is back, and detach works from the saved record.
    assert!(d.terminate().success());
    d.spawn();
    assert!(d
        .ok(&["list-netns", &br])
        .contains(&format!("{} eth0 port={p2}", c2.0)));
    assert!(d.ok(&["list-mirrors", &br]).contains("m1"));
    assert!(d.ok(&["show"]).contains("tag: 10"));
    assert!(c1.ping_until_ok("10.213.0.2"), "after the restart");
    d.ok(&["detach-netns", &br, &c2.0]);
    assert!(c2.link("eth0").is_none(), "the veth pair is gone");
    assert!(!Path::new("/sys/class/net").join(&p2).exists());
    assert!(!d.ok(&["list-ports", &br]).contains(&p2));
    assert!(!c1.ping("10.213.0.2", 1));
    assert!(err(&d, &["detach-netns", &br, &c2.0]).contains("not attached"));
    // Deleting the bridge removes the remaining pairs.
    d.ok(&["del-br", &br]);
    assert!(c1.link("eth0").is_none());
    assert!(!Path::new("/sys/class/net").join(&p3).exists());
}
