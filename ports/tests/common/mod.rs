//! Shared helpers for the tests that need real interfaces: a private network namespace per test
//! (deleted on drop), veth pairs inside it, and a raw AF_PACKET socket to play the far side.
//!
//! Everything happens inside namespaces the test creates; no traffic touches the host's
//! interfaces.

#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Ethertype used by test frames (IEEE local experimental), so stray traffic is easy to ignore.
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// Whether the test can create namespaces; prints a loud SKIPPED line when not.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root to create network namespaces");
        return false;
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!("SKIPPED: {test}: `ip` (iproute2) not found");
            return false;
        }
    }
    // Root in a container may still lack the right to make namespaces; try once per process.
    static NETNS_OK: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let probe = NETNS_OK.get_or_init(|| {
        let name = format!("vswports-probe-{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        Ok(())
    });
    if let Err(e) = probe {
        eprintln!("SKIPPED: {test}: cannot create a network namespace: {e}");
        return false;
    }
    true
}

/// Like [`can_run`], and also needs `/dev/net/tun`.
pub fn can_run_tap(test: &str) -> bool {
    if !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("SKIPPED: {test}: /dev/net/tun missing");
        return false;
    }
    can_run(test)
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace private to one test, deleted (with its interfaces) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates a uniquely named namespace with loopback up and IPv6 off (so the kernel sends no
    /// router solicitations or DAD probes that would mix with test frames).
    pub fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "vswports-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n NS ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run(&v);
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v);
    }

    /// Creates a veth pair `a`–`b` inside the namespace, both up.
    pub fn veth(&self, a: &str, b: &str) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        self.ip(&["link", "set", a, "up"]);
        self.ip(&["link", "set", b, "up"]);
    }

    /// Creates a veth pair with `n` queues on each end, both up.
    pub fn veth_mq(&self, a: &str, b: &str, n: usize) {
        let n = n.to_string();
        self.ip(&[
            "link",
            "add",
            a,
            "numtxqueues",
            &n,
            "numrxqueues",
            &n,
            "type",
            "veth",
            "peer",
            "name",
            b,
            "numtxqueues",
            &n,
            "numrxqueues",
            &n,
        ]);
        self.ip(&["link", "set", a, "up"]);
        self.ip(&["link", "set", b, "up"]);
    }

    /// Runs `f` on a thread that has entered the namespace; sockets and taps it creates live in
    /// the namespace. Panics in `f` propagate.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns with a namespace fd affects only this (fresh) thread.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The far side of a port under test: a raw AF_PACKET socket bound to one interface.
pub struct RawSock {
    fd: OwnedFd,
    ifindex: i32,
}

fn ifindex(name: &str) -> i32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: `c` is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert!(i > 0, "no interface {name}");
    i as i32
}

impl RawSock {
    /// Opens a socket bound to `ifname` (in the calling thread's namespace).
    pub fn bind(ifname: &str) -> RawSock {
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain socket creation; the fd is owned right away.
        let fd = unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, proto);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            OwnedFd::from_raw_fd(fd)
        };
        let ifindex = ifindex(ifname);
        // SAFETY: all-zero sockaddr_ll is valid; bind reads it for the given length.
        unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto as u16;
            sll.sll_ifindex = ifindex;
            let r = libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        }
        RawSock { fd, ifindex }
    }

    /// Sends one frame out of the interface.
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: frame is readable for its length.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            r,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Collects incoming test frames (ethertype [`TEST_ETHERTYPE`]) until `n` arrived or
    /// `timeout` passed.
    pub fn recv_test_frames(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while out.len() < n && Instant::now() < deadline {
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut sl = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and sll are writable for the lengths given.
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
            if r < 0 {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let f = &buf[..r as usize];
            if sll.sll_pkttype != libc::PACKET_OUTGOING && is_test_frame(f) {
                out.push(f.to_vec());
            }
        }
        out
    }

    /// Interface index the socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }
}

/// Whether `f` is one of ours.
pub fn is_test_frame(f: &[u8]) -> bool {
    f.len() >= 14 && u16::from_be_bytes([f[12], f[13]]) == TEST_ETHERTYPE
}

/// A test frame of `len` bytes (≥ 60) numbered `seq`, from `src` to `dst`.
pub fn test_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len.max(60) {
        f.push((f.len() as u32 ^ seq) as u8);
    }
    f
}

/// Sequence number of a test frame.
pub fn seq_of(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[14], f[15], f[16], f[17]])
}

/// Polls `f` until it returns true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// Whether the UDP checksum of an Ethernet/IPv4/UDP frame (no IP options) is correct.
pub fn udp4_checksum_ok(f: &[u8]) -> bool {
    let sum16 = |b: &[u8]| -> u64 {
        b.chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64)
            .sum()
    };
    let udp = &f[34..];
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as u64;
    let mut s = sum16(&f[26..34]) + 17 + udp_len + sum16(&udp[..udp_len as usize]);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

/// Whether `f` is an Ethernet/IPv4/UDP frame.
pub fn is_udp4(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17
}

/// UDP destination port of the frames below, to tell them from anything else.
pub const UDP_DPORT: u16 = 9;

/// An Ethernet/IPv4/UDP frame from UDP source port `sport`: each is its own flow, so flow-hash
/// steering (fanout, multiqueue tap, veth queues) spreads them over the instances.
pub fn udp_frame(sport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![
        0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 77, 1, 1, 10, 77, 1, 2,
    ];
    let mut s = 0u32;
    for c in ip.chunks(2) {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&UDP_DPORT.to_be_bytes());
    f.extend_from_slice(&26u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed on IPv4)
    f.extend_from_slice(&[0x5a; 18]);
    f
}
