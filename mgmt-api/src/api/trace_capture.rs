//! Observability routes: `/metrics`, traces (`ofproto/trace` of a hypothetical flow, the next
//! real packet matching a filter) and live pcap capture of a port.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flow_table::actions::List;
use serde::{Deserialize, Serialize};
use switch_core::{CaptureDir, PacketTrace, TraceReport};
use utoipa::{OpenApi, ToSchema};

use crate::api::blocking;
use crate::api::{metrics, pcap};
use crate::api::{ApiError, ApiJson, AppState};
use crate::service::ServiceError;

type App = State<Arc<AppState>>;

/// Frames a capture buffers between the datapath and a slow reader by default.
pub const DEFAULT_CAPTURE_BUFFER: usize = 4096;
/// Bytes kept of each captured frame by default.
pub const DEFAULT_SNAPLEN: usize = 65535;
/// Captures whose summary `/captures/{id}` remembers.
const KEPT_CAPTURES: usize = 32;

/// The observability routes (merged into the API's router).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/bridges/{bridge}/trace", post(trace))
        .route("/bridges/{bridge}/trace-packet", post(trace_packet))
        .route("/bridges/{bridge}/ports/{port}/capture", get(capture))
        .route("/captures/{id}", get(capture_summary))
}

/// The OpenAPI description of these routes (merged into the API's document).
#[derive(OpenApi)]
#[openapi(
    paths(metrics_text, trace, trace_packet, capture, capture_summary),
    components(schemas(
        TraceRequest,
        TracePacketRequest,
        TraceView,
        TraceTableView,
        PortRef,
        PacketView,
        CopyView,
        CaptureSummary
    ))
)]
pub struct ObserveDoc;

// ---- metrics --------------------------------------------------------------------------------

/// The switch's counters in the Prometheus text format (version 0.0.4).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
async fn metrics_text(State(app): App) -> Result<Response, ApiError> {
    let text = blocking(&app, metrics::render).await?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

// ---- traces ---------------------------------------------------------------------------------

/// `POST /bridges/{bridge}/trace`: `{"flow": "in_port=1,tcp,nw_dst=10.0.0.2,tp_dst=80"}`, or a
/// real frame: `{"flow": "in_port=1", "packet": "<hex>"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    /// The packet, as a match in `ovs-ofctl` syntax; `in_port` is required. With `packet`, only
    /// `in_port` may be given (the rest comes from the frame).
    pub flow: String,
    /// The frame, in hexadecimal (14 to 65535 bytes): traced as the datapath would handle it
    /// on arrival, and the frames that would leave are returned in `copies`.
    #[serde(default)]
    pub packet: Option<String>,
}

/// A frame that would leave the bridge.
#[derive(Debug, Serialize, ToSchema)]
pub struct CopyView {
    /// The port it leaves by.
    pub port: u32,
    /// The frame, in hexadecimal.
    pub packet: String,
}

/// `POST /bridges/{bridge}/trace-packet`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TracePacketRequest {
    /// The port (name or number) to watch.
    pub port: String,
    /// Which packets to trace, as a match (empty: the next packet).
    #[serde(default)]
    pub filter: String,
    /// How long to wait, in seconds (default 10, at most 60).
    #[serde(default)]
    pub timeout_secs: Option<f64>,
}

/// One table lookup of a trace.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraceTableView {
    /// Table id.
    pub table: u8,
    /// Nesting depth.
    pub depth: usize,
    /// Whether a rule matched.
    pub matched: bool,
    /// Its priority.
    pub priority: Option<u16>,
    /// Its cookie (hex).
    pub cookie: Option<String>,
    /// Its match.
    pub r#match: Option<String>,
    /// Its actions.
    pub actions: Option<String>,
}

/// A trace.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraceView {
    /// Every table consulted, in order.
    pub tables: Vec<TraceTableView>,
    /// The megaflow the datapath would install (match and mask).
    pub megaflow: String,
    /// The datapath actions.
    pub datapath_actions: String,
    /// The ports the packet leaves by.
    pub outputs: Vec<PortRef>,
    /// Why it goes nowhere, if it does.
    pub drop_reason: Option<String>,
    /// The whole trace as `ovs-appctl ofproto/trace` prints it.
    pub text: String,
    /// With a frame: the frames that leave, in output order, as the datapath's actions make
    /// them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<CopyView>>,
    /// Real packets only: the PMD, the cache that decided, the frame length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<PacketView>,
}

