//! A fleet: three `vswitchd`, each in a network namespace of its own standing for a host (own
//! state and run directories, own API address), joined by VXLAN over an underlay of
//! namespaces, all programmed by one faucet. Hosts behind different switches in one VLAN ping
//! each other, hosts in different VLANs do not, and a switch killed (`kill -9`) and started
//! again rejoins by itself: its ports, tunnels, controller and datapath id come back from its
//! state directory, faucet programs it again, and its hosts talk again.
//!
//!     underlay (namespace C, bridge `ul`, 10.231.0.254 = faucet)
//!       ├── 10.231.0.1, .11  host 1: vswitchd S1 ── vxlan to S2 (port 10, from .1), to S3
//!       │                                        (port 11, from .11)
//!       ├── 10.231.0.2       host 2: vswitchd S2 ── vxlan to S1 (port 10)
//!       └── 10.231.0.3       host 3: vswitchd S3 ── vxlan to S1's .11 (port 10)
//!     each switch: port 1 a VM in VLAN 100 (10.232.0.1i), port 2 a VM in VLAN 200 (10.232.0.2i)
//!
//! The tunnels form a star (no loop for faucet's flooding). Needs root, `ping`, `ovs-ofctl`
//! (the datapath ids) and faucet (`scripts/test.sh` installs it).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::controllers::faucet_venv;
use testkit::netns::{unique, Netns};
use testkit::require::{can_run, serial, Need};

const VSWITCHD: &str = env!("CARGO_BIN_EXE_vswitchd");
const VSWITCHCTL: &str = env!("CARGO_BIN_EXE_vswitchctl");
const API: &str = "127.0.0.1:8080";
const FAUCET: &str = "10.231.0.254";

/// A vswitchd inside a namespace.
struct NsSwitch {
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
    br: String,
}

impl NsSwitch {
    fn start(ns: &str, dir: &Path) -> NsSwitch {
        std::fs::create_dir_all(dir).unwrap();
        let run = dir.join("run");
        std::fs::write(
            dir.join("vswitchd.toml"),
            format!(
                "[api]\nlisten = \"{API}\"\n[datapath]\nrun_dir = \"{}\"\n",
                run.display()
            ),
        )
        .unwrap();
        let mut s = NsSwitch {
            ns: ns.to_owned(),
            dir: dir.to_owned(),
            child: None,
            br: "br0".into(),
        };
        s.spawn();
        s
    }

