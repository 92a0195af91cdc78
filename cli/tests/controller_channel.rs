//! vswitchd's controller connections (`set-controller`), with a minimal controller written
//! here on top of the `openflow` codec: an active target is dialled, redialled with back-off
//! after the controller goes away, probed with ECHO when silent and dropped when it stays
//! silent; a passive target accepts controllers; the settings survive `kill -9`; bad targets
//! and fail modes get clear errors.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use openflow::header::{message, MsgType, Version};
use openflow::hello::encode_hello;
use support::{free_port, Daemon};
use testkit::netns::unique;
use testkit::require::serial;

/// Reads one OpenFlow message: (type, whole message); `None` when the switch closed.
fn read_msg(s: &mut TcpStream, within: Duration) -> Option<(u8, Vec<u8>)> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut head = [0u8; 8];
    match s.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("no OpenFlow message within {within:?}: {e}"),
    }
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    let mut msg = head.to_vec();
    msg.resize(len, 0);
    s.read_exact(&mut msg[8..]).unwrap();
    Some((head[1], msg))
}

/// Accepts the switch's connection and does the handshake (1.3): HELLO both ways, then a
/// FEATURES request whose reply must come.
fn accept_switch(l: &TcpListener, within: Duration) -> TcpStream {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + within;
    let mut s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "the switch did not connect within {within:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    s.set_nonblocking(false).unwrap();
    handshake(&mut s);
    s
}

fn handshake(s: &mut TcpStream) {
    let (t, _) = read_msg(s, Duration::from_secs(5)).expect("HELLO");
    assert_eq!(t, 0, "the switch starts with HELLO");
    s.write_all(&encode_hello(&[Version::Of13], 1)).unwrap();
    s.write_all(&message(Version::Of13, MsgType::FeaturesRequest, 2, |_| {}))
        .unwrap();
    let (t, reply) = read_msg(s, Duration::from_secs(5)).expect("FEATURES_REPLY");
    assert_eq!((t, reply[0]), (6, 4), "FEATURES_REPLY in 1.3");
}

/// Waits until `get-controller --status` shows `want`.
fn wait_status(d: &Daemon, br: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = d.ok(&["get-controller", br, "--status"]);
        if st.contains(want) {
            return st;
        }
        assert!(Instant::now() < deadline, "never {want}: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_active_controller_is_dialled_probed_redialled_and_remembered() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsct");
    d.ok(&["add-br", &br, "datapath_type=dummy"]);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp:127.0.0.1:{}", l.local_addr().unwrap().port());
    d.ok(&["set-controller", &br, &target]);
    assert_eq!(d.ok(&["get-controller", &br]), format!("{target}\n"));
    let mut s = accept_switch(&l, Duration::from_secs(5));
    wait_status(&d, &br, "is_connected=true role=equal");

    // Silent for a probe interval: the switch asks with ECHO_REQUEST; answered, it stays.
    let t0 = Instant::now();
    let (t, echo) = read_msg(&mut s, Duration::from_secs(8)).expect("ECHO_REQUEST");
    assert_eq!(t, 2, "ECHO_REQUEST after silence");
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    let mut reply = echo.clone();
    reply[1] = 3;
    s.write_all(&reply).unwrap();
    // Unanswered, the connection is dropped after a second interval...
    let (t, _) = read_msg(&mut s, Duration::from_secs(8)).expect("a second ECHO_REQUEST");
    assert_eq!(t, 2);
    assert!(
        read_msg(&mut s, Duration::from_secs(8)).is_none(),
        "an unanswered probe drops the connection"
    );
    // ...and the switch dials again by itself, with back-off.
    let _s2 = accept_switch(&l, Duration::from_secs(10));
    let st = wait_status(&d, &br, "is_connected=true");
    assert!(
        st.contains("last_error=") || st.contains("is_connected=true"),
        "{st}"
    );
    assert!(
        d.log().contains("inactivity probe"),
        "the log says why: {}",
        d.log()
    );

    // The controller survives kill -9 of the switch.
    d.kill9();
    d.spawn();
    let mut s3 = accept_switch(&l, Duration::from_secs(10));
    assert!(d.saved().contains(&target), "{}", d.saved());

    // Removed, the connection closes.
    d.ok(&["del-controller", &br]);
    assert!(
        read_msg(&mut s3, Duration::from_secs(5)).is_none(),
        "del-controller closes the connection"
    );
    assert_eq!(d.ok(&["get-controller", &br]), "");
}

