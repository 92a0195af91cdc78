//! The testpmd harness checked without our switch: a testpmd frontend (virtio-user ports, the
//! "VM") against a second testpmd as vhost-user backend (`net_vhost` ports patched 0↔1 in `io`
//! mode), in both socket roles. What the frontend sends on one port must come back, counted
//! exactly, on the other.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testkit::require::{can_run, serial, Need};
use testkit::testpmd::{self, TestPmd, TestpmdPort};

const MAC_A: &str = "02:00:00:00:00:0a";
const MAC_B: &str = "02:00:00:00:00:0b";
const LINK: Duration = Duration::from_secs(10);

fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn wait_gone(path: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while path.exists() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The reference "switch": two `net_vhost` ports patched to each other, on CPU 1.
fn patch_panel(a: &Path, b: &Path, listen: bool, queues: u16) -> testpmd::TestPmdBuilder {
    TestPmd::builder()
        .name("backend")
        .cpu(1)
        .mem_mb(64)
        .port(TestpmdPort::vhost(a).server(listen).queues(queues))
        .port(TestpmdPort::vhost(b).server(listen).queues(queues))
        .forward_mode("io")
}

/// The "VM": two virtio-user ports, counting what it receives, on CPU 0.
fn vm(a: &Path, b: &Path, listen: bool, queues: u16) -> testpmd::TestPmdBuilder {
    TestPmd::vm_pair(a, b, listen, queues)
}

fn links_up(tp: &TestPmd) {
    for p in 0..tp.num_ports() {
        tp.wait_link_up(p, LINK).unwrap();
    }
}

#[test]
fn frontend_connects_to_listening_backend() {
    if !can_run("frontend_connects_to_listening_backend", &[Need::Testpmd]) {
        return;
    }
    let _serial = serial();
    let t0 = Instant::now();
    let (a, b) = (testpmd::temp_socket("a"), testpmd::temp_socket("b"));
    let backend = patch_panel(&a, &b, true, 1).spawn().unwrap();
    assert!(a.exists() && b.exists(), "net_vhost server sockets");
    let vm = vm(&a, &b, false, 1).spawn().unwrap();
    eprintln!("both up after {:?}", t0.elapsed());
    assert_eq!(vm.port_mac(0).as_deref(), Some(MAC_A));
    assert_eq!(vm.port_mac(1).as_deref(), Some(MAC_B));
    links_up(&vm);
    links_up(&backend);
    assert!(vm
        .try_cmd("no_such_command", Duration::from_secs(5))
        .is_err());
    assert!(vm
        .cmd("show config fwd")
        .contains("rxonly packet forwarding"));

    backend.start();
    vm.start();
    // Exactly N frames out of port 0, all back on port 1 and nowhere else.
    assert_eq!(vm.send_burst(0, 1000), Ok(1000));
    let rx = vm.wait_rx(1, 1000, Duration::from_secs(5));
    assert_eq!(rx.rx_packets, 1000, "{rx:?}");
    assert_eq!(rx.rx_bytes, 1000 * 64, "{rx:?}");
    assert_eq!(vm.port_stats(0).tx_packets, 1000);
    assert_eq!(vm.port_stats(0).rx_packets, 0);
    assert_eq!(vm.port_stats(1).tx_packets, 0);
    let (b0, b1) = (backend.port_stats(0), backend.port_stats(1));
    assert_eq!(
        (b0.rx_packets, b1.tx_packets),
        (1000, 1000),
        "{b0:?} {b1:?}"
    );
    // send_burst restarted forwarding in the mode it found.
    assert!(vm
        .cmd("show config fwd")
        .contains("rxonly packet forwarding"));

    // Continuous txonly: paired streams send on both ports; each receives the other's.
    vm.stop();
    vm.clear_stats();
    vm.set_forward_mode("txonly");
    vm.start();
    std::thread::sleep(Duration::from_millis(300));
    vm.stop();
    // txonly does not receive: what came back waits in the rings until rxonly reads it.
    vm.set_forward_mode("rxonly");
    vm.start();
    std::thread::sleep(Duration::from_millis(100));
    let (s0, s1) = (vm.port_stats(0), vm.port_stats(1));
    eprintln!("txonly 300 ms: port 0 {s0:?}\n              port 1 {s1:?}");
    assert!(s0.tx_packets > 0 && s1.tx_packets > 0);
    assert!(s0.rx_packets > 0 && s1.rx_packets > 0);
    let f = vm.fwd_stats(1);
    assert_eq!(f.tx_packets, 0, "rxonly sends nothing: {f:?}");
    vm.stop();

    // A loop: one burst each way, then both testpmds io-forward it round and round.
    vm.clear_stats();
    vm.set_forward_mode("io");
    vm.start_tx_first(1);
    std::thread::sleep(Duration::from_millis(300));
    vm.stop();
    let (s0, s1) = (vm.port_stats(0), vm.port_stats(1));
    eprintln!("io loop 300 ms: port 0 {s0:?}\n              port 1 {s1:?}");
    assert!(s0.rx_packets > 10_000 && s1.rx_packets > 10_000);
    backend.stop();

    // The backend quits: its sockets go, and the frontend's links go down.
    let pid = backend.pid();
    drop(backend);
    assert!(gone(pid));
    assert!(
        wait_gone(&a) && wait_gone(&b),
        "backend sockets left behind"
    );
    vm.wait_link(0, false, LINK).unwrap();
    vm.wait_link(1, false, LINK).unwrap();
    let pid = vm.pid();
    drop(vm);
    assert!(gone(pid));
    eprintln!("test took {:?}", t0.elapsed());
}

#[test]
fn backend_connects_to_listening_frontend_two_queues() {
    if !can_run(
        "backend_connects_to_listening_frontend_two_queues",
        &[Need::Testpmd],
    ) {
        return;
    }
    let _serial = serial();
    let t0 = Instant::now();
    let (a, b) = (testpmd::temp_socket("a"), testpmd::temp_socket("b"));
    // server=1: testpmd blocks in start-up until the backend connects, so do not wait yet.
    // Its ports come up one by one: the second socket appears once the first is connected,
    // and the backend (client=1) retries every second until it exists.
    let vm = vm(&a, &b, true, 2).tx_pkt_len(128).spawn_nowait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.exists() {
        assert!(
            Instant::now() < deadline,
            "virtio-user server sockets\n{}",
            vm.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let backend = patch_panel(&a, &b, false, 2).spawn().unwrap();
    vm.wait_ready(Duration::from_secs(20)).unwrap();
    eprintln!("both up after {:?}", t0.elapsed());
    links_up(&vm);
    links_up(&backend);
    assert!(vm.args().iter().any(|s| s == "--rxq=2"));

    backend.start();
    vm.start();
    assert_eq!(vm.send_burst(0, 300), Ok(300));
    let rx = vm.wait_rx(1, 300, Duration::from_secs(5));
    assert_eq!((rx.rx_packets, rx.rx_bytes), (300, 300 * 128), "{rx:?}");
    assert_eq!(vm.send_burst(1, 78), Ok(78));
    let rx = vm.wait_rx(0, 78, Duration::from_secs(5));
    assert_eq!((rx.rx_packets, rx.rx_bytes), (78, 78 * 128), "{rx:?}");
    assert_eq!(vm.port_stats(1).rx_packets, 300);

    // The frontend quits: it removes the sockets it listened on; the backend's links go down.
    let sockets: Vec<PathBuf> = vec![a.clone(), b.clone()];
    let pid = vm.pid();
    drop(vm);
    assert!(gone(pid));
    for s in &sockets {
        assert!(!s.exists(), "{} left behind", s.display());
    }
    backend.wait_link(0, false, LINK).unwrap();
    drop(backend);
    eprintln!("test took {:?}", t0.elapsed());
}

#[test]
fn frontend_without_its_socket_fails_to_start() {
    if !can_run(
        "frontend_without_its_socket_fails_to_start",
        &[Need::Testpmd],
    ) {
        return;
    }
    let _serial = serial();
    let t0 = Instant::now();
    let missing = testpmd::temp_socket("missing");
    let err = TestPmd::builder()
        .mem_mb(64)
        .port(TestpmdPort::virtio_user(&missing))
        .startup_timeout(Duration::from_secs(10))
        .spawn()
        .err()
        .expect("testpmd must not start without its socket");
    assert!(err.contains("port 0 was not set up"), "{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn listening_frontend_without_peer_times_out_and_cleans_up() {
    if !can_run(
        "listening_frontend_without_peer_times_out_and_cleans_up",
        &[Need::Testpmd],
    ) {
        return;
    }
    let _serial = serial();
    let t0 = Instant::now();
    let sock = testpmd::temp_socket("lonely");
    let vm = TestPmd::builder()
        .mem_mb(64)
        .port(TestpmdPort::virtio_user(&sock).server(true))
        .spawn_nowait()
        .unwrap();
    let err = vm.wait_ready(Duration::from_secs(2)).unwrap_err();
    assert!(err.contains("did not start"), "{err}");
    assert!(sock.exists());
    // Blocked in start-up it cannot read `quit`: drop falls back to signals.
    let pid = vm.pid();
    let t1 = Instant::now();
    drop(vm);
    eprintln!("drop took {:?}", t1.elapsed());
    assert!(gone(pid));
    assert!(!sock.exists(), "socket left behind");
    assert!(t0.elapsed() < Duration::from_secs(15));
}