    /// Starts the daemon (again) and waits for its API.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("vswitchd.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, VSWITCHD, "--config"])
            .arg(self.dir.join("vswitchd.toml"))
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ctl(&["list-br"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "vswitchd in {} did not start: {}",
                self.ns,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, VSWITCHCTL, "--url"])
            .arg(format!("http://{API}"))
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "vswitchctl {args:?} in {}: {}",
            self.ns,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vswitchd.log")).unwrap_or_default()
    }

    /// `unix:PATH` of the bridge's OpenFlow socket (a file: reachable from any namespace).
    fn mgmt(&self) -> String {
        format!(
            "unix:{}",
            self.dir
                .join("run")
                .join(format!("{}.mgmt", self.br))
                .display()
        )
    }

    fn dpid(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = Command::new("timeout")
                .args(["10", "ovs-ofctl", "show", &self.mgmt()])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout);
            if let Some(d) = text.split("dpid:").nth(1) {
                return u64::from_str_radix(d.split_whitespace().next().unwrap(), 16).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no dpid from {}: {text}",
                self.mgmt()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NsSwitch {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A VM: a namespace with `eth0` at `ip`, its other end `port` in the switch's namespace.
struct Vm {
    ns: Netns,
    ip: String,
}

impl Vm {
    fn new(host: &Netns, port: &str, ip: &str) -> Vm {
        let ns = Netns::new();
        let peer = unique("vf");
        host.ip(&["link", "add", port, "type", "veth", "peer", "name", &peer]);
        host.ip(&["link", "set", &peer, "netns", &ns.name]);
        host.ip(&["link", "set", port, "up"]);
        ns.ip(&["link", "set", &peer, "name", "eth0"]);
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        Vm {
            ns,
            ip: ip.to_owned(),
        }
    }

    fn ping(&self, ip: &str) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.name,
                "ping",
                "-q",
                "-n",
                "-c",
                "1",
                "-W",
                "1",
                ip,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    fn ping_within(&self, ip: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.ping(ip) {
                return true;
            }
        }
        false
    }
}

/// faucet in the underlay's namespace.
struct Faucet {
    child: Option<Child>,
    log: PathBuf,
    out: PathBuf,
}

impl Faucet {
    fn start(venv: &Path, ns: &str, dir: &Path, config: &Path) -> Faucet {
        let log = dir.join("faucet.log");
        let out = dir.join("faucet.out");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(venv.join("bin/osken-manager"))
            .args(["--ofp-listen-host", FAUCET, "--ofp-tcp-listen-port", "6653"])
            .arg("faucet.faucet")
            .env("FAUCET_CONFIG", config)
            .env("FAUCET_LOG", &log)
            .env("FAUCET_EXCEPTION_LOG", dir.join("faucet_exception.log"))
            .env("FAUCET_PROMETHEUS_ADDR", "127.0.0.1")
            .env("FAUCET_PROMETHEUS_PORT", "9302")
            .env("GAUGE_LOG", dir.join("gauge.log"))
            .env("GAUGE_EXCEPTION_LOG", dir.join("gauge_exception.log"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(dir.join("faucet.err")).unwrap())
            .spawn()
            .unwrap();
        Faucet {
            child: Some(child),
            log,
            out,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
            + &std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until faucet's log has `n` lines with `pred`.
    fn wait(&self, what: &str, n: usize, limit: Duration, pred: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.lines().filter(|l| pred(l)).count() >= n {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "faucet: no {what} within {limit:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Faucet {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What failed, with faucet's log and every switch's flows.
fn report(faucet: &Faucet, switches: &[NsSwitch], what: &str) -> String {
    let mut r = format!("{what}\n--- faucet:\n{}", faucet.log());
    for sw in switches {
        let dump = Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13", "dump-flows", &sw.mgmt()])
            .output()
            .unwrap();
        r.push_str(&format!(
            "\n--- {}:\n{}\n{}",
            sw.ns,
            String::from_utf8_lossy(&dump.stdout),
            sw.log()
        ));
    }
    r
}

fn faucet_config(dpids: &[u64]) -> String {
    let mut c = String::from("vlans:\n  v100:\n    vid: 100\n  v200:\n    vid: 200\ndps:\n");
    for (i, d) in dpids.iter().enumerate() {
        c.push_str(&format!(
            "  sw{n}:\n    dp_id: 0x{d:x}\n    hardware: \"Open vSwitch\"\n    interfaces:\n      \
             1:\n        native_vlan: v100\n      2:\n        native_vlan: v200\n      \
             10:\n        tagged_vlans: [v100, v200]\n",
            n = i + 1
        ));
        if i == 0 {
            c.push_str("      11:\n        tagged_vlans: [v100, v200]\n");
        }
    }
    c
}

#[test]
fn three_switches_over_vxlan_under_one_faucet() {
    let _serial = serial();
    let test = "three_switches_over_vxlan_under_one_faucet";
    if !can_run(
        test,
        &[Need::Netns, Need::Tool("ping"), Need::Tool("ovs-ofctl")],
    ) {
        return;
    }
    let Some(venv) = faucet_venv() else {
        eprintln!("SKIPPED: {test}: no faucet (scripts/test.sh installs it in /opt/vswitch-tests/faucet-venv; or set $FAUCET_VENV)");
        return;
    };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();

    // The underlay: a bridge in the controller's namespace, a veth to each host.
    let c = Netns::new();
    c.ip(&["link", "add", "ul", "type", "bridge"]);
    c.ip(&["addr", "add", &format!("{FAUCET}/24"), "dev", "ul"]);
    c.ip(&["link", "set", "ul", "up"]);
    let hosts: Vec<Netns> = (1..=3)
        .map(|i| {
            let h = Netns::new();
            let (a, b) = (unique("ua"), unique("ub"));
            h.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
            h.ip(&["link", "set", &b, "netns", &c.name]);
            c.ip(&["link", "set", &b, "master", "ul", "up"]);
            h.ip(&["addr", "add", &format!("10.231.0.{i}/24"), "dev", &a]);
            if i == 1 {
                // A vxlan port owns its local address's UDP port: S1's second tunnel gets
                // an address of its own.
                h.ip(&["addr", "add", "10.231.0.11/24", "dev", &a]);
            }
            h.ip(&["link", "set", &a, "up"]);
            h
        })
        .collect();

    // A switch per host, with its VMs and tunnels, secure, pointed at faucet.
    let mut switches = Vec::new();
    let mut vms: Vec<(Vm, Vm)> = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let n = i + 1;
        let sw = NsSwitch::start(&h.name, &dir.path().join(format!("s{n}")));
        sw.ok(&["add-br", &sw.br]);
        let a = Vm::new(h, "pa", &format!("10.232.0.1{n}"));
        let b = Vm::new(h, "pb", &format!("10.232.0.2{n}"));
        sw.ok(&[
            "add-port",
            &sw.br,
            "pa",
            "mode=afpacket",
            "ofport_request=1",
        ]);
        sw.ok(&[
            "add-port",
            &sw.br,
            "pb",
            "mode=afpacket",
            "ofport_request=2",
        ]);
        // (port, local address, remote address): S1 is the hub of the star.
        let tunnels: Vec<(u32, &str, &str)> = match n {
            1 => vec![
                (10, "10.231.0.1", "10.231.0.2"),
                (11, "10.231.0.11", "10.231.0.3"),
            ],
            2 => vec![(10, "10.231.0.2", "10.231.0.1")],
            _ => vec![(10, "10.231.0.3", "10.231.0.11")],
        };
        for (port, local, remote) in tunnels {
            sw.ok(&[
                "add-port",
                &sw.br,
                &format!("vx{port}"),
                "type=vxlan",
                &format!("remote_ip={remote}"),
                &format!("local_ip={local}"),
                &format!("ofport_request={port}"),
            ]);
        }
        sw.ok(&["set-fail-mode", &sw.br, "secure"]);
        sw.ok(&["del-flows", &sw.br]);
        switches.push(sw);
        vms.push((a, b));
    }
    let dpids: Vec<u64> = switches.iter().map(NsSwitch::dpid).collect();
    assert!(
        dpids[0] != dpids[1] && dpids[1] != dpids[2] && dpids[0] != dpids[2],
        "{dpids:x?}"
    );
    let config = dir.path().join("faucet.yaml");
    std::fs::write(&config, faucet_config(&dpids)).unwrap();
    let faucet = Faucet::start(&venv, &c.name, dir.path(), &config);
    for sw in &switches {
        sw.ok(&["set-controller", &sw.br, &format!("tcp:{FAUCET}:6653")]);
    }
    faucet.wait(
        "three datapaths configured",
        3,
        Duration::from_secs(40),
        |l| l.contains("Cold start configuring DP"),
    );

    let limit = Duration::from_secs(20);
    // VLAN 100 across all three switches (2 <-> 3 crosses S1), VLAN 200 from 1 to 3.
    for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 0)] {
        let (x, y) = (&vms[a].0, &vms[b].0);
        assert!(
            x.ping_within(&y.ip, limit),
            "{}",
            report(
                &faucet,
                &switches,
                &format!("{} -> {} (VLAN 100)", x.ip, y.ip)
            )
        );
    }
    let (x, y) = (&vms[0].1, &vms[2].1);
    assert!(
        x.ping_within(&y.ip, limit),
        "{}",
        report(
            &faucet,
            &switches,
            &format!("{} -> {} (VLAN 200)", x.ip, y.ip)
        )
    );
    // Not across VLANs (one subnet: only the VLAN separates them).
    for (a, b) in [(0, 1), (1, 2)] {
        let (x, y) = (&vms[a].0, &vms[b].1);
        assert!(
            !x.ping_within(&y.ip, Duration::from_secs(3)),
            "{}",
            report(
                &faucet,
                &switches,
                &format!("{} -> {} crossed VLANs", x.ip, y.ip)
            )
        );
    }

    // kill -9 switch 2 and start it again: it comes back by itself.
    let before = faucet
        .log()
        .lines()
        .filter(|l| l.contains("Cold start configuring DP") || l.contains("Warm starting"))
        .count();
    switches[1].kill9();
    switches[1].spawn();
    assert_eq!(
        switches[1].dpid(),
        dpids[1],
        "the datapath id survives a restart"
    );
    faucet.wait(
        "switch 2 configured again",
        before + 1,
        Duration::from_secs(40),
        |l| l.contains("Cold start configuring DP") || l.contains("Warm starting"),
    );
    let (x, y) = (&vms[0].0, &vms[1].0);
    assert!(
        x.ping_within(&y.ip, limit),
        "{}",
        report(
            &faucet,
            &switches,
            &format!("{} -> {} after S2 restarted", x.ip, y.ip)
        )
    );
    let (x, y) = (&vms[1].0, &vms[2].0);
    assert!(
        x.ping_within(&y.ip, limit),
        "{}",
        report(
            &faucet,
            &switches,
            &format!("{} -> {} after S2 restarted", x.ip, y.ip)
        )
    );
    eprintln!("TIMING: {test}: {:.1} s", t0.elapsed().as_secs_f64());
    drop(faucet);
    drop(switches);
    drop(vms);
}
