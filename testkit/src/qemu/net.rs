//! Helpers for the guest's network: addresses, links, ping, iperf3.

use super::guest::Guest;
use std::io;
use std::time::Duration;

impl Guest {
    /// Adds `cidr` (e.g. `10.0.0.1/24`) to `ifname` and brings the link up.
    pub fn configure_ip(&mut self, ifname: &str, cidr: &str) {
        self.sh(&format!(
            "ip addr add {cidr} dev {ifname} && ip link set {ifname} up"
        ));
    }

    /// Brings `ifname` up.
    pub fn link_up(&mut self, ifname: &str) {
        self.sh(&format!("ip link set {ifname} up"));
    }

    /// Sets the MTU of `ifname`.
    pub fn set_mtu(&mut self, ifname: &str, mtu: u32) {
        self.sh(&format!("ip link set {ifname} mtu {mtu}"));
    }

    /// The MAC address of `ifname`.
    pub fn mac(&mut self, ifname: &str) -> String {
        self.sh(&format!("cat /sys/class/net/{ifname}/address"))
    }

    /// Whether `count` pings to `addr` (one per second, each waiting up to its deadline)
    /// get at least one answer.
    pub fn ping(&mut self, addr: &str, count: u32) -> bool {
        let cmd = format!("ping -c {count} -w {} {addr}", count + 5);
        matches!(
            self.run(&cmd, Duration::from_secs(u64::from(count) + 30)),
            Ok((0, _))
        )
    }

    /// Starts an iperf3 server on `port` in the background (its log in
    /// `/tmp/iperf3-<port>.log` in the guest).
    pub fn iperf3_server(&mut self, port: u16) {
        self.sh(&format!(
            "iperf3 -s -D -p {port} --logfile /tmp/iperf3-{port}.log"
        ));
    }

    /// Runs an iperf3 client against `server:port` for `seconds`, with `extra` arguments
    /// (e.g. `-R`, `-u -b 100M`), and returns the receiver's throughput in bits/s.
    pub fn iperf3_client(
        &mut self,
        server: &str,
        port: u16,
        seconds: u32,
        extra: &str,
    ) -> io::Result<f64> {
        let cmd = format!("iperf3 -c {server} -p {port} -t {seconds} -J {extra}");
        let (status, out) = self.run(&cmd, Duration::from_secs(u64::from(seconds) + 30))?;
        let json: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| io::Error::other(format!("iperf3 (status {status}): {e}: {out}")))?;
        if status != 0 {
            return Err(io::Error::other(format!(
                "iperf3 exited with {status}: {}",
                json["error"]
            )));
        }
        let end = &json["end"];
        end["sum_received"]["bits_per_second"]
            .as_f64()
            .or_else(|| end["sum"]["bits_per_second"].as_f64())
            .ok_or_else(|| io::Error::other(format!("no throughput in iperf3 output: {out}")))
    }
}
