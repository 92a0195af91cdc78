//! vswitch: `vswitchd` with one PMD thread on CPU 1 and one bridge, in a private directory.

use super::{private_dir, run, signal, wait_until, Switch};
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BRIDGE: &str = "brvm";
const CTL_TIMEOUT: Duration = Duration::from_secs(30);

/// A private vswitchd (killed on drop).
pub struct Vswitch {
    vswitchd: PathBuf,
    vswitchctl: PathBuf,
    dir: PathBuf,
    url: String,
    child: Option<Child>,
    /// Port name -> whether the switch listens.
    ports: HashMap<String, bool>,
}

impl Vswitch {
    /// Starts `vswitchd` (binaries in `bin_dir`) with a bridge.
    pub fn start(bin_dir: &std::path::Path) -> io::Result<Vswitch> {
        let dir = private_dir("vmc-vsw")?;
        let port = super::free_port()?;
        std::fs::write(
            dir.join("vswitchd.toml"),
            format!("[api]\nlisten = \"127.0.0.1:{port}\"\n[datapath]\npmd_cores = [1]\n"),
        )?;
        let mut sw = Vswitch {
            vswitchd: bin_dir.join("vswitchd"),
            vswitchctl: bin_dir.join("vswitchctl"),
            dir,
            url: format!("http://127.0.0.1:{port}"),
            child: None,
            ports: HashMap::new(),
        };
        sw.spawn()?;
        sw.ctl(&["add-br", BRIDGE])?;
        Ok(sw)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("vswitchd.log"))?;
        let child = Command::new(&self.vswitchd)
            .arg("--config")
            .arg(self.dir.join("vswitchd.toml"))
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--run-dir")
            .arg(self.dir.join("run"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.vswitchd.display())))?;
        self.child = Some(child);
        if wait_until(Duration::from_secs(20), || self.ctl(&["list-br"]).is_ok()) {
            Ok(())
        } else {
            Err(io::Error::other("vswitchd did not answer within 20 s"))
        }
    }

    fn ctl(&self, args: &[&str]) -> io::Result<String> {
        run(
            Command::new(&self.vswitchctl)
                .arg("--url")
                .arg(&self.url)
                .args(args),
            CTL_TIMEOUT,
        )
    }

    fn port_no(&self, name: &str) -> io::Result<String> {
        let out = self.ctl(&["dump-ports", BRIDGE, name])?;
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("port")
                    .and_then(|r| r.split_whitespace().next())
                    .map(|n| n.trim_end_matches(':').to_owned())
            })
            .ok_or_else(|| io::Error::other(format!("no port number in {out}")))
    }

    fn stop(&mut self, kill9: bool) -> io::Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        if kill9 {
            c.kill()?;
            c.wait()?;
            return Ok(());
        }
        signal(c.id(), libc::SIGTERM);
        if wait_until(Duration::from_secs(10), || {
            c.try_wait().ok().flatten().is_some()
        }) {
            Ok(())
        } else {
            let _ = c.kill();
            let _ = c.wait();
            Err(io::Error::other("vswitchd ignored SIGTERM for 10 s"))
        }
    }
}

impl Switch for Vswitch {
    fn name(&self) -> &'static str {
        "vswitch"
    }

    fn add_port(&mut self, name: &str, switch_listens: bool) -> io::Result<PathBuf> {
        self.ports.insert(name.to_owned(), switch_listens);
        if switch_listens {
            self.ctl(&[
                "add-port",
                BRIDGE,
                name,
                "type=vhostuser",
                "mtu_request=9000",
            ])?;
            let sock = self.dir.join("run").join(name);
            if !wait_until(Duration::from_secs(10), || sock.exists()) {
                return Err(io::Error::other(format!("no socket {}", sock.display())));
            }
            Ok(sock)
        } else {
            let sock = self.dir.join(format!("{name}.sock"));
            let path = format!("vhost-server-path={}", sock.display());
            self.ctl(&[
                "add-port",
                BRIDGE,
                name,
                "type=vhostuserclient",
                &path,
                "mtu_request=9000",
            ])?;
            Ok(sock)
        }
    }

    fn del_port(&mut self, name: &str) -> io::Result<()> {
        self.ctl(&["del-port", BRIDGE, name]).map(drop)
    }

    fn restart(&mut self, kill9: bool) -> io::Result<()> {
        self.stop(kill9)?;
        self.spawn()
    }

    fn port_of_mac(&mut self, mac: &str) -> io::Result<Option<String>> {
        let fdb = self.ctl(&["fdb-show", BRIDGE])?;
        let Some(no) = super::fdb_port(&fdb, mac) else {
            return Ok(None);
        };
        let names: Vec<String> = self.ports.keys().cloned().collect();
        for p in names {
            if self.port_no(&p).ok().as_deref() == Some(no.as_str()) {
                return Ok(Some(p));
            }
        }
        Ok(Some(format!("port {no}")))
    }

    fn logs(&self) -> Vec<PathBuf> {
        vec![self.dir.join("vswitchd.log")]
    }

    fn heal(&mut self) -> io::Result<()> {
        let _ = self.stop(false);
        for (name, &listens) in &self.ports {
            if listens {
                let _ = std::fs::remove_file(self.dir.join("run").join(name));
            }
        }
        self.spawn()
    }
}

impl Drop for Vswitch {
    fn drop(&mut self) {
        let _ = self.stop(false);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
