//! Manual check: a vhost-user port (server mode) that sends every frame it receives back to
//! the guest. `cargo run -p ports --example vhost_echo -- SOCK SECONDS`.
use std::time::{Duration, Instant};

use ports::{PacketBatch, PacketPool, PoolConfig, VhostMode, VhostUserConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sock = args
        .get(1)
        .cloned()
        .unwrap_or("/tmp/vhost-echo.sock".into());
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mode = if args.get(3).map(|s| s == "client").unwrap_or(false) {
        VhostMode::Client
    } else {
        VhostMode::Server
    };
    let cfg = VhostUserConfig::new("echo", &sock, mode);
    let mut port = ports::open_instances(&ports::PortSpec::VhostUser(cfg), 1)
        .unwrap()
        .remove(0);
    let mut pool = PacketPool::new(PoolConfig::default()).unwrap();
    let mut batch = PacketBatch::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let n = port.rx_burst(0, &mut pool, &mut batch);
        if n == 0 {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        }
        port.tx_burst(0, &mut pool, &mut batch);
    }
    println!("{:?}", port.stats());
}
