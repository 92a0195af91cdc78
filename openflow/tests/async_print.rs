//! Oracle tests for the switch-to-controller messages added for the controller channel
//! (PACKET_IN, FLOW_REMOVED, PORT_STATUS, PORT stats, role and async replies, bundle
//! replies and errors): what `ovs-ofctl ofp-print` makes of them.
//!
//! Each test skips, saying so, only when ovs-ofctl is not installed.

use std::process::Command;

use flow_table::{MacAddr, Match};
use openflow::async_config::AsyncConfig;
use openflow::bundle::{BundleCtrl, BundleCtrlType, BUNDLE_ATOMIC, BUNDLE_ORDERED};
use openflow::error::{encode_error, BadRequest, BundleFailed, RoleRequestFailed};
use openflow::features::PhyPort;
use openflow::flow_removed::{encode_flow_removed, FlowRemovedMsg, RemovedReason};
use openflow::nicira::encode_nx_role_reply;
use openflow::packet_in::{encode_packet_in, PacketInMsg, NO_BUFFER, REASON_ACTION};
use openflow::port_stats::{encode_port_stats, PortStats};
use openflow::port_status::{encode_port_status, PortReason};
use openflow::role::{encode_role_reply, Role};
use openflow::{echo, ErrorCode, Version};

fn hex(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `ovs-ofctl ofp-print HEX`, or `None` (with a loud skip) when ovs-ofctl is missing.
fn ofp_print(m: &[u8]) -> Option<String> {
    let out = match Command::new("ovs-ofctl")
        .arg("ofp-print")
        .arg(hex(m))
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: ovs-ofctl missing");
            return None;
        }
        Err(e) => panic!("running ovs-ofctl: {e}"),
    };
    assert!(out.status.success(), "ovs-ofctl failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("decode error") && !text.contains("too short"),
        "ovs-ofctl could not decode {}:\n{text}",
        hex(m)
    );
    eprintln!("{text}");
    Some(text)
}

/// An ARP request from 02:00:00:00:00:01 for 10.0.0.2, 42 bytes.
fn arp_frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    f
}

#[test]
fn packet_in() {
    let frame = arp_frame();
    let p = PacketInMsg {
        buffer_id: NO_BUFFER,
        total_len: 60,
        in_port: 0xfffe,
        reason: REASON_ACTION,
        table_id: 2,
        cookie: 0x55,
        tun_id: 0,
        data: &frame,
    };
    let Some(t) = ofp_print(&encode_packet_in(Version::Of10, 0, &p)) else {
        return;
    };
    assert!(
        t.starts_with("OFPT_PACKET_IN (xid=0x0): total_len=60 in_port=LOCAL (via action) data_len=42 (unbuffered)"),
        "{t}"
    );
    assert!(t.contains("arp,"), "{t}");
    assert!(t.contains("arp_tpa=10.0.0.2"), "{t}");
    let mut p13 = p;
    p13.in_port = 3;
    p13.tun_id = 5;
    let t = ofp_print(&encode_packet_in(Version::Of13, 0, &p13)).unwrap();
    assert!(
        t.starts_with("OFPT_PACKET_IN (OF1.3) (xid=0x0): table_id=2 cookie=0x55 total_len=60 tun_id=0x5,in_port=3 (via action) data_len=42 (unbuffered)"),
        "{t}"
    );
    assert!(t.contains("arp_spa=10.0.0.1"), "{t}");
}

#[test]
fn flow_removed() {
    let f = FlowRemovedMsg {
        cookie: 0x77,
        priority: 100,
        reason: RemovedReason::IdleTimeout,
        table_id: 4,
        duration_sec: 12,
        duration_nsec: 500_000_000,
        idle_timeout: 10,
        hard_timeout: 60,
        packet_count: 3,
        byte_count: 180,
        r#match: Match::any()
            .in_port(1)
            .eth_type(0x0800)
            .nw_dst(std::net::Ipv4Addr::new(10, 0, 0, 0), 8),
    };
    let Some(t) = ofp_print(&encode_flow_removed(Version::Of10, &f)) else {
        return;
    };
    assert!(
        t.starts_with("OFPT_FLOW_REMOVED (xid=0x0): priority=100,ip,in_port=1,nw_dst=10.0.0.0/8 reason=idle cookie:0x77 duration12.500s idle10 pkts3 bytes180"),
        "{t}"
    );
    let mut f13 = f;
    f13.reason = RemovedReason::Delete;
    let t = ofp_print(&encode_flow_removed(Version::Of13, &f13)).unwrap();
    assert!(
        t.starts_with("OFPT_FLOW_REMOVED (OF1.3) (xid=0x0): priority=100,ip,in_port=1,nw_dst=10.0.0.0/8 reason=delete table_id=4 cookie:0x77 duration12.500s idle10 hard60 pkts3 bytes180"),
        "{t}"
    );
}

