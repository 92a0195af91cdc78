//! REST contract tests: every route, good and bad input, against a real datapath (ports are
//! real taps), with the state directory checked after each change.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mgmt_api::api::{router, AppState};
use mgmt_api::service::state::Store;
use mgmt_api::service::Service;
use mgmt_api::DaemonConfig;
use serde_json::{json, Value};
use testkit::require::{can_run, serial_async, Need};
use tower::ServiceExt;

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}{}",
        std::process::id() % 10_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

struct Api {
    app: Arc<AppState>,
    max_body: usize,
    dir: tempfile::TempDir,
}

impl Api {
    fn start(token: Option<&str>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        Api::start_in(dir, token)
    }

    fn start_in(dir: tempfile::TempDir, token: Option<&str>) -> Api {
        let mut cfg = DaemonConfig::default_config();
        cfg.datapath.run_dir = dir.path().join("run");
        let store = Store::open(dir.path()).unwrap();
        let service = Service::start(&cfg, store).expect("service starts");
        Api {
            app: Arc::new(AppState {
                service,
                openflow: Default::default(),
                token: token.map(str::to_owned),
            }),
            max_body: 4096,
            dir,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.raw(method, path, body.map(|b| b.to_string()), None)
            .await
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Body::from(body.unwrap_or_default())).unwrap();
        let resp = router(Arc::clone(&self.app), self.max_body)
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
        };
        (status, v)
    }

    fn saved(&self) -> mgmt_api::service::state::State {
        mgmt_api::service::saved_state(&Store::open(self.dir.path()).unwrap()).unwrap()
    }
}

