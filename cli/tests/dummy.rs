//! Dummy ports through vswitchd and vswitchctl: `datapath_type=dummy` bridges whose ports
//! exist only in memory, frames injected with `dummy-receive` and taken with `dummy-sent`,
//! exactly; no kernel device appears, and the bridges come back after a restart. None of it
//! needs root.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::netns::unique;
use testkit::require::serial;

mod support;
use support::{http, Daemon};

/// A 60-byte frame (no FCS) of the local experimental ethertype, numbered `n`.
fn frame(dst: &str, src: &str, n: u8) -> String {
    format!("{dst}{src}88b5{n:02x}{}", "ab".repeat(45))
}

const BCAST: &str = "ffffffffffff";
const MAC1: &str = "020000000001";
const MAC2: &str = "020000000002";

/// `dummy-sent` once: the frames, and the `lost: N` line of standard error.
fn sent(d: &Daemon, br: &str, port: &str) -> (Vec<String>, String) {
    let o = d.ctl(&["dummy-sent", br, port]);
    assert!(
        o.status.success(),
        "dummy-sent {br} {port}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let frames = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (frames, String::from_utf8_lossy(&o.stderr).trim().to_owned())
}

/// Takes what `port` sent until `n` frames came (or 5 s passed), checking none was lost.
fn take(d: &Daemon, br: &str, port: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        let (frames, lost) = sent(d, br, port);
        assert_eq!(lost, "lost: 0", "{br} {port}");
        got.extend(frames);
        std::thread::sleep(Duration::from_millis(10));
    }
    got
}

/// After a moment for stragglers, `port` has nothing more to take.
fn nothing_left(d: &Daemon, br: &str, ports: &[&str]) {
    std::thread::sleep(Duration::from_millis(200));
    for p in ports {
        assert_eq!(
            sent(d, br, p),
            (Vec::new(), "lost: 0".to_owned()),
            "{br} {p} sent more"
        );
    }
}

/// No kernel interface of that name: neither in sysfs nor in `ip link` (when installed).
fn no_interface(name: &str) {
    assert!(
        !Path::new("/sys/class/net").join(name).exists(),
        "a device {name} exists"
    );
    if let Ok(o) = Command::new("ip").args(["-o", "link", "show"]).output() {
        let links = String::from_utf8_lossy(&o.stdout);
        assert!(
            !links
                .lines()
                .any(|l| l.contains(&format!(": {name}:")) || l.contains(&format!(": {name}@"))),
            "ip link shows {name}:\n{links}"
        );
    }
}

#[test]
fn dummy_bridges_forward_injected_frames_exactly_and_survive_a_restart() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let (fl, nm) = (unique("vsdf"), unique("vsdn"));
    for br in [&fl, &nm] {
        d.ok(&["add-br", br, "datapath_type=dummy"]);
        for p in ["1", "2", "3"] {
            d.ok(&["add-port", br, &format!("{br}p{p}"), "type=dummy"]);
        }
    }
    let p = |br: &str, n: u32| format!("{br}p{n}");
    let show = d.ok(&["show"]);
    assert!(
        show.contains(&format!(
            "    Bridge {fl}\n        datapath_type: dummy\n        Port {fl}p1\n            \
             Interface {fl}p1\n                type: dummy\n"
        )),
        "{show}"
    );
    assert!(
        show.contains(&format!(
            "        Port {fl}\n            Interface {fl}\n                type: dummy\n"
        )),
        "the LOCAL port is a dummy port:\n{show}"
    );
    no_interface(&fl);
    no_interface(&nm);

    // in_port=1 goes to 2 and 3, exactly, in order; nothing anywhere else.
    d.ok(&["add-flow", &fl, "in_port=1,actions=output:2,output:3"]);
    let frames: Vec<String> = (0..5).map(|n| frame(MAC2, MAC1, n)).collect();
    let p1 = p(&fl, 1);
    let mut args = vec!["dummy-receive", fl.as_str(), p1.as_str()];
    args.extend(frames.iter().map(String::as_str));
    d.ok(&args);
    assert_eq!(take(&d, &fl, &p(&fl, 2), 5), frames);
    assert_eq!(take(&d, &fl, "3", 5), frames, "ports by number too");
    nothing_left(&d, &fl, &[&p(&fl, 1), &p(&fl, 2), &p(&fl, 3), &fl]);
    let ports = d.ok(&["dump-ports", &fl, "1"]);
    assert!(ports.contains("rx pkts=5, bytes=300"), "{ports}");

    // NORMAL: a broadcast floods (the LOCAL port too), then learned addresses go one way.
    let b = frame(BCAST, MAC1, 1);
    d.ok(&["dummy-receive", &nm, &p(&nm, 1), &b]);
    for port in [p(&nm, 2), p(&nm, 3), nm.clone()] {
        assert_eq!(
            take(&d, &nm, &port, 1),
            std::slice::from_ref(&b),
            "flooded to {port}"
        );
    }
    let back = frame(MAC1, MAC2, 2);
    d.ok(&["dummy-receive", &nm, &p(&nm, 2), &back]);
    assert_eq!(take(&d, &nm, &p(&nm, 1), 1), [back]);
    let again = frame(MAC2, MAC1, 3);
    d.ok(&[
        "dummy-receive",
        &nm,
        "LOCAL",
        &frame(BCAST, "020000000003", 4),
    ]);
    d.ok(&["dummy-receive", &nm, &p(&nm, 1), &again]);
    // The frame from LOCAL floods to the three ports; `again` goes to port 2 only.
    assert_eq!(
        take(&d, &nm, &p(&nm, 2), 2),
        [frame(BCAST, "020000000003", 4), again]
    );
    assert_eq!(
        take(&d, &nm, &p(&nm, 1), 1),
        [frame(BCAST, "020000000003", 4)]
    );
    assert_eq!(
        take(&d, &nm, &p(&nm, 3), 1),
        [frame(BCAST, "020000000003", 4)]
    );
    nothing_left(&d, &nm, &[&p(&nm, 1), &p(&nm, 2), &p(&nm, 3), &nm]);

    // A restart brings both bridges back as dummy bridges, their ports and the flow too.
    let state = d.saved();
    assert_eq!(
        state.matches("datapath_type = \"dummy\"").count(),
        2,
        "{state}"
    );
    assert!(d.terminate().success());
    d.spawn();
    let show = d.ok(&["show"]);
    for br in [&fl, &nm] {
        assert!(
            show.contains(&format!("    Bridge {br}\n        datapath_type: dummy\n")),
            "{show}"
        );
        assert!(
            show.contains(&format!(
                "        Port {br}\n            Interface {br}\n                type: dummy\n"
            )),
            "{show}"
        );
        no_interface(br);
    }
    let dummies = show.matches("\n                type: dummy\n").count();
    assert_eq!(dummies, 8, "four ports of each bridge:\n{show}");
    let flows = d.ok(&["dump-flows", &fl]);
    let (p1, p2, p3) = (p(&fl, 1), p(&fl, 2), p(&fl, 3));
    let rule = format!("in_port={p1} actions=output:{p2},output:{p3}");
    assert!(flows.contains(&rule), "{flows}");
    let f = frame(MAC2, MAC1, 9);
    d.ok(&["dummy-receive", &fl, &p(&fl, 1), &f]);
    assert_eq!(take(&d, &fl, &p(&fl, 2), 1), std::slice::from_ref(&f));
    assert_eq!(take(&d, &fl, &p(&fl, 3), 1), [f]);
    nothing_left(&d, &fl, &[&p(&fl, 1), &p(&fl, 2), &p(&fl, 3), &fl]);
}

