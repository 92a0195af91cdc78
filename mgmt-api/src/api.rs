//! The REST API (axum): routes, JSON bodies, errors, authentication, and the OpenAPI document.
//!
//! Errors are always JSON `{ "error": "...", "detail": ... }` with a 4xx status for a bad
//! request (the message says what is wrong and where) and 5xx only for failures of the host.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use flow_table::MacAddr;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::service::state::PortEntry;
use crate::service::{Service, ServiceError};

/// Shared by every handler.
pub struct AppState {
    /// The service.
    pub service: Service,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// What the OpenFlow connections share (events, roles, controller status).
    pub openflow: Arc<crate::ofchannel::hub::Hub>,
}

type App = State<Arc<AppState>>;

/// A JSON error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// Where, when known (e.g. the offending token of a flow).
    pub detail: serde_json::Value,
}

/// An error with its status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String, pub serde_json::Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ErrorBody {
                error: self.1,
                detail: self.2,
            }),
        )
            .into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use serde_json::Value::Null;
        match e {
            ServiceError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m, Null),
            ServiceError::Conflict(m) => ApiError(StatusCode::CONFLICT, m, Null),
            ServiceError::BadRequest(m, d) => {
                ApiError(StatusCode::BAD_REQUEST, m, d.unwrap_or(Null))
            }
            ServiceError::Datapath(m) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, m, Null),
            ServiceError::Storage(m) => ApiError(StatusCode::INSUFFICIENT_STORAGE, m, Null),
            ServiceError::Unavailable(m) => ApiError(StatusCode::SERVICE_UNAVAILABLE, m, Null),
            ServiceError::FlowMod(e) => ApiError(StatusCode::BAD_REQUEST, e.to_string(), Null),
        }
    }
}

/// A JSON body whose rejections (malformed JSON, wrong types, too large) answer in the API's
/// error format.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) => {
                let status = match r.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    _ => StatusCode::BAD_REQUEST,
                };
                Err(ApiError(
                    status,
                    format!("invalid request body: {}", r.body_text()),
                    serde_json::Value::Null,
                ))
            }
        }
    }
}

/// Runs a blocking service call off the async workers; a call that panicked is a
/// [`ServiceError::Datapath`] (500).
pub(crate) async fn service_call<T: Send + 'static>(
    app: &Arc<AppState>,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let app = Arc::clone(app);
    tokio::task::spawn_blocking(move || f(&app.service))
        .await
        .unwrap_or_else(|e| Err(ServiceError::Datapath(e.to_string())))
}

/// [`service_call`] without the hop to the blocking pool: the call runs on this task's
/// worker thread, which saves two thread hand-offs, most of a short call's cost. Only for
/// calls known to take microseconds (one flow mod, a few): a worker blocked longer holds up
/// the other tasks it would have run.
pub(crate) fn service_now<T>(
    app: &Arc<AppState>,
    f: impl FnOnce(&Service) -> Result<T, ServiceError>,
) -> Result<T, ServiceError> {
    f(&app.service)
}

/// [`service_call`] for a route: its error as the API answers it.
pub(crate) async fn blocking<T: Send + 'static>(
    app: &Arc<AppState>,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    service_call(app, f).await.map_err(ApiError::from)
}

// ---- bodies and views ---------------------------------------------------------------------

/// `POST /bridges`, e.g. `{"name": "br0"}` or `{"name": "br0", "datapath_type": "dummy"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBridge {
    /// Bridge name (1–15 characters: it is also the internal port's interface name).
    pub name: String,
    /// `netdev` (default: the bridge's own port is a tap named like it) or `dummy` (as OVS's
    /// `datapath_type=dummy`: its own port is a dummy port in memory, and no kernel device is
    /// created). Anything else is refused (400).
    #[serde(default)]
    #[schema(example = "dummy")]
    pub datapath_type: Option<String>,
}

/// A bridge.
#[derive(Debug, Serialize, ToSchema)]
pub struct BridgeView {
    /// Name.
    pub name: String,
    /// `netdev` or `dummy` (see `POST /bridges`).
    pub datapath_type: String,
    /// Ports.
    pub ports: Vec<PortView>,
}

