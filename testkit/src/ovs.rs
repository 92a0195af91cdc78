//! A private Open vSwitch (the distribution's `ovsdb-server` and `ovs-vswitchd`, with its
//! userspace `dummy` datapath) to compare the switch's flow semantics with: one bridge `br0`
//! with dummy ports `p1..pN` (OpenFlow ports 1..N), rules installed with `ovs-ofctl`, packets
//! traced with `ofproto/trace`, and the trace's datapath actions run on the packet's bytes
//! ([`execute`]) to get the frames that would leave.
//!
//! Open vSwitch is configured with `other_config:vlan-limit=2` (it parses two VLAN headers, as
//! the switch does; its default is one).
//!
//! Rules go as a plain `ovs-ofctl add-flows br0 FILE` sends them, over OpenFlow 1.0 with
//! Nicira extensions: the text then means what its OpenFlow 1.0 actions mean (`mod_vlan_vid`
//! and `mod_vlan_pcp` push a tag only when there is none; an action that does not fit the
//! packet does nothing) and `goto_table:N` goes as `resubmit(,N)`. Rules with `push_vlan`,
//! which OpenFlow 1.0 lacks, go over OpenFlow 1.3, where `ovs-ofctl` refuses actions the match
//! does not guarantee a header for and encodes `mod_vlan_vid`/`mod_vlan_pcp` that may meet an
//! untagged packet as `push_vlan` + `set_field`, a push even on a tagged one (the generator,
//! [`crate::flowgen`], keeps those two apart). [`PrivateOvs::set_openflow`] sends every rule
//! over one version instead.
//!
//! Everything lives in a temporary directory of its own: the database, every socket, pid and
//! log file (`OVS_RUNDIR`, `OVS_DBDIR`, `OVS_LOGDIR` and `OVS_SYSCONFDIR` point there, and every
//! `ovs-*` call names its socket). A system Open vSwitch (`/run/openvswitch`) is never touched.
//! The daemons run as child processes, stopped and the directory removed on drop (kept when
//! `TESTKIT_KEEP_OVS` is set, to read its logs).
//!
//! ```no_run
//! use testkit::ovs::{self, PrivateOvs};
//!
//! if let Err(why) = ovs::available() {
//!     eprintln!("SKIP: my_test: {why}");
//!     return;
//! }
//! let mut sw = PrivateOvs::start(3).unwrap();
//! sw.replace_flows(&["priority=1,actions=flood".to_owned()]).unwrap();
//! let frame = vec![0xff; 60];
//! let t = sw.trace(1, &frame).unwrap();
//! assert_eq!(t.copies.len(), 3); // p2, p3 and the bridge's own port
//! ```

pub mod execute;
pub mod odp;
pub mod pcap;
pub mod trace;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::packet::hex;
use crate::process::{output_within, which};

/// The bridge's name.
pub const BRIDGE: &str = "br0";
/// The OpenFlow number of the bridge's own port.
pub const LOCAL: u32 = 65534;
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const TOOLS: [&str; 6] = [
    "ovsdb-tool",
    "ovsdb-server",
    "ovs-vswitchd",
    "ovs-vsctl",
    "ovs-ofctl",
    "ovs-appctl",
];
const TIMEOUT: Duration = Duration::from_secs(30);

/// `Ok` when a private Open vSwitch can run here (its programs and schema are installed,
/// package `openvswitch-switch`); otherwise why not. Callers print `SKIP: <test>: <why>`.
pub fn available() -> Result<(), String> {
    let missing: Vec<&str> = TOOLS.into_iter().filter(|t| which(t).is_none()).collect();
    if !missing.is_empty() {
        return Err(format!(
            "Open vSwitch is not installed (missing {}; package openvswitch-switch)",
            missing.join(", ")
        ));
    }
    if !Path::new(SCHEMA).exists() {
        return Err(format!("no {SCHEMA} (package openvswitch-common)"));
    }
    Ok(())
}

/// A copy of a packet leaving the switch: the OpenFlow port and the frame's bytes.
pub type PortFrame = (u32, Vec<u8>);

