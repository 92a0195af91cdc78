//! End-to-end tests of the network features with real interfaces in namespaces: VLAN access
//! and trunk ports with namespace VLAN sub-interfaces, patch ports between two bridges,
//! mirrors, and VXLAN against a Linux kernel `vxlan` device.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use flow_table::flow_syntax::{self, FlowMode};
use flow_table::testpkt::Pkt;
use flow_table::RuleFilter;
use ports::SystemMode;
use switch_core::{MirrorSpec, PortConfig, PortVlan, Switch, SwitchConfig};
use testkit::netns::{run, sh, unique, Host};
use testkit::require::{can_run, serial, Need};

const AFP: PortConfig = PortConfig::System {
    mode: SystemMode::AfPacket,
};

/// A switch without internal ports, so that the only frames are the test's.
fn quiet_switch() -> Switch {
    Switch::start(SwitchConfig {
        internal_ports: false,
        ..SwitchConfig::default()
    })
    .unwrap()
}

fn vlan(tag: Option<&str>, trunks: Option<&str>, mode: Option<&str>) -> PortVlan {
    PortVlan::parse(tag, trunks, mode).unwrap()
}

/// Adds a VLAN sub-interface `eth0.VID` with address `ip/24` to a host.
fn vlan_subif(h: &Host, vid: u16, ip: &str) {
    let name = format!("eth0.{vid}");
    run(&[
        "ip",
        "-n",
        &h.ns,
        "link",
        "add",
        "link",
        "eth0",
        "name",
        &name,
        "type",
        "vlan",
        "id",
        &vid.to_string(),
    ]);
    run(&[
        "ip",
        "-n",
        &h.ns,
        "addr",
        "add",
        &format!("{ip}/24"),
        "dev",
        &name,
    ]);
    run(&["ip", "-n", &h.ns, "link", "set", &name, "up"]);
}

fn add_flow(sw: &Switch, br: &str, text: &str) {
    let names = sw.ports(br).unwrap();
    let resolve = |n: &str| names.iter().find(|p| p.name == n).map(|p| p.port_no);
    let f = flow_syntax::parse_flow(text, FlowMode::Add, &resolve)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    sw.add_flow(br, f.to_rule_spec()).unwrap();
}

/// The far end of a trunk: a veth pair the test creates in the root namespace (no addresses,
/// IPv6 off), one end a switch port, the other read and written by the test through an
/// AF_PACKET socket, so the test sees and sets the 802.1Q tags itself. (This kernel may lack
/// 8021q, which VLAN sub-interfaces need; see `vlan_subifs_available`.)
struct RawTrunk {
    fd: OwnedFd,
    ifindex: i32,
    /// The end to add to the switch.
    port: String,
    mac: [u8; 6],
}

impl RawTrunk {
    fn new() -> RawTrunk {
        let port = unique("vswt");
        let me = unique("vswr");
        let _ = sh(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        run(&[
            "ip", "link", "add", &port, "type", "veth", "peer", "name", &me,
        ]);
        for i in [&port, &me] {
            let _ = sh(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{i}.disable_ipv6=1"),
            ]);
            run(&["ip", "link", "set", i, "up"]);
        }
        let ifindex: i32 = std::fs::read_to_string(format!("/sys/class/net/{me}/ifindex"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: plain socket creation; the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            )
        };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fd is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let on: i32 = 1;
        // SAFETY: valid option value pointer and length.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                (&on as *const i32).cast(),
                4,
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: all-zero sockaddr_ll is valid; the fields used are set.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll of that size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        RawTrunk {
            fd,
            ifindex,
            port,
            mac: [0x02, 0x42, 0, 0, 0, 0x33],
        }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: all-zero sockaddr_ll is valid; the fields used are set.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        // SAFETY: frame and sll are valid for the call.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            rc,
            frame.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }

    /// Frames arriving within `wait`: (VLAN id if tagged, frame without the tag).
    fn recv(&self, wait: Duration) -> Vec<(Option<u16>, Vec<u8>)> {
        let mut out = Vec::new();
        let end = std::time::Instant::now() + wait;
        while std::time::Instant::now() < end {
            let mut buf = [0u8; 2048];
            let mut cbuf = [0u64; 16];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: all-zero msghdr is valid; pointers set below outlive the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            // SAFETY: msg points at live buffers.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
            if n <= 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let mut vlan = None;
            // SAFETY: walking the control messages the kernel wrote into cbuf.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA
                    {
                        let aux: libc::tpacket_auxdata =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                            vlan = Some(aux.tp_vlan_tci & 0x0fff);
                        }
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            out.push((vlan, buf[..n as usize].to_vec()));
        }
        out
    }

