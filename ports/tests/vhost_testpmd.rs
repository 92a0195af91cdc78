//! vhost-user ports against a real frontend: dpdk-testpmd's virtio-user ports play the VM. A
//! small patch panel in the test forwards between two of our ports (A→B, B→A) and checks every
//! frame it sees; testpmd counts what comes back. Both socket roles, reconnection after the VM
//! quits, and frames larger than the guest's buffers (mergeable RX buffers).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ports::{PacketBatch, PacketPool, PoolConfig, Port, VhostMode, VhostUserConfig, VhostUserPort};
use testkit::require::{can_run, serial, Need};
use testkit::testpmd::{self, TestPmd, TestpmdPort};

const MAC_A: &str = "02:00:00:00:00:0a";
const MAC_B: &str = "02:00:00:00:00:0b";
const LINK: Duration = Duration::from_secs(10);

fn mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, p) in s.split(':').enumerate() {
        m[i] = u8::from_str_radix(p, 16).unwrap();
    }
    m
}

/// Whether `f` is a whole testpmd `txonly` frame of `len` bytes sent from `src` to `dst`:
/// Ethernet, IPv4 with a valid header checksum, UDP.
fn well_formed(f: &[u8], len: usize, src: [u8; 6], dst: [u8; 6]) -> bool {
    if f.len() != len || f[0..6] != dst || f[6..12] != src || f[12..14] != [0x08, 0x00] {
        return false;
    }
    let ip = &f[14..34];
    let sum: u32 = ip
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let ip_len = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    folded as u16 == 0xffff && ip[9] == 17 && ip_len == len - 14
}

/// Forwards A→B and B→A on a thread until dropped; counts frames that were not well formed.
struct Panel {
    stop: Arc<AtomicBool>,
    bad: Arc<AtomicU64>,
    thread: Option<JoinHandle<(VhostUserPort, VhostUserPort)>>,
}

