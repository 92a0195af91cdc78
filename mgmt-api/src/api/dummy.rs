//! REST routes of dummy ports (`type=dummy`, and the own port of `datapath_type=dummy`
//! bridges): injecting frames as if received, and taking the frames the switch sent.
//!
//! Frames travel as hex strings, one per frame, so that a test can write them by hand and a
//! differential test can compare them with what Open vSwitch's `netdev-dummy/receive` takes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use flow_table::wire::hex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{blocking, ApiError, ApiJson, App, AppState};
use crate::service::ServiceError;

/// Shortest frame taken: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Longest frame taken (a pool buffer holds 64 KiB).
pub const MAX_FRAME: usize = 65535;

/// `POST /bridges/{bridge}/ports/{port}/receive`: frames for the port to receive, in order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"packets": ["ffffffffffff02000000000188b568656c6c6f"]}))]
pub struct DummyPackets {
    /// Ethernet frames in hex (upper or lower case, no separators, no FCS), 14 to 65535 bytes
    /// each; at most 4096 in one request.
    pub packets: Vec<String>,
}

/// Answer of `.../receive`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DummyQueued {
    /// Frames queued (all of the request's).
    pub queued: usize,
}

/// Answer of `.../sent`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DummySent {
    /// The frames the port sent since the last call, oldest first, in lower-case hex.
    pub packets: Vec<String>,
    /// Frames sent meanwhile but dropped because the port keeps only the last 4096.
    pub lost: u64,
}

fn bad(i: usize, msg: String) -> ServiceError {
    ServiceError::BadRequest(
        format!("packets[{i}]: {msg}"),
        Some(serde_json::json!({ "field": "packets", "index": i })),
    )
}

/// Decodes the hex frames of a `receive` request; a 400 naming the first frame at fault.
pub fn decode_packets(packets: &[String]) -> Result<Vec<Vec<u8>>, ServiceError> {
    if packets.len() > ports::DUMMY_QUEUE {
        return Err(ServiceError::BadRequest(
            format!(
                "{} packets in one request: at most {} (the port's receive queue)",
                packets.len(),
                ports::DUMMY_QUEUE
            ),
            Some(serde_json::json!({ "field": "packets" })),
        ));
    }
    packets
        .iter()
        .enumerate()
        .map(|(i, text)| decode_frame(text).map_err(|m| bad(i, m)))
        .collect()
}

/// A frame given in hex (dummy ports' `receive`, `trace` with a packet): 14 to 65535 bytes.
pub(crate) fn decode_frame(text: &str) -> Result<Vec<u8>, String> {
    let frame = decode_hex(text)?;
    if frame.len() < MIN_FRAME {
        return Err(format!(
            "frame of {} bytes is shorter than an Ethernet header ({MIN_FRAME})",
            frame.len()
        ));
    }
    if frame.len() > MAX_FRAME {
        return Err(format!(
            "frame of {} bytes is longer than {MAX_FRAME} bytes",
            frame.len()
        ));
    }
    Ok(frame)
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digit = |at: usize, c: u8| {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("{:?} at character {at} is not a hex digit", c as char))
    };
    let b = text.as_bytes();
    if !text.is_ascii() {
        return Err("not hex: non-ASCII characters".into());
    }
    if !b.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", b.len()));
    }
    b.chunks(2)
        .enumerate()
        .map(|(i, pair)| Ok(digit(2 * i, pair[0])? << 4 | digit(2 * i + 1, pair[1])?))
        .collect()
}

/// Queues frames for a dummy port to receive, as if they came off its wire (all or nothing).
#[utoipa::path(post, path = "/bridges/{bridge}/ports/{port}/receive", request_body = DummyPackets,
    responses(
        (status = 200, body = DummyQueued),
        (status = 400, body = super::ErrorBody, description = "bad hex, a frame shorter than 14 or longer than 65535 bytes (`detail.index` names it), more than 4096 frames"),
        (status = 404, body = super::ErrorBody, description = "no such bridge or port"),
        (status = 409, body = super::ErrorBody, description = "the port is not a dummy port"),
        (status = 503, body = super::ErrorBody, description = "the port's receive queue (4096 frames) has no room for them; nothing was queued")))]
pub(super) async fn receive(
    State(app): App,
    Path((br, port)): Path<(String, String)>,
    ApiJson(body): ApiJson<DummyPackets>,
) -> Result<Json<DummyQueued>, ApiError> {
    let frames = decode_packets(&body.packets)?;
    let queued = blocking(&app, move |s| {
        Ok(s.switch().dummy_receive(&br, &port, frames)?)
    })
    .await?;
    Ok(Json(DummyQueued { queued }))
}

/// Takes (drains) the frames a dummy port sent since the last call, oldest first. A request
/// body, if any, is ignored.
#[utoipa::path(post, path = "/bridges/{bridge}/ports/{port}/sent",
    responses(
        (status = 200, body = DummySent),
        (status = 404, body = super::ErrorBody, description = "no such bridge or port"),
        (status = 409, body = super::ErrorBody, description = "the port is not a dummy port")))]
pub(super) async fn sent(
    State(app): App,
    Path((br, port)): Path<(String, String)>,
) -> Result<Json<DummySent>, ApiError> {
    let (frames, lost) =
        blocking(&app, move |s| Ok(s.switch().dummy_take_sent(&br, &port)?)).await?;
    Ok(Json(DummySent {
        packets: frames.iter().map(|f| hex(f)).collect(),
        lost,
    }))
}

/// The routes above.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/bridges/{bridge}/ports/{port}/receive", post(receive))
        .route("/bridges/{bridge}/ports/{port}/sent", post(sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: ServiceError) -> String {
        match e {
            ServiceError::BadRequest(m, d) => format!("{m} {}", d.unwrap_or_default()),
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn a_full_queue_is_a_503() {
        use axum::http::StatusCode;
        let e = ApiError::from(ServiceError::Unavailable("full".into()));
        assert_eq!(e.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn hex_frames_round_trip() {
        let f: Vec<u8> = (0..=255).collect();
        let text = hex(&f);
        assert_eq!(&text[..6], "000102");
        assert_eq!(
            decode_packets(std::slice::from_ref(&text)).unwrap(),
            std::slice::from_ref(&f)
        );
        assert_eq!(
            decode_packets(&[text.to_uppercase()]).unwrap(),
            [f],
            "upper case too"
        );
    }

    #[test]
    fn bad_frames_are_named_by_index() {
        let good = "ab".repeat(14);
        let cases = [
            (
                "zz".repeat(14),
                "packets[1]: 'z' at character 0 is not a hex digit",
            ),
            (
                format!("{good}a"),
                "packets[1]: odd number of hex digits (29)",
            ),
            ("ab".repeat(13), "packets[1]: frame of 13 bytes is shorter"),
            (String::new(), "packets[1]: frame of 0 bytes is shorter"),
            (
                "00".repeat(65536),
                "packets[1]: frame of 65536 bytes is longer than 65535",
            ),
            ("é".repeat(14), "packets[1]: not hex"),
        ];
        for (bad, want) in cases {
            let m = message(decode_packets(&[good.clone(), bad]).unwrap_err());
            assert!(m.starts_with(want), "{m}");
            assert!(m.contains("\"index\":1"), "{m}");
        }
        assert!(decode_packets(&["00".repeat(65535)]).is_ok());
        let many = vec![good; ports::DUMMY_QUEUE + 1];
        assert!(message(decode_packets(&many).unwrap_err()).contains("at most 4096"));
    }
}
