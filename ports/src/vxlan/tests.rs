//! Tests of VXLAN ports: loopback round trips, segmentation with and without UDP GSO, and
//! the outer headers as configured, checked at a Linux vxlan device in namespaces.

use super::*;
use crate::pool::PoolConfig;

/// Two ports on loopback, each the other's remote: a frame sent by one arrives at the
/// other without its VXLAN header and with the VNI and source as metadata.
#[test]
fn loopback_round_trip_with_fixed_and_flow_keys() {
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 64,
        ..PoolConfig::default()
    })
    .unwrap();
    let lo = Ipv4Addr::LOCALHOST;
    // Ports derived from the pid so parallel runs do not collide.
    let base = 20000 + (std::process::id() % 20000) as u16;
    let mut a_cfg = VxlanConfig::new("vxa", lo, Some(42));
    a_cfg.local_ip = Some(lo);
    a_cfg.dst_port = base;
    let mut b_cfg = VxlanConfig::new("vxb", lo, None);
    b_cfg.local_ip = Some(lo);
    b_cfg.dst_port = base;
    let mut a = VxlanPort::open_instances(&a_cfg, 1).unwrap().remove(0);
    // The same local address and port again is refused, with a clear reason.
    let e = VxlanPort::open_instances(&b_cfg, 1).err().unwrap();
    assert!(e.to_string().contains("in use"), "{e}");
    // b listens on base+1 and a sends there.
    b_cfg.dst_port = base + 1;
    let mut b = VxlanPort::open_instances(&b_cfg, 2).unwrap();
    assert_eq!(b[1].n_rxq(), 0, "only instance 0 receives");
    a.cfg.dst_port = base + 1;
    a.set_port_no(5);
    b[0].set_port_no(6);

    let frame: Vec<u8> = (0..60u8).collect();
    let mut batch = PacketBatch::new();
    let mut p = pool.alloc().unwrap();
    assert!(p.set_data(&frame));
    let _ = batch.push(p);
    a.tx_burst(0, &mut pool, &mut batch);
    assert_eq!(a.stats().tx_packets, 1, "{:?}", a.stats());

    let mut got = PacketBatch::new();
    for _ in 0..100 {
        if b[0].rx_burst(0, &mut pool, &mut got) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let p = got.pop().expect("the datagram arrived");
    assert_eq!(p.data(), &frame[..]);
    assert_eq!(p.tun.id, 42);
    assert_eq!(p.tun.src, u32::from(lo));
    assert_eq!(p.in_port, 6);
    pool.free(p);

    // key=flow sends the packet's tun_id; a fixed-key receiver drops other VNIs.
    a.cfg.dst_port = base; // a listens on base
    b[1].cfg.dst_port = base;
    let mut p = pool.alloc().unwrap();
    assert!(p.set_data(&frame));
    p.tun.id = 7;
    let _ = batch.push(p);
    b[1].tx_burst(0, &mut pool, &mut batch);
    let mut got = PacketBatch::new();
    for _ in 0..20 {
        a.rx_burst(0, &mut pool, &mut got);
        if a.stats().rx_errors > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(got.is_empty(), "VNI 7 is not key 42");
    assert_eq!(a.stats().rx_errors, 1);
}

/// A GSO packet leaves as one datagram per segment, each with the VXLAN header.
#[test]
fn gso_packets_leave_as_segments() {
    use crate::gso::tests::{big_pool, payload_bytes, super_frame, Spec};
    let mut pool = big_pool(16);
    let lo = Ipv4Addr::LOCALHOST;
    let rx = std::net::UdpSocket::bind((lo, 0)).unwrap();
    rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    // Ports derived from the pid, away from the range the test above uses.
    let base = 40000 + (std::process::id() % 20000) as u16;
    let mut cfg = VxlanConfig::new("vxg", lo, Some(9));
    cfg.local_ip = Some(lo);
    cfg.dst_port = base;
    let mut a = VxlanPort::open_instances(&cfg, 1).unwrap().remove(0);
    a.cfg.dst_port = rx.local_addr().unwrap().port();
    let s = Spec {
        v6: true,
        vlans: 0,
        ip_opts: 0,
        flags: 0x19,
        mss: 1000,
    };
    let (frame, h) = super_frame(s, &payload_bytes(3500));
    let mut batch = PacketBatch::new();
    let mut p = pool.alloc().unwrap();
    assert!(p.set_data(&frame));
    p.vnet = Some(h);
    let _ = batch.push(p);
    a.tx_burst(0, &mut pool, &mut batch);
    assert_eq!(a.stats().tx_packets, 4, "{:?}", a.stats());
    assert_eq!(a.stats().tx_errors, 0);
    assert_eq!(pool.available(), 16);
    let hdrs = 14 + 40 + 32;
    let mut buf = [0u8; 4096];
    for want in [1000, 1000, 1000, 500] {
        let n = rx.recv(&mut buf).expect("a segment arrived");
        assert_eq!(n, VXLAN_HLEN + hdrs + want);
        assert_eq!(&buf[..8], &[l4::VXLAN_FLAG_I, 0, 0, 0, 0, 0, 9, 0]);
    }
}

/// An AF_PACKET socket on one interface of the calling thread's namespace that keeps the IPv4
/// UDP packets it sends to a given port: what the kernel put on the wire for a VXLAN port.
struct OuterCapture {
    fd: OwnedFd,
}

impl OuterCapture {
    fn open(ifname: &str) -> OuterCapture {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let fd = socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            proto.into(),
        )
        .expect("AF_PACKET socket");
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: a valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex > 0, "no interface {ifname}");
        // SAFETY: plain C data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the given length.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        })
        .expect("bind AF_PACKET");
        OuterCapture { fd }
    }

    /// Outgoing IPv4/UDP frames to `dport` seen within `wait` (until `n` of them).
    fn outgoing(&self, dport: u16, n: usize, wait: std::time::Duration) -> Vec<Vec<u8>> {
        let end = std::time::Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while out.len() < n && std::time::Instant::now() < end {
            // SAFETY: plain C data; all-zero is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut sl = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf` and `sll` are writable for the lengths given.
            let r = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut sll as *mut libc::sockaddr_ll).cast(),
                    &mut sl,
                )
            };
            if r <= 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
                continue;
            }
            let f = &buf[..r as usize];
            let udp4 = f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 17;
            if sll.sll_pkttype == libc::PACKET_OUTGOING
                && udp4
                && u16::from_be_bytes([f[36], f[37]]) == dport
            {
                out.push(f.to_vec());
            }
        }
        out
    }
}

