//! The OpenFlow channel: a passive unix socket per bridge at `RUN_DIR/BRIDGE.mgmt`, as Open
//! vSwitch has, so `ovs-ofctl dump-flows unix:RUN_DIR/br0.mgmt` (or `ovs-ofctl dump-flows br0`
//! with `OVS_RUNDIR=RUN_DIR`) programs the same rule tables as the REST API.
//!
//! A supervisor keeps one listener per bridge: it looks at the bridges every
//! [`RECONCILE_EVERY`] and opens or closes sockets to match, so bridges restored at start,
//! added or deleted over REST all get theirs without the bridge code knowing about OpenFlow.
//! The same supervisor keeps each bridge's controller connections (`set-controller`) and
//! listeners (`connect`), its table-miss behaviour with the fail mode (`fail_mode`), and
//! reports port changes to the connections (`port_status`). Each connection is served by
//! `session`; what connections share is in [`hub`].

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use switch_core::SwitchEvent;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UnixListener;
use tokio::task::{AbortHandle, JoinSet};
use vmm_sys_util::eventfd::EventFd;

use crate::api::AppState;

mod connect;
mod fail_mode;
pub mod hub;
mod port_status;
mod session;
pub mod target;

use target::Target;

/// How often the supervisor compares its listeners with the bridges.
pub const RECONCILE_EVERY: Duration = Duration::from_millis(200);

/// The path of a bridge's OpenFlow socket.
pub fn socket_path(run_dir: &Path, bridge: &str) -> PathBuf {
    run_dir.join(format!("{bridge}.mgmt"))
}

