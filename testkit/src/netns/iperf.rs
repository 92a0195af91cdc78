//! iperf3 between two [`Host`]s: the throughput figures of the kernel-path tests and benches.

use std::time::Duration;

use super::Host;

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
