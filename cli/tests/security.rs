//! Security and resource limits of a real vswitchd: where the API listens and who may reach it,
//! how many requests it serves at once, how large a body it reads, how many rules and ports a
//! bridge holds, the permissions of vhost-user sockets, and that no name or path in a request
//! makes the daemon write outside its state and run directories.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use support::{free_port, http, Daemon};
use testkit::require::{can_run, serial, Need};

#[test]
fn the_api_listens_on_a_unix_socket_of_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    // A stale socket from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let mut d = Daemon::configured(
        dir.path(),
        &format!("[api]\nlisten = \"unix:{}\"\n", sock.display()),
        String::new(),
    );
    d.spawn();
    let mut meta = None;
    for _ in 0..100 {
        if let Ok(m) = std::fs::metadata(&sock) {
            if m.file_type().is_socket() && UnixStream::connect(&sock).is_ok() {
                meta = Some(m);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let meta = meta.unwrap_or_else(|| panic!("no API socket: {}", d.log()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let (status, body) = http(UnixStream::connect(&sock).unwrap(), "GET", "/health", "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(UnixStream::connect(&sock).unwrap(), "GET", "/bridges", "");
    assert_eq!((status, body.as_str()), (200, "[]"));
    // A regular file in the way is not deleted.
    d.kill9();
    let _ = std::fs::remove_file(&sock);
    std::fs::write(&sock, "keep").unwrap();
    let out = std::process::Command::new(support::VSWITCHD)
        .arg("--config")
        .arg(&d.config)
        .arg("--state-dir")
        .arg(&d.state)
        .arg("--run-dir")
        .arg(&d.run)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "keep");
}

#[test]
fn a_non_loopback_address_needs_a_token_and_requests_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut d = Daemon::configured(
        dir.path(),
        &format!("[api]\nlisten = \"0.0.0.0:{port}\"\n"),
        format!("127.0.0.1:{port}"),
    );
    let out = std::process::Command::new(support::VSWITCHD)
        .arg("--config")
        .arg(&d.config)
        .arg("--state-dir")
        .arg(&d.state)
        .output()
        .unwrap();
    assert!(!out.status.success(), "listened on 0.0.0.0 without a token");
    assert!(String::from_utf8_lossy(&out.stderr).contains("api.token"));
    std::fs::write(
        &d.config,
        format!("[api]\nlisten = \"0.0.0.0:{port}\"\ntoken = \"s3cret\"\n"),
    )
    .unwrap();
    d.addr = String::new();
    d.spawn();
    let addr = format!("127.0.0.1:{port}");
    let mut status = 0;
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(&addr) {
            status = http(s, "GET", "/bridges", "").0;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 401, "no token must be refused");
    let o = std::process::Command::new(support::VSWITCHCTL)
        .args([
            "--url",
            &format!("http://{addr}"),
            "--token",
            "s3cret",
            "list-br",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = std::process::Command::new(support::VSWITCHCTL)
        .args([
            "--url",
            &format!("http://{addr}"),
            "--token",
            "wrong",
            "list-br",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn concurrent_clients_beyond_the_cap_get_503_and_are_served_again_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "max_clients = 2", "");
    // Two clients hold a request open: headers sent, body promised but not sent.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&d.addr).unwrap();
        write!(
            s,
            "POST /bridges HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = http(TcpStream::connect(&d.addr).unwrap(), "GET", "/bridges", "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("api.max_clients = 2"), "{body}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = http(TcpStream::connect(&d.addr).unwrap(), "GET", "/bridges", "");
    assert_eq!(status, 200);
}

#[test]
fn bodies_beyond_the_cap_get_413() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "max_body_bytes = 1000", "");
    let flows: Vec<String> = (0..100)
        .map(|i| format!("priority={i},actions=drop"))
        .collect();
    let body = serde_json::json!({ "flows": flows }).to_string();
    assert!(body.len() > 1000);
    let (status, resp) = http(
        TcpStream::connect(&d.addr).unwrap(),
        "POST",
        "/bridges/br0/flows",
        &body,
    );
    assert_eq!(status, 413, "{resp}");
    assert!(resp.contains("\"error\""), "{resp}");
}

#[test]
fn rule_and_port_caps_answer_409_naming_the_key() {
    let _serial = serial();
    if !can_run("rule_and_port_caps", &[Need::Netns]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", "[datapath]\nmax_flows = 3\nmax_ports = 1\n");
    let br = testkit::netns::unique("vsl");
    d.ok(&["add-br", &br]);
    // A new bridge holds the NORMAL flow.
    d.ok(&["add-flow", &br, "priority=10,ip,actions=drop"]);
    d.ok(&["add-flow", &br, "priority=11,ip,actions=drop"]);
    let e = d.fails(&["add-flow", &br, "priority=12,ip,actions=drop"]);
    assert!(e.contains("datapath.max_flows = 3"), "{e}");
    assert_eq!(d.ok(&["dump-flows", &br]).lines().count(), 3);
    // Deleting makes room again.
    d.ok(&["del-flows", &br, "priority=10,ip"]);
    d.ok(&["add-flow", &br, "priority=12,ip,actions=drop"]);
    let t1 = testkit::netns::unique("vslt");
    let t2 = testkit::netns::unique("vslt");
    d.ok(&["add-port", &br, &t1, "type=tap"]);
    let e = d.fails(&["add-port", &br, &t2, "type=tap"]);
    assert!(e.contains("datapath.max_ports = 1"), "{e}");
    assert!(
        !Path::new("/sys/class/net").join(&t2).exists(),
        "refused tap left behind"
    );
    d.ok(&["del-br", &br]);
}

/// Every regular file and directory under `root`.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                out.push(e.path().display().to_string());
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn vhost_sockets_are_private_and_no_request_writes_outside_the_state_dir() {
    let _serial = serial();
    if !can_run("vhost_sockets_are_private", &[Need::Netns]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("d");
    std::fs::create_dir(&work).unwrap();
    let d = Daemon::start(&work, "", "");
    let br = testkit::netns::unique("vss");
    d.ok(&["add-br", &br]);
    let vhu = testkit::netns::unique("vhu");
    d.ok(&["add-port", &br, &vhu, "type=vhostuser"]);
    let m = std::fs::metadata(d.run.join(&vhu)).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(m.permissions().mode() & 0o007, 0, "socket open to others");
    let m = std::fs::metadata(&d.run).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o750);
    // A file in the run directory is never replaced by a socket.
    std::fs::write(d.run.join("keep.me"), "data").unwrap();
    let e = d.fails(&["add-port", &br, "keep.me", "type=vhostuser"]);
    assert!(e.contains("not a socket"), "{e}");
    assert_eq!(
        std::fs::read_to_string(d.run.join("keep.me")).unwrap(),
        "data"
    );
    let before = tree(dir.path());
    let outside = dir.path().join("escaped");
    let esc = outside.display().to_string();
    let rel = format!("../../{}", "escaped");
    // Names and paths that try to leave the directories, or to overwrite the state file.
    for args in [
        vec!["add-br", "../escaped"],
        vec!["add-br", &rel],
        vec!["add-port", &br, "../escaped", "type=vhostuser"],
        vec!["add-port", &br, "..", "type=vhostuser"],
        vec!["add-port", &br, ".hidden", "type=vhostuser"],
        vec!["add-port", &br, &rel, "type=tap"],
        vec![
            "add-port",
            &br,
            "vm9",
            "type=vhostuserclient",
            "vhost-server-path=../escaped",
        ],
    ] {
        let e = d.fails(&args);
        assert!(
            e.contains("invalid") || e.contains("absolute"),
            "{args:?}: {e}"
        );
    }
    let body = serde_json::json!({
        "name": "vm9", "type": "vhostuserclient",
        "options": { "vhost-server-path": format!("{esc}\0x") }
    });
    let (status, resp) = http(
        TcpStream::connect(&d.addr).unwrap(),
        "POST",
        &format!("/bridges/{br}/ports"),
        &body.to_string(),
    );
    assert_eq!(status, 400, "{resp}");
    // The client port connects to a path, it never creates one.
    let _ = d.ctl(&[
        "add-port",
        &br,
        "vm8",
        "type=vhostuserclient",
        &format!("vhost-server-path={esc}"),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let after = tree(dir.path());
    let new: Vec<&String> = after
        .iter()
        .filter(|p| !before.contains(p) && !p.contains("/d/state/") && !p.contains("/d/run/"))
        .collect();
    assert!(
        new.is_empty(),
        "files created outside the state and run dirs: {new:?}"
    );
    assert!(!outside.exists());
    d.ok(&["del-br", &br]);
}

/// The number after `label` in `pmd-stats-show`, summed over PMDs.
fn pmd_stat(d: &Daemon, label: &str) -> u64 {
    d.ok(&["pmd-stats-show"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix(label))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn at_the_megaflow_limit_traffic_still_flows_through_upcalls() {
    let _serial = serial();
    if !can_run("at_the_megaflow_limit", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        "",
        "[datapath]\nflow_limit = 1\nemc_insert_inv_prob = 0\n",
    );
    let br = testkit::netns::unique("vsfl");
    d.ok(&["add-br", &br]);
    let hosts: Vec<support::Netns> = (0..3).map(|_| support::Netns::new()).collect();
    for (i, h) in hosts.iter().enumerate() {
        d.ok(&[
            "attach-netns",
            &br,
            &h.0,
            "--ip",
            &format!("10.79.0.{}/24", i + 1),
        ]);
    }
    for (i, h) in hosts.iter().enumerate() {
        for j in 0..3 {
            if i != j {
                assert!(h.ping_until_ok(&format!("10.79.0.{}", j + 1)), "{i} -> {j}");
            }
        }
    }
    assert!(pmd_stat(&d, "megaflows installed:") <= 1);
    assert!(
        pmd_stat(&d, "miss with failed upcall:") > 0,
        "the limit was never reached: {}",
        d.ok(&["pmd-stats-show"])
    );
    d.ok(&["del-br", &br]);
}
