//! Real VMs on vhost-user ports: QEMU guests running Linux's virtio-net driver (the testkit's
//! small Debian-kernel guests, under TCG where there is no KVM), in both socket roles, through
//! restarts of either side, with multiqueue, jumbo frames, offloads and live migration.
//!
//! Every test needs root, QEMU and the guest image (which `scripts/test.sh` provides); without
//! them it says SKIPPED and why. The guests talk only to each other and to namespaces the
//! tests create, on addresses of 10.77.0.0/24 that exist nowhere else.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Daemon, Netns};
use testkit::netns::unique;
use testkit::qemu::{image_or_skip as image, serial, Guest, GuestConfig, GuestImage, VhostUserNic};

/// A daemon with one bridge, in `dir`.
fn switch(dir: &Path, datapath: &str) -> (Daemon, String) {
    let d = Daemon::start(dir, "", datapath);
    let br = unique("vsvm");
    d.ok(&["add-br", &br]);
    (d, br)
}

/// A `vhostuser` port (the switch listens, QEMU connects and reconnects) and the NIC for it.
fn server_port(d: &Daemon, br: &str, name: &str) -> VhostUserNic {
    d.ok(&["add-port", br, name, "type=vhostuser"]);
    VhostUserNic::new(d.run.join(name))
}

/// A `vhostuserclient` port (QEMU listens on a socket in `dir`, the switch connects) and the
/// NIC for it.
fn client_port(d: &Daemon, br: &str, name: &str, dir: &Path) -> VhostUserNic {
    let sock = dir.join(format!("{name}.sock"));
    client_port_at(d, br, name, &sock);
    VhostUserNic::new(sock).qemu_listens(true)
}

fn client_port_at(d: &Daemon, br: &str, name: &str, sock: &Path) {
    let path = format!("vhost-server-path={}", sock.display());
    d.ok(&["add-port", br, name, "type=vhostuserclient", &path]);
}

/// Boots a guest and gives its `eth0` address `10.77.0.<host>/24`.
fn boot(image: &GuestImage, config: GuestConfig, host: u8) -> Guest {
    let mut g = Guest::boot(image, config).expect("guest boots");
    g.configure_ip("eth0", &format!("10.77.0.{host}/24"));
    g
}

fn ip(host: u8) -> String {
    format!("10.77.0.{host}")
}

/// Pings until one answer comes (a path that has just come up may lose the first), then
/// `count` more, all of which must be answered; panics with the switch's view otherwise.
fn assert_pings(from: &mut Guest, to: u8, count: u32, d: &Daemon, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !from.ping(&ip(to), 1) {
        assert!(
            Instant::now() < deadline,
            "{what}: no answer from {} within 20 s\nshow:\n{}\ndump-ports:\n{}\nlog:\n{}",
            ip(to),
            d.ok(&["show"]),
            d.ok(&["dump-ports", &bridge_of(d)]),
            d.log()
        );
    }
    let (status, out) = from
        .run(
            &format!("ping -c {count} -i 0.2 -W 2 {}", ip(to)),
            Duration::from_secs(u64::from(count) + 10),
        )
        .unwrap();
    assert_eq!(status, 0, "{what}: {out}");
    assert!(
        out.contains(&format!("{count} packets received")),
        "{what}: {out}"
    );
}

