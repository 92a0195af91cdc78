//! The fuzz entry point (feature `fuzzing`): every decoder on arbitrary bytes, for
//! `fuzz/fuzz_targets/openflow_decode.rs` and the randomized test in `tests/`.

use crate::actions::{
    parse_actions10, parse_actions10_in, parse_actions13_in, parse_instructions, put_actions10,
    put_instructions13,
};
use crate::async_config::AsyncConfig;
use crate::flow_mod::FlowMod;
use crate::header::{Header, Version, HEADER_LEN};
use crate::match10::{parse_match10, put_match10};
use crate::multipart::MultipartRequest;
use crate::nicira::{parse_experimenter, Experimenter};
use crate::nxm::{parse_nx_match, put_nx_match};
use crate::oxm::{parse_match13, put_match13};
use crate::packet_out::PacketOut;
use crate::ports::ActionContext;
use crate::request::{ParseOptions, Received, Request};
use crate::role::{encode_role_reply, RoleRequest};
use crate::switch_config::SwitchConfig;

/// Runs `data` (taken as one message, and its body as a match, action list and
/// instructions) through every decoder. Panics only on a bug: a decoder panicking, or a
/// decoded value that does not survive its encoder and decoder again.
pub fn decode_all(data: &[u8]) {
    for v in Version::ALL {
        for (flow_mod_table_id, nxm) in [(false, false), (true, true)] {
            let opts = ParseOptions {
                flow_mod_table_id,
                nxm,
            };
            if let Ok(r) = Received::parse_with(data, v, opts) {
                check_request(data, r);
            }
        }
    }
    let _ = Header::parse(data);
    let _ = FlowMod::parse(data);
    let _ = PacketOut::parse(data);
    let _ = RoleRequest::parse(data);
    let _ = AsyncConfig::parse(data);
    let _ = SwitchConfig::parse(data);
    let _ = parse_experimenter(data);
    let _ = crate::hello::Hello::parse(data);
    let _ = crate::echo::echo_reply(data);
    if let Ok(m) = MultipartRequest::parse(data) {
        let _ = m.flow_filter();
        let _ = m.port_stats_port();
    }
    // The raw bytes as the variable parts of a message.
    let body = data.get(HEADER_LEN..).unwrap_or(data);
    for buf in [data, body] {
        if let Ok(m) = parse_match10(buf) {
            let mut b = Vec::new();
            put_match10(&mut b, &m);
            assert_eq!(parse_match10(&b).expect("re-encoded 1.0 match"), m);
        }
        if let Ok(m) = parse_nx_match(buf) {
            let mut b = Vec::new();
            put_nx_match(&mut b, &m);
            assert_eq!(parse_nx_match(&b).expect("re-encoded NXM match"), m);
        }
        if let Ok(m) = parse_match13(buf) {
            let mut b = Vec::new();
            put_match13(&mut b, &m);
            assert_eq!(parse_match13(&b).expect("re-encoded 1.3 match"), m);
        }
        for ctx in [ActionContext::FlowMod, ActionContext::PacketOut] {
            let _ = parse_actions10_in(buf, ctx);
            let _ = parse_actions13_in(buf, ctx);
        }
        if let Ok(a) = parse_actions10(buf) {
            round_trip10(&a);
        }
        if let Ok(a) = parse_instructions(buf) {
            round_trip13(&a);
        }
    }
}

/// 1.0 actions re-encode to the same list.
fn round_trip10(a: &[flow_table::Action]) {
    let mut b = Vec::new();
    put_actions10(&mut b, a);
    assert_eq!(parse_actions10(&b).expect("re-encoded 1.0 actions"), a);
}

/// 1.3 instructions re-encode to the same list.
fn round_trip13(a: &[flow_table::Action]) {
    let mut b = Vec::new();
    put_instructions13(&mut b, a, None);
    assert_eq!(parse_instructions(&b).expect("re-encoded 1.3 actions"), a);
}

fn check_request(data: &[u8], r: Received<'_>) {
    match r.request {
        Request::FlowMod(f) => {
            let _ = (f.to_rule_spec(), f.to_rule_filter(), f.send_flow_rem());
            // The match and actions survive the encoders that flow statistics use.
            match r.version {
                Version::Of10 => round_trip10(&f.actions),
                Version::Of13 => round_trip13(&f.actions),
            }
            let mut b = Vec::new();
            // An NXT_FLOW_MOD (type VENDOR) has an NXM match.
            let nx = data.get(1) == Some(&4);
            match r.version {
                Version::Of10 if nx => {
                    put_nx_match(&mut b, &f.r#match);
                    assert_eq!(parse_nx_match(&b).expect("NXM match"), f.r#match);
                }
                Version::Of10 => {
                    put_match10(&mut b, &f.r#match);
                    assert_eq!(parse_match10(&b).expect("1.0 match"), f.r#match);
                }
                Version::Of13 => {
                    put_match13(&mut b, &f.r#match);
                    assert_eq!(parse_match13(&b).expect("1.3 match"), f.r#match);
                }
            }
        }
        Request::Multipart(m) => {
            let _ = m.flow_filter();
            let _ = m.port_stats_port();
        }
        Request::SetAsync(c) => {
            let reply = c.encode_reply(r.xid);
            assert_eq!(AsyncConfig::parse(&reply).expect("GET_ASYNC_REPLY"), c);
        }
        Request::RoleRequest(q) => {
            let reply = encode_role_reply(r.xid, q.role, q.generation_id);
            assert_eq!(&reply[8..12], &q.role.wire().to_be_bytes());
            assert_eq!(&reply[16..24], &q.generation_id.to_be_bytes());
        }
        Request::Experimenter(Experimenter::BundleControl(c)) => {
            let reply = c.encode_reply(r.xid);
            assert_eq!(&reply[16..20], &c.bundle_id.to_be_bytes());
        }
        Request::Experimenter(Experimenter::BundleAdd(a)) => {
            // The inner message is what a commit decodes.
            assert!(a.message.len() >= HEADER_LEN && a.message.len() <= data.len());
            let _ = FlowMod::parse(a.message);
        }
        Request::Error { .. } => {
            let _ = crate::error::encode_error(
                r.version,
                r.xid,
                crate::ErrorCode::BadRequest(crate::error::BadRequest::BadLen),
                data,
            );
        }
        _ => {}
    }
}
