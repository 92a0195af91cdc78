//! Oracle tests: what `ovs-ofctl ofp-print` makes of the messages this crate encodes.
//!
//! Each test skips, saying so, only when ovs-ofctl is not installed (CI installs it).

use std::process::Command;

use flow_table::MacAddr;
use openflow::error::{encode_error, BadAction, BadMatch, BadRequest};
use openflow::features::{FeaturesReply, PhyPort, CAP_FLOW_STATS, CAP_PORT_STATS};
use openflow::hello::encode_hello;
use openflow::switch_config::SwitchConfig;
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
        !text.contains("***decode error") && !text.contains("too short"),
        "ovs-ofctl could not decode {}:\n{text}",
        hex(m)
    );
    Some(text)
}

#[test]
fn hello_lists_our_versions() {
    let Some(t) = ofp_print(&encode_hello(&Version::ALL, 7)) else {
        return;
    };
    assert!(t.starts_with("OFPT_HELLO (OF1.3) (xid=0x7)"), "{t}");
    assert!(t.contains("version bitmap: 0x01, 0x04"), "{t}");
}

#[test]
fn features_reply() {
    let f = FeaturesReply {
        datapath_id: 0x0000_0200_0000_00ab,
        n_buffers: 0,
        n_tables: 254,
        capabilities: CAP_FLOW_STATS | CAP_PORT_STATS,
        ports: vec![
            PhyPort {
                port_no: 3,
                hw_addr: MacAddr([2, 0, 0, 0, 0, 3]),
                name: "vm3".into(),
                config: 0,
                state: 0,
                curr: 0,
            },
            PhyPort {
                port_no: 0xfffe,
                hw_addr: MacAddr([2, 0, 0, 0, 0, 0xab]),
                name: "br0".into(),
                config: 0,
                state: 0,
                curr: 0,
            },
        ],
    };
    let Some(t) = ofp_print(&f.encode(Version::Of13, 2)) else {
        return;
    };
    assert!(
        t.starts_with("OFPT_FEATURES_REPLY (OF1.3) (xid=0x2): dpid:00000200000000ab"),
        "{t}"
    );
    assert!(t.contains("n_tables:254, n_buffers:0"), "{t}");
    assert!(t.contains("capabilities: FLOW_STATS PORT_STATS"), "{t}");
    let t = ofp_print(&f.encode(Version::Of10, 3)).unwrap();
    assert!(
        t.starts_with("OFPT_FEATURES_REPLY (xid=0x3): dpid:00000200000000ab"),
        "{t}"
    );
    assert!(t.contains(" 3(vm3): addr:02:00:00:00:00:03"), "{t}");
    assert!(t.contains(" LOCAL(br0): addr:02:00:00:00:00:ab"), "{t}");
    assert!(t.contains("actions: output"), "{t}");
}

#[test]
fn errors() {
    let req = echo::barrier_request(Version::Of13, 0x55);
    let cases = [
        (
            ErrorCode::BadRequest(BadRequest::BadType),
            "OFPBRC_BAD_TYPE",
        ),
        (
            ErrorCode::BadRequest(BadRequest::BadMultipart),
            "OFPBRC_BAD_STAT",
        ), // OVS uses the 1.0 name
        (
            ErrorCode::BadAction(BadAction::BadOutPort),
            "OFPBAC_BAD_OUT_PORT",
        ),
        (ErrorCode::BadMatch(BadMatch::BadField), "OFPBMC_BAD_FIELD"),
        (
            ErrorCode::FlowModFailed(openflow::error::FlowModFailed::BadCommand),
            "OFPFMFC_BAD_COMMAND",
        ),
    ];
    for (code, name) in cases {
        let Some(t) = ofp_print(&encode_error(Version::Of13, 0x55, code, &req)) else {
            return;
        };
        assert!(
            t.starts_with(&format!("OFPT_ERROR (OF1.3) (xid=0x55): {name}")),
            "{t}"
        );
        assert!(t.contains("OFPT_BARRIER_REQUEST (OF1.3) (xid=0x55)"), "{t}");
    }
    let req10 = echo::barrier_request(Version::Of10, 1);
    let m = encode_error(
        Version::Of10,
        1,
        ErrorCode::BadRequest(BadRequest::BadMultipart),
        &req10,
    );
    let t = ofp_print(&m).unwrap();
    assert!(
        t.starts_with("OFPT_ERROR (xid=0x1): OFPBRC_BAD_STAT"),
        "{t}"
    );
}

#[test]
fn config_echo_barrier() {
    let c = SwitchConfig {
        flags: 0,
        miss_send_len: 0xffff,
    };
    let Some(t) = ofp_print(&c.encode_reply(Version::Of13, 9)) else {
        return;
    };
    assert!(
        t.starts_with("OFPT_GET_CONFIG_REPLY (OF1.3) (xid=0x9): frags=normal miss_send_len=65535"),
        "{t}"
    );
    let t = ofp_print(&echo::barrier_reply(Version::Of10, 4)).unwrap();
    assert!(t.starts_with("OFPT_BARRIER_REPLY (xid=0x4)"), "{t}");
    let req = echo::echo_request(Version::Of13, 5, b"ping");
    let t = ofp_print(&echo::echo_reply(&req).unwrap()).unwrap();
    assert!(
        t.starts_with("OFPT_ECHO_REPLY (OF1.3) (xid=0x5): 4 bytes of payload"),
        "{t}"
    );
}
