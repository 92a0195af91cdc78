//! REST routes of a bridge's OpenFlow controllers and fail mode, as `ovs-vsctl
//! set-controller`/`get-controller`/`del-controller` and `set-fail-mode`/`get-fail-mode`/
//! `del-fail-mode` have them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{blocking, ApiJson, App, AppState};
use crate::ofchannel::hub::Role;
use crate::service::controller::FailMode;

/// `PUT /bridges/{bridge}/controller`: the controllers, replacing any before.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"targets": ["tcp:127.0.0.1:6653"]}))]
pub struct ControllerTargets {
    /// Targets in OVS's syntax: `tcp:IP[:PORT]`, `unix:PATH` (connect), `ptcp:[PORT][:IP]`,
    /// `punix:PATH` (listen; `ptcp` on loopback unless an address is given).
    pub targets: Vec<String>,
}

/// One configured controller and its connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct ControllerView {
    /// The target, as OVS writes it.
    pub target: String,
    /// Whether a controller is connected through it now.
    pub is_connected: bool,
    /// Connections open through it (a passive target may have several).
    pub connections: usize,
    /// Their roles.
    pub roles: Vec<Role>,
    /// Why the last attempt or connection ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `GET /bridges/{bridge}/controller`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ControllerStatus {
    /// The configured controllers.
    pub controllers: Vec<ControllerView>,
    /// `standalone` or `secure`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<String>,
}

/// `PUT /bridges/{bridge}/fail-mode`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"fail_mode": "secure"}))]
pub struct FailModeBody {
    /// `standalone` (NORMAL while no controller is connected) or `secure` (only the flows
    /// installed); absent in a reply when unset (acts as standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<String>,
}

fn status(app: &AppState, bridge: &str) -> Result<ControllerStatus, crate::service::ServiceError> {
    let settings = app.service.controller_settings(bridge)?;
    let conns = app.openflow.conns(bridge);
    let controllers = settings
        .targets
        .iter()
        .map(|t| {
            let target = t.to_string();
            let st = app.openflow.target_status(bridge, &target);
            let roles = conns
                .iter()
                .filter(|c| c.target.as_deref() == Some(target.as_str()))
                .map(|c| c.role)
                .collect();
            ControllerView {
                is_connected: st.connections > 0,
                connections: st.connections,
                roles,
                last_error: st.last_error,
                target,
            }
        })
        .collect();
    Ok(ControllerStatus {
        controllers,
        fail_mode: settings.fail_mode.map(|m| m.name().to_owned()),
    })
}

/// The bridge's controllers, with whether each is connected, and its fail mode.
#[utoipa::path(get, path = "/bridges/{bridge}/controller",
    responses((status = 200, body = ControllerStatus), (status = 404, body = super::ErrorBody)))]
pub(super) async fn get_controller(
    State(app): App,
    Path(br): Path<String>,
) -> Result<Json<ControllerStatus>, super::ApiError> {
    let a = Arc::clone(&app);
    blocking(&app, move |_| status(&a, &br)).await.map(Json)
}

/// Sets the bridge's controllers (replacing any before); connections follow within 200 ms.
#[utoipa::path(put, path = "/bridges/{bridge}/controller", request_body = ControllerTargets,
    responses((status = 200, body = ControllerStatus), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn set_controller(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(body): ApiJson<ControllerTargets>,
) -> Result<Json<ControllerStatus>, super::ApiError> {
    let a = Arc::clone(&app);
    let r = blocking(&app, move |s| {
        s.set_controllers(&br, &body.targets)?;
        status(&a, &br)
    })
    .await
    .map(Json);
    app.openflow.changed.notify_one();
    r
}

/// Removes the bridge's controllers (their connections close).
#[utoipa::path(delete, path = "/bridges/{bridge}/controller",
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub(super) async fn del_controller(
    State(app): App,
    Path(br): Path<String>,
) -> Result<StatusCode, super::ApiError> {
    blocking(&app, move |s| s.set_controllers(&br, &[])).await?;
    app.openflow.changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// The bridge's fail mode (absent when unset).
#[utoipa::path(get, path = "/bridges/{bridge}/fail-mode",
    responses((status = 200, body = FailModeBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn get_fail_mode(
    State(app): App,
    Path(br): Path<String>,
) -> Result<Json<FailModeBody>, super::ApiError> {
    blocking(&app, move |s| {
        let m = s.controller_settings(&br)?.fail_mode;
        Ok(FailModeBody {
            fail_mode: m.map(|m| m.name().to_owned()),
        })
    })
    .await
    .map(Json)
}

/// Sets the bridge's fail mode.
#[utoipa::path(put, path = "/bridges/{bridge}/fail-mode", request_body = FailModeBody,
    responses((status = 200, body = FailModeBody), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn set_fail_mode(
    State(app): App,
    Path(br): Path<String>,
    ApiJson(body): ApiJson<FailModeBody>,
) -> Result<Json<FailModeBody>, super::ApiError> {
    let r = blocking(&app, move |s| {
        let mode = match body.fail_mode.as_deref() {
            Some(m) => Some(FailMode::parse(m)?),
            None => {
                return Err(crate::service::ServiceError::BadRequest(
                    "fail_mode is missing: want standalone or secure".into(),
                    None,
                ))
            }
        };
        s.set_fail_mode(&br, mode)?;
        Ok(FailModeBody {
            fail_mode: mode.map(|m| m.name().to_owned()),
        })
    })
    .await
    .map(Json);
    app.openflow.changed.notify_one();
    r
}

/// Clears the bridge's fail mode (it then acts as standalone).
#[utoipa::path(delete, path = "/bridges/{bridge}/fail-mode",
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
pub(super) async fn del_fail_mode(
    State(app): App,
    Path(br): Path<String>,
) -> Result<StatusCode, super::ApiError> {
    blocking(&app, move |s| s.set_fail_mode(&br, None)).await?;
    app.openflow.changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// The routes of this module.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/bridges/{bridge}/controller",
            get(get_controller)
                .put(set_controller)
                .delete(del_controller),
        )
        .route(
            "/bridges/{bridge}/fail-mode",
            get(get_fail_mode).put(set_fail_mode).delete(del_fail_mode),
        )
}
