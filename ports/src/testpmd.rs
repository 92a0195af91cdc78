//! Test support (feature `testpmd`): `dpdk-testpmd` as the VM side of vhost-user ports.
//!
//! A [`TestPmd`] is one `dpdk-testpmd` process in interactive mode. Its ports are either
//! `net_virtio_user` devices (a vhost-user *frontend*: what a guest's virtio-net driver is, without
//! a VM) or DPDK `net_vhost` devices (a vhost-user *backend*, used to check this harness without
//! our switch). Tests send it commands on stdin and read its answers; every wait is bounded, and
//! dropping it quits the process and removes the sockets it listened on.
//!
//! ```no_run
//! use ports::testpmd::{self, PortConfig, TestPmd};
//! # fn t() -> Result<(), String> {
//! if !testpmd::can_run("my_test") {
//!     return Ok(());
//! }
//! let sock = testpmd::temp_socket("vm1");
//! // ... start the switch with a vhost-user client port on `sock` ...
//! let vm = TestPmd::builder()
//!     .port(PortConfig::virtio_user(&sock).server(true).mac("02:00:00:00:00:01"))
//!     .forward_mode("rxonly")
//!     .spawn()?;
//! vm.wait_link_up(0, std::time::Duration::from_secs(5))?;
//! vm.start();
//! assert_eq!(vm.send_burst(0, 100)?, 100);
//! # Ok(()) }
//! ```
//!
//! DPDK 22.11 behaviour this module relies on (found by trial on Debian 12):
//! - Piped stdout is block-buffered while the command line's echo is not, so testpmd runs under
//!   `stdbuf -oL -eL`; stdout and stderr share one pipe so messages keep their order.
//! - Each command is echoed as `CMD\r\n`, its output follows, and the next `testpmd> ` prompt
//!   marks its end. Asynchronous messages (link events, vhost logs) end lines with a bare `\n`,
//!   so they cannot be mistaken for the echo.
//! - A `virtio_user` port with `server=1` blocks EAL start-up until the peer connects, and such
//!   ports are set up one after the other: the second socket only appears once the first is
//!   connected. Until its first prompt testpmd reads no commands (drop then signals it).
//! - A `virtio_user` port with `server=0` whose socket does not exist is silently left out
//!   (testpmd starts with fewer ports), so start-up checks that every port printed its
//!   `Port N: MAC` line.
//! - Idle (not forwarding), testpmd uses no CPU; forwarding, its one forwarding lcore busy-polls.
//! - Received packets are only counted while forwarding runs: the counters are those of the
//!   software rings, read when the engine polls.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// MAC address of port 0 of a [`TestPmd::vm_pair`].
pub const VM_MAC_A: &str = "02:00:00:00:00:0a";
/// MAC address of port 1 of a [`TestPmd::vm_pair`].
pub const VM_MAC_B: &str = "02:00:00:00:00:0b";

/// The testpmd binary (Debian: package `dpdk-dev`, not `dpdk`).
pub const TESTPMD: &str = "dpdk-testpmd";

/// Free 2 MB hugepages [`ensure_hugepages`] aims for: two testpmd instances (128 MB each by
/// default) plus a switch's packet pools, with room to spare.
pub const HUGEPAGES_WANTED: u64 = 512;

/// Below this many free 2 MB hugepages after trying to grow the pool, tests cannot run: two
/// default instances take 128 pages.
const HUGEPAGES_MIN: u64 = 192;

const HUGEPAGES_SYSFS: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB";
const PROMPT: &[u8] = b"testpmd> ";
/// Bound on one command; `stop` and `quit` wait for the forwarding lcore, which is quick.
const CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on [`TestPmd::send_burst`] as a whole.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Packets queued per `start tx_first` round of [`TestPmd::send_burst`]: below the default
/// 256-entry virtio ring, so a peer that polls between rounds never sees it overflow.
const SEND_CHUNK: u64 = 128;

fn read_u64(path: &str) -> Result<u64, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    s.trim().parse().map_err(|e| format!("{path}: {e}"))
}

/// Whether a hugetlbfs of 2 MB pages is mounted (DPDK finds page sizes through the mounts, even
/// with `--in-memory`).
fn hugetlbfs_mounted() -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return false;
    };
    mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3
            && f[2] == "hugetlbfs"
            && (f[3].contains("pagesize=2M") || !f[3].contains("pagesize="))
    })
}

