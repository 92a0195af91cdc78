//! The offload matrix (issue 20): a TCP stream of a seeded random file from every kind of port
//! to every other through a running vswitchd, in IPv4 and IPv6, untagged and across VLAN
//! trunks, each checked at the far end by the SHA-256 of what arrived.
//!
//! The endpoints are hosts, one per port kind, in namespaces the test creates (and a guest):
//!
//! | kind | the switch's port | the host's interface |
//! |---|---|---|
//! | `tap` | `type=tap` (offloads on) | the tap itself, moved into the namespace |
//! | `tap-nooffl` | `type=tap offloads=false` | the same |
//! | `afpacket` | a veth, `mode=afpacket` | the veth's other end |
//! | `afxdp` | a veth, `mode=afxdp` | the veth's other end, checksum offload off |
//! | `vxlan` | `type=vxlan` over a veth underlay | a Linux `vxlan` device |
//! | `guest` | `type=vhostuser` | a QEMU guest's virtio-net (TCG), busybox `nc` |
//!
//! The senders use TSO where their interface has it (taps with offloads, veths, the vxlan
//! device, the guest's virtio-net), so TCP super-frames enter the switch from `tap`,
//! `afpacket` and `guest` (AF_XDP and VXLAN ports receive none). Every cell also checks where
//! they were cut: in software before the outputs that cannot take them (`tap-nooffl`,
//! `afxdp`, `vxlan`: their `tx in software: segments=` grows) and nowhere before those that
//! can (`tap`, whose host receives them whole, `afpacket`, `guest`). The guest sends a file of
//! its own (`/dev/urandom`, hashed in the guest) and hashes what it receives with
//! `sha256sum`; without QEMU or its image the guest's cells are skipped, loudly.
//!
//! The VLAN pass: the `tap` and `guest` ports become access ports of VLAN 10 (`tag=10`, their
//! hosts stay untagged; the guest has no 802.1Q module) and the other ports trunks
//! (`trunks=10`) whose hosts send and receive VLAN 10 frames, so super-frames cross tagged
//! and get the tag pushed (from `tap`, `guest`) or popped (to them) on the way. This kernel has
//! no 802.1Q module either (no `type vlan` links): the trunk hosts tag and untag with two BPF
//! programs on their interface ([`VlanTag`]), which keep the tag in the skb's metadata as a
//! VLAN device would, so the hosts' TSO still applies.

mod support;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::Daemon;
use testkit::netns::{self, seeded_file, send_file, sha256, unique, Netns, Receiver, VlanTag};
use testkit::qemu::{image_or_skip, Guest, GuestConfig, GuestImage, VhostUserNic};
use testkit::require::{can_run, serial, Need};

/// Bytes per stream: enough for dozens of 64 KB super-frames, few enough for 120 cells.
const FILE_LEN: usize = 4 << 20;
/// Mean frame size above which frames larger than the MTU (1500 + 18 bytes) must have
/// crossed: TSO super-frames. (Not 64 KB: a sender's TSO frames shrink with its pacing rate,
/// so a TCG guest's average a few KB, and once in CI 1999 B: any mean above 1518 B already
/// proves frames above the MTU, 1600 leaves a margin.)
const SUPER_FRAMES: u64 = 1600;
/// The VLAN of the tagged pass.
const VLAN: u16 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tap,
    TapNoOffload,
    AfPacket,
    AfXdp,
    Vxlan,
    Guest,
}

impl Kind {
    /// The kinds whose hosts are namespaces.
    const NAMESPACES: [Kind; 5] = [
        Kind::Tap,
        Kind::TapNoOffload,
        Kind::AfPacket,
        Kind::AfXdp,
        Kind::Vxlan,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Tap => "tap",
            Kind::TapNoOffload => "tap-nooffl",
            Kind::AfPacket => "afpacket",
            Kind::AfXdp => "afxdp",
            Kind::Vxlan => "vxlan",
            Kind::Guest => "guest",
        }
    }

    /// Whether TCP super-frames reach the switch from a host of this kind: its interface does
    /// TSO and the port takes the frames whole (AF_XDP and VXLAN take none, and a tap without
    /// offloads offers its host no TSO).
    fn sends_super_frames(self) -> bool {
        matches!(self, Kind::Tap | Kind::AfPacket | Kind::Guest)
    }

    /// Whether the switch must cut super-frames into segments before this output.
    fn needs_software_gso(self) -> bool {
        matches!(self, Kind::TapNoOffload | Kind::AfXdp | Kind::Vxlan)
    }

    /// Whether the port is an access port (untagged host) in the VLAN pass.
    fn access_in_vlan_pass(self) -> bool {
        matches!(self, Kind::Tap | Kind::Guest)
    }
}