/// `POST /bridges/{bridge}/ports`, e.g. `{"name": "vhu0", "type": "vhostuser"}` or
/// `{"name": "vm1", "type": "vhostuserclient", "options": {"vhost-server-path": "/run/vm1.sock"}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "vm1",
    "type": "vhostuserclient",
    "options": { "vhost-server-path": "/run/vm1.sock" }
}))]
pub struct NewPort {
    /// Port name: the kernel interface (system), the tap to create (tap, internal), or the
    /// vhost-user port (1–15 letters, digits, `-`, `_`, `.`; for `vhostuser` also the socket's
    /// file name, so it may not start with `.` nor contain `..`).
    pub name: String,
    /// `system` (default), `tap`, `internal`, `vhostuser` (the switch listens on the socket
    /// `<run_dir>/<name>`; the VM connects), `vhostuserclient` (the VM listens on
    /// `vhost-server-path`; the switch connects, and reconnects every second), `patch`,
    /// `vxlan` or `dummy` (in memory only: frames are injected with `.../receive` and taken
    /// with `.../sent`).
    #[serde(rename = "type", default = "default_type")]
    #[schema(example = "vhostuser")]
    pub r#type: String,
    /// OpenFlow port number, 1 to 65279 (default: lowest free).
    #[serde(default)]
    pub ofport: Option<u32>,
    /// Type options: `mode` (system: afxdp, afpacket, auto), `offloads` (tap, internal: true,
    /// false), `vhost-server-path` (vhostuserclient, required: the absolute path of the VM's
    /// socket, at most 107 bytes). `vhostuser` and `dummy` take none. Unknown options are
    /// refused.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

fn default_type() -> String {
    ports::PortType::default().as_str().into()
}

/// Port counters: a port's [`PortStats`](ports::PortStats) in the API, whose field list gives
/// the JSON keys in order and the schema's descriptions.
#[derive(Debug)]
pub struct PortCountersView(pub ports::PortStats);

impl From<ports::PortStats> for PortCountersView {
    fn from(s: ports::PortStats) -> Self {
        PortCountersView(s)
    }
}

impl Serialize for PortCountersView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let fields = ports::PortStats::FIELDS;
        let mut st = serializer.serialize_struct("PortCountersView", fields.len())?;
        for (f, v) in fields.iter().zip(self.0.values()) {
            st.serialize_field(f.name, &v)?;
        }
        st.end()
    }
}

impl utoipa::PartialSchema for PortCountersView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        // Each field as the derive describes a documented `u64`.
        let counter = |doc: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .description(Some(doc))
                .minimum(Some(0f64))
        };
        ports::PortStats::FIELDS
            .iter()
            .fold(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some("Port counters.")),
                |o, f| o.property(f.name, counter(f.api)).required(f.name),
            )
            .into()
    }
}

impl ToSchema for PortCountersView {}

/// A port with its counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortView {
    /// Name.
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// Configured type.
    #[serde(rename = "type")]
    pub r#type: String,
    /// The kind the datapath opened: tap, internal, system, vhostuser, vhostuserclient.
    pub driver: String,
    /// Options, as given when the port was added.
    pub options: std::collections::BTreeMap<String, String>,
    /// The unix socket of a vhost-user port: `<run_dir>/<name>` for `vhostuser`,
    /// `vhost-server-path` for `vhostuserclient`; absent for other types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// vhost-user: whether a VM is connected and its queues run; other ports: whether the
    /// link is up.
    pub link_up: bool,
    /// vhost-user: the VM's state in words (connected, queues running, guest MTU, migration,
    /// protocol errors and the last one); dummy: frames waiting each way and lost; absent for
    /// other types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// MAC address.
    #[schema(value_type = String)]
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u32,
    /// Counters.
    pub statistics: PortCountersView,
    /// Drops by reason: the datapath's (policy, no_route, no_buffer, malformed,
    /// upcall_failed) of packets received here, and transmit drops (tx_queue_full, or
    /// guest_ring_full for vhost-user).
    pub drops: std::collections::BTreeMap<String, u64>,
}

/// `POST /bridges/{bridge}/flows`: one flow or many, in ovs-ofctl syntax.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFlows {
    /// One flow.
    #[serde(default)]
    pub flow: Option<String>,
    /// Many flows (all or nothing).
    #[serde(default)]
    pub flows: Vec<String>,
}

/// `DELETE /bridges/{bridge}/flows` and `PATCH` (modify) bodies.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowSelection {
    /// Match in ovs-ofctl syntax (empty: all flows); for modify, with `actions=`.
    #[serde(default)]
    pub flow: String,
    /// Exact match and priority only.
    #[serde(default)]
    pub strict: bool,
}

