//! Control-plane client for `benches/e2e/run-control-scale.sh`: single rule changes against a
//! running vswitchd (REST, one keep-alive connection per client) or any command-line tool
//! (`vswitchctl`, `ovs-ofctl`: process start included), and the restart-to-forwarding probe.
//! Every mode prints one JSON object on stdout.
//!
//!     flow_churn rest-latency --url URL [--bridge br0] [--samples 200] [--max-secs 60] [--base 11]
//!                             [--pause-ms 0]
//!     flow_churn rest-throughput --url URL [--bridge br0] [--clients 4] [--secs 5] [--base 12]
//!     flow_churn rest-floor --url URL [--clients 4] [--secs 5]   (GET /health: the HTTP floor)
//!     flow_churn exec-latency --add 'CMD.. {flow}' --del 'CMD.. {match}' [--samples 50]
//!                             [--max-secs 60] [--base 13]
//!     flow_churn exec-throughput --add '..' --del '..' [--clients 4] [--secs 5] [--base 16]
//!     flow_churn restart-probe --url URL [--bridge br0] [--in-port p1] [--out-port p2]
//!                              --dst 10.0.0.1 [--timeout-secs 120]
//!
//! Rules are `priority=100,ip,nw_dst=B.x.y.z,actions=output:2`, each change on its own /32
//! (B is `--base`, plus the client's number for the throughput modes); a change is an add
//! followed by the strict delete of the same rule, so the table keeps its size. Latencies are
//! reported per operation (add, delete) as p50/p99/mean in milliseconds; throughput as single
//! changes (an add or a delete) completed per second by all clients together.
//!
//! Command templates are split on whitespace; `{flow}` becomes the whole rule and `{match}`
//! the rule without its actions (`priority=100,ip,nw_dst=...`), as `del-flows --strict` wants.
//!
//! `restart-probe` runs right after the script started vswitchd: it polls `GET /health`, then
//! injects a frame to `--dst` into the dummy port `--in-port` and polls `--out-port`'s sent
//! frames until it appears (re-injecting every 100 ms), and prints the wall-clock times
//! (`unix_ns`) at which the API answered and the frame came out.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: &str) -> T {
    let v = arg(args, name, default);
    v.parse()
        .unwrap_or_else(|_| die(&format!("{name}: bad number {v:?}")))
}

fn die(msg: &str) -> ! {
    eprintln!("flow_churn: {msg}");
    std::process::exit(2)
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The address of change `i` in the /8 `base`.
fn addr(base: u32, i: u32) -> String {
    format!("{base}.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn rule_match(base: u32, i: u32) -> String {
    format!("priority=100,ip,nw_dst={}", addr(base, i))
}

fn rule(base: u32, i: u32) -> String {
    format!("{},actions=output:2", rule_match(base, i))
}

/// p50, p99 (nearest rank) and mean of durations, in milliseconds.
fn summary(samples: &mut [Duration]) -> Value {
    if samples.is_empty() {
        return json!({ "n": 0 });
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rank = |q: f64| {
        let i = (q * samples.len() as f64).ceil() as usize;
        samples[i.clamp(1, samples.len()) - 1]
    };
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    json!({
        "n": samples.len(),
        "p50_ms": ms(rank(0.50)),
        "p99_ms": ms(rank(0.99)),
        "mean_ms": mean,
        "max_ms": ms(samples[samples.len() - 1]),
    })
}

// ---- REST ---------------------------------------------------------------------------------

struct Rest {
    agent: ureq::Agent,
    base: String,
    bridge: String,
}

impl Rest {
    fn new(args: &[String]) -> Rest {
        let url = arg(args, "--url", "http://127.0.0.1:8080");
        Rest {
            // One agent per client: its pool keeps the client's one connection alive.
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(num(
                    args,
                    "--request-timeout-secs",
                    "300",
                ))))
                .build()
                .into(),
            base: url.trim_end_matches('/').to_owned(),
            bridge: arg(args, "--bridge", "br0"),
        }
    }

    /// Sends a request with an optional JSON body: the status and the body's text.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.base);
        let text = body.map(Value::to_string);
        let r = match (method, &text) {
            ("GET", _) => self.agent.get(&url).call(),
            ("POST", t) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(t.as_deref().unwrap_or("").as_bytes()),
            ("DELETE", Some(t)) => self
                .agent
                .delete(&url)
                .force_send_body()
                .header("Content-Type", "application/json")
                .send(t.as_bytes()),
            ("DELETE", None) => self.agent.delete(&url).call(),
            _ => return Err(format!("method {method}")),
        };
        let mut resp = r.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok((status, text))
    }

    fn flows_path(&self) -> String {
        format!("/bridges/{}/flows", self.bridge)
    }

    fn add(&self, flow: &str) -> Result<(), String> {
        match self.call("POST", &self.flows_path(), Some(&json!({ "flow": flow })))? {
            (201, _) => Ok(()),
            (s, t) => Err(format!("add {flow}: HTTP {s}: {t}")),
        }
    }

    fn del_strict(&self, m: &str) -> Result<(), String> {
        let body = json!({ "flow": m, "strict": true });
        match self.call("DELETE", &self.flows_path(), Some(&body))? {
            (200, t) if t.contains("\"deleted\":1") => Ok(()),
            (s, t) => Err(format!("strict delete {m}: HTTP {s}: {t}")),
        }
    }
}