/// The UDP datagrams (payloads) that arrive at `rx` within `wait`, until `n`.
fn datagrams(rx: &std::net::UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while out.len() < n {
        match rx.recv(&mut buf) {
            Ok(k) => out.push(buf[..k].to_vec()),
            Err(_) => break,
        }
    }
    out
}

/// With outer checksums on, runs of equal-length datagrams leave as one UDP GSO send: on
/// loopback the kernel carries a run as one large packet (seen by a capture on `lo`) and the
/// receiving plain UDP socket gets every segment as its own correct datagram, in order. The
/// burst mixes plain frames with a super-frame of 40 segments (more than a burst of 32).
#[test]
fn udp_gso_sends_runs_that_arrive_as_separate_datagrams() {
    use crate::gso::tests::{big_pool, payload_bytes, super_frame, Spec};
    use testkit::netns::Netns;
    use testkit::packet::Layout;
    use testkit::require::{can_run, Need};
    if !can_run("vxlan_udp_gso", &[Need::Netns]) {
        return;
    }
    let ns = Netns::new();
    for csum in [true, false] {
        ns.run(move || {
            let mut pool = big_pool(64);
            let lo = Ipv4Addr::LOCALHOST;
            let rx = std::net::UdpSocket::bind((lo, 0)).unwrap();
            rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let rx_port = rx.local_addr().unwrap().port();
            let cap = OuterCapture::open("lo");
            let mut cfg = VxlanConfig::new("vxu", lo, Some(5));
            cfg.local_ip = Some(lo);
            cfg.dst_port = rx_port + 1;
            cfg.csum = csum;
            let mut a = VxlanPort::open_instances(&cfg, 1).unwrap().remove(0);
            assert_eq!(a.gso, csum, "UDP GSO exactly when checksums are on");
            a.cfg.dst_port = rx_port;
            let s = Spec {
                v6: false,
                vlans: 0,
                ip_opts: 0,
                flags: 0x18,
                mss: 1000,
            };
            let (frame, h) = super_frame(s, &payload_bytes(39_500));
            let plain_a: Vec<u8> = (0..60u8).collect();
            let plain_b: Vec<u8> = (0..70u8).rev().collect();
            let mut batch = PacketBatch::new();
            for (data, vnet) in [(&plain_a, None), (&frame, Some(h)), (&plain_b, None)] {
                let mut p = pool.alloc().unwrap();
                assert!(p.set_data(data));
                p.vnet = vnet;
                let _ = batch.push(p);
            }
            let sent = a.tx_burst(0, &mut pool, &mut batch);
            assert_eq!(sent.packets, 42, "{sent:?}");
            assert_eq!(a.stats().tx_errors, 0);
            assert_eq!(pool.available(), 64);

            let got = datagrams(&rx, 42);
            assert_eq!(got.len(), 42, "every segment is its own datagram");
            assert_eq!(&got[0][VXLAN_HLEN..], &plain_a[..]);
            assert_eq!(&got[41][VXLAN_HLEN..], &plain_b[..]);
            let hdrs = 14 + 20 + 32;
            let mut seq = None;
            for (i, d) in got[1..41].iter().enumerate() {
                assert_eq!(&d[..8], &[l4::VXLAN_FLAG_I, 0, 0, 0, 0, 0, 5, 0]);
                let inner = &d[VXLAN_HLEN..];
                let want = if i == 39 { 500 } else { 1000 };
                assert_eq!(inner.len(), hdrs + want, "segment {i}");
                assert!(Layout::parse(inner).checksums_ok(inner), "segment {i}");
                let s = u32::from_be_bytes(inner[38..42].try_into().unwrap());
                if let Some(prev) = seq {
                    assert_eq!(s, u32::wrapping_add(prev, 1000), "segment {i} in order");
                }
                seq = Some(s);
            }
            // What crossed lo: with GSO a run went as one packet larger than any datagram.
            let wire = cap.outgoing(rx_port, 42, std::time::Duration::from_millis(500));
            let biggest = wire.iter().map(Vec::len).max().unwrap_or(0);
            if csum {
                assert!(
                    wire.len() < 42,
                    "runs were sent whole: {} packets",
                    wire.len()
                );
                assert!(
                    biggest > 10_000,
                    "a run of segments in one packet: {biggest}"
                );
            } else {
                assert_eq!(wire.len(), 42);
                assert!(biggest < 1200, "one datagram per segment: {biggest}");
            }
        });
    }
}