/// A flow with its counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowView {
    /// Table.
    pub table: u8,
    /// Priority.
    pub priority: u16,
    /// Cookie.
    pub cookie: u64,
    /// Packets matched.
    pub n_packets: u64,
    /// Bytes matched.
    pub n_bytes: u64,
    /// Seconds since installed.
    pub duration_secs: f64,
    /// The flow as `dump-flows` prints it.
    pub text: String,
}

/// A MAC learning entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct FdbView {
    /// OpenFlow port.
    pub port: u32,
    /// VLAN (0: untagged).
    pub vlan: u16,
    /// Address.
    #[schema(value_type = String)]
    pub mac: MacAddr,
    /// Seconds since last seen.
    pub age: u64,
    /// Added with `fdb-add` (never ages) rather than learned.
    #[serde(rename = "static")]
    pub is_static: bool,
}

/// `POST /bridges/{bridge}/fdb`: pin a MAC address to a port (`ovs-appctl fdb/add`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFdbEntry {
    /// Port name or number.
    pub port: String,
    /// VLAN (0: untagged).
    #[serde(default)]
    pub vlan: u16,
    /// Unicast MAC address, `xx:xx:xx:xx:xx:xx`.
    pub mac: String,
}

/// Parses `xx:xx:xx:xx:xx:xx`.
fn parse_mac(text: &str) -> Result<MacAddr, ServiceError> {
    text.parse().map_err(|_| {
        ServiceError::BadRequest(
            format!("invalid MAC address {text:?}: want xx:xx:xx:xx:xx:xx"),
            None,
        )
    })
}

/// One megaflow of one PMD (`dpctl-dump-flows`).
#[derive(Debug, Serialize, ToSchema)]
pub struct MegaflowView {
    /// PMD whose cache holds it.
    pub pmd: usize,
    /// The fields its mask keeps, in ovs-ofctl match syntax (empty: matches everything).
    #[serde(rename = "match")]
    pub r#match: String,
    /// Datapath actions.
    pub actions: String,
    /// Packets that hit it.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Seconds since the last hit.
    pub used_secs: f64,
}

/// One PMD's share of a port (`pmd-rxq-show`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RxqView {
    /// PMD index.
    pub pmd: usize,
    /// Core it is pinned to.
    pub core: Option<usize>,
    /// Bridge.
    pub bridge: String,
    /// Port name.
    pub port: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// Receive queues this PMD polls on the port (0: it only transmits there).
    pub rx_queues: usize,
    /// Each of those queues: its busy cycles and their share of the PMD's cycles.
    pub queues: Vec<RxqQueueView>,
}

/// One receive queue in `pmd-rxq-show`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RxqQueueView {
    /// Queue id.
    pub queue: usize,
    /// Busy cycles spent on it since the last `pmd-stats-clear`.
    pub cycles: u64,
    /// Their share of the PMD's cycles, in percent.
    pub usage_percent: f64,
}

/// Counters of one PMD thread.
#[derive(Debug, Serialize, ToSchema)]
pub struct PmdView {
    /// Index.
    pub pmd: usize,
    /// Core, when pinned.
    pub core: Option<usize>,
    /// Packets received.
    pub packets: u64,
    /// Exact-match cache hits.
    pub emc_hits: u64,
    /// Megaflow hits.
    pub megaflow_hits: u64,
    /// Upcalls (misses of both caches).
    pub upcalls: u64,
    /// Upcalls whose megaflow could not be installed.
    pub lost: u64,
    /// Busy cycles.
    pub busy_cycles: u64,
    /// Idle cycles.
    pub idle_cycles: u64,
    /// Busy cycles per packet.
    pub cycles_per_packet: f64,
    /// Busy share.
    pub busy_percent: f64,
    /// Receive bursts that brought packets.
    pub rx_batches: u64,
    /// Megaflows installed.
    pub megaflows: u64,
    /// Drops by reason.
    pub drops: std::collections::BTreeMap<String, u64>,
}

impl From<switch_core::PmdStats> for PmdView {
    fn from(p: switch_core::PmdStats) -> Self {
        PmdView {
            pmd: p.pmd,
            core: p.core,
            packets: p.packets,
            emc_hits: p.emc_hits,
            megaflow_hits: p.megaflow_hits,
            upcalls: p.upcalls,
            lost: p.lost,
            busy_cycles: p.busy_cycles,
            idle_cycles: p.idle_cycles,
            cycles_per_packet: p.cycles_per_packet(),
            busy_percent: p.busy_percent(),
            rx_batches: p.rx_batches,
            megaflows: p.megaflows,
            drops: metrics::drop_reasons(&p.drops),
        }
    }
}

