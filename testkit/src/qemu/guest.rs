//! A running QEMU guest: its process, temporary directory, console and QMP connections.

use super::config::GuestConfig;
use super::console::{tail, Console};
use super::image::GuestImage;
use super::qmp::Qmp;
use serde_json::{json, Value};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Default timeout of [`Guest::sh`].
const SH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long QEMU gets to create its sockets, answer QMP or exit on `quit`.
const QEMU_TIMEOUT: Duration = Duration::from_secs(10);

/// A QEMU guest booted from a [`GuestImage`]. Dropping it stops QEMU (QMP `quit`, then
/// SIGKILL after a short grace) and removes its temporary directory.
pub struct Guest {
    pub(super) config: GuestConfig,
    image: GuestImage,
    dir: PathBuf,
    child: Option<Child>,
    console: Option<Console>,
    qmp: Option<Qmp>,
}

impl Guest {
    /// Starts QEMU and waits (up to the config's `boot_timeout`) until the guest's shell
    /// answers; for a migration destination (`incoming`), only until QEMU listens.
    ///
    /// QEMU's output goes to `qemu.log` and the console's to `console.log` in the guest's
    /// temporary directory; errors quote the end of both.
    pub fn boot(image: &GuestImage, config: GuestConfig) -> io::Result<Guest> {
        let mut guest = Guest::spawn(image, config)?;
        if guest.config.incoming.is_none() {
            guest.wait_shell(guest.config.boot_timeout)?;
        }
        Ok(guest)
    }

    /// Starts QEMU and returns as soon as its console socket is up, without waiting for the
    /// guest; then call [`Guest::wait_shell`].
    ///
    /// For a vhost-user NIC on which QEMU listens: QEMU waits for the backend's connection
    /// before it starts the guest at all, so a test that adds the switch's
    /// `vhostuserclient` port only once QEMU's socket exists spawns, adds the port, then
    /// waits for the shell.
    pub fn spawn(image: &GuestImage, config: GuestConfig) -> io::Result<Guest> {
        static N: AtomicU32 = AtomicU32::new(0);
        // Short: unix socket paths must fit in 108 bytes.
        let dir = std::env::temp_dir().join(format!(
            "tkq-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let mut guest = Guest {
            config,
            image: image.clone(),
            dir,
            child: None,
            console: None,
            qmp: None,
        };
        guest.start()?;
        Ok(guest)
    }

    /// Boots a migration destination for this guest: same configuration, listening on a
    /// free local port. A tap NIC (busy while the source holds it) or a vhost-user NIC on
    /// which QEMU listens needs its own name or socket on the destination: build that
    /// configuration by hand instead (clone [`Guest::config`], set `incoming`).
    pub fn boot_destination(&self) -> io::Result<Guest> {
        let mut config = self.config.clone();
        config.name = format!("{}-dst", config.name);
        config.incoming = Some(super::free_local_port()?);
        Guest::boot(&self.image, config)
    }

    /// Kills QEMU (if running) and boots a new one with the same configuration, as after a
    /// crash of the VM; waits for the shell as [`Guest::boot`] does.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill9();
        self.start()?;
        if self.config.incoming.is_none() {
            self.wait_shell(self.config.boot_timeout)?;
        }
        Ok(())
    }

    /// The configuration the guest was booted with.
    pub fn config(&self) -> &GuestConfig {
        &self.config
    }

