//! A vhost-user "patch panel" for measuring the vhost-user port alone (no flow lookup): frames
//! from socket A leave on socket B, on one thread pinned to a core. For use with
//! `../shared/bench/lib/vhost_gen.sh` (the switch is the server: `--frontend client`).
//!
//! `cargo run --release -p ports --example vhost_panel -- SOCK_A SOCK_B SECONDS [CORE]`
use std::time::{Duration, Instant};

use ports::{PacketBatch, PacketPool, PoolConfig, Port, VhostMode, VhostUserConfig, VhostUserPort};

fn open(name: &str, path: &str) -> VhostUserPort {
    let cfg = VhostUserConfig::new(name, path, VhostMode::Server);
    VhostUserPort::open_instances(&cfg, 1).unwrap().remove(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: vhost_panel SOCK_A SOCK_B SECONDS [CORE]");
        std::process::exit(2);
    }
    let secs: u64 = args[3].parse().expect("seconds");
    if let Some(core) = args.get(4).and_then(|c| c.parse::<usize>().ok()) {
        // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(core, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
    let mut a = open("A", &args[1]);
    let mut b = open("B", &args[2]);
    let mut pool = PacketPool::new(PoolConfig::default()).unwrap();
    let mut batch = PacketBatch::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last = (Instant::now(), 0u64);
    while Instant::now() < end {
        for _ in 0..1024 {
            if a.rx_burst(0, &mut pool, &mut batch) > 0 {
                b.tx_burst(0, &mut pool, &mut batch);
            }
            // The generator's return path: drain B's guest TX queue.
            if b.rx_burst(0, &mut pool, &mut batch) > 0 {
                pool.free_batch(&mut batch);
            }
        }
        if last.0.elapsed() >= Duration::from_secs(2) {
            let tx = b.stats().tx_packets;
            let rate = (tx - last.1) as f64 / last.0.elapsed().as_secs_f64() / 1e6;
            println!("{rate:.2} Mpps A->B  {:?}", b.stats());
            last = (Instant::now(), tx);
        }
    }
}