fn port_view(svc: &Service, bridge: &str, p: switch_core::PortInfo) -> PortView {
    let entry = svc.port_entry(bridge, &p.name);
    let s = p.stats;
    let dp = svc
        .switch()
        .port_drops(bridge)
        .ok()
        .and_then(|m| m.get(&p.port_no).copied())
        .unwrap_or_default();
    PortView {
        drops: metrics::port_drop_reasons(p.kind, &dp, s.tx_dropped),
        r#type: entry
            .as_ref()
            .map_or_else(|| p.config.type_name().to_owned(), |e| e.r#type.clone()),
        options: entry.map(|e| e.options).unwrap_or_default(),
        driver: p.kind.config_name().to_owned(),
        socket: match &p.config {
            switch_core::PortConfig::VhostUser { socket, .. } => Some(socket.display().to_string()),
            _ => None,
        },
        link_up: p.link_up,
        status: p.status,
        name: p.name,
        ofport: p.port_no,
        mac: p.mac,
        mtu: p.mtu,
        statistics: s.into(),
    }
}

fn bridge_view(svc: &Service, name: &str) -> Result<BridgeView, ServiceError> {
    let ports = svc
        .switch()
        .ports(name)?
        .into_iter()
        .map(|p| port_view(svc, name, p))
        .collect();
    Ok(BridgeView {
        name: name.to_owned(),
        datapath_type: svc
            .switch()
            .bridge_options(name)?
            .datapath_type
            .name()
            .to_owned(),
        ports,
    })
}

// ---- handlers -----------------------------------------------------------------------------

/// Health check.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "The daemon is up")))]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Lists bridges.
#[utoipa::path(get, path = "/bridges", responses((status = 200, body = [BridgeView])))]
async fn list_bridges(State(app): App) -> Result<Json<Vec<BridgeView>>, ApiError> {
    blocking(&app, |s| {
        s.bridges().iter().map(|b| bridge_view(s, b)).collect()
    })
    .await
    .map(Json)
}

/// Creates a bridge (with `priority=0,actions=NORMAL` and its own port: a tap, or a dummy port
/// with `"datapath_type": "dummy"`).
#[utoipa::path(post, path = "/bridges", request_body = NewBridge,
    responses((status = 201, body = BridgeView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_bridge(
    State(app): App,
    ApiJson(b): ApiJson<NewBridge>,
) -> Result<(StatusCode, Json<BridgeView>), ApiError> {
    let datapath_type = crate::service::datapath_type(b.datapath_type.as_deref())?;
    blocking(&app, move |s| {
        s.add_bridge(&b.name, datapath_type)?;
        bridge_view(s, &b.name)
    })
    .await
    .map(|v| (StatusCode::CREATED, Json(v)))
}

/// Shows a bridge.
#[utoipa::path(get, path = "/bridges/{bridge}", responses((status = 200, body = BridgeView), (status = 404, body = ErrorBody)))]
async fn show_bridge(
    State(app): App,
    Path(br): Path<String>,
) -> Result<Json<BridgeView>, ApiError> {
    blocking(&app, move |s| bridge_view(s, &br)).await.map(Json)
}

/// Deletes a bridge and its ports.
#[utoipa::path(delete, path = "/bridges/{bridge}", responses((status = 204), (status = 404, body = ErrorBody)))]
async fn del_bridge(State(app): App, Path(br): Path<String>) -> Result<StatusCode, ApiError> {
    blocking(&app, move |s| s.del_bridge(&br)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the ports of a bridge with their counters.
#[utoipa::path(get, path = "/bridges/{bridge}/ports", responses((status = 200, body = [PortView]), (status = 404, body = ErrorBody)))]
async fn list_ports(
    State(app): App,
    Path(br): Path<String>,
) -> Result<Json<Vec<PortView>>, ApiError> {
    blocking(&app, move |s| Ok(bridge_view(s, &br)?.ports))
        .await
        .map(Json)
}

/// Adds a port.
#[utoipa::path(post, path = "/bridges/{bridge}/ports", request_body = NewPort,
    responses((status = 201, body = PortView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_port(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(p): ApiJson<NewPort>,
) -> Result<(StatusCode, Json<PortView>), ApiError> {
    blocking(&app, move |s| {
        let entry = PortEntry {
            name: p.name,
            r#type: p.r#type,
            ofport: p.ofport.unwrap_or(0),
            options: p.options,
        };
        let info = s.add_port(&br, entry)?;
        Ok(port_view(s, &br, info))
    })
    .await
    .map(|v| (StatusCode::CREATED, Json(v)))
}

/// Shows a port (by name or number) with its counters.
#[utoipa::path(get, path = "/bridges/{bridge}/ports/{port}", responses((status = 200, body = PortView), (status = 404, body = ErrorBody)))]
async fn show_port(
    State(app): App,
    Path((br, port)): Path<(String, String)>,
) -> Result<Json<PortView>, ApiError> {
    blocking(&app, move |s| {
        let info = s.port(&br, &port)?;
        Ok(port_view(s, &br, info))
    })
    .await
    .map(Json)
}

/// Deletes a port (by name or number).
#[utoipa::path(delete, path = "/bridges/{bridge}/ports/{port}", responses((status = 204), (status = 404, body = ErrorBody)))]
async fn del_port(
    State(app): App,
    Path((br, port)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    blocking(&app, move |s| s.del_port(&br, &port)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists flows with counters.
#[utoipa::path(get, path = "/bridges/{bridge}/flows", responses((status = 200, body = [FlowView]), (status = 404, body = ErrorBody)))]
async fn list_flows(
    State(app): App,
    Path(br): Path<String>,
) -> Result<Json<Vec<FlowView>>, ApiError> {
    blocking(&app, move |s| {
        let names = s.names(&br)?;
        let now = switch_core::datapath::clock::now_ms();
        Ok(s.flows(&br)?
            .iter()
            .map(|r| FlowView {
                table: r.table,
                priority: r.priority,
                cookie: r.cookie,
                n_packets: r.stats.packets(),
                n_bytes: r.stats.bytes(),
                duration_secs: now.saturating_sub(r.created_ms) as f64 / 1000.0,
                text: flow_table::flow_syntax::format_rule(r, now, &|n| names.get(&n).cloned())
                    .trim_start()
                    .to_owned(),
            })
            .collect())
    })
    .await
    .map(Json)
}

/// Adds one flow or many (all or nothing).
#[utoipa::path(post, path = "/bridges/{bridge}/flows", request_body = NewFlows,
    responses((status = 201), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_flows(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(body): ApiJson<NewFlows>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let mut flows = body.flows;
    flows.extend(body.flow);
    if flows.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "no flow given: send {\"flow\": \"...\"} or {\"flows\": [...]}".into(),
            serde_json::Value::Null,
        ));
    }
    let n = blocking(&app, move |s| s.add_flows(&br, &flows)).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "added": n }))))
}

/// Deletes flows: those the match covers, or with `strict` the one with that exact match and
/// priority. No body: every flow.
#[utoipa::path(delete, path = "/bridges/{bridge}/flows", request_body = FlowSelection,
    responses((status = 200), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn del_flows(
    State(app): App,
    Path(br): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    // The body is optional: none means every flow.
    let sel: FlowSelection = if body.iter().all(u8::is_ascii_whitespace) {
        FlowSelection::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
                serde_json::Value::Null,
            )
        })?
    };
    let n = blocking(&app, move |s| s.del_flows(&br, &sel.flow, sel.strict)).await?;
    Ok(Json(serde_json::json!({ "deleted": n })))
}

/// Modifies the actions of flows (`mod-flows`).
#[utoipa::path(patch, path = "/bridges/{bridge}/flows", request_body = FlowSelection,
    responses((status = 200), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn mod_flows(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(sel): ApiJson<FlowSelection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = blocking(&app, move |s| s.mod_flows(&br, &sel.flow, sel.strict)).await?;
    Ok(Json(serde_json::json!({ "modified": n })))
}

/// The MAC learning table.
#[utoipa::path(get, path = "/bridges/{bridge}/fdb", responses((status = 200, body = [FdbView]), (status = 404, body = ErrorBody)))]
async fn fdb(State(app): App, Path(br): Path<String>) -> Result<Json<Vec<FdbView>>, ApiError> {
    blocking(&app, move |s| {
        Ok(s.switch()
            .fdb(&br)?
            .into_iter()
            .map(|r| FdbView {
                port: r.port,
                vlan: r.vlan,
                mac: r.mac,
                age: r.age_secs,
                is_static: r.is_static,
            })
            .collect())
    })
    .await
    .map(Json)
}

/// Pins a MAC address to a port; NORMAL then sends there without learning it.
#[utoipa::path(post, path = "/bridges/{bridge}/fdb", request_body = NewFdbEntry, responses((status = 201), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn fdb_add(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(e): ApiJson<NewFdbEntry>,
) -> Result<StatusCode, ApiError> {
    let mac = parse_mac(&e.mac)?;
    blocking(&app, move |s| {
        Ok(s.switch().fdb_add(&br, &e.port, e.vlan, mac)?)
    })
    .await?;
    Ok(StatusCode::CREATED)
}

/// Forgets a MAC address (static or learned).
#[utoipa::path(delete, path = "/bridges/{bridge}/fdb/{vlan}/{mac}", responses((status = 204), (status = 404, body = ErrorBody)))]
async fn fdb_del(
    State(app): App,
    Path((br, vlan, mac)): Path<(String, u16, String)>,
) -> Result<StatusCode, ApiError> {
    let m = parse_mac(&mac)?;
    let had = blocking(&app, move |s| Ok(s.switch().fdb_del(&br, vlan, m)?)).await?;
    if had {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ServiceError::NotFound(format!("no FDB entry for {mac} in VLAN {vlan}")).into())
    }
}

