//! The control thread of a vhost-user port: accepts (server mode) or makes (client mode) the
//! connection to the frontend and serves its protocol messages, again after every disconnect.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vhost::vhost_user::BackendReqHandler;

use super::config::VhostMode;
use super::device::{Device, Handler};
use super::intercept;

/// How often the thread looks at its stop flag while waiting.
const TICK: Duration = Duration::from_millis(50);
/// How long a connected VM whose driver started may forward nothing before the log says why.
const IDLE_WARNING: Duration = Duration::from_secs(10);

/// The running control thread; stops it (and removes a server socket) when dropped.
pub(crate) struct Conn {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    dev: Arc<Device>,
}

impl Conn {
    /// Creates the socket (server mode) and starts the thread.
    pub(crate) fn start(dev: Arc<Device>) -> io::Result<Conn> {
        let listener = match dev.cfg.mode {
            VhostMode::Server => Some(listen(&dev)?),
            VhostMode::Client => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (dev, stop) = (Arc::clone(&dev), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("vhost-{}", dev.cfg.name))
                .spawn(move || run(&dev, listener.as_ref(), &stop))?
        };
        Ok(Conn {
            stop,
            thread: Some(thread),
            dev,
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.dev.cfg.mode == VhostMode::Server {
            let _ = std::fs::remove_file(&self.dev.cfg.socket);
        }
    }
}

/// Binds the server socket, replacing a stale one (a socket file nobody listens on) but never
/// another kind of file.
fn listen(dev: &Device) -> io::Result<UnixListener> {
    let path = &dev.cfg.socket;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by another process", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(dev.cfg.socket_mode))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Waits up to `TICK` for `fd` to become readable.
fn readable(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, TICK.as_millis() as i32) };
    n > 0
}

fn run(dev: &Arc<Device>, listener: Option<&UnixListener>, stop: &AtomicBool) {
    let mut next_try = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener {
            Some(l) => {
                if !readable(l.as_raw_fd()) {
                    continue;
                }
                match l.accept() {
                    Ok((s, _)) => s,
                    Err(_) => continue,
                }
            }
            None => {
                let now = Instant::now();
                if now < next_try {
                    std::thread::sleep(TICK.min(next_try - now));
                    continue;
                }
                next_try = now + dev.cfg.reconnect_interval;
                match UnixStream::connect(&dev.cfg.socket) {
                    Ok(s) => s,
                    Err(_) => continue,
                }
            }
        };
        serve(dev, stream, stop);
    }
}

/// Whether the guest's driver has set the device up (features and memory) and still no
/// queue runs. A migration's destination waits without memory until the VM arrives.
fn idle(dev: &Device) -> bool {
    dev.features.load(Ordering::Relaxed) != 0
        && dev.has_memory.load(Ordering::Relaxed)
        && dev.rx_ready.load(Ordering::Relaxed) == 0
        && dev.tx_ready.load(Ordering::Relaxed) == 0
}

/// Serves one frontend until it disconnects, breaks the protocol, or the port goes.
fn serve(dev: &Arc<Device>, stream: UnixStream, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let fd = stream.as_raw_fd();
    // The same socket, for the messages taken before the crate sees them.
    let Ok(mut early) = stream.try_clone() else {
        return;
    };
    let handler = Arc::new(Mutex::new(Handler::new(Arc::clone(dev))));
    let mut req = BackendReqHandler::from_stream(stream, Arc::clone(&handler));
    dev.connected.store(true, Ordering::Release);
    dev.connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(port = %dev.cfg.name, "vhost-user: frontend connected");
    let connected_at = Instant::now();
    let mut warned = false;
    let why = loop {
        if stop.load(Ordering::Relaxed) {
            break "the port is going away".to_owned();
        }
        // Once per connection, when no queue has run yet (a stopped queue after it ran, as
        // on a migration's source, is not this).
        if !warned
            && (dev.rx_ready.load(Ordering::Relaxed) | dev.tx_ready.load(Ordering::Relaxed)) != 0
        {
            warned = true;
        }
        if !warned && connected_at.elapsed() > IDLE_WARNING && idle(dev) {
            warned = true;
            let why = handler.lock().unwrap_or_else(|e| e.into_inner()).why_idle();
            tracing::warn!(
                port = %dev.cfg.name,
                "vhost-user: VM connected for {}s but no queue runs: {why}",
                IDLE_WARNING.as_secs()
            );
        }
        if !readable(fd) {
            continue;
        }
        let taken = {
            let mut h = handler.lock().unwrap_or_else(|e| e.into_inner());
            intercept::take(&mut early, &mut *h)
        };
        match taken {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => break format!("socket error: {e}"),
        }
        match req.handle_request() {
            Ok(()) => {}
            Err(
                vhost::vhost_user::Error::Disconnected | vhost::vhost_user::Error::PartialMessage,
            ) => {
                break "the frontend disconnected".to_owned();
            }
            Err(e) => {
                // A message the crate refused before the handler saw it (unknown, malformed,
                // a feature not negotiated): the frontend and the switch disagree on the
                // protocol, so the connection goes and the frontend may start again.
                dev.refuse("dropping the connection", &e);
                break format!("protocol error: {e}");
            }
        }
    };
    tracing::info!(port = %dev.cfg.name, "vhost-user: connection closed: {why}");
    // Stop every queue before the memory goes away with the connection.
    handler.lock().unwrap_or_else(|e| e.into_inner()).reset();
    dev.connected.store(false, Ordering::Release);
}
