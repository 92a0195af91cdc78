//! Kernel-path throughput, side by side in one run: two network namespaces joined through
//! (a) vswitch with AF_PACKET ports, (b) a Linux bridge; iperf3 TCP (Gbit/s) and UDP with
//! 64-byte frames (packets per second received). Rounds alternate the order of the switches
//! (ABBA) and the table reports medians, since the machine is noisy.
//!
//! `cargo bench -p vswitch-benches --bench kernel_path` (root; needs iperf3).
//! Environment: `VSW_ROUNDS` (default 3), `VSW_SECS` per iperf3 run (default 5).

use std::time::Duration;

use ports::SystemMode;
use switch_core::{PortConfig, Switch, SwitchConfig};
use testkit::netns::{iperf3_json, run, sh, unique, Host};
use testkit::require::{can_run, Need};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    VswitchAfPacket,
    LinuxBridge,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::VswitchAfPacket => "vswitch (AF_PACKET ports, 1 PMD)",
            Variant::LinuxBridge => "Linux bridge",
        }
    }
}

/// A switch joining two hosts; torn down on drop.
enum Joined {
    /// Held for its lifetime: dropping it stops the switch.
    Vswitch(#[allow(dead_code)] Switch),
    Bridge(String),
}

impl Drop for Joined {
    fn drop(&mut self) {
        if let Joined::Bridge(b) = self {
            let _ = sh(&["ip", "link", "del", b]);
        }
    }
}

fn join(v: Variant, v1: &str, v2: &str) -> Joined {
    match v {
        Variant::VswitchAfPacket => {
            let sw = Switch::start(SwitchConfig {
                internal_ports: false,
                ..SwitchConfig::default()
            })
            .expect("switch");
            let br = unique("vsbr");
            sw.add_bridge(&br).unwrap();
            for p in [v1, v2] {
                sw.add_port(
                    &br,
                    p,
                    PortConfig::System {
                        mode: SystemMode::AfPacket,
                    },
                    None,
                )
                .unwrap();
            }
            Joined::Vswitch(sw)
        }
        Variant::LinuxBridge => {
            let br = unique("vslb");
            run(&["ip", "link", "add", &br, "type", "bridge"]);
            for p in [v1, v2] {
                run(&["ip", "link", "set", p, "master", &br]);
            }
            run(&["ip", "link", "set", &br, "up"]);
            Joined::Bridge(br)
        }
    }
}

fn tcp_gbps(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(v["end"]["sum_received"]["bits_per_second"].as_f64()? / 1e9)
}

fn udp_kpps(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let s = &v["end"]["sum"];
    let got = s["packets"].as_f64()? - s["lost_packets"].as_f64()?;
    Some(got / s["seconds"].as_f64()? / 1e3)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("kernel_path is a benchmark: cargo bench -p vswitch-benches --bench kernel_path");
        return;
    }
    if !can_run("kernel_path", &[Need::Netns, Need::Tool("iperf3")]) {
        return;
    }
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (rounds, secs) = (env("VSW_ROUNDS", 3), env("VSW_SECS", 5));
    let variants = [Variant::VswitchAfPacket, Variant::LinuxBridge];
    let mut tcp: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut udp: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for i in order {
            let (h1, v1) = Host::veth("10.210.0.1");
            let (h2, v2) = Host::veth("10.210.0.2");
            let _joined = join(variants[i], &v1, &v2);
            if !h1.ping_until_ok(&h2.ip, Duration::from_secs(5)) {
                eprintln!("{}: no connectivity, round skipped", variants[i].name());
                continue;
            }
            if let Some(g) = iperf3_json(&h1, &h2, secs, &[])
                .as_deref()
                .and_then(tcp_gbps)
            {
                tcp[i].push(g);
            }
            // 18-byte payload: a 64-byte Ethernet frame with FCS.
            let udp_args = ["-u", "-b", "0", "-l", "18"];
            if let Some(k) = iperf3_json(&h1, &h2, secs, &udp_args)
                .as_deref()
                .and_then(udp_kpps)
            {
                udp[i].push(k);
            }
            eprintln!(
                "round {}: {}: TCP {:?} Gbit/s, UDP {:?} kpps",
                round + 1,
                variants[i].name(),
                tcp[i].last(),
                udp[i].last()
            );
        }
    }
    println!("| switch | TCP Gbit/s (median) | UDP 64 B kpps (median) | rounds |");
    println!("|---|---|---|---|");
    for (i, v) in variants.iter().enumerate() {
        println!(
            "| {} | {:.2} | {:.0} | {} |",
            v.name(),
            median(tcp[i].clone()),
            median(udp[i].clone()),
            tcp[i].len()
        );
    }
    let (a, b) = (median(tcp[0].clone()), median(tcp[1].clone()));
    let (c, d) = (median(udp[0].clone()), median(udp[1].clone()));
    println!(
        "\nvswitch / Linux bridge: TCP {:.2}x, UDP 64 B {:.2}x",
        a / b,
        c / d
    );
}
