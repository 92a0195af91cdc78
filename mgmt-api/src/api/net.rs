//! REST routes of the network features: changing a port's VLAN settings, mirrors, and
//! attaching network namespaces.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{blocking, port_view, ApiError, ApiJson, App, AppState, PortView};
use crate::service::net::AttachNetns;
use crate::service::state::{MirrorEntry, NetnsEntry};

/// `PATCH /bridges/{bridge}/ports/{port}`: change VLAN settings (an empty value removes one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"options": {"tag": "10"}}))]
pub struct PortUpdate {
    /// `tag`, `trunks`, `vlan_mode`.
    pub options: BTreeMap<String, String>,
}

/// `POST /bridges/{bridge}/netns`: attach a network namespace through a new veth pair.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"netns": "web1", "ip": "10.1.0.5/24", "vlan": 10}))]
pub struct NewAttachment {
    /// The namespace (`ip netns add NAME`).
    pub netns: String,
    /// Address with prefix for the interface in the namespace.
    #[serde(default)]
    pub ip: Option<String>,
    /// Its MAC address.
    #[serde(default)]
    pub mac: Option<String>,
    /// Access VLAN of the switch port.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// Interface name in the namespace (default `eth0`).
    #[serde(default)]
    pub ifname: Option<String>,
    /// Switch port name (default derived from bridge and namespace).
    #[serde(default)]
    pub port: Option<String>,
}

/// Changes a port's VLAN settings.
#[utoipa::path(patch, path = "/bridges/{bridge}/ports/{port}", request_body = PortUpdate,
    responses((status = 200, body = PortView), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn update_port(
    State(app): App,
    Path((br, port)): Path<(String, String)>,
    ApiJson(u): ApiJson<PortUpdate>,
) -> Result<Json<PortView>, ApiError> {
    blocking(&app, move |s| {
        let info = s.set_port_options(&br, &port, &u.options)?;
        Ok(port_view(s, &br, info))
    })
    .await
    .map(Json)
}

/// Lists the mirrors of a bridge.
#[utoipa::path(get, path = "/bridges/{bridge}/mirrors", responses((status = 200, body = [MirrorEntry]), (status = 404, body = super::ErrorBody)))]
pub(super) async fn list_mirrors(
    State(app): App,
    Path(br): Path<String>,
) -> Result<Json<Vec<MirrorEntry>>, ApiError> {
    blocking(&app, move |s| s.mirrors(&br)).await.map(Json)
}

/// Adds a mirror.
#[utoipa::path(post, path = "/bridges/{bridge}/mirrors", request_body = MirrorEntry,
    responses((status = 201), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn add_mirror(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(m): ApiJson<MirrorEntry>,
) -> Result<StatusCode, ApiError> {
    blocking(&app, move |s| s.add_mirror(&br, m)).await?;
    Ok(StatusCode::CREATED)
}

/// Removes a mirror.
#[utoipa::path(delete, path = "/bridges/{bridge}/mirrors/{mirror}", responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub(super) async fn del_mirror(
    State(app): App,
    Path((br, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    blocking(&app, move |s| s.del_mirror(&br, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the namespaces attached to a bridge.
#[utoipa::path(get, path = "/bridges/{bridge}/netns", responses((status = 200, body = [NetnsEntry]), (status = 404, body = super::ErrorBody)))]
pub(super) async fn list_attached(
    State(app): App,
    Path(br): Path<String>,
) -> Result<Json<Vec<NetnsEntry>>, ApiError> {
    blocking(&app, move |s| s.attached(&br)).await.map(Json)
}

/// Attaches a network namespace (a veth pair: one end in the namespace, the other a port).
#[utoipa::path(post, path = "/bridges/{bridge}/netns", request_body = NewAttachment,
    responses((status = 201, body = NetnsEntry), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub(super) async fn attach_netns(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(a): ApiJson<NewAttachment>,
) -> Result<(StatusCode, Json<NetnsEntry>), ApiError> {
    blocking(&app, move |s| {
        s.attach_netns(
            &br,
            AttachNetns {
                netns: a.netns,
                ip: a.ip,
                mac: a.mac,
                vlan: a.vlan,
                ifname: a.ifname,
                port: a.port,
            },
        )
    })
    .await
    .map(|v| (StatusCode::CREATED, Json(v)))
}

/// Detaches a namespace: its port and veth pair go.
#[utoipa::path(delete, path = "/bridges/{bridge}/netns/{netns}", responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub(super) async fn detach_netns(
    State(app): App,
    Path((br, netns)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    blocking(&app, move |s| s.detach_netns(&br, &netns)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes above.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/bridges/{bridge}/ports/{port}", patch(update_port))
        .route(
            "/bridges/{bridge}/mirrors",
            get(list_mirrors).post(add_mirror),
        )
        .route("/bridges/{bridge}/mirrors/{mirror}", delete(del_mirror))
        .route(
            "/bridges/{bridge}/netns",
            get(list_attached).post(attach_netns),
        )
        .route("/bridges/{bridge}/netns/{netns}", delete(detach_netns))
}
