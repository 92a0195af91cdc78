//! Trace is the datapath: real frames sent through a bridge with VLAN ports, a mirror and
//! rules that rewrite and resubmit leave by exactly the ports, with exactly the bytes, that
//! `trace-packet` (the PMD's report on that very packet) and `trace` (the same frame, traced
//! afterwards) say. Dummy ports, so no root and no kernel devices.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::netns::unique;
use testkit::require::serial;

mod support;
use support::{http, Daemon};

fn call(d: &Daemon, method: &str, path: &str, body: Value) -> Value {
    let s = TcpStream::connect(&d.addr).expect("daemon");
    let (status, text) = http(s, method, path, &body.to_string());
    assert_eq!(status, 200, "{method} {path} {body}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// (port, hex) pairs of a trace's `copies`, sorted.
fn copies(v: &Value) -> Vec<(u64, String)> {
    let mut c: Vec<(u64, String)> = v["copies"]
        .as_array()
        .unwrap_or_else(|| panic!("no copies in {v}"))
        .iter()
        .map(|c| {
            (
                c["port"].as_u64().unwrap(),
                c["packet"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    c.sort();
    c
}

fn csum(b: &[u8]) -> [u8; 2] {
    let mut a: u32 = b
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while a > 0xffff {
        a = (a & 0xffff) + (a >> 16);
    }
    (!(a as u16)).to_be_bytes()
}

/// A frame: `tag` is an optional 802.1Q TCI; with `udp`, an IPv4/UDP packet to port 53
/// (TTL 9), else 46 bytes of the local experimental ethertype.
fn frame(dst: [u8; 6], src: [u8; 6], tag: Option<u16>, udp: bool) -> String {
    let mut f = Vec::new();
    f.extend(dst);
    f.extend(src);
    if let Some(t) = tag {
        f.extend([0x81, 0x00]);
        f.extend(t.to_be_bytes());
    }
    if udp {
        f.extend([0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 36, 0, 7, 0, 0, 9, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = csum(&ip);
        ip[10..12].copy_from_slice(&c);
        f.extend(ip);
        // UDP without a checksum (0 is allowed over IPv4).
        f.extend([0x30, 0x39, 0, 53, 0, 16, 0, 0]);
        f.extend([0x5a; 8]);
    } else {
        f.extend([0x88, 0xb5]);
        f.extend([0xab; 46]);
    }
    f.iter().map(|b| format!("{b:02x}")).collect()
}

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
const BCAST: [u8; 6] = [0xff; 6];
const STP: [u8; 6] = [0x01, 0x80, 0xc2, 0, 0, 0];

#[test]
fn trace_trace_packet_and_real_outputs_agree() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", "");
    let br = unique("vsta");
    d.ok(&["add-br", &br, "datapath_type=dummy"]);
    // 1, 2: access VLAN 10; 3: access VLAN 20; 4: trunk of 10 and 20; 5: every VLAN;
    // 6: a mirror's output for what 1 receives.
    let opts: [&[&str]; 6] = [
        &["tag=10"],
        &["tag=10"],
        &["tag=20"],
        &["trunks=10,20"],
        &[],
        &[],
    ];
    let name = |n: usize| format!("{br}p{n}");
    for (i, o) in opts.iter().enumerate() {
        let n = i + 1;
        let (p, no) = (name(n), format!("ofport={n}"));
        let mut args = vec![
            "add-port",
            br.as_str(),
            p.as_str(),
            "type=dummy",
            no.as_str(),
        ];
        args.extend(o.iter().copied());
        d.ok(&args);
    }
    let out6 = format!("output-port={}", name(6));
    let src1 = format!("select-src-port={}", name(1));
    d.ok(&["add-mirror", &br, "m0", &src1, &out6]);
    // Rules around NORMAL: UDP from 3 is re-tagged and goes to 5 as well; from 5, UDP has
    // its TTL decremented in a nested table before NORMAL.
    let flows = [
        "priority=100,in_port=3,udp,actions=normal,mod_vlan_vid:30,output:5".to_owned(),
        "priority=100,in_port=5,udp,actions=resubmit(,1),output:2".to_owned(),
        "table=1,priority=1,actions=dec_ttl,normal".to_owned(),
    ];
    for f in &flows {
        d.ok(&["add-flow", &br, f]);
    }

    // (in_port, frame, at least one copy expected)
    let cases: Vec<(usize, String, bool)> = vec![
        (1, frame(BCAST, A, None, false), true),
        (2, frame(A, B, None, false), true),
        (1, frame(B, A, None, false), true),
        (4, frame(BCAST, C, Some(20), false), true),
        (3, frame(C, [2, 0, 0, 0, 0, 0xd], None, true), true),
        (5, frame(BCAST, C, Some(5 << 13), false), true),
        (5, frame(BCAST, C, Some(0), false), true),
        (5, frame(A, C, None, true), true),
        (5, frame(BCAST, C, Some(10), true), true),
        (1, frame(STP, A, None, false), true),
        (1, frame(A, A, Some(10), false), true),
        (4, frame(BCAST, C, Some(30), false), false),
    ];
    let base = format!("/bridges/{br}");
    for (i, (in_port, f, some)) in cases.iter().enumerate() {
        // Arm a trace on the ingress port, then send the frame.
        let armed = {
            let d_addr = d.addr.clone();
            let body = json!({ "port": in_port.to_string(), "timeout_secs": 5 });
            let path = format!("{base}/trace-packet");
            std::thread::spawn(move || {
                let s = TcpStream::connect(&d_addr).unwrap();
                http(s, "POST", &path, &body.to_string())
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        d.ok(&["dummy-receive", &br, &name(*in_port), f]);
        let (status, text) = armed.join().unwrap();
        assert_eq!(status, 200, "case {i}: trace-packet: {text}");
        let real: Value = serde_json::from_str(&text).unwrap();
        let from_pmd = copies(&real);

        // What left, from every port (LOCAL too).
        let mut sent = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            let before = sent.len();
            for n in (1..=6).map(|n| n as u64).chain([65534]) {
                let port = if n == 65534 {
                    "LOCAL".to_owned()
                } else {
                    n.to_string()
                };
                let v = call(&d, "POST", &format!("{base}/ports/{port}/sent"), json!({}));
                assert_eq!(v["lost"], 0);
                for p in v["packets"].as_array().unwrap() {
                    sent.push((n, p.as_str().unwrap().to_owned()));
                }
            }
            if sent.len() != before {
                quiet_since = Instant::now();
            }
            if sent.len() >= from_pmd.len() && quiet_since.elapsed() > Duration::from_millis(300) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        sent.sort();

        let traced = call(
            &d,
            "POST",
            &format!("{base}/trace"),
            json!({ "flow": format!("in_port={in_port}"), "packet": f }),
        );
        let ctx = format!(
            "case {i} (in_port={in_port}, {f}):\ntrace-packet:\n{}\ntrace:\n{}",
            real["text"].as_str().unwrap_or_default(),
            traced["text"].as_str().unwrap_or_default()
        );
        assert_eq!(sent, from_pmd, "real outputs vs trace-packet, {ctx}");
        assert_eq!(copies(&traced), from_pmd, "trace vs trace-packet, {ctx}");
        assert_eq!(!sent.is_empty(), *some, "{ctx}");
    }

    // Spot checks of what the cases mean (beyond agreement).
    let t = |in_port: usize, f: &str| {
        call(
            &d,
            "POST",
            &format!("{base}/trace"),
            json!({ "flow": format!("in_port={in_port}"), "packet": f }),
        )
    };
    // A reserved destination goes only to the mirror (NORMAL drops it).
    let stp = t(1, &frame(STP, A, None, false));
    assert_eq!(
        copies(&stp).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![6],
        "{}",
        stp["text"]
    );
    assert!(stp["text"].as_str().unwrap().contains("reserved"));
    // A priority-tagged broadcast from 5 (VLAN 0) leaves the trunk-all LOCAL port untagged
    // when its priority is 0, and keeps its tag when the priority is not (as OVS).
    let pri0 = t(5, &frame(BCAST, C, Some(0), false));
    let untagged = frame(BCAST, C, None, false);
    assert_eq!(
        copies(&pri0),
        vec![(65534, untagged.clone())],
        "{}",
        pri0["text"]
    );
    let pri = t(5, &pri_frame());
    assert_eq!(copies(&pri), vec![(65534, pri_frame())], "{}", pri["text"]);
    // vswitchctl prints the frames that leave.
    let text = d.ok(&[
        "trace",
        &br,
        "in_port=5",
        "--packet",
        &frame(BCAST, C, Some(0), false),
    ]);
    assert!(
        text.contains(&format!("Sent on 65534 ({br}): {untagged}")),
        "{text}"
    );
}

fn pri_frame() -> String {
    frame(BCAST, C, Some(5 << 13), false)
}
