//! The answers to a connection's requests, one message at a time.

use openflow::echo::{barrier_reply, echo_reply};
use openflow::error::{BadRequest, RoleRequestFailed};
use openflow::features::FeaturesReply;
use openflow::multipart::{
    encode_aggregate, encode_flow_stats, encode_nx_aggregate, encode_nx_flow_stats,
    encode_port_desc, encode_table_features, encode_table_stats, Desc, MultipartRequest,
    TableStats, MAX_MSG_LEN, MP_AGGREGATE, MP_DESC, MP_FLOW, MP_PORT_DESC, MP_TABLE,
    MP_TABLE_FEATURES,
};
use openflow::nicira::{encode_nx_role_reply, Experimenter};
use openflow::packet_out::PacketOut;
use openflow::port_stats::{encode_port_stats, PortStats, MP_PORT_STATS};
use openflow::request::{Received, Request};
use openflow::role::{encode_role_reply, Role as OfRole};
use openflow::switch_config::SwitchConfig;
use openflow::{ErrorCode, FlowMod, FlowModCommand, Version};
use switch_core::SwitchError;

use super::{apply_flow_mod, error, flow_mod_error, phy_ports, Conn, CAPABILITIES, N_TABLES};
use crate::api::{service_call, service_now};
use crate::ofchannel::hub::{Role, RoleError};

impl Conn {
    /// This connection's hub entry (it exists while the connection does).
    pub(super) fn info(&self) -> Option<crate::ofchannel::hub::ConnInfo> {
        self.app.openflow.conn(&self.bridge, self.id)
    }

    fn is_slave(&self) -> bool {
        self.info().is_some_and(|c| c.role == Role::Slave)
    }

