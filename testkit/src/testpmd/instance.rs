//! A running testpmd: its start-up check, commands and answers, and its bounded shutdown.
//! What tests do with it (forwarding, counters, sending) is in `traffic.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::output::{find, Shared};
use super::{remove_socket, TestPmdBuilder, TestpmdPort, CMD_TIMEOUT, VM_MAC_A, VM_MAC_B};

/// The prompt that ends every answer.
pub(super) const PROMPT: &[u8] = b"testpmd> ";

/// What commands change and later commands need: testpmd's stdin, and its forwarding state.
pub(super) struct CmdState {
    pub(super) stdin: Option<ChildStdin>,
    pub(super) forward_mode: String,
    pub(super) forwarding: bool,
    pub(super) burst: u16,
}

/// A running `dpdk-testpmd` (see the module documentation). Methods that return plain values
/// panic, with the end of testpmd's output, when testpmd does not answer as expected; the
/// `try_`/`Result` ones leave that to the caller. Dropping it quits testpmd (bounded:
/// `quit`, then SIGTERM, then SIGKILL) and removes the sockets it listened on.
pub struct TestPmd {
    pub(super) name: String,
    pub(super) pid: u32,
    pub(super) child: Mutex<Child>,
    pub(super) io: Mutex<CmdState>,
    pub(super) shared: Arc<Shared>,
    pub(super) reader: Option<JoinHandle<()>>,
    pub(super) ready: AtomicBool,
    pub(super) macs: OnceLock<Vec<String>>,
    pub(super) nports: u16,
    pub(super) queues: u16,
    pub(super) owned_sockets: Vec<PathBuf>,
    pub(super) file_prefix: String,
    pub(super) args: Vec<String>,
}

impl TestPmd {
    /// The "VM" most tests want: virtio-user ports 0 and 1 on sockets `a` and `b` (listening
    /// when `listen`), MACs [`VM_MAC_A`] and [`VM_MAC_B`], each sending to the other's MAC, with
    /// `queues` queue pairs, counting what arrives (`rxonly`), on CPU 0 with 64 MB.
    pub fn vm_pair(a: &Path, b: &Path, listen: bool, queues: u16) -> TestPmdBuilder {
        let port = |p: &Path, mac: &str| {
            TestpmdPort::virtio_user(p)
                .server(listen)
                .queues(queues)
                .mac(mac)
        };
        // (`--rxq`/`--txq` follow the ports' queue count.)
        TestPmd::builder()
            .name("vm")
            .cpu(0)
            .mem_mb(64)
            .port(port(a, VM_MAC_A))
            .port(port(b, VM_MAC_B))
            .eth_peer(0, VM_MAC_B)
            .eth_peer(1, VM_MAC_A)
            .forward_mode("rxonly")
    }

    /// A builder with no ports, `io` forwarding, paired topology, on CPU 0.
    pub fn builder() -> TestPmdBuilder {
        TestPmdBuilder::default()
    }

    /// The process id of testpmd.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The arguments testpmd was started with (after `stdbuf -oL -eL dpdk-testpmd`).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Number of ports configured.
    pub fn num_ports(&self) -> u16 {
        self.nports
    }