fn mount_hugetlbfs() -> Result<(), String> {
    std::fs::create_dir_all("/dev/hugepages").map_err(|e| format!("/dev/hugepages: {e}"))?;
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let (src, dst, fs, opts) = (
        c("none"),
        c("/dev/hugepages"),
        c("hugetlbfs"),
        c("pagesize=2M"),
    );
    // SAFETY: all four are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            fs.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount hugetlbfs on /dev/hugepages: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Makes sure 2 MB hugepages are usable: mounts hugetlbfs on `/dev/hugepages` if none is
/// mounted, and grows the pool so that [`HUGEPAGES_WANTED`] pages are free. Needs root when
/// something must change. Succeeds once per process and is a no-op afterwards, so every test
/// can call it; the pool is not shrunk back (other test processes may be using it).
pub fn ensure_hugepages() -> Result<(), String> {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return Ok(());
    }
    if !hugetlbfs_mounted() {
        mount_hugetlbfs()?;
    }
    let free_path = format!("{HUGEPAGES_SYSFS}/free_hugepages");
    let nr_path = format!("{HUGEPAGES_SYSFS}/nr_hugepages");
    let free = read_u64(&free_path).map_err(|e| format!("no 2 MB hugepages: {e}"))?;
    if free < HUGEPAGES_WANTED {
        let total = read_u64(&nr_path)?;
        let want = total + HUGEPAGES_WANTED - free;
        // A partial grant (fragmented memory) is not an error by itself: checked just below.
        std::fs::write(&nr_path, want.to_string())
            .map_err(|e| format!("cannot grow hugepage pool to {want}: {e}"))?;
        let free = read_u64(&free_path)?;
        if free < HUGEPAGES_MIN {
            return Err(format!(
                "only {free} free 2 MB hugepages after asking for {want} (need {HUGEPAGES_MIN})"
            ));
        }
    }
    *done = true;
    Ok(())
}

fn on_path(bin: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| {
        let p = d.join(bin);
        std::fs::metadata(&p).is_ok_and(|m| m.is_file())
    })
}

/// Whether a testpmd test can run here: root, `dpdk-testpmd` (and coreutils' `stdbuf`)
/// installed, hugepages available (set up by [`ensure_hugepages`]). When not, prints a loud
/// `SKIPPED: <test>: <reason>` line and returns false.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root for hugepages and {TESTPMD}");
        return false;
    }
    for (bin, package) in [(TESTPMD, "dpdk-dev"), ("stdbuf", "coreutils")] {
        if !on_path(bin) {
            eprintln!(
                "SKIPPED: {test}: `{bin}` is not installed (package {package}; scripts/test.sh \
                 installs it)"
            );
            return false;
        }
    }
    if let Err(e) = ensure_hugepages() {
        eprintln!("SKIPPED: {test}: hugepages unavailable: {e}");
        return false;
    }
    true
}

/// Serialises testpmd tests within one test binary: each testpmd busy-polls a core while it
/// forwards, and the machine has two.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A fresh socket path under the temporary directory, unique in this process and across
/// concurrent test processes (the pid is part of it). Nothing is created.
pub fn temp_socket(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "vswtp-{}-{}-{tag}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Which vhost-user role a port plays in testpmd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortRole {
    /// `net_virtio_user`: the frontend, what a VM's virtio-net is.
    VirtioUser,
    /// `net_vhost`: DPDK's own vhost-user backend (a reference switch port).
    Vhost,
}

/// One testpmd port: a vhost-user socket and how to use it. Build with
/// [`PortConfig::virtio_user`] or [`PortConfig::vhost`], then adjust.
#[derive(Clone, Debug)]
pub struct PortConfig {
    role: PortRole,
    path: PathBuf,
    server: bool,
    queues: u16,
    mac: Option<String>,
    queue_size: Option<u16>,
    devargs: Vec<String>,
}

impl PortConfig {
    /// A virtio-user (frontend) port that connects to an existing socket (`server=0`): the
    /// switch must be listening (a `vhostuser` server port) before the spawn.
    pub fn virtio_user(path: impl AsRef<Path>) -> Self {
        PortConfig {
            role: PortRole::VirtioUser,
            path: path.as_ref().to_path_buf(),
            server: false,
            queues: 1,
            mac: None,
            queue_size: None,
            devargs: Vec::new(),
        }
    }

    /// A DPDK `net_vhost` (backend) port that listens on the socket (`client=0`); with
    /// `.server(false)` it connects instead (`client=1`) and retries until the peer exists.
    pub fn vhost(path: impl AsRef<Path>) -> Self {
        PortConfig {
            role: PortRole::Vhost,
            server: true,
            ..PortConfig::virtio_user(path)
        }
    }