fn rest_latency(args: &[String]) -> Value {
    let rest = Rest::new(args);
    let samples: u32 = num(args, "--samples", "200");
    let max = Duration::from_secs_f64(num(args, "--max-secs", "60"));
    let base: u32 = num(args, "--base", "11");
    // A pause before each request (default none: back to back).
    let pause = Duration::from_secs_f64(num::<f64>(args, "--pause-ms", "0") / 1e3);
    // Open the connection first: the samples measure requests on a kept-alive connection.
    if let Err(e) = rest.call("GET", "/health", None) {
        die(&format!("{}: {e}", rest.base));
    }
    let (mut adds, mut dels, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    for i in 0..samples {
        if start.elapsed() > max {
            break;
        }
        std::thread::sleep(pause);
        let t = Instant::now();
        match rest.add(&rule(base, i)) {
            Ok(()) => adds.push(t.elapsed()),
            Err(e) => errors.push(e),
        }
        std::thread::sleep(pause);
        let t = Instant::now();
        match rest.del_strict(&rule_match(base, i)) {
            Ok(()) => dels.push(t.elapsed()),
            Err(e) => errors.push(e),
        }
    }
    json!({
        "mode": "rest-latency",
        "requested": samples,
        "elapsed_s": start.elapsed().as_secs_f64(),
        "bounded": adds.len() < samples as usize,
        "add": summary(&mut adds),
        "del": summary(&mut dels),
        "errors": errors.len(),
        "first_error": errors.first(),
    })
}

/// Runs `clients` threads, each doing `work(client, i)` for i = 0, 1, ... for `secs`; `work`
/// returns the add and delete durations of change `i`, or an error. The JSON summary.
fn throughput<W>(clients: u32, secs: f64, work: W) -> Value
where
    W: Fn(u32, u32) -> Result<(Duration, Duration), String> + Sync,
{
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    type PerClient = (Vec<Duration>, Vec<Duration>, Vec<String>);
    let (per, in_window, window): (Vec<PerClient>, u64, Duration) = std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let (stop, done, work) = (&stop, &done, &work);
                s.spawn(move || {
                    let (mut adds, mut dels, mut errors) = (Vec::new(), Vec::new(), Vec::new());
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        match work(c, i) {
                            Ok((a, d)) => {
                                adds.push(a);
                                dels.push(d);
                                done.fetch_add(2, Ordering::Relaxed);
                            }
                            Err(e) => errors.push(e),
                        }
                        i += 1;
                    }
                    (adds, dels, errors)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        // Changes counted are those completed within the window.
        let in_window = done.load(Ordering::Relaxed);
        let window = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let per = threads.into_iter().map(|t| t.join().unwrap()).collect();
        (per, in_window, window)
    });
    let total = start.elapsed();
    let (mut adds, mut dels, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for (a, d, e) in per {
        adds.extend(a);
        dels.extend(d);
        errors.extend(e);
    }
    // A change is an add or a delete; a client counts its add once its delete is done too.
    let completed = adds.len() + dels.len();
    json!({
        "clients": clients,
        "window_s": window.as_secs_f64(),
        "total_s": total.as_secs_f64(),
        "changes": in_window,
        "changes_per_s": in_window as f64 / window.as_secs_f64(),
        // With changes slower than the window, the rate over everything completed, the
        // changes still in flight at the end of the window included.
        "changes_total": completed,
        "changes_per_s_incl_tail": completed as f64 / total.as_secs_f64(),
        "add": summary(&mut adds),
        "del": summary(&mut dels),
        "errors": errors.len(),
        "first_error": errors.first(),
    })
}

/// `throughput` over REST: one keep-alive connection per client, each round `first` then
/// `second` (given the connection, the client and the round), timed apart.
fn rest_rounds(
    args: &[String],
    mode: &str,
    first: impl Fn(&Rest, u32, u32) -> Result<(), String> + Sync,
    second: impl Fn(&Rest, u32, u32) -> Result<(), String> + Sync,
) -> Value {
    let clients: u32 = num(args, "--clients", "4");
    let secs: f64 = num(args, "--secs", "5");
    let rests: Vec<Rest> = (0..clients).map(|_| Rest::new(args)).collect();
    for r in &rests {
        if let Err(e) = r.call("GET", "/health", None) {
            die(&format!("{}: {e}", r.base));
        }
    }
    let mut v = throughput(clients, secs, |c, i| {
        let r = &rests[c as usize];
        let t = Instant::now();
        first(r, c, i)?;
        let a = t.elapsed();
        let t = Instant::now();
        second(r, c, i)?;
        Ok((a, t.elapsed()))
    });
    v["mode"] = json!(mode);
    v
}

fn rest_throughput(args: &[String]) -> Value {
    let base: u32 = num(args, "--base", "12");
    rest_rounds(
        args,
        "rest-throughput",
        |r, c, i| r.add(&rule(base + c, i)),
        |r, c, i| r.del_strict(&rule_match(base + c, i)),
    )
}

/// The floor of `rest-throughput`: the same clients and connections doing `GET /health` (no
/// change), counted the same way (two requests per round).
fn rest_floor(args: &[String]) -> Value {
    let health = |r: &Rest, _, _| match r.call("GET", "/health", None)? {
        (200, _) => Ok(()),
        (s, t) => Err(format!("health: HTTP {s}: {t}")),
    };
    rest_rounds(args, "rest-floor", health, health)
}

// ---- command-line tools -------------------------------------------------------------------

/// Runs a command template for change `i`, killing it after `timeout`: its duration.
fn run_template(
    template: &str,
    flow: &str,
    m: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let words: Vec<String> = template
        .split_whitespace()
        .map(|w| w.replace("{flow}", flow).replace("{match}", m))
        .collect();
    let Some((prog, rest)) = words.split_first() else {
        return Err("empty command".into());
    };
    let t = Instant::now();
    let child = Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{prog}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: kill(2) on our own child, which has not been reaped yet (wait below
            // has not returned: it signals the channel only afterwards).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output();
    let took = t.elapsed();
    let _ = tx.send(());
    let _ = watchdog.join();
    let out = out.map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        Ok(took)
    } else {
        Err(format!(
            "{}: {}: {}",
            words.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn templates(args: &[String]) -> (String, String, Duration) {
    let add = arg(args, "--add", "");
    let del = arg(args, "--del", "");
    if add.is_empty() || del.is_empty() {
        die("--add and --del command templates are required");
    }
    let timeout = Duration::from_secs_f64(num(args, "--cmd-timeout-secs", "120"));
    (add, del, timeout)
}

fn exec_latency(args: &[String]) -> Value {
    let (add, del, timeout) = templates(args);
    let samples: u32 = num(args, "--samples", "50");
    let max = Duration::from_secs_f64(num(args, "--max-secs", "60"));
    let base: u32 = num(args, "--base", "13");
    let (mut adds, mut dels, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    for i in 0..samples {
        if start.elapsed() > max {
            break;
        }
        let (f, m) = (rule(base, i), rule_match(base, i));
        match run_template(&add, &f, &m, timeout) {
            Ok(d) => adds.push(d),
            Err(e) => errors.push(e),
        }
        match run_template(&del, &f, &m, timeout) {
            Ok(d) => dels.push(d),
            Err(e) => errors.push(e),
        }
    }
    json!({
        "mode": "exec-latency",
        "requested": samples,
        "elapsed_s": start.elapsed().as_secs_f64(),
        "bounded": adds.len() < samples as usize,
        "add": summary(&mut adds),
        "del": summary(&mut dels),
        "errors": errors.len(),
        "first_error": errors.first(),
    })
}

fn exec_throughput(args: &[String]) -> Value {
    let (add, del, timeout) = templates(args);
    let clients: u32 = num(args, "--clients", "4");
    let secs: f64 = num(args, "--secs", "5");
    let base: u32 = num(args, "--base", "16");
    let mut v = throughput(clients, secs, |c, i| {
        let (f, m) = (rule(base + c, i), rule_match(base + c, i));
        let a = run_template(&add, &f, &m, timeout)?;
        let d = run_template(&del, &f, &m, timeout)?;
        Ok((a, d))
    });
    v["mode"] = json!("exec-throughput");
    v
}

// ---- restart-to-forwarding ----------------------------------------------------------------

/// An Ethernet/IPv4/UDP frame of 60 bytes from 192.168.0.1 to `dst`, in hex.
fn probe_frame(dst: &str) -> String {
    let dst: std::net::Ipv4Addr = dst
        .parse()
        .unwrap_or_else(|_| die(&format!("--dst {dst:?}: not an IPv4 address")));
    let mut f = Vec::with_capacity(60);
    f.extend([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    let mut ip = vec![
        0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0, 192, 168, 0, 1, //
    ];
    ip.extend(dst.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    // UDP 1234 -> 5678, length 26, no checksum, 18 bytes of payload.
    f.extend([0x04, 0xd2, 0x16, 0x2e, 0, 26, 0, 0]);
    f.resize(60, 0xab);
    f.iter().map(|b| format!("{b:02x}")).collect()
}

fn restart_probe(args: &[String]) -> Value {
    let rest = Rest::new(args);
    let in_port = arg(args, "--in-port", "p1");
    let out_port = arg(args, "--out-port", "p2");
    let frame = probe_frame(&arg(args, "--dst", "10.0.0.0"));
    let deadline = Instant::now() + Duration::from_secs_f64(num(args, "--timeout-secs", "120"));
    let br = rest.bridge.clone();
    let receive = format!("/bridges/{br}/ports/{in_port}/receive");
    let sent = format!("/bridges/{br}/ports/{out_port}/sent");
    let body = json!({ "packets": [frame] });
    let tick = Duration::from_millis(1);
    let mut api_up = None;
    let mut injections = 0u32;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        if api_up.is_none() {
            match rest.call("GET", "/health", None) {
                Ok((200, _)) => api_up = Some(unix_ns()),
                Ok((s, t)) => last_error = format!("health: HTTP {s}: {t}"),
                Err(e) => last_error = e,
            }
            if api_up.is_none() {
                std::thread::sleep(tick);
                continue;
            }
        }
        match rest.call("POST", &receive, Some(&body)) {
            Ok((200, _)) => injections += 1,
            Ok((s, t)) => {
                last_error = format!("receive: HTTP {s}: {t}");
                std::thread::sleep(tick);
                continue;
            }
            Err(e) => {
                last_error = e;
                std::thread::sleep(tick);
                continue;
            }
        }
        let wait = Instant::now();
        while wait.elapsed() < Duration::from_millis(100) {
            match rest.call("POST", &sent, None) {
                Ok((200, t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    let n = v["packets"].as_array().map_or(0, Vec::len);
                    if n > 0 {
                        return json!({
                            "mode": "restart-probe",
                            "api_up_unix_ns": api_up.map(|t| t.to_string()),
                            "forwarded_unix_ns": unix_ns().to_string(),
                            "injections": injections,
                        });
                    }
                }
                Ok((s, t)) => last_error = format!("sent: HTTP {s}: {t}"),
                Err(e) => last_error = e,
            }
            std::thread::sleep(tick);
        }
    }
    json!({
        "mode": "restart-probe",
        "api_up_unix_ns": api_up.map(|t| t.to_string()),
        "forwarded_unix_ns": null,
        "injections": injections,
        "error": format!("timed out; last error: {last_error}"),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let v = match args.first().map(String::as_str) {
        Some("rest-latency") => rest_latency(&args),
        Some("rest-throughput") => rest_throughput(&args),
        Some("rest-floor") => rest_floor(&args),
        Some("exec-latency") => exec_latency(&args),
        Some("exec-throughput") => exec_throughput(&args),
        Some("restart-probe") => restart_probe(&args),
        _ => die(
            "usage: flow_churn rest-latency|rest-throughput|rest-floor|exec-latency|\
             exec-throughput|restart-probe [options] (see the source's header)",
        ),
    };
    println!("{v}");
}
