//! `vswitchctl`: the command-line client of `vswitchd`, with the verbs and flow syntax of
//! `ovs-vsctl`/`ovs-ofctl`.
//!
//! The daemon is found through `--url`, else `VSWITCH_URL`, else `http://127.0.0.1:8080`.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::format;
use cli::net_args;
use cli::request::{bridge_body, port_body};
use serde_json::{json, Value};

/// Command-line client of vswitchd.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Daemon address.
    #[arg(long, env = "VSWITCH_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Bearer token, when the daemon requires one.
    #[arg(long, env = "VSWITCH_TOKEN")]
    token: Option<String>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Bridges and their ports.
    Show,
    /// Creates a bridge: `add-br BR [datapath_type=netdev|dummy]`. With `dummy` (as OVS's
    /// datapath_type=dummy) the bridge's own port is a dummy port and no kernel device is
    /// created.
    AddBr {
        bridge: String,
        settings: Vec<String>,
    },
    /// Deletes a bridge.
    DelBr { bridge: String },
    /// Lists bridges.
    ListBr,
    /// Adds a port: `add-port BR PORT [type=TYPE] [KEY=VALUE...]`. Types: system (default;
    /// mode=afxdp|afpacket|auto), tap, internal (offloads=true|false), vhostuser (socket
    /// RUN_DIR/PORT), vhostuserclient (vhost-server-path=PATH, required), patch (peer=PORT),
    /// vxlan (remote_ip=...), dummy (in memory; see dummy-receive, dummy-sent).
    /// `ofport_request=N` picks the OpenFlow number; other keys are type options
    /// (`options:KEY=VALUE` too).
    AddPort {
        bridge: String,
        port: String,
        settings: Vec<String>,
    },
    /// Deletes a port (by name or number).
    DelPort { bridge: String, port: String },
    /// Lists the ports of a bridge.
    ListPorts { bridge: String },
    /// Adds a flow, e.g. "priority=10,ip,nw_dst=10.0.0.0/8,actions=output:2".
    AddFlow { bridge: String, flow: String },
    /// Adds the flows of a file, one per line (`-` reads standard input).
    AddFlows { bridge: String, file: String },
    /// Deletes flows: all, or those a match covers (`--strict`: exact match and priority).
    DelFlows {
        bridge: String,
        flow: Option<String>,
        #[arg(long)]
        strict: bool,
    },
    /// Modifies the actions of flows.
    ModFlows {
        bridge: String,
        flow: String,
        #[arg(long)]
        strict: bool,
    },
    /// Lists flows with counters.
    DumpFlows { bridge: String },
    /// Port counters (all ports, or one).
    DumpPorts {
        bridge: String,
        port: Option<String>,
    },
    /// The MAC learning table.
    FdbShow { bridge: String },
    /// Pins a MAC address to a port, like `ovs-appctl fdb/add BR PORT VLAN MAC`.
    FdbAdd {
        bridge: String,
        port: String,
        vlan: u16,
        mac: String,
    },
    /// Forgets a MAC address, like `ovs-appctl fdb/del BR VLAN MAC`.
    FdbDel {
        bridge: String,
        vlan: u16,
        mac: String,
    },
    /// PMD thread counters.
    PmdStatsShow,
    /// Zeroes the PMD thread counters.
    PmdStatsClear,
    /// Which PMD thread polls which port's receive queues.
    PmdRxqShow,
    /// The running configuration (bridges, ports, flows) in the state file's TOML.
    DumpConfig,
    /// The megaflows the PMD threads installed for a bridge, with their masks and hits.
    DpctlDumpFlows { bridge: String },
    /// Changes a port's VLAN settings: `set-port BR PORT tag=N trunks=N,M
    /// vlan_mode=access|trunk|native-tagged|native-untagged` (`tag=` clears one).
    SetPort {
        bridge: String,
        port: String,
        settings: Vec<String>,
    },
    /// Adds a mirror: `add-mirror BR NAME [select-src-port=P,..] [select-dst-port=P,..]
    /// [select-vlan=N,..] [select-all] output-port=P`.
    AddMirror {
        bridge: String,
        name: String,
        settings: Vec<String>,
    },
    /// Removes a mirror.
    DelMirror { bridge: String, name: String },
    /// Lists the mirrors of a bridge.
    ListMirrors { bridge: String },
    /// Sets the OpenFlow controllers of a bridge (replacing any before), in OVS's syntax:
    /// `tcp:IP[:PORT]`, `unix:PATH` (connect), `ptcp:[PORT][:IP]`, `punix:PATH` (listen;
    /// `ptcp` on loopback unless an address is given). The default port is 6653.
    SetController {
        bridge: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Prints the controllers of a bridge, one per line (`--status`: with connection state).
    GetController {
        bridge: String,
        #[arg(long)]
        status: bool,
    },
    /// Removes the controllers of a bridge.
    DelController { bridge: String },
    /// Sets what a bridge with controllers does while none is connected: `standalone`
    /// (forward as a learning switch) or `secure` (only by the installed flows).
    SetFailMode { bridge: String, mode: String },
    /// Prints the fail mode of a bridge (nothing when unset, which acts as standalone).
    GetFailMode { bridge: String },
    /// Clears the fail mode of a bridge.
    DelFailMode { bridge: String },
    /// Attaches a network namespace (a container): creates a veth pair, moves one end into
    /// NETNS as IFNAME (default eth0) with the address and MAC given, and adds the other end
    /// to BR as a port (an access port of VLAN N with --vlan).
    AttachNetns {
        bridge: String,
        netns: String,
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        #[arg(long)]
        vlan: Option<u16>,
        #[arg(long)]
        ifname: Option<String>,
        #[arg(long)]
        port: Option<String>,
    },
    /// Detaches a namespace attached with attach-netns: its port and veth pair go.
    DetachNetns { bridge: String, netns: String },
    /// Lists the namespaces attached to a bridge.
    ListNetns { bridge: String },
    /// What the bridge would do with a packet, like `ovs-appctl ofproto/trace BR FLOW`: each
    /// table, the matching rule (priority, cookie), the actions, the megaflow, the output
    /// ports. Nothing is sent, learnt or counted. With `--packet HEX` the frame itself is
    /// traced (FLOW then gives only `in_port`) and the frames that would leave are printed.
    Trace {
        bridge: String,
        flow: String,
        /// A whole frame in hexadecimal.
        #[arg(long)]
        packet: Option<String>,
    },
    /// Traces the next real packet received on PORT that matches FILTER (default: any).
    TracePacket {
        bridge: String,
        port: String,
        filter: Option<String>,
        /// Seconds to wait for it (at most 60).
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Captures the packets of a port as pcap (readable by `tcpdump -r`), to a file or stdout.
    Capture {
        bridge: String,
        port: String,
        /// Stop after this many packets.
        #[arg(short = 'c')]
        count: Option<u64>,
        /// Write to this file (default: standard output).
        #[arg(short = 'w')]
        file: Option<String>,
        /// rx, tx or both.
        #[arg(long, default_value = "both")]
        dir: String,
        /// Bytes kept of each packet.
        #[arg(short = 's', long)]
        snaplen: Option<usize>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
    },
    /// The Prometheus metrics (`GET /metrics`).
    Metrics,
    /// Makes a dummy port receive frames, as if they came off its wire:
    /// `dummy-receive BR PORT HEX...`, each frame in hex (14 to 65535 bytes, no FCS), in
    /// order; all are queued or none (the port queues at most 4096).
    DummyReceive {
        bridge: String,
        port: String,
        #[arg(required = true)]
        frames: Vec<String>,
    },
    /// Takes the frames a dummy port sent since the last call, oldest first: one frame in hex
    /// per line on standard output, then `lost: N` on standard error (frames dropped because
    /// the port keeps only the last 4096).
    DummySent { bridge: String, port: String },
}

struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

enum Method {
    Get,
    Post,
    Delete,
    Patch,
    Put,
}

impl Client {
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        macro_rules! send {
            ($req:expr) => {{
                let mut req = $req;
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req
            }};
        }
        let body_text = body.map(|b| b.to_string());
        let result = match method {
            Method::Get => send!(self.agent.get(&url)).call(),
            Method::Delete => match &body_text {
                Some(b) => send!(self.agent.delete(&url))
                    .force_send_body()
                    .header("Content-Type", "application/json")
                    .send(b.as_bytes()),
                None => send!(self.agent.delete(&url)).call(),
            },
            Method::Post => send!(self.agent.post(&url))
                .header("Content-Type", "application/json")
                .send(body_text.unwrap_or_default().as_bytes()),
            Method::Patch => send!(self.agent.patch(&url))
                .header("Content-Type", "application/json")
                .send(body_text.unwrap_or_default().as_bytes()),
            Method::Put => send!(self.agent.put(&url))
                .header("Content-Type", "application/json")
                .send(body_text.unwrap_or_default().as_bytes()),
        };
        let mut resp =
            result.map_err(|e| format!("cannot reach vswitchd at {}: {e}", self.base))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok(value)
        } else {
            let mut msg = value["error"]
                .as_str()
                .unwrap_or("request failed")
                .to_string();
            if let Some(tok) = value["detail"]["token"].as_str() {
                msg.push_str(&format!(" (offending token: {tok:?})"));
            }
            Err(format!("{msg} [HTTP {}]", status.as_u16()))
        }
    }
}