/// A port number with its name.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortRef {
    /// Number.
    pub ofport: u32,
    /// Name, when the port exists.
    pub name: Option<String>,
}

/// What the datapath did with a traced real packet.
#[derive(Debug, Serialize, ToSchema)]
pub struct PacketView {
    /// The PMD thread that handled it.
    pub pmd: usize,
    /// `emc`, `megaflow` or `upcall`.
    pub cache: String,
    /// Frame length.
    pub len: usize,
    /// The actions it was given.
    pub datapath_actions: String,
}

fn trace_view(
    r: &TraceReport,
    names: &BTreeMap<u32, String>,
    packet: Option<&PacketTrace>,
) -> TraceView {
    use flow_table::flow_syntax::{format_actions, format_match_named};
    let name = |n: u32| names.get(&n).cloned();
    let mut text = String::new();
    if let Some(p) = packet {
        text.push_str(&format!(
            "Packet: {} bytes on PMD {}, decided by the {}\nDatapath actions executed: {}\n\n",
            p.len,
            p.pmd,
            cache_name(p.hit),
            List(&p.actions)
        ));
    }
    text.push_str(&r.to_text(&name));
    TraceView {
        tables: r
            .tables
            .iter()
            .map(|t| TraceTableView {
                table: t.table,
                depth: t.depth,
                matched: t.rule.is_some(),
                priority: t.rule.as_ref().map(|r| r.priority),
                cookie: t.rule.as_ref().map(|r| format!("{:#x}", r.cookie)),
                r#match: t
                    .rule
                    .as_ref()
                    .map(|r| format_match_named(&r.r#match, &name)),
                actions: t.rule.as_ref().map(|r| format_actions(&r.actions, &name)),
            })
            .collect(),
        megaflow: format_match_named(&r.megaflow, &name),
        datapath_actions: List(&r.actions).to_string(),
        outputs: r
            .outputs
            .iter()
            .map(|&p| PortRef {
                ofport: p,
                name: name(p),
            })
            .collect(),
        drop_reason: r.drop.map(|d| d.name().to_owned()),
        copies: r.copies.as_ref().map(|c| {
            c.iter()
                .map(|(p, f)| CopyView {
                    port: *p,
                    packet: flow_table::wire::hex(f),
                })
                .collect()
        }),
        text,
        packet: packet.map(|p| PacketView {
            pmd: p.pmd,
            cache: cache_name(p.hit).to_owned(),
            len: p.len,
            datapath_actions: List(&p.actions).to_string(),
        }),
    }
}

fn cache_name(h: flow_table::Hit) -> &'static str {
    match h {
        flow_table::Hit::Emc => "emc",
        flow_table::Hit::Megaflow => "megaflow",
        flow_table::Hit::Upcall => "upcall",
    }
}

/// What the bridge would do with a packet (`ofproto/trace`); nothing is sent or counted.
#[utoipa::path(post, path = "/bridges/{bridge}/trace", request_body = TraceRequest,
    responses((status = 200, body = TraceView), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
async fn trace(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(req): ApiJson<TraceRequest>,
) -> Result<Json<TraceView>, ApiError> {
    blocking(&app, move |s| {
        let m = s.parse_match(&br, &req.flow)?;
        if m.mask().0.in_port == 0 {
            return Err(ServiceError::BadRequest(
                "a trace needs the packet's in_port (e.g. \"in_port=1,tcp,tp_dst=80\")".into(),
                Some(serde_json::json!({ "flow": req.flow })),
            ));
        }
        let frame = req
            .packet
            .as_deref()
            .map(|h| parse_frame(h, &req.flow, m.mask()))
            .transpose()?;
        let mut key = *m.key();
        if let Some(f) = &frame {
            key = flow_table::extract(f, key.in_port);
        } else if key.is_ip() && m.mask().0.nw_ttl == 0 {
            // A packet has a TTL; a flow that does not say gets the usual 64 (not 0, which
            // dec_ttl would drop).
            key.nw_ttl = 64;
        }
        let report = s.switch().trace(&br, &key, frame.as_deref())?;
        Ok(trace_view(&report, &s.names(&br)?, None))
    })
    .await
    .map(Json)
}

/// The frame of a trace request (hex, as dummy ports take it), with a flow that gives only
/// in_port.
fn parse_frame(
    hex: &str,
    flow: &str,
    mask: &flow_table::FlowMask,
) -> Result<Vec<u8>, ServiceError> {
    let bad = |why: String| {
        ServiceError::BadRequest(
            why,
            Some(serde_json::json!({ "packet": hex, "flow": flow })),
        )
    };
    let mut only_port = flow_table::FlowMask::EMPTY;
    only_port.0.in_port = u32::MAX;
    if *mask != only_port {
        return Err(bad(
            "with a packet, the flow may give only in_port (the rest comes from the frame)".into(),
        ));
    }
    crate::api::dummy::decode_frame(hex.trim()).map_err(|m| bad(format!("packet: {m}")))
}

/// Traces the next real packet received on a port that matches a filter.
#[utoipa::path(post, path = "/bridges/{bridge}/trace-packet", request_body = TracePacketRequest,
    responses((status = 200, body = TraceView), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody, description = "No such bridge or port, or no matching packet in time")))]