#[test]
fn bad_dummy_requests_are_refused_with_the_reason() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", "");
    let br = unique("vsdb");
    let err = d.fails(&["add-br", &br, "datapath_type=dumy"]);
    assert!(
        err.contains("datapath_type") && err.contains("HTTP 400"),
        "{err}"
    );
    assert!(d
        .fails(&["add-br", &br, "fail_mode=secure"])
        .contains("want datapath_type="));
    d.ok(&["add-br", &br, "datapath_type=dummy"]);
    let err = d.fails(&["add-port", &br, "d1", "type=dummy", "peer=x"]);
    assert!(
        err.contains("unknown option \"peer\" for type=dummy"),
        "{err}"
    );
    d.ok(&["add-port", &br, "d1", "type=dummy"]);
    d.ok(&["add-port", &br, "pa", "type=patch", "peer=pb"]);

    let good = frame(BCAST, MAC1, 0);
    for (bad, want) in [
        (
            "0g".repeat(30),
            "packets[1]: 'g' at character 1 is not a hex digit",
        ),
        (format!("{good}0"), "packets[1]: odd number of hex digits"),
        ("00".repeat(13), "packets[1]: frame of 13 bytes is shorter"),
    ] {
        let err = d.fails(&["dummy-receive", &br, "d1", &good, &bad]);
        assert!(err.contains(want) && err.contains("HTTP 400"), "{err}");
    }
    let err = d.fails(&["dummy-receive", &br, "pa", &good]);
    assert!(
        err.contains("not a dummy port") && err.contains("HTTP 409"),
        "{err}"
    );
    let err = d.fails(&["dummy-sent", &br, "pa"]);
    assert!(err.contains("HTTP 409"), "{err}");
    let err = d.fails(&["dummy-receive", "nobr", "d1", &good]);
    assert!(err.contains("no bridge named 'nobr'") && err.contains("HTTP 404"));
    let err = d.fails(&["dummy-sent", &br, "nope"]);
    assert!(err.contains("no port 'nope'") && err.contains("HTTP 404"));
    assert!(d.fails(&["dummy-receive", &br, "d1"]).contains("required"));

    // Over REST: a frame too long for a command line, and a body without packets.
    let post = |path: &str, body: &str| {
        let s = std::net::TcpStream::connect(&d.addr).unwrap();
        http(s, "POST", path, body)
    };
    let receive = format!("/bridges/{br}/ports/d1/receive");
    let long = format!("{{\"packets\": [\"{}\"]}}", "00".repeat(65536));
    let (st, body) = post(&receive, &long);
    assert_eq!(st, 400, "{body}");
    assert!(
        body.contains("packets[0]: frame of 65536 bytes is longer than 65535"),
        "{body}"
    );
    let (st, body) = post(&receive, "{\"frames\": []}");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (st, body) = post(&receive, &format!("{{\"packets\": [\"{good}\"]}}"));
    assert_eq!((st, body.as_str()), (200, "{\"queued\":1}"));
    // Nothing of the refused requests reached the bridge: only the last frame, flooded.
    assert_eq!(take(&d, &br, &br, 1), [good]);
    nothing_left(&d, &br, &["d1", &br]);
}