/// What `ofproto/trace` says about one packet, and the frames that leave.
#[derive(Clone, Debug)]
pub struct OvsTrace {
    /// The trace as `ovs-appctl ofproto/trace` printed it.
    pub text: String,
    /// Its "Datapath actions:" (`drop` when none).
    pub datapath_actions: String,
    /// The copies that leave, in the order the datapath sends them.
    pub copies: Vec<PortFrame>,
}

/// A private Open vSwitch with one bridge of dummy ports (see the module's documentation).
pub struct PrivateOvs {
    dir: PathBuf,
    tools: Tools,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
    ports: u32,
    /// Datapath port number -> OpenFlow port number.
    odp_to_of: BTreeMap<u32, u32>,
    /// Static MAC entries (port, VLAN, MAC), put back after each flush of learnt ones.
    statics: Vec<(u32, u16, String)>,
    /// Per OpenFlow port: the pcap file its transmitted frames go to, and how much was read.
    captures: BTreeMap<u32, (PathBuf, u64)>,
}

impl PrivateOvs {
    /// Starts the daemons and builds `br0` with ports `p1..p{ports}`.
    pub fn start(ports: u32) -> io::Result<PrivateOvs> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ovs-priv-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut sw = PrivateOvs {
            tools: Tools {
                dir: dir.clone(),
                openflow: None,
            },
            dir,
            ovsdb: None,
            vswitchd: None,
            ports,
            odp_to_of: BTreeMap::new(),
            statics: Vec::new(),
            captures: BTreeMap::new(),
        };
        sw.boot()?;
        Ok(sw)
    }

    fn boot(&mut self) -> io::Result<()> {
        let d = self.dir.clone();
        let db = d.join("conf.db");
        self.run("ovsdb-tool", &["create", &path(&db), SCHEMA])?;
        let child = self
            .command("ovsdb-server")
            .arg(&db)
            .arg(format!("--remote=punix:{}", d.join("db.sock").display()))
            .args(self.daemon_args("ovsdb-server"))
            .stdin(Stdio::null())
            .stdout(self.log("ovsdb-server.out")?)
            .stderr(self.log("ovsdb-server.out")?)
            .spawn()?;
        self.ovsdb = Some(child);
        self.wait_for("ovsdb-server's socket", || d.join("db.sock").exists())?;
        // Two VLAN headers parsed, as the switch does (OVS's default, 1, leaves the inner tag
        // as the EtherType, so `ip` would not match an IP packet behind QinQ).
        self.vsctl(&["--no-wait", "init"])?;
        self.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            "other_config:vlan-limit=2",
        ])?;
        let child = self
            .command("ovs-vswitchd")
            .arg(format!("unix:{}", d.join("db.sock").display()))
            .args(["--enable-dummy=override", "--disable-system"])
            .args(self.daemon_args("ovs-vswitchd"))
            .stdin(Stdio::null())
            .stdout(self.log("ovs-vswitchd.out")?)
            .stderr(self.log("ovs-vswitchd.out")?)
            .spawn()?;
        self.vswitchd = Some(child);
        let tools = self.tools.clone();
        self.wait_for("ovs-vswitchd's control socket", || {
            tools.appctl(&["version"]).is_ok()
        })?;
        let mut args: Vec<String> = [
            "add-br",
            BRIDGE,
            "--",
            "set",
            "Bridge",
            BRIDGE,
            "datapath_type=dummy",
            "fail_mode=secure",
        ]
        .map(String::from)
        .to_vec();
        for n in 1..=self.ports {
            let p = format!("p{n}");
            args.extend(
                [
                    "--",
                    "add-port",
                    BRIDGE,
                    &p,
                    "--",
                    "set",
                    "Interface",
                    &p,
                    "type=dummy",
                    &format!("ofport_request={n}"),
                ]
                .map(String::from),
            );
        }
        self.vsctl(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        let mgmt = self.mgmt();
        self.wait_for("the bridge's management socket", || {
            Path::new(&mgmt).exists()
        })?;
        let show = self.appctl(&["dpif/show"])?;
        self.odp_to_of = trace::odp_ports(&show, BRIDGE);
        let want = (1..=self.ports).chain([LOCAL]);
        if want
            .clone()
            .any(|p| !self.odp_to_of.values().any(|&v| v == p))
        {
            return Err(io::Error::other(format!(
                "dpif/show lacks some of ports 1..{} and LOCAL:\n{show}",
                self.ports
            )));
        }
        Ok(())
    }

    /// The directory holding the database, sockets and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bridge's OpenFlow management socket, for `ovs-ofctl`.
    pub fn mgmt(&self) -> String {
        path(&self.dir.join(format!("{BRIDGE}.mgmt")))
    }

    /// The end of ovs-vswitchd's log, for failure reports.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("ovs-vswitchd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Replaces every rule of every table by `flows` (ovs-ofctl syntax, one rule each), over
    /// the OpenFlow versions the module's documentation says. On error, the message of
    /// `ovs-ofctl`; some rules may then be in.
    pub fn replace_flows(&mut self, flows: &[String]) -> Result<(), String> {
        let mgmt = self.mgmt();
        self.ofctl(&["del-flows", &mgmt])
            .map_err(|e| e.to_string())?;
        let (of13, of10): (Vec<&String>, Vec<&String>) = match self.tools.openflow {
            Some(_) => (Vec::new(), flows.iter().collect()),
            None => flows.iter().partition(|f| f.contains("push_vlan")),
        };
        for (version, part) in [(None, of10), (Some("OpenFlow13"), of13)] {
            if part.is_empty() {
                continue;
            }
            let file = self.dir.join("flows.txt");
            let text: Vec<&str> = part.iter().map(|f| f.as_str()).collect();
            std::fs::write(&file, text.join("\n") + "\n").map_err(|e| e.to_string())?;
            let args = ["add-flows", &mgmt, &path(&file)];
            match version {
                Some(v) => self.tools.ofctl_as(v, &args),
                None => self.ofctl(&args),
            }
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Adds a static MAC entry (`ovs-appctl fdb/add`) for port `p{port}`.
    pub fn fdb_add(&mut self, port: u32, vlan: u16, mac: &str) -> io::Result<()> {
        self.appctl(&[
            "fdb/add",
            BRIDGE,
            &format!("p{port}"),
            &vlan.to_string(),
            mac,
        ])?;
        self.statics.push((port, vlan, mac.to_owned()));
        Ok(())
    }

    /// Forgets learnt MAC entries, keeping the static ones. (`fdb/flush` removes both, and a
    /// trace with a packet learns, as the datapath would.)
    fn forget_learnt(&mut self) -> io::Result<()> {
        self.appctl(&["fdb/flush", BRIDGE])?;
        for (port, vlan, mac) in self.statics.clone() {
            self.appctl(&[
                "fdb/add",
                BRIDGE,
                &format!("p{port}"),
                &vlan.to_string(),
                &mac,
            ])?;
        }
        Ok(())
    }

    /// Traces `frame` received on OpenFlow port `in_port` and runs the datapath actions on it.
    /// Errors carry the trace's text (e.g. an unsupported datapath action).
    pub fn trace(&mut self, in_port: u32, frame: &[u8]) -> Result<OvsTrace, String> {
        let text = self
            .appctl(&[
                "ofproto/trace",
                BRIDGE,
                &format!("in_port={in_port}"),
                &hex(frame),
            ])
            .map_err(|e| e.to_string())?;
        // A trace with a packet learns, as the datapath would: forget it, so the next packet
        // meets the same table. (`fdb/del` removes only static entries: flush, re-add those.)
        if !trace::learnt(&text).is_empty() {
            self.forget_learnt().map_err(|e| e.to_string())?;
        }
        let fail = |why: String| format!("{why}\n--- ofproto/trace:\n{text}");
        let dp = trace::datapath_actions(&text).map_err(fail)?.to_owned();
        let actions = odp::parse(&dp).map_err(|e| fail(e.to_string()))?;
        let out = execute::execute(&actions, frame).map_err(|e| fail(e.to_string()))?;
        let copies = out
            .into_iter()
            .map(|o| match self.odp_to_of.get(&o.odp_port) {
                Some(&of) => Ok((of, o.frame)),
                None => Err(fail(format!("unknown datapath port {}", o.odp_port))),
            })
            .collect::<Result<_, _>>()?;
        Ok(OvsTrace {
            text,
            datapath_actions: dp,
            copies,
        })
    }

    /// Makes every port (and the bridge's own) write the frames it sends to a pcap file, for
    /// [`PrivateOvs::send`].
    pub fn capture(&mut self) -> io::Result<()> {
        let mut args = Vec::new();
        let ifaces = (1..=self.ports).map(|n| (n, format!("p{n}")));
        for (n, name) in ifaces.chain([(LOCAL, BRIDGE.to_owned())]) {
            let file = self.dir.join(format!("{name}.tx.pcap"));
            if !args.is_empty() {
                args.push("--".to_owned());
            }
            args.extend(["set", "Interface", &name].map(String::from));
            args.push(format!("options:tx_pcap={}", file.display()));
            self.captures.insert(n, (file, 0));
        }
        self.vsctl(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        let files: Vec<PathBuf> = self.captures.values().map(|c| c.0.clone()).collect();
        self.wait_for("the pcap files", || files.iter().all(|f| f.exists()))?;
        for c in self.captures.values_mut() {
            c.1 = pcap::HEADER_LEN;
        }
        Ok(())
    }

    /// Really sends `frame` through the datapath (`netdev-dummy/receive` on `p{in_port}`) and
    /// returns the frames the ports transmitted, read back from their pcap files (needs
    /// [`PrivateOvs::capture`]). Learnt MACs and the datapath's megaflows are flushed
    /// afterwards, so each packet meets the same state as a trace. This is the ground truth
    /// the trace interpreter is checked against.
    pub fn send(&mut self, in_port: u32, frame: &[u8]) -> io::Result<Vec<PortFrame>> {
        let before = self.lookups()?;
        self.appctl(&["netdev-dummy/receive", &format!("p{in_port}"), &hex(frame)])?;
        // The datapath thread handles the frame after the command returns: wait until it has
        // looked the frame up (its actions run before the count moves), then until the files
        // stay the same for a while.
        let start = Instant::now();
        while self.lookups()? == before {
            if start.elapsed() > TIMEOUT {
                return Err(io::Error::other("the datapath did not take the frame"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let size = |c: &BTreeMap<u32, (PathBuf, u64)>| -> Vec<u64> {
            c.values()
                .map(|(f, _)| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
                .collect()
        };
        let (mut last, mut stable_since) = (size(&self.captures), Instant::now());
        let start = Instant::now();
        while stable_since.elapsed() < Duration::from_millis(60)
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(5));
            let now = size(&self.captures);
            if now != last {
                (last, stable_since) = (now, Instant::now());
            }
        }
        let mut out = Vec::new();
        for (&port, (file, read)) in self.captures.iter_mut() {
            let (frames, end) = pcap::read_from(file, *read)?;
            *read = end;
            out.extend(frames.into_iter().map(|f| (port, f)));
        }
        self.forget_learnt()?;
        self.appctl(&["dpctl/del-flows"])?;
        Ok(out)
    }

    /// The datapath's lookups so far (hits, misses and lost, from `dpctl/show`).
    fn lookups(&self) -> io::Result<u64> {
        let show = self.appctl(&["dpctl/show"])?;
        let line = show
            .lines()
            .find_map(|l| l.trim().strip_prefix("lookups:"))
            .ok_or_else(|| io::Error::other(format!("no lookups in dpctl/show:\n{show}")))?;
        Ok(line
            .split_whitespace()
            .filter_map(|kv| kv.split_once(':')?.1.parse::<u64>().ok())
            .sum())
    }

    /// Runs `ovs-vsctl` on the private database.
    pub fn vsctl(&self, args: &[&str]) -> io::Result<String> {
        self.tools.vsctl(args)
    }

    /// Runs `ovs-appctl` on the private ovs-vswitchd.
    pub fn appctl(&self, args: &[&str]) -> io::Result<String> {
        self.tools.appctl(args)
    }

    /// Runs `ovs-ofctl` over OpenFlow 1.0, or the version of [`PrivateOvs::set_openflow`]
    /// (`args` name the management socket, see [`PrivateOvs::mgmt`]).
    pub fn ofctl(&self, args: &[&str]) -> io::Result<String> {
        self.tools.ofctl(args)
    }

    /// Sends every rule with `ovs-ofctl -O versions` (e.g. `OpenFlow13`) rather than as the
    /// module's documentation says.
    pub fn set_openflow(&mut self, versions: &str) {
        self.tools.openflow = Some(versions.to_owned());
    }

    fn command(&self, program: &str) -> Command {
        self.tools.command(program)
    }

    fn run(&self, program: &str, args: &[&str]) -> io::Result<String> {
        self.tools.run(program, args)
    }

    fn daemon_args(&self, name: &str) -> Vec<String> {
        let d = &self.dir;
        vec![
            format!("--pidfile={}", d.join(format!("{name}.pid")).display()),
            format!("--unixctl={}", d.join(format!("{name}.ctl")).display()),
            format!("--log-file={}", d.join(format!("{name}.log")).display()),
            "--no-chdir".into(),
            "-vconsole:off".into(),
        ]
    }

    fn log(&self, name: &str) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))
    }

    fn wait_for(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> io::Result<()> {
        let start = Instant::now();
        while start.elapsed() < TIMEOUT {
            if ready() {
                return Ok(());
            }
            for c in [&mut self.ovsdb, &mut self.vswitchd].into_iter().flatten() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(io::Error::other(format!(
                        "waiting for {what}: a daemon exited ({st}); see {}",
                        self.dir.display()
                    )));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::other(format!(
            "no {what} within {TIMEOUT:?}; see {}",
            self.dir.display()
        )))
    }

    /// Asks a daemon to exit over its control socket, then kills it if it has not.
    fn stop(&self, child: Option<Child>, ctl: &str) {
        let Some(mut c) = child else { return };
        let sock = path(&self.dir.join(ctl));
        let _ = self.run("ovs-appctl", &["-t", &sock, "--timeout=5", "exit"]);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for PrivateOvs {
    fn drop(&mut self) {
        let vswitchd = self.vswitchd.take();
        self.stop(vswitchd, "ovs-vswitchd.ctl");
        let ovsdb = self.ovsdb.take();
        self.stop(ovsdb, "ovsdb-server.ctl");
        if std::env::var_os("TESTKIT_KEEP_OVS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs the `ovs-*` programs with the private directory as their environment.
#[derive(Clone)]
struct Tools {
    dir: PathBuf,
    /// `ovs-ofctl -O` for every rule; `None`: OpenFlow 1.0, and 1.3 for rules that need it.
    openflow: Option<String>,
}

impl Tools {
    /// Runs `ovs-vsctl` on the private database.
    fn vsctl(&self, args: &[&str]) -> io::Result<String> {
        let db = format!("--db=unix:{}", self.dir.join("db.sock").display());
        let mut a = vec![db.as_str(), "--timeout=30"];
        a.extend_from_slice(args);
        self.run("ovs-vsctl", &a)
    }

    /// Runs `ovs-appctl` on the private ovs-vswitchd.
    fn appctl(&self, args: &[&str]) -> io::Result<String> {
        let ctl = path(&self.dir.join("ovs-vswitchd.ctl"));
        let mut a = vec!["-t", ctl.as_str(), "--timeout=30"];
        a.extend_from_slice(args);
        self.run("ovs-appctl", &a)
    }

    /// Runs `ovs-ofctl -O <openflow>` (OpenFlow10 by default).
    fn ofctl(&self, args: &[&str]) -> io::Result<String> {
        self.ofctl_as(self.openflow.as_deref().unwrap_or("OpenFlow10"), args)
    }

    /// Runs `ovs-ofctl -O <versions>`.
    fn ofctl_as(&self, versions: &str, args: &[&str]) -> io::Result<String> {
        let mut a = vec!["-O", versions];
        a.extend_from_slice(args);
        self.run("ovs-ofctl", &a)
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(which(program).unwrap_or_else(|| program.into()));
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(var, &self.dir);
        }
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let mut c = self.command(program);
        c.args(args);
        let out = output_within(&mut c, TIMEOUT)?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{program} {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim_end()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
