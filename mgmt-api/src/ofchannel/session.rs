//! One OpenFlow connection: HELLO and version negotiation (1.0 or 1.3), then requests answered
//! in order, asynchronous messages (packet-ins, flow removals, port changes) sent as they
//! come, and, on controller connections, echo keepalives. Anything unsupported gets the ERROR
//! a switch sends for it, so tools fail fast instead of waiting. Requests are handled one after
//! the other, so a BARRIER's reply follows everything before it.
//!
//! The stream is read by a task of its own that hands over whole messages, so waiting for the
//! next message, the next event and the keepalive timer can be one `select!` without losing
//! half-read input.

use std::sync::Arc;
use std::time::Duration;

use flow_table::RuleFilter;
use openflow::echo::{barrier_reply, echo_reply, echo_request};
use openflow::error::{encode_error, BadRequest, FlowModFailed};
use openflow::features::{FeaturesReply, PhyPort};
use openflow::hello::{encode_hello, negotiate, Hello};
use openflow::multipart::{
    encode_aggregate, encode_flow_stats, encode_port_desc, encode_table_features,
    encode_table_stats, Desc, MultipartRequest, TableStats, MAX_MSG_LEN, MP_AGGREGATE, MP_DESC,
    MP_FLOW, MP_PORT_DESC, MP_TABLE, MP_TABLE_FEATURES,
};
use openflow::switch_config::SwitchConfig;
use openflow::{ErrorCode, FlowMod, FlowModCommand, Header, MsgType, Version};
use switch_core::LOCAL_PORT;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::hub::{ConnInfo, Event, Kind, Role};
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
/// Whole messages read ahead of the one being handled.
const READ_AHEAD: usize = 16;

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
    let (rd, mut wr) = tokio::io::split(stream);
    let mut reader = JoinSet::new();
    let (tx, mut rx) = mpsc::channel(READ_AHEAD);
    reader.spawn(read_all(rd, tx));
    // Subscribed before HELLO so nothing that happens during the handshake is missed.
    let mut events = app.openflow.subscribe(bridge);
    wr.write_all(&encode_hello(&VERSIONS, 0))
        .await
        .map_err(|e| e.to_string())?;
    let first = match tokio::time::timeout(HELLO_TIMEOUT, rx.recv()).await {
        Err(_) => return Err("no HELLO within 10 s".into()),
        Ok(None) => return Ok(()),
        Ok(Some(m)) => m?,
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
        tokio::select! {
            m = rx.recv() => {
                let msg = match m {
                    None => return Ok(()),
                    Some(m) => m?,
                };
                last_rx = Instant::now();
                echo_sent = None;
                for reply in conn.handle(&msg).await {
                    wr.write_all(&reply).await.map_err(|e| e.to_string())?;
                }
            }
            ev = events.recv() => match ev {
                Ok(ev) => {
                    if let Some(bytes) = conn.encode_event(&ev) {
                        wr.write_all(&bytes).await.map_err(|e| e.to_string())?;
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

/// Reads whole messages into `tx` until the stream ends or breaks.
async fn read_all<R: AsyncRead + Unpin>(mut rd: R, tx: mpsc::Sender<Result<Vec<u8>, String>>) {
    loop {
        let m = read_msg(&mut rd).await;
        let end = !matches!(m, Ok(Some(_)));
        let item = match m {
            Ok(Some(m)) => Ok(m),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        if tx.send(item).await.is_err() || end {
            return;
        }
    }
}

/// Reads one whole message; `None` at a clean end of the stream.
async fn read_msg<R: AsyncRead + Unpin>(s: &mut R) -> Result<Option<Vec<u8>>, String> {
    let mut head = [0u8; 8];
    match s.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    if len < head.len() {
        return Err(format!("message length {len} is shorter than its header"));
    }
    let mut msg = vec![0u8; len];
    msg[..8].copy_from_slice(&head);
    s.read_exact(&mut msg[8..])
        .await
        .map_err(|e| format!("message cut short: {e}"))?;
    Ok(Some(msg))
}

/// The ERROR for `msg` (which carries its first bytes).
fn error(version: Version, xid: u32, code: ErrorCode, msg: &[u8]) -> Vec<Vec<u8>> {
    vec![encode_error(version, xid, code, msg)]
}

impl Conn {
    /// This connection's hub entry (it exists while the connection does).
    fn info(&self) -> Option<ConnInfo> {
        self.app.openflow.conn(&self.bridge, self.id)
    }

    /// The replies to one message.
    async fn handle(&mut self, msg: &[u8]) -> Vec<Vec<u8>> {
        let version = self.version;
        let h = match Header::parse(msg) {
            Ok(h) => h,
            Err(e) => return vec![e.to_error_msg(version, msg)],
        };
        if h.version != version.wire() {
            return error(
                version,
                h.xid,
                ErrorCode::BadRequest(BadRequest::BadVersion),
                msg,
            );
        }
        let t = match h.msg_type() {
            Ok(t) => t,
            Err(e) => return vec![e.to_error_msg(version, msg)],
        };
        // A slave may only read (OpenFlow 1.3, 6.3.5).
        if matches!(
            t,
            MsgType::FlowMod
                | MsgType::PacketOut
                | MsgType::GroupMod
                | MsgType::PortMod
                | MsgType::TableMod
        ) && self.info().is_some_and(|c| c.role == Role::Slave)
        {
            return error(
                version,
                h.xid,
                ErrorCode::BadRequest(BadRequest::IsSlave),
                msg,
            );
        }
        match t {
            MsgType::EchoRequest => match echo_reply(msg) {
                Ok(r) => vec![r],
                Err(e) => vec![e.to_error_msg(version, msg)],
            },
            MsgType::Hello | MsgType::EchoReply => Vec::new(),
            MsgType::SetConfig => match SwitchConfig::parse(msg) {
                Ok(c) => {
                    self.app
                        .openflow
                        .update(&self.bridge, self.id, |i| i.miss_send_len = c.miss_send_len);
                    Vec::new()
                }
                Err(e) => vec![e.to_error_msg(version, msg)],
            },
            MsgType::BarrierRequest => vec![barrier_reply(version, h.xid)],
            MsgType::GetConfigRequest => {
                let miss_send_len = self.info().map_or(128, |c| c.miss_send_len);
                vec![SwitchConfig {
                    miss_send_len,
                    ..SwitchConfig::default()
                }
                .encode_reply(version, h.xid)]
            }
            MsgType::FeaturesRequest => self.features(h.xid).await,
            MsgType::FlowMod => self.flow_mod(h.xid, msg).await,
            MsgType::MultipartRequest => self.multipart(msg).await,
            _ => error(
                version,
                h.xid,
                ErrorCode::BadRequest(BadRequest::BadType),
                msg,
            ),
        }
    }

    /// The OpenFlow message for an event, when this connection is to get it.
    fn encode_event(&self, ev: &Event) -> Option<Vec<u8>> {
        let info = self.info()?;
        if !info.wants_async() {
            return None;
        }
        match ev {
            // MERGE-B: encoders.
            Event::PortStatus { .. } | Event::PacketIn(_) | Event::FlowRemoved(_) => None,
        }
    }

    async fn features(&self, xid: u32) -> Vec<Vec<u8>> {
        let (ports, dpid) = phy_ports(&self.app, &self.bridge).await;
        let reply = FeaturesReply {
            datapath_id: dpid,
            n_buffers: 0,
            n_tables: N_TABLES,
            capabilities: CAPABILITIES,
            ports,
        };
        vec![reply.encode(self.version, xid)]
    }

    async fn flow_mod(&self, xid: u32, msg: &[u8]) -> Vec<Vec<u8>> {
        let (version, bridge) = (self.version, self.bridge.as_str());
        let fm = match FlowMod::parse(msg) {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(bridge, "OpenFlow flow mod refused: {e}");
                return vec![e.to_error_msg(version, msg)];
            }
        };
        let b = bridge.to_owned();
        let done = service_call(&self.app, move |s| apply_flow_mod(s, &b, version, &fm)).await;
        match done {
            Ok(()) => Vec::new(),
            Err(e) => {
                tracing::info!(bridge, "OpenFlow flow mod refused: {e:?}");
                error(version, xid, flow_mod_error(&e), msg)
            }
        }
    }

    async fn multipart(&self, msg: &[u8]) -> Vec<Vec<u8>> {
        let (version, bridge, app) = (self.version, self.bridge.as_str(), &self.app);
        let req = match MultipartRequest::parse(msg) {
            Ok(r) => r,
            Err(e) => return vec![e.to_error_msg(version, msg)],
        };
        match req.kind {
            MP_DESC => vec![Desc {
                mfr_desc: "vswitch".into(),
                hw_desc: "userspace switch".into(),
                sw_desc: env!("CARGO_PKG_VERSION").into(),
                serial_num: "None".into(),
                dp_desc: bridge.to_owned(),
            }
            .encode_reply(version, req.xid)],
            MP_FLOW | MP_AGGREGATE => {
                let filter = match req.flow_filter() {
                    Ok(f) => f,
                    Err(e) => return vec![e.to_error_msg(version, msg)],
                };
                let b = bridge.to_owned();
                let rules = service_call(app, move |s| s.flows(&b))
                    .await
                    .unwrap_or_default();
                let selected = rules
                    .iter()
                    .filter(|r| filter.selects(r, false))
                    .map(|r| &**r);
                if req.kind == MP_AGGREGATE {
                    return vec![encode_aggregate(version, req.xid, selected)];
                }
                encode_flow_stats(
                    version,
                    req.xid,
                    selected,
                    switch_core::datapath::clock::now_ms(),
                    MAX_MSG_LEN,
                )
            }
            MP_TABLE => {
                let b = bridge.to_owned();
                let counts = service_call(app, move |s| Ok(s.switch().rule_counts(&b)?))
                    .await
                    .unwrap_or_default();
                let tables: Vec<TableStats> = (0..N_TABLES)
                    .map(|t| TableStats {
                        table_id: t,
                        active_count: counts.get(&t).copied().unwrap_or(0) as u32,
                        lookup_count: 0,
                        matched_count: 0,
                    })
                    .collect();
                vec![encode_table_stats(version, req.xid, &tables)]
            }
            MP_PORT_DESC if version == Version::Of13 => {
                let (ports, _) = phy_ports(app, bridge).await;
                vec![encode_port_desc(req.xid, &ports)]
            }
            // `ovs-ofctl` asks for it before a 1.3 flow mod (for table names).
            MP_TABLE_FEATURES if version == Version::Of13 => encode_table_features(
                req.xid,
                N_TABLES,
                flow_table::tables::DEFAULT_MAX_RULES as u32,
            ),
            _ => error(
                version,
                req.xid,
                ErrorCode::BadRequest(BadRequest::BadMultipart),
                msg,
            ),
        }
    }
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
        FlowModCommand::Add => s.add_rules(bridge, vec![fm.to_rule_spec()], None).map(drop),
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

/// The bridge's ports as OpenFlow describes them, and its datapath id.
pub(super) async fn phy_ports(app: &Arc<AppState>, bridge: &str) -> (Vec<PhyPort>, u64) {
    let b = bridge.to_owned();
    let ports = service_call(app, move |s| Ok(s.switch().ports(&b)?))
        .await
        .unwrap_or_default();
    describe_ports(&ports)
}

/// OpenFlow's view of `ports`, and the datapath id they give.
pub(super) fn describe_ports(ports: &[switch_core::PortInfo]) -> (Vec<PhyPort>, u64) {
    // The datapath id is the bridge's own MAC address, as Open vSwitch picks by default.
    let dpid = ports
        .iter()
        .find(|p| p.port_no == LOCAL_PORT)
        .map_or(0, |p| {
            p.mac
                .octets()
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | b as u64)
        });
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
