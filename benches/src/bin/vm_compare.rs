//! vswitch side by side with OVS-DPDK on real VMs: QEMU guests (testkit's Debian-kernel guests,
//! under TCG where there is no KVM) on vhost-user ports of each switch, in both socket roles,
//! interleaved in one invocation (round 1: vswitch then OVS, round 2: OVS then vswitch, ...).
//!
//! Per switch, role and round: PASS/FAIL of each scenario (link + ping both ways, 9000-byte
//! frames, multiqueue, QEMU kill -9 + restart, guest reboot, switch restart by SIGTERM and by
//! kill -9, port deleted and added again, live migration with pings from a second guest) and
//! figures (guest-to-guest iperf3 TCP with and without the virtio offloads, migration downtime,
//! pings lost). Every step has a time limit; a failure is recorded with a one-line reason and
//! the run goes on.
//!
//!   vm_compare --out DIR [--rounds N] [--secs S] [--switch vswitch|ovs]... [--role server|client]...
//!              [--ovs-tso true|false]
//!
//! Writes DIR/vm.md, DIR/vm.json, DIR/vm.csv and the switches' logs under DIR/logs/. Needs
//! root, QEMU, the guest image, vswitchd/vswitchctl next to this binary and
//! openvswitch-switch-dpdk. The guests only talk to each other, on 10.78.0.0/24.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::qemu::{self, Guest, GuestConfig, GuestImage, VhostUserNic};
use vswitch_benches::vm::{last_error_since, log_marks, OvsDpdk, Switch, Vswitch};

const MAC1: &str = "02:78:00:00:00:01";
const MAC2: &str = "02:78:00:00:00:02";
const IP1: &str = "10.78.0.1";
const IP2: &str = "10.78.0.2";
const BOOT: Duration = Duration::from_secs(150);
/// Pings every 100 ms from the second guest during a migration.
const MIGRATION_PINGS: u32 = 150;

const SCENARIOS: &[&str] = &[
    "link up + ping both ways",
    "iperf3 TCP, offloads on",
    "9000-byte frames (ping -s 8972 both ways)",
    "QEMU kill -9 + restart",
    "guest reboot (reboot -f)",
    "switch restart (SIGTERM)",
    "switch restart (kill -9)",
    "port deleted + added again",
    "live migration (pings every 100 ms)",
    "multiqueue (2 queues, 2 vCPUs)",
    "iperf3 TCP, offloads off",
];

const FIGURES: &[(&str, &str)] = &[
    (
        "tcp_gbps_offloads_on",
        "iperf3 TCP guest to guest, offloads on (Gbit/s)",
    ),
    (
        "tcp_gbps_offloads_off",
        "iperf3 TCP guest to guest, offloads off (Gbit/s)",
    ),
    ("migration_downtime_ms", "migration downtime (ms, QMP)"),
    ("migration_total_ms", "migration total time (ms, QMP)"),
    (
        "migration_pings_lost",
        "pings lost during migration (of 150)",
    ),
];

struct Opts {
    out: PathBuf,
    rounds: u32,
    secs: u32,
    switches: Vec<String>,
    roles: Vec<bool>,
    ovs_tso: bool,
    load_start: String,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        out: PathBuf::new(),
        rounds: 2,
        secs: 10,
        switches: Vec::new(),
        roles: Vec::new(),
        ovs_tso: false,
        load_start: loadavg(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--out" => o.out = PathBuf::from(val()?),
            "--rounds" => o.rounds = val()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--secs" => o.secs = val()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--switch" => o.switches.push(val()?),
            "--role" => match val()?.as_str() {
                "server" => o.roles.push(true),
                "client" => o.roles.push(false),
                r => return Err(format!("--role {r}: server or client")),
            },
            "--ovs-tso" => o.ovs_tso = val()?.parse().map_err(|e| format!("--ovs-tso: {e}"))?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.out.as_os_str().is_empty() {
        return Err("--out DIR is required".into());
    }
    if o.switches.is_empty() {
        o.switches = vec!["vswitch".into(), "ovs".into()];
    }
    if o.roles.is_empty() {
        o.roles = vec![true, false];
    }
    Ok(o)
}

fn role_name(switch_listens: bool) -> &'static str {
    if switch_listens {
        "switch listens (vhostuser)"
    } else {
        "QEMU listens (vhostuserclient)"
    }
}

