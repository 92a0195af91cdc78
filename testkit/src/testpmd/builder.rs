//! How to start a testpmd: its ports, cores, memory, forwarding mode and topology, turned into
//! its command line and spawned under `stdbuf` with one pipe for all its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::instance::CmdState;
use super::output::{read_output, Shared};
use super::{ensure_hugepages, remove_socket, TestPmd, TestpmdPort, TESTPMD};

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// How testpmd pairs its ports into forwarding streams (`--port-topology`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// 0↔1, 2↔3, …: what a port receives leaves on its partner (an odd last port pairs with
    /// itself). Testpmd's default.
    Paired,
    /// 0→1→2→…→0.
    Chained,
    /// Each port sends out what it received.
    Loop,
}

impl Topology {
    fn arg(self) -> &'static str {
        match self {
            Topology::Paired => "paired",
            Topology::Chained => "chained",
            Topology::Loop => "loop",
        }
    }
}

/// How to start a [`TestPmd`]; from [`TestPmd::builder`].
#[derive(Clone, Debug)]
pub struct TestPmdBuilder {
    name: String,
    ports: Vec<TestpmdPort>,
    cpu: usize,
    forward_mode: String,
    topology: Topology,
    tx_pkt_len: Option<u16>,
    burst: u16,
    eth_peers: Vec<(u16, String)>,
    mem_mb: u32,
    mbufs: Option<u32>,
    eal_args: Vec<String>,
    app_args: Vec<String>,
    startup_timeout: Duration,
}

impl Default for TestPmdBuilder {
    fn default() -> Self {
        TestPmdBuilder {
            name: "testpmd".into(),
            ports: Vec::new(),
            cpu: 0,
            forward_mode: "io".into(),
            topology: Topology::Paired,
            tx_pkt_len: None,
            burst: 32,
            eth_peers: Vec::new(),
            mem_mb: 128,
            mbufs: None,
            eal_args: Vec::new(),
            app_args: Vec::new(),
            startup_timeout: Duration::from_secs(30),
        }
    }
}

impl TestPmdBuilder {
    /// A label for messages and logs (default `testpmd`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Adds a port; ports are numbered 0, 1, … in the order added.
    pub fn port(mut self, port: TestpmdPort) -> Self {
        self.ports.push(port);
        self
    }

    /// Shorthand for a one-queue virtio-user port, listening (`server=1`) or connecting.
    pub fn virtio_user(self, path: impl AsRef<Path>, server: bool) -> Self {
        self.port(TestpmdPort::virtio_user(path).server(server))
    }

    /// The CPU both of its lcores run on (default 0): the main lcore only reads commands, the
    /// one forwarding lcore busy-polls while forwarding. Keep the switch's PMD on the other.
    pub fn cpu(mut self, cpu: usize) -> Self {
        self.cpu = cpu;
        self
    }

    /// The forwarding mode at start-up (`io` by default; also `rxonly`, `txonly`, `mac`,
    /// `macswap`, `flowgen`, `icmpecho`, …). Change it later with [`TestPmd::set_forward_mode`].
    pub fn forward_mode(mut self, mode: &str) -> Self {
        self.forward_mode = mode.to_string();
        self
    }

    /// How ports are paired into streams (default [`Topology::Paired`]).
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// Length of the frames `txonly` and [`TestPmd::send_burst`] send (default 64: an
    /// Ethernet/IPv4/UDP frame without FCS).
    pub fn tx_pkt_len(mut self, len: u16) -> Self {
        self.tx_pkt_len = Some(len);
        self
    }

    /// Packets per burst (default 32).
    pub fn burst(mut self, burst: u16) -> Self {
        self.burst = burst.clamp(1, 512);
        self
    }

    /// The destination MAC of frames generated for transmission on `port` (`txonly`,
    /// [`TestPmd::send_burst`]) and written by `mac` forwarding; testpmd's default is
    /// `02:00:00:00:00:PP`, PP the port number.
    pub fn eth_peer(mut self, port: u16, mac: &str) -> Self {
        self.eth_peers.push((port, mac.to_string()));
        self
    }

    /// Hugepage memory in MB (`-m`, default 128; 64 is enough for a few ports).
    pub fn mem_mb(mut self, mb: u32) -> Self {
        self.mem_mb = mb;
        self
    }

    /// Size of the mbuf pool (`--total-num-mbufs`); by default enough for every ring.
    pub fn mbufs(mut self, n: u32) -> Self {
        self.mbufs = Some(n);
        self
    }

    /// An extra EAL argument (before `--`), e.g. `--log-level=pmd.net.virtio.*:debug`.
    pub fn eal_arg(mut self, arg: &str) -> Self {
        self.eal_args.push(arg.to_string());
        self
    }

    /// An extra testpmd argument (after `--`), e.g. `--rxd=1024` or `--tx-ip=10.0.0.1,10.0.0.2`.
    pub fn app_arg(mut self, arg: &str) -> Self {
        self.app_args.push(arg.to_string());
        self
    }

