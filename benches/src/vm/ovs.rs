//! Open vSwitch with DPDK, private: its own database, `ovsdb-server` and
//! `ovs-vswitchd-dpdk`, every socket, pid, log and hugepage file under a prefix of ours; one PMD
//! thread on CPU 1, a `netdev` bridge. Never talks to a system OVS.

use super::{private_dir, run, signal, wait_until, Switch};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BRIDGE: &str = "brvmc";
const OVS_VSWITCHD: &str = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const TIMEOUT: Duration = Duration::from_secs(40);

/// A private OVS-DPDK (stopped and cleaned up on drop).
pub struct OvsDpdk {
    dir: PathBuf,
    prefix: String,
    ovsdb: Option<Child>,
    vswitchd: Option<Child>,
    /// Port name -> whether the switch listens.
    ports: HashMap<String, bool>,
}

impl OvsDpdk {
    /// Starts ovsdb-server and ovs-vswitchd (DPDK: 1024 MB of 2 MB hugepages, lcore 0, PMD on
    /// CPU 1); `tso` sets `userspace-tso-enable`.
    pub fn start(tso: bool) -> io::Result<OvsDpdk> {
        let dir = private_dir("vmc-ovs")?;
        let prefix = format!("vmcmp{}", std::process::id());
        let mut sw = OvsDpdk {
            dir,
            prefix,
            ovsdb: None,
            vswitchd: None,
            ports: HashMap::new(),
        };
        let db = sw.dir.join("conf.db");
        run(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(SCHEMA),
            TIMEOUT,
        )?;
        let log = sw.log_file("ovsdb-server.log")?;
        let child = Command::new("ovsdb-server")
            .arg(&db)
            .arg(format!(
                "--remote=punix:{}",
                sw.dir.join("db.sock").display()
            ))
            .arg(format!(
                "--unixctl={}",
                sw.dir.join("ovsdb-server.ctl").display()
            ))
            .arg(format!(
                "--log-file={}",
                sw.dir.join("ovsdb-server.log").display()
            ))
            .args(["--no-chdir", "-vconsole:off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        sw.ovsdb = Some(child);
        let sock = sw.dir.join("db.sock");
        if !wait_until(Duration::from_secs(10), || sock.exists()) {
            return Err(io::Error::other("ovsdb-server did not start"));
        }
        sw.vsctl(&["--no-wait", "init"])?;
        let extra = format!(
            "other_config:dpdk-extra=--no-pci --file-prefix={}",
            sw.prefix
        );
        let tso = format!("other_config:userspace-tso-enable={tso}");
        sw.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            "other_config:dpdk-init=true",
            "other_config:dpdk-socket-mem=1024",
            "other_config:dpdk-socket-limit=1024",
            "other_config:dpdk-lcore-mask=0x1",
            "other_config:pmd-cpu-mask=0x2",
            &extra,
            &tso,
        ])?;
        sw.spawn_vswitchd()?;
        let _ = run(Command::new("ip").args(["link", "del", BRIDGE]), TIMEOUT);
        sw.vsctl(&[
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            "datapath_type=netdev",
        ])?;
        Ok(sw)
    }

    fn log_file(&self, name: &str) -> io::Result<std::fs::File> {
        // Only what the daemons print before their log file opens (they log with --log-file).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.stderr")))
    }

    fn spawn_vswitchd(&mut self) -> io::Result<()> {
        let log = self.log_file("ovs-vswitchd.log")?;
        let d = &self.dir;
        let child = Command::new(OVS_VSWITCHD)
            .arg(format!("unix:{}", d.join("db.sock").display()))
            .arg(format!(
                "--pidfile={}",
                d.join("ovs-vswitchd.pid").display()
            ))
            .arg(format!(
                "--log-file={}",
                d.join("ovs-vswitchd.log").display()
            ))
            .arg(format!(
                "--unixctl={}",
                d.join("ovs-vswitchd.ctl").display()
            ))
            .args(["--no-chdir", "-vconsole:off"])
            // Where dpdkvhostuser sockets land, and everything else OVS would put in /run.
            .env("OVS_RUNDIR", d)
            .env("OVS_LOGDIR", d)
            .env("OVS_DBDIR", d)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{OVS_VSWITCHD}: {e}")))?;
        self.vswitchd = Some(child);
        let ctl = d.join("ovs-vswitchd.ctl");
        let up = wait_until(Duration::from_secs(60), || {
            run(
                Command::new("ovs-appctl")
                    .arg("-t")
                    .arg(&ctl)
                    .arg("version"),
                Duration::from_secs(5),
            )
            .is_ok()
        });
        if !up {
            return Err(io::Error::other("ovs-vswitchd did not answer within 60 s"));
        }
        let dpdk = wait_until(Duration::from_secs(60), || {
            self.vsctl(&["get", "Open_vSwitch", ".", "dpdk_initialized"])
                .is_ok_and(|s| s.trim() == "true")
        });
        if dpdk {
            Ok(())
        } else {
            Err(io::Error::other("DPDK did not initialize within 60 s"))
        }
    }