fn display_name(switch: &str) -> &'static str {
    if switch == "vswitch" {
        "vswitch"
    } else {
        "ovs-dpdk"
    }
}

/// Everything measured, in order.
#[derive(Default)]
struct Record {
    outcomes: Vec<serde_json::Value>,
    figures: Vec<serde_json::Value>,
}

struct Ctx<'a> {
    round: u32,
    switch: &'static str,
    role: bool,
    rec: &'a mut Record,
    t0: Instant,
}

impl Ctx<'_> {
    fn log(&self, msg: &str) {
        eprintln!(
            "[{:7.1}s] r{} {} {}: {msg}",
            self.t0.elapsed().as_secs_f64(),
            self.round,
            self.switch,
            if self.role { "server" } else { "client" }
        );
    }

    /// Runs one scenario, turning an error or a panic into FAIL with a one-line reason.
    fn scenario(&mut self, name: &str, f: impl FnOnce() -> Result<(), String>) -> bool {
        let start = Instant::now();
        self.log(&format!("{name} ..."));
        let result = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(p) => Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())),
        };
        let secs = start.elapsed().as_secs_f64();
        let reason = match &result {
            Ok(()) => String::new(),
            Err(e) => one_line(e),
        };
        self.log(&format!(
            "{name}: {} in {secs:.1} s {reason}",
            if result.is_ok() { "PASS" } else { "FAIL" }
        ));
        self.rec.outcomes.push(json!({
            "round": self.round, "switch": self.switch, "role": role_name(self.role),
            "scenario": name, "pass": result.is_ok(), "reason": reason, "secs": secs,
        }));
        result.is_ok()
    }

    fn figure(&mut self, metric: &str, value: f64) {
        self.log(&format!("{metric} = {value:.3}"));
        self.rec.figures.push(json!({
            "round": self.round, "switch": self.switch, "role": role_name(self.role),
            "metric": metric, "value": value,
        }));
    }
}

/// The first line of an error (QEMU's log and console follow in testkit's errors), shortened.
fn one_line(e: &str) -> String {
    let line = e
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut s: String = line.chars().take(220).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s.replace('|', "/")
}

fn nic(sock: &Path, switch_listens: bool, mac: &str) -> VhostUserNic {
    VhostUserNic::new(sock)
        .qemu_listens(!switch_listens)
        .mac(mac)
        .host_mtu(9000)
}

/// Spawns both guests (either may wait for the switch), waits for their shells, gives them
/// 10.78.0.1 and .2 and MTU 1500 (`host_mtu=9000` makes the driver start at 9000).
fn boot_pair(image: &GuestImage, a: GuestConfig, b: GuestConfig) -> Result<(Guest, Guest), String> {
    let mut g1 = Guest::spawn(image, a).map_err(|e| e.to_string())?;
    let mut g2 = Guest::spawn(image, b).map_err(|e| e.to_string())?;
    g1.wait_shell(BOOT).map_err(|e| e.to_string())?;
    g2.wait_shell(BOOT).map_err(|e| e.to_string())?;
    configure(&mut g1, IP1)?;
    configure(&mut g2, IP2)?;
    Ok((g1, g2))
}

fn configure(g: &mut Guest, ip: &str) -> Result<(), String> {
    let cmd = format!("ip addr add {ip}/24 dev eth0 && ip link set eth0 mtu 1500 up");
    match g.run(&cmd, Duration::from_secs(30)) {
        Ok((0, _)) => Ok(()),
        Ok((st, out)) => Err(format!("`{cmd}`: status {st}: {out}")),
        Err(e) => Err(e.to_string()),
    }
}

/// One answer within `within` (a path just up may lose the first), then 3 more, all answered.
fn pings(from: &mut Guest, to: &str, size: u32, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let cmd = format!("ping -c 1 -W 1 -s {size} {to}");
        if let Ok((0, _)) = from.run(&cmd, Duration::from_secs(10)) {
            break;
        }
        if !from.is_running() {
            return Err("QEMU is not running".into());
        }
        if Instant::now() >= deadline {
            return Err(format!("no answer from {to} (-s {size}) within {within:?}"));
        }
    }
    let cmd = format!("ping -c 3 -i 0.2 -W 2 -s {size} {to}");
    let (_, out) = from
        .run(&cmd, Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    if out.contains("3 packets received") {
        Ok(())
    } else {
        Err(format!(
            "{to} (-s {size}): {}",
            out.lines().rev().nth(1).unwrap_or(&out)
        ))
    }
}