#[test]
fn port_status() {
    let p = PhyPort {
        port_no: 7,
        hw_addr: MacAddr([2, 0, 0, 0, 0, 7]),
        name: "vm7".into(),
        config: 0,
        state: 1,
        curr: 0,
    };
    for (v, tag) in [(Version::Of10, ""), (Version::Of13, " (OF1.3)")] {
        for (r, word) in [
            (PortReason::Add, "ADD"),
            (PortReason::Delete, "DEL"),
            (PortReason::Modify, "MOD"),
        ] {
            let Some(t) = ofp_print(&encode_port_status(v, r, &p)) else {
                return;
            };
            assert!(
                t.starts_with(&format!(
                    "OFPT_PORT_STATUS{tag} (xid=0x0): {word}: 7(vm7): addr:02:00:00:00:00:07"
                )),
                "{t}"
            );
            assert!(t.contains("state:      LINK_DOWN"), "{t}");
        }
    }
}

#[test]
fn port_stats_reply() {
    let stats = [
        PortStats {
            port_no: 1,
            rx_packets: 10,
            tx_packets: 20,
            rx_bytes: 1000,
            tx_bytes: 2000,
            rx_dropped: 1,
            tx_dropped: 2,
            rx_errors: 3,
            tx_errors: 4,
            duration_ms: 5250,
        },
        PortStats {
            port_no: 0xfffe,
            ..Default::default()
        },
    ];
    for v in Version::ALL {
        let msgs = encode_port_stats(v, 8, &stats, openflow::multipart::MAX_MSG_LEN);
        assert_eq!(msgs.len(), 1);
        let Some(t) = ofp_print(&msgs[0]) else {
            return;
        };
        assert!(t.contains("OFPST_PORT reply"), "{t}");
        assert!(t.contains("2 ports"), "{t}");
        assert!(
            t.contains("port  1: rx pkts=10, bytes=1000, drop=1, errs=3, frame=?, over=?, crc=?"),
            "{t}"
        );
        assert!(
            t.contains("tx pkts=20, bytes=2000, drop=2, errs=4, coll=?"),
            "{t}"
        );
        assert!(t.contains("port LOCAL: rx pkts=0"), "{t}");
        if v == Version::Of13 {
            assert!(t.contains("duration=5.250s"), "{t}");
        }
    }
}

#[test]
fn role_and_async_replies() {
    let Some(t) = ofp_print(&encode_role_reply(3, Role::Master, 9)) else {
        return;
    };
    assert!(
        t.starts_with("OFPT_ROLE_REPLY (OF1.3) (xid=0x3): role=primary generation_id=9"),
        "{t}"
    );
    let t = ofp_print(&encode_nx_role_reply(Version::Of10, 4, Role::Slave)).unwrap();
    assert!(
        t.starts_with("NXT_ROLE_REPLY (xid=0x4): role=secondary"),
        "{t}"
    );
    let t = ofp_print(&AsyncConfig::default().encode_reply(5)).unwrap();
    assert!(
        t.starts_with("OFPT_GET_ASYNC_REPLY (OF1.3) (xid=0x5):"),
        "{t}"
    );
    assert!(t.contains("PACKET_IN: no_match action invalid_ttl"), "{t}");
    assert!(
        t.contains("FLOW_REMOVED: idle hard delete group_delete"),
        "{t}"
    );
}