/// PMD thread counters.
#[utoipa::path(get, path = "/pmd-stats", responses((status = 200, body = [PmdView])))]
async fn pmd_stats(State(app): App) -> Result<Json<Vec<PmdView>>, ApiError> {
    blocking(&app, |s| {
        Ok(s.switch()
            .pmd_stats()
            .into_iter()
            .map(PmdView::from)
            .collect())
    })
    .await
    .map(Json)
}

/// Zeroes the PMD counters.
#[utoipa::path(delete, path = "/pmd-stats", responses((status = 204)))]
async fn clear_pmd_stats(State(app): App) -> Result<StatusCode, ApiError> {
    blocking(&app, |s| Ok(s.switch().clear_pmd_stats()?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The megaflows the PMD threads hold for a bridge.
#[utoipa::path(get, path = "/bridges/{bridge}/megaflows", responses((status = 200, body = [MegaflowView]), (status = 404, body = ErrorBody)))]
async fn megaflows(
    State(app): App,
    Path(br): Path<String>,
) -> Result<Json<Vec<MegaflowView>>, ApiError> {
    blocking(&app, move |s| {
        let names = s.names(&br)?;
        let now = switch_core::datapath::clock::now_ms();
        let name = |n: u32| names.get(&n).cloned();
        Ok(s.switch()
            .megaflows(&br)?
            .into_iter()
            .map(|m| MegaflowView {
                pmd: m.pmd,
                r#match: flow_table::flow_syntax::format_match_named(&m.r#match, &name),
                actions: flow_table::actions::List(&m.actions).to_string(),
                packets: m.packets,
                bytes: m.bytes,
                used_secs: now.saturating_sub(m.used_ms) as f64 / 1000.0,
            })
            .collect())
    })
    .await
    .map(Json)
}

/// The running configuration as the state file writes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigView {
    /// Bridges, ports, mirrors, namespaces and flows in TOML (flows with ports by number).
    pub toml: String,
}

/// The running configuration in the state file's TOML (`vswitchctl dump-config`).
#[utoipa::path(get, path = "/config", responses((status = 200, body = ConfigView)))]
async fn dump_config(State(app): App) -> Result<Json<ConfigView>, ApiError> {
    blocking(&app, |s| {
        Ok(ConfigView {
            toml: s.dump_config()?,
        })
    })
    .await
    .map(Json)
}

/// Which PMD thread polls which receive queues.
#[utoipa::path(get, path = "/pmd-rxqs", responses((status = 200, body = [RxqView])))]
async fn pmd_rxqs(State(app): App) -> Result<Json<Vec<RxqView>>, ApiError> {
    blocking(&app, |s| {
        let usage = s.switch().rxq_usage()?;
        Ok(s.switch()
            .rxqs()
            .into_iter()
            .map(|r| RxqView {
                queues: usage
                    .iter()
                    .filter(|u| u.pmd == r.pmd && u.bridge == r.bridge && u.port_no == r.port_no)
                    .map(|u| RxqQueueView {
                        queue: u.queue,
                        cycles: u.cycles,
                        usage_percent: u.usage_percent,
                    })
                    .collect(),
                pmd: r.pmd,
                core: r.core,
                bridge: r.bridge,
                port: r.port,
                ofport: r.port_no,
                rx_queues: r.n_rxq,
            })
            .collect())
    })
    .await
    .map(Json)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vswitchd",
        description = "Management API of the vswitch userspace switch."
    ),
    paths(
        health,
        dump_config,
        list_bridges,
        add_bridge,
        show_bridge,
        del_bridge,
        list_ports,
        add_port,
        show_port,
        del_port,
        list_flows,
        add_flows,
        del_flows,
        mod_flows,
        fdb,
        fdb_add,
        fdb_del,
        pmd_stats,
        clear_pmd_stats,
        pmd_rxqs,
        megaflows,
        net::update_port,
        net::list_mirrors,
        net::add_mirror,
        net::del_mirror,
        net::list_attached,
        net::attach_netns,
        net::detach_netns,
        dummy::receive,
        dummy::sent,
        controller::get_controller,
        controller::set_controller,
        controller::del_controller,
        controller::get_fail_mode,
        controller::set_fail_mode,
        controller::del_fail_mode
    ),
    components(schemas(
        ErrorBody,
        ConfigView,
        NewBridge,
        BridgeView,
        NewPort,
        PortView,
        PortCountersView,
        NewFlows,
        FlowSelection,
        FlowView,
        FdbView,
        PmdView,
        net::PortUpdate,
        net::NewAttachment,
        crate::service::state::MirrorEntry,
        crate::service::state::NetnsEntry,
        dummy::DummyPackets,
        dummy::DummyQueued,
        dummy::DummySent,
        controller::ControllerTargets,
        controller::ControllerView,
        controller::ControllerStatus,
        controller::FailModeBody,
        crate::ofchannel::hub::Role
    ))
)]
struct ApiDoc;

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(trace_capture::ObserveDoc::openapi());
    doc
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