async fn trace_packet(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(req): ApiJson<TracePacketRequest>,
) -> Result<Json<TraceView>, ApiError> {
    let secs = req.timeout_secs.unwrap_or(10.0);
    if !(secs > 0.0 && secs <= 60.0) {
        return Err(ServiceError::BadRequest(
            format!("timeout_secs must be above 0 and at most 60, not {secs}"),
            None,
        )
        .into());
    }
    let wait = Duration::from_secs_f64(secs);
    blocking(&app, move |s| {
        let filter = if req.filter.trim().is_empty() {
            flow_table::Match::any()
        } else {
            s.parse_match(&br, &req.filter)?
        };
        let t = s
            .switch()
            .trace_packet(&br, &req.port, filter, wait)?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "no packet matching '{}' arrived on port {} within {secs} s",
                    req.filter, req.port
                ))
            })?;
        Ok(trace_view(&t.report, &s.names(&br)?, Some(&t)))
    })
    .await
    .map(Json)
}

// ---- capture --------------------------------------------------------------------------------

/// Query of `GET /bridges/{bridge}/ports/{port}/capture`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureQuery {
    /// `rx`, `tx` or `both` (default).
    #[serde(default)]
    pub dir: Option<String>,
    /// Stop after this many frames.
    #[serde(default)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Bytes kept of each frame (default 65535).
    #[serde(default)]
    pub snaplen: Option<usize>,
    /// Frames buffered for a slow reader before frames are lost (default 4096).
    #[serde(default)]
    pub buffer: Option<usize>,
}

/// What `GET /captures/{id}` says about a capture.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureSummary {
    /// Its id (the `x-capture-id` header of the capture's response).
    pub id: u64,
    /// Bridge.
    pub bridge: String,
    /// Port.
    pub port: String,
    /// Frames written to the reader.
    pub captured: u64,
    /// Frames lost because the reader was slower than the port.
    pub lost: u64,
    /// Whether the capture has ended.
    pub done: bool,
}

struct CaptureRecord {
    id: u64,
    bridge: String,
    port: String,
    captured: AtomicU64,
    lost: AtomicU64,
    done: std::sync::atomic::AtomicBool,
}

/// Recent captures, for `/captures/{id}` (the last [`KEPT_CAPTURES`]).
static CAPTURES: Mutex<VecDeque<Arc<CaptureRecord>>> = Mutex::new(VecDeque::new());
static NEXT_CAPTURE: AtomicU64 = AtomicU64::new(1);

fn bad(msg: String) -> ApiError {
    ServiceError::BadRequest(msg, None).into()
}

