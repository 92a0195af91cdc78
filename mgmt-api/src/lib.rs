//! The management plane of vswitch: the REST API served by `vswitchd`, its configuration
//! file, and the persistent state (bridges, ports, flows) that survives restarts.

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod limits;
pub mod ofchannel;
pub mod service;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

pub use config::DaemonConfig;
/// The port types `POST /bridges/{bridge}/ports` takes, for clients that spell them.
pub use ports::PortType;

/// Starts the datapath from the saved state in `state_dir`, serves the API until `shutdown`
/// completes, then stops the datapath (closing its taps and sockets, detaching XDP programs).
pub async fn serve(
    cfg: DaemonConfig,
    state_dir: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let store =
        service::state::Store::open_with(state_dir, cfg.state.sync).map_err(|e| e.to_string())?;
    let dir = state_dir.to_owned();
    let cfg2 = cfg.clone();
    let service = tokio::task::spawn_blocking(move || service::Service::start(&cfg2, store))
        .await
        .map_err(|e| e.to_string())??;
    tracing::info!(state = %dir.display(), "datapath started");
    let app = Arc::new(api::AppState {
        service,
        openflow: Default::default(),
        token: cfg.api.token.clone(),
    });
    let router = limits::limit_clients(
        api::router(Arc::clone(&app), cfg.api.max_body_bytes),
        cfg.api.max_clients,
    );
    let openflow = tokio::spawn(ofchannel::supervise(
        Arc::clone(&app),
        cfg.datapath.run_dir.clone(),
    ));
    if let Some(path) = cfg.api.unix_path() {
        let listener = listen_unix(path)?;
        tracing::info!(listen = %cfg.api.listen, "REST API ready");
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(path);
    } else {
        let listener = tokio::net::TcpListener::bind(&cfg.api.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", cfg.api.listen))?;
        tracing::info!(listen = %cfg.api.listen, "REST API ready");
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| e.to_string())?;
    }
    tracing::info!("shutting down");
    openflow.abort();
    let _ = openflow.await;
    // Aborted OpenFlow connections release their reference to the service as the runtime
    // drops them; the datapath stops below once this is the last one.
    for _ in 0..100 {
        if Arc::strong_count(&app) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Stop the datapath on a blocking thread: it joins the PMD threads.
    tokio::task::spawn_blocking(move || drop(app))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Binds the API's unix socket with mode 0600: the socket is the only access control, so only
/// the daemon's user may connect. A stale socket of an earlier run is replaced; any other file
/// at that path is left alone and reported.
fn listen_unix(path: &Path) -> Result<tokio::net::UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let err = |e: std::io::Error| format!("cannot listen on unix:{}: {e}", path.display());
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(err)?,
        Ok(_) => {
            return Err(format!(
                "cannot listen on unix:{}: a file that is not a socket is in the way",
                path.display()
            ))
        }
        Err(_) => {}
    }
    // Created under a umask that leaves no access to others, then narrowed to 0600, so there is
    // no moment where someone else could connect.
    // The old mask is restored right after the bind.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = tokio::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(listener)
}