async fn auth(State(app): App, req: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == token);
        if !ok {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
                serde_json::Value::Null,
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "no such route (see /openapi.json)".into(),
        serde_json::Value::Null,
    )
}

/// The router of the whole API.
pub fn router(app: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_json))
        .route("/config", get(dump_config))
        .route("/bridges", get(list_bridges).post(add_bridge))
        .route("/bridges/{bridge}", get(show_bridge).delete(del_bridge))
        .route("/bridges/{bridge}/ports", get(list_ports).post(add_port))
        .route(
            "/bridges/{bridge}/ports/{port}",
            get(show_port).delete(del_port),
        )
        .route(
            "/bridges/{bridge}/flows",
            get(list_flows)
                .post(add_flows)
                .delete(del_flows)
                .patch(mod_flows),
        )
        .route("/bridges/{bridge}/fdb", get(fdb).post(fdb_add))
        .route("/bridges/{bridge}/fdb/{vlan}/{mac}", delete(fdb_del))
        .route("/pmd-stats", get(pmd_stats).delete(clear_pmd_stats))
        .route("/pmd-rxqs", get(pmd_rxqs))
        .route("/bridges/{bridge}/megaflows", get(megaflows))
        .merge(net::routes())
        .merge(dummy::routes())
        .merge(controller::routes())
        .merge(trace_capture::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), auth))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

// Port VLAN settings, mirrors, namespace attachment (issue 8).
mod net;

// OpenFlow controllers and fail mode.
mod controller;

// Frames in and out of dummy ports.
pub mod dummy;

pub mod metrics;
pub mod pcap;
pub mod trace_capture;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_counters_keep_their_json_keys_order_and_schema() {
        let s = ports::PortStats {
            rx_packets: 1,
            tx_checksums: 10,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&PortCountersView::from(s)).unwrap(),
            "{\"rx_packets\":1,\"rx_bytes\":0,\"rx_dropped\":0,\"rx_errors\":0,\
             \"tx_packets\":0,\"tx_bytes\":0,\"tx_dropped\":0,\"tx_errors\":0,\
             \"tx_segments\":0,\"tx_checksums\":10}"
        );
        let schema =
            serde_json::to_value(<PortCountersView as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema["required"][2], "rx_dropped");
        assert_eq!(
            schema["properties"]["rx_dropped"],
            serde_json::json!({ "type": "integer", "format": "int64",
                                "description": "Received packets dropped.", "minimum": 0 })
        );
    }
}