    /// Whether testpmd creates the socket and listens on it. For a virtio-user port this is
    /// `server=1`: the switch then connects as a vhost-user client (`vhostuserclient`), and
    /// testpmd's start-up blocks until it does. Testpmd removes such a socket when it quits; so
    /// does [`TestPmd`]'s drop if it was killed.
    pub fn server(mut self, server: bool) -> Self {
        self.server = server;
        self
    }

    /// Queue pairs (default 1). Testpmd configures the largest count of all its ports on every
    /// port, so give all ports of one instance the same count.
    pub fn queues(mut self, queues: u16) -> Self {
        self.queues = queues.max(1);
        self
    }

    /// The port's MAC address (virtio-user only; `net_vhost` ports have fixed ones, see
    /// [`TestPmd::port_mac`]). Default: a locally administered address unique to the instance
    /// and port.
    pub fn mac(mut self, mac: &str) -> Self {
        self.mac = Some(mac.to_string());
        self
    }

    /// The virtqueue size (virtio-user only; DPDK's default is 256).
    pub fn queue_size(mut self, size: u16) -> Self {
        self.queue_size = Some(size);
        self
    }

    /// Any other device argument, e.g. `packed_vq=1` or `mrg_rxbuf=0` (virtio-user), or
    /// `iommu-support=1` (vhost).
    pub fn devarg(mut self, arg: &str) -> Self {
        self.devargs.push(arg.to_string());
        self
    }

    fn vdev(&self, index: usize, instance: u32) -> String {
        let path = self.path.display();
        let mut s = match self.role {
            PortRole::VirtioUser => {
                let mac = self.mac.clone().unwrap_or_else(|| {
                    let pid = std::process::id();
                    format!(
                        "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
                        (pid >> 8) & 0xff,
                        pid & 0xff,
                        instance & 0xff,
                        index & 0xff
                    )
                });
                let mut s = format!(
                    "net_virtio_user{index},path={path},server={},queues={},mac={mac}",
                    u8::from(self.server),
                    self.queues
                );
                if let Some(q) = self.queue_size {
                    s += &format!(",queue_size={q}");
                }
                s
            }
            PortRole::Vhost => format!(
                "net_vhost{index},iface={path},client={},queues={}",
                u8::from(!self.server),
                self.queues
            ),
        };
        for a in &self.devargs {
            s += ",";
            s += a;
        }
        s
    }
}

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
    ports: Vec<PortConfig>,
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
    pub fn port(mut self, port: PortConfig) -> Self {
        self.ports.push(port);
        self
    }

    /// Shorthand for a one-queue virtio-user port, listening (`server=1`) or connecting.
    pub fn virtio_user(self, path: impl AsRef<Path>, server: bool) -> Self {
        self.port(PortConfig::virtio_user(path).server(server))
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

        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let wr2 = wr.try_clone().map_err(|e| format!("dup: {e}"))?;
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "-eL", TESTPMD])
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(wr))
            .stderr(Stdio::from(wr2));
        // A VM's hypervisor ignores SIGPIPE: DPDK's virtio-user writes to the vhost-user socket
        // without MSG_NOSIGNAL, so a switch that goes away would otherwise kill the "VM".
        // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                Ok(())
            });
        }
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

#[derive(Default)]
struct Output {
    bytes: Vec<u8>,
    eof: bool,
}