/// Binds `path` with mode 0600 (the socket is the access control, as the REST API's), replacing
/// a stale socket of an earlier run; any other file there is left alone.
fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(std::io::Error::other(
                "a file that is not a socket is in the way",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves every bridge's OpenFlow socket and controllers until the task is aborted.
/// Listeners, controller connections and their sessions are tasks of sets this task owns, so
/// aborting it ends them all (and with them their references to the service, which the
/// daemon waits for before stopping the datapath).
pub async fn supervise(app: Arc<AppState>, run_dir: PathBuf) {
    let mut tasks = JoinSet::new();
    let mut listeners: BTreeMap<String, AbortHandle> = BTreeMap::new();
    // Bridges whose socket could not be bound, so the error is logged once.
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    // Controller connections and passive listeners, by bridge and target.
    let mut controllers: BTreeMap<(String, String), AbortHandle> = BTreeMap::new();
    let mut ports = port_status::Tracker::default();
    tasks.spawn(relay(
        Arc::clone(&app.openflow),
        app.service.switch().events(),
        app.service.switch().events_ready(),
    ));
    let mut miss = fail_mode::Applied::default();
    loop {
        let bridges = app.service.bridges();
        listeners.retain(|name, task| {
            let keep = bridges.contains(name);
            if !keep {
                task.abort();
                let _ = std::fs::remove_file(socket_path(&run_dir, name));
                app.openflow.forget_bridge(name);
            }
            keep
        });
        failed.retain(|name, _| bridges.contains(name));
        let mut wanted: BTreeMap<(String, String), Target> = BTreeMap::new();
        for b in &bridges {
            if !listeners.contains_key(b) {
                let path = socket_path(&run_dir, b);
                match bind(&path) {
                    Ok(l) => {
                        failed.remove(b);
                        tracing::info!(bridge = %b, socket = %path.display(), "OpenFlow channel ready");
                        let task = tasks.spawn(accept(Arc::clone(&app), b.clone(), l));
                        listeners.insert(b.clone(), task);
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if failed.get(b) != Some(&msg) {
                            tracing::error!(bridge = %b, socket = %path.display(),
                                "cannot open the OpenFlow socket: {msg}");
                            failed.insert(b.clone(), msg);
                        }
                    }
                }
            }
            let Ok(settings) = app.service.controller_settings(b) else {
                continue;
            };
            let names: Vec<String> = settings.targets.iter().map(Target::to_string).collect();
            app.openflow.retain_targets(b, &names);
            for t in settings.targets.iter() {
                wanted.insert((b.clone(), t.to_string()), t.clone());
            }
            miss.apply(&app, b, &settings);
            ports.poll(&app, b);
        }
        controllers.retain(|key, task| {
            let keep = wanted.contains_key(key);
            if !keep {
                tracing::info!(bridge = %key.0, target = %key.1, "OpenFlow controller removed");
                task.abort();
            }
            keep
        });
        for (key, target) in wanted {
            if controllers.contains_key(&key) {
                continue;
            }
            let (app, bridge) = (Arc::clone(&app), key.0.clone());
            let task = if target.is_passive() {
                tasks.spawn(connect::passive(app, bridge, target))
            } else {
                tasks.spawn(connect::active(app, bridge, target))
            };
            controllers.insert(key, task);
        }
        miss.retain(&bridges);
        ports.retain(&bridges);
        // Reap finished tasks (none finish but by abort) so the set does not grow.
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
            _ = app.openflow.changed.notified() => {}
        }
    }
}

/// Hands the datapath's events (packet-ins, flow removals) to the bridges' connections
/// through the hub, until the task is aborted. It waits on the switch's eventfd, so an event
/// wakes a runtime worker directly (no thread in between); the datapath's queue is bounded and
/// the hub's fan-out never blocks, so the PMDs never wait for a connection.
async fn relay(hub: Arc<hub::Hub>, switch_events: Receiver<SwitchEvent>, ready: Arc<EventFd>) {
    let ready = match watch(ready) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!("cannot wait for the datapath's events: {e}; packet-ins are lost");
            return;
        }
    };
    loop {
        while let Ok(ev) = switch_events.try_recv() {
            match ev {
                SwitchEvent::PacketIn(p) => {
                    let b = Arc::clone(&p.bridge);
                    hub.publish(&b, hub::Event::PacketIn(p));
                }
                SwitchEvent::FlowRemoved(f) => {
                    let b = Arc::clone(&f.bridge);
                    hub.publish(&b, hub::Event::FlowRemoved(f));
                }
            }
        }
        match ready.readable().await {
            Ok(mut guard) => {
                // Clear the count first: an event queued after it signals again.
                let _ = guard.get_inner().0.read();
                guard.clear_ready();
            }
            Err(e) => {
                tracing::error!("waiting for the datapath's events: {e}");
                tokio::time::sleep(RECONCILE_EVERY).await;
            }
        }
    }
}

/// Registers the switch's event eventfd with the runtime's reactor.
// The one unsafe call of this crate: tokio's registration of a raw descriptor.
#[allow(unsafe_code)]
fn watch(ready: Arc<EventFd>) -> std::io::Result<AsyncFd<Ready>> {
    // SAFETY: `Ready` owns a reference to the EventFd, so the descriptor stays open (and is
    // not reused for anything else) for as long as the `AsyncFd` holding it exists; it is
    // only deregistered by dropping that `AsyncFd`, before the last reference can go.
    unsafe { AsyncFd::register_with_interest(Ready(ready), Interest::READABLE) }
        .map_err(std::io::Error::from)
}

/// The switch's event eventfd, as `AsyncFd` wants it.
struct Ready(Arc<EventFd>);

impl std::os::fd::AsRawFd for Ready {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

async fn accept(app: Arc<AppState>, bridge: String, listener: UnixListener) {
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                let (app, bridge) = (Arc::clone(&app), bridge.clone());
                sessions.spawn(async move {
                    let peer = session::Peer {
                        kind: hub::Kind::Service,
                        target: None,
                    };
                    if let Err(e) = session::serve(app, &bridge, peer, stream).await {
                        // A controller that misbehaves breaks only its own connection.
                        tracing::warn!(bridge = %bridge, "OpenFlow connection closed: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::error!(bridge = %bridge, "OpenFlow accept: {e}");
                tokio::time::sleep(RECONCILE_EVERY).await;
            }
        }
    }
}