fn read_flows(file: &str) -> Result<Vec<String>, String> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
    } else {
        text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

fn run(args: Args) -> Result<String, String> {
    let client = Client {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
        base: args.url,
        token: args.token,
    };
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    use Method::*;
    Ok(match args.verb {
        Verb::SetPort {
            bridge,
            port,
            settings,
        } => {
            let path = format!("/bridges/{}/ports/{}", enc(&bridge), enc(&port));
            client.call(Patch, &path, Some(net_args::set_port_body(&settings)?))?;
            String::new()
        }
        Verb::AddMirror {
            bridge,
            name,
            settings,
        } => {
            let body = net_args::mirror_body(&name, &settings)?;
            client.call(
                Post,
                &format!("/bridges/{}/mirrors", enc(&bridge)),
                Some(body),
            )?;
            String::new()
        }
        Verb::DelMirror { bridge, name } => {
            let path = format!("/bridges/{}/mirrors/{}", enc(&bridge), enc(&name));
            client.call(Delete, &path, None)?;
            String::new()
        }
        Verb::SetController { bridge, targets } => {
            let path = format!("/bridges/{}/controller", enc(&bridge));
            client.call(Put, &path, Some(json!({ "targets": targets })))?;
            String::new()
        }
        Verb::GetController { bridge, status } => {
            let v = client.call(Get, &format!("/bridges/{}/controller", enc(&bridge)), None)?;
            format::controllers(&v, status)
        }
        Verb::DelController { bridge } => {
            client.call(
                Delete,
                &format!("/bridges/{}/controller", enc(&bridge)),
                None,
            )?;
            String::new()
        }
        Verb::SetFailMode { bridge, mode } => {
            let path = format!("/bridges/{}/fail-mode", enc(&bridge));
            client.call(Put, &path, Some(json!({ "fail_mode": mode })))?;
            String::new()
        }
        Verb::GetFailMode { bridge } => {
            let v = client.call(Get, &format!("/bridges/{}/fail-mode", enc(&bridge)), None)?;
            v["fail_mode"]
                .as_str()
                .map(|m| format!("{m}\n"))
                .unwrap_or_default()
        }
        Verb::DelFailMode { bridge } => {
            client.call(
                Delete,
                &format!("/bridges/{}/fail-mode", enc(&bridge)),
                None,
            )?;
            String::new()
        }
        Verb::ListMirrors { bridge } => {
            let v = client.call(Get, &format!("/bridges/{}/mirrors", enc(&bridge)), None)?;
            format::mirrors(&v)
        }
        Verb::AttachNetns {
            bridge,
            netns,
            ip,
            mac,
            vlan,
            ifname,
            port,
        } => {
            let body = net_args::attach_body(
                &netns,
                ip.as_deref(),
                mac.as_deref(),
                vlan,
                ifname.as_deref(),
                port.as_deref(),
            );
            let v = client.call(
                Post,
                &format!("/bridges/{}/netns", enc(&bridge)),
                Some(body),
            )?;
            format!("{}\n", v["port"].as_str().unwrap_or(""))
        }
        Verb::DetachNetns { bridge, netns } => {
            let path = format!("/bridges/{}/netns/{}", enc(&bridge), enc(&netns));
            client.call(Delete, &path, None)?;
            String::new()
        }
        Verb::ListNetns { bridge } => {
            let v = client.call(Get, &format!("/bridges/{}/netns", enc(&bridge)), None)?;
            format::attached(&v)
        }
        Verb::Show => format::show(&client.call(Get, "/bridges", None)?),
        Verb::AddBr { bridge, settings } => {
            client.call(Post, "/bridges", Some(bridge_body(&bridge, &settings)?))?;
            String::new()
        }
        Verb::DelBr { bridge } => {
            client.call(Delete, &format!("/bridges/{}", enc(&bridge)), None)?;
            String::new()
        }
        Verb::ListBr => format::names(&client.call(Get, "/bridges", None)?),
        Verb::AddPort {
            bridge,
            port,
            settings,
        } => {
            let body = port_body(&port, &settings)?;
            client.call(
                Post,
                &format!("/bridges/{}/ports", enc(&bridge)),
                Some(body),
            )?;
            String::new()
        }
        Verb::DelPort { bridge, port } => {
            client.call(
                Delete,
                &format!("/bridges/{}/ports/{}", enc(&bridge), enc(&port)),
                None,
            )?;
            String::new()
        }
        Verb::ListPorts { bridge } => {
            let ports = client.call(Get, &format!("/bridges/{}/ports", enc(&bridge)), None)?;
            // The bridge's own port is implicit, as ovs-vsctl lists it.
            let list: Vec<Value> = ports
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["ofport"].as_u64() != Some(65534))
                .cloned()
                .collect();
            format::names(&Value::Array(list))
        }
        Verb::AddFlow { bridge, flow } => {
            let path = format!("/bridges/{}/flows", enc(&bridge));
            client.call(Post, &path, Some(json!({ "flow": flow })))?;
            String::new()
        }
        Verb::AddFlows { bridge, file } => {
            let flows = read_flows(&file)?;
            let path = format!("/bridges/{}/flows", enc(&bridge));
            client.call(Post, &path, Some(json!({ "flows": flows })))?;
            String::new()
        }
        Verb::DelFlows {
            bridge,
            flow,
            strict,
        } => {
            let path = format!("/bridges/{}/flows", enc(&bridge));
            let body = json!({ "flow": flow.unwrap_or_default(), "strict": strict });
            client.call(Delete, &path, Some(body))?;
            String::new()
        }
        Verb::ModFlows {
            bridge,
            flow,
            strict,
        } => {
            let path = format!("/bridges/{}/flows", enc(&bridge));
            client.call(
                Patch,
                &path,
                Some(json!({ "flow": flow, "strict": strict })),
            )?;
            String::new()
        }
        Verb::DumpFlows { bridge } => {
            format::flows(&client.call(Get, &format!("/bridges/{}/flows", enc(&bridge)), None)?)
        }
        Verb::DumpPorts { bridge, port } => {
            let v = match port {
                Some(p) => Value::Array(vec![client.call(
                    Get,
                    &format!("/bridges/{}/ports/{}", enc(&bridge), enc(&p)),
                    None,
                )?]),
                None => client.call(Get, &format!("/bridges/{}/ports", enc(&bridge)), None)?,
            };
            format::ports(&v)
        }
        Verb::FdbShow { bridge } => {
            format::fdb(&client.call(Get, &format!("/bridges/{}/fdb", enc(&bridge)), None)?)
        }
        Verb::FdbAdd {
            bridge,
            port,
            vlan,
            mac,
        } => {
            let body = json!({ "port": port, "vlan": vlan, "mac": mac });
            client.call(Post, &format!("/bridges/{}/fdb", enc(&bridge)), Some(body))?;
            String::new()
        }
        Verb::FdbDel { bridge, vlan, mac } => {
            let path = format!("/bridges/{}/fdb/{vlan}/{}", enc(&bridge), enc(&mac));
            client.call(Delete, &path, None)?;
            String::new()
        }
        Verb::PmdStatsShow => format::pmd_stats(&client.call(Get, "/pmd-stats", None)?),
        Verb::DpctlDumpFlows { bridge } => format::megaflows(&client.call(
            Get,
            &format!("/bridges/{}/megaflows", enc(&bridge)),
            None,
        )?),
        Verb::PmdRxqShow => format::pmd_rxqs(&client.call(Get, "/pmd-rxqs", None)?),
        Verb::DumpConfig => client.call(Get, "/config", None)?["toml"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Verb::PmdStatsClear => {
            client.call(Delete, "/pmd-stats", None)?;
            String::new()
        }
        Verb::Trace {
            bridge,
            flow,
            packet,
        } => {
            let path = format!("/bridges/{}/trace", enc(&bridge));
            let mut body = json!({ "flow": flow });
            if let Some(p) = packet {
                body["packet"] = json!(p);
            }
            let t = client.call(Post, &path, Some(body))?;
            t["text"].as_str().unwrap_or_default().to_owned()
        }
        Verb::TracePacket {
            bridge,
            port,
            filter,
            timeout,
        } => {
            let path = format!("/bridges/{}/trace-packet", enc(&bridge));
            let body = json!({ "port": port, "filter": filter.unwrap_or_default(),
                "timeout_secs": timeout });
            let t = client.call(Post, &path, Some(body))?;
            t["text"].as_str().unwrap_or_default().to_owned()
        }
        Verb::Capture {
            bridge,
            port,
            count,
            file,
            dir,
            snaplen,
            duration,
        } => {
            let mut query = format!("dir={}", enc(&dir));
            if let Some(c) = count {
                query += &format!("&count={c}");
            }
            if let Some(s) = snaplen {
                query += &format!("&snaplen={s}");
            }
            if let Some(d) = duration {
                query += &format!("&duration={d}");
            }
            let path = format!(
                "/bridges/{}/ports/{}/capture?{query}",
                enc(&bridge),
                enc(&port)
            );
            client.capture(&path, file.as_deref())?;
            String::new()
        }
        Verb::Metrics => match client.call(Get, "/metrics", None)? {
            Value::String(s) => s,
            other => other.to_string(),
        },
        Verb::DummyReceive {
            bridge,
            port,
            frames,
        } => {
            let path = format!("/bridges/{}/ports/{}/receive", enc(&bridge), enc(&port));
            client.call(Post, &path, Some(json!({ "packets": frames })))?;
            String::new()
        }
        Verb::DummySent { bridge, port } => {
            let path = format!("/bridges/{}/ports/{}/sent", enc(&bridge), enc(&port));
            let v = client.call(Post, &path, None)?;
            // Standard output carries only frames, so that it can be compared or piped.
            eprintln!("lost: {}", v["lost"].as_u64().unwrap_or(0));
            format::frames(&v)
        }
    })
}

impl Client {
    /// Streams a capture into `file` (or stdout), then reports on stderr how many packets were
    /// captured and lost, as tcpdump does.
    fn capture(&self, path: &str, file: Option<&str>) -> Result<(), String> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let mut req = self.agent.get(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req
            .call()
            .map_err(|e| format!("cannot reach vswitchd at {}: {e}", self.base))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let msg = v["error"].as_str().unwrap_or("request failed");
            return Err(format!("{msg} [HTTP {status}]"));
        }
        let id = resp
            .headers()
            .get("x-capture-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut out: Box<dyn std::io::Write> = match file {
            Some(f) if f != "-" => {
                Box::new(std::fs::File::create(f).map_err(|e| format!("{f}: {e}"))?)
            }
            _ => Box::new(std::io::stdout()),
        };
        let mut body = resp.body_mut().with_config().limit(u64::MAX).reader();
        // Copy as it comes, flushing each chunk, so a pipe into tcpdump sees packets live.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = body.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
        }
        if let Some(id) = id {
            if let Ok(v) = self.call(Method::Get, &format!("/captures/{id}"), None) {
                eprintln!(
                    "{} packets captured, {} packets lost (buffer full)",
                    v["captured"].as_u64().unwrap_or(0),
                    v["lost"].as_u64().unwrap_or(0)
                );
            }
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vswitchctl: {e}");
            ExitCode::FAILURE
        }
    }
}