/// Streams the packets of a port as a pcap file (`tcpdump -r` reads it). The `x-capture-id`
/// header names the capture for `/captures/{id}`.
#[utoipa::path(get, path = "/bridges/{bridge}/ports/{port}/capture",
    params(("dir" = Option<String>, Query, description = "rx, tx or both (default)"),
           ("count" = Option<u64>, Query, description = "stop after this many packets"),
           ("duration" = Option<f64>, Query, description = "stop after this many seconds"),
           ("snaplen" = Option<usize>, Query, description = "bytes kept per packet (default 65535)"),
           ("buffer" = Option<usize>, Query, description = "packets buffered for a slow reader (default 4096)")),
    responses((status = 200, description = "pcap stream", content_type = "application/vnd.tcpdump.pcap"), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
async fn capture(
    State(app): App,
    Path((br, port)): Path<(String, String)>,
    Query(q): Query<CaptureQuery>,
) -> Result<Response, ApiError> {
    let dir_text = q.dir.clone().unwrap_or_default();
    let dir = CaptureDir::parse(&dir_text)
        .ok_or_else(|| bad(format!("dir must be rx, tx or both, not '{dir_text}'")))?;
    let snaplen = q.snaplen.unwrap_or(DEFAULT_SNAPLEN);
    if !(1..=262_144).contains(&snaplen) {
        return Err(bad(format!("snaplen must be 1 to 262144, not {snaplen}")));
    }
    let buffer = q.buffer.unwrap_or(DEFAULT_CAPTURE_BUFFER);
    if !(1..=1_000_000).contains(&buffer) {
        return Err(bad(format!(
            "buffer must be 1 to 1000000 frames, not {buffer}"
        )));
    }
    if let Some(d) = q.duration {
        if !(d > 0.0 && d <= 86_400.0) {
            return Err(bad(format!(
                "duration must be above 0 and at most 86400 s, not {d}"
            )));
        }
    }
    let (b2, p2) = (br.clone(), port.clone());
    let cap = blocking(&app, move |s| {
        Ok(s.switch().capture(&b2, &p2, dir, buffer, snaplen)?)
    })
    .await?;
    let record = Arc::new(CaptureRecord {
        id: NEXT_CAPTURE.fetch_add(1, Ordering::Relaxed),
        bridge: br,
        port,
        captured: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        done: false.into(),
    });
    {
        let mut all = CAPTURES.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() >= KEPT_CAPTURES {
            all.pop_front();
        }
        all.push_back(Arc::clone(&record));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let rec = Arc::clone(&record);
    let count = q.count;
    let until = q
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    // The capture's frames come from PMD threads through a blocking channel: a plain thread
    // turns them into pcap bytes and ends when the count or duration is reached or the reader
    // goes away (dropping the capture disarms it).
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let mut ok = tx
                .blocking_send(Bytes::from(pcap::global_header(snaplen as u32)))
                .is_ok();
            let mut n = 0u64;
            while ok && count.is_none_or(|c| n < c) && until.is_none_or(|u| Instant::now() < u) {
                rec.lost.store(cap.lost(), Ordering::Relaxed);
                match cap.frames().recv_timeout(Duration::from_millis(100)) {
                    Ok(f) => {
                        let mut out = Vec::with_capacity(16 + f.data.len());
                        pcap::write_record(&mut out, f.ts_ns, f.orig_len, &f.data);
                        ok = tx.blocking_send(Bytes::from(out)).is_ok();
                        if ok {
                            n += 1;
                            rec.captured.store(n, Ordering::Relaxed);
                        }
                    }
                    Err(_) => ok = !tx.is_closed(),
                }
            }
            rec.lost.store(cap.lost(), Ordering::Relaxed);
            rec.done.store(true, Ordering::Relaxed);
        })
        .map_err(|e| ApiError::from(ServiceError::Datapath(e.to_string())))?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.tcpdump.pcap"),
    );
    h.insert("x-capture-id", HeaderValue::from(record.id));
    Ok(resp)
}

/// How many packets a capture wrote and lost.
#[utoipa::path(get, path = "/captures/{id}", responses((status = 200, body = CaptureSummary), (status = 404, body = crate::api::ErrorBody)))]
async fn capture_summary(Path(id): Path<u64>) -> Result<Json<CaptureSummary>, ApiError> {
    let all = CAPTURES.lock().unwrap_or_else(|e| e.into_inner());
    let r = all
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::from(ServiceError::NotFound(format!("no capture {id}"))))?;
    Ok(Json(CaptureSummary {
        id,
        bridge: r.bridge.clone(),
        port: r.port.clone(),
        captured: r.captured.load(Ordering::Relaxed),
        lost: r.lost.load(Ordering::Relaxed),
        done: r.done.load(Ordering::Relaxed),
    }))
}
