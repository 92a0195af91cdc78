//! Observability routes against a real datapath with real traffic: hosts in namespaces behind
//! the bridge's taps ping each other while `/metrics`, the trace routes and the pcap capture
//! stream are exercised; the capture is read back with `tcpdump -r`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mgmt_api::api::{router, AppState};
use mgmt_api::service::state::Store;
use mgmt_api::service::Service;
use mgmt_api::DaemonConfig;
use serde_json::{json, Value};
use testkit::netns::{unique, Host};
use testkit::require::{can_run, serial_async, Need};
use tower::ServiceExt;

struct Api {
    app: Arc<AppState>,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Api {
    fn start() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = DaemonConfig::default_config();
        cfg.datapath.run_dir = dir.path().join("run");
        let service = Service::start(&cfg, Store::open(dir.path()).unwrap()).unwrap();
        Api {
            app: Arc::new(AppState {
                service,
                openflow: Default::default(),
                token: None,
            }),
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap();
        let resp = router(Arc::clone(&self.app), 1 << 20)
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// A bridge with two taps, each moved into a host namespace; returns the API, the bridge,
/// the tap names and the hosts.
async fn setup(net: u8) -> (Api, String, [String; 2], [Host; 2]) {
    let api = Api::start();
    let br = unique("vso");
    let r = api
        .call("POST", "/bridges", Some(json!({ "name": br })))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let taps = [unique("vsot"), unique("vsot")];
    for t in &taps {
        let r = api
            .call(
                "POST",
                &format!("/bridges/{br}/ports"),
                Some(json!({ "name": t, "type": "tap" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    }
    let hosts = [
        Host::tap(&taps[0], &format!("10.{net}.0.1")),
        Host::tap(&taps[1], &format!("10.{net}.0.2")),
    ];
    assert!(hosts[0].ping_until_ok(&hosts[1].ip, Duration::from_secs(5)));
    (api, br, taps, hosts)
}

/// Parses the Prometheus text format strictly: every line is a `# HELP`, a `# TYPE` or a sample
/// of a declared family. Returns the samples as `name{labels}` -> value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(is_name(name) && !help.is_empty(), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(is_name(name), "{line}");
            assert!(kind == "counter" || kind == "gauge", "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(types.insert(name.into(), kind.into()).is_none(), "{line}");
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        assert!(v.is_finite() && v >= 0.0, "{line}");
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with("vswitch_"), "{line}");
        assert!(types.contains_key(name), "sample before its TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("bad labels: {line}"));
                for pair in inner.split("\",") {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    assert!(is_name(k), "{line}");
                    assert!(["bridge", "port", "pmd", "reason", "queue", "table"].contains(&k));
                    assert!(!v.trim_end_matches('"').contains('"') || v.contains("\\\""));
                }
            }
        }
        assert!(
            samples.insert(series.to_owned(), v).is_none(),
            "duplicate: {line}"
        );
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_with_real_counters() {
    let _s = serial_async().await;
    if !can_run("metrics", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let (api, br, taps, hosts) = setup(221).await;
    // A drop rule for one address: pings to it are policy drops on the first tap.
    let r = api
        .call(
            "POST",
            &format!("/bridges/{br}/flows"),
            Some(json!({ "flow": "priority=100,ip,nw_dst=10.221.0.9,actions=drop" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    hosts[0].arp("10.221.0.9", &hosts[1].mac());
    assert!(!hosts[0].ping("10.221.0.9", 3));
    assert!(hosts[0].ping(&hosts[1].ip, 2));

    let doc = api.call("GET", "/openapi.json", None).await.json();
    for route in [
        "/metrics",
        "/bridges/{bridge}/trace",
        "/bridges/{bridge}/trace-packet",
        "/bridges/{bridge}/ports/{port}/capture",
        "/captures/{id}",
    ] {
        assert!(doc["paths"][route].is_object(), "{route} is not documented");
    }
    let r = api.call("GET", "/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(r.body).unwrap();
    let m = parse_metrics(&text);
    let port =
        |name: &str, tap: &str| m[&format!("vswitch_{name}{{bridge=\"{br}\",port=\"{tap}\"}}")];
    assert!(port("port_rx_packets_total", &taps[0]) >= 5.0, "{text}");
    assert!(port("port_tx_packets_total", &taps[1]) >= 2.0);
    assert!(port("port_rx_bytes_total", &taps[0]) >= 5.0 * 98.0);
    let policy = m[&format!(
        "vswitch_port_drops_total{{bridge=\"{br}\",port=\"{}\",reason=\"policy\"}}",
        taps[0]
    )];
    assert!(policy >= 3.0, "policy drops: {policy}");
    assert!(m.contains_key(&format!(
        "vswitch_port_drops_total{{bridge=\"{br}\",port=\"{}\",reason=\"tx_queue_full\"}}",
        taps[1]
    )));
    assert!(m["vswitch_pmd_packets_total{pmd=\"0\"}"] >= 7.0);
    assert!(m["vswitch_pmd_upcalls_total{pmd=\"0\"}"] >= 1.0);
    assert!(m.contains_key("vswitch_pmd_emc_hits_total{pmd=\"0\"}"));
    assert!(m.contains_key("vswitch_pmd_megaflow_hits_total{pmd=\"0\"}"));
    assert!(m.contains_key("vswitch_pmd_lost_upcalls_total{pmd=\"0\"}"));
    assert!(m["vswitch_pmd_drops_total{pmd=\"0\",reason=\"policy\"}"] >= 3.0);
    let busy = m["vswitch_pmd_busy_percent{pmd=\"0\"}"];
    assert!(busy > 0.0 && busy <= 100.0);
    assert!(m["vswitch_pmd_cycles_per_packet{pmd=\"0\"}"] > 0.0);
    assert!(m["vswitch_pmd_megaflows{pmd=\"0\"}"] >= 1.0);
    assert_eq!(
        m[&format!("vswitch_rules{{bridge=\"{br}\",table=\"0\"}}")],
        2.0
    );
    assert!(
        m[&format!(
            "vswitch_rxq_busy_cycles_total{{pmd=\"0\",bridge=\"{br}\",port=\"{}\",queue=\"0\"}}",
            taps[0]
        )] > 0.0
    );

    // dump-ports shows the same drops.
    let r = api
        .call("GET", &format!("/bridges/{br}/ports/{}", taps[0]), None)
        .await;
    assert!(r.json()["drops"]["policy"].as_u64().unwrap() >= 3);
    assert_eq!(r.json()["drops"]["malformed"], 0);
    // pmd-rxq-show has per-queue shares.
    let r = api.call("GET", "/pmd-rxqs", None).await;
    let rows = r.json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["port"] == taps[0].as_str())
        .unwrap()
        .clone();
    assert!(
        row["queues"][0]["usage_percent"].as_f64().unwrap() > 0.0,
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_routes_show_the_path_of_hypothetical_and_real_packets() {
    let _s = serial_async().await;
    if !can_run("trace_routes", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let (api, br, taps, hosts) = setup(222).await;
    let r = api
        .call(
            "POST",
            &format!("/bridges/{br}/flows"),
            Some(json!({ "flows": [
                "table=0,priority=200,cookie=0x42,ip,nw_dst=10.222.0.2,actions=goto_table:1",
                format!("table=1,priority=10,actions=output:{}", taps[1]),
            ]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let counts = |v: Value| -> Vec<(Value, Value)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| (f["n_packets"].clone(), f["n_bytes"].clone()))
            .collect()
    };
    let flows_before = counts(
        api.call("GET", &format!("/bridges/{br}/flows"), None)
            .await
            .json(),
    );

    let flow = format!(
        "in_port={},dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,ip,nw_dst=10.222.0.2,tcp,tp_dst=80",
        taps[0]
    );
    let r = api
        .call(
            "POST",
            &format!("/bridges/{br}/trace"),
            Some(json!({ "flow": flow })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let t = r.json();
    assert_eq!(t["tables"][0]["table"], 0);
    assert_eq!(t["tables"][0]["priority"], 200);
    assert_eq!(t["tables"][0]["cookie"], "0x42");
    assert_eq!(t["tables"][1]["table"], 1);
    assert_eq!(t["tables"][1]["actions"], format!("output:{}", taps[1]));
    assert_eq!(t["datapath_actions"], "2");
    assert_eq!(t["outputs"], json!([{ "ofport": 2, "name": taps[1] }]));
    assert_eq!(t["drop_reason"], Value::Null);
    let mf = t["megaflow"].as_str().unwrap();
    assert!(
        mf.contains("nw_dst=10.222.0.2") && mf.contains(&format!("in_port={}", taps[0])),
        "{mf}"
    );
    assert!(
        !mf.contains("tp_dst"),
        "the decision does not depend on the TCP port: {mf}"
    );
    assert!(t["text"].as_str().unwrap().contains("Datapath actions: 2"));
    // Nothing was counted or installed.
    let flows_after = counts(
        api.call("GET", &format!("/bridges/{br}/flows"), None)
            .await
            .json(),
    );
    assert_eq!(flows_before, flows_after);
    assert_eq!(
        api.call("GET", &format!("/bridges/{br}/megaflows"), None)
            .await
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["match"].as_str().unwrap().contains("tp_dst=80"))
            .count(),
        0
    );

    // Bad input names the problem.
    let r = api
        .call(
            "POST",
            &format!("/bridges/{br}/trace"),
            Some(json!({ "flow": "ip,nw_dst=10.0.0.1" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("in_port"));
    let r = api
        .call(
            "POST",
            &format!("/bridges/{br}/trace"),
            Some(json!({ "flow": "in_port=1,nw_dst=x" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = api
        .call(
            "POST",
            "/bridges/nope/trace",
            Some(json!({ "flow": "in_port=1" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A real packet: the next ICMP echo on the first tap.
    let [h1, h2] = hosts;
    let pinger = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let ok = h1.ping(&h2.ip, 2);
        (ok, h1, h2)
    });
    let r = api
        .call(
            "POST",
            &format!("/bridges/{br}/trace-packet"),
            Some(json!({ "port": taps[0], "filter": "icmp", "timeout_secs": 5 })),
        )
        .await;
    let (ok, _h1, _h2) = pinger.join().unwrap();
    assert!(ok);
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let t = r.json();
    assert_eq!(t["packet"]["len"], 98);
    assert!(["emc", "megaflow", "upcall"].contains(&t["packet"]["cache"].as_str().unwrap()));
    assert_eq!(t["packet"]["datapath_actions"], "2");
    assert_eq!(t["tables"][0]["cookie"], "0x42");
    // Nothing matching comes: a 404 that says so; a bad timeout is a 400.
    let r = api
        .call(
            "POST",
            &format!("/bridges/{br}/trace-packet"),
            Some(json!({ "port": taps[0], "filter": "udp", "timeout_secs": 0.3 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("no packet matching"));
    let r = api
        .call(
            "POST",
            &format!("/bridges/{br}/trace-packet"),
            Some(json!({ "port": taps[0], "timeout_secs": 600 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_streams_pcap_that_tcpdump_reads() {
    let _s = serial_async().await;
    if !can_run(
        "capture_pcap",
        &[Need::Netns, Need::Tool("ping"), Need::Tool("tcpdump")],
    ) {
        return;
    }
    let (api, br, taps, hosts) = setup(223).await;
    let r = api
        .call(
            "GET",
            &format!("/bridges/{br}/ports/{}/capture?dir=sideways", taps[0]),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("rx, tx or both"));
    let r = api
        .call("GET", &format!("/bridges/{br}/ports/nope/capture"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let [h1, h2] = hosts;
    let pinger = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let ok = h1.ping(&h2.ip, 4);
        (ok, h1, h2)
    });
    // Both directions, stop after 4 frames: two requests in, two replies out.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        api.call(
            "GET",
            &format!("/bridges/{br}/ports/{}/capture?dir=both&count=4", taps[0]),
            None,
        ),
    )
    .await
    .expect("the capture ends after 4 frames");
    let (ok, _h1, _h2) = pinger.join().unwrap();
    assert!(ok);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/vnd.tcpdump.pcap");
    let id = r.headers["x-capture-id"].to_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cap.pcap");
    std::fs::write(&file, &r.body).unwrap();
    let out = std::process::Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let req = lines
        .iter()
        .filter(|l| l.contains("10.223.0.1 > 10.223.0.2: ICMP echo request"))
        .count();
    let rep = lines
        .iter()
        .filter(|l| l.contains("10.223.0.2 > 10.223.0.1: ICMP echo reply"))
        .count();
    assert_eq!((req, rep), (2, 2), "{text}");

    let mut summary = Value::Null;
    for _ in 0..20 {
        summary = api
            .call("GET", &format!("/captures/{id}"), None)
            .await
            .json();
        if summary["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(summary["captured"], 4, "{summary}");
    assert_eq!(summary["lost"], 0);
    assert_eq!(summary["done"], true);
    assert_eq!(
        api.call("GET", "/captures/999999", None).await.status,
        StatusCode::NOT_FOUND
    );
}
