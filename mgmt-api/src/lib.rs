//! The management plane of vswitch: the REST API served by `vswitchd`, its configuration
//! file, and the persistent state (bridges, ports, flows) that survives restarts.

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod metrics;
pub mod observe;
pub mod pcap;
pub mod service;
pub mod state;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

pub use config::DaemonConfig;

/// Starts the datapath from the saved state in `state_dir`, serves the API until `shutdown`
/// completes, then stops the datapath (closing its taps and sockets, detaching XDP programs).
pub async fn serve(
    cfg: DaemonConfig,
    state_dir: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let store = state::Store::open(state_dir).map_err(|e| e.to_string())?;
    let dir = state_dir.to_owned();
    let cfg2 = cfg.clone();
    let service = tokio::task::spawn_blocking(move || service::Service::start(&cfg2, store))
        .await
        .map_err(|e| e.to_string())??;
    tracing::info!(state = %dir.display(), "datapath started");
    let app = Arc::new(api::AppState {
        service,
        token: cfg.api.token.clone(),
    });
    let listener = tokio::net::TcpListener::bind(&cfg.api.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.api.listen))?;
    tracing::info!(listen = %cfg.api.listen, "REST API ready");
    let router = api::router(Arc::clone(&app), cfg.api.max_body_bytes);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("shutting down");
    // Stop the datapath on a blocking thread: it joins the PMD threads.
    tokio::task::spawn_blocking(move || drop(app))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
