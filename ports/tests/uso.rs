//! UDP segmentation offload (USO) end to end: a sender in one namespace writes UDP
//! super-datagrams with `UDP_SEGMENT` through a veth with `tx-udp-segmentation` on; an AF_PACKET
//! port with virtio-net headers receives them whole (`GSO_UDP_L4`) and the test's forwarding
//! loop sends them out of a second port to a plain UDP socket in another namespace:
//!
//! ```text
//!  nsC: c0 10.77.0.1 ── s0 [AF_PACKET vnet → OUT] s1 ── t0 10.77.0.2 :nsT
//! ```
//!
//! An output that cannot carry the offload (AF_XDP, AF_PACKET without vnet headers) must send
//! the datagrams the super-datagram stands for, made in software (`tx_segments` grows); one
//! that can (AF_PACKET with vnet headers) sends it whole (`tx_segments` stays 0) and the
//! receiving kernel splits it. Either way the receiver gets every datagram byte for byte, and
//! with receive checksum offload off on `t0` its kernel checks every UDP checksum.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ports::{
    AfPacketConfig, AfPacketPort, AfXdpConfig, AfXdpPort, PacketBatch, PacketPool, PoolConfig,
    Port, PortStats, TapConfig, TapPort, VnetHdr,
};
use testkit::netns::{run, Netns, TcpTopology};
use testkit::require::{can_run, serial, Need};
use testkit::wait::wait_until;

/// `UDP_SEGMENT` (linux/udp.h): the payload size of each datagram a send is cut into.
const UDP_SEGMENT: libc::c_int = 103;
/// Payload bytes per datagram.
const SEG: usize = 1200;
/// What the sender writes: two super-datagrams (21 and 10 datagrams, the first ending short)
/// and one datagram no larger than `SEG`, which goes as a plain datagram.
const SENDS: [usize; 3] = [20 * SEG + 500, 10 * SEG, SEG - 1];
const PORT: u16 = 9000;

/// The output port on `s1`: AF_XDP, AF_PACKET without or with virtio-net headers.
#[derive(Debug, Clone, Copy)]
enum Out {
    Xdp,
    PacketPlain,
    PacketVnet,
}

/// Whether `h` is a UDP GSO request.
fn is_uso(h: &VnetHdr) -> bool {
    h.gso_type & !VnetHdr::GSO_ECN == VnetHdr::GSO_UDP_L4
}

/// Sets `UDP_SEGMENT` on `s`.
fn set_udp_segment(s: &UdpSocket, seg: usize) {
    let seg = seg as libc::c_int;
    // SAFETY: setsockopt reads `seg` (an int, as UDP_SEGMENT takes) for the given length; the
    // socket is open for the whole call.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&seg as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
}

/// What the forwarding loop saw: UDP GSO frames received on `s0`, and the output's counters.
struct Forwarded {
    uso_in: u64,
    out: PortStats,
}

#[test]
fn uso_is_segmented_for_af_xdp() {
    let (f, got) = run_case("uso_is_segmented_for_af_xdp", Out::Xdp);
    let Some(f) = f else { return };
    assert_segmented(&f, got);
}

#[test]
fn uso_is_segmented_for_af_packet_without_vnet_headers() {
    let (f, got) = run_case(
        "uso_is_segmented_for_af_packet_without_vnet_headers",
        Out::PacketPlain,
    );
    let Some(f) = f else { return };
    assert_segmented(&f, got);
}

#[test]
fn uso_goes_whole_to_af_packet_with_vnet_headers() {
    let (f, got) = run_case(
        "uso_goes_whole_to_af_packet_with_vnet_headers",
        Out::PacketVnet,
    );
    let Some(f) = f else { return };
    assert_eq!(f.out.tx_segments, 0, "nothing segmented: {:?}", f.out);
    assert_eq!(f.out.tx_errors, 0, "{:?}", f.out);
    // Each send left as one frame (the receiving kernel split the super-datagrams).
    assert_eq!(f.out.tx_packets, SENDS.len() as u64, "{:?}", f.out);
    assert_eq!(got, datagram_count());
}

/// Datagrams the sends make.
fn datagram_count() -> usize {
    SENDS.iter().map(|n| n.div_ceil(SEG)).sum()
}

fn assert_segmented(f: &Forwarded, got: usize) {
    // The two super-datagrams, cut in software; the short datagram went as it was.
    let segments: usize = SENDS
        .iter()
        .filter(|&&n| n > SEG)
        .map(|n| n.div_ceil(SEG))
        .sum();
    assert_eq!(f.out.tx_segments, segments as u64, "{:?}", f.out);
    assert_eq!(f.out.tx_errors, 0, "{:?}", f.out);
    assert_eq!(got, datagram_count());
}