impl Panel {
    fn start(mut a: VhostUserPort, mut b: VhostUserPort, frame_len: usize) -> Panel {
        let stop = Arc::new(AtomicBool::new(false));
        let bad = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, bad) = (Arc::clone(&stop), Arc::clone(&bad));
            std::thread::spawn(move || {
                let mut pool = PacketPool::new(PoolConfig::default()).unwrap();
                let mut batch = PacketBatch::new();
                let end = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    let mut moved = 0;
                    for dir in 0..2 {
                        let (from, to, src, dst) = if dir == 0 {
                            (&mut a, &mut b, MAC_A, MAC_B)
                        } else {
                            (&mut b, &mut a, MAC_B, MAC_A)
                        };
                        moved += from.rx_burst(0, &mut pool, &mut batch);
                        for p in batch.iter() {
                            if !well_formed(p.data(), frame_len, mac(src), mac(dst)) {
                                bad.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        to.tx_burst(0, &mut pool, &mut batch);
                    }
                    if moved == 0 {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
                (a, b)
            })
        };
        Panel {
            stop,
            bad,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (VhostUserPort, VhostUserPort) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open(name: &str, path: &Path, mode: VhostMode) -> VhostUserPort {
    let cfg = VhostUserConfig::new(name, path, mode);
    VhostUserPort::open_instances(&cfg, 1).unwrap().remove(0)
}

fn vm(a: &Path, b: &Path, listen: bool, frame_len: u16) -> testpmd::TestPmdBuilder {
    TestPmd::vm_pair(a, b, listen, 1).tx_pkt_len(frame_len)
}

fn links_up(tp: &TestPmd) {
    for p in 0..tp.num_ports() {
        tp.wait_link_up(p, LINK).unwrap();
    }
}

/// Sends `n` frames each way and checks they all arrived, whole.
fn exchange(vm: &TestPmd, n: u64, frame_len: u64) {
    vm.clear_stats();
    vm.start();
    assert_eq!(vm.send_burst(0, n).unwrap(), n);
    let got = vm.wait_rx(1, n, Duration::from_secs(10));
    assert_eq!(got.rx_packets, n, "A→B: {got:?}\n{}", vm.log());
    assert_eq!(got.rx_bytes, n * frame_len);
    assert_eq!(vm.send_burst(1, n).unwrap(), n);
    let got = vm.wait_rx(0, n, Duration::from_secs(10));
    assert_eq!(got.rx_packets, n, "B→A: {got:?}");
    assert_eq!(got.rx_errors, 0);
    vm.stop();
}

#[test]
fn server_ports_carry_frames_both_ways_intact_and_counted() {
    if !can_run("vhost_server_ports_carry_frames", &[Need::Testpmd]) {
        return;
    }
    let _serial = serial();
    let (sa, sb) = (testpmd::temp_socket("sa"), testpmd::temp_socket("sb"));
    let a = open("vsa", &sa, VhostMode::Server);
    let b = open("vsb", &sb, VhostMode::Server);
    let counters = (a.counters(), b.counters());
    let panel = Panel::start(a, b, 64);
    let vm = vm(&sa, &sb, false, 64).spawn().unwrap();
    links_up(&vm);
    exchange(&vm, 1000, 64);
    let (ca, cb) = (counters.0.snapshot(), counters.1.snapshot());
    assert_eq!(ca.rx_packets, 1000, "{ca:?}");
    assert_eq!(cb.tx_packets, 1000, "{cb:?}");
    assert_eq!(cb.rx_packets, 1000);
    assert_eq!(ca.tx_packets, 1000);
    assert_eq!(ca.rx_bytes, 64_000);
    assert_eq!(
        (ca.rx_errors, cb.rx_errors, ca.tx_dropped, cb.tx_dropped),
        (0, 0, 0, 0)
    );
    assert_eq!(panel.bad.load(Ordering::Relaxed), 0, "malformed frames");
    drop(vm);
    let (a, b) = panel.finish();
    assert_eq!(a.protocol_errors() + b.protocol_errors(), 0);
    drop((a, b));
    assert!(
        !sa.exists() && !sb.exists(),
        "sockets removed with the ports"
    );
}

#[test]
fn client_ports_connect_to_a_listening_vm_and_reconnect_after_it_restarts() {
    if !can_run("vhost_client_ports_reconnect", &[Need::Testpmd]) {
        return;
    }
    let _serial = serial();
    let (sa, sb) = (testpmd::temp_socket("ca"), testpmd::temp_socket("cb"));
    // The switch side first: it keeps trying every second until the VM listens.
    let a = open("vca", &sa, VhostMode::Client);
    let b = open("vcb", &sb, VhostMode::Client);
    let panel = Panel::start(a, b, 64);
    let vm1 = vm(&sa, &sb, true, 64).spawn().unwrap();
    links_up(&vm1);
    exchange(&vm1, 500, 64);
    // The VM goes away and comes back on the same sockets.
    drop(vm1);
    let vm2 = vm(&sa, &sb, true, 64).spawn().unwrap();
    links_up(&vm2);
    exchange(&vm2, 500, 64);
    assert_eq!(panel.bad.load(Ordering::Relaxed), 0);
    let (a, _b) = panel.finish();
    assert!(a.connections() >= 2, "reconnected: {}", a.connections());
}

#[test]
fn a_restarted_vm_reconnects_to_server_ports() {
    if !can_run("vhost_server_ports_reconnect", &[Need::Testpmd]) {
        return;
    }
    let _serial = serial();
    let (sa, sb) = (testpmd::temp_socket("ra"), testpmd::temp_socket("rb"));
    let a = open("vra", &sa, VhostMode::Server);
    let b = open("vrb", &sb, VhostMode::Server);
    let panel = Panel::start(a, b, 64);
    for _ in 0..2 {
        let vm = vm(&sa, &sb, false, 64).spawn().unwrap();
        links_up(&vm);
        exchange(&vm, 300, 64);
    }
    let (a, b) = panel.finish();
    assert_eq!(a.connections(), 2);
    assert!(!a.connected() || !b.connected() || a.connections() == 2);
}

#[test]
fn large_frames_use_mergeable_buffers() {
    if !can_run("vhost_large_frames", &[Need::Testpmd]) {
        return;
    }
    let _serial = serial();
    let (sa, sb) = (testpmd::temp_socket("la"), testpmd::temp_socket("lb"));
    let a = open("vla", &sa, VhostMode::Server);
    let b = open("vlb", &sb, VhostMode::Server);
    let panel = Panel::start(a, b, 1500);
    // 1500-byte frames into 512-byte guest buffers: each frame spans several buffers, joined
    // by the guest through `num_buffers` (testpmd's scattered receive).
    // 1024-entry rings hold a whole round of `send_burst` (128 frames of 3 buffers).
    let vm = TestPmd::builder()
        .name("vm")
        .cpu(0)
        .mem_mb(64)
        .port(TestpmdPort::virtio_user(&sa).mac(MAC_A).queue_size(1024))
        .port(TestpmdPort::virtio_user(&sb).mac(MAC_B).queue_size(1024))
        .eth_peer(0, MAC_B)
        .eth_peer(1, MAC_A)
        .tx_pkt_len(1500)
        .forward_mode("rxonly")
        .app_arg("--mbuf-size=512")
        .app_arg("--enable-scatter")
        .app_arg("--max-pkt-len=1600")
        .spawn()
        .unwrap();
    links_up(&vm);
    exchange(&vm, 200, 1500);
    assert_eq!(panel.bad.load(Ordering::Relaxed), 0);
}