#[test]
fn bundle_reply_and_errors() {
    let c = BundleCtrl {
        bundle_id: 7,
        kind: BundleCtrlType::Commit,
        flags: BUNDLE_ATOMIC | BUNDLE_ORDERED,
    };
    let Some(t) = ofp_print(&c.encode_reply(6)) else {
        return;
    };
    assert!(
        t.starts_with("ONFT_BUNDLE_CONTROL (OF1.3) (xid=0x6):"),
        "{t}"
    );
    assert!(
        t.contains("bundle_id=0x7 type=COMMIT_REPLY flags=atomic ordered"),
        "{t}"
    );
    let req = echo::barrier_request(Version::Of13, 6);
    for (code, name) in [
        (
            ErrorCode::BundleFailed(BundleFailed::BadId),
            "OFPBFC_BAD_ID",
        ),
        (
            ErrorCode::BundleFailed(BundleFailed::MsgFailed),
            "OFPBFC_MSG_FAILED",
        ),
        (
            ErrorCode::BundleFailed(BundleFailed::MsgBadXid),
            "OFPBFC_MSG_BAD_XID",
        ),
        (
            ErrorCode::BundleFailed(BundleFailed::BundleInProgress),
            "OFPBFC_BUNDLE_IN_PROGRESS",
        ),
        (
            ErrorCode::RoleRequestFailed(RoleRequestFailed::Stale),
            "OFPRRFC_STALE",
        ),
        (
            ErrorCode::BadRequest(BadRequest::BufferUnknown),
            "OFPBRC_BUFFER_UNKNOWN",
        ),
        // OVS names these by their 1.0 names in every version.
        (
            ErrorCode::BadRequest(BadRequest::BadExperimenter),
            "OFPBRC_BAD_VENDOR",
        ),
        (
            ErrorCode::BadRequest(BadRequest::BadExpType),
            "OFPBRC_BAD_SUBTYPE",
        ),
        (ErrorCode::BadRequest(BadRequest::Eperm), "OFPBRC_EPERM"),
        (
            ErrorCode::BadRequest(BadRequest::BadPort),
            "OFPBRC_BAD_PORT",
        ),
        (
            ErrorCode::BadRequest(BadRequest::IsSlave),
            "OFPBRC_IS_SECONDARY",
        ),
        (
            ErrorCode::BadAction(openflow::error::BadAction::BadExpType),
            "OFPBAC_BAD_VENDOR_TYPE",
        ),
    ] {
        let t = ofp_print(&encode_error(Version::Of13, 6, code, &req)).unwrap();
        assert!(
            t.starts_with(&format!("OFPT_ERROR (OF1.3) (xid=0x6): {name}")),
            "{t}"
        );
        assert!(t.contains("OFPT_BARRIER_REQUEST (OF1.3) (xid=0x6)"), "{t}");
    }
    let req10 = echo::barrier_request(Version::Of10, 1);
    for (code, name) in [
        (
            ErrorCode::BadRequest(BadRequest::BadExperimenter),
            "OFPBRC_BAD_VENDOR",
        ),
        (
            ErrorCode::BadRequest(BadRequest::BadExpType),
            "OFPBRC_BAD_SUBTYPE",
        ),
        (
            ErrorCode::BadRequest(BadRequest::BufferUnknown),
            "OFPBRC_BUFFER_UNKNOWN",
        ),
    ] {
        let t = ofp_print(&encode_error(Version::Of10, 1, code, &req10)).unwrap();
        assert!(
            t.starts_with(&format!("OFPT_ERROR (xid=0x1): {name}")),
            "{t}"
        );
    }
}

fn seed(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus/openflow_decode")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The decoders of messages ovs-ofctl does not send (ROLE_REQUEST, SET_ASYNC, Nicira's role
/// request) read the seed messages as ofp-print does.
#[test]
fn role_and_async_requests_read_as_ofp_print() {
    use openflow::nicira::{parse_experimenter, Experimenter};
    use openflow::role::RoleRequest;
    let m = seed("of13_role_request_1");
    let r = RoleRequest::parse(&m).unwrap();
    let Some(t) = ofp_print(&m) else {
        return;
    };
    assert_eq!((r.role, r.generation_id), (Role::Master, 7));
    assert!(t.contains("role=primary generation_id=7"), "{t}");

    let m = seed("of13_set_async_1");
    let c = AsyncConfig::parse(&m).unwrap();
    assert_eq!(c, AsyncConfig::default());
    let t = ofp_print(&m).unwrap();
    let printed_default = ofp_print(&AsyncConfig::default().encode_reply(6)).unwrap();
    // Same masks, printed the same (after the first line, which names the message).
    assert_eq!(
        t.lines().skip(1).collect::<Vec<_>>(),
        printed_default.lines().skip(1).collect::<Vec<_>>()
    );

    let m = seed("of10_nx_role_request_1");
    assert_eq!(
        parse_experimenter(&m).unwrap(),
        Experimenter::NxRoleRequest(Role::Master)
    );
    let t = ofp_print(&m).unwrap();
    assert!(
        t.contains("NXT_ROLE_REQUEST (xid=0x8): role=primary"),
        "{t}"
    );
}

#[test]
fn nx_aggregate_reply() {
    let none: [flow_table::Rule; 0] = [];
    let Some(t) = ofp_print(&openflow::multipart::encode_nx_aggregate(5, &none)) else {
        return;
    };
    assert!(
        t.starts_with("NXST_AGGREGATE reply (xid=0x5): packet_count=0 byte_count=0 flow_count=0"),
        "{t}"
    );
}