    /// The replies to one message.
    pub(super) async fn handle(&mut self, msg: &[u8]) -> Vec<Vec<u8>> {
        let version = self.version;
        let rx = match Received::parse_with(msg, version, self.opts) {
            Ok(r) => r,
            Err(e) => return vec![e.to_error_msg(version, msg)],
        };
        let xid = rx.xid;
        // A slave may only read (OpenFlow 1.3, 6.3.5).
        let changes = matches!(
            rx.request,
            Request::FlowMod(_)
                | Request::PacketOut(_)
                | Request::Experimenter(
                    Experimenter::BundleControl(_) | Experimenter::BundleAdd(_)
                )
        );
        if changes && self.is_slave() {
            return error(
                version,
                xid,
                ErrorCode::BadRequest(BadRequest::IsSlave),
                msg,
            );
        }
        match rx.request {
            Request::EchoRequest => match echo_reply(msg) {
                Ok(r) => vec![r],
                Err(e) => vec![e.to_error_msg(version, msg)],
            },
            Request::Hello(_) | Request::EchoReply => Vec::new(),
            Request::Error { err_type, code } => {
                tracing::info!(bridge = %self.bridge, err_type, code, "OpenFlow peer sent an ERROR");
                Vec::new()
            }
            Request::SetConfig(c) => {
                self.app
                    .openflow
                    .update(&self.bridge, self.id, |i| i.miss_send_len = c.miss_send_len);
                Vec::new()
            }
            Request::BarrierRequest => vec![barrier_reply(version, xid)],
            Request::GetConfigRequest => {
                let miss_send_len = self.info().map_or(128, |c| c.miss_send_len);
                vec![SwitchConfig {
                    miss_send_len,
                    ..SwitchConfig::default()
                }
                .encode_reply(version, xid)]
            }
            Request::FeaturesRequest => self.features(xid).await,
            Request::FlowMod(fm) => self.flow_mod(xid, *fm, msg).await,
            Request::PacketOut(po) => self.packet_out(xid, *po, msg),
            Request::Multipart(req) => self.multipart(req, msg).await,
            Request::RoleRequest(r) => self.role(xid, r.role, r.generation_id, msg),
            Request::GetAsyncRequest => vec![self.async_cfg.encode_reply(xid)],
            Request::SetAsync(cfg) => {
                self.async_cfg = cfg;
                Vec::new()
            }
            Request::Experimenter(e) => self.experimenter(xid, e, msg).await,
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

    pub(super) async fn flow_mod(&self, xid: u32, fm: FlowMod, msg: &[u8]) -> Vec<Vec<u8>> {
        let (version, bridge) = (self.version, self.bridge.as_str());
        let b = bridge.to_owned();
        // An add returns once the tables have it (microseconds): on this thread. Deletes and
        // modifies wait for the PMD threads, so they go to the blocking pool.
        let done = if fm.command == FlowModCommand::Add {
            service_now(&self.app, move |s| apply_flow_mod(s, &b, version, &fm))
        } else {
            service_call(&self.app, move |s| apply_flow_mod(s, &b, version, &fm)).await
        };
        match done {
            Ok(()) => Vec::new(),
            Err(e) => {
                tracing::info!(bridge, "OpenFlow flow mod refused: {e:?}");
                error(version, xid, flow_mod_error(&e), msg)
            }
        }
    }

    fn packet_out(&self, xid: u32, po: PacketOut, msg: &[u8]) -> Vec<Vec<u8>> {
        // Handing the packet to a PMD is a channel send: no need for a blocking thread.
        match self
            .app
            .service
            .switch()
            .packet_out(&self.bridge, po.in_port, po.data, po.actions)
        {
            Ok(()) => Vec::new(),
            Err(e) => {
                tracing::info!(bridge = %self.bridge, "OpenFlow packet-out refused: {e}");
                let code = match e {
                    SwitchError::NoSuchPort(_) => BadRequest::BadPort,
                    SwitchError::BadPacketOut(_) => BadRequest::BadLen,
                    _ => BadRequest::Eperm,
                };
                error(self.version, xid, ErrorCode::BadRequest(code), msg)
            }
        }
    }

    /// A role request: applies it and answers with the role now held.
    fn role(&self, xid: u32, role: OfRole, generation: u64, msg: &[u8]) -> Vec<Vec<u8>> {
        let want = match role {
            OfRole::NoChange => None,
            OfRole::Equal => Some(Role::Equal),
            OfRole::Master => Some(Role::Master),
            OfRole::Slave => Some(Role::Slave),
        };
        if let Some(r) = want {
            if let Err(RoleError::Stale) =
                self.app
                    .openflow
                    .set_role(&self.bridge, self.id, r, generation)
            {
                return error(
                    self.version,
                    xid,
                    ErrorCode::RoleRequestFailed(RoleRequestFailed::Stale),
                    msg,
                );
            }
        }
        let now = match self.info().map_or(Role::Equal, |c| c.role) {
            Role::Equal => OfRole::Equal,
            Role::Master => OfRole::Master,
            Role::Slave => OfRole::Slave,
        };
        match self.version {
            Version::Of13 => vec![encode_role_reply(xid, now, generation)],
            Version::Of10 => vec![encode_nx_role_reply(Version::Of10, xid, now)],
        }
    }

    async fn experimenter(&mut self, xid: u32, e: Experimenter<'_>, msg: &[u8]) -> Vec<Vec<u8>> {
        match e {
            // Nothing to keep: flow statistics answer in the format of the request
            // (OFPST_FLOW or NXST_FLOW), and NXT_FLOW_MOD decodes whatever was set.
            Experimenter::SetFlowFormatOpenFlow10 | Experimenter::SetFlowFormatNxm => Vec::new(),
            Experimenter::FlowModTableId(on) => {
                self.opts.flow_mod_table_id = on;
                Vec::new()
            }
            Experimenter::SetPacketInFormatStandard => Vec::new(),
            Experimenter::NxRoleRequest(r) => self.role(xid, r, 0, msg),
            Experimenter::BundleControl(c) => self.bundle_control(xid, c, msg).await,
            Experimenter::BundleAdd(a) => self.bundle_add(xid, a, msg),
        }
    }

    async fn multipart(&self, req: MultipartRequest<'_>, msg: &[u8]) -> Vec<Vec<u8>> {
        let (version, bridge, app) = (self.version, self.bridge.as_str(), &self.app);
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
                let now = switch_core::datapath::clock::now_ms();
                match (req.kind == MP_AGGREGATE, req.nx) {
                    (true, false) => vec![encode_aggregate(version, req.xid, selected)],
                    (true, true) => vec![encode_nx_aggregate(req.xid, selected)],
                    (false, false) => {
                        encode_flow_stats(version, req.xid, selected, now, MAX_MSG_LEN)
                    }
                    (false, true) => encode_nx_flow_stats(req.xid, selected, now, MAX_MSG_LEN),
                }
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
            MP_PORT_STATS => {
                let only = match req.port_stats_port() {
                    Ok(p) => p,
                    Err(e) => return vec![e.to_error_msg(version, msg)],
                };
                let b = bridge.to_owned();
                let ports = service_call(app, move |s| Ok(s.switch().ports(&b)?))
                    .await
                    .unwrap_or_default();
                if let Some(p) = only {
                    if !ports.iter().any(|i| i.port_no == p) {
                        return error(
                            version,
                            req.xid,
                            ErrorCode::BadRequest(BadRequest::BadPort),
                            msg,
                        );
                    }
                }
                let stats: Vec<PortStats> = ports
                    .iter()
                    .filter(|i| only.is_none_or(|p| p == i.port_no))
                    .map(|i| PortStats {
                        port_no: i.port_no,
                        rx_packets: i.stats.rx_packets,
                        tx_packets: i.stats.tx_packets,
                        rx_bytes: i.stats.rx_bytes,
                        tx_bytes: i.stats.tx_bytes,
                        rx_dropped: i.stats.rx_dropped,
                        tx_dropped: i.stats.tx_dropped,
                        rx_errors: i.stats.rx_errors,
                        tx_errors: i.stats.tx_errors,
                        // Port ages are not kept.
                        duration_ms: 0,
                    })
                    .collect();
                encode_port_stats(version, req.xid, &stats, MAX_MSG_LEN)
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