/// The outer headers as configured, seen on the wire and accepted by a Linux vxlan device: the
/// UDP checksum is zero with `csum=false` and filled with `csum=true`, DF is set with
/// `df_default=true` and clear with `false`; with checksums on, a super-frame's segments
/// (sent with UDP GSO) reach the device as separate packets.
#[test]
fn outer_checksum_and_df_as_configured_reach_a_kernel_vxlan_device() {
    use crate::gso::tests::{big_pool, payload_bytes, super_frame, Spec};
    use testkit::packet::sample::test_frame;
    use testkit::require::{can_run, Need};
    if !can_run("vxlan_outer_headers", &[Need::Netns]) {
        return;
    }
    let (a, b) = kernel_vtep();
    let b_name = b.name.clone();
    let vx0_rx = move || vx0_rx_packets(&b_name);
    for (csum, df) in [(false, true), (true, false), (true, true)] {
        let vx0_rx = vx0_rx.clone();
        a.run(move || {
            let mut pool = big_pool(16);
            let mut cfg = VxlanConfig::new("vxo", Ipv4Addr::new(10, 250, 0, 2), Some(42));
            cfg.local_ip = Some(Ipv4Addr::new(10, 250, 0, 1));
            cfg.csum = csum;
            cfg.df = df;
            // The previous round's socket on 10.250.0.1:4789 was closed when its port dropped,
            // but once in CI (2 cores, loaded) the next bind still found the address taken:
            // wait a moment for it rather than fail on the machine's timing.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let mut port = loop {
                match VxlanPort::open_instances(&cfg, 1) {
                    Ok(mut v) => break v.remove(0),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AddrInUse
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => panic!("csum={csum} df={df}: {e}"),
                }
            };
            let cap = OuterCapture::open("vxo0");
            let before = vx0_rx();
            let mut batch = PacketBatch::new();
            let src = [2, 0, 0, 0, 0, 0x0a];
            let mut want = 3;
            for seq in 0..3 {
                let mut p = pool.alloc().unwrap();
                assert!(p.set_data(&test_frame([0xff; 6], src, seq, 100)));
                let _ = batch.push(p);
            }
            if csum {
                let s = Spec {
                    v6: false,
                    vlans: 0,
                    ip_opts: 0,
                    flags: 0x18,
                    mss: 1000,
                };
                let (frame, h) = super_frame(s, &payload_bytes(3500));
                let mut p = pool.alloc().unwrap();
                assert!(p.set_data(&frame));
                p.vnet = Some(h);
                let _ = batch.push(p);
                want += 4;
            }
            // The first datagram may wait for ARP; the kernel queues it meanwhile.
            let sent = port.tx_burst(0, &mut pool, &mut batch);
            assert_eq!(sent.packets, want, "{sent:?}");
            let wire = cap.outgoing(4789, want as usize, std::time::Duration::from_secs(3));
            assert!(!wire.is_empty(), "csum={csum} df={df}: nothing on the wire");
            for f in &wire {
                let df_bit = f[20] & 0x40 != 0;
                let udp_csum = u16::from_be_bytes([f[40], f[41]]);
                assert_eq!(df_bit, df, "csum={csum} df={df}: DF bit");
                assert_eq!(
                    udp_csum != 0,
                    csum,
                    "csum={csum} df={df}: UDP checksum {udp_csum:#x}"
                );
            }
            let got = testkit::wait::poll_until(
                std::time::Duration::from_secs(3),
                std::time::Duration::from_millis(20),
                || vx0_rx() - before >= want,
            );
            assert!(
                got,
                "csum={csum} df={df}: vx0 received {} of {want}",
                vx0_rx() - before
            );
            assert_eq!(vx0_rx() - before, want, "one packet per segment");
        });
    }
}

