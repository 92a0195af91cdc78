//! Network namespaces for tests: traffic between them stays off the host's interfaces, and
//! every namespace a test makes is deleted (with its interfaces) when dropped.
//!
//! - [`Netns`]: a bare private namespace to build a topology in, and [`Netns::run`] to run
//!   code (sockets, ports) inside it; [`RawSock`] plays the far side of a port there.
//! - [`Host`]: a namespace playing one addressed host, joined to the switch by a veth pair or
//!   by a tap the switch made, with `ping` and `iperf3` helpers ([`iperf3`]).
//! - [`Receiver`] and [`send_file`]: one TCP stream of a file between namespaces, checked by
//!   its SHA-256.
//! - [`VlanTag`]: a host's interface as a VLAN trunk port, where the kernel has no 802.1Q.
//! - [`TcpTopology`]: a TCP client and server in two namespaces with a third between them,
//!   where the test's forwarding loop runs.
//!
//! Use [`crate::require::can_run`] with [`crate::require::Need::Netns`] first: namespaces need
//! root.

mod host;
mod iperf;
mod rawsock;
mod stream;
mod tcp;
mod vlan;

pub use crate::process::ChildGuard;
pub use host::Host;
pub use iperf::{iperf3, iperf3_json};
pub use rawsock::RawSock;
pub use stream::{seeded_file, send_file, sha256, Receiver};
pub use tcp::{SwitchThread, TcpTopology};
pub use vlan::VlanTag;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

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

/// Kernel counter of an interface in the root namespace.
pub fn if_stat(ifname: &str, stat: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{stat}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A network namespace private to one test, deleted (with its interfaces) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates a uniquely named namespace with loopback up and IPv6 off (so the kernel sends no
    /// router solicitations or DAD probes that would mix with test frames).
    #[allow(clippy::new_without_default)] // Creates a namespace: not a default value.
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

    /// Runs `ip -n NS ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run(&v);
    }

    /// Runs a command inside the namespace, which must succeed.
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
        self.spawn(f)
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Like [`run`](Self::run) without waiting: `f` runs on its own thread inside the
    /// namespace (which must outlive it).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            crate::sys::enter_netns(&file).unwrap_or_else(|e| panic!("setns: {e}"));
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
