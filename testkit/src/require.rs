//! What a test needs from the machine, and one lock to run the heavy tests one at a time.
//!
//! Tests that need root, network namespaces, taps or dpdk-testpmd do not fail where these are
//! missing: they print a loud `SKIPPED: <test>: <reason>` line (so a skip is never mistaken
//! for a pass when reading the output) and return.
//!
//! ```no_run
//! use testkit::require::{can_run, serial, Need};
//!
//! let _serial = serial();
//! if !can_run("my_test", &[Need::Netns, Need::Tool("iperf3")]) {
//!     return;
//! }
//! ```
//!
//! [`serial`] is a single lock per test process: tests that start PMD threads, busy-polling
//! testpmd instances or guests hold it, since the machine has two cores. Async tests take it
//! with [`serial_async`], which waits without blocking their runtime.

mod lock;

pub use lock::{serial, serial_async, Serial};

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// One thing a test needs; see [`can_run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need<'a> {
    /// Network namespaces: root, `ip` (iproute2), and the right to create a namespace (root
    /// in a container may lack it; probed once per process).
    Netns,
    /// Taps: root and `/dev/net/tun`.
    Tun,
    /// dpdk-testpmd as a VM: root, `dpdk-testpmd` and `stdbuf` installed, and 2 MB
    /// hugepages (set up by [`crate::testpmd::ensure_hugepages`]).
    Testpmd,
    /// A program on `$PATH`.
    Tool(&'a str),
}

impl Need<'_> {
    /// What root is needed for, if it is.
    fn root_for(&self) -> Option<&'static str> {
        match self {
            Need::Netns => Some("network namespaces"),
            Need::Tun => Some("taps"),
            Need::Testpmd => Some("hugepages and dpdk-testpmd"),
            Need::Tool(_) => None,
        }
    }

    /// The programs it needs.
    fn tools(&self) -> &[&str] {
        match self {
            Need::Netns => &["ip"],
            Need::Tun => &[],
            Need::Testpmd => &[crate::testpmd::TESTPMD, "stdbuf"],
            Need::Tool(t) => std::slice::from_ref(t),
        }
    }
}

/// The Debian package of a program the tests use, for the skip message.
fn package(tool: &str) -> Option<&'static str> {
    Some(match tool {
        "ip" => "iproute2",
        "dpdk-testpmd" => "dpdk-dev",
        "stdbuf" | "mount" | "umount" => "coreutils",
        "ping" => "iputils-ping",
        "iperf3" => "iperf3",
        "tcpdump" => "tcpdump",
        _ => return None,
    })
}

/// `Ok` when everything in `needs` is here; else why not. Checks root first, then
/// `/dev/net/tun`, then the programs, then what must be tried (a namespace, hugepages).
pub fn check(needs: &[Need]) -> Result<(), String> {
    let root_for = root_for(needs);
    if !root_for.is_empty() && !is_root() {
        return Err(format!("needs root for {}", root_for.join(" and ")));
    }
    if needs.contains(&Need::Tun) && !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun missing".into());
    }
    for tool in needs.iter().flat_map(Need::tools) {
        if !on_path(tool) {
            let package = package(tool).map_or(String::new(), |p| format!("package {p}; "));
            return Err(format!(
                "`{tool}` is not installed ({package}scripts/test.sh installs it)"
            ));
        }
    }
    if needs.contains(&Need::Netns) {
        netns_probe()?;
    }
    if needs.contains(&Need::Testpmd) {
        crate::testpmd::ensure_hugepages().map_err(|e| format!("hugepages unavailable: {e}"))?;
    }
    Ok(())
}

/// What root is needed for, each reason once.
fn root_for(needs: &[Need]) -> Vec<&'static str> {
    let mut v = Vec::new();
    for r in needs.iter().filter_map(Need::root_for) {
        if !v.contains(&r) {
            v.push(r);
        }
    }
    v
}

/// Whether `test` can run here (see [`check`]); when not, prints a loud
/// `SKIPPED: <test>: <reason>` line and returns false.
pub fn can_run(test: &str, needs: &[Need]) -> bool {
    match check(needs) {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIPPED: {test}: {why}");
            false
        }
    }
}

/// Whether the effective user is root.
pub fn is_root() -> bool {
    // The effective uid is the second field of "Uid:"; read here rather than via libc to
    // keep the check free of unsafe code.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether an executable file `bin` is in a directory of `$PATH`.
fn on_path(bin: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| {
        std::fs::metadata(d.join(bin))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Creates and deletes a namespace, once per process: root in a container may still lack
/// the right to.
fn netns_probe() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let name = format!("vswprobe{}", std::process::id());
            let out = Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
            }
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            Ok(())
        })
        .clone()
        .map_err(|e| format!("cannot create a network namespace: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_named_with_its_package() {
        let err = check(&[Need::Tool("surely-not-a-tool-here")]).unwrap_err();
        assert_eq!(
            err,
            "`surely-not-a-tool-here` is not installed (scripts/test.sh installs it)"
        );
        assert_eq!(package("ip"), Some("iproute2"));
    }

    #[test]
    fn nothing_needed_is_always_here() {
        assert_eq!(check(&[]), Ok(()));
        assert!(can_run("nothing_needed_is_always_here", &[]));
    }

    #[test]
    fn root_reasons_are_named_once_each() {
        let needs = [Need::Netns, Need::Tool("ping"), Need::Tun, Need::Netns];
        assert_eq!(root_for(&needs), ["network namespaces", "taps"]);
        assert!(root_for(&[Need::Tool("ping")]).is_empty());
    }
}