    /// Asks for `ip` with an ARP request in VLAN `vlan` (untagged when `None`); returns the
    /// VLAN tags of the replies that came back.
    fn arp(&self, vlan: Option<u16>, ip: &str) -> Vec<Option<u16>> {
        let me: Ipv4Addr = "10.210.0.33".parse().unwrap();
        let tpa: Ipv4Addr = ip.parse().unwrap();
        let mut p = Pkt::arp_request(self.mac, me, tpa);
        if let Some(v) = vlan {
            p = p.vlan(v);
        }
        let _ = self.recv(Duration::ZERO);
        self.send(&p.build());
        self.recv(Duration::from_millis(500))
            .into_iter()
            .filter(|(_, f)| {
                f.len() >= 42
                    && f[12..14] == [8, 6]
                    && f[20..22] == [0, 2]
                    && f[28..32] == tpa.octets()
            })
            .map(|(v, _)| v)
            .collect()
    }
}

impl Drop for RawTrunk {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.port]);
    }
}

/// Whether this kernel makes VLAN sub-interfaces (8021q).
fn vlan_subifs_available() -> bool {
    let ns = unique("vswprobe");
    run(&["ip", "netns", "add", &ns]);
    let ok = sh(&[
        "ip", "-n", &ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ])
    .status
    .success()
        && sh(&[
            "ip", "-n", &ns, "link", "add", "link", "d0", "name", "d0.5", "type", "vlan", "id", "5",
        ])
        .status
        .success();
    let _ = sh(&["ip", "netns", "del", &ns]);
    ok
}

