//! The observability verbs for real: `vswitchd` runs as a process, hosts in namespaces ping
//! through it, and `vswitchctl` traces, captures (read back with `tcpdump -r`), shows drop
//! reasons, per-queue usage and metrics.

use std::process::Command;
use std::time::Duration;

use testkit::netns::{unique, Host};
use testkit::require::{can_run, serial, Need};

mod support;
use support::Daemon;

#[test]
fn trace_capture_drops_and_metrics_from_vswitchctl() {
    let _serial = serial();
    if !can_run(
        "vswitchctl_observability",
        &[Need::Netns, Need::Tool("ping"), Need::Tool("tcpdump")],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", "");
    let (h1, v1) = Host::veth("10.231.0.1");
    let (h2, v2) = Host::veth("10.231.0.2");
    let br = unique("vsbr");
    d.ok(&["add-br", &br]);
    d.ok(&["add-port", &br, &v1, "mode=afpacket"]);
    d.ok(&["add-port", &br, &v2, "mode=afpacket"]);
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));

    // A hypothetical packet, as ovs-appctl ofproto/trace shows it.
    d.ok(&[
        "add-flow",
        &br,
        &format!("priority=100,cookie=0x7,ip,nw_dst=10.231.0.2,actions=output:{v2}"),
    ]);
    let flow = format!(
        "in_port={v1},dl_src={},dl_dst={},ip,nw_dst=10.231.0.2,tcp,tp_dst=80",
        h1.mac(),
        h2.mac()
    );
    let t = d.ok(&["trace", &br, &flow]);
    assert!(t.contains("priority 100, cookie 0x7"), "{t}");
    assert!(t.contains(&format!("output:{v2}")), "{t}");
    assert!(t.contains("Megaflow: ip,in_port="), "{t}");
    assert!(t.contains("Datapath actions: 2\n"), "{t}");
    assert!(t.contains(&format!("Output ports: 2 ({v2})")), "{t}");
    let o = d.ctl(&["trace", &br, "ip,nw_dst=10.0.0.1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("in_port"));

    // A capture of 4 packets to a file while h1 pings h2, read back by tcpdump.
    let file = dir.path().join("p1.pcap");
    let pinger = {
        let ns = h1.ns.clone();
        let ip = h2.ip.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            Command::new("ip")
                .args([
                    "netns", "exec", &ns, "ping", "-q", "-c", "3", "-i", "0.2", &ip,
                ])
                .output()
                .unwrap()
                .status
                .success()
        })
    };
    let o = d.ctl(&["capture", &br, &v1, "-c", "4", "-w", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(pinger.join().unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("4 packets captured, 0 packets lost"), "{err}");
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert_eq!(text.matches("ICMP echo request").count(), 2, "{text}");
    assert_eq!(text.matches("ICMP echo reply").count(), 2, "{text}");

    // The next real echo request on port 1.
    let pinger = {
        let ns = h1.ns.clone();
        let ip = h2.ip.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            Command::new("ip")
                .args(["netns", "exec", &ns, "ping", "-q", "-c", "2", &ip])
                .output()
                .unwrap()
        })
    };
    let t = d.ok(&[
        "trace-packet",
        &br,
        &v1,
        "icmp,icmp_type=8",
        "--timeout",
        "5",
    ]);
    pinger.join().unwrap();
    assert!(t.contains("Packet: 98 bytes on PMD 0"), "{t}");
    assert!(t.contains("Datapath actions executed: 2"), "{t}");

    // A policy drop shows in dump-ports, pmd-stats-show and the metrics.
    d.ok(&["add-flow", &br, "priority=200,icmp,actions=drop"]);
    assert!(!h1.ping(&h2.ip, 2));
    let ports = d.ok(&["dump-ports", &br, &v1]);
    assert!(ports.contains("drop reasons: policy=2"), "{ports}");
    assert!(d.ok(&["pmd-stats-show"]).contains("policy=2"));
    let m = d.ok(&["metrics"]);
    let line =
        format!("vswitch_port_drops_total{{bridge=\"{br}\",port=\"{v1}\",reason=\"policy\"}} 2");
    assert!(m.lines().any(|l| l == line), "{m}");
    let rxq = d.ok(&["pmd-rxq-show"]);
    assert!(rxq.contains("queue-id:  0  pmd usage:"), "{rxq}");
}
