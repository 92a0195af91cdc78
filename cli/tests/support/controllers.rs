//! Real OpenFlow controllers (an os-ken app, faucet) in front of a switch under test: vswitch
//! (`vswitchd` driven by `vswitchctl`) or a private Open vSwitch (the distribution's
//! `ovsdb-server` and `ovs-vswitchd`, userspace `netdev` datapath, every database, socket,
//! pid and log file in the test's temporary directory; the system instance is never touched).
//! Used by `cli/tests/controllers.rs`.
//!
//! Every external command and every wait is bounded in time; controllers are killed (their
//! process group, which only they are in) and daemons stopped on drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use testkit::netns::unique;

use super::Daemon;

/// The directory of this test's controller programs and templates.
pub fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/controllers")
}

/// `osken-manager` of Debian's python3-os-ken (run by /usr/bin/python3), or `$OSKEN_MANAGER`.
pub fn osken_manager() -> Option<PathBuf> {
    let p = std::env::var_os("OSKEN_MANAGER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/osken-manager"));
    p.exists().then_some(p)
}

/// The virtual environment faucet was installed in by `scripts/test.sh`, or `$FAUCET_VENV`.
pub fn faucet_venv() -> Option<PathBuf> {
    let p = std::env::var_os("FAUCET_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/vswitch-tests/faucet-venv"));
    p.join("bin/osken-manager").exists().then_some(p)
}

/// Runs `program args` with a time limit (`timeout`), returning its output.
pub fn bounded(program: &str, args: &[&str], env: &[(&str, &Path)], secs: u32) -> Output {
    let mut c = Command::new("timeout");
    c.arg(secs.to_string()).arg(program).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok_output(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Which switch runs under the controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Vswitch,
    Ovs,
}

/// Why a private Open vSwitch cannot run here, if it cannot.
pub fn ovs_missing() -> Option<String> {
    let missing: Vec<&str> = [
        "ovsdb-tool",
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-appctl",
    ]
    .into_iter()
    .filter(|t| {
        !["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(t).exists())
    })
    .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "Open vSwitch is not installed (missing {}; package openvswitch-switch)",
            missing.join(", ")
        )
    })
}

fn ovs_tool(t: &str) -> String {
    for d in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(d).join(t);
        if p.exists() {
            return p.display().to_string();
        }
    }
    t.to_owned()
}

/// A private Open vSwitch (see the module's documentation).
pub struct PrivOvs {
    dir: PathBuf,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
}