fn both_ways(g1: &mut Guest, g2: &mut Guest, size: u32, within: Duration) -> Result<(), String> {
    pings(g1, IP2, size, within).map_err(|e| format!(".1 -> .2: {e}"))?;
    pings(g2, IP1, size, within).map_err(|e| format!(".2 -> .1: {e}"))
}

fn iperf(client: &mut Guest, server: &mut Guest, secs: u32, extra: &str) -> Result<f64, String> {
    let _ = server.run("killall iperf3", Duration::from_secs(10));
    let (st, out) = server
        .run(
            "iperf3 -s -D -p 5201 --logfile /tmp/iperf3.log",
            Duration::from_secs(10),
        )
        .map_err(|e| e.to_string())?;
    if st != 0 {
        return Err(format!("iperf3 server: {out}"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let bps = client
        .iperf3_client(IP2, 5201, secs, extra)
        .map_err(|e| e.to_string())?;
    if bps <= 0.0 {
        return Err("no throughput".into());
    }
    Ok(bps / 1e9)
}

/// After a scenario: a failure gets the switch's last error line of the time it ran, and the
/// switch is healed (stopped, stale sockets removed, started) so the next scenario starts from
/// a working switch.
fn after(cx: &mut Ctx, sw: &mut dyn Switch, marks: &[u64], passed: bool) {
    if passed {
        return;
    }
    let logs = sw.logs();
    if let Some(line) = last_error_since(&logs, marks) {
        if let Some(last) = cx.rec.outcomes.last_mut() {
            let reason = format!(
                "{}; log: {}",
                last["reason"].as_str().unwrap_or(""),
                one_line(&line)
            );
            last["reason"] = json!(reason);
        }
    }
    cx.log("healing the switch (SIGTERM restart, stale sockets removed)");
    if let Err(e) = sw.heal() {
        cx.log(&format!("heal failed: {e}"));
    }
}

fn need<'g>(g: &'g mut Option<Guest>, which: &str) -> Result<&'g mut Guest, String> {
    g.as_mut()
        .ok_or_else(|| format!("{which} did not boot (see the first scenario)"))
}

/// All scenarios on one switch in one role.
fn session(image: &GuestImage, sw: &mut dyn Switch, listens: bool, secs: u32, cx: &mut Ctx) {
    let mut g1: Option<Guest> = None;
    let mut g2: Option<Guest> = None;
    let mut socks: Vec<PathBuf> = Vec::new();

    let marks = log_marks(&sw.logs());
    let ok = cx.scenario(SCENARIOS[0], || {
        for p in ["a", "b"] {
            socks.push(
                sw.add_port(p, listens)
                    .map_err(|e| format!("add-port {p}: {e}"))?,
            );
        }
        let (mut a, mut b) = boot_pair(
            image,
            GuestConfig::new("vmc1").vhost_user(nic(&socks[0], listens, MAC1)),
            GuestConfig::new("vmc2").vhost_user(nic(&socks[1], listens, MAC2)),
        )?;
        let r = both_ways(&mut a, &mut b, 56, Duration::from_secs(30));
        g1 = Some(a);
        g2 = Some(b);
        r
    });
    after(cx, sw, &marks, ok);
    if socks.len() < 2 {
        cx.log("ports could not be added: skipping the rest of this session");
        for s in &SCENARIOS[1..] {
            cx.scenario(s, || Err("ports could not be added".into()));
        }
        return;
    }

    let mut gbps = None;
    let marks = log_marks(&sw.logs());
    let ok = cx.scenario(SCENARIOS[1], || {
        let (a, b) = (need(&mut g1, "guest 1")?, need(&mut g2, "guest 2")?);
        gbps = Some(iperf(a, b, secs, "")?);
        Ok(())
    });
    after(cx, sw, &marks, ok);
    if let Some(v) = gbps {
        cx.figure("tcp_gbps_offloads_on", v);
    }

    let marks = log_marks(&sw.logs());
    let ok = cx.scenario(SCENARIOS[2], || {
        let (a, b) = (need(&mut g1, "guest 1")?, need(&mut g2, "guest 2")?);
        for g in [&mut *a, &mut *b] {
            g.run("ip link set eth0 mtu 9000", Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
        }
        let r = both_ways(a, b, 8972, Duration::from_secs(15));
        for g in [&mut *a, &mut *b] {
            let _ = g.run("ip link set eth0 mtu 1500", Duration::from_secs(10));
        }
        r
    });
    after(cx, sw, &marks, ok);

    let marks = log_marks(&sw.logs());
    let ok = cx.scenario(SCENARIOS[3], || {
        let b = need(&mut g2, "guest 2")?;
        b.kill9();
        b.restart().map_err(|e| e.to_string())?;
        configure(b, IP2)?;
        let a = need(&mut g1, "guest 1")?;
        both_ways(a, need(&mut g2, "guest 2")?, 56, Duration::from_secs(30))
    });
    after(cx, sw, &marks, ok);

    let marks = log_marks(&sw.logs());
    let ok = cx.scenario(SCENARIOS[4], || {
        let a = need(&mut g1, "guest 1")?;
        a.reboot(BOOT).map_err(|e| e.to_string())?;
        configure(a, IP1)?;
        both_ways(a, need(&mut g2, "guest 2")?, 56, Duration::from_secs(30))
    });
    after(cx, sw, &marks, ok);

    for (i, kill9) in [(5, false), (6, true)] {
        let marks = log_marks(&sw.logs());
        let ok = cx.scenario(SCENARIOS[i], || {
            sw.restart(kill9).map_err(|e| e.to_string())?;
            let a = need(&mut g1, "guest 1")?;
            both_ways(a, need(&mut g2, "guest 2")?, 56, Duration::from_secs(45))
        });
        after(cx, sw, &marks, ok);
    }

    let marks = log_marks(&sw.logs());
    let ok = cx.scenario(SCENARIOS[7], || {
        sw.del_port("b").map_err(|e| format!("del-port: {e}"))?;
        let a = need(&mut g1, "guest 1")?;
        let crossed = matches!(
            a.run(&format!("ping -c 2 -W 1 {IP2}"), Duration::from_secs(10)),
            Ok((0, _))
        );
        if !need(&mut g2, "guest 2")?.is_running() {
            return Err("QEMU exited when its port was deleted".into());
        }
        let again = sw
            .add_port("b", listens)
            .map_err(|e| format!("add-port again: {e}"))?;
        if again != socks[1] {
            return Err(format!("socket moved to {}", again.display()));
        }
        both_ways(a, need(&mut g2, "guest 2")?, 56, Duration::from_secs(45))?;
        if crossed {
            return Err("pings crossed the deleted port".into());
        }
        Ok(())
    });
    after(cx, sw, &marks, ok);

    let mut mig = None;
    let marks = log_marks(&sw.logs());
    let ok = cx.scenario(SCENARIOS[8], || {
        let sock = sw
            .add_port("c", listens)
            .map_err(|e| format!("add-port c: {e}"))?;
        let src = need(&mut g1, "guest 1")?;
        let mut cfg = src.config().clone();
        cfg.name = "vmc1-dst".into();
        cfg.nics.clear();
        let port = qemu::free_local_port().map_err(|e| e.to_string())?;
        let cfg = cfg.vhost_user(nic(&sock, listens, MAC1)).incoming(port);
        let mut dst = Guest::boot(image, cfg).map_err(|e| format!("destination: {e}"))?;
        let peer = need(&mut g2, "guest 2")?;
        peer.run(
            &format!("ping -i 0.1 -c {MIGRATION_PINGS} -W 1 {IP1} > /tmp/mig-ping.log 2>&1 &"),
            Duration::from_secs(10),
        )
        .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(1500));
        let stats = src
            .migrate_to(&mut dst, Duration::from_secs(120))
            .map_err(|e| format!("migration: {e}"))?;
        // The source QEMU has quit: the destination is guest 1 from now on.
        g1 = Some(dst);
        let (_, log) = peer
            .run(
                "while pidof ping >/dev/null; do sleep 0.5; done; cat /tmp/mig-ping.log",
                Duration::from_secs(60),
            )
            .map_err(|e| e.to_string())?;
        let received: u32 = log
            .split(" packets received")
            .next()
            .and_then(|s| s.rsplit(", ").next())
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("no ping summary in {log}"))?;
        let lost = MIGRATION_PINGS.saturating_sub(received);
        mig = Some((stats.downtime, stats.total, lost));
        let dst = need(&mut g1, "guest 1")?;
        both_ways(dst, peer, 56, Duration::from_secs(30)).map_err(|e| format!("after: {e}"))?;
        let mut learnt = None;
        let on_c = vswitch_benches::vm::wait_until(Duration::from_secs(10), || {
            learnt = sw.port_of_mac(MAC1).ok().flatten();
            learnt.as_deref() == Some("c")
        });
        if !on_c {
            return Err(format!(
                "{MAC1} learnt on {learnt:?}, not on the destination's port"
            ));
        }
        if lost > MIGRATION_PINGS / 10 {
            return Err(format!("{lost} of {MIGRATION_PINGS} pings lost"));
        }
        Ok(())
    });
    after(cx, sw, &marks, ok);
    if let Some((down, total, lost)) = mig {
        cx.figure("migration_downtime_ms", down.as_secs_f64() * 1e3);
        cx.figure("migration_total_ms", total.as_secs_f64() * 1e3);
        cx.figure("migration_pings_lost", f64::from(lost));
    }
    drop(g1.take());
    drop(g2.take());

    let marks = log_marks(&sw.logs());
    let ok = cx.scenario(SCENARIOS[9], || {
        let mq = |name: &str, sock: &Path, mac: &str| {
            GuestConfig::new(name)
                .smp(2)
                .vhost_user(nic(sock, listens, mac).queues(2))
        };
        let (mut a, mut b) = boot_pair(
            image,
            mq("vmc1mq", &socks[0], MAC1),
            mq("vmc2mq", &socks[1], MAC2),
        )?;
        let queues = a
            .run(
                "ls -d /sys/class/net/eth0/queues/rx-*",
                Duration::from_secs(10),
            )
            .map_err(|e| e.to_string())?
            .1;
        if queues.split_whitespace().count() != 2 {
            return Err(format!("guest has rx queues {queues:?}"));
        }
        both_ways(&mut a, &mut b, 56, Duration::from_secs(30))?;
        iperf(&mut a, &mut b, 3, "-P 2").map_err(|e| format!("iperf3 .1 -> .2: {e}"))?;
        iperf(&mut a, &mut b, 3, "-P 2 -R").map_err(|e| format!("iperf3 .2 -> .1: {e}"))?;
        Ok(())
    });
    after(cx, sw, &marks, ok);

    let mut gbps = None;
    let marks = log_marks(&sw.logs());
    let ok = cx.scenario(SCENARIOS[10], || {
        let plain = |name: &str, sock: &Path, mac: &str| {
            GuestConfig::new(name).vhost_user(nic(sock, listens, mac).offloads(false))
        };
        let (mut a, mut b) = boot_pair(
            image,
            plain("vmc1n", &socks[0], MAC1),
            plain("vmc2n", &socks[1], MAC2),
        )?;
        let features = a
            .run(
                "cat /sys/class/net/eth0/device/features",
                Duration::from_secs(10),
            )
            .map_err(|e| e.to_string())?
            .1;
        // Bits 0 (CSUM) and 11 (HOST_TSO4) must be off.
        let bit = |i: usize| features.trim().as_bytes().get(i) == Some(&b'1');
        if bit(0) || bit(11) {
            return Err(format!("offloads still negotiated: {features}"));
        }
        gbps = Some(iperf(&mut a, &mut b, secs, "")?);
        Ok(())
    });
    after(cx, sw, &marks, ok);
    if let Some(v) = gbps {
        cx.figure("tcp_gbps_offloads_off", v);
    }
}