    fn vsctl(&self, args: &[&str]) -> io::Result<String> {
        run(
            Command::new("ovs-vsctl")
                .arg(format!("--db=unix:{}", self.dir.join("db.sock").display()))
                .arg("--timeout=30")
                .args(args),
            TIMEOUT,
        )
    }

    fn appctl(&self, args: &[&str]) -> io::Result<String> {
        run(
            Command::new("ovs-appctl")
                .arg("-t")
                .arg(self.dir.join("ovs-vswitchd.ctl"))
                .arg("--timeout=30")
                .args(args),
            TIMEOUT,
        )
    }

    fn stop_vswitchd(&mut self, sig: i32) -> io::Result<()> {
        let Some(mut c) = self.vswitchd.take() else {
            return Ok(());
        };
        signal(c.id(), sig);
        if wait_until(Duration::from_secs(15), || {
            c.try_wait().ok().flatten().is_some()
        }) {
            Ok(())
        } else {
            let _ = c.kill();
            let _ = c.wait();
            Err(io::Error::other(
                "ovs-vswitchd still running 15 s after the signal",
            ))
        }
    }
}

impl Switch for OvsDpdk {
    fn name(&self) -> &'static str {
        "ovs-dpdk"
    }

    fn add_port(&mut self, name: &str, switch_listens: bool) -> io::Result<PathBuf> {
        self.ports.insert(name.to_owned(), switch_listens);
        // dpdkvhostuser: OVS makes the socket in its run directory; dpdkvhostuserclient:
        // QEMU listens on one the test names.
        let (kind, sock) = if switch_listens {
            ("type=dpdkvhostuser", self.dir.join(name))
        } else {
            (
                "type=dpdkvhostuserclient",
                self.dir.join(format!("{name}.sock")),
            )
        };
        let path = format!("options:vhost-server-path={}", sock.display());
        let mut args = vec![
            "add-port",
            BRIDGE,
            name,
            "--",
            "set",
            "Interface",
            name,
            kind,
        ];
        if !switch_listens {
            args.push(&path);
        }
        args.push("mtu_request=9000");
        self.vsctl(&args)?;
        if switch_listens && !wait_until(Duration::from_secs(10), || sock.exists()) {
            return Err(io::Error::other(format!("no socket {}", sock.display())));
        }
        Ok(sock)
    }

    fn del_port(&mut self, name: &str) -> io::Result<()> {
        self.vsctl(&["del-port", BRIDGE, name]).map(drop)
    }

    fn restart(&mut self, kill9: bool) -> io::Result<()> {
        self.stop_vswitchd(if kill9 { libc::SIGKILL } else { libc::SIGTERM })?;
        self.spawn_vswitchd()
    }

    fn port_of_mac(&mut self, mac: &str) -> io::Result<Option<String>> {
        let fdb = self.appctl(&["fdb/show", BRIDGE])?;
        let Some(no) = super::fdb_port(&fdb, mac) else {
            return Ok(None);
        };
        let names: Vec<String> = self.ports.keys().cloned().collect();
        for p in names {
            let ofport = self.vsctl(&["get", "Interface", &p, "ofport"]);
            if ofport.is_ok_and(|o| o.trim() == no) {
                return Ok(Some(p));
            }
        }
        Ok(Some(format!("port {no}")))
    }

    fn logs(&self) -> Vec<PathBuf> {
        vec![
            self.dir.join("ovs-vswitchd.log"),
            self.dir.join("ovsdb-server.log"),
        ]
    }

    fn heal(&mut self) -> io::Result<()> {
        let _ = self.stop_vswitchd(libc::SIGTERM);
        for (name, &listens) in &self.ports {
            if listens {
                let _ = std::fs::remove_file(self.dir.join(name));
            }
        }
        self.spawn_vswitchd()
    }
}

impl Drop for OvsDpdk {
    fn drop(&mut self) {
        if self.vswitchd.is_some() {
            let _ = self.vsctl(&["--if-exists", "del-br", BRIDGE]);
            let _ = self.appctl(&["exit", "--cleanup"]);
            if let Some(mut c) = self.vswitchd.take() {
                if !wait_until(Duration::from_secs(15), || {
                    c.try_wait().ok().flatten().is_some()
                }) {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        if let Some(mut c) = self.ovsdb.take() {
            signal(c.id(), libc::SIGTERM);
            if !wait_until(Duration::from_secs(5), || {
                c.try_wait().ok().flatten().is_some()
            }) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = run(
            Command::new("ip").args(["link", "del", BRIDGE]),
            Duration::from_secs(5),
        );
        remove_prefixed(Path::new("/dev/hugepages"), &self.prefix);
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the files of `dir` whose names start with `prefix` (DPDK's hugepage files).
fn remove_prefixed(dir: &Path, prefix: &str) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