fn assert_error(r: &(StatusCode, Value), status: StatusCode, needle: &str) {
    assert_eq!(r.0, status, "{:?}", r.1);
    let msg = r.1["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error: {:?}", r.1));
    assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridges() {
    let _s = serial_async().await;
    if !can_run("bridges", &[Need::Tun]) {
        return;
    }
    let api = Api::start(None);
    assert_eq!(api.call("GET", "/health", None).await.0, StatusCode::OK);
    let (st, doc) = api.call("GET", "/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["paths"]["/bridges/{bridge}/flows"].is_object());

    let br = unique("vsa");
    let r = api
        .call("POST", "/bridges", Some(json!({ "name": br })))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{:?}", r.1);
    assert_eq!(r.1["ports"][0]["ofport"], 65534);
    assert_eq!(api.saved().bridges[0].name, br);
    assert_eq!(
        api.saved().bridges[0].flows,
        vec!["priority=0 actions=NORMAL".to_string()]
    );

    assert_error(
        &api.call("POST", "/bridges", Some(json!({ "name": br })))
            .await,
        StatusCode::CONFLICT,
        "already exists",
    );
    assert_error(
        &api.call("POST", "/bridges", Some(json!({ "name": "a/b" })))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid bridge name",
    );
    assert_error(
        &api.call("POST", "/bridges", Some(json!({ "name": 5 })))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid request body",
    );
    assert_error(
        &api.call("POST", "/bridges", Some(json!({ "name": "x", "color": 1 })))
            .await,
        StatusCode::BAD_REQUEST,
        "color",
    );
    assert_error(
        &api.raw("POST", "/bridges", Some("{\"name\":".into()), None)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid request body",
    );
    assert_error(
        &api.call("GET", "/bridges/nope", None).await,
        StatusCode::NOT_FOUND,
        "no bridge named 'nope'",
    );
    assert_error(
        &api.call("GET", "/nowhere", None).await,
        StatusCode::NOT_FOUND,
        "no such route",
    );
    // Nothing the bad requests asked for was recorded.
    assert_eq!(api.saved().bridges.len(), 1);

    let (st, list) = api.call("GET", "/bridges", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        api.call("DELETE", &format!("/bridges/{br}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(api.saved().bridges.is_empty());
    assert_eq!(
        api.call("DELETE", &format!("/bridges/{br}"), None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports() {
    let _s = serial_async().await;
    if !can_run("ports", &[Need::Tun]) {
        return;
    }
    let api = Api::start(None);
    let br = unique("vsa");
    api.call("POST", "/bridges", Some(json!({ "name": br })))
        .await;
    let ports = format!("/bridges/{br}/ports");
    let tap = unique("vsat");
    let r = api
        .call("POST", &ports, Some(json!({ "name": tap, "type": "tap" })))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{:?}", r.1);
    assert_eq!(r.1["ofport"], 1);
    assert_eq!(r.1["driver"], "tap");
    assert_eq!(api.saved().bridges[0].ports[0].name, tap);

    let r = api.call("GET", &format!("{ports}/{tap}"), None).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(r.1["statistics"]["rx_packets"], 0);
    // No traffic yet: no megaflows; an unknown bridge is a 404.
    let r = api
        .call("GET", &format!("/bridges/{br}/megaflows"), None)
        .await;
    assert_eq!((r.0, r.1.clone()), (StatusCode::OK, json!([])));
    assert_error(
        &api.call("GET", "/bridges/nope/megaflows", None).await,
        StatusCode::NOT_FOUND,
        "no bridge",
    );
    // One PMD: it polls the tap and the bridge's own port.
    let r = api.call("GET", "/pmd-rxqs", None).await;
    assert_eq!(r.0, StatusCode::OK);
    let rows = r.1.as_array().unwrap();
    assert!(
        rows.iter()
            .any(|x| x["port"] == tap.as_str() && x["pmd"] == 0 && x["rx_queues"] == 1),
        "{rows:?}"
    );
    assert_eq!(
        api.call("GET", &format!("{ports}/1"), None).await.0,
        StatusCode::OK
    );

    assert_error(
        &api.call("POST", &ports, Some(json!({ "name": tap, "type": "tap" })))
            .await,
        StatusCode::CONFLICT,
        "already exists",
    );
    assert_error(
        &api.call(
            "POST",
            &ports,
            Some(json!({ "name": "x1", "type": "warp" })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "unknown port type",
    );
    // Flows can only name OpenFlow's port numbers.
    assert_error(
        &api.call(
            "POST",
            &ports,
            Some(json!({ "name": "x1", "type": "tap", "ofport": 65280 })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "ofport 65280 out of range",
    );
    assert_error(
        &api.call(
            "POST",
            &ports,
            Some(json!({ "name": "x1", "type": "system", "options": {"speed": "9"} })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "unknown option \"speed\"",
    );
    assert_error(
        &api.call(
            "POST",
            &ports,
            Some(json!({ "name": "x1", "type": "system", "options": {"mode": "fast"} })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "mode=fast",
    );
    assert_error(
        &api.call(
            "POST",
            &ports,
            Some(json!({ "name": "nosuchif0", "type": "system" })),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "cannot open port 'nosuchif0'",
    );
    assert_error(
        &api.call("POST", "/bridges/nope/ports", Some(json!({ "name": "x1" })))
            .await,
        StatusCode::NOT_FOUND,
        "no bridge",
    );
    assert_eq!(
        api.saved().bridges[0].ports.len(),
        1,
        "failed adds left no trace"
    );

    assert_eq!(
        api.call("DELETE", &format!("{ports}/{tap}"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(api.saved().bridges[0].ports.is_empty());
    assert_error(
        &api.call("DELETE", &format!("{ports}/{tap}"), None).await,
        StatusCode::NOT_FOUND,
        "no port",
    );
    api.call("DELETE", &format!("/bridges/{br}"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhost_user_ports() {
    let _s = serial_async().await;
    if !can_run("vhost_user_ports", &[Need::Tun]) {
        return;
    }
    let api = Api::start(None);
    let br = unique("vsv");
    api.call("POST", "/bridges", Some(json!({ "name": br })))
        .await;
    let ports = format!("/bridges/{br}/ports");
    let run = api.dir.path().join("run");
    let (_, doc) = api.call("GET", "/openapi.json", None).await;
    let new_port = &doc["components"]["schemas"]["NewPort"]["properties"];
    for field in ["type", "options"] {
        let d = new_port[field]["description"].as_str().unwrap_or_default();
        assert!(d.contains("vhostuserclient"), "{field}: {d}");
    }

    // Server mode: the socket is <run_dir>/<name>, created at once.
    let r = api
        .call(
            "POST",
            &ports,
            Some(json!({ "name": "vhu0", "type": "vhostuser" })),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{:?}", r.1);
    assert_eq!(r.1["type"], "vhostuser");
    assert_eq!(r.1["socket"], run.join("vhu0").display().to_string());
    assert_eq!(r.1["link_up"], false, "no VM yet");
    assert!(run.join("vhu0").exists());

    // Client mode: the VM's socket need not exist yet (the switch keeps trying).
    let vm_sock = api.dir.path().join("vm1.sock");
    let r = api
        .call(
            "POST",
            &ports,
            Some(json!({ "name": "vm1", "type": "vhostuserclient",
                         "options": { "vhost-server-path": vm_sock.display().to_string() } })),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{:?}", r.1);
    assert_eq!(r.1["socket"], vm_sock.display().to_string());
    assert_eq!(r.1["driver"], "vhostuserclient");

    for (body, why) in [
        (
            json!({ "name": "vm2", "type": "vhostuserclient" }),
            "needs vhost-server-path",
        ),
        (
            json!({ "name": "vm2", "type": "vhostuserclient",
                    "options": { "vhost-server-path": "vm2.sock" } }),
            "vhost-server-path=\"vm2.sock\": want an absolute path",
        ),
        (
            json!({ "name": "vm2", "type": "vhostuserclient",
                    "options": { "vhost-server-pth": "/tmp/vm2.sock" } }),
            "unknown option \"vhost-server-pth\" for type=vhostuserclient \
             (known: vhost-server-path, mtu_request, tag, trunks, vlan_mode)",
        ),
        (
            json!({ "name": "vm2", "type": "vhostuserclient",
                    "options": { "vhost-server-path": format!("/{}", "x".repeat(120)) } }),
            "at most 107 bytes",
        ),
        (
            json!({ "name": "vm2", "type": "vhostuser",
                    "options": { "vhost-server-path": "/tmp/x" } }),
            "unknown option \"vhost-server-path\" for type=vhostuser (known: mtu_request, tag, trunks, vlan_mode)",
        ),
        (
            json!({ "name": "../etc", "type": "vhostuser" }),
            "invalid port name",
        ),
        (
            json!({ "name": "..", "type": "vhostuser" }),
            "invalid port name",
        ),
        (
            json!({ "name": "a/b", "type": "vhostuser" }),
            "invalid port name",
        ),
        (
            json!({ "name": ".vhu", "type": "vhostuser" }),
            "must not start with '.' nor contain '/' or '..'",
        ),
        (
            json!({ "name": "a..b", "type": "vhostuser" }),
            "must not start with '.' nor contain '/' or '..'",
        ),
    ] {
        assert_error(
            &api.call("POST", &ports, Some(body)).await,
            StatusCode::BAD_REQUEST,
            why,
        );
    }
    assert!(!run.join(".vhu").exists() && !run.join("a..b").exists());

    // Past validation, a failure is the port's own: here the socket path is taken by a
    // directory, which the switch must not remove.
    std::fs::create_dir(run.join("busy")).unwrap();
    let r = api
        .call(
            "POST",
            &ports,
            Some(json!({ "name": "busy", "type": "vhostuser" })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "cannot open port 'busy'");
    assert!(run.join("busy").is_dir());

    assert_eq!(api.saved().bridges[0].ports.len(), 2);
    assert_eq!(
        api.saved().bridges[0].ports[1].options["vhost-server-path"],
        vm_sock.display().to_string()
    );

    // A restart brings both back with the same sockets and numbers.
    let Api { app, dir, .. } = api;
    tokio::task::spawn_blocking(move || drop(app))
        .await
        .unwrap();
    assert!(
        !run.join("vhu0").exists(),
        "the socket goes with the daemon"
    );
    let api = Api::start_in(dir, None);
    let r = api.call("GET", &format!("{ports}/vhu0"), None).await;
    assert_eq!(r.0, StatusCode::OK, "{:?}", r.1);
    assert_eq!(r.1["ofport"], 1);
    assert!(run.join("vhu0").exists());
    let r = api.call("GET", &format!("{ports}/vm1"), None).await;
    assert_eq!(r.1["socket"], vm_sock.display().to_string());
    assert_eq!(
        api.call("DELETE", &format!("{ports}/vhu0"), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(!run.join("vhu0").exists());
    api.call("DELETE", &format!("/bridges/{br}"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_fdb_entries() {
    let _s = serial_async().await;
    if !can_run("static_fdb_entries", &[Need::Tun]) {
        return;
    }
    let api = Api::start(None);
    let br = unique("vsf");
    api.call("POST", "/bridges", Some(json!({ "name": br })))
        .await;
    let tap = unique("vsft");
    let r = api
        .call(
            "POST",
            &format!("/bridges/{br}/ports"),
            Some(json!({ "name": tap, "type": "tap" })),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED);
    let fdb = format!("/bridges/{br}/fdb");
    let mac = "02:00:00:00:00:0b";
    let r = api
        .call(
            "POST",
            &fdb,
            Some(json!({ "port": tap, "vlan": 0, "mac": mac })),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{:?}", r.1);
    let r = api.call("GET", &fdb, None).await;
    assert_eq!(r.1[0]["mac"], mac);
    assert_eq!(r.1[0]["port"], 1);
    assert_eq!(r.1[0]["static"], true);
    for (body, status, why) in [
        (
            json!({ "port": tap, "mac": "02:00:00:00:0b" }),
            StatusCode::BAD_REQUEST,
            "invalid MAC",
        ),
        (
            json!({ "port": tap, "mac": "01:00:5e:00:00:01" }),
            StatusCode::BAD_REQUEST,
            "unicast",
        ),
        (
            json!({ "port": tap, "vlan": 5000, "mac": mac }),
            StatusCode::BAD_REQUEST,
            "VLAN",
        ),
        (
            json!({ "port": "nope", "mac": mac }),
            StatusCode::NOT_FOUND,
            "no port",
        ),
    ] {
        assert_error(&api.call("POST", &fdb, Some(body)).await, status, why);
    }
    let one = format!("{fdb}/0/{mac}");
    assert_eq!(
        api.call("DELETE", &one, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &api.call("DELETE", &one, None).await,
        StatusCode::NOT_FOUND,
        "no FDB entry",
    );
    assert_eq!(api.call("GET", &fdb, None).await.1, json!([]));
    api.call("DELETE", &format!("/bridges/{br}"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows() {
    let _s = serial_async().await;
    if !can_run("flows", &[Need::Tun]) {
        return;
    }
    let mut api = Api::start(None);
    let br = unique("vsa");
    api.call("POST", "/bridges", Some(json!({ "name": br })))
        .await;
    let flows = format!("/bridges/{br}/flows");
    let n_flows = |v: &Value| v.as_array().map_or(0, Vec::len);

    let r = api
        .call(
            "POST",
            &flows,
            Some(json!({ "flow": "priority=10,ip,nw_dst=10.0.0.0/8,actions=drop" })),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{:?}", r.1);
    let (_, list) = api.call("GET", &flows, None).await;
    assert_eq!(n_flows(&list), 2);
    assert!(
        list[0]["text"]
            .as_str()
            .unwrap()
            .contains("nw_dst=10.0.0.0/8"),
        "{list:?}"
    );
    assert_eq!(list[0]["n_packets"], 0);

    // A malformed flow: 400, the offending token named, nothing changed.
    let r = api
        .call(
            "POST",
            &flows,
            Some(json!({ "flow": "priority=10,nw_dts=10.0.0.1,actions=drop" })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "nw_dts");
    assert_eq!(r.1["detail"]["token"], "nw_dts=10.0.0.1");

    // Many flows in one request are all or nothing.
    let r = api
        .call(
            "POST",
            &flows,
            Some(json!({ "flows": [
            "priority=20,tcp,tp_dst=80,actions=normal",
            "priority=20,udp,tp_dst=53,actions=outptu:1",
        ] })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "flow 2");
    assert_eq!(n_flows(&api.call("GET", &flows, None).await.1), 2);
    let r = api
        .call(
            "POST",
            &flows,
            Some(json!({ "flows": [
            "priority=20,tcp,tp_dst=80,actions=normal",
            "priority=20,udp,tp_dst=53,cookie=0x5,actions=drop",
        ] })),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{:?}", r.1);
    assert_eq!(api.saved().bridges[0].flows.len(), 4);

    // mod-flows, then strict and non-strict deletes.
    let r = api
        .call("PATCH", &flows, Some(json!({ "flow": "tcp,actions=drop" })))
        .await;
    assert_eq!(r.1["modified"], 1, "{:?}", r.1);
    let r = api
        .call(
            "DELETE",
            &flows,
            Some(json!({ "flow": "priority=20,tcp,tp_dst=81", "strict": true })),
        )
        .await;
    assert_eq!(r.1["deleted"], 0);
    let r = api
        .call("DELETE", &flows, Some(json!({ "flow": "cookie=0x5/-1" })))
        .await;
    assert_eq!(r.1["deleted"], 1, "{:?}", r.1);
    let r = api
        .call("DELETE", &flows, Some(json!({ "flow": "ip" })))
        .await;
    assert_eq!(r.1["deleted"], 2, "{:?}", r.1);
    assert_eq!(
        api.saved().bridges[0].flows,
        vec!["priority=0 actions=NORMAL".to_string()]
    );

    // A body over the limit is refused as such.
    let big = json!({ "flows": vec!["priority=1,actions=drop"; 1000] });
    let r = api.call("POST", &flows, Some(big)).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "invalid request body");

    // Everything survives a restart from the same state directory.
    api.call(
        "POST",
        &flows,
        Some(json!({ "flow": "table=1,priority=5,in_port=LOCAL,actions=drop" })),
    )
    .await;
    let before = api.call("GET", &flows, None).await.1;
    let dir = std::mem::replace(&mut api.dir, tempfile::tempdir().unwrap());
    drop(api);
    let api = Api::start_in(dir, None);
    let after = api.call("GET", &flows, None).await.1;
    let texts = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["text"]
                    .as_str()
                    .unwrap()
                    .split(" priority")
                    .nth(1)
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(texts(&before), texts(&after));
    assert_eq!(
        api.call("GET", &format!("/bridges/{br}"), None).await.0,
        StatusCode::OK
    );

    assert_eq!(
        api.call("GET", &format!("/bridges/{br}/fdb"), None).await.0,
        StatusCode::OK
    );
    let (st, pmds) = api.call("GET", "/pmd-stats", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(pmds.as_array().unwrap().len(), 1);
    assert_eq!(
        api.call("DELETE", "/pmd-stats", None).await.0,
        StatusCode::NO_CONTENT
    );
    api.call("DELETE", &format!("/bridges/{br}"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth() {
    let _s = serial_async().await;
    if !can_run("token_auth", &[Need::Tun]) {
        return;
    }
    let api = Api::start(Some("s3cret"));
    assert_error(
        &api.raw("GET", "/bridges", None, None).await,
        StatusCode::UNAUTHORIZED,
        "token",
    );
    assert_error(
        &api.raw("GET", "/bridges", None, Some("wrong")).await,
        StatusCode::UNAUTHORIZED,
        "token",
    );
    assert_eq!(
        api.raw("GET", "/bridges", None, Some("s3cret")).await.0,
        StatusCode::OK
    );
}
