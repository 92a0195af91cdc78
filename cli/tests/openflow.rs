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

/// `ovs-ofctl monitor TARGET 65535` in the background, its output collected.
struct Monitor {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Monitor {
    /// `run_dir` takes ovs-ofctl's own control socket.
    fn start(version: &str, target: &str, run_dir: &Path) -> Monitor {
        use std::io::BufRead;
        let mut child = Command::new("timeout")
            .args(["60", "ovs-ofctl", "-O", version, "monitor", target, "65535"])
            .env("OVS_RUNDIR", run_dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ovs-ofctl monitor starts");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = std::sync::Arc::clone(&out);
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Monitor { child, out }
    }

    /// Waits until the output holds `want`.
    fn wait_for(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = self.out.lock().unwrap().clone();
            if o.contains(want) {
                return o;
            }
            assert!(
                Instant::now() < deadline,
                "monitor never printed {want}:\n{o}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ovs_ofctl_files_bundles_tables_ports_extensions_and_monitor() {
    let _serial = serial();
    if !can_run("ovs_ofctl_files_bundles", &[Need::Tool("ovs-ofctl")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", "");
    let br = unique("vsof");
    d.ok(&["add-br", &br, "datapath_type=dummy"]);
    let (p1, p2) = (format!("{br}p1"), format!("{br}p2"));
    d.ok(&["add-port", &br, &p1, "type=dummy", "ofport_request=1"]);
    d.ok(&["add-port", &br, &p2, "type=dummy", "ofport_request=2"]);
    d.ok(&["del-flows", &br]);
    let sock = d.run.join(format!("{br}.mgmt"));
    wait_socket(&sock);
    let target = format!("unix:{}", sock.display());
    let of13 = |args: &[&str]| {
        let mut a = vec!["-O", "OpenFlow13"];
        a.extend_from_slice(args);
        ofctl_ok(&a)
    };

    // add-flows from a file (1.0, one FLOW_MOD each), then the aggregate and table counts.
    let file = dir.path().join("flows.txt");
    let flows: String = (1..=50)
        .map(|i| format!("priority=100,ip,nw_dst=10.1.0.{i},actions=output:2\n"))
        .collect();
    std::fs::write(&file, flows).unwrap();
    ofctl_ok(&["add-flows", &target, file.to_str().unwrap()]);
    assert!(
        ofctl_ok(&["dump-aggregate", &target]).contains("flow_count=50"),
        "{}",
        ofctl_ok(&["dump-aggregate", &target])
    );
    let tables = of13(&["dump-tables", &target]);
    assert!(tables.contains("active=50"), "{tables}");

    // --bundle (ONF's 1.3 extension): all flows in one transaction...
    let bundle = dir.path().join("bundle.txt");
    let flows: String = (1..=500)
        .map(|i| format!("priority=90,udp,tp_dst={i},actions=output:1\n"))
        .collect();
    std::fs::write(&bundle, flows).unwrap();
    of13(&["--bundle", "add-flows", &target, bundle.to_str().unwrap()]);
    assert!(of13(&["dump-aggregate", &target]).contains("flow_count=550"));
    // ...or none: a bundle with a flow the tables refuse adds nothing.
    std::fs::write(
        &bundle,
        "priority=80,udp,tp_dst=9999,actions=output:1\ntable=3,priority=1,actions=goto_table:1\n",
    )
    .unwrap();
    let o = ofctl(&[
        "-O",
        "OpenFlow13",
        "--bundle",
        "add-flows",
        &target,
        bundle.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "a bundle with a bad flow was accepted");
    assert!(of13(&["dump-aggregate", &target]).contains("flow_count=550"));
    assert!(!of13(&["dump-flows", &target]).contains("tp_dst=9999"));
    ofctl_ok(&["del-flows", &target]);

    // Nicira extensions ovs-ofctl needs for what 1.0 cannot say: table ids, resubmit, tun_id.
    ofctl_ok(&[
        "add-flow",
        &target,
        "table=3,priority=7,ip,actions=output:2",
    ]);
    ofctl_ok(&[
        "add-flow",
        &target,
        "priority=9,in_port=1,actions=resubmit(,3)",
    ]);
    ofctl_ok(&["add-flow", &target, "priority=8,tun_id=0x5,actions=drop"]);
    let dump = ofctl_ok(&["dump-flows", &target]);
    assert!(
        dump.contains("table=3") && dump.contains("priority=7,ip"),
        "{dump}"
    );
    assert!(dump.contains("actions=resubmit(,3)"), "{dump}");
    assert!(dump.contains("tun_id=0x5"), "{dump}");
    d.ok(&["dummy-receive", &br, &p1, &ipv4_frame(2)]);
    assert_eq!(sent(&d, &br, &p2).len(), 1, "resubmit(,3) then output:2");

    // dump-ports: the counters of that packet, in both versions.
    for v in ["OpenFlow10", "OpenFlow13"] {
        let ports = ofctl_ok(&["-O", v, "dump-ports", &target]);
        assert!(ports.contains("port  1: rx pkts=1"), "{v}: {ports}");
        assert!(
            ports.contains("port  2: rx pkts=0") && ports.contains("tx pkts=1"),
            "{v}: {ports}"
        );
        let one = ofctl_ok(&["-O", v, "dump-ports", &target, "2"]);
        assert!(
            one.contains("port  2:") && !one.contains("port  1:"),
            "{v}: {one}"
        );
    }

    // monitor: packet-ins, port changes and flow removals, in 1.0 and 1.3.
    for (i, v) in ["OpenFlow10", "OpenFlow13"].iter().enumerate() {
        ofctl_ok(&["del-flows", &target]);
        let m = Monitor::start(v, &target, dir.path());
        std::thread::sleep(Duration::from_millis(300));
        ofctl_ok(&[
            "-O",
            v,
            "add-flow",
            &target,
            "priority=5,in_port=1,actions=controller",
        ]);
        d.ok(&["dummy-receive", &br, &p1, &ipv4_frame(9)]);
        let out = m.wait_for("OFPT_PACKET_IN");
        assert!(
            out.contains("in_port=1") && out.contains("nw_dst=10.0.0.9"),
            "{out}"
        );
        let p3 = format!("{br}m{i}");
        d.ok(&["add-port", &br, &p3, "type=dummy"]);
        m.wait_for("OFPT_PORT_STATUS");
        d.ok(&["del-port", &br, &p3]);
        ofctl_ok(&[
            "-O",
            v,
            "add-flow",
            &target,
            "priority=6,udp,send_flow_rem,actions=drop",
        ]);
        ofctl_ok(&["-O", v, "del-flows", &target, "udp"]);
        let out = m.wait_for("OFPT_FLOW_REMOVED");
        assert!(out.contains("reason=delete"), "{out}");
    }
}
