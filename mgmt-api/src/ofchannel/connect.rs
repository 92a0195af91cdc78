//! Connections to and from configured controllers: an active target is dialled again after
//! every failure with exponential back-off (1 s doubling to 8 s, OVS's default
//! `max_backoff`); a passive target listens and serves every controller that connects.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::hub::Kind;
use super::session::{self, Peer};
use super::target::Target;
use crate::api::AppState;

/// First wait after a failed attempt.
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// An attempt to connect that takes longer has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps a connection to an active target (`tcp:`, `unix:`) until the task is aborted.
pub(super) async fn active(app: Arc<AppState>, bridge: String, target: Target) {
    let name = target.to_string();
    let peer = Peer {
        kind: Kind::Controller,
        target: Some(name.clone()),
    };
    let mut backoff = MIN_BACKOFF;
    // The last error logged, so a controller that stays away is reported once.
    let mut logged: Option<String> = None;
    loop {
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, async {
            match &target {
                Target::Tcp(a) => TcpStream::connect(a).await.map(|s| {
                    let _ = s.set_nodelay(true);
                    Stream::Tcp(s)
                }),
                Target::Unix(p) => UnixStream::connect(p).await.map(Stream::Unix),
                _ => unreachable!("passive targets are served by `passive`"),
            }
        })
        .await;
        let err = match attempt {
            Ok(Ok(stream)) => {
                logged = None;
                let up = Instant::now();
                let r = match stream {
                    Stream::Tcp(s) => {
                        session::serve(Arc::clone(&app), &bridge, peer.clone(), s).await
                    }
                    Stream::Unix(s) => {
                        session::serve(Arc::clone(&app), &bridge, peer.clone(), s).await
                    }
                };
                // A connection that lived past the back-off starts the next one afresh.
                if up.elapsed() > backoff {
                    backoff = MIN_BACKOFF;
                }
                match r {
                    Ok(()) => "connection closed by the controller".to_owned(),
                    Err(e) => e,
                }
            }
            Ok(Err(e)) => format!("cannot connect: {e}"),
            Err(_) => format!(
                "cannot connect: no answer in {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
        };
        if logged.as_ref() != Some(&err) {
            tracing::warn!(bridge = %bridge, target = %name, "OpenFlow controller: {err}; retrying with back-off");
            logged = Some(err.clone());
        }
        app.openflow.target_error(&bridge, &name, err);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Listens on a passive target (`ptcp:`, `punix:`) until the task is aborted; every accepted
/// connection is a controller of the bridge.
pub(super) async fn passive(app: Arc<AppState>, bridge: String, target: Target) {
    let name = target.to_string();
    let listener = loop {
        let bound = match &target {
            Target::Ptcp(a) => TcpListener::bind(a).await.map(Listener::Tcp),
            Target::Punix(p) => super::bind(p).map(Listener::Unix),
            _ => unreachable!("active targets are served by `active`"),
        };
        match bound {
            Ok(l) => break l,
            Err(e) => {
                let err = format!("cannot listen: {e}");
                tracing::error!(bridge = %bridge, target = %name, "OpenFlow controller: {err}");
                app.openflow.target_error(&bridge, &name, err);
                tokio::time::sleep(MAX_BACKOFF).await;
            }
        }
    };
    tracing::info!(bridge = %bridge, target = %name, "listening for OpenFlow controllers");
    let _cleanup = RemoveOnDrop(match &target {
        Target::Punix(p) => Some(p.clone()),
        _ => None,
    });
    let mut sessions = JoinSet::new();
    let peer = Peer {
        kind: Kind::Controller,
        target: Some(name.clone()),
    };
    loop {
        while sessions.try_join_next().is_some() {}
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
        };
        match accepted {
            Ok(stream) => {
                let (app, bridge, peer) = (Arc::clone(&app), bridge.clone(), peer.clone());
                sessions.spawn(async move {
                    let r = match stream {
                        Stream::Tcp(s) => session::serve(Arc::clone(&app), &bridge, peer.clone(), s).await,
                        Stream::Unix(s) => {
                            session::serve(Arc::clone(&app), &bridge, peer.clone(), s).await
                        }
                    };
                    if let Err(e) = r {
                        tracing::warn!(bridge = %bridge, target = ?peer.target, "OpenFlow connection closed: {e}");
                        if let Some(t) = &peer.target {
                            app.openflow.target_error(&bridge, t, e);
                        }
                    }
                });
            }
            Err(e) => {
                tracing::error!(bridge = %bridge, target = %name, "OpenFlow accept: {e}");
                tokio::time::sleep(MIN_BACKOFF).await;
            }
        }
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Removes a passive unix socket when its listener stops.
struct RemoveOnDrop(Option<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