/// Sets up the topology, forwards the sends through `out` and checks what the receiver got
/// byte for byte; returns what the loop saw (`None` if the test cannot run here) and the
/// number of datagrams received.
fn run_case(test: &str, out: Out) -> (Option<Forwarded>, usize) {
    if !can_run(test, &[Need::Netns, Need::Tool("ethtool")]) {
        return (None, 0);
    }
    // AF_XDP and 64 KB pools: not beside the other port tests' PMD-like loops.
    let _serial = serial();
    let t = TcpTopology::new();
    let ns_exec = |ns: &str, args: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(args);
        run(&v)
    };
    // The sender's veth hands super-datagrams on whole; the receiver's kernel checks every
    // checksum itself.
    ns_exec(
        &t.client.name,
        &[
            "ethtool",
            "-K",
            "c0",
            "tx",
            "on",
            "tx-udp-segmentation",
            "on",
        ],
    );
    ns_exec(&t.server.name, &["ethtool", "-K", "t0", "rx", "off"]);
    // No ARP through the loop: the sender knows the receiver's MAC.
    let mac = ns_exec(&t.server.name, &["cat", "/sys/class/net/t0/address"]);
    t.client.ip(&[
        "neigh",
        "replace",
        "10.77.0.2",
        "lladdr",
        mac.trim(),
        "dev",
        "c0",
    ]);

    let fwd = t.start_switch(move |stop| forward(out, stop));
    // Give AF_XDP time to attach (the switch thread opened its ports before this returns).
    std::thread::sleep(Duration::from_millis(200));

    let (ready, is_ready) = std::sync::mpsc::channel();
    let server = t.server.spawn(move || {
        let s = UdpSocket::bind(("10.77.0.2", PORT)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        ready.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < datagram_count() && Instant::now() < deadline {
            if let Ok(n) = s.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
        }
        got
    });
    is_ready.recv_timeout(Duration::from_secs(5)).unwrap();
    let payloads: Vec<Vec<u8>> = SENDS
        .iter()
        .enumerate()
        .map(|(k, &n)| (0..n).map(|i| (i * 7 + i / 253 + k * 31) as u8).collect())
        .collect();
    let to_send = payloads.clone();
    t.client.run(move || {
        let s = UdpSocket::bind("10.77.0.1:0").unwrap();
        set_udp_segment(&s, SEG);
        for p in &to_send {
            s.send_to(p, ("10.77.0.2", PORT)).unwrap();
        }
    });
    let got = server.join().unwrap();
    let f = fwd.stop();
    assert!(
        f.uso_in >= 2,
        "the super-datagrams reached the switch whole ({} UDP GSO frames seen)",
        f.uso_in
    );
    // Byte for byte: the datagrams of each send, in order, SEG bytes each but the last.
    let mut want = Vec::new();
    for p in &payloads {
        want.extend(p.chunks(SEG).map(<[u8]>::to_vec));
    }
    let lens = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(lens(&got), lens(&want), "datagram sizes ({out:?})");
    assert!(got == want, "datagram contents ({out:?})");
    let csum_errors = udp_in_csum_errors(&t.server.name);
    assert_eq!(csum_errors, 0, "UDP checksum errors at the receiver");
    let n = got.len();
    (Some(f), n)
}

