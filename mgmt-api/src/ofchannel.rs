//! The OpenFlow channel: a passive unix socket per bridge at `RUN_DIR/BRIDGE.mgmt`, as Open
//! vSwitch has, so `ovs-ofctl dump-flows unix:RUN_DIR/br0.mgmt` (or `ovs-ofctl dump-flows br0`
//! with `OVS_RUNDIR=RUN_DIR`) programs the same rule tables as the REST API.
//!
//! A supervisor keeps one listener per bridge: it looks at the bridges every
//! [`RECONCILE_EVERY`] and opens or closes sockets to match, so bridges restored at start,
//! added or deleted over REST all get theirs without the bridge code knowing about OpenFlow.
//! Each connection is served by [`session`].

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::task::{AbortHandle, JoinSet};

use crate::api::AppState;

mod session;

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

/// Serves every bridge's OpenFlow socket until the task is aborted. Listeners and their
/// connections are tasks of sets this task owns, so aborting it ends them all (and with them
/// their references to the service, which the daemon waits for before stopping the datapath).
pub async fn supervise(app: Arc<AppState>, run_dir: PathBuf) {
    let mut tasks = JoinSet::new();
    let mut listeners: BTreeMap<String, AbortHandle> = BTreeMap::new();
    // Bridges whose socket could not be bound, so the error is logged once.
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let bridges = app.service.bridges();
        listeners.retain(|name, task| {
            let keep = bridges.contains(name);
            if !keep {
                task.abort();
                let _ = std::fs::remove_file(socket_path(&run_dir, name));
            }
            keep
        });
        failed.retain(|name, _| bridges.contains(name));
        for b in bridges {
            if listeners.contains_key(&b) {
                continue;
            }
            let path = socket_path(&run_dir, &b);
            match bind(&path) {
                Ok(l) => {
                    failed.remove(&b);
                    tracing::info!(bridge = %b, socket = %path.display(), "OpenFlow channel ready");
                    let task = tasks.spawn(accept(Arc::clone(&app), b.clone(), l));
                    listeners.insert(b, task);
                }
                Err(e) => {
                    let msg = e.to_string();
                    if failed.get(&b) != Some(&msg) {
                        tracing::error!(bridge = %b, socket = %path.display(),
                            "cannot open the OpenFlow socket: {msg}");
                        failed.insert(b, msg);
                    }
                }
            }
        }
        // Reap finished listeners (none finish but by abort) so the set does not grow.
        while tasks.try_join_next().is_some() {}
        tokio::time::sleep(RECONCILE_EVERY).await;
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
                    if let Err(e) = session::serve(app, &bridge, stream).await {
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