/// The 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

fn report(o: &Opts, rec: &Record, started: &str, wall: Duration) -> String {
    let mut md = String::new();
    let switches: Vec<&str> = o.switches.iter().map(|s| display_name(s)).collect();
    let _ = writeln!(md, "# vswitch vs OVS-DPDK with QEMU guests ({started})\n");
    let _ = writeln!(
        md,
        "`benches/e2e/run-vm.sh` → `vm_compare --rounds {} --secs {}`, {:.1} min. Guests: testkit's \
         Debian cloud kernel + busybox + iperf3, 256 MiB, 1 vCPU (2 for multiqueue), \
         `host_mtu=9000`, guest MTU 1500 except in the jumbo test, on 10.78.0.0/24 only. \
         Each switch: one PMD thread on CPU 1, one bridge, ports with `mtu_request=9000`; \
         OVS-DPDK private (own ovsdb, `--file-prefix`, 1024 MB hugepages), \
         `userspace-tso-enable={}`. Order per round: vswitch, OVS, then OVS, vswitch; each \
         switch runs both socket roles with a fresh switch per role.\n",
        o.rounds,
        o.secs,
        wall.as_secs_f64() / 60.0,
        o.ovs_tso
    );
    if !o.ovs_tso {
        let _ = writeln!(
            md,
            "OVS runs with its default `userspace-tso-enable=false`: it does not negotiate the \
             checksum/TSO features the guests' devices offer, so with OVS the guests segment \
             and checksum in software even in the \"offloads on\" rows (vswitch negotiates \
             them). In a trial with `--ovs-tso true`, OVS 3.1 dropped the guests' TCP between \
             two vhost ports (`No TCP checksum support` in its log) and iperf3 stalled.\n"
        );
    }
    let _ = writeln!(
        md,
        "Load average (1 min) at the start {} and at the end {} of the run (the machine may be \
         shared; the interleaving spreads any other load over both switches).\n",
        o.load_start,
        loadavg()
    );
    let _ = writeln!(
        md,
        "**Under TCG (no KVM on this machine) the guests' CPUs are emulated: the absolute \
         Gbit/s are the emulator's, not the switches'. Only the vswitch/OVS ratio within this \
         run means anything, and even that is damped by the emulator.**\n"
    );
    let _ = writeln!(
        md,
        "Versions: {}; {}; {}; {} CPUs.\n",
        command_line("qemu-system-x86_64", &["--version"]),
        command_line(
            "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk",
            &["--version"]
        ),
        command_line("git", &["log", "-1", "--format=vswitch %h %s"]),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let _ = writeln!(md, "## Scenarios (PASS in how many rounds)\n");
    let _ = write!(md, "| scenario | role |");
    for s in &switches {
        let _ = write!(md, " {s} |");
    }
    let _ = write!(md, "\n|---|---|");
    for _ in &switches {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    for sc in SCENARIOS {
        for role in &o.roles {
            let rn = role_name(*role);
            let _ = write!(md, "| {sc} | {rn} |");
            for s in &switches {
                let rows: Vec<_> = rec
                    .outcomes
                    .iter()
                    .filter(|r| r["scenario"] == *sc && r["role"] == rn && r["switch"] == *s)
                    .collect();
                let pass = rows.iter().filter(|r| r["pass"] == true).count();
                let cell = if rows.is_empty() {
                    "—".to_string()
                } else if pass == rows.len() {
                    format!("PASS {pass}/{}", rows.len())
                } else {
                    format!("**FAIL** {pass}/{}", rows.len())
                };
                let _ = write!(md, " {cell} |");
            }
            md.push('\n');
        }
    }

    let _ = writeln!(
        md,
        "\n## Figures (median of the rounds; per-round values in brackets)\n"
    );
    let _ = writeln!(
        md,
        "| figure | role | vswitch | OVS-DPDK | vswitch / OVS |\n|---|---|---|---|---|"
    );
    for (metric, label) in FIGURES {
        for role in &o.roles {
            let rn = role_name(*role);
            let vals = |sw: &str| -> Vec<f64> {
                rec.figures
                    .iter()
                    .filter(|f| f["metric"] == *metric && f["role"] == rn && f["switch"] == sw)
                    .filter_map(|f| f["value"].as_f64())
                    .collect()
            };
            let cell = |v: &[f64]| -> (String, Option<f64>) {
                let m = median(&mut v.to_vec());
                let list: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
                match m {
                    Some(m) => (format!("{m:.3} [{}]", list.join(", ")), Some(m)),
                    None => ("—".into(), None),
                }
            };
            let (vc, vm) = cell(&vals("vswitch"));
            let (oc, om) = cell(&vals("ovs-dpdk"));
            let ratio = match (vm, om) {
                (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                _ => "—".into(),
            };
            let _ = writeln!(md, "| {label} | {rn} | {vc} | {oc} | {ratio} |");
        }
    }
    let _ = writeln!(
        md,
        "\nThroughput: higher is better; downtime, total time and lost pings: lower is better."
    );

    let _ = writeln!(md, "\n## Failures\n");
    let fails: Vec<_> = rec.outcomes.iter().filter(|r| r["pass"] == false).collect();
    if fails.is_empty() {
        let _ = writeln!(md, "None.");
    }
    for r in fails {
        let _ = writeln!(
            md,
            "- round {} {} {}: **{}**: {}",
            r["round"],
            r["switch"].as_str().unwrap_or(""),
            r["role"].as_str().unwrap_or(""),
            r["scenario"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(
        md,
        "\nRaw: `vm.json` (every outcome and figure), `vm.csv`; switch logs in `logs/`."
    );
    md
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vm_compare: {e}");
            std::process::exit(2);
        }
    };
    if let Err(why) = qemu::available() {
        eprintln!("vm_compare: cannot run guests: {why}");
        std::process::exit(2);
    }
    let image = match GuestImage::get() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("vm_compare: {e}");
            std::process::exit(2);
        }
    };
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let logs = o.out.join("logs");
    std::fs::create_dir_all(&logs).expect("results directory");
    let started = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let t0 = Instant::now();
    let mut rec = Record::default();
    for round in 1..=o.rounds {
        let mut order: Vec<&str> = o.switches.iter().map(String::as_str).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for sw_name in order {
            for &role in &o.roles {
                let name = display_name(sw_name);
                let mut cx = Ctx {
                    round,
                    switch: name,
                    role,
                    rec: &mut rec,
                    t0,
                };
                let up: Result<Box<dyn Switch>, String> = if sw_name == "vswitch" {
                    Vswitch::start(&bin_dir)
                        .map(|s| Box::new(s) as Box<dyn Switch>)
                        .map_err(|e| e.to_string())
                } else {
                    OvsDpdk::start(o.ovs_tso)
                        .map(|s| Box::new(s) as Box<dyn Switch>)
                        .map_err(|e| e.to_string())
                };
                match up {
                    Ok(mut sw) => {
                        session(image, sw.as_mut(), role, o.secs, &mut cx);
                        let tag =
                            format!("r{round}-{name}-{}", if role { "server" } else { "client" });
                        for l in sw.logs() {
                            let f = l.file_name().unwrap_or_default().to_string_lossy();
                            let _ = std::fs::copy(&l, logs.join(format!("{tag}-{f}")));
                        }
                    }
                    Err(e) => {
                        for sc in SCENARIOS {
                            cx.scenario(sc, || Err(format!("{name} did not start: {e}")));
                        }
                    }
                }
                write_results(&o, &rec, &started, t0.elapsed());
            }
        }
    }
    write_results(&o, &rec, &started, t0.elapsed());
    println!("{}", report(&o, &rec, &started, t0.elapsed()));
}

/// Writes vm.json, vm.csv and vm.md (after every session, so that a run cut short keeps what
/// it measured).
fn write_results(o: &Opts, rec: &Record, started: &str, wall: Duration) {
    let all = json!({"outcomes": rec.outcomes, "figures": rec.figures});
    std::fs::write(
        o.out.join("vm.json"),
        serde_json::to_string_pretty(&all).unwrap_or_default(),
    )
    .expect("vm.json");
    let mut csv = String::from("kind,round,switch,role,name,value,reason\n");
    for r in &rec.outcomes {
        let _ = writeln!(
            csv,
            "scenario,{},{},\"{}\",\"{}\",{},\"{}\"",
            r["round"],
            r["switch"].as_str().unwrap_or(""),
            r["role"].as_str().unwrap_or(""),
            r["scenario"].as_str().unwrap_or(""),
            if r["pass"] == true { "PASS" } else { "FAIL" },
            r["reason"].as_str().unwrap_or("").replace('"', "'")
        );
    }
    for f in &rec.figures {
        let _ = writeln!(
            csv,
            "figure,{},{},\"{}\",{},{},",
            f["round"],
            f["switch"].as_str().unwrap_or(""),
            f["role"].as_str().unwrap_or(""),
            f["metric"].as_str().unwrap_or(""),
            f["value"]
        );
    }
    std::fs::write(o.out.join("vm.csv"), csv).expect("vm.csv");
    let md = report(o, rec, started, wall);
    std::fs::write(o.out.join("vm.md"), md).expect("vm.md");
}
