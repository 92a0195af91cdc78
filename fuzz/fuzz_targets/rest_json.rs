//! The REST API's JSON request bodies on arbitrary bytes: each body type is deserialized as
//! the router does, and what deserializes goes through the checks the service applies before
//! touching the datapath (names, port types and options, VLAN settings, flows). Nothing may
//! panic; every refusal is an error value the API turns into a 4xx.
#![no_main]

use std::path::Path;

use flow_table::flow_syntax::{parse_flow, FlowMode};
use libfuzzer_sys::fuzz_target;
use mgmt_api::api::trace_capture::{TracePacketRequest, TraceRequest};
use mgmt_api::api::{FlowSelection, NewBridge, NewFdbEntry, NewFlows, NewPort};
use mgmt_api::service::state::{MirrorEntry, PortEntry};
use mgmt_api::service::{check_name, datapath_type, net, port_config};

fn ports(name: &str) -> Option<u32> {
    (name == "p1").then_some(1)
}

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            if let Ok(b) = serde_json::from_slice::<NewBridge>(body) {
                let _ = check_name("bridge", &b.name);
                let _ = datapath_type(b.datapath_type.as_deref());
            }
        }
        1 => {
            if let Ok(p) = serde_json::from_slice::<NewPort>(body) {
                let entry = PortEntry {
                    name: p.name,
                    r#type: p.r#type,
                    ofport: p.ofport.unwrap_or(0),
                    options: p.options,
                };
                let _ = check_name("port", &entry.name);
                if let Ok(cfg) = port_config(&entry, Path::new("/run/vswitch")) {
                    let _ = cfg.type_name();
                }
                let _ = net::port_vlan(&entry);
            }
        }
        2 => {
            if let Ok(f) = serde_json::from_slice::<NewFlows>(body) {
                for flow in f.flow.iter().chain(&f.flows).take(64) {
                    let _ = parse_flow(flow, FlowMode::Add, &ports);
                }
            }
        }
        3 => {
            if let Ok(f) = serde_json::from_slice::<FlowSelection>(body) {
                let _ = parse_flow(&f.flow, FlowMode::Delete, &ports);
                let _ = parse_flow(&f.flow, FlowMode::Modify, &ports);
            }
        }
        4 => {
            if let Ok(e) = serde_json::from_slice::<NewFdbEntry>(body) {
                let _ = (e.port.len(), e.vlan, e.mac.parse::<String>());
            }
        }
        5 => {
            if let Ok(t) = serde_json::from_slice::<TraceRequest>(body) {
                let _ = parse_flow(&t.flow, FlowMode::Delete, &ports);
            }
        }
        6 => {
            if let Ok(t) = serde_json::from_slice::<TracePacketRequest>(body) {
                let _ = parse_flow(&t.filter, FlowMode::Delete, &ports);
            }
        }
        _ => {
            if let Ok(m) = serde_json::from_slice::<MirrorEntry>(body) {
                let _ = net::mirror_spec(&m);
            }
        }
    }
});
