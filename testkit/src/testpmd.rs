//! `dpdk-testpmd` as the VM side of vhost-user ports: it speaks virtio-net as a guest's driver
//! does, so tests exercise the switch's vhost-user path without booting a VM.
//!
//! A [`TestPmd`] is one `dpdk-testpmd` process in interactive mode. Its ports are either
//! `net_virtio_user` devices (a vhost-user *frontend*: what a guest's virtio-net driver is, without
//! a VM) or DPDK `net_vhost` devices (a vhost-user *backend*, used to check this harness without
//! our switch). Tests send it commands on stdin and read its answers; every wait is bounded, and
//! dropping it quits the process and removes the sockets it listened on.
//!
//! ```no_run
//! use testkit::require::{can_run, Need};
//! use testkit::testpmd::{self, TestPmd, TestpmdPort};
//! # fn t() -> Result<(), String> {
//! if !can_run("my_test", &[Need::Testpmd]) {
//!     return Ok(());
//! }
//! let sock = testpmd::temp_socket("vm1");
//! // ... start the switch with a vhost-user client port on `sock` ...
//! let vm = TestPmd::builder()
//!     .port(TestpmdPort::virtio_user(&sock).server(true).mac("02:00:00:00:00:01"))
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

mod builder;
mod hugepages;
mod instance;
mod output;
mod port;
mod stats;
mod traffic;

pub use builder::{TestPmdBuilder, Topology};
pub use hugepages::{ensure_hugepages, HUGEPAGES_WANTED};
pub use instance::TestPmd;
pub use port::TestpmdPort;
pub use stats::{FwdStats, TestpmdPortStats};

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// MAC address of port 0 of a [`TestPmd::vm_pair`].
pub const VM_MAC_A: &str = "02:00:00:00:00:0a";
/// MAC address of port 1 of a [`TestPmd::vm_pair`].
pub const VM_MAC_B: &str = "02:00:00:00:00:0b";

/// The testpmd binary (Debian: package `dpdk-dev`, not `dpdk`).
pub const TESTPMD: &str = "dpdk-testpmd";

/// Bound on one command; `stop` and `quit` wait for the forwarding lcore, which is quick.
const CMD_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Removes `p` if it is a socket (one testpmd listened on), and nothing else.
fn remove_socket(p: &Path) {
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(p);
    }
}