#[derive(Default)]
struct Shared {
    out: Mutex<Output>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Output> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `done` finds what it needs in the output (returning it), the process's
    /// output ends, or `deadline` passes.
    fn wait_for<T>(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<T, &'static str> {
        let mut out = self.lock();
        loop {
            if let Some(v) = done(&out.bytes) {
                return Ok(v);
            }
            if out.eof {
                return Err("testpmd exited");
            }
            let now = Instant::now();
            if now >= deadline {
                return Err("timed out");
            }
            out = self
                .cond
                .wait_timeout(out, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn read_output(mut f: std::fs::File, shared: &Shared, name: &str, verbose: bool) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if verbose {
            eprint!(
                "{}",
                String::from_utf8_lossy(&buf[..n]).replace('\n', &format!("\n[{name}] "))
            );
        }
        shared.lock().bytes.extend_from_slice(&buf[..n]);
        shared.cond.notify_all();
    }
    shared.lock().eof = true;
    shared.cond.notify_all();
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn remove_socket(p: &Path) {
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(p);
    }
}

/// Counters of one port from `show port stats N` (the ethdev's basic statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received (and handed to testpmd).
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets the device dropped for lack of room (`imissed`).
    pub rx_missed: u64,
    /// Erroneous packets received.
    pub rx_errors: u64,
    /// Receive failures for lack of mbufs.
    pub rx_nombuf: u64,
    /// Packets transmitted (accepted by the device's ring).
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Transmit errors; for `net_vhost`, packets the frontend had no room for.
    pub tx_errors: u64,
}

/// Counters of one port kept by testpmd's forwarding engine since the last `start`
/// (`show fwd stats all`); unlike [`PortStats`] they count what the engine failed to send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FwdStats {
    /// Packets the engine received on the port.
    pub rx_packets: u64,
    /// Received packets the engine dropped (e.g. bad checksum in `csum` mode).
    pub rx_dropped: u64,
    /// Packets the engine transmitted on the port.
    pub tx_packets: u64,
    /// Packets the port's ring refused (full): freed, never sent.
    pub tx_dropped: u64,
}

/// The value after the token `key` (such as `RX-packets:`) in `text`.
fn stat(text: &str, key: &str) -> Option<u64> {
    let mut it = text.split_whitespace();
    while let Some(tok) = it.next() {
        if tok == key {
            return it.next()?.parse().ok();
        }
    }
    None
}

struct CmdState {
    stdin: Option<ChildStdin>,
    forward_mode: String,
    forwarding: bool,
    burst: u16,
}

/// A running `dpdk-testpmd` (see the module documentation). Methods that return plain values
/// panic, with the end of testpmd's output, when testpmd does not answer as expected; the
/// `try_`/`Result` ones leave that to the caller. Dropping it quits testpmd (bounded:
/// `quit`, then SIGTERM, then SIGKILL) and removes the sockets it listened on.
pub struct TestPmd {
    name: String,
    pid: u32,
    child: Mutex<Child>,
    io: Mutex<CmdState>,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    ready: AtomicBool,
    macs: OnceLock<Vec<String>>,
    nports: u16,
    queues: u16,
    owned_sockets: Vec<PathBuf>,
    file_prefix: String,
    args: Vec<String>,
}