/// One host on the switch: a namespace or a guest, the switch's port for it, and its
/// addresses `10.79.0.H` and `fd79::H`.
struct Endpoint {
    kind: Kind,
    port: String,
    /// The interface joined to the switch, in the host.
    dev: String,
    host: u8,
    /// The host's VLAN tagging in the VLAN pass, on trunk ports.
    vlan: Option<VlanTag>,
    at: At,
}

/// Where a host runs.
enum At {
    Ns(Netns),
    /// The guest, and the SHA-256 of the file it sends (`/tmp/src`).
    Guest(Box<RefCell<Guest>>, String),
}

/// The guest's file to send and where it writes what it receives.
const GUEST_SRC: &str = "/tmp/src";
const GUEST_GOT: &str = "/tmp/got";

impl Endpoint {
    /// Creates the namespace and the port of `kind` on `br`, and addresses the host.
    fn new(d: &Daemon, br: &str, kind: Kind, host: u8) -> Endpoint {
        let ns = Netns::new();
        // testkit's namespaces start with IPv6 off; this host speaks both.
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=0",
            "net.ipv6.conf.default.disable_ipv6=0",
        ]);
        let (port, dev) = match kind {
            Kind::Tap | Kind::TapNoOffload => {
                let tap = unique("mxt");
                let offloads = if kind == Kind::Tap {
                    "offloads=true"
                } else {
                    "offloads=false"
                };
                d.ok(&["add-port", br, &tap, "type=tap", offloads]);
                // The switch keeps the tap's descriptor: the device works from any namespace.
                netns::run(&["ip", "link", "set", &tap, "netns", &ns.name]);
                (tap.clone(), tap)
            }
            Kind::AfPacket | Kind::AfXdp => {
                let veth = unique("mxv");
                netns::run(&[
                    "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                    &ns.name,
                ]);
                quiet_v6(&veth);
                netns::run(&["ip", "link", "set", &veth, "up"]);
                if kind == Kind::AfXdp {
                    // AF_XDP carries no offload metadata: the host must send complete
                    // checksums (and so, no TSO).
                    ns.exec(&["ethtool", "-K", "eth0", "tx", "off"]);
                }
                let mode = if kind == Kind::AfXdp {
                    "mode=afxdp"
                } else {
                    "mode=afpacket"
                };
                d.ok(&["add-port", br, &veth, "type=system", mode]);
                (veth, "eth0".to_owned())
            }
            Kind::Vxlan => {
                // Underlay 10.252.X.0/30 on a veth (X from the pid, so runs don't collide),
                // 1600 bytes so the inner MTU is the others' 1500.
                let x = std::process::id() % 250;
                let (local, remote) = (format!("10.252.{x}.1"), format!("10.252.{x}.2"));
                let under = unique("mxu");
                netns::run(&[
                    "ip", "link", "add", &under, "mtu", "1600", "type", "veth", "peer", "name",
                    "eth0", "netns", &ns.name,
                ]);
                quiet_v6(&under);
                netns::run(&["ip", "addr", "add", &format!("{local}/30"), "dev", &under]);
                netns::run(&["ip", "link", "set", &under, "up"]);
                ns.ip(&["link", "set", "eth0", "mtu", "1600", "up"]);
                // The underlay keeps its checksum offload (veth's default): the datagrams
                // reach the switch's UDP socket with the inner TCP checksum still partial,
                // which the port must notice (ports::checksum::unfinished_l4).
                ns.ip(&["addr", "add", &format!("{remote}/30"), "dev", "eth0"]);
                ns.ip(&[
                    "link", "add", "vx0", "mtu", "1500", "type", "vxlan", "id", "42", "remote",
                    &local, "local", &remote, "dstport", "4789", "dev", "eth0",
                ]);
                let port = unique("mxx");
                d.ok(&[
                    "add-port",
                    br,
                    &port,
                    "type=vxlan",
                    &format!("remote_ip={remote}"),
                    &format!("local_ip={local}"),
                    "key=42",
                ]);
                (port, "vx0".to_owned())
            }
            Kind::Guest => unreachable!("Endpoint::guest"),
        };
        let e = Endpoint {
            kind,
            port,
            dev,
            host,
            vlan: None,
            at: At::Ns(ns),
        };
        e.address();
        e
    }

    /// Boots a guest on a `vhostuser` port of `br`, addresses it and has it make its file.
    fn guest(d: &Daemon, br: &str, image: &GuestImage, host: u8) -> Endpoint {
        let port = unique("mxg");
        d.ok(&["add-port", br, &port, "type=vhostuser"]);
        let nic = VhostUserNic::new(d.run.join(&port));
        let mut vm = Guest::boot(image, GuestConfig::new("matrix").vhost_user(nic))
            .expect("the guest boots");
        // IPv6 usable at once: no duplicate address detection (busybox's ip has no nodad).
        vm.sh("echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad");
        vm.configure_ip("eth0", &format!("{}/24", v4(host)));
        vm.sh(&format!("ip -6 addr add {}/64 dev eth0", v6(host)));
        let sum = vm.random_file(GUEST_SRC, (FILE_LEN >> 20) as u32);
        Endpoint {
            kind: Kind::Guest,
            port,
            dev: "eth0".into(),
            host,
            vlan: None,
            at: At::Guest(Box::new(RefCell::new(vm)), sum),
        }
    }

    /// The host's namespace (not for the guest).
    fn ns(&self) -> &Netns {
        match &self.at {
            At::Ns(ns) => ns,
            At::Guest(..) => panic!("the guest has no namespace"),
        }
    }

    fn v4(&self) -> String {
        v4(self.host)
    }

    fn v6(&self) -> String {
        v6(self.host)
    }

    /// Addresses the host (IPv6 without duplicate detection: usable at once).
    fn address(&self) {
        let dev = &self.dev;
        self.ns().exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
        ]);
        self.ns()
            .ip(&["addr", "add", &format!("{}/24", self.v4()), "dev", dev]);
        self.ns().ip(&[
            "addr",
            "add",
            &format!("{}/64", self.v6()),
            "dev",
            dev,
            "nodad",
        ]);
        self.ns().ip(&["link", "set", dev, "up"]);
    }

    /// The VLAN pass: an access port of [`VLAN`] (the host unchanged), or a trunk whose host
    /// tags what it sends.
    fn join_vlan(&mut self, d: &Daemon, br: &str) {
        if self.kind.access_in_vlan_pass() {
            d.ok(&["set-port", br, &self.port, &format!("tag={VLAN}")]);
            return;
        }
        d.ok(&["set-port", br, &self.port, &format!("trunks={VLAN}")]);
        if self.kind == Kind::AfXdp {
            // XDP sees only the frame's bytes: the tag must be in them, not in the metadata.
            self.ns()
                .exec(&["ethtool", "-K", &self.dev, "txvlan", "off"]);
        }
        self.vlan = Some(
            VlanTag::attach(self.ns(), &self.dev, VLAN)
                .unwrap_or_else(|e| panic!("{}: {e}", self.kind.name())),
        );
    }

    /// `(rx_packets, rx_bytes)` of the host's interface to the switch, as its kernel counts
    /// them (a 64 KB GSO frame is one packet).
    fn host_rx(&self) -> (u64, u64) {
        let At::Ns(ns) = &self.at else {
            return (0, 0); // not looked at for the guest
        };
        let stat = |s: &str| -> u64 {
            let o = netns::sh(&[
                "ip",
                "netns",
                "exec",
                &ns.name,
                "cat",
                &format!("/sys/class/net/{}/statistics/{s}", self.dev),
            ]);
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(0)
        };
        (stat("rx_packets"), stat("rx_bytes"))
    }

    /// `ethtool -k` of the host's interface.
    fn features(&self) -> String {
        let o = netns::sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns().name,
            "ethtool",
            "-k",
            &self.dev,
        ]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// Host `host`'s addresses.