    /// How long [`spawn`](Self::spawn) waits for the first prompt (default 30 s). With
    /// listening virtio-user ports this includes waiting for the peer to connect.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// The `dpdk-testpmd` arguments this builder gives, for a given `--file-prefix` and
    /// instance number (which seeds default MACs).
    pub fn args(&self, file_prefix: &str, instance: u32) -> Vec<String> {
        let cpu = self.cpu;
        let queues = self.ports.iter().map(|p| p.queues).max().unwrap_or(1);
        // Two rings of up to 1024 entries per queue pair and port, plus per-lcore caches.
        let mbufs = self
            .mbufs
            .unwrap_or_else(|| 2048 + 2048 * self.ports.len() as u32 * u32::from(queues));
        let mut a = vec![
            format!("--lcores=0@{cpu},1@{cpu}"),
            "--no-pci".into(),
            // memfd-backed memory: shareable with the vhost-user peer, no files left behind.
            "--in-memory".into(),
            // One file per memseg list keeps the peer within vhost-user's 8 memory regions.
            "--single-file-segments".into(),
            "--no-telemetry".into(),
            format!("--file-prefix={file_prefix}"),
            "-m".into(),
            self.mem_mb.to_string(),
        ];
        for (i, p) in self.ports.iter().enumerate() {
            a.push(format!("--vdev={}", p.vdev(i, instance)));
        }
        a.extend(self.eal_args.iter().cloned());
        a.push("--".into());
        a.extend([
            "-i".into(),
            "--nb-cores=1".into(),
            format!("--forward-mode={}", self.forward_mode),
            format!("--port-topology={}", self.topology.arg()),
            format!("--total-num-mbufs={mbufs}"),
            format!("--burst={}", self.burst),
        ]);
        if queues > 1 {
            a.push(format!("--rxq={queues}"));
            a.push(format!("--txq={queues}"));
        }
        if let Some(len) = self.tx_pkt_len {
            a.push(format!("--txpkts={len}"));
        }
        for (port, mac) in &self.eth_peers {
            a.push(format!("--eth-peer={port},{mac}"));
        }
        a.extend(self.app_args.iter().cloned());
        a
    }

    /// Starts testpmd and waits (at most the start-up timeout) until it prompts with every
    /// port probed. With listening virtio-user ports, the peer must connect meanwhile — else
    /// use [`spawn_nowait`](Self::spawn_nowait).
    pub fn spawn(self) -> Result<TestPmd, String> {
        let timeout = self.startup_timeout;
        let tp = self.spawn_nowait()?;
        tp.wait_ready(timeout)?;
        Ok(tp)
    }

    /// Starts testpmd without waiting for it: for listening ports whose peer is started
    /// afterwards. Call [`TestPmd::wait_ready`] before anything else (commands also wait).
    pub fn spawn_nowait(self) -> Result<TestPmd, String> {
        if self.ports.is_empty() {
            return Err("testpmd needs at least one port".into());
        }
        ensure_hugepages()?;
        let instance = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let file_prefix = format!("vswtp{}_{instance}", std::process::id());
        let owned: Vec<PathBuf> = self
            .ports
            .iter()
            .filter(|p| p.server)
            .map(|p| p.path.clone())
            .collect();
        for p in &owned {
            // A stale socket from a killed run would make bind() fail.
            remove_socket(p);
        }
        let args = self.args(&file_prefix, instance);

        let (rd, wr) = crate::sys::cloexec_pipe().map_err(|e| format!("pipe: {e}"))?;
        let wr2 = wr.try_clone().map_err(|e| format!("dup: {e}"))?;
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "-eL", TESTPMD])
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(wr))
            .stderr(Stdio::from(wr2));
        // A VM's hypervisor ignores SIGPIPE: DPDK's virtio-user writes to the vhost-user socket
        // without MSG_NOSIGNAL, so a switch that goes away would otherwise kill the "VM".
        crate::sys::ignore_sigpipe_on_exec(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run stdbuf {TESTPMD}: {e}"))?;
        // The write ends went with the Command; only the child holds them now, so the reader
        // sees end-of-file when it exits.
        let stdin = child.stdin.take().expect("piped stdin");

        let shared = Arc::new(Shared::default());
        let verbose = std::env::var_os("VSWITCH_TESTPMD_LOG").is_some();
        let reader = {
            let shared = Arc::clone(&shared);
            let name = self.name.clone();
            std::thread::Builder::new()
                .name(format!("{}-out", self.name))
                .spawn(move || read_output(std::fs::File::from(rd), &shared, &name, verbose))
        };
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("reader thread: {e}"));
            }
        };
        Ok(TestPmd {
            name: self.name,
            pid: child.id(),
            child: Mutex::new(child),
            io: Mutex::new(CmdState {
                stdin: Some(stdin),
                forward_mode: self.forward_mode,
                forwarding: false,
                burst: self.burst,
            }),
            shared,
            reader: Some(reader),
            ready: AtomicBool::new(false),
            macs: OnceLock::new(),
            nports: self.ports.len() as u16,
            queues: self.ports.iter().map(|p| p.queues).max().unwrap_or(1),
            owned_sockets: owned,
            file_prefix,
            args,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_command_line() {
        let b = TestPmd::builder()
            .port(
                TestpmdPort::virtio_user("/tmp/a.sock")
                    .server(true)
                    .mac("02:00:00:00:00:01"),
            )
            .port(TestpmdPort::vhost("/tmp/b.sock").server(false).queues(2))
            .cpu(1)
            .forward_mode("txonly")
            .tx_pkt_len(128)
            .eth_peer(0, "02:00:00:00:00:02");
        let a = b.args("pfx", 3);
        assert!(a.contains(&"--lcores=0@1,1@1".to_string()));
        assert!(a.contains(
            &"--vdev=net_virtio_user0,path=/tmp/a.sock,server=1,queues=1,mac=02:00:00:00:00:01"
                .to_string()
        ));
        assert!(a.contains(&"--vdev=net_vhost1,iface=/tmp/b.sock,client=1,queues=2".to_string()));
        assert!(a.contains(&"--rxq=2".to_string()));
        assert!(a.contains(&"--txpkts=128".to_string()));
        assert!(a.contains(&"--eth-peer=0,02:00:00:00:00:02".to_string()));
        let sep = a.iter().position(|s| s == "--").unwrap();
        assert!(a[sep..].contains(&"-i".to_string()));
    }
}
