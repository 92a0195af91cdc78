//! REST contract of dummy ports and `datapath_type=dummy` bridges: frames injected with
//! `.../receive` cross the bridge by its rules and come back from `.../sent`; bad input is a 4xx
//! JSON error; the bridge type survives a restart. Nothing here needs root: a dummy bridge
//! creates no kernel device.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mgmt_api::api::{router, AppState};
use mgmt_api::service::state::Store;
use mgmt_api::service::Service;
use mgmt_api::DaemonConfig;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Api {
    app: Arc<AppState>,
}

impl Api {
    fn start(dir: &std::path::Path) -> Api {
        let mut cfg = DaemonConfig::default_config();
        cfg.datapath.run_dir = dir.join("run");
        let service = Service::start(&cfg, Store::open(dir).unwrap()).expect("service starts");
        Api {
            app: Arc::new(AppState {
                service,
                openflow: Default::default(),
                token: None,
            }),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let resp = router(Arc::clone(&self.app), 64 << 20)
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, v)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (st, v) = self.call(method, path, body).await;
        assert!(st.is_success(), "{method} {path}: {st} {v}");
        v
    }

    /// Takes what `port` sent until `n` frames came (or 5 s passed), as hex.
    async fn take(&self, br: &str, port: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            let v = self
                .ok("POST", &format!("/bridges/{br}/ports/{port}/sent"), None)
                .await;
            assert_eq!(v["lost"], 0);
            got.extend(
                v["packets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_owned()),
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        got
    }
}

fn assert_error(r: &(StatusCode, Value), status: StatusCode, needle: &str) {
    assert_eq!(r.0, status, "{:?}", r.1);
    let msg = r.1["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error: {:?}", r.1));
    assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
}

fn frame(dst: &str, src: &str, tag: u8) -> String {
    format!("{dst}{src}88b5{tag:02x}{}", "00".repeat(45))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dummy_bridges_and_ports_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let br = format!("vsdm{}", std::process::id() % 100_000);

    let doc = api.ok("GET", "/openapi.json", None).await;
    for route in [
        "/bridges/{bridge}/ports/{port}/receive",
        "/bridges/{bridge}/ports/{port}/sent",
    ] {
        assert!(
            doc["paths"][route]["post"].is_object(),
            "{route} is not documented"
        );
    }
    assert!(doc["components"]["schemas"]["NewBridge"]["properties"]["datapath_type"].is_object());

    assert_error(
        &api.call(
            "POST",
            "/bridges",
            Some(json!({ "name": br, "datapath_type": "system" })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "datapath_type",
    );
    let v = api
        .ok(
            "POST",
            "/bridges",
            Some(json!({ "name": br, "datapath_type": "dummy" })),
        )
        .await;
    assert_eq!(v["datapath_type"], "dummy");
    assert_eq!(v["ports"][0]["ofport"], 65534);
    assert_eq!(v["ports"][0]["type"], "dummy");
    assert_eq!(v["ports"][0]["link_up"], true);
    assert!(
        !std::path::Path::new("/sys/class/net").join(&br).exists(),
        "a dummy bridge creates no kernel device"
    );
    for p in ["d1", "d2", "d3"] {
        let v = api
            .ok(
                "POST",
                &format!("/bridges/{br}/ports"),
                Some(json!({ "name": p, "type": "dummy" })),
            )
            .await;
        assert_eq!(
            (&v["type"], &v["driver"]),
            (&json!("dummy"), &json!("dummy"))
        );
    }
    assert_error(
        &api.call(
            "POST",
            &format!("/bridges/{br}/ports"),
            Some(json!({ "name": "d4", "type": "dummy", "options": { "peer": "x" } })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "unknown option \"peer\" for type=dummy",
    );
    api.ok(
        "POST",
        &format!("/bridges/{br}/flows"),
        Some(json!({ "flow": "priority=10,in_port=1,actions=output:2,output:3" })),
    )
    .await;

    let frames: Vec<String> = (0..3)
        .map(|i| frame("020000000009", "020000000001", i))
        .collect();
    let v = api
        .ok(
            "POST",
            &format!("/bridges/{br}/ports/d1/receive"),
            Some(json!({ "packets": frames })),
        )
        .await;
    assert_eq!(v, json!({ "queued": 3 }));
    assert_eq!(api.take(&br, "d2", 3).await, frames);
    assert_eq!(api.take(&br, "3", 3).await, frames);
    let v = api
        .ok("POST", &format!("/bridges/{br}/ports/d2/sent"), None)
        .await;
    assert_eq!(v, json!({ "packets": [], "lost": 0 }), "taking drains");

    // Bad input: 4xx JSON errors that name what is wrong.
    let receive = |port: &str| format!("/bridges/{br}/ports/{port}/receive");
    let r = api
        .call(
            "POST",
            &receive("d1"),
            Some(json!({ "packets": [frames[0], "0g"] })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "packets[1]");
    assert_eq!(r.1["detail"]["index"], 1);
    for bad in ["00".repeat(13), "00".repeat(65536)] {
        assert_error(
            &api.call("POST", &receive("d1"), Some(json!({ "packets": [bad] })))
                .await,
            StatusCode::BAD_REQUEST,
            "packets[0]: frame of",
        );
    }
    assert_error(
        &api.call("POST", &receive("d1"), Some(json!({ "frames": [] })))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid request body",
    );
    assert_error(
        &api.call(
            "POST",
            "/bridges/nobr/ports/d1/receive",
            Some(json!({ "packets": [] })),
        )
        .await,
        StatusCode::NOT_FOUND,
        "no bridge named 'nobr'",
    );
    assert_error(
        &api.call("POST", &receive("nope"), Some(json!({ "packets": [] })))
            .await,
        StatusCode::NOT_FOUND,
        "no port 'nope'",
    );
    api.ok(
        "POST",
        &format!("/bridges/{br}/ports"),
        Some(json!({ "name": "pa", "type": "patch", "options": { "peer": "pb" } })),
    )
    .await;
    assert_error(
        &api.call(
            "POST",
            &receive("pa"),
            Some(json!({ "packets": [frames[0]] })),
        )
        .await,
        StatusCode::CONFLICT,
        "not a dummy port",
    );
    assert_error(
        &api.call("POST", &format!("/bridges/{br}/ports/pa/sent"), None)
            .await,
        StatusCode::CONFLICT,
        "not a dummy port",
    );
    // Nothing of the refused requests reached the bridge.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(api.take(&br, "d2", 0).await.is_empty());

    // The type is saved, and a restart brings the bridge back as it was.
    let saved = mgmt_api::service::saved_state(&Store::open(dir.path()).unwrap()).unwrap();
    assert_eq!(saved.bridges[0].datapath_type, "dummy");
    drop(api);
    let api = Api::start(dir.path());
    let v = api.ok("GET", &format!("/bridges/{br}"), None).await;
    assert_eq!(v["datapath_type"], "dummy");
    let types: Vec<&str> = v["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["dummy", "dummy", "dummy", "patch", "dummy"]);
    // NORMAL after the flow is gone: a broadcast floods to the others, LOCAL included.
    api.ok(
        "DELETE",
        &format!("/bridges/{br}/flows"),
        Some(json!({ "flow": "in_port=1", "strict": false })),
    )
    .await;
    let b = frame("ffffffffffff", "020000000001", 9);
    api.ok("POST", &receive("d1"), Some(json!({ "packets": [b] })))
        .await;
    for p in ["d2", "d3", br.as_str()] {
        assert_eq!(
            api.take(&br, p, 1).await,
            std::slice::from_ref(&b),
            "flooded to {p}"
        );
    }
    api.ok("DELETE", &format!("/bridges/{br}"), None).await;
}

#[test]
fn an_unknown_saved_datapath_type_stops_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("state.toml"),
        "[[bridges]]\nname = \"br0\"\ndatapath_type = \"system\"\n",
    )
    .unwrap();
    let mut cfg = DaemonConfig::default_config();
    cfg.datapath.run_dir = dir.path().join("run");
    let e = Service::start(&cfg, Store::open(dir.path()).unwrap())
        .err()
        .expect("refused");
    assert_eq!(
        e,
        "restoring bridge br0: unknown datapath_type \"system\": want netdev or dummy"
    );
}
