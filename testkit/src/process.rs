//! Running host tools (apt-get, dpkg-deb, ldd, ip, iperf3, the ovs-* tools) with a bound on
//! their time, and background processes that do not outlive the test.

use std::io;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to its end or kills it after `timeout`; returns its output whatever its status.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {what}: {e}")))?;
    // Readers on threads: a chatty tool would otherwise block on a full pipe and never exit.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        io::Read::read_to_end(&mut out, &mut v).map(|_| v)
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        io::Read::read_to_end(&mut err, &mut v).map(|_| v)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} did not finish within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_t.join().expect("reader thread")?;
    let stderr = err_t.join().expect("reader thread")?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Like [`output_within`] but a non-zero status is an error carrying the tool's stderr.
pub(crate) fn run_within(cmd: &mut Command, timeout: Duration) -> io::Result<String> {
    let what = format!("{cmd:?}");
    let out = output_within(cmd, timeout)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Finds an executable in `$PATH` (plus the sbin directories, which a non-login root shell
/// may lack).
pub(crate) fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        });
    found
}

/// A child process killed on drop.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// Waits for the process to exit, at most `limit`; returns its output, or `None` on
    /// time-out (it is then killed).
    pub fn wait(mut self, limit: Duration) -> Option<Output> {
        let mut child = self.0.take()?;
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return child.wait_with_output().ok();
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
