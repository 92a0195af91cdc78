//! One OpenFlow connection: HELLO and version negotiation (1.0 or 1.3), then requests answered
//! in order: ECHO, FEATURES, GET_CONFIG/SET_CONFIG, BARRIER, FLOW_MOD and the DESC and FLOW
//! multipart requests. Anything else gets the ERROR a switch sends for it, so tools fail fast
//! instead of waiting. Requests are handled one after the other, so a BARRIER's reply follows
//! everything before it.

use std::sync::Arc;

use flow_table::RuleFilter;
use openflow::echo::{barrier_reply, echo_reply};
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::api::{service_call, AppState};
use crate::service::ServiceError;

/// The versions vswitch speaks, as its HELLO offers them.
const VERSIONS: [Version; 2] = [Version::Of10, Version::Of13];
/// OFPC_FLOW_STATS: the only statistics answered so far.
const CAPABILITIES: u32 = 1;
/// Tables a controller may use (0–253), as Open vSwitch reports.
const N_TABLES: u8 = 254;

/// Serves a connection until the peer closes it (`Ok`) or breaks the protocol (`Err`).
pub(super) async fn serve(
    app: Arc<AppState>,
    bridge: &str,
    mut s: UnixStream,
) -> Result<(), String> {
    s.write_all(&encode_hello(&VERSIONS, 0))
        .await
        .map_err(|e| e.to_string())?;
    let Some(first) = read_msg(&mut s).await? else {
        return Ok(());
    };
    let hello = Hello::parse(&first).map_err(|e| format!("expected HELLO: {e}"))?;
    let version = match negotiate(&hello, &VERSIONS) {
        Ok(v) => v,
        Err(error) => {
            let _ = s.write_all(&error).await;
            return Err(format!(
                "no common OpenFlow version (peer offers {:#04x})",
                hello.version
            ));
        }
    };
    while let Some(msg) = read_msg(&mut s).await? {
        for reply in handle(&app, bridge, version, &msg).await {
            s.write_all(&reply).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Reads one whole message; `None` at a clean end of the stream.
async fn read_msg(s: &mut UnixStream) -> Result<Option<Vec<u8>>, String> {
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

/// The replies to one message.
async fn handle(app: &Arc<AppState>, bridge: &str, version: Version, msg: &[u8]) -> Vec<Vec<u8>> {
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
    match t {
        MsgType::EchoRequest => match echo_reply(msg) {
            Ok(r) => vec![r],
            Err(e) => vec![e.to_error_msg(version, msg)],
        },
        MsgType::Hello | MsgType::EchoReply | MsgType::SetConfig => Vec::new(),
        MsgType::BarrierRequest => vec![barrier_reply(version, h.xid)],
        MsgType::GetConfigRequest => vec![SwitchConfig::default().encode_reply(version, h.xid)],
        MsgType::FeaturesRequest => features(app, bridge, version, h.xid).await,
        MsgType::FlowMod => flow_mod(app, bridge, version, h.xid, msg).await,
        MsgType::MultipartRequest => multipart(app, bridge, version, msg).await,
        _ => error(
            version,
            h.xid,
            ErrorCode::BadRequest(BadRequest::BadType),
            msg,
        ),
    }
}

/// The bridge's ports as OpenFlow describes them, and its datapath id.
async fn phy_ports(app: &Arc<AppState>, bridge: &str) -> (Vec<PhyPort>, u64) {
    let b = bridge.to_owned();
    let ports = service_call(app, move |s| Ok(s.switch().ports(&b)?))
        .await
        .unwrap_or_default();
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

async fn features(app: &Arc<AppState>, bridge: &str, version: Version, xid: u32) -> Vec<Vec<u8>> {
    let (ports, dpid) = phy_ports(app, bridge).await;
    let reply = FeaturesReply {
        datapath_id: dpid,
        n_buffers: 0,
        n_tables: N_TABLES,
        capabilities: CAPABILITIES,
        ports,
    };
    vec![reply.encode(version, xid)]
}

/// The OpenFlow error for a flow mod the service refused.
fn flow_mod_error(e: &ServiceError) -> ErrorCode {
    match e {
        ServiceError::BadRequest(..) => ErrorCode::FlowModFailed(FlowModFailed::Unsupported),
        _ => ErrorCode::FlowModFailed(FlowModFailed::Unknown),
    }
}

async fn flow_mod(
    app: &Arc<AppState>,
    bridge: &str,
    version: Version,
    xid: u32,
    msg: &[u8],
) -> Vec<Vec<u8>> {
    let fm = match FlowMod::parse(msg) {
        Ok(f) => f,
        Err(e) => {
            tracing::info!(bridge = %bridge, "OpenFlow flow mod refused: {e}");
            return vec![e.to_error_msg(version, msg)];
        }
    };
    let b = bridge.to_owned();
    let done = service_call(app, move |s| {
        let strict = fm.command.is_strict();
        match fm.command {
            FlowModCommand::Add => s.add_rules(&b, vec![fm.to_rule_spec()], None).map(drop),
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                let n = s.mod_rules(&b, &fm.to_rule_filter(), &fm.actions, strict)?;
                // OpenFlow 1.0: a modify that finds nothing adds the rule (1.1 dropped that).
                if n == 0 && version == Version::Of10 {
                    s.add_rules(&b, vec![fm.to_rule_spec()], None)?;
                }
                Ok(())
            }
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
                let f = fm.to_rule_filter();
                let all = !strict && f == RuleFilter::all();
                s.del_rules(&b, &f, strict, all).map(drop)
            }
        }
    })
    .await;
    match done {
        Ok(()) => Vec::new(),
        Err(e) => {
            tracing::info!(bridge = %bridge, "OpenFlow flow mod refused: {e:?}");
            error(version, xid, flow_mod_error(&e), msg)
        }
    }
}

async fn multipart(
    app: &Arc<AppState>,
    bridge: &str,
    version: Version,
    msg: &[u8],
) -> Vec<Vec<u8>> {
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
