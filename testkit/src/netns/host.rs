//! A namespace playing one host on the switch: addressed, IPv6 off, joined by a veth pair or
//! by a tap the switch created, so end-to-end tests can ping and measure between hosts.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{run, sh, unique, ChildGuard};
use crate::sys::{self, PacketSocket};

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
            let f = std::fs::File::open(&ns).expect("namespace file");
            sys::enter_netns(&f).unwrap_or_else(|e| panic!("setns: {e}"));
            let ifindex = sys::ifindex(&ifname);
            assert!(ifindex > 0, "no interface in the namespace");
            let sock = PacketSocket::open(false).unwrap_or_else(|e| panic!("socket: {e}"));
            let n = sock
                .send_to(&frame, ifindex as i32)
                .unwrap_or_else(|e| panic!("sendto: {e}"));
            assert_eq!(n, frame.len(), "sendto: short send");
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