    /// The guest's temporary directory (sockets and logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// QEMU's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("qemu.log")
    }

    /// QEMU's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether QEMU is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills QEMU with SIGKILL and reaps it (as a crash would end it).
    pub fn kill9(&mut self) {
        self.console = None;
        self.qmp = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops QEMU cleanly (QMP `quit`), killing it if it has not exited in a few seconds.
    pub fn shutdown(&mut self) {
        if self.is_running() {
            // Briefly: a QEMU still waiting for its vhost-user backend does not answer QMP.
            let _ = self.qmp_within(json!({"execute": "quit"}), Duration::from_secs(2));
            if let Some(child) = self.child.as_mut() {
                let deadline = Instant::now() + Duration::from_secs(3);
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        self.kill9();
    }

    /// Runs `cmd` with `sh -c` in the guest and returns its exit status and its output
    /// (stdout and stderr merged, CRs removed, final newline trimmed).
    ///
    /// Each command runs in a fresh `sh -c` with stdin from /dev/null: `cd` and variables do
    /// not carry over, and a background process must send its output elsewhere (a file,
    /// `>/dev/null`), else it lands in later commands' output. On timeout the command is
    /// interrupted with ^C and the error is `TimedOut`. Kernel messages are limited to
    /// emergencies (`dmesg -n 1` at boot), so they rarely land in an output.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> io::Result<(i32, String)> {
        let result = match self.console() {
            Ok(console) => console.run(cmd, timeout),
            Err(e) => Err(e),
        };
        result.map_err(|e| self.error_kind(e.kind(), &format!("run {cmd:?}: {e}")))
    }

    /// Runs `cmd` (60 s at most) and returns its output; panics with the output on a
    /// non-zero status or an error.
    pub fn sh(&mut self, cmd: &str) -> String {
        match self.run(cmd, SH_TIMEOUT) {
            Ok((0, out)) => out,
            Ok((status, out)) => panic!(
                "guest {}: `{cmd}` exited with {status}:\n{out}",
                self.config.name
            ),
            Err(e) => panic!("guest {}: {e}", self.config.name),
        }
    }

    /// Writes `line` and a newline to the console without waiting for anything, for
    /// commands that do not return (`reboot -f`).
    pub fn send_line(&mut self, line: &str) -> io::Result<()> {
        self.console()?.send(format!("{line}\n").as_bytes())
    }

    /// Waits until the guest's shell answers (after boot, reboot or migration).
    pub fn wait_shell(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            if !self.is_running() {
                return Err(self.error("QEMU exited while waiting for the guest's shell"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = match self.console() {
                // A probe that goes unanswered (no shell yet) is interrupted and retried.
                Ok(c) => c.run("echo ready", left.min(Duration::from_millis(1500))),
                Err(e) => Err(e),
            };
            match attempt {
                Ok((0, out)) if out == "ready" => return Ok(()),
                Ok(other) => last = format!("probe answered {other:?}"),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(self.error(&format!("waiting for the shell: {e}")))
                }
                Err(e) => {
                    last = e.to_string();
                    // Not connected yet: do not spin.
                    if self.console.is_none() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }
        Err(self.error_kind(
            io::ErrorKind::TimedOut,
            &format!("no shell within {timeout:?} (last attempt: {last})"),
        ))
    }

    /// Reboots the guest (`reboot -f`, a reset inside the same QEMU) and waits for the new
    /// shell; checks the kernel's boot id changed, so the old shell cannot be mistaken for
    /// the new one.
    pub fn reboot(&mut self, timeout: Duration) -> io::Result<()> {
        let boot_id = |g: &mut Guest| g.run("cat /proc/sys/kernel/random/boot_id", SH_TIMEOUT);
        let before = boot_id(self)?;
        self.send_line("reboot -f")?;
        let deadline = Instant::now() + timeout;
        loop {
            self.wait_shell(deadline.saturating_duration_since(Instant::now()))?;
            if boot_id(self)? != before {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.error("reboot: the guest did not reboot"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends a QMP command (e.g. `json!({"execute": "query-status"})`) and returns its
    /// `return` value; a QMP error is an `io::Error` with QEMU's description. Connects (and
    /// negotiates capabilities) on first use; asynchronous events are kept for
    /// [`Guest::qmp_events`].
    pub fn qmp(&mut self, command: Value) -> io::Result<Value> {
        self.qmp_within(command, QEMU_TIMEOUT)
    }

    fn qmp_within(&mut self, command: Value, timeout: Duration) -> io::Result<Value> {
        if self.qmp.is_none() {
            let qmp = Qmp::connect(&self.dir.join("qmp.sock"), timeout)
                .map_err(|e| self.error_kind(e.kind(), &format!("QMP connect: {e}")))?;
            self.qmp = Some(qmp);
        }
        let qmp = self.qmp.as_mut().expect("connected above");
        let result = qmp.execute(&command, timeout);
        if matches!(&result, Err(e) if e.kind() != io::ErrorKind::Other) {
            // A broken connection: reconnect next time.
            self.qmp = None;
        }
        result
    }

    /// The QMP events received so far (drained).
    pub fn qmp_events(&mut self) -> Vec<Value> {
        self.qmp
            .as_mut()
            .map(|q| std::mem::take(&mut q.events))
            .unwrap_or_default()
    }

    /// An error carrying `what`, where QEMU's log is, and the ends of its log and console.
    pub(super) fn error(&self, what: &str) -> io::Error {
        self.error_kind(io::ErrorKind::Other, what)
    }

    /// [`Guest::error`] of a given kind (`TimedOut` stays `TimedOut` for callers).
    pub(super) fn error_kind(&self, kind: io::ErrorKind, what: &str) -> io::Error {
        let console = tail(&self.dir.join("console.log"), 1500);
        io::Error::new(
            kind,
            format!(
                "guest {}: {what}\n--- {} (end) ---\n{}\n--- console (end) ---\n{console}",
                self.config.name,
                self.log_path().display(),
                tail(&self.log_path(), 1500),
            ),
        )
    }

    fn console(&mut self) -> io::Result<&mut Console> {
        if self.console.is_none() {
            let c = Console::connect(
                &self.dir.join("console.sock"),
                &self.dir.join("console.log"),
            )?;
            self.console = Some(c);
        }
        Ok(self.console.as_mut().expect("connected above"))
    }

    /// Starts QEMU and connects to its console (and for a migration destination, checks
    /// over QMP that it listens); does not wait for the guest.
    fn start(&mut self) -> io::Result<()> {
        for sock in ["console.sock", "qmp.sock"] {
            let _ = fs::remove_file(self.dir.join(sock));
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let cmd = self.command();
        let child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", cmd[0])))?;
        self.child = Some(child);

        // The sockets appear once QEMU has parsed its options.
        let deadline = Instant::now() + QEMU_TIMEOUT;
        loop {
            if !self.is_running() {
                return Err(self.error("QEMU exited at start"));
            }
            match self.console() {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(self.error(&format!("console socket: {e}"))),
            }
        }
        if self.config.incoming.is_some() {
            let status = self.qmp(json!({"execute": "query-status"}))?;
            if status["status"] != "inmigrate" {
                return Err(self.error(&format!("incoming guest in state {status}")));
            }
        }
        Ok(())
    }

    fn command(&self) -> Vec<String> {
        let c = &self.config;
        let mut append = String::from("console=ttyS0 quiet");
        for a in &c.kernel_args {
            append.push(' ');
            append.push_str(a);
        }
        let mut args: Vec<String> = vec![
            "qemu-system-x86_64".into(),
            "-name".into(),
            c.name.clone(),
            "-machine".into(),
            format!("q35,accel={}", super::accel()),
            "-cpu".into(),
            "max".into(),
            "-smp".into(),
            c.smp.to_string(),
            "-m".into(),
            format!("{}M", c.memory_mb),
            // vhost-user backends map guest memory: it must be a shared file mapping.
            "-object".into(),
            format!("memory-backend-memfd,id=mem,size={}M,share=on", c.memory_mb),
            "-numa".into(),
            "node,memdev=mem".into(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-kernel".into(),
            self.image.kernel.display().to_string(),
            "-initrd".into(),
            self.image.initrd.display().to_string(),
            "-append".into(),
            append,
            "-chardev".into(),
            format!(
                "socket,id=ser0,path={},server=on,wait=off",
                self.dir.join("console.sock").display()
            ),
            "-serial".into(),
            "chardev:ser0".into(),
            "-qmp".into(),
            format!(
                "unix:{},server=on,wait=off",
                self.dir.join("qmp.sock").display()
            ),
        ];
        args.extend(c.nic_args());
        if let Some(port) = c.incoming {
            args.push("-incoming".into());
            args.push(format!("tcp:127.0.0.1:{port}"));
        }
        args
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.shutdown();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
