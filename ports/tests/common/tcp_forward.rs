//! The TCP-through-AF_PACKET topology shared by the `tcp_forward` test (correctness) and the
//! `tcp_forward` bench (throughput): two AF_PACKET ports with virtio-net headers forwarding
//! between two namespaces.
//!
//! ```text
//!  nsC: c0 10.77.0.1 ── s0 [port A] ⇄ forwarder ⇄ [port B] s1 ── t0 10.77.0.2 :nsT
//! ```

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::Netns;
use ports::{AfPacketConfig, AfPacketPort, PacketBatch, PacketPool, PoolConfig, Port};

/// The three namespaces (switch, client, server); deleted with it.
pub struct Topology {
    pub sw: Netns,
    pub client: Netns,
    pub server: Netns,
}

/// Creates the three namespaces and two veth pairs, addressed and up.
pub fn topology() -> Topology {
    let t = Topology {
        sw: Netns::new(),
        client: Netns::new(),
        server: Netns::new(),
    };
    t.sw.ip(&[
        "link",
        "add",
        "s0",
        "type",
        "veth",
        "peer",
        "name",
        "c0",
        "netns",
        &t.client.name,
    ]);
    t.sw.ip(&[
        "link",
        "add",
        "s1",
        "type",
        "veth",
        "peer",
        "name",
        "t0",
        "netns",
        &t.server.name,
    ]);
    t.sw.ip(&["link", "set", "s0", "up"]);
    t.sw.ip(&["link", "set", "s1", "up"]);
    t.client.ip(&["addr", "add", "10.77.0.1/24", "dev", "c0"]);
    t.client.ip(&["link", "set", "c0", "up"]);
    t.server.ip(&["addr", "add", "10.77.0.2/24", "dev", "t0"]);
    t.server.ip(&["link", "set", "t0", "up"]);
    t
}

/// Forwards s0 ⇄ s1 until `stop`; returns (packets forwarded, GSO packets among them).
fn forward(stop: Arc<AtomicBool>) -> (u64, u64) {
    let cfg = |name: &str| {
        let mut c = AfPacketConfig::new(name);
        // Blocks and buffers large enough for a 64 KB GSO frame.
        c.block_size = 1 << 18;
        c.block_count = 16;
        c
    };
    let mut ports = [
        AfPacketPort::open(&cfg("s0")).unwrap(),
        AfPacketPort::open(&cfg("s1")).unwrap(),
    ];
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 256,
        data_room: 65536 + 128,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut batch = PacketBatch::new();
    let (mut fwd, mut gso) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for i in 0..2 {
            let n = ports[i].rx_burst(0, &mut pool, &mut batch);
            if n > 0 {
                idle = false;
                fwd += n as u64;
                gso += batch
                    .iter()
                    .filter(|p| p.vnet.is_some_and(|v| v.gso_type != 0))
                    .count() as u64;
                ports[1 - i].tx_burst(0, &mut pool, &mut batch);
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    (fwd, gso)
}

/// Sends `total` bytes client → server; returns the elapsed time and whether the bytes matched.
pub fn transfer(t: &Topology, total: usize) -> (Duration, bool) {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = {
        let ready = tx.clone();
        let srv = t.server.name.clone();
        std::thread::spawn(move || {
            let ns = Netns { name: srv };
            let r = ns.run(move || {
                let l = TcpListener::bind("10.77.0.2:5201").unwrap();
                ready.send(()).unwrap();
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut buf = vec![0u8; 1 << 16];
                let (mut got, mut ok) = (0usize, true);
                while got < total {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    ok &= buf[..n]
                        .iter()
                        .enumerate()
                        .all(|(i, &b)| b == ((got + i) % 251) as u8);
                    got += n;
                }
                ok && got == total
            });
            std::mem::forget(ns); // owned by the topology
            r
        })
    };
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let elapsed = t.client.run(move || {
        let mut s =
            TcpStream::connect_timeout(&"10.77.0.2:5201".parse().unwrap(), Duration::from_secs(5))
                .unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let chunk: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
        let start = Instant::now();
        let mut sent = 0;
        while sent < total {
            // Keep the pattern continuous across chunks (2^20 is not a multiple of 251).
            let off = sent % 251;
            let n = (total - sent).min(chunk.len() - off);
            s.write_all(&chunk[off..off + n]).unwrap();
            sent += n;
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
        start.elapsed()
    });
    (elapsed, server.join().unwrap())
}

/// The forwarding loop running on its own thread inside the switch namespace.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(u64, u64)>,
}

impl Forwarder {
    /// Opens the two ports and starts forwarding; returns once the ports had time to come up.
    pub fn start(t: &Topology) -> Forwarder {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            let sw = t.sw.name.clone();
            std::thread::spawn(move || {
                let ns = Netns { name: sw };
                let r = ns.run(move || forward(stop));
                std::mem::forget(ns); // owned by the topology
                r
            })
        };
        // Let the ports come up before traffic starts.
        std::thread::sleep(Duration::from_millis(100));
        Forwarder { stop, handle }
    }

    /// Stops forwarding; returns (packets forwarded, GSO packets among them).
    pub fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}
