//! `ovs-ofctl` against vswitchd's OpenFlow socket (`RUN_DIR/BR.mgmt`), on a dummy bridge: rules
//! added over OpenFlow 1.0 and 1.3 are the same rules the REST API shows, they forward
//! injected frames, survive a restart, and go with `del-flows`; what is not implemented gets
//! an OpenFlow error at once rather than a hang.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::Daemon;
use testkit::netns::unique;
use testkit::require::{can_run, serial, Need};

/// `ovs-ofctl ARGS`, bounded in time.
fn ofctl(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("10")
        .arg("ovs-ofctl")
        .args(args)
        .output()
        .expect("ovs-ofctl runs")
}

fn ofctl_ok(args: &[&str]) -> String {
    let o = ofctl(args);
    assert!(
        o.status.success(),
        "ovs-ofctl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Waits for the bridge's socket (the supervisor opens it within a fraction of a second).
fn wait_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A frame to `10.0.0.DST` (IPv4, UDP) as hex.
fn ipv4_frame(dst: u8) -> String {
    let mut f = String::from("0200000000020200000000010800");
    f.push_str("4500001c0000000040110000"); // IPv4, 28 bytes, UDP, checksum left 0
    f.push_str("0a000001"); // 10.0.0.1
    f.push_str(&format!("0a0000{dst:02x}"));
    f.push_str("1f901f9000080000"); // UDP 8080 -> 8080
    f
}

fn sent(d: &Daemon, br: &str, port: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        got = d
            .ok(&["dummy-sent", br, port])
            .lines()
            .map(str::to_owned)
            .collect();
        std::thread::sleep(Duration::from_millis(10));
    }
    got
}

#[test]
fn ovs_ofctl_programs_a_bridge_over_its_unix_socket() {
    let _serial = serial();
    if !can_run("ovs_ofctl_programs_a_bridge", &[Need::Tool("ovs-ofctl")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsof");
    d.ok(&["add-br", &br, "datapath_type=dummy"]);
    let (p1, p2) = (format!("{br}p1"), format!("{br}p2"));
    d.ok(&["add-port", &br, &p1, "type=dummy", "ofport_request=1"]);
    d.ok(&["add-port", &br, &p2, "type=dummy", "ofport_request=2"]);
    d.ok(&["del-flows", &br]);
    let sock = d.run.join(format!("{br}.mgmt"));
    wait_socket(&sock);
    let target = format!("unix:{}", sock.display());

    // `show` over 1.0 lists the ports with their numbers and names.
    let show = ofctl_ok(&["show", &target]);
    assert!(show.contains("OFPT_FEATURES_REPLY"), "{show}");
    assert!(show.contains(&format!("1({p1})")), "{show}");
    assert!(show.contains(&format!("2({p2})")), "{show}");

    // A rule over 1.3, another over 1.0, a third over REST: one table set.
    ofctl_ok(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        &target,
        "priority=100,ip,nw_dst=10.0.0.2,actions=output:2",
    ]);
    ofctl_ok(&[
        "add-flow",
        &target,
        "priority=90,ip,nw_dst=10.0.0.3,actions=output:1",
    ]);
    d.ok(&["add-flow", &br, "priority=80,arp,actions=drop"]);
    let rest = d.ok(&["dump-flows", &br]);
    // vswitchctl prints ports by name.
    assert!(
        rest.contains(&format!("nw_dst=10.0.0.2 actions=output:{p2}")),
        "{rest}"
    );
    assert!(
        rest.contains(&format!("nw_dst=10.0.0.3 actions=output:{p1}")),
        "{rest}"
    );
    for version in ["OpenFlow10", "OpenFlow13"] {
        let dump = ofctl_ok(&["-O", version, "dump-flows", &target]);
        assert_eq!(
            dump.lines().filter(|l| l.contains("actions=")).count(),
            3,
            "{version}:\n{dump}"
        );
        assert!(dump.contains("priority=100,ip,nw_dst=10.0.0.2"), "{dump}");
        assert!(dump.contains("priority=80,arp"), "{dump}");
    }

    // By bridge name, as with OVS: ovs-ofctl finds `$OVS_RUNDIR/BR.mgmt`.
    let o = Command::new("timeout")
        .args(["10", "ovs-ofctl", "dump-flows", &br])
        .env("OVS_RUNDIR", &d.run)
        .output()
        .unwrap();
    let by_name = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && by_name.contains("nw_dst=10.0.0.2"),
        "{by_name}"
    );

    // The rule from OpenFlow forwards: a frame to 10.0.0.2 injected into p1 leaves p2.
    let f = ipv4_frame(2);
    d.ok(&["dummy-receive", &br, &p1, &f]);
    assert_eq!(sent(&d, &br, &p2), std::slice::from_ref(&f));

    // mod-flows (strict) over 1.3 changes the actions; the REST view follows.
    ofctl_ok(&[
        "-O",
        "OpenFlow13",
        "mod-flows",
        "--strict",
        &target,
        "priority=100,ip,nw_dst=10.0.0.2,actions=drop",
    ]);
    assert!(d
        .ok(&["dump-flows", &br])
        .contains("nw_dst=10.0.0.2 actions=drop"));

    // What vswitch does not implement is refused with an OpenFlow error, at once.
    let t0 = Instant::now();
    let o = ofctl(&[
        "-O",
        "OpenFlow13",
        "add-flow",
        &target,
        "priority=5,actions=group:1",
    ]);
    assert!(!o.status.success(), "output to a group was accepted");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("OFPBAC_BAD_OUT_GROUP"), "{err}");
    let o = ofctl(&["-O", "OpenFlow13", "dump-groups", &target]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        out.contains("OFPBRC_BAD_MULTIPART") || out.contains("OFPT_ERROR"),
        "{out}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "errors took {:?}",
        t0.elapsed()
    );

    // Rules from OpenFlow are saved like any other: they come back after kill -9.
    d.kill9();
    d.spawn();
    wait_socket(&sock);
    let dump = ofctl_ok(&["-O", "OpenFlow13", "dump-flows", &target]);
    assert!(dump.contains("priority=90,ip,nw_dst=10.0.0.3"), "{dump}");

    // del-flows: non-strict by match, then everything.
    ofctl_ok(&["del-flows", &target, "ip,nw_dst=10.0.0.3"]);
    let rest = d.ok(&["dump-flows", &br]);
    assert!(!rest.contains("10.0.0.3"), "{rest}");
    assert!(rest.contains("10.0.0.2"), "{rest}");
    ofctl_ok(&["-O", "OpenFlow13", "del-flows", &target]);
    assert_eq!(
        d.ok(&["dump-flows", &br])
            .lines()
            .filter(|l| l.contains("actions="))
            .count(),
        0
    );

    // The socket goes with the bridge.
    d.ok(&["del-br", &br]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while sock.exists() {
        assert!(Instant::now() < deadline, "{} stayed", sock.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}
