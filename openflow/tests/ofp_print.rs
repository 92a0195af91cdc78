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
        (
            ErrorCode::FlowModFailed(openflow::error::FlowModFailed::TableFull),
            "OFPFMFC_TABLE_FULL",
        ),
        (
            ErrorCode::BadInstruction(openflow::error::BadInstruction::BadTableId),
            "OFPBIC_BAD_TABLE_ID",
        ),
        (
            ErrorCode::BadInstruction(openflow::error::BadInstruction::UnsupInst),
            "OFPBIC_UNSUP_INST",
        ),
        (
            ErrorCode::BadAction(BadAction::BadOutGroup),
            "OFPBAC_BAD_OUT_GROUP",
        ),
        (
            ErrorCode::BadAction(BadAction::BadSetType),
            "OFPBAC_BAD_SET_TYPE",
        ),
        (
            ErrorCode::BadMatch(BadMatch::BadPrereq),
            "OFPBMC_BAD_PREREQ",
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

/// A rule as flow-table would hold it after `parse_flow(text)`.
fn rule_of(text: &str, created_ms: u64) -> flow_table::Rule {
    let p =
        flow_table::flow_syntax::parse_flow(text, flow_table::flow_syntax::FlowMode::Add, &|_| {
            None
        })
        .unwrap();
    let s = p.to_rule_spec();
    flow_table::Rule {
        table: s.table,
        priority: s.priority,
        r#match: s.r#match,
        actions: s.actions.into(),
        cookie: s.cookie,
        idle_timeout: s.idle_timeout,
        hard_timeout: s.hard_timeout,
        send_flow_rem: s.send_flow_rem,
        seq: 0,
        created_ms,
        stats: Default::default(),
    }
}

/// Flow statistics print as flows that read back (through flow-table's parser) to the
/// rules they came from.
#[test]
fn flow_stats_reply() {
    use openflow::multipart::{encode_flow_stats, MAX_MSG_LEN};
    let common = [
        "priority=100,in_port=1,ip,nw_dst=10.0.0.0/8,actions=output:2",
        "cookie=0x55,idle_timeout=30,hard_timeout=60,udp,nw_src=192.168.0.0/16,tp_src=53,actions=mod_dl_src:02:00:00:00:00:01,mod_tp_src:5353,IN_PORT",
        "tcp,dl_dst=01:02:03:04:05:06,tp_dst=80,actions=mod_nw_dst:10.0.0.1,mod_tp_dst:8080,output:3",
        "arp,arp_tpa=10.0.0.1,actions=FLOOD",
        "icmp,icmp_type=8,nw_tos=32,actions=NORMAL,LOCAL",
        "dl_vlan=0xffff,actions=drop",
    ];
    let of13_only = [
        "table=1,priority=5,ip,nw_src=1.2.3.4,actions=dec_ttl,goto_table:2",
        "ipv6,ipv6_src=2001:db8::/32,actions=push_vlan:0x8100,output:7",
    ];
    for (v, flows) in [
        (Version::Of10, common.to_vec()),
        (Version::Of13, [&common[..], &of13_only[..]].concat()),
    ] {
        let rules: Vec<_> = flows.iter().map(|f| rule_of(f, 500)).collect();
        rules[0].stats.credit(3, 180, 1000);
        let msgs = encode_flow_stats(v, 9, &rules, 2500, MAX_MSG_LEN);
        assert_eq!(msgs.len(), 1);
        let Some(t) = ofp_print(&msgs[0]) else {
            return;
        };
        let lines: Vec<&str> = t.lines().skip(1).collect();
        assert_eq!(lines.len(), rules.len(), "{t}");
        for (line, rule) in lines.iter().zip(&rules) {
            assert!(line.contains("duration=2s,"), "{line}");
            let back = flow_table::flow_syntax::parse_flow(
                line.trim(),
                flow_table::flow_syntax::FlowMode::Add,
                &|_| None,
            )
            .unwrap_or_else(|e| panic!("{line}: {e}"));
            if line.contains("vlan_tci=0x0000/0x1fff") {
                // OVS reads 1.3's OFPVID_NONE as "no VID, no tag bit": untagged, as is
                // flow-table's 0/0xffff (an untagged packet's TCI is all zero).
                assert_eq!(v, Version::Of13);
                assert_eq!(rule.r#match, flow_table::Match::any().no_vlan());
                continue;
            }
            assert_eq!(back.r#match, rule.r#match, "{v:?} {line}");
            assert_eq!(back.actions, rule.actions.to_vec(), "{v:?} {line}");
            assert_eq!(back.table.unwrap_or(0), rule.table, "{line}");
            assert_eq!(
                (back.priority, back.cookie),
                (rule.priority, rule.cookie),
                "{line}"
            );
        }
        assert!(
            lines[0].contains("n_packets=3, n_bytes=180"),
            "{}",
            lines[0]
        );
    }
}

#[test]
fn desc_reply() {
    let d = openflow::multipart::Desc {
        mfr_desc: "vswitch project".into(),
        hw_desc: "userspace".into(),
        sw_desc: "vswitch 0.1.0".into(),
        serial_num: "None".into(),
        dp_desc: "br0".into(),
    };
    let Some(t) = ofp_print(&d.encode_reply(Version::Of13, 1)) else {
        return;
    };
    assert!(t.starts_with("OFPST_DESC reply (OF1.3) (xid=0x1):"), "{t}");
    assert!(t.contains("Manufacturer: vswitch project"), "{t}");
    assert!(t.contains("DP Description: br0"), "{t}");
}

#[test]
fn port_desc_and_aggregate() {
    use openflow::multipart::{encode_aggregate, encode_port_desc};
    let ports = [PhyPort {
        port_no: 0xfffe,
        hw_addr: MacAddr([2, 0, 0, 0, 0, 0xab]),
        name: "br0".into(),
        config: 0,
        state: 0,
        curr: 0,
    }];
    let Some(t) = ofp_print(&encode_port_desc(4, &ports)) else {
        return;
    };
    assert!(
        t.starts_with("OFPST_PORT_DESC reply (OF1.3) (xid=0x4):"),
        "{t}"
    );
    assert!(t.contains(" LOCAL(br0): addr:02:00:00:00:00:ab"), "{t}");
    let rules = [
        rule_of("ip,actions=output:1", 0),
        rule_of("arp,actions=NORMAL", 0),
    ];
    rules[0].stats.credit(2, 100, 1);
    rules[1].stats.credit(1, 60, 1);
    for v in Version::ALL {
        let t = ofp_print(&encode_aggregate(v, 5, &rules)).unwrap();
        assert!(
            t.contains("packet_count=3 byte_count=160 flow_count=2"),
            "{t}"
        );
    }
}

#[test]
fn table_features() {
    let msgs = openflow::multipart::encode_table_features(6, 2, 1000);
    assert_eq!(msgs.len(), 1);
    let Some(t) = ofp_print(&msgs[0]) else {
        return;
    };
    assert!(
        t.starts_with("OFPST_TABLE_FEATURES reply (OF1.3) (xid=0x6):"),
        "{t}"
    );
    assert!(t.contains("table 0 (\"table0\")"), "{t}");
    assert!(t.contains("max_entries=1000"), "{t}");
    assert!(!t.contains("WARN"), "{t}");
    // 254 tables do not fit one message: paged.
    let all = openflow::multipart::encode_table_features(7, 254, 1000);
    assert!(all.len() > 1);
    for (i, m) in all.iter().enumerate() {
        assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
        let more = u16::from_be_bytes([m[10], m[11]]) == 1;
        assert_eq!(more, i + 1 < all.len());
    }
    // (Too big for ofp-print's command line; ovs_ofctl_add_flow_with_names reads them.)
}