/// Namespace `a` (10.250.0.1/30 on `vxo0`) joined by a veth to namespace `b` (10.250.0.2/30),
/// which holds a Linux vxlan device `vx0` (VNI 42, remote 10.250.0.1, UDP port 4789).
fn kernel_vtep() -> (testkit::netns::Netns, testkit::netns::Netns) {
    use testkit::netns::Netns;
    let a = Netns::new();
    let b = Netns::new();
    a.veth("vxo0", "vxo1");
    a.ip(&["link", "set", "vxo1", "netns", &b.name]);
    a.ip(&["addr", "add", "10.250.0.1/30", "dev", "vxo0"]);
    b.ip(&["addr", "add", "10.250.0.2/30", "dev", "vxo1"]);
    b.ip(&["link", "set", "vxo1", "up"]);
    b.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "42",
        "remote",
        "10.250.0.1",
        "local",
        "10.250.0.2",
        "dstport",
        "4789",
        "dev",
        "vxo1",
    ]);
    b.ip(&["link", "set", "vx0", "up"]);
    (a, b)
}

/// Packets the vxlan device `vx0` of namespace `ns` received (decapsulated).
fn vx0_rx_packets(ns: &str) -> u64 {
    let s = testkit::netns::run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        "/sys/class/net/vx0/statistics/rx_packets",
    ]);
    s.trim().parse().unwrap()
}

/// Datagrams beyond the underlay MTU (1500): a UDP GSO run of them is refused by the kernel and
/// sent again one by one; with `df_default=true` each is then refused too (a transmit error,
/// nothing on the wire), with `false` the kernel fragments them (DF clear) and the vxlan device
/// receives every one.
#[test]
fn oversize_datagrams_follow_df() {
    use crate::gso::tests::big_pool;
    use testkit::packet::sample::test_frame;
    use testkit::require::{can_run, Need};
    if !can_run("vxlan_oversize_df", &[Need::Netns]) {
        return;
    }
    let (a, b) = kernel_vtep();
    for df in [true, false] {
        let b_name = b.name.clone();
        a.run(move || {
            let mut pool = big_pool(8);
            let mut cfg = VxlanConfig::new("vxd", Ipv4Addr::new(10, 250, 0, 2), Some(42));
            cfg.local_ip = Some(Ipv4Addr::new(10, 250, 0, 1));
            cfg.csum = true;
            cfg.df = df;
            let mut port = VxlanPort::open_instances(&cfg, 1).unwrap().remove(0);
            assert!(port.gso);
            let cap = OuterCapture::open("vxo0");
            let before = vx0_rx_packets(&b_name);
            let mut batch = PacketBatch::new();
            for seq in 0..3 {
                let mut p = pool.alloc().unwrap();
                // 8 + 1600 bytes of UDP payload: beyond 1500 - 28.
                assert!(p.set_data(&test_frame([0xff; 6], [2, 0, 0, 0, 0, 0x0b], seq, 1600)));
                let _ = batch.push(p);
            }
            let sent = port.tx_burst(0, &mut pool, &mut batch);
            assert_eq!(pool.available(), 8);
            if df {
                assert_eq!((sent.packets, sent.errors), (0, 3), "df=true: {sent:?}");
                assert_eq!(port.stats().tx_errors, 3);
                let wire = cap.outgoing(4789, 1, std::time::Duration::from_millis(300));
                assert!(wire.is_empty(), "nothing leaves with DF set");
            } else {
                assert_eq!((sent.packets, sent.errors), (3, 0), "df=false: {sent:?}");
                let wire = cap.outgoing(4789, 3, std::time::Duration::from_secs(3));
                assert_eq!(wire.len(), 3, "first fragments of the three datagrams");
                for f in &wire {
                    assert_eq!(f[20] & 0x40, 0, "DF clear");
                    assert_ne!(f[20] & 0x20, 0, "more fragments follow");
                }
                let ok = testkit::wait::poll_until(
                    std::time::Duration::from_secs(3),
                    std::time::Duration::from_millis(20),
                    || vx0_rx_packets(&b_name) - before >= 3,
                );
                assert!(ok, "vx0 received {}", vx0_rx_packets(&b_name) - before);
            }
        });
    }
}