impl TestPmd {
    /// The "VM" most tests want: virtio-user ports 0 and 1 on sockets `a` and `b` (listening
    /// when `listen`), MACs [`VM_MAC_A`] and [`VM_MAC_B`], each sending to the other's MAC, with
    /// `queues` queue pairs, counting what arrives (`rxonly`), on CPU 0 with 64 MB.
    pub fn vm_pair(a: &Path, b: &Path, listen: bool, queues: u16) -> TestPmdBuilder {
        let port = |p: &Path, mac: &str| {
            PortConfig::virtio_user(p)
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

    fn log_tail(&self) -> String {
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

    fn cmd_locked(
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

    fn must(&self, io: &mut CmdState, command: &str) -> String {
        self.cmd_locked(io, command, CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn start_locked(&self, io: &mut CmdState, command: &str) {
        let out = self.must(io, command);
        if !out.contains("packet forwarding - ports=") && !out.contains("already started") {
            panic!(
                "{}: `{command}` failed: {out}\n{}",
                self.name,
                self.log_tail()
            );
        }
        io.forwarding = true;
    }

    /// Starts forwarding in the current mode (`start`); the forwarding lcore busy-polls from
    /// now on, and only from now on are received packets counted.
    pub fn start(&self) {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        self.start_locked(&mut io, "start");
    }

    /// `start tx_first N`: every forwarding stream first sends `bursts` bursts of generated
    /// frames (as `txonly` would), then forwarding starts in the current mode.
    pub fn start_tx_first(&self, bursts: u32) {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        self.start_locked(&mut io, &format!("start tx_first {bursts}"));
    }

    /// Stops forwarding (`stop`) and returns testpmd's summary (forward statistics per port).
    pub fn stop(&self) -> String {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        io.forwarding = false;
        self.must(&mut io, "stop")
    }

    /// Changes the forwarding mode (`set fwd MODE`); takes effect at the next start.
    pub fn set_forward_mode(&self, mode: &str) {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        self.must(&mut io, &format!("set fwd {mode}"));
        io.forward_mode = mode.to_string();
    }

    fn check_port(&self, port: u16) {
        assert!(
            port < self.nports,
            "{}: no port {port} (has {})",
            self.name,
            self.nports
        );
    }

    /// The device counters of `port` (`show port stats N`).
    pub fn port_stats(&self, port: u16) -> PortStats {
        self.check_port(port);
        let out = self.cmd(&format!("show port stats {port}"));
        let get = |k| {
            stat(&out, k)
                .unwrap_or_else(|| panic!("{}: no {k} in stats of port {port}: {out}", self.name))
        };
        PortStats {
            rx_packets: get("RX-packets:"),
            rx_bytes: get("RX-bytes:"),
            rx_missed: get("RX-missed:"),
            rx_errors: get("RX-errors:"),
            rx_nombuf: get("RX-nombuf:"),
            tx_packets: get("TX-packets:"),
            tx_bytes: get("TX-bytes:"),
            tx_errors: get("TX-errors:"),
        }
    }

    /// The forwarding engine's counters of `port` since the last start (zero for a port not
    /// forwarded).
    pub fn fwd_stats(&self, port: u16) -> FwdStats {
        self.check_port(port);
        let out = self.cmd("show fwd stats all");
        let head = format!("Forward statistics for port {port} ");
        let Some(at) = out.find(&head) else {
            return FwdStats::default();
        };
        let block = &out[at + head.len()..];
        let block = &block[..block.find("statistics for").unwrap_or(block.len())];
        let get = |k| stat(block, k).unwrap_or(0);
        FwdStats {
            rx_packets: get("RX-packets:"),
            rx_dropped: get("RX-dropped:"),
            tx_packets: get("TX-packets:"),
            tx_dropped: get("TX-dropped:"),
        }
    }

    /// Zeroes the device counters of every port (`clear port stats all`).
    pub fn clear_stats(&self) {
        self.cmd("clear port stats all");
    }

    /// Whether `port`'s link is up (`show port info N`). A virtio-user port is up while its
    /// vhost-user connection is set up; a `net_vhost` port once the frontend has started its
    /// queues. A connecting (`server=0`) virtio-user port does not reconnect after a loss.
    pub fn link_up(&self, port: u16) -> bool {
        self.check_port(port);
        let out = self.cmd(&format!("show port info {port}"));
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Link status:"))
            .unwrap_or_else(|| panic!("{}: no link status for port {port}: {out}", self.name))
            .trim()
            == "up"
    }

    /// Waits until `port`'s link is up, polling every 20 ms for at most `timeout`.
    pub fn wait_link_up(&self, port: u16, timeout: Duration) -> Result<(), String> {
        self.wait_link(port, true, timeout)
    }

    /// Waits until `port`'s link is `up` or down, polling every 20 ms for at most `timeout`.
    pub fn wait_link(&self, port: u16, up: bool, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.link_up(port) == up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let state = if up { "up" } else { "down" };
                return Err(format!(
                    "{}: port {port} not {state} after {timeout:?}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `port` has received at least `packets` packets in all, polling every 10 ms
    /// for at most `timeout`; returns the last counters either way (compare them). Packets are
    /// only counted while forwarding runs ([`start`](Self::start)).
    pub fn wait_rx(&self, port: u16, packets: u64, timeout: Duration) -> PortStats {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.port_stats(port);
            if s.rx_packets >= packets || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Transmits exactly `count` generated frames (Ethernet/IPv4/UDP, `txonly`'s template: the
    /// port's MAC as source, its [eth peer](TestPmdBuilder::eth_peer) as destination, length
    /// [`tx_pkt_len`](TestPmdBuilder::tx_pkt_len)) on `port` alone, and returns how many the
    /// port accepted: `count`, or an error after 20 s.
    ///
    /// Testpmd 22.11 has no packet-count limit for `txonly`, but `start tx_first N` sends N
    /// bursts on every forwarding stream, synchronously, before forwarding starts. So this
    /// stops forwarding and works in rounds of at most 128 frames: narrow forwarding to `port`
    /// (`set portlist`), `set burst B`, `start tx_first N`, `stop`, then poll every port for
    /// 2 ms in `rxonly` mode so that what came back meanwhile leaves the rings (testpmd cannot
    /// poll while it sends; a 256-entry ring would overflow with larger rounds). After each
    /// round it recounts the port's transmitted packets: frames a full ring refused are freed,
    /// not counted, and sent again. At the end it restores burst, port list and mode, and
    /// restarts forwarding if it was running. So while this runs, received packets are counted
    /// but not forwarded. With several queues every queue sends an equal share: `count` must
    /// be a multiple of the queue count.
    pub fn send_burst(&self, port: u16, count: u64) -> Result<u64, String> {
        self.check_port(port);
        let queues = u64::from(self.queues);
        assert!(
            count % queues == 0,
            "{}: {count} packets do not split evenly over {queues} queues",
            self.name
        );
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let io = &mut *io;
        let was_forwarding = io.forwarding;
        let mode = io.forward_mode.clone();
        let burst = io.burst;
        let all: Vec<String> = (0..self.nports).map(|p| p.to_string()).collect();
        let all = format!("set portlist {}", all.join(","));
        let run = |io: &mut CmdState, c: &str| self.cmd_locked(io, c, CMD_TIMEOUT);
        let tx = |io: &mut CmdState| -> Result<u64, String> {
            let out = run(io, &format!("show port stats {port}"))?;
            stat(&out, "TX-packets:").ok_or_else(|| format!("no TX-packets in {out}"))
        };
        run(io, "stop")?;
        io.forwarding = false;
        run(io, "set fwd rxonly")?;
        let before = tx(io)?;
        let deadline = Instant::now() + SEND_TIMEOUT;
        let mut sent = 0;
        let mut cur_burst = burst;
        let mut result = Ok(());
        while sent < count {
            if Instant::now() >= deadline {
                result = Err(format!(
                    "{}: sent only {sent} of {count} packets on port {port} in {SEND_TIMEOUT:?}",
                    self.name
                ));
                break;
            }
            // Every queue is a stream that sends the same number of frames.
            let per_queue = ((count - sent) / queues).min((SEND_CHUNK / queues).max(1));
            if per_queue == 0 {
                result = Err(format!(
                    "{}: {} of {count} packets left to send on port {port}, fewer than its \
                     {queues} queues",
                    self.name,
                    count - sent
                ));
                break;
            }
            let b = per_queue.min(32) as u16;
            if b != cur_burst {
                run(io, &format!("set burst {b}"))?;
                cur_burst = b;
            }
            if self.nports > 1 {
                run(io, &format!("set portlist {port}"))?;
            }
            run(io, &format!("start tx_first {}", per_queue / u64::from(b)))?;
            run(io, "stop")?;
            if self.nports > 1 {
                run(io, &all)?;
            }
            run(io, "start")?;
            std::thread::sleep(Duration::from_millis(2));
            run(io, "stop")?;
            sent = tx(io)? - before;
        }
        if cur_burst != burst {
            run(io, &format!("set burst {burst}"))?;
        }
        if self.nports > 1 {
            run(io, &all)?;
        }
        run(io, &format!("set fwd {mode}"))?;
        if was_forwarding {
            let out = run(io, "start")?;
            if !out.contains("packet forwarding - ports=") {
                return Err(format!("{}: restart failed: {out}", self.name));
            }
            io.forwarding = true;
        }
        result.map(|()| sent)
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
        let pid = self.pid as libc::pid_t;
        // Before its first prompt (a listening port still waiting for its peer) testpmd does
        // not read commands: signal it at once.
        let prompted = find(&self.shared.lock().bytes, PROMPT).is_some();
        let grace = Duration::from_millis(if prompted { 5000 } else { 100 });
        let mut stopped = Self::wait_exit(child, grace);
        if !stopped {
            // Still in EAL start-up (a listening port never connected) or hung.
            // SAFETY: kill has no memory preconditions; pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_stats() {
        let out = "\n  ######################## NIC statistics for port 1  ########################\n  \
                   RX-packets: 14         RX-missed: 2          RX-bytes:  896\n  RX-errors: 1\n  \
                   RX-nombuf:  3         \n  TX-packets: 7          TX-errors: 5          TX-bytes:  448\n";
        assert_eq!(stat(out, "RX-packets:"), Some(14));
        assert_eq!(stat(out, "RX-missed:"), Some(2));
        assert_eq!(stat(out, "RX-bytes:"), Some(896));
        assert_eq!(stat(out, "RX-nombuf:"), Some(3));
        assert_eq!(stat(out, "TX-errors:"), Some(5));
        assert_eq!(stat(out, "TX-bytes:"), Some(448));
        assert_eq!(stat(out, "RX-dropped:"), None);
    }

    #[test]
    fn builds_command_line() {
        let b = TestPmd::builder()
            .port(
                PortConfig::virtio_user("/tmp/a.sock")
                    .server(true)
                    .mac("02:00:00:00:00:01"),
            )
            .port(PortConfig::vhost("/tmp/b.sock").server(false).queues(2))
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