    /// Everything testpmd printed so far (stdout and stderr), for diagnostics.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().bytes).into_owned()
    }

    pub(super) fn log_tail(&self) -> String {
        let log = self.log();
        let start = log.len().saturating_sub(3000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(0);
        format!(
            "--- last output of {} (pid {}) ---\n{}\n---",
            self.name,
            self.pid,
            &log[start..]
        )
    }

    /// Whether the process is still running.
    pub fn is_alive(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.try_wait(), Ok(None))
    }

    /// Waits (bounded) until testpmd has started with all its ports and prompts for commands.
    /// Fails if it exits, times out (a listening port's peer never connected), or left a port
    /// out (a connecting port's socket did not exist).
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        self.shared
            .wait_for(deadline, |b| find(b, PROMPT))
            .map_err(|e| {
                format!(
                    "{} did not start within {timeout:?}: {e}\n{}",
                    self.name,
                    self.log_tail()
                )
            })?;
        let log = self.log();
        let mut macs = Vec::new();
        for i in 0..self.nports {
            let head = format!("Port {i}: ");
            let mac = log.lines().find_map(|l| {
                let rest = l.strip_prefix(&head)?;
                (rest.len() == 17 && rest.matches(':').count() == 5).then(|| rest.to_string())
            });
            match mac {
                Some(m) => macs.push(m.to_ascii_lowercase()),
                None => {
                    return Err(format!(
                        "{}: port {i} was not set up (its socket missing?)\n{}",
                        self.name,
                        self.log_tail()
                    ))
                }
            }
        }
        if log.contains("Fail to start port") || log.contains("Start ports failed") {
            return Err(format!(
                "{}: a port failed to start\n{}",
                self.name,
                self.log_tail()
            ));
        }
        let _ = self.macs.set(macs);
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// The MAC address of `port` as testpmd reported it at start-up (lower case), once ready.
    pub fn port_mac(&self, port: u16) -> Option<String> {
        self.macs.get()?.get(usize::from(port)).cloned()
    }

    /// Sends one command and returns its output (without the echo and the next prompt).
    /// Waits for testpmd to be ready first. Fails if testpmd exits, does not prompt again
    /// within `timeout`, or answers `Bad arguments`/`Command not found`.
    pub fn try_cmd(&self, command: &str, timeout: Duration) -> Result<String, String> {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        self.cmd_locked(&mut io, command, timeout)
    }

    pub(super) fn cmd_locked(
        &self,
        io: &mut CmdState,
        command: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        assert!(!command.contains('\n'), "one command at a time");
        self.wait_ready(timeout)?;
        let start = self.shared.lock().bytes.len();
        let stdin = io
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{}: stdin closed", self.name))?;
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: writing `{command}`: {e}", self.name))?;
        let deadline = Instant::now() + timeout;
        // The echo ends with "\r\n"; the output runs from there to the next prompt.
        let out = self
            .shared
            .wait_for(deadline, |b| {
                let b = &b[start..];
                let echo_end = find(b, b"\r\n")? + 2;
                let prompt = echo_end + find(&b[echo_end..], PROMPT)?;
                Some(String::from_utf8_lossy(&b[echo_end..prompt]).into_owned())
            })
            .map_err(|e| {
                format!(
                    "{}: `{command}`: {e} (after {timeout:?})\n{}",
                    self.name,
                    self.log_tail()
                )
            })?;
        let first = out.trim_start().lines().next().unwrap_or("");
        if first.starts_with("Bad arguments") || first.starts_with("Command not found") {
            return Err(format!("{}: `{command}`: {first}", self.name));
        }
        Ok(out)
    }

    /// Sends one command and returns its output; panics on failure (see
    /// [`try_cmd`](Self::try_cmd)).
    pub fn cmd(&self, command: &str) -> String {
        self.try_cmd(command, CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub(super) fn must(&self, io: &mut CmdState, command: &str) -> String {
        self.cmd_locked(io, command, CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if Instant::now() >= deadline => return false,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for TestPmd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut stdin) = io.stdin.take() {
            // `quit` stops forwarding and closes the ports; closing stdin also makes it quit.
            let _ = stdin.write_all(b"quit\n");
        }
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        // Before its first prompt (a listening port still waiting for its peer) testpmd does
        // not read commands: signal it at once.
        let prompted = find(&self.shared.lock().bytes, PROMPT).is_some();
        let grace = Duration::from_millis(if prompted { 5000 } else { 100 });
        let mut stopped = Self::wait_exit(child, grace);
        if !stopped {
            // Still in EAL start-up (a listening port never connected) or hung.
            crate::sys::sigterm(self.pid);
            stopped = Self::wait_exit(child, Duration::from_secs(3));
        }
        if !stopped {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        for p in &self.owned_sockets {
            remove_socket(p);
        }
        // EAL leaves an empty runtime directory even with --in-memory.
        let _ = std::fs::remove_dir(format!("/var/run/dpdk/{}", self.file_prefix));
    }
}