impl PrivOvs {
    fn start(dir: &Path) -> PrivOvs {
        let dir = dir.join("ovs");
        std::fs::create_dir_all(&dir).unwrap();
        let mut sw = PrivOvs {
            dir: dir.clone(),
            ovsdb: None,
            vswitchd: None,
        };
        let db = dir.join("conf.db");
        ok_output(
            "ovsdb-tool create",
            sw.run(
                "ovsdb-tool",
                &[
                    "create",
                    &db.display().to_string(),
                    "/usr/share/openvswitch/vswitch.ovsschema",
                ],
            ),
        );
        let sock = dir.join("db.sock");
        sw.ovsdb = Some(sw.daemon(
            "ovsdb-server",
            &[
                db.display().to_string(),
                format!("--remote=punix:{}", sock.display()),
            ],
        ));
        sw.wait("ovsdb-server's socket", || sock.exists());
        sw.vsctl(&["--no-wait", "init"]);
        // --disable-system: no kernel datapath; bridges use the userspace one (netdev), whose
        // system ports are AF_PACKET sockets on the veths.
        sw.vswitchd = Some(sw.daemon(
            "ovs-vswitchd",
            &[
                format!("unix:{}", sock.display()),
                "--disable-system".to_owned(),
            ],
        ));
        let ctl = dir.join("ovs-vswitchd.ctl");
        let probe = PrivOvs {
            dir: dir.clone(),
            ovsdb: None,
            vswitchd: None,
        };
        sw.wait("ovs-vswitchd's control socket", || {
            ctl.exists() && probe.appctl_try(&["version"]).status.success()
        });
        sw
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(ovs_tool(program));
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(var, &self.dir);
        }
        c
    }

    fn daemon(&self, name: &str, args: &[String]) -> Child {
        let d = &self.dir;
        let log = std::fs::File::create(d.join(format!("{name}.out"))).unwrap();
        self.command(name)
            .args(args)
            .arg(format!(
                "--pidfile={}",
                d.join(format!("{name}.pid")).display()
            ))
            .arg(format!(
                "--unixctl={}",
                d.join(format!("{name}.ctl")).display()
            ))
            .arg(format!(
                "--log-file={}",
                d.join(format!("{name}.log")).display()
            ))
            .args(["--no-chdir", "-vconsole:off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut c = Command::new("timeout");
        c.arg("30").arg(ovs_tool(program)).args(args);
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(var, &self.dir);
        }
        c.stdin(Stdio::null()).output().unwrap()
    }

    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.dir.join("db.sock").display());
        let mut a = vec![db.as_str(), "--timeout=20"];
        a.extend_from_slice(args);
        ok_output(&format!("ovs-vsctl {args:?}"), self.run("ovs-vsctl", &a))
    }

    fn appctl_try(&self, args: &[&str]) -> Output {
        let ctl = self.dir.join("ovs-vswitchd.ctl").display().to_string();
        let mut a = vec!["-t", ctl.as_str(), "--timeout=20"];
        a.extend_from_slice(args);
        self.run("ovs-appctl", &a)
    }

    pub fn appctl(&self, args: &[&str]) -> String {
        ok_output(&format!("ovs-appctl {args:?}"), self.appctl_try(args))
    }

    fn wait(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ready() {
            for c in [&mut self.ovsdb, &mut self.vswitchd].into_iter().flatten() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("waiting for {what}: an Open vSwitch daemon exited ({st})");
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no {what} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ovs-vswitchd.log")).unwrap_or_default()
    }

    fn stop(&self, child: Option<Child>, name: &str) {
        let Some(mut c) = child else { return };
        let ctl = self.dir.join(format!("{name}.ctl")).display().to_string();
        let _ = self.run("ovs-appctl", &["-t", &ctl, "--timeout=5", "exit"]);
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

impl Drop for PrivOvs {
    fn drop(&mut self) {
        let v = self.vswitchd.take();
        self.stop(v, "ovs-vswitchd");
        let d = self.ovsdb.take();
        self.stop(d, "ovsdb-server");
    }
}

enum Backend {
    Vswitch(Daemon),
    Ovs(PrivOvs),
}

/// One bridge of the switch under test, with its OpenFlow management socket for `ovs-ofctl`.
pub struct Switch {
    backend: Backend,
    pub kind: Kind,
    pub br: String,
    /// `unix:PATH` of the bridge's management socket.
    pub mgmt: String,
}

impl Switch {
    /// Starts the switch and creates one bridge on it.
    pub fn start(kind: Kind, dir: &Path) -> Switch {
        let br = unique("vsct");
        let (backend, mgmt) = match kind {
            Kind::Vswitch => {
                let d = Daemon::start(dir, "", "");
                d.ok(&["add-br", &br]);
                let sock = d.run.join(format!("{br}.mgmt"));
                (Backend::Vswitch(d), sock)
            }
            Kind::Ovs => {
                let o = PrivOvs::start(dir);
                // Userspace datapath; OpenFlow 1.3 for the controllers (and 1.0 for plain
                // ovs-ofctl); no in-band control (the controller is on loopback anyway).
                o.vsctl(&[
                    "add-br",
                    &br,
                    "--",
                    "set",
                    "Bridge",
                    &br,
                    "datapath_type=netdev",
                    "protocols=OpenFlow10,OpenFlow13",
                    "other_config:disable-in-band=true",
                ]);
                let sock = o.dir.join(format!("{br}.mgmt"));
                (Backend::Ovs(o), sock)
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !mgmt.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                mgmt.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Switch {
            backend,
            kind,
            br,
            mgmt: format!("unix:{}", mgmt.display()),
        }
    }

    /// Attaches a veth end (in the root namespace) as OpenFlow port `ofport`.
    pub fn add_port(&self, ifname: &str, ofport: u32) {
        let req = format!("ofport_request={ofport}");
        match &self.backend {
            Backend::Vswitch(d) => {
                d.ok(&["add-port", &self.br, ifname, "mode=afpacket", &req]);
            }
            Backend::Ovs(o) => {
                o.vsctl(&[
                    "add-port",
                    &self.br,
                    ifname,
                    "--",
                    "set",
                    "Interface",
                    ifname,
                    &req,
                ]);
            }
        }
    }

    /// `secure` or `standalone`.
    pub fn set_fail_mode(&self, mode: &str) {
        match &self.backend {
            Backend::Vswitch(d) => {
                d.ok(&["set-fail-mode", &self.br, mode]);
            }
            Backend::Ovs(o) => {
                o.vsctl(&["set-fail-mode", &self.br, mode]);
            }
        }
    }

    /// Points the bridge at a controller, e.g. `tcp:127.0.0.1:6653`.
    pub fn set_controller(&self, target: &str) {
        match &self.backend {
            Backend::Vswitch(d) => {
                d.ok(&["set-controller", &self.br, target]);
            }
            Backend::Ovs(o) => {
                // Log every OpenFlow message, to read what the controller sent.
                o.appctl(&["vlog/set", "vconn:file:dbg"]);
                o.vsctl(&["set-controller", &self.br, target]);
            }
        }
    }

    pub fn get_controller(&self) -> String {
        match &self.backend {
            Backend::Vswitch(d) => d.ok(&["get-controller", &self.br]),
            Backend::Ovs(o) => o.vsctl(&["get-controller", &self.br]),
        }
    }

    pub fn del_controller(&self) {
        match &self.backend {
            Backend::Vswitch(d) => {
                d.ok(&["del-controller", &self.br]);
            }
            Backend::Ovs(o) => {
                o.vsctl(&["del-controller", &self.br]);
            }
        }
    }

    /// `ovs-ofctl -O OpenFlow13 CMD MGMT ARGS`, which must succeed.
    pub fn ofctl(&self, cmd: &str, args: &[&str]) -> String {
        let mut a = vec!["-O", "OpenFlow13", cmd, self.mgmt.as_str()];
        a.extend_from_slice(args);
        ok_output(
            &format!("ovs-ofctl {a:?}"),
            bounded("ovs-ofctl", &a, &[], 15),
        )
    }

    /// The datapath id the switch reports in its FEATURES_REPLY (`ovs-ofctl show`).
    pub fn dpid(&self) -> u64 {
        let show = self.ofctl("show", &[]);
        let hex = show
            .split("dpid:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no dpid in ovs-ofctl show:\n{show}"));
        u64::from_str_radix(hex, 16).unwrap()
    }

    /// The switch's log (vswitchd's, or ovs-vswitchd's), for failure reports.
    pub fn log(&self) -> String {
        match &self.backend {
            Backend::Vswitch(d) => d.log(),
            Backend::Ovs(o) => o.log(),
        }
    }

    /// The OpenFlow messages the switch received from controllers (Open vSwitch only: its
    /// vconn debug log), one per line.
    pub fn received_messages(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("vconn|DBG|tcp:") && l.contains("received: "))
            .map(|l| l.split("received: ").nth(1).unwrap_or("").to_owned())
            .collect()
    }
}

impl Drop for Switch {
    /// Deletes the bridge before the switch stops: Open vSwitch's userspace datapath makes the
    /// bridge's own port a persistent tap named after it, which would outlive the daemon.
    fn drop(&mut self) {
        match &self.backend {
            Backend::Vswitch(d) => {
                let _ = d.ctl(&["del-br", &self.br]);
            }
            Backend::Ovs(o) => {
                let db = format!("--db=unix:{}", o.dir.join("db.sock").display());
                let _ = o.run("ovs-vsctl", &[&db, "--timeout=10", "del-br", &self.br]);
            }
        }
        if Path::new("/sys/class/net").join(&self.br).exists() {
            let _ = bounded("ip", &["link", "del", &self.br], &[], 10);
        }
    }
}

/// A controller process: its standard output and error go to files in the test's directory.
pub struct Controller {
    child: Option<Child>,
    pub name: String,
    pub port: u16,
    pub out: PathBuf,
    pub err: PathBuf,
    /// Extra log file (faucet's), shown in failure reports.
    pub log: Option<PathBuf>,
}

impl Controller {
    fn spawn(mut cmd: Command, name: &str, dir: &Path, port: u16, log: Option<PathBuf>) -> Self {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let c = Controller {
            child: Some(child),
            name: name.to_owned(),
            port,
            out,
            err,
            log,
        };
        c.wait_listening();
        c
    }

    /// The os-ken learning switch (`learning_switch.py`) listening on 127.0.0.1:`port`;
    /// `name` names its output files (`NAME.out`, `NAME.err`).
    pub fn learning_switch(manager: &Path, dir: &Path, port: u16, name: &str) -> Controller {
        let mut cmd = Command::new("/usr/bin/python3");
        if manager.starts_with("/usr") {
            cmd.arg(manager);
        } else {
            cmd = Command::new(manager);
        }
        cmd.args(["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port"])
            .arg(port.to_string())
            .arg(assets().join("learning_switch.py"));
        Controller::spawn(cmd, name, dir, port, None)
    }

    /// faucet from `venv` with configuration `config`, listening on 127.0.0.1:`port`, its log
    /// and exception log in `dir` and its Prometheus exporter on a free loopback port.
    pub fn faucet(venv: &Path, dir: &Path, config: &Path, port: u16) -> Controller {
        let log = dir.join("faucet.log");
        // faucet's own `faucet` script execs the first `osken-manager` on $PATH (Debian's
        // would be the wrong os-ken): run the venv's manager with faucet's app directly.
        let mut cmd = Command::new(venv.join("bin/osken-manager"));
        cmd.env("FAUCET_CONFIG", config)
            .env("FAUCET_LOG", &log)
            .env("FAUCET_EXCEPTION_LOG", dir.join("faucet_exception.log"))
            .env("FAUCET_PROMETHEUS_ADDR", "127.0.0.1")
            .env("FAUCET_PROMETHEUS_PORT", super::free_port().to_string())
            .env("GAUGE_LOG", dir.join("gauge.log"))
            .env("GAUGE_EXCEPTION_LOG", dir.join("gauge_exception.log"))
            .args(["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port"])
            .arg(port.to_string())
            .arg("faucet.faucet");
        Controller::spawn(cmd, "faucet", dir, port, Some(log))
    }

    /// Waits (20 s at most) until something accepts connections on the port.
    fn wait_listening(&self) {
        let start = Instant::now();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{} did not listen on {addr} within 20 s:\n{}",
                self.name,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Standard output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Output, errors and log, for failure messages.
    pub fn report(&self) -> String {
        let tail = |p: &Path| {
            let s = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        let mut r = format!(
            "--- {} stdout:\n{}\n--- stderr:\n{}",
            self.name,
            tail(&self.out),
            tail(&self.err)
        );
        if let Some(l) = &self.log {
            r += &format!("\n--- {}:\n{}", l.display(), tail(l));
        }
        r
    }

    /// Lines of the controller's standard output (faucet's: its log file) that satisfy `pred`,
    /// waiting up to `limit` for at least `n`; panics with `what` and the report otherwise.
    pub fn wait_lines(
        &self,
        what: &str,
        n: usize,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let start = Instant::now();
        loop {
            let text = match &self.log {
                Some(l) => std::fs::read_to_string(l).unwrap_or_default(),
                None => self.output(),
            };
            let got: Vec<String> = text
                .lines()
                .filter(|l| pred(l))
                .map(str::to_owned)
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}\n{}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM to its process group, SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pg = Pid::from_raw(c.id() as i32);
        let _ = killpg(pg, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = c.try_wait() {
                let _ = killpg(pg, Signal::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(pg, Signal::SIGKILL);
        let _ = c.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}
