//! Test hosts (feature `testnet`) for end-to-end tests and benchmarks: network namespaces
//! joined to the switch by veth pairs or taps, all created by the caller and removed on drop.
//! Traffic stays between these namespaces.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// End-to-end tests run one at a time: each starts PMD threads, and the machine has 2 cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether this test can run: root, iproute2, the named tools, and the right to create a
/// namespace. Prints a loud `SKIPPED` line when not.
pub fn can_run(test: &str, tools: &[&str]) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root for network namespaces");
        return false;
    }
    for t in ["ip"].iter().chain(tools) {
        if !have(t) {
            eprintln!("SKIPPED: {test}: `{t}` is not installed (scripts/test.sh installs it)");
            return false;
        }
    }
    let probe = format!("vswprobe{}", std::process::id());
    let ok = sh(&["ip", "netns", "add", &probe]).status.success();
    let _ = sh(&["ip", "netns", "del", &probe]);
    if !ok {
        eprintln!("SKIPPED: {test}: cannot create a network namespace");
    }
    ok
}

/// Runs a command, returning its output.
pub fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn run(args: &[&str]) -> String {
    let o = sh(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A unique short name (interface names have at most 15 bytes).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A namespace playing one host, with IPv6 off so the kernel sends no unsolicited traffic.
pub struct Host {
    /// Namespace name.
    pub ns: String,
    /// Its interface towards the switch.
    pub ifname: String,
    /// Its IPv4 address.
    pub ip: String,
}

impl Host {
    fn new_ns() -> String {
        let ns = unique("vswns");
        run(&["ip", "netns", "add", &ns]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        let _ = sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ]);
        let _ = sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns
    }

    /// A host joined by a veth pair; returns it and the name of the switch-side end (left in
    /// this namespace, up, with IPv6 off).
    pub fn veth(ip: &str) -> (Host, String) {
        let ns = Host::new_ns();
        let outer = unique("vswv");
        let inner = "eth0".to_string();
        let _ = sh(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        run(&[
            "ip", "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns,
        ]);
        let _ = sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{outer}.disable_ipv6=1"),
        ]);
        run(&["ip", "link", "set", &outer, "up"]);
        let host = Host {
            ns,
            ifname: inner,
            ip: ip.to_owned(),
        };
        host.configure();
        (host, outer)
    }

    /// A host behind a tap the switch created: moves the tap into a new namespace.
    pub fn tap(tap: &str, ip: &str) -> Host {
        let ns = Host::new_ns();
        run(&["ip", "link", "set", tap, "netns", &ns]);
        let host = Host {
            ns,
            ifname: tap.to_owned(),
            ip: ip.to_owned(),
        };
        host.configure();
        host
    }

    fn configure(&self) {
        run(&[
            "ip",
            "-n",
            &self.ns,
            "addr",
            "add",
            &format!("{}/24", self.ip),
            "dev",
            &self.ifname,
        ]);
        run(&["ip", "-n", &self.ns, "link", "set", &self.ifname, "up"]);
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Spawns a command inside the namespace.
    pub fn spawn(&self, args: &[&str]) -> ChildGuard {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        ChildGuard(Some(child))
    }

    /// Pings `ip` `count` times (0.2 s apart, 1 s deadline each); true when every reply came.
    pub fn ping(&self, ip: &str, count: u32) -> bool {
        let c = count.to_string();
        self.exec(&["ping", "-q", "-n", "-c", &c, "-i", "0.2", "-W", "1", ip])
            .status
            .success()
    }

    /// Pings until one reply comes (the switch may still be learning), for at most `limit`.
    pub fn ping_until_ok(&self, ip: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self
                .exec(&["ping", "-q", "-n", "-c", "1", "-W", "1", ip])
                .status
                .success()
            {
                return true;
            }
        }
        false
    }

    /// Static ARP entry, so a test controls exactly which frames cross the switch.
    pub fn arp(&self, ip: &str, mac: &str) {
        run(&[
            "ip",
            "-n",
            &self.ns,
            "neigh",
            "replace",
            ip,
            "lladdr",
            mac,
            "dev",
            &self.ifname,
        ]);
    }

    /// Sends `frame` as it is out of the host's interface (an AF_PACKET raw socket opened
    /// inside the namespace), e.g. a malformed frame the kernel would never build.
    pub fn send_raw(&self, frame: &[u8]) {
        let ns = format!("/var/run/netns/{}", self.ns);
        let ifname = self.ifname.clone();
        let frame = frame.to_vec();
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let f = std::fs::File::open(&ns).expect("namespace file");
            // SAFETY: setns with a namespace fd affects only this (fresh) thread.
            let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            let name = std::ffi::CString::new(ifname).expect("interface name");
            // SAFETY: `name` is a valid NUL-terminated string.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert!(ifindex > 0, "no interface in the namespace");
            // SAFETY: plain socket call; the fd is closed below.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                )
            };
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            // SAFETY: sockaddr_ll is plain data.
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_ifindex = ifindex as i32;
            sa.sll_halen = 6;
            // SAFETY: `frame` and `sa` are valid for the lengths given; fd is ours.
            let n = unsafe {
                let n = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sa as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                libc::close(fd);
                n
            };
            assert_eq!(
                n,
                frame.len() as isize,
                "sendto: {}",
                std::io::Error::last_os_error()
            );
        })
        .join()
        .expect("raw send");
    }

    /// MAC address of the host's interface.
    pub fn mac(&self) -> String {
        let o = self.exec(&["cat", &format!("/sys/class/net/{}/address", self.ifname)]);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the namespace deletes its interfaces, and with them the veth peers.
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// Kernel counter of an interface in the root namespace.
pub fn if_stat(ifname: &str, stat: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{stat}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A child process killed on drop.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// Waits for the process to exit, at most `limit`; returns its output, or `None` on
    /// time-out (it is then killed).
    pub fn wait(mut self, limit: Duration) -> Option<Output> {
        let mut child = self.0.take()?;
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return child.wait_with_output().ok();
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs iperf3 from `client` to `server` with extra client arguments (`-J` is added); returns
/// the client's JSON report, or `None` when iperf3 failed.
pub fn iperf3_json(client: &Host, server: &Host, secs: u32, extra: &[&str]) -> Option<String> {
    let srv = server.spawn(&["iperf3", "-s", "-1", "-B", &server.ip]);
    std::thread::sleep(Duration::from_millis(300));
    let t = secs.to_string();
    let mut args = vec!["iperf3", "-c", &server.ip, "-t", &t, "-J"];
    args.extend_from_slice(extra);
    let out = client.exec(&args);
    let _ = srv.wait(Duration::from_secs(5));
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("iperf3 failed: {json}");
        return None;
    }
    Some(json)
}

/// Runs an iperf3 test from `client` to `server` for `secs` seconds; returns bits per second
/// as the receiver saw them. `udp_len` selects UDP with that payload length.
pub fn iperf3(client: &Host, server: &Host, secs: u32, udp_len: Option<u32>) -> Option<f64> {
    let len = udp_len.map(|l| l.to_string());
    let mut extra = Vec::new();
    if let Some(l) = &len {
        extra.extend(["-u", "-b", "0", "-l", l.as_str()]);
    }
    let json = iperf3_json(client, server, secs, &extra)?;
    // "sum_received": {... "bits_per_second": N ...} for TCP; "sum" for UDP.
    let key = if udp_len.is_some() {
        "\"sum\""
    } else {
        "\"sum_received\""
    };
    let at = json.rfind(key)?;
    let rest = &json[at..];
    let b = rest.find("\"bits_per_second\":")? + "\"bits_per_second\":".len();
    let num: String = rest[b..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '+')
        .collect();
    num.parse().ok()
}