fn v4(host: u8) -> String {
    format!("10.79.0.{host}")
}

fn v6(host: u8) -> String {
    format!("fd79::{host}")
}

/// No IPv6 on a root-namespace veth end: its router solicitations would only add noise.
fn quiet_v6(ifname: &str) {
    let _ = netns::sh(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{ifname}.disable_ipv6=1"),
    ]);
}

/// A port's counters from `vswitchctl dump-ports BR PORT`.
#[derive(Clone, Copy, Debug, Default)]
struct PortCounts {
    rx_pkts: u64,
    rx_bytes: u64,
    tx_pkts: u64,
    tx_bytes: u64,
    /// Segments the switch made in software for this output.
    segments: u64,
}

fn counts(d: &Daemon, br: &str, port: &str) -> PortCounts {
    let out = d.ok(&["dump-ports", br, port]);
    let num = |after: &str, key: &str| -> Option<u64> {
        let rest = &out[out.find(after)? + after.len()..];
        let rest = &rest[rest.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    PortCounts {
        rx_pkts: num("", "rx pkts=").unwrap_or_else(|| panic!("no rx in {out}")),
        rx_bytes: num("rx pkts=", "bytes=").unwrap_or(0),
        tx_pkts: num("", "tx pkts=").unwrap_or_else(|| panic!("no tx in {out}")),
        tx_bytes: num("tx pkts=", "bytes=").unwrap_or(0),
        segments: num("", "tx in software: segments=").unwrap_or(0),
    }
}

/// The address family of a pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// One stream: `from`'s host sends a fresh file to `to`'s host; the SHA-256 of what arrived
/// must be the file's, and the offloads must have been done where they belong. `Err` says why
/// not.
fn cell(
    d: &Daemon,
    br: &str,
    from: &Endpoint,
    to: &Endpoint,
    family: Family,
    tcp_port: u16,
    dir: &Path,
) -> Result<String, String> {
    let file = dir.join("sent");
    let got = dir.join("got");
    let _ = std::fs::remove_file(&got);
    let want = match &from.at {
        At::Guest(_, sum) => sum.clone(),
        At::Ns(_) => {
            seeded_file(&file, FILE_LEN, u64::from(tcp_port)).map_err(|e| e.to_string())?;
            sha256(&file)
        }
    };
    let ip = match family {
        Family::V4 => to.v4(),
        Family::V6 => to.v6(),
    };
    let addr = SocketAddr::new(ip.parse().unwrap(), tcp_port);

    let (src0, dst0, host0) = (
        counts(d, br, &from.port),
        counts(d, br, &to.port),
        to.host_rx(),
    );
    let start = Instant::now();
    let (sent, received) = match (&from.at, &to.at) {
        (At::Ns(src), At::Ns(dst)) => {
            let rx = Receiver::start(dst, addr, &got).map_err(|e| format!("listen: {e}"))?;
            let sent = send_file(src, addr, &file).map(drop);
            (sent, rx.finish())
        }
        (At::Ns(src), At::Guest(vm, _)) => {
            vm.borrow_mut().receive_file(tcp_port, GUEST_GOT);
            let sent = send_file(src, addr, &file).map(drop);
            let got =
                vm.borrow_mut()
                    .finish_file(GUEST_GOT, FILE_LEN as u64, Duration::from_secs(20));
            (sent, got)
        }
        (At::Guest(vm, _), At::Ns(dst)) => {
            let rx = Receiver::start(dst, addr, &got).map_err(|e| format!("listen: {e}"))?;
            let sent = vm
                .borrow_mut()
                .send_file(&ip, tcp_port, GUEST_SRC, Duration::from_secs(60));
            (sent, rx.finish())
        }
        (At::Guest(..), At::Guest(..)) => unreachable!("one guest"),
    };
    let took = start.elapsed();
    sent.map_err(|e| format!("send: {e}"))?;
    let (n, sum) = received.map_err(|e| format!("receive: {e}"))?;
    if n != FILE_LEN as u64 || sum != want {
        return Err(format!(
            "{n} of {FILE_LEN} bytes arrived; sha256 {sum}, want {want}"
        ));
    }
    let (src1, dst1, host1) = (
        counts(d, br, &from.port),
        counts(d, br, &to.port),
        to.host_rx(),
    );

    // Where the super-frames went: entered whole, cut in software only before outputs that
    // cannot take them.
    let rx_frame = (src1.rx_bytes - src0.rx_bytes) / (src1.rx_pkts - src0.rx_pkts).max(1);
    let segments = dst1.segments - dst0.segments;
    let host_frame = (host1.1 - host0.1) / (host1.0 - host0.0).max(1);
    let tx_frame = (dst1.tx_bytes - dst0.tx_bytes) / (dst1.tx_pkts - dst0.tx_pkts).max(1);
    let note = format!(
        "{:.0} Mbit/s; frames in {rx_frame} B, out {tx_frame} B, at the host {host_frame} B; \
         segments made {segments}",
        FILE_LEN as f64 * 8.0 / took.as_secs_f64() / 1e6
    );
    let mut wrong = Vec::new();
    if from.kind.sends_super_frames() {
        if rx_frame < SUPER_FRAMES {
            wrong.push("no super-frames entered from the sender");
        }
        if to.kind.needs_software_gso() && segments < (FILE_LEN / 65536) as u64 {
            wrong.push("too few segments made in software for an output without GSO");
        }
        if to.kind == Kind::Tap && host_frame < SUPER_FRAMES {
            wrong.push("the tap's host did not receive the super-frames whole");
        }
    }
    if !to.kind.needs_software_gso() && segments != 0 {
        wrong.push("segmented in software for an output that takes GSO");
    }
    if to.kind == Kind::TapNoOffload && host_frame > 1522 {
        wrong.push("frames above the MTU reached a tap without offloads");
    }
    if wrong.is_empty() {
        Ok(note)
    } else {
        Err(format!("{}: {note}", wrong.join("; ")))
    }
}

#[test]
fn tcp_streams_cross_every_pair_of_port_kinds_intact() {
    let _serial = serial();
    if !can_run(
        "tcp_streams_cross_every_pair_of_port_kinds_intact",
        &[
            Need::Netns,
            Need::Tun,
            Need::Tool("ethtool"),
            Need::Tool("sha256sum"),
        ],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", "");
    let br = unique("mxbr");
    d.ok(&["add-br", &br]);
    let mut hosts: Vec<Endpoint> = Kind::NAMESPACES
        .iter()
        .zip(1u8..)
        .map(|(&k, h)| Endpoint::new(&d, &br, k, h))
        .collect();
    // The guest's cells need QEMU and the guest image; without, they are skipped loudly.
    if let Some(image) = image_or_skip("tcp_streams_cross_every_pair_of_port_kinds_intact (guest)")
    {
        let booted = Instant::now();
        hosts.push(Endpoint::guest(&d, &br, image, 6));
        eprintln!("guest up in {:.0?}", booted.elapsed());
    }

    // The taps as their hosts see them: TSO with the switch's offloads, none without.
    let tso = |e: &Endpoint| e.features().contains("tcp-segmentation-offload: on");
    assert!(tso(&hosts[0]), "tap with offloads: {}", hosts[0].features());
    assert!(
        !tso(&hosts[1]),
        "tap with offloads=false: {}",
        hosts[1].features()
    );

    let mut table: Vec<(String, Result<String, String>)> = Vec::new();
    let mut tcp_port = 6000u16;
    for vlan in [false, true] {
        if vlan {
            for h in &mut hosts {
                h.join_vlan(&d, &br);
            }
        }
        for family in [Family::V4, Family::V6] {
            for from in &hosts {
                for to in hosts.iter().filter(|t| t.kind != from.kind) {
                    tcp_port += 1;
                    let name = format!(
                        "{:>10} -> {:<10} {} {}",
                        from.kind.name(),
                        to.kind.name(),
                        if family == Family::V4 { "IPv4" } else { "IPv6" },
                        if vlan { "VLAN 10" } else { "untagged" },
                    );
                    let r = cell(&d, &br, from, to, family, tcp_port, dir.path());
                    eprintln!(
                        "{name}: {}",
                        match &r {
                            Ok(n) => format!("PASS ({n})"),
                            Err(e) => format!("FAIL: {e}"),
                        }
                    );
                    table.push((name, r));
                }
            }
        }
    }

    let mut report = String::new();
    for (name, r) in &table {
        let _ = writeln!(
            report,
            "{name}  {}",
            match r {
                Ok(_) => "PASS".to_owned(),
                Err(e) => format!("FAIL  {e}"),
            }
        );
    }
    let failed = table.iter().filter(|(_, r)| r.is_err()).count();
    eprintln!(
        "offload matrix: {} cells, {failed} failed\n{report}",
        table.len()
    );
    assert!(
        failed == 0,
        "{failed} of {} cells failed:\n{report}\ndump-ports:\n{}\nlog:\n{}",
        table.len(),
        d.ok(&["dump-ports", &br]),
        d.log()
    );
    // The hosts (namespaces with their veths, the guest) go before the switch's taps.
    drop(hosts);
}