/// Inner frames with their checksum left partial (a vxlan device behind a veth on this host
/// sends them so) are received with a virtio-net header saying so; a TCP one beyond the
/// tunnel's MTU as a super-frame to cut at that MTU, whose segments come out valid.
#[test]
fn partial_inner_checksums_and_super_frames_are_received_as_offloads() {
    use crate::gso::tests::{big_pool, payload_bytes, super_frame, Spec};
    let mut pool = big_pool(64);
    let lo = Ipv4Addr::LOCALHOST;
    let base = 30000 + (std::process::id() % 10000) as u16;
    let mut cfg = VxlanConfig::new("vxp", lo, Some(5));
    cfg.local_ip = Some(lo);
    cfg.dst_port = base;
    let mut port = VxlanPort::open_instances(&cfg, 1).unwrap().remove(0);
    let tx = std::net::UdpSocket::bind((lo, 0)).unwrap();
    let spec = |v6| Spec {
        v6,
        vlans: 0,
        ip_opts: 0,
        flags: 0x18 | 0x80,
        mss: 1448,
    };
    let send = |frame: &[u8]| {
        let mut d = vec![l4::VXLAN_FLAG_I, 0, 0, 0, 0, 0, 5, 0];
        d.extend_from_slice(frame);
        tx.send_to(&d, (lo, base)).unwrap();
    };
    let receive = |port: &mut VxlanPort, pool: &mut PacketPool| {
        let mut got = PacketBatch::new();
        for _ in 0..200 {
            if port.rx_burst(0, pool, &mut got) > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        got.pop().expect("the datagram arrived")
    };
    for v6 in [false, true] {
        // Within the MTU: only the checksum is left to do.
        let (small, h) = super_frame(spec(v6), &payload_bytes(500));
        send(&small);
        let mut p = receive(&mut port, &mut pool);
        let got = p.vnet.expect("a partial checksum is flagged");
        assert_eq!(got.flags, VnetHdr::F_NEEDS_CSUM);
        assert_eq!(
            (got.csum_start, got.csum_offset),
            (h.csum_start, h.csum_offset)
        );
        assert_eq!(got.gso_type, VnetHdr::GSO_NONE);
        assert!(p.resolve_offloads());
        assert_ne!(p.data(), &small[..], "completed");
        pool.free(p);

        // Beyond it: a super-frame, cut at the tunnel's MTU (1450).
        let (big, _) = super_frame(spec(v6), &payload_bytes(9000));
        send(&big);
        let p = receive(&mut port, &mut pool);
        let got = p.vnet.expect("a super-frame is flagged");
        let l3_hdrs = if v6 { 40 } else { 20 } + 32;
        let want_type = if v6 {
            VnetHdr::GSO_TCPV6
        } else {
            VnetHdr::GSO_TCPV4
        };
        assert_eq!(got.gso_type, want_type | VnetHdr::GSO_ECN, "CWR set: ECN");
        assert_eq!(usize::from(got.gso_size), 1450 - l3_hdrs);
        let mut segs = Vec::new();
        let n = crate::gso::segment(p, &mut pool, &mut |s| segs.push(s)).unwrap();
        assert_eq!(n, 9000usize.div_ceil(1450 - l3_hdrs));
        for s in segs {
            assert!(s.len() <= 14 + 1450);
            // Complete now: no longer taken for partial.
            assert_eq!(checksum::unfinished_l4(s.data()), None);
            pool.free(s);
        }
    }
    // A frame whose checksum is complete gets no header.
    let (mut done, h) = super_frame(spec(false), &payload_bytes(200));
    assert!(checksum::complete_partial(
        &mut done,
        usize::from(h.csum_start),
        usize::from(h.csum_offset)
    ));
    send(&done);
    let p = receive(&mut port, &mut pool);
    assert_eq!(p.vnet, None);
    assert_eq!(p.data(), &done[..]);
    pool.free(p);
}