fn bridge_of(d: &Daemon) -> String {
    d.ok(&["list-br"])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The `status:` line `vswitchctl show` prints for `port`.
fn status(d: &Daemon, port: &str) -> String {
    let show = d.ok(&["show"]);
    let mut lines = show
        .lines()
        .skip_while(|l| l.trim() != format!("Port {port}"));
    lines
        .find(|l| l.trim().starts_with("status:"))
        .unwrap_or_else(|| panic!("no status for {port} in\n{show}"))
        .trim()
        .to_owned()
}

/// Received bytes and packets of `port` (`dump-ports`).
fn rx_counts(d: &Daemon, br: &str, port: &str) -> (u64, u64) {
    let out = d.ok(&["dump-ports", br, port]);
    let field = |k: &str| -> u64 {
        let at = out.find(k).unwrap_or_else(|| panic!("{k} in {out}")) + k.len();
        out[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("rx pkts="), field("bytes="))
}

/// A veth whose host end is a port of `br` (`mode=afpacket` or `afxdp`) and whose other end
/// is `eth0` in a new namespace with address `10.77.0.<host>/24` and `mtu`.
fn namespace_host(d: &Daemon, br: &str, host: u8, mtu: u32, mode: &str) -> (Netns, String) {
    let ns = Netns::new();
    let veth = unique("vsvh");
    let run = |args: &[&str]| {
        let ok = Command::new("ip").args(args).status().unwrap().success();
        assert!(ok, "ip {args:?}");
    };
    run(&[
        "link",
        "add",
        &veth,
        "mtu",
        &mtu.to_string(),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &ns.0,
    ]);
    run(&["link", "set", &veth, "up"]);
    run(&[
        "-n",
        &ns.0,
        "link",
        "set",
        "eth0",
        "mtu",
        &mtu.to_string(),
        "up",
    ]);
    run(&[
        "-n",
        &ns.0,
        "addr",
        "add",
        &format!("{}/24", ip(host)),
        "dev",
        "eth0",
    ]);
    if mode == "afxdp" {
        // AF_XDP carries no offload metadata: the namespace must send complete checksums
        // (as for OVS's afxdp ports).
        run(&["netns", "exec", &ns.0, "ethtool", "-K", "eth0", "tx", "off"]);
    }
    d.ok(&[
        "add-port",
        br,
        &veth,
        "type=system",
        &format!("mode={mode}"),
    ]);
    (ns, veth)
}

/// Guest to guest in both socket roles, guest to a namespace behind a veth, 1500- and
/// 9000-byte frames (`host_mtu` reaches the guest and the switch), and TCP with the guests'
/// segmentation offloads crossing the switch whole.
#[test]
fn guests_in_both_socket_roles_ping_carry_jumbo_frames_and_tcp() {
    let Some(image) = image("guests_in_both_socket_roles_ping_carry_jumbo_frames_and_tcp") else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (d, br) = switch(dir.path(), "");
    let nic1 = server_port(&d, &br, "vm1").host_mtu(9000);
    let nic2 = client_port(&d, &br, "vm2", dir.path()).host_mtu(9000);
    let (ns, veth) = namespace_host(&d, &br, 3, 9000, "afpacket");
    // Behind AF_XDP, which takes no offloads: the guest's TCP segments are cut here.
    let (ns4, veth4) = namespace_host(&d, &br, 4, 1500, "afxdp");
    let mut g1 = boot(image, GuestConfig::new("vm1").vhost_user(nic1), 1);
    let mut g2 = boot(image, GuestConfig::new("vm2").vhost_user(nic2), 2);

    assert_pings(
        &mut g1,
        2,
        3,
        &d,
        "vhostuser guest to vhostuserclient guest",
    );
    assert_pings(
        &mut g2,
        1,
        3,
        &d,
        "vhostuserclient guest to vhostuser guest",
    );
    assert_pings(&mut g1, 3, 3, &d, "guest to a namespace behind a veth");
    assert_pings(&mut g1, 4, 3, &d, "guest to a namespace behind AF_XDP");
    assert!(ns.ping(&ip(1), 3), "namespace to guest");
    for port in ["vm1", "vm2"] {
        let s = status(&d, port);
        assert!(s.contains("queues running: rx 1/8, tx 1/8"), "{port}: {s}");
        assert!(s.contains("guest MTU 9000"), "{port}: {s}");
    }

    // Full-size frames, not fragmented (busybox's ping cannot set DF, so the switch's
    // counters show the frames' size): 1500 first, then 9000 once the guests allow it.
    let jumbo = |g: &mut Guest, to: u8, payload: u32, port: &str| {
        let before = rx_counts(&d, &br, port);
        g.sh(&format!("ping -c 3 -s {payload} {}", ip(to)));
        let after = rx_counts(&d, &br, port);
        let (pkts, bytes) = (after.0 - before.0, after.1 - before.1);
        let frame = u64::from(payload) + 42;
        assert!(
            pkts >= 3 && bytes >= 3 * frame,
            "{port}: {pkts} packets, {bytes} bytes for 3 frames of {frame} bytes"
        );
        assert!(
            bytes / pkts > frame / 2,
            "{port}: fragmented? {bytes} bytes in {pkts} packets"
        );
    };
    jumbo(&mut g1, 2, 1472, "vm1");
    for g in [&mut g1, &mut g2] {
        g.set_mtu("eth0", 9000);
    }
    jumbo(&mut g1, 2, 8972, "vm1");
    jumbo(&mut g2, 1, 8972, "vm2");
    jumbo(&mut g1, 3, 8972, "vm1");
    let ports = d.ok(&["dump-ports", &br]);
    assert!(
        !ports.contains("errs=1") && ports.matches("errs=0").count() >= 6,
        "{ports}"
    );

    // TCP between the guests: their 64 KB segments cross whole (bytes per received packet
    // far above the MTU), and TCP from a guest to the namespace.
    let before = rx_counts(&d, &br, "vm1");
    g2.iperf3_server(5201);
    let bps = g1
        .iperf3_client(&ip(2), 5201, 3, "")
        .expect("iperf3 guest to guest");
    let after = rx_counts(&d, &br, "vm1");
    let (pkts, bytes) = (after.0 - before.0, after.1 - before.1);
    eprintln!(
        "guest to guest TCP: {:.0} Mbit/s, {} bytes per packet from the sender",
        bps / 1e6,
        bytes / pkts.max(1)
    );
    assert!(bps > 1e6, "guest to guest TCP: {bps} bit/s");
    assert!(
        bytes / pkts.max(1) > 9000,
        "segmentation offloads not used: {bytes} bytes in {pkts} packets"
    );
    for (ns, host, what) in [
        (
            &ns,
            3,
            "guest to a namespace behind AF_PACKET (offloads kept)",
        ),
        (
            &ns4,
            4,
            "guest to a namespace behind AF_XDP (segmented in the switch)",
        ),
    ] {
        let server = Reaped(
            Command::new("ip")
                .args(["netns", "exec", &ns.0, "iperf3", "-s", "-1", "-p", "5202"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(500));
        let before = rx_counts(&d, &br, "vm1");
        let bps = g1.iperf3_client(&ip(host), 5202, 3, "").expect(what);
        let after = rx_counts(&d, &br, "vm1");
        eprintln!(
            "{what}: {:.0} Mbit/s, {} bytes per packet from the guest",
            bps / 1e6,
            (after.1 - before.1) / (after.0 - before.0).max(1)
        );
        assert!(bps > 1e6, "{what}: {bps} bit/s");
        server.wait(Duration::from_secs(5));
    }
    // Segments larger than AF_XDP's MTU came from the guest and went out cut, counted.
    let out = d.ok(&["dump-ports", &br, &veth4]);
    assert!(out.contains("errs=0"), "{out}");
    let segments: u64 = out
        .split("tx in software: segments=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no software segments counted: {out}"));
    assert!(segments > 1000, "{out}");
    assert!(
        !d.ok(&["dump-ports", &br, &veth]).contains("tx in software"),
        "the AF_PACKET port takes the offloads whole"
    );
    for v in [&veth, &veth4] {
        d.ok(&["del-port", &br, v]);
    }
}

/// A process the test started in a namespace, killed when the test ends, failed or not (a
/// server left waiting would keep its namespace, and the namespace's veth, alive).
struct Reaped(std::process::Child);

impl Reaped {
    /// Waits up to `timeout` for the process to end by itself (then kills it).
    fn wait(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two-queue guests (`queues=2`, `mq=on`, two vCPUs) on a switch with two PMD threads: traffic
/// sent from both guest CPUs uses both queue pairs in both directions.
#[test]
fn multiqueue_guests_carry_traffic_on_both_queue_pairs() {
    let Some(image) = image("multiqueue_guests_carry_traffic_on_both_queue_pairs") else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (d, br) = switch(dir.path(), "[datapath]\npmd_cores = [0, 1]\n");
    let nic1 = server_port(&d, &br, "mq1").queues(2);
    let nic2 = client_port(&d, &br, "mq2", dir.path()).queues(2);
    let mut g1 = boot(image, GuestConfig::new("mq1").smp(2).vhost_user(nic1), 1);
    let mut g2 = boot(image, GuestConfig::new("mq2").smp(2).vhost_user(nic2), 2);
    assert_pings(&mut g1, 2, 2, &d, "multiqueue guests");
    // One sender pinned to each vCPU: the guest's transmit steering maps CPU n to queue n.
    for (g, peer) in [(&mut g1, 2), (&mut g2, 1)] {
        g.sh(&format!(
            "taskset 1 ping -c 20 -i 0.05 {p} >/dev/null & taskset 2 ping -c 20 -i 0.05 {p} >/dev/null; wait",
            p = ip(peer)
        ));
    }
    for port in ["mq1", "mq2"] {
        let s = status(&d, port);
        assert!(s.contains("queues running: rx 2/8, tx 2/8"), "{port}: {s}");
        assert!(
            s.contains("queues that carried packets: to the guest 2, from the guest 2"),
            "{port}: {s}"
        );
    }
}

/// Either side going away and coming back: QEMU killed and restarted, the guest rebooted,
/// vswitchd stopped with SIGTERM and with `kill -9`, a port deleted under a running guest and
/// added again. After each, the guests ping each other again.
#[test]
fn guests_survive_restarts_of_either_side_and_port_deletion() {
    let Some(image) = image("guests_survive_restarts_of_either_side_and_port_deletion") else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut d, br) = switch(dir.path(), "");
    let nic1 = server_port(&d, &br, "rs1");
    let nic2 = client_port(&d, &br, "rs2", dir.path());
    let mut g1 = boot(image, GuestConfig::new("rs1").vhost_user(nic1), 1);
    let mut g2 = boot(image, GuestConfig::new("rs2").vhost_user(nic2), 2);
    assert_pings(&mut g1, 2, 2, &d, "at start");

    // QEMU killed (-9) and started again: the switch takes the new VM on the same port.
    g2.kill9();
    g2.restart().expect("QEMU restarts");
    g2.configure_ip("eth0", "10.77.0.2/24");
    assert_pings(
        &mut g1,
        2,
        2,
        &d,
        "after QEMU kill -9 and restart (vhostuserclient)",
    );
    g1.kill9();
    g1.restart().expect("QEMU restarts");
    g1.configure_ip("eth0", "10.77.0.1/24");
    assert_pings(
        &mut g2,
        1,
        2,
        &d,
        "after QEMU kill -9 and restart (vhostuser)",
    );

    // The guest reboots (the device is reset and started again in the same QEMU).
    g1.reboot(Duration::from_secs(90)).expect("guest reboots");
    g1.configure_ip("eth0", "10.77.0.1/24");
    assert_pings(&mut g1, 2, 2, &d, "after a guest reboot");

    // vswitchd stopped and started again with the guests running: QEMU reconnects to the
    // vhostuser socket, the switch reconnects to the vhostuserclient one.
    assert!(d.terminate().success());
    d.spawn();
    assert_pings(&mut g1, 2, 2, &d, "after vswitchd SIGTERM and restart");
    d.kill9();
    d.spawn();
    assert_pings(&mut g2, 1, 2, &d, "after vswitchd kill -9 and restart");

    // The port deleted under the running guest: nothing crosses, the guest lives on; added
    // again, the switch reconnects and traffic flows.
    d.ok(&["del-port", &br, "rs2"]);
    assert!(!g1.ping(&ip(2), 2), "through a deleted port");
    assert!(g2.is_running());
    client_port_at(&d, &br, "rs2", &dir.path().join("rs2.sock"));
    assert_pings(&mut g1, 2, 2, &d, "after the port was added again");
    assert!(!d.log().contains("panicked"), "vswitchd log: {}", d.log());
}

/// Live migration of a guest to a second QEMU on another port of the same bridge while
/// another guest pings it and streams a file to it: few pings are lost, the MAC table
/// follows the guest, and the file arrives intact (the switch logged its writes into the
/// migrating guest's memory).
#[test]
fn live_migration_keeps_the_guest_reachable_and_its_memory_intact() {
    let Some(image) = image("live_migration_keeps_the_guest_reachable_and_its_memory_intact")
    else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (d, br) = switch(dir.path(), "");
    let src_nic = client_port(&d, &br, "mig-src", dir.path());
    let dst_sock: PathBuf = dir.path().join("mig-dst.sock");
    client_port_at(&d, &br, "mig-dst", &dst_sock);
    let peer_nic = server_port(&d, &br, "mig-peer");
    let mac = src_nic.mac.clone();
    let mut src = boot(image, GuestConfig::new("mig-src").vhost_user(src_nic), 1);
    let mut peer = boot(image, GuestConfig::new("mig-peer").vhost_user(peer_nic), 2);
    assert_pings(&mut peer, 1, 2, &d, "before the migration");

    // The destination: the same device on its own socket, waiting for the VM.
    let dst_nic = VhostUserNic::new(&dst_sock).qemu_listens(true).mac(&mac);
    let dst_cfg = GuestConfig::new("mig-dst")
        .vhost_user(dst_nic)
        .incoming(support::free_port());
    let mut dst = Guest::boot(image, dst_cfg).expect("destination QEMU starts");

    // During the migration: pings every 100 ms, and a stream into the guest (a 16 MB file
    // eight times) whose checksum the guest computes as it arrives: with checksum offload
    // the guest's TCP would not notice a packet that reached the destination stale.
    // The listener's own input must not end: busybox's nc stops when it does.
    src.sh("sleep 600 | nc -l -p 7000 | md5sum > /tmp/got &");
    peer.sh(
        "dd if=/dev/urandom of=/tmp/data bs=1M count=16 2>/dev/null; \
         for i in 1 2 3 4 5 6 7 8; do cat /tmp/data; done | md5sum > /tmp/sum",
    );
    peer.sh("ping -i 0.1 -c 150 -W 1 10.77.0.1 > /tmp/ping.log 2>&1 &");
    peer.sh(
        "(for i in 1 2 3 4 5 6 7 8; do cat /tmp/data; done | nc 10.77.0.1 7000; \
          echo sent > /tmp/sent) > /dev/null 2>&1 &",
    );
    // Well into the stream (it takes seconds under TCG).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        peer.run("cat /tmp/sent", Duration::from_secs(5)).unwrap().0 != 0,
        "the stream ended before the migration began: make it longer"
    );
    let stats = src
        .migrate_to(&mut dst, Duration::from_secs(120))
        .expect("migration completes");
    eprintln!(
        "migration: total {:?}, downtime {:?}",
        stats.total, stats.downtime
    );

    // The MAC now lives behind the destination's port.
    let fdb_deadline = Instant::now() + Duration::from_secs(10);
    let dst_no = port_no(&d, &br, "mig-dst");
    loop {
        let fdb = d.ok(&["fdb-show", &br]);
        let row = fdb.lines().find(|l| l.contains(&mac));
        if row.is_some_and(|r| r.split_whitespace().next() == Some(dst_no.as_str())) {
            break;
        }
        assert!(
            Instant::now() < fdb_deadline,
            "{mac} not learnt on mig-dst (port {dst_no}):\n{fdb}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The pings end 15 s after they started; count the lost ones.
    let (_, log) = peer
        .run(
            "while pidof ping >/dev/null; do sleep 0.5; done; cat /tmp/ping.log",
            Duration::from_secs(40),
        )
        .unwrap();
    let received = log
        .split(" packets received")
        .next()
        .and_then(|s| s.rsplit(", ").next())
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or_else(|| panic!("ping summary: {log}"));
    eprintln!("migration: {received} of 150 pings answered");
    assert!(
        received >= 140,
        "too many pings lost across the migration: {log}"
    );

    // The stream arrived intact in the migrated guest, and its driver saw nothing wrong.
    let (_, out) = dst
        .run(
            "n=0; while [ ! -s /tmp/got ] && [ $n -lt 120 ]; do sleep 0.5; n=$((n+1)); done; \
             cat /tmp/got",
            Duration::from_secs(90),
        )
        .unwrap();
    let (_, sum) = peer.run("cat /tmp/sum", Duration::from_secs(5)).unwrap();
    let want = sum.split_whitespace().next().unwrap().to_owned();
    assert!(
        out.contains(&want),
        "stream after migration: {out}, sent {want}"
    );
    // The destination's rings start where the source's stopped: the ring positions QEMU
    // passes agree with the used rings in the migrated memory. (QEMU also marks used rings
    // dirty itself when it stops them, so this does not prove the switch's log; the unit
    // tests of `vring` do.)
    let resynced: Vec<String> = d
        .log()
        .lines()
        .filter(|l| l.contains("resumes at the guest's used index") && l.contains("mig-dst"))
        .map(str::to_owned)
        .collect();
    assert!(
        resynced.is_empty(),
        "stale used rings on the destination: {resynced:?}"
    );
    // A used ring or buffer the destination got stale would show as ring errors here.
    let dmesg = dst.sh("dmesg");
    let bad = [
        "not a head",
        "out of range",
        "unexpected",
        "broken",
        "bad checksum",
    ];
    assert!(
        !dmesg.lines().any(|l| bad.iter().any(|b| l.contains(b))),
        "guest kernel after migration:\n{dmesg}"
    );
    assert_pings(&mut peer, 1, 2, &d, "after the migration");
    assert!(status(&d, "mig-dst").contains("queues running"));
}

/// The OpenFlow number of `port` on `br`.
fn port_no(d: &Daemon, br: &str, port: &str) -> String {
    let out = d.ok(&["dump-ports", br, port]);
    out.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("port")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no port number in {out}"))
}