#[test]
fn a_passive_target_accepts_controllers_and_bad_settings_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", "");
    let br = unique("vsct");
    d.ok(&["add-br", &br, "datapath_type=dummy"]);
    let port = free_port();
    d.ok(&["set-controller", &br, &format!("ptcp:{port}")]);
    assert_eq!(
        d.ok(&["get-controller", &br]),
        format!("ptcp:{port}:127.0.0.1\n")
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "ptcp never listened: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    handshake(&mut s);
    wait_status(&d, &br, "is_connected=true");

    for (args, want) in [
        (
            vec!["set-controller", &br, "udp:1.2.3.4"],
            "unknown connection method",
        ),
        (
            vec!["set-controller", &br, "tcp:example.com"],
            "not an IP address",
        ),
        (vec!["set-controller", &br, "ssl:127.0.0.1"], "SSL"),
        (
            vec!["set-controller", "nosuchbr", "tcp:127.0.0.1"],
            "no bridge",
        ),
        (
            vec!["set-fail-mode", &br, "open"],
            "want standalone or secure",
        ),
    ] {
        let e = d.fails(&args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    // Refused settings changed nothing.
    assert_eq!(
        d.ok(&["get-controller", &br]),
        format!("ptcp:{port}:127.0.0.1\n")
    );
    assert_eq!(d.ok(&["get-fail-mode", &br]), "");
    d.ok(&["set-fail-mode", &br, "secure"]);
    assert_eq!(d.ok(&["get-fail-mode", &br]), "secure\n");
    assert!(
        d.saved().contains("fail_mode = \"secure\""),
        "{}",
        d.saved()
    );
    d.ok(&["del-fail-mode", &br]);
    assert_eq!(d.ok(&["get-fail-mode", &br]), "");
}

/// Frames `port` sent since the last call, waiting up to `within` for the first.
fn sent(d: &Daemon, br: &str, port: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let got: Vec<String> = d
            .ok(&["dummy-sent", br, port])
            .lines()
            .map(str::to_owned)
            .collect();
        if !got.is_empty() || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A broadcast ARP request as hex (NORMAL floods it).
const ARP: &str =
    "ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002";

#[test]
fn standalone_fails_open_while_no_controller_is_connected_and_secure_does_not() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", "");
    let br = unique("vsfm");
    d.ok(&["add-br", &br, "datapath_type=dummy"]);
    let (p1, p2) = (format!("{br}p1"), format!("{br}p2"));
    d.ok(&["add-port", &br, &p1, "type=dummy", "ofport_request=1"]);
    d.ok(&["add-port", &br, &p2, "type=dummy", "ofport_request=2"]);
    d.ok(&["del-flows", &br]);
    // No rules and no controller: nothing is forwarded.
    d.ok(&["dummy-receive", &br, &p1, ARP]);
    assert!(sent(&d, &br, &p2, Duration::from_millis(300)).is_empty());

    // A controller that is not there, standalone (the default): NORMAL.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp:127.0.0.1:{}", l.local_addr().unwrap().port());
    drop(l);
    d.ok(&["set-controller", &br, &target]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        d.ok(&["dummy-receive", &br, &p1, ARP]);
        if !sent(&d, &br, &p2, Duration::from_millis(200)).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "standalone never failed open: {}",
            d.log()
        );
    }
    let trace = d.ok(&["trace", &br, "in_port=1,dl_dst=ff:ff:ff:ff:ff:ff,arp"]);
    assert!(trace.to_lowercase().contains("fail"), "{trace}");

    // Secure: only the flows installed (none).
    d.ok(&["set-fail-mode", &br, "secure"]);
    std::thread::sleep(Duration::from_millis(500));
    let _ = d.ok(&["dummy-sent", &br, &p2]);
    d.ok(&["dummy-receive", &br, &p1, ARP]);
    assert!(
        sent(&d, &br, &p2, Duration::from_millis(300)).is_empty(),
        "secure forwards nothing without flows"
    );

    // Standalone again, with the controller connected: its flows (none) decide.
    let l = TcpListener::bind(target.strip_prefix("tcp:").unwrap()).unwrap();
    d.ok(&["del-fail-mode", &br]);
    let _s = accept_switch(&l, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let _ = d.ok(&["dummy-sent", &br, &p2]);
    d.ok(&["dummy-receive", &br, &p1, ARP]);
    assert!(
        sent(&d, &br, &p2, Duration::from_millis(300)).is_empty(),
        "a connected controller's flows decide"
    );
}

#[test]
fn garbage_and_truncated_messages_break_only_their_own_connection() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", "");
    let br = unique("vsgb");
    d.ok(&["add-br", &br, "datapath_type=dummy"]);
    let port = free_port();
    d.ok(&["set-controller", &br, &format!("ptcp:{port}")]);
    let connect = || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => return s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "ptcp never listened: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    };
    // A length shorter than the header: the connection is dropped.
    let mut s = connect();
    read_msg(&mut s, Duration::from_secs(5)).expect("HELLO");
    s.write_all(&[4, 0, 0, 8, 0, 0, 0, 1]).unwrap();
    s.write_all(&[4, 5, 0, 4, 0, 0, 0, 2]).unwrap();
    assert!(
        read_msg(&mut s, Duration::from_secs(5)).is_none(),
        "a 4-byte message drops the connection"
    );
    // Not a HELLO first: dropped.
    let mut s = connect();
    read_msg(&mut s, Duration::from_secs(5)).expect("HELLO");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(
        read_msg(&mut s, Duration::from_secs(5)).is_none(),
        "HTTP drops the connection"
    );
    // Garbage after the handshake that still frames: an ERROR each, and the connection lives.
    let mut s = connect();
    handshake(&mut s);
    for garbage in [
        vec![4, 200, 0, 8, 0, 0, 0, 7],             // unknown type
        vec![4, 14, 0, 12, 0, 0, 0, 8, 1, 2, 3, 4], // FLOW_MOD cut short
        vec![4, 13, 0, 16, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1], // PACKET_OUT cut short
        vec![1, 5, 0, 8, 0, 0, 0, 10],              // another version
        vec![4, 18, 0, 12, 0, 0, 0, 11, 0, 99, 0, 0], // unknown multipart
    ] {
        s.write_all(&garbage).unwrap();
        let (t, reply) = read_msg(&mut s, Duration::from_secs(5)).expect("an ERROR");
        assert_eq!(t, 1, "ERROR for {garbage:02x?}");
        assert_eq!(
            reply[4..8],
            garbage[4..8],
            "the error carries the request's xid"
        );
    }
    s.write_all(&message(Version::Of13, MsgType::BarrierRequest, 12, |_| {}))
        .unwrap();
    let (t, _) = read_msg(&mut s, Duration::from_secs(5)).expect("BARRIER_REPLY");
    assert_eq!(t, 21, "the connection still works");
    // A message cut off by the peer's close.
    let mut s2 = connect();
    handshake(&mut s2);
    s2.write_all(&[4, 14, 0, 200, 0, 0, 0, 1, 0, 0]).unwrap();
    drop(s2);
    // Random bytes.
    let mut s3 = connect();
    let mut x = 0x1234_5678u32;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let _ = s3.write_all(&noise);
    drop(s3);
    // The switch is fine: still running, and the first connection still answers.
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.alive(), "vswitchd died: {}", d.log());
    s.write_all(&message(Version::Of13, MsgType::BarrierRequest, 13, |_| {}))
        .unwrap();
    let (t, _) = read_msg(&mut s, Duration::from_secs(5)).expect("BARRIER_REPLY");
    assert_eq!(t, 21);
    assert!(
        d.log().contains("OpenFlow connection closed"),
        "the log says why connections were dropped: {}",
        d.log()
    );
}