#[test]
fn vlan_access_trunk_and_native_ports_isolate_and_carry_vlans() {
    let _serial = serial();
    if !can_run("vlan_access_trunk", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    // VLAN 10 is 10.210.10.0/24, VLAN 20 is 10.210.20.0/24. h4 sits in VLAN 10 with an
    // address of VLAN 20's subnet: reaching it from VLAN 20 would mean the VLANs leak.
    let (h1, v1) = Host::veth("10.210.10.1");
    let (h2, v2) = Host::veth("10.210.20.2");
    let trunk = RawTrunk::new();
    let (h4, v4) = Host::veth("10.210.20.4");
    let (h5, v5) = Host::veth("10.210.10.5");
    let sw = quiet_switch();
    let br = unique("vsbr");
    sw.add_bridge(&br).unwrap();
    sw.add_port_vlan(&br, &v1, AFP, None, vlan(Some("10"), None, None))
        .unwrap();
    sw.add_port_vlan(&br, &v2, AFP, None, vlan(Some("20"), None, None))
        .unwrap();
    sw.add_port_vlan(&br, &trunk.port, AFP, None, vlan(None, Some("10,20"), None))
        .unwrap();
    sw.add_port_vlan(&br, &v4, AFP, None, vlan(Some("10"), None, None))
        .unwrap();
    sw.add_port_vlan(
        &br,
        &v5,
        AFP,
        None,
        vlan(Some("10"), Some("20"), Some("native-untagged")),
    )
    .unwrap();
    let shown: Vec<String> = sw
        .ports(&br)
        .unwrap()
        .iter()
        .map(|p| p.vlan.to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "tag=10",
            "tag=20",
            "trunks=10,20",
            "tag=10",
            "tag=10 trunks=20 vlan_mode=native-untagged"
        ]
    );

    // Tagged frames on the trunk reach the access hosts of their VLAN, whose replies come
    // back tagged with that VLAN.
    assert_eq!(
        trunk.arp(Some(10), "10.210.10.1"),
        [Some(10)],
        "VLAN 10 via trunk"
    );
    assert_eq!(
        trunk.arp(Some(20), "10.210.20.2"),
        [Some(20)],
        "VLAN 20 via trunk"
    );
    // The native-untagged port answers in VLAN 10 (untagged on its side).
    assert_eq!(
        trunk.arp(Some(10), "10.210.10.5"),
        [Some(10)],
        "native VLAN"
    );
    // Isolation: h4 holds 10.210.20.4 but is in VLAN 10; VLAN 20 does not reach it, VLAN 10
    // does.
    assert!(
        trunk.arp(Some(20), "10.210.20.4").is_empty(),
        "VLAN 20 reached VLAN 10"
    );
    assert_eq!(trunk.arp(Some(10), "10.210.20.4"), [Some(10)]);
    // VLAN 30 is not on the trunk, and neither is untagged traffic (VLAN 0).
    assert!(trunk.arp(Some(30), "10.210.10.1").is_empty());
    assert!(trunk.arp(None, "10.210.10.1").is_empty());
    // Access hosts: within VLAN 10 (h1, h5 native) they reach each other; across not.
    let wait = Duration::from_secs(5);
    assert!(
        h5.ping_until_ok("10.210.10.1", wait),
        "native VLAN untagged"
    );
    assert!(!h2.ping("10.210.20.4", 2), "VLAN 20 reached h4 in VLAN 10");
    // Learning is per VLAN: the trunk's MAC is known in both VLANs.
    let fdb = sw.fdb(&br).unwrap();
    let trunk_vlans: Vec<u16> = fdb.iter().filter(|r| r.port == 3).map(|r| r.vlan).collect();
    assert!(
        trunk_vlans.contains(&10) && trunk_vlans.contains(&20),
        "{fdb:?}"
    );

    // Moving h4 into VLAN 20 takes effect at once.
    sw.set_port_vlan(&br, &v4, vlan(Some("20"), None, None))
        .unwrap();
    assert!(
        h2.ping_until_ok("10.210.20.4", wait),
        "after moving to VLAN 20"
    );
    assert_eq!(trunk.arp(Some(20), "10.210.20.4"), [Some(20)]);
    assert!(trunk.arp(Some(10), "10.210.20.4").is_empty());

    // With 8021q, a namespace trunk with VLAN sub-interfaces in both VLANs.
    if vlan_subifs_available() {
        let (h3, v3) = Host::veth("10.210.99.3");
        vlan_subif(&h3, 10, "10.210.10.3");
        vlan_subif(&h3, 20, "10.210.20.3");
        sw.add_port_vlan(&br, &v3, AFP, None, vlan(None, Some("10,20"), None))
            .unwrap();
        assert!(
            h1.ping_until_ok("10.210.10.3", wait),
            "VLAN 10 sub-interface"
        );
        assert!(
            h2.ping_until_ok("10.210.20.3", wait),
            "VLAN 20 sub-interface"
        );
    } else {
        eprintln!(
            "note: this kernel has no 8021q (VLAN sub-interfaces); the trunk was checked with \
             tagged frames from an AF_PACKET socket only"
        );
    }
    drop((h1, h2, h4, h5));
}

