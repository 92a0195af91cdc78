//! Switch adapters for the VM benchmark (`src/bin/vm_compare.rs`): the same few operations
//! on vswitch and on a private Open vSwitch with DPDK, so that one scenario script drives both.

mod ovs;
mod vswitch;

pub use ovs::OvsDpdk;
pub use vswitch::Vswitch;

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// One switch with one bridge, started in a private directory and stopped on drop.
pub trait Switch {
    /// Short name for tables and logs (`vswitch`, `ovs-dpdk`).
    fn name(&self) -> &'static str;
    /// Adds vhost-user port `name` with `mtu_request=9000` and returns its socket. With
    /// `switch_listens` the switch creates the socket (`vhostuser`, `dpdkvhostuser`); else
    /// QEMU listens on the returned path and the switch connects to it (`vhostuserclient`,
    /// `dpdkvhostuserclient`). Adding a deleted port again gives the same socket.
    fn add_port(&mut self, name: &str, switch_listens: bool) -> io::Result<PathBuf>;
    /// Deletes port `name`.
    fn del_port(&mut self, name: &str) -> io::Result<()>;
    /// Stops the switch (SIGTERM, or SIGKILL with `kill9`) and starts it again on the same
    /// configuration; returns once it answers.
    fn restart(&mut self, kill9: bool) -> io::Result<()>;
    /// The name of the port behind which the switch has learnt `mac`, if any.
    fn port_of_mac(&mut self, mac: &str) -> io::Result<Option<String>>;
    /// The switch's log files (copied next to the results).
    fn logs(&self) -> Vec<PathBuf>;
    /// Brings the switch back after a failed scenario, as an operator would: stops it
    /// (SIGTERM), removes the socket files of its listening ports that it left behind, and
    /// starts it again; so that the next scenario tests its own thing.
    fn heal(&mut self) -> io::Result<()>;
}

/// The sizes of `logs` now, to read later only what was written since.
pub fn log_marks(logs: &[PathBuf]) -> Vec<u64> {
    logs.iter()
        .map(|l| std::fs::metadata(l).map_or(0, |m| m.len()))
        .collect()
}

/// The last error line written to `logs` since `marks`: one with `|ERR|`, `|EMER|` or
/// ` ERROR ` if any, else one that mentions "error".
pub fn last_error_since(logs: &[PathBuf], marks: &[u64]) -> Option<String> {
    let mut strong = None;
    let mut weak = None;
    for (l, &m) in logs.iter().zip(marks) {
        let Ok(bytes) = std::fs::read(l) else {
            continue;
        };
        let text = String::from_utf8_lossy(bytes.get(m as usize..).unwrap_or_default());
        for line in text.lines() {
            if line.contains("|ERR|") || line.contains("|EMER|") || line.contains(" ERROR ") {
                strong = Some(line.trim().to_owned());
            } else if line.to_ascii_lowercase().contains("error") {
                weak = Some(line.trim().to_owned());
            }
        }
    }
    strong.or(weak)
}

/// Runs `cmd` with a time limit; returns its standard output, or an error with its standard
/// error when it fails or times out.
pub fn run(cmd: &mut Command, timeout: Duration) -> io::Result<String> {
    let what = format!("{cmd:?}");
    let out = testkit::qemu::output_within(cmd, timeout)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(io::Error::other(format!(
            "{what}: {}: {}",
            out.status,
            err.trim()
        )))
    }
}

/// The port number in the row of `fdb` (as `fdb-show` and OVS's `fdb/show` print it: the
/// port first) that holds `mac`.
pub fn fdb_port(fdb: &str, mac: &str) -> Option<String> {
    fdb.lines()
        .find(|l| l.contains(mac))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
}

/// Polls `f` every 100 ms (it runs programs) until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    testkit::wait::poll_until(timeout, Duration::from_millis(100), f)
}

/// Sends `sig` to `pid` (a process we started).
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid we started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// A fresh private directory `/tmp/<prefix>-<pid>-<n>` (short: socket paths must fit in 108
/// bytes).
pub fn private_dir(prefix: &str) -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(format!(
        "/tmp/{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A free TCP port on loopback.
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
