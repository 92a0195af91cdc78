//! Boots small Linux guests under `qemu-system-x86_64` and drives them, so integration tests
//! can put real VMs (the Linux virtio-net driver) on the switch's vhost-user ports.
//!
//! ```no_run
//! use testkit::qemu::{self, Guest, GuestConfig, GuestImage, VhostUserNic};
//! use std::time::Duration;
//!
//! if let Err(why) = qemu::available() {
//!     eprintln!("SKIPPED: my_test: {why}");
//!     return;
//! }
//! let image = GuestImage::get().unwrap();
//! let config = GuestConfig::new("vm1").vhost_user(VhostUserNic::new("/tmp/vhu0.sock"));
//! let mut vm = Guest::boot(image, config).unwrap();
//! vm.configure_ip("eth0", "10.0.0.1/24");
//! assert!(vm.ping("10.0.0.2", 3));
//! let (status, out) = vm.run("uname -r", Duration::from_secs(10)).unwrap();
//! ```
//!
//! The guest is the Debian cloud kernel with an initramfs of busybox and iperf3 (see
//! [`GuestImage`]); its shell is reached over the serial console.

mod config;
mod console;
mod cpio;
mod guest;
mod image;
mod migrate;
mod net;
mod qmp;
mod stream;

use crate::process;
pub use crate::process::output_within;
/// Guest tests run one at a time (guests under TCG are CPU-bound, and this machine kind has
/// two cores): the crate's one test lock.
pub use crate::require::serial;
pub use config::{GuestConfig, Nic, VhostUserNic};
pub use guest::Guest;
pub use image::GuestImage;
pub use migrate::MigrationStats;

use std::io;
use std::time::Duration;

/// `Ok` when guests can run here: QEMU is installed and we are root (tap NICs, the
/// image's `apt-get download`). Callers print `SKIPPED: <test>: <why>` and return on `Err`.
pub fn available() -> Result<(), String> {
    let Some(qemu) = process::which("qemu-system-x86_64") else {
        return Err("qemu-system-x86_64 is not installed (package qemu-system-x86)".into());
    };
    match process::output_within(
        std::process::Command::new(&qemu).arg("--version"),
        Duration::from_secs(10),
    ) {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "{} --version failed: {}",
                qemu.display(),
                out.status
            ))
        }
        Err(e) => return Err(format!("{} --version: {e}", qemu.display())),
    }
    if !crate::require::is_root() {
        return Err("not root".into());
    }
    Ok(())
}

/// The guest image for `test`, or `None` after a loud `SKIPPED: <test>: <why>` when guests
/// cannot run here ([`available`]). Panics when they can but the image cannot be built.
pub fn image_or_skip(test: &str) -> Option<&'static GuestImage> {
    if let Err(why) = available() {
        eprintln!("SKIPPED: {test}: {why}");
        return None;
    }
    match GuestImage::get() {
        Ok(i) => Some(i),
        Err(e) => panic!("{test}: QEMU is here but the guest image cannot be built: {e}"),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for `GuestConfig::incoming`).
pub fn free_local_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The QEMU accelerator: `$TESTKIT_QEMU_ACCEL`, else KVM when the CPU has virtualization
/// extensions and /dev/kvm opens, else TCG.
///
/// Not `accel=kvm:tcg`: on a machine with /dev/kvm but no vmx/svm flag (nested setups),
/// QEMU picks KVM and the guest hangs without a line of output.
fn accel() -> String {
    if let Ok(a) = std::env::var("TESTKIT_QEMU_ACCEL") {
        return a;
    }
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_vmx = flags
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let kvm_opens = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if has_vmx && kvm_opens { "kvm" } else { "tcg" }.into()
}