#[test]
fn patch_ports_join_two_bridges() {
    let _serial = serial();
    if !can_run("patch_ports", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let (h1, v1) = Host::veth("10.211.0.1");
    let (h2, v2) = Host::veth("10.211.0.2");
    let sw = quiet_switch();
    let (a, b) = (unique("vsbr"), unique("vsbr"));
    sw.add_bridge(&a).unwrap();
    sw.add_bridge(&b).unwrap();
    sw.add_port(&a, &v1, AFP, None).unwrap();
    sw.add_port(&b, &v2, AFP, None).unwrap();
    let pa = unique("pa");
    let pb = unique("pb");
    let patch = |peer: &str| PortConfig::Patch {
        peer: peer.to_owned(),
    };
    sw.add_port(&a, &pa, patch(&pb), None).unwrap();
    assert!(!h1.ping("10.211.0.2", 1), "half a pair joins nothing");
    assert!(!sw.ports(&a).unwrap()[1].link_up);
    sw.add_port(&b, &pb, patch(&pa), None).unwrap();
    assert!(sw.ports(&a).unwrap()[1].link_up, "peer found");
    assert!(
        h1.ping_until_ok("10.211.0.2", Duration::from_secs(5)),
        "ping across the patch"
    );
    assert!(h2.ping("10.211.0.1", 3));
    let pa_stats = sw.ports(&a).unwrap()[1].stats;
    let pb_stats = sw.ports(&b).unwrap()[1].stats;
    assert!(pa_stats.tx_packets >= 4, "{pa_stats:?}");
    assert!(pb_stats.rx_packets >= 4, "{pb_stats:?}");
    // Both bridges learned: h2 behind the patch port on a, h1 behind it on b.
    assert!(sw.fdb(&a).unwrap().iter().any(|r| r.port == 2));
    assert!(sw.fdb(&b).unwrap().iter().any(|r| r.port == 2));
    sw.del_port(&b, &pb).unwrap();
    assert!(!h1.ping("10.211.0.2", 2), "the pair is broken");
    assert!(!sw.ports(&a).unwrap()[1].link_up);
}

#[test]
fn mirror_copies_selected_traffic_to_the_output_port() {
    let _serial = serial();
    if !can_run("mirror", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let (h1, v1) = Host::veth("10.212.0.1");
    let (h2, v2) = Host::veth("10.212.0.2");
    let (h3, v3) = Host::veth("10.212.0.3");
    h1.arp(&h2.ip, &h2.mac());
    h2.arp(&h1.ip, &h1.mac());
    let sw = quiet_switch();
    let br = unique("vsbr");
    sw.add_bridge(&br).unwrap();
    for v in [&v1, &v2, &v3] {
        sw.add_port(&br, v, AFP, None).unwrap();
    }
    // Learn both addresses, then h3 sees nothing of their unicast traffic.
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    let rx3 = || {
        let o = h3.exec(&["cat", "/sys/class/net/eth0/statistics/rx_packets"]);
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let before = rx3();
    assert!(h1.ping(&h2.ip, 5));
    assert_eq!(rx3(), before, "no mirror: nothing reaches h3");

    // Mirror what h1 sends: the 5 requests, not the replies.
    sw.add_mirror(
        &br,
        MirrorSpec {
            name: "m1".into(),
            select_src: vec![v1.clone()],
            output: v3.clone(),
            ..MirrorSpec::default()
        },
    )
    .unwrap();
    let before = rx3();
    assert!(h1.ping(&h2.ip, 5));
    assert_eq!(rx3() - before, 5, "the requests were mirrored");
    // Mirror both directions: select-dst-port adds the replies.
    assert!(sw.del_mirror(&br, "m1").unwrap());
    sw.add_mirror(
        &br,
        MirrorSpec {
            name: "m2".into(),
            select_src: vec![v1.clone()],
            select_dst: vec![v1.clone()],
            output: v3.clone(),
            ..MirrorSpec::default()
        },
    )
    .unwrap();
    let before = rx3();
    assert!(h1.ping(&h2.ip, 5));
    assert_eq!(rx3() - before, 10, "requests and replies were mirrored");
    // h3 could see it with tcpdump too: the copies are the real frames.
    assert!(sw.del_mirror(&br, "m2").unwrap());
    let before = rx3();
    assert!(h1.ping(&h2.ip, 3));
    assert_eq!(rx3(), before, "mirror removed");
    // Bad mirrors are refused with the reason.
    let e = sw
        .add_mirror(
            &br,
            MirrorSpec {
                name: "m3".into(),
                output: v3.clone(),
                ..MirrorSpec::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("needs select"), "{e}");
}

/// An underlay link from the root namespace to a new namespace holding a kernel VXLAN device
/// (VNI 42, UDP 4789) with `inner_ip`; removed on drop.
struct KernelVtep {
    host: Host,
    local: Ipv4Addr,
    remote: Ipv4Addr,
}

impl KernelVtep {
    fn new(inner_ip: &str) -> KernelVtep {
        // 10.253.X.0/30 on a veth pair the test creates; X from the pid so runs don't collide.
        let x = std::process::id() % 250;
        let local = Ipv4Addr::new(10, 253, x as u8, 1);
        let remote = Ipv4Addr::new(10, 253, x as u8, 2);
        let (host, outer) = Host::veth(&remote.to_string());
        run(&["ip", "addr", "add", &format!("{local}/30"), "dev", &outer]);
        let _ = sh(&["ip", "-n", &host.ns, "addr", "flush", "dev", "eth0"]);
        run(&[
            "ip",
            "-n",
            &host.ns,
            "addr",
            "add",
            &format!("{remote}/30"),
            "dev",
            "eth0",
        ]);
        run(&[
            "ip",
            "-n",
            &host.ns,
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            "42",
            "remote",
            &local.to_string(),
            "local",
            &remote.to_string(),
            "dstport",
            "4789",
            "dev",
            "eth0",
        ]);
        run(&[
            "ip",
            "-n",
            &host.ns,
            "addr",
            "add",
            &format!("{inner_ip}/24"),
            "dev",
            "vx0",
        ]);
        run(&["ip", "-n", &host.ns, "link", "set", "vx0", "up"]);
        KernelVtep {
            host,
            local,
            remote,
        }
    }

    fn ping(&self, ip: &str, count: u32) -> bool {
        self.host.ping(ip, count)
    }
}

#[test]
fn vxlan_interoperates_with_the_kernel_vxlan_device() {
    let _serial = serial();
    if !can_run("vxlan_interop", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let vtep = KernelVtep::new("10.254.0.2");
    let (h1, v1) = Host::veth("10.254.0.1");
    let sw = quiet_switch();
    let br = unique("vsbr");
    sw.add_bridge(&br).unwrap();
    sw.add_port(&br, &v1, AFP, None).unwrap();
    let vx = unique("vx");
    let tunnel = |key: Option<u32>| PortConfig::Vxlan {
        remote_ip: vtep.remote,
        local_ip: Some(vtep.local),
        key,
        dst_port: 4789,
        csum: false,
        df: true,
    };
    sw.add_port(&br, &vx, tunnel(Some(42)), None).unwrap();
    let wait = Duration::from_secs(5);
    assert!(
        h1.ping_until_ok("10.254.0.2", wait),
        "vswitch -> kernel vxlan"
    );
    assert!(vtep.ping("10.254.0.1", 3), "kernel vxlan -> vswitch");
    let st = sw.ports(&br).unwrap()[1].stats;
    assert!(st.rx_packets >= 4 && st.tx_packets >= 4, "{st:?}");

    // Tunnel metadata is matchable: drop what comes from this VNI and this far end.
    let drop_rule = format!(
        "priority=200,tun_id=42,tun_src={},icmp,actions=drop",
        vtep.remote
    );
    add_flow(&sw, &br, &drop_rule);
    assert!(!h1.ping("10.254.0.2", 2), "replies from VNI 42 are dropped");
    let other = "priority=200,tun_id=43,icmp";
    let gone = sw
        .del_flows(
            &br,
            &RuleFilter::matching(
                flow_syntax::parse_flow(
                    &drop_rule.replace(",actions=drop", ""),
                    FlowMode::Delete,
                    &|_| None,
                )
                .unwrap()
                .r#match,
                200,
            ),
            true,
        )
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert!(
        gone[0].stats.packets() >= 2,
        "the rule saw the tunnel packets"
    );
    add_flow(&sw, &br, &format!("{other},actions=drop"));
    assert!(
        h1.ping("10.254.0.2", 2),
        "VNI 43 rule does not match VNI 42"
    );

    // key=flow: the VNI comes from set_tunnel, and any VNI is received.
    sw.del_port(&br, &vx).unwrap();
    sw.add_port(&br, &vx, tunnel(None), None).unwrap();
    sw.del_flows(&br, &RuleFilter::all(), false).unwrap();
    add_flow(
        &sw,
        &br,
        &format!("in_port={v1},actions=set_tunnel:42,output:{vx}"),
    );
    add_flow(
        &sw,
        &br,
        &format!("in_port={vx},tun_id=42,actions=output:{v1}"),
    );
    assert!(
        h1.ping_until_ok("10.254.0.2", wait),
        "key=flow with set_tunnel"
    );
    assert!(vtep.ping("10.254.0.1", 2));
    // A wrong VNI reaches nobody.
    sw.del_flows(&br, &RuleFilter::all(), false).unwrap();
    add_flow(
        &sw,
        &br,
        &format!("in_port={v1},actions=set_field:7->tun_id,output:{vx}"),
    );
    add_flow(&sw, &br, &format!("in_port={vx},actions=output:{v1}"));
    assert!(
        !h1.ping("10.254.0.2", 2),
        "VNI 7 is not the kernel's VNI 42"
    );
    drop(vtep);
}