/// `Udp: InCsumErrors` of namespace `ns` (/proc/net/snmp).
fn udp_in_csum_errors(ns: &str) -> u64 {
    let snmp = run(&["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]);
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "InCsumErrors")
        .unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// The switch: AF_PACKET with vnet headers on `s0`, `out` on `s1`, forwarding both ways until
/// `stop`.
fn forward(out: Out, stop: Arc<AtomicBool>) -> Forwarded {
    let afpacket = |name: &str, vnet_hdr: bool| {
        let mut c = AfPacketConfig::new(name);
        c.vnet_hdr = vnet_hdr;
        // Blocks large enough for a 64 KB GSO frame.
        c.block_size = 1 << 18;
        c.block_count = 8;
        Box::new(AfPacketPort::open(&c).unwrap()) as Box<dyn Port>
    };
    let out_port = match out {
        Out::Xdp => Box::new(AfXdpPort::open(&AfXdpConfig::new("s1")).unwrap()) as Box<dyn Port>,
        Out::PacketPlain => afpacket("s1", false),
        Out::PacketVnet => afpacket("s1", true),
    };
    let mut ports = [afpacket("s0", true), out_port];
    let mut pool = PacketPool::new(PoolConfig {
        n_buffers: 256,
        data_room: 65536 + 128,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut batch = PacketBatch::new();
    let mut uso_in = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for i in 0..2 {
            if ports[i].rx_burst(0, &mut pool, &mut batch) > 0 {
                idle = false;
                if i == 0 {
                    uso_in += batch
                        .iter()
                        .filter(|p| {
                            p.vnet.is_some_and(|v| {
                                v.gso_type & !VnetHdr::GSO_ECN == VnetHdr::GSO_UDP_L4
                            })
                        })
                        .count() as u64;
                }
                ports[1 - i].tx_burst(0, &mut pool, &mut batch);
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    assert_eq!(pool.available(), pool.capacity(), "no buffer leaked");
    Forwarded {
        uso_in,
        out: ports[1].stats(),
    }
}

/// A tap with offloads takes USO both ways: the host stack hands it a `UDP_SEGMENT`
/// super-datagram whole (`TUNSETOFFLOAD` took `TUN_F_USO4/6`), and the same frame written back
/// (addresses and ports swapped, so it comes back to the sender) is taken whole by the kernel,
/// which delivers its datagrams to the sending socket byte for byte.
#[test]
fn tap_with_offloads_takes_uso_both_ways() {
    if !can_run(
        "tap_with_offloads_takes_uso_both_ways",
        &[Need::Tun, Need::Netns, Need::Tool("ethtool")],
    ) {
        return;
    }
    // Taps learnt USO in Linux 6.2: before, the switch segments (tested above), so this
    // cannot hold there.
    if !ports::gso::udp::kernel_takes_uso() {
        eprintln!(
            "SKIPPED: tap_with_offloads_takes_uso_both_ways: this kernel predates USO on taps (6.2)"
        );
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let mut cfg = TapConfig::new("usotap%d");
        cfg.vnet_hdr = true;
        cfg.offloads = true;
        let mut port = TapPort::open(&cfg).unwrap();
        assert!(port.takes_uso(), "kernel 6.2 or later takes USO on taps");
        let tap = port.name().to_owned();
        let ip = |args: &[&str]| {
            let mut v = vec!["ip"];
            v.extend_from_slice(args);
            run(&v)
        };
        ip(&["addr", "add", "10.78.0.1/24", "dev", &tap]);
        // The far end, never answering: a made-up neighbour.
        ip(&[
            "neigh",
            "replace",
            "10.78.0.2",
            "lladdr",
            "02:00:00:00:78:02",
            "dev",
            &tap,
        ]);
        let features = run(&["ethtool", "-k", &tap]);
        assert!(
            features.contains("tx-udp-segmentation: on"),
            "USO on the tap: {features}"
        );
        let sock = UdpSocket::bind("10.78.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        set_udp_segment(&sock, SEG);
        let payload: Vec<u8> = (0..SENDS[0]).map(|i| (i * 13 + i / 241) as u8).collect();
        sock.send_to(&payload, "10.78.0.2:9000").unwrap();

        let mut pool = PacketPool::new(PoolConfig {
            n_buffers: 64,
            data_room: 65536 + 128,
            ..PoolConfig::default()
        })
        .unwrap();
        let mut batch = PacketBatch::new();
        wait_until(Duration::from_secs(5), || {
            port.rx_burst(0, &mut pool, &mut batch);
            batch.retain(|p| p.vnet.is_some_and(|h| is_uso(&h)), |_| {});
            !batch.is_empty()
        });
        assert_eq!(batch.len(), 1, "the super-datagram came whole");
        let mut p = batch.drain().next().unwrap();
        let h = p.vnet.unwrap();
        assert_eq!(h.gso_size as usize, SEG);
        assert_eq!(p.len(), 14 + 20 + 8 + payload.len());
        assert_eq!(&p.data()[42..], &payload[..]);

        // Back to the sender: swap MACs, IPs and ports (the partial checksum in the frame
        // covers them as a sum, which the swap keeps).
        let d = p.data_mut();
        let (dst, src) = (d[0..6].to_vec(), d[6..12].to_vec());
        d[0..6].copy_from_slice(&src);
        d[6..12].copy_from_slice(&dst);
        let (a, b) = (d[26..30].to_vec(), d[30..34].to_vec());
        d[26..30].copy_from_slice(&b);
        d[30..34].copy_from_slice(&a);
        let (sp, dp) = (d[34..36].to_vec(), d[36..38].to_vec());
        d[34..36].copy_from_slice(&dp);
        d[36..38].copy_from_slice(&sp);
        batch.push(p).unwrap();
        let out = port.tx_burst(0, &mut pool, &mut batch);
        assert_eq!((out.packets, out.errors), (1, 0), "written whole");
        assert_eq!(port.stats().tx_segments, 0);

        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        wait_until(Duration::from_secs(5), || {
            if let Ok(n) = sock.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            got.len() >= SENDS[0].div_ceil(SEG)
        });
        let want: Vec<Vec<u8>> = payload.chunks(SEG).map(<[u8]>::to_vec).collect();
        assert!(got == want, "{} datagrams back, byte for byte", got.len());
        assert_eq!(pool.available(), pool.capacity());
    });
}
