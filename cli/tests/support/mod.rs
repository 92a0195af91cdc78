//! A vswitchd process with a configuration of the test's choosing, its client, and namespaces
//! the tests create (shared by the reliability and security tests).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use testkit::netns::unique;

pub mod controllers;

pub const VSWITCHD: &str = env!("CARGO_BIN_EXE_vswitchd");
pub const VSWITCHCTL: &str = env!("CARGO_BIN_EXE_vswitchctl");

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running vswitchd, killed on drop.
pub struct Daemon {
    pub child: Option<Child>,
    /// `HOST:PORT` of the API (empty when it listens on a unix socket).
    pub addr: String,
    pub config: PathBuf,
    pub state: PathBuf,
    pub run: PathBuf,
}

impl Daemon {
    /// Starts vswitchd on a free loopback port with `extra` appended to its configuration
    /// (more `[api]` keys first, then sections).
    pub fn start(dir: &Path, api_extra: &str, rest: &str) -> Daemon {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let text = format!("[api]\nlisten = \"{addr}\"\n{api_extra}\n{rest}\n");
        let mut d = Daemon::configured(dir, &text, addr);
        d.spawn();
        d
    }

    /// A daemon with exactly this configuration text, not started.
    pub fn configured(dir: &Path, text: &str, addr: String) -> Daemon {
        let config = dir.join("vswitchd.toml");
        std::fs::write(&config, text).unwrap();
        Daemon {
            child: None,
            addr,
            config,
            state: dir.join("state"),
            run: dir.join("run"),
        }
    }

    /// Starts the process and waits until it answers (or, without a TCP address, a moment).
    pub fn spawn(&mut self) {
        let child = Command::new(VSWITCHD)
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--run-dir")
            .arg(&self.run)
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.state.with_file_name("vswitchd.log"))
                    .expect("log file"),
            )
            .spawn()
            .expect("vswitchd starts");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if self.addr.is_empty() {
                std::thread::sleep(Duration::from_millis(300));
                return;
            }
            if self.ctl(&["list-br"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vswitchd did not answer within 20 s: {}", self.log());
    }

    /// The configuration a restart would restore, as saved in the state directory (snapshot
    /// and journal), in the state file's TOML.
    pub fn saved(&self) -> String {
        let store = mgmt_api::service::state::Store::open(&self.state).unwrap();
        let state = mgmt_api::service::saved_state(&store).unwrap();
        mgmt_api::service::state::to_toml(&state)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.with_file_name("vswitchd.log")).unwrap_or_default()
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(VSWITCHCTL)
            .arg("--url")
            .arg(format!("http://{}", self.addr))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs vswitchctl and returns its standard output; panics when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "vswitchctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs vswitchctl, which must fail; returns its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(!o.status.success(), "vswitchctl {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "vswitchd ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP/1.1 request over any stream; returns the status code and the body.
pub fn http<S: Read + Write>(mut s: S, method: &str, path: &str, body: &str) -> (u16, String) {
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|b| b.1).unwrap_or("");
    (status, body.to_owned())
}

/// A network namespace the test creates, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new() -> Netns {
        let n = unique("vsrl");
        let ok = Command::new("ip")
            .args(["netns", "add", &n])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {n}");
        for k in ["all", "default"] {
            let _ = Command::new("ip")
                .args(["netns", "exec", &n, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{k}.disable_ipv6=1"))
                .status();
        }
        Netns(n)
    }

    pub fn ping(&self, ip: &str, count: u32) -> bool {
        Command::new("ip")
            .args([
                "netns", "exec", &self.0, "ping", "-q", "-n", "-i", "0.2", "-W", "1", "-c",
            ])
            .arg(count.to_string())
            .arg(ip)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    pub fn ping_until_ok(&self, ip: &str) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if self.ping(ip, 1) {
                return true;
            }
        }
        false
    }

    /// `ip link show IFNAME` inside the namespace, if the interface exists.
    pub fn link(&self, ifname: &str) -> Option<String> {
        let o = Command::new("ip")
            .args(["-n", &self.0, "link", "show", ifname])
            .output()
            .unwrap();
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Sends bursts of 32 frames from the VM's port 0 until some reach its port 1 (a path that has
/// just (re)connected may lose the first ones); panics after 15 s with `what` and `log()`.
pub fn probe_until_traffic(vm: &testkit::testpmd::TestPmd, what: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        vm.clear_stats();
        vm.start();
        vm.send_burst(0, 32).unwrap();
        let got = vm.wait_rx(1, 1, Duration::from_millis(500));
        vm.stop();
        if got.rx_packets > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{what}:\n{}", log());
    }
}
