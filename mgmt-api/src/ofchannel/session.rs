//! One OpenFlow connection: HELLO and version negotiation (1.0 or 1.3), then requests answered
//! in order, asynchronous messages (packet-ins, flow removals, port changes) sent as they
//! come, and, on controller connections, echo keepalives. Anything unsupported gets the ERROR
//! a switch sends for it, so tools fail fast instead of waiting. Requests are handled in order
//! (what arrived together as one batch, see [`batch`]), so a BARRIER's reply follows
//! everything before it.
//!
//! The stream is cut into messages by [`framer`], whose reads are cancel-safe, so waiting for
//! the next message, the next event and the keepalive timer is one `select!`. Requests are
//! answered in [`handle`], bundles kept in [`bundles`], events turned into messages in
//! [`async_msgs`].

use std::sync::Arc;
use std::time::Duration;

use flow_table::RuleFilter;
use openflow::async_config::AsyncConfig;
use openflow::echo::echo_request;
use openflow::error::{encode_error, FlowModFailed};
use openflow::features::PhyPort;
use openflow::hello::{encode_hello, negotiate, Hello};
use openflow::request::ParseOptions;
use openflow::{ErrorCode, FlowMod, FlowModCommand, Version};
use switch_core::{Visibility, LOCAL_PORT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::hub::{ConnInfo, Kind, Role};

mod async_msgs;
mod batch;
mod bundles;
mod framer;
mod handle;
use crate::api::{service_call, AppState};
use crate::service::ServiceError;

/// The versions vswitch speaks, as its HELLO offers them.
const VERSIONS: [Version; 2] = [Version::Of10, Version::Of13];
/// OFPC_FLOW_STATS | OFPC_TABLE_STATS | OFPC_PORT_STATS.
const CAPABILITIES: u32 = 1 | 2 | 4;
/// Tables a controller may use (0–253), as Open vSwitch reports.
const N_TABLES: u8 = 254;
/// A controller connection silent this long is sent an ECHO_REQUEST; silent as long again
/// after it, the connection is dropped (OVS's default `inactivity_probe`).
pub(super) const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// The peer's HELLO must come within this.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages handled as one batch (see `batch.rs`): those already read, up to this many.
const MAX_BATCH: usize = 1024;

/// Who is at the other end.
#[derive(Clone, Debug)]
pub(super) struct Peer {
    /// Service (`.mgmt` socket) or controller.
    pub kind: Kind,
    /// The configured target the connection belongs to.
    pub target: Option<String>,
}

/// A connection's own state.
struct Conn {
    app: Arc<AppState>,
    bridge: String,
    version: Version,
    /// Its entry in the hub.
    id: u64,
    /// How its messages decode (Nicira extensions it turned on).
    opts: ParseOptions,
    /// Which asynchronous messages it wants (SET_ASYNC).
    async_cfg: AsyncConfig,
    /// Open bundles (ONF's extension).
    bundles: bundles::Bundles,
}

/// Serves a connection until the peer closes it (`Ok`) or breaks the protocol (`Err`).
pub(super) async fn serve<S>(
    app: Arc<AppState>,
    bridge: &str,
    peer: Peer,
    stream: S,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut input = framer::Framer::default();
    // Subscribed before HELLO so nothing that happens during the handshake is missed.
    let mut events = app.openflow.subscribe(bridge);
    wr.write_all(&encode_hello(&VERSIONS, 0))
        .await
        .map_err(|e| e.to_string())?;
    let hello_by = Instant::now() + HELLO_TIMEOUT;
    let first = loop {
        if let Some(m) = input.next()? {
            break m;
        }
        match tokio::time::timeout_at(hello_by, rd.read_buf(input.buf_mut())).await {
            Err(_) => return Err("no HELLO within 10 s".into()),
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
        }
    };
    let hello = Hello::parse(&first).map_err(|e| format!("expected HELLO: {e}"))?;
    let version = match negotiate(&hello, &VERSIONS) {
        Ok(v) => v,
        Err(error) => {
            let _ = wr.write_all(&error).await;
            return Err(format!(
                "no common OpenFlow version (peer offers {:#04x})",
                hello.version
            ));
        }
    };
    let registration = app.openflow.register(
        bridge,
        ConnInfo {
            kind: peer.kind,
            target: peer.target.clone(),
            version,
            role: Role::Equal,
            // OpenFlow's default for controllers; a service connection asks for packets.
            miss_send_len: if peer.kind == Kind::Controller {
                128
            } else {
                0
            },
        },
    );
    let mut conn = Conn {
        app: Arc::clone(&app),
        bridge: bridge.to_owned(),
        version,
        id: registration.id,
        // vswitch answers Nicira's flow statistics, so it takes the NXM flow format.
        opts: ParseOptions {
            flow_mod_table_id: false,
            nxm: true,
        },
        async_cfg: AsyncConfig::default(),
        bundles: bundles::Bundles::default(),
    };
    tracing::info!(bridge, peer = ?peer.target, ?version, "OpenFlow connection up");
    let probe = peer.kind == Kind::Controller;
    let mut last_rx = Instant::now();
    let mut echo_sent: Option<Instant> = None;
    let mut echo_xid = 0u32;
    loop {
        let wake = match echo_sent {
            Some(t) => t + PROBE_INTERVAL,
            None => last_rx + PROBE_INTERVAL,
        };
        // Everything already read is handled as one batch, so that a stream of flow mods
        // costs one change of the rule tables, not one each.
        let mut batch = Vec::new();
        let mut broken = None;
        while batch.len() < MAX_BATCH {
            match input.next() {
                Ok(Some(m)) => batch.push(m),
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let replies = conn.handle_batch(batch).await;
            if !replies.is_empty() {
                wr.write_all(&replies.concat())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if let Some(e) = broken {
                return Err(e);
            }
            continue;
        }
        if let Some(e) = broken {
            return Err(e);
        }
        tokio::select! {
            n = rd.read_buf(input.buf_mut()) => {
                match n {
                    Ok(0) if input.is_partial() => return Err("message cut short by the end of the stream".into()),
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
                last_rx = Instant::now();
                echo_sent = None;
            }
            ev = events.recv() => match ev {
                Ok(ev) => {
                    // Events that are already queued go out in the same write.
                    let mut out = conn.encode_event(&ev).unwrap_or_default();
                    for _ in 0..MAX_BATCH {
                        match events.try_recv() {
                            Ok(ev) => out.extend(conn.encode_event(&ev).unwrap_or_default()),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                tracing::warn!(bridge, "OpenFlow connection fell behind: {n} asynchronous messages lost");
                            }
                            Err(_) => break,
                        }
                    }
                    if !out.is_empty() {
                        wr.write_all(&out).await.map_err(|e| e.to_string())?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(bridge, "OpenFlow connection fell behind: {n} asynchronous messages lost");
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = tokio::time::sleep_until(wake), if probe => {
                if echo_sent.is_some() {
                    return Err(format!("no answer to the inactivity probe in {} s", PROBE_INTERVAL.as_secs() * 2));
                }
                echo_xid = echo_xid.wrapping_add(1);
                wr.write_all(&echo_request(version, echo_xid, &[])).await.map_err(|e| e.to_string())?;
                echo_sent = Some(Instant::now());
            }
        }
    }
}

/// The xid of a whole message (0 when it is too short to have one).
fn xid_of(msg: &[u8]) -> u32 {
    msg.get(4..8)
        .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

/// The ERROR for `msg` (which carries its first bytes).
fn error(version: Version, xid: u32, code: ErrorCode, msg: &[u8]) -> Vec<Vec<u8>> {
    vec![encode_error(version, xid, code, msg)]
}

/// Applies a flow mod to the bridge's rules (through the service, so it is recorded).
fn apply_flow_mod(
    s: &crate::service::Service,
    bridge: &str,
    version: Version,
    fm: &FlowMod,
) -> Result<(), ServiceError> {
    let strict = fm.command.is_strict();
    match fm.command {
        // As OVS's barrier: once the tables have it (the PMDs drop stale cached decisions
        // right after, without being waited for).
        FlowModCommand::Add => s
            .add_rules_visible(bridge, vec![fm.to_rule_spec()], None, Visibility::Tables)
            .map(drop),
        FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
            let n = s.mod_rules(bridge, &fm.to_rule_filter(), &fm.actions, strict)?;
            // OpenFlow 1.0: a modify that finds nothing adds the rule (1.1 dropped that).
            if n == 0 && version == Version::Of10 {
                s.add_rules(bridge, vec![fm.to_rule_spec()], None)?;
            }
            Ok(())
        }
        FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
            let f = fm.to_rule_filter();
            let all = !strict && f == RuleFilter::all();
            s.del_rules(bridge, &f, strict, all).map(drop)
        }
    }
}

/// The bridge's ports as OpenFlow describes them, and its datapath id (the one kept with the
/// bridge, else its own MAC address's).
pub(super) async fn phy_ports(app: &Arc<AppState>, bridge: &str) -> (Vec<PhyPort>, u64) {
    let b = bridge.to_owned();
    let (ports, kept) = service_call(app, move |s| {
        let kept = s.controller_settings(&b).ok().and_then(|c| c.datapath_id);
        Ok((s.switch().ports(&b)?, kept))
    })
    .await
    .unwrap_or_default();
    let (ports, dpid) = describe_ports(&ports);
    (ports, kept.unwrap_or(dpid))
}

/// OpenFlow's view of `ports`, and the datapath id they give.
pub(super) fn describe_ports(ports: &[switch_core::PortInfo]) -> (Vec<PhyPort>, u64) {
    // The datapath id is the bridge's own MAC address, as Open vSwitch picks by default.
    let dpid = ports
        .iter()
        .find(|p| p.port_no == LOCAL_PORT)
        .map_or(0, |p| crate::service::controller::mac_dpid(p.mac));
    let ports = ports
        .iter()
        .map(|p| PhyPort {
            port_no: p.port_no as u16,
            hw_addr: p.mac,
            name: p.name.clone(),
            config: 0,
            // OFPPS_LINK_DOWN.
            state: u32::from(!p.link_up),
            curr: 0,
        })
        .collect();
    (ports, dpid)
}

/// The OpenFlow error for a flow mod the service refused.
fn flow_mod_error(e: &ServiceError) -> ErrorCode {
    match e {
        ServiceError::FlowMod(e) => ErrorCode::from(e),
        // datapath.max_flows.
        ServiceError::Conflict(_) => ErrorCode::FlowModFailed(FlowModFailed::TableFull),
        ServiceError::BadRequest(..) => ErrorCode::FlowModFailed(FlowModFailed::Unsupported),
        _ => ErrorCode::FlowModFailed(FlowModFailed::Unknown),
    }
}
