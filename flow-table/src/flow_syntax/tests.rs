//! Unit tests of the flow syntax.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use proptest::prelude::*;

use super::match_fields::IP_FRAG;
use super::*;
use crate::actions::SetField;
use crate::fields::Field;
use crate::key::{ethertype, ipproto, FlowKey, FRAG_ANY};
use crate::rule::Rule;
use crate::wire::MacAddr;

fn ports(name: &str) -> Option<u32> {
    match name {
        "vm1" => Some(7),
        "uplink" => Some(100),
        _ => None,
    }
}

fn names(p: u32) -> Option<String> {
    match p {
        7 => Some("vm1".into()),
        100 => Some("uplink".into()),
        _ => None,
    }
}

fn add(s: &str) -> ParsedFlow {
    parse_flow(s, FlowMode::Add, &ports).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn add_err(s: &str) -> FlowParseError {
    parse_flow(s, FlowMode::Add, &ports).unwrap_err()
}

fn del(s: &str) -> Result<ParsedFlow, FlowParseError> {
    parse_flow(s, FlowMode::Delete, &ports)
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ip() -> Match {
    Match::any().eth_type(ethertype::IPV4)
}

#[test]
fn the_example_flow() {
    let f = add("table=0,priority=100,in_port=1,dl_type=0x0800,nw_src=10.0.0.0/24,tcp,tp_dst=80,actions=output:2");
    assert_eq!(f.table, Some(0));
    assert_eq!(f.priority, 100);
    let want = ip()
        .nw_proto(ipproto::TCP)
        .in_port(1)
        .nw_src(v4("10.0.0.0"), 24)
        .tp_dst(80);
    assert_eq!(f.r#match, want);
    assert_eq!(f.actions, vec![Action::Output(2)]);
    assert_eq!(
        format_match(&f.r#match),
        "tcp,in_port=1,nw_src=10.0.0.0/24,tp_dst=80"
    );
    let spec = f.to_rule_spec();
    assert_eq!(spec, RuleSpec::new(100, want, vec![Action::Output(2)]));
}

#[test]
fn defaults() {
    let f = add("actions=drop");
    assert_eq!(f.table, None);
    assert_eq!(f.priority, DEFAULT_PRIORITY);
    assert_eq!(f.r#match, Match::any());
    assert!(f.actions.is_empty());
    assert_eq!(f.to_rule_spec().table, 0);
}

#[test]
fn port_names_resolve() {
    let f = add("in_port=vm1,actions=output:uplink,vm1,resubmit(uplink,3)");
    assert_eq!(f.r#match, Match::any().in_port(7));
    assert_eq!(
        f.actions,
        vec![
            Action::Output(100),
            Action::Output(7),
            Action::Resubmit {
                port: Some(100),
                table: Some(3)
            }
        ]
    );
    let e = add_err("in_port=vm9,actions=drop");
    assert_eq!(e.pos, 0);
    assert!(e.message.contains("unknown port 'vm9'"), "{e}");
}

#[test]
fn l2_fields() {
    let f = add("dl_src=00:11:22:33:44:55,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,dl_vlan=10,dl_vlan_pcp=3,actions=normal");
    let want = Match::any()
        .eth_src([0, 0x11, 0x22, 0x33, 0x44, 0x55])
        .eth_dst_masked([1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0])
        .vlan_vid(10)
        .vlan_pcp(3);
    assert_eq!(f.r#match, want);
    assert_eq!(f.actions, vec![Action::Normal]);
    assert_eq!(
        add("dl_vlan=0xffff,actions=drop").r#match,
        Match::any().no_vlan()
    );
    assert_eq!(
        add("vlan_tci=0x1000/0x1000,actions=drop").r#match,
        Match::any().vlan_tci(0x1000, 0x1000)
    );
    assert_eq!(
        add("dl_type=0x88cc,actions=drop").r#match,
        Match::any().eth_type(0x88cc)
    );
}

#[test]
fn l3_fields() {
    let f = add("ip,nw_src=10.1.0.0/255.255.0.0,nw_dst=192.168.1.1,nw_proto=17,nw_tos=32,nw_ttl=64,ip_frag=no,actions=flood");
    let want = ip()
        .nw_src(v4("10.1.0.0"), 16)
        .nw_dst(v4("192.168.1.1"), 32)
        .nw_proto(17)
        .ip_dscp(8)
        .nw_ttl(64)
        .nw_frag(0, FRAG_ANY);
    assert_eq!(f.r#match, want);
    // A non-prefix mask is kept as written.
    let f = add("ip,nw_dst=10.0.0.1/255.0.255.0,actions=drop");
    assert_eq!(format_match(&f.r#match), "ip,nw_dst=10.0.0.0/255.0.255.0");
    assert_eq!(add("ip,ip_dscp=46,actions=drop").r#match, ip().ip_dscp(46));
    // nw_tos is the DSCP bits, as in ovs-ofctl: nw_tos=3 matches what nw_tos=0 does, and the
    // ECN bits are nw_ecn.
    assert_eq!(add("ip,nw_tos=3,actions=drop").r#match, ip().ip_dscp(0));
    assert_eq!(add("ip,nw_tos=255,actions=drop").r#match, ip().ip_dscp(63));
    let f = add("ip,nw_tos=4,nw_ecn=1,actions=drop");
    assert_eq!(f.r#match, ip().nw_tos(5));
    assert_eq!(format_match(&f.r#match), "ip,nw_tos=4,nw_ecn=1");
    assert_eq!(add("ip,ip_dscp=64,actions=drop").r#match, ip().ip_dscp(0));
    assert!(parse_flow("ip,nw_tos=4/0xfc,actions=drop", FlowMode::Add, &ports).is_err());
    for (name, v, m) in IP_FRAG {
        let f = add(&format!("ip,ip_frag={name},actions=drop"));
        assert_eq!(f.r#match, ip().nw_frag(v, m));
        assert_eq!(format_match(&f.r#match), format!("ip,ip_frag={name}"));
    }
}

#[test]
fn l4_fields_and_aliases() {
    let a = add("tcp,tp_src=1024/0xfc00,tcp_dst=443,actions=drop").r#match;
    assert_eq!(a, ip().nw_proto(6).tp_src_masked(1024, 0xfc00).tp_dst(443));
    assert_eq!(format_match(&a), "tcp,tp_src=0x400/0xfc00,tp_dst=443");
    assert_eq!(
        add("udp,udp_src=53,actions=drop").r#match,
        ip().nw_proto(17).tp_src(53)
    );
    assert_eq!(
        add("icmp,icmp_type=8,icmp_code=0,actions=drop").r#match,
        ip().nw_proto(1).icmp_type(8).icmp_code(0)
    );
    assert_eq!(
        add("tcp,tcp_flags=0x02/0x02,actions=drop").r#match,
        ip().nw_proto(6).tcp_flags(2, 2)
    );
    assert_eq!(
        add("tcp,tcp_flags=+syn-ack,actions=drop").r#match,
        ip().nw_proto(6).tcp_flags(0x02, 0x12)
    );
    let f = add("sctp6,sctp_dst=9,actions=drop");
    assert_eq!(format_match(&f.r#match), "sctp6,tp_dst=9");
}

#[test]
fn shorthands_set_dl_type_and_nw_proto() {
    let cases: [(&str, u16, Option<u8>); 11] = [
        ("ip", 0x0800, None),
        ("ipv6", 0x86dd, None),
        ("arp", 0x0806, None),
        ("tcp", 0x0800, Some(6)),
        ("udp", 0x0800, Some(17)),
        ("sctp", 0x0800, Some(132)),
        ("icmp", 0x0800, Some(1)),
        ("icmp6", 0x86dd, Some(58)),
        ("tcp6", 0x86dd, Some(6)),
        ("udp6", 0x86dd, Some(17)),
        ("sctp6", 0x86dd, Some(132)),
    ];
    for (name, t, p) in cases {
        let mut want = Match::any().eth_type(t);
        if let Some(p) = p {
            want = want.nw_proto(p);
        }
        assert_eq!(add(&format!("{name},actions=drop")).r#match, want, "{name}");
        // Keywords are case-sensitive, as in ovs-ofctl, and print back as the shorthand.
        let upper = name.to_ascii_uppercase();
        assert!(parse_flow(&format!("{upper},actions=drop"), FlowMode::Add, &ports).is_err());
        assert_eq!(format_match(&want), name);
    }
    // Agreeing with a shorthand is fine.
    assert_eq!(
        add("dl_type=0x0800,tcp,nw_proto=6,actions=drop").r#match,
        ip().nw_proto(6)
    );
}

#[test]
fn arp_and_ipv6_fields() {
    let f = add("arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:02,actions=drop");
    let want = Match::any()
        .eth_type(ethertype::ARP)
        .arp_op(1)
        .arp_spa(v4("10.0.0.1"), 32)
        .arp_tpa(v4("10.0.0.0"), 8)
        .arp_sha([0, 0, 0, 0, 0, 1])
        .arp_tha([0, 0, 0, 0, 0, 2]);
    assert_eq!(f.r#match, want);
    assert_eq!(
        format_match(&want),
        "arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_op=1,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:02"
    );
    let f =
        add("ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1,ipv6_label=0x12345,tun_id=0x10,actions=drop");
    let mut want = Match::any()
        .eth_type(ethertype::IPV6)
        .ipv6_src("2001:db8::".parse().unwrap(), 32)
        .ipv6_dst("::1".parse().unwrap(), 128)
        .tun_id(0x10);
    want.set_field(Field::Ipv6Label, 0x12345, 0xfffff);
    assert_eq!(f.r#match, want);
    assert_eq!(
        format_match(&want),
        "ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1,tun_id=0x10,ipv6_label=0x12345"
    );
}

#[test]
fn meta_fields() {
    let f = add("table=3,priority=0,cookie=0xabc,idle_timeout=10,hard_timeout=60,actions=drop");
    assert_eq!(f.table, Some(3));
    assert_eq!(f.priority, 0);
    assert_eq!((f.cookie, f.cookie_mask), (0xabc, 0));
    assert_eq!((f.idle_timeout, f.hard_timeout), (10, 60));
    let spec = f.to_rule_spec();
    assert_eq!(
        (
            spec.table,
            spec.cookie,
            spec.idle_timeout,
            spec.hard_timeout
        ),
        (3, 0xabc, 10, 60)
    );
}

#[test]
fn del_flows_filters() {
    let f = del("table=1,cookie=0x10/0xf0,out_port=vm1,ip").unwrap();
    let filt = f.to_rule_filter();
    assert_eq!(filt.table, Some(1));
    assert_eq!((filt.cookie, filt.cookie_mask), (0x10, 0xf0));
    assert_eq!(del("cookie=0x10/-1").unwrap().cookie_mask, u64::MAX);
    assert_eq!(filt.out_port, Some(7));
    assert_eq!(filt.r#match, ip());
    // A plain cookie selects exactly; an empty string selects everything.
    assert_eq!(del("cookie=5").unwrap().cookie_mask, u64::MAX);
    let all = del("").unwrap().to_rule_filter();
    assert_eq!(all.r#match, RuleFilter::all().r#match);
    assert_eq!(all.table, None);
    assert_eq!(del("table=255").unwrap().table, None);
    // Strict deletion uses the priority.
    assert_eq!(del("priority=7,ip").unwrap().to_rule_filter().priority, 7);
    // mod-flows: a mask selects, a plain cookie is the new value.
    let m = parse_flow("cookie=1/1,actions=drop", FlowMode::Modify, &ports).unwrap();
    assert_eq!((m.cookie, m.cookie_mask), (1, 1));
    let m = parse_flow("cookie=1,actions=drop", FlowMode::Modify, &ports).unwrap();
    assert_eq!((m.cookie, m.cookie_mask), (1, 0));
}

#[test]
fn filters_apply_to_tables() {
    let mut t = crate::RuleTables::new();
    t.add(add("priority=5,ip,actions=output:1").to_rule_spec(), 0)
        .unwrap();
    t.add(add("priority=5,arp,actions=output:2").to_rule_spec(), 0)
        .unwrap();
    let gone = t.delete(&del("ip").unwrap().to_rule_filter(), false);
    assert_eq!(gone.len(), 1);
    assert_eq!(t.len(), 1);
    let gone = t.delete(&del("out_port=2").unwrap().to_rule_filter(), false);
    assert_eq!(gone.len(), 1);
    assert!(t.is_empty());
}

#[test]
fn all_actions() {
    let m = "dl_vlan=5,tcp";
    let f = add(&format!("{m},actions=output:1,2,NORMAL,flood,IN_PORT,LOCAL,mod_vlan_vid:10,mod_vlan_pcp:3,push_vlan:0x8100,strip_vlan,pop_vlan,mod_dl_src:00:00:00:00:00:01,mod_dl_dst:00:00:00:00:00:02,mod_nw_src:1.2.3.4,mod_nw_dst:5.6.7.8,mod_nw_tos:32,mod_nw_ttl:9,mod_tp_src:10,mod_tp_dst:11,dec_ttl,set_tunnel:0x20,resubmit:3,resubmit(,4),resubmit(5,),goto_table:6"));
    use SetField as S;
    let want = vec![
        Action::Output(1),
        Action::Output(2),
        Action::Normal,
        Action::Flood,
        Action::InPort,
        Action::Output(OFPP_LOCAL),
        Action::Set(S::VlanVid(10)),
        Action::Set(S::VlanPcp(3)),
        Action::PushVlan(0x8100),
        Action::PopVlan,
        Action::PopVlan,
        Action::Set(S::EthSrc(MacAddr([0, 0, 0, 0, 0, 1]))),
        Action::Set(S::EthDst(MacAddr([0, 0, 0, 0, 0, 2]))),
        Action::Set(S::Ipv4Src(0x0102_0304)),
        Action::Set(S::Ipv4Dst(0x0506_0708)),
        Action::Set(S::IpTos(32)),
        Action::Set(S::IpTtl(9)),
        Action::Set(S::TpSrc(10)),
        Action::Set(S::TpDst(11)),
        Action::DecTtl,
        Action::Set(S::TunId(0x20)),
        Action::Resubmit {
            port: Some(3),
            table: None,
        },
        Action::Resubmit {
            port: None,
            table: Some(4),
        },
        Action::Resubmit {
            port: Some(5),
            table: None,
        },
        Action::GotoTable(6),
    ];
    assert_eq!(f.actions, want);
    // And they print back to the same list.
    let printed = format_actions(&want, &|_| None);
    assert_eq!(add(&format!("{m},actions={printed}")).actions, want);
}

#[test]
fn actions_as_ovs_ofctl_spells_them() {
    use SetField as S;
    for (s, want) in [
        ("actions=", vec![]),
        ("actions=drop,drop", vec![]),
        (
            "actions=output:1,,output:2,",
            vec![Action::Output(1), Action::Output(2)],
        ),
        (
            "actions=output:1 output:2",
            vec![Action::Output(1), Action::Output(2)],
        ),
        (
            "actions=OUTPUT:1,Normal,LOCAL:1,normal()",
            vec![
                Action::Output(1),
                Action::Normal,
                Action::Output(OFPP_LOCAL),
                Action::Normal,
            ],
        ),
        (
            "actions=output:LOCAL,output:IN_PORT,output:FLOOD,65530",
            vec![
                Action::Output(OFPP_LOCAL),
                Action::InPort,
                Action::Flood,
                Action::Normal,
            ],
        ),
        (
            "actions=output:4294967294,output(3),resubmit(1,2)output:3",
            vec![
                Action::Output(OFPP_LOCAL),
                Action::Output(3),
                Action::Resubmit {
                    port: Some(1),
                    table: Some(2),
                },
                Action::Output(3),
            ],
        ),
        (
            "actions=dec_ttl(1,2),dec_ttl:1,dec_ttl()",
            vec![Action::DecTtl; 3],
        ),
        (
            "actions=resubmit(IN_PORT,1),resubmit(255,255),resubmit( 2, 3)",
            vec![
                Action::Resubmit {
                    port: None,
                    table: Some(1),
                },
                Action::Resubmit {
                    port: Some(255),
                    table: None,
                },
                Action::Resubmit {
                    port: Some(2),
                    table: Some(3),
                },
            ],
        ),
        (
            "actions=mod_vlan_vid:010,set_tunnel:010,goto_table:010",
            vec![
                Action::Set(S::VlanVid(8)),
                Action::Set(S::TunId(8)),
                Action::GotoTable(10),
            ],
        ),
        // OpenFlow's VLAN id form: 0x1000 | VID.
        (
            "dl_vlan=5,actions=set_field:4101->vlan_vid,set_field:0x1000->vlan_vid",
            vec![Action::Set(S::VlanVid(5)), Action::Set(S::VlanVid(0))],
        ),
        (
            "actions=push_vlan:0x8100,set_field:4101->vlan_vid",
            vec![Action::PushVlan(0x8100), Action::Set(S::VlanVid(5))],
        ),
    ] {
        assert_eq!(add(s).actions, want, "{s}");
    }
}

#[test]
fn set_field_action() {
    use SetField as S;
    let cases = [
        (
            "",
            "00:00:00:00:00:09->eth_dst",
            S::EthDst(MacAddr([0, 0, 0, 0, 0, 9])),
        ),
        (
            "",
            "00:00:00:00:00:09->dl_src",
            S::EthSrc(MacAddr([0, 0, 0, 0, 0, 9])),
        ),
        ("dl_vlan=1,", "4196->vlan_vid", S::VlanVid(100)),
        ("dl_vlan=1,", "5->vlan_pcp", S::VlanPcp(5)),
        ("ip,", "10.0.0.1->ip_src", S::Ipv4Src(0x0a00_0001)),
        ("ip,", "10.0.0.2/32->nw_dst", S::Ipv4Dst(0x0a00_0002)),
        ("ipv6,", "46->ip_dscp", S::IpTos(46 << 2)),
        ("ip,", "184->nw_tos", S::IpTos(184)),
        ("ip,", "7->nw_ttl", S::IpTtl(7)),
        ("tcp,", "80->tcp_src", S::TpSrc(80)),
        ("tcp6,", "80->tp_dst", S::TpDst(80)),
        ("udp,", "53->udp_dst", S::TpDst(53)),
        ("sctp,", "9->sctp_src", S::TpSrc(9)),
        ("", "0x5->tun_id", S::TunId(5)),
    ];
    for (m, arg, want) in cases {
        let f = add(&format!("{m}actions=set_field:{arg}"));
        assert_eq!(f.actions, vec![Action::Set(want)], "{arg}");
    }
    for (s, msg) in [
        ("actions=set_field:1->ipv6_label", "not supported"),
        (
            "ip,actions=set_field:1.2.3.0/24->ip_dst",
            "masked set_field",
        ),
        ("actions=set_field:1", "VALUE->FIELD"),
        ("dl_vlan=1,actions=set_field:1->dl_vlan", "vlan_vid"),
        ("ip,actions=set_field:5->nw_tos", "ECN"),
        ("ip,actions=set_field:1.2.3.4->IP_DST", "not supported"),
    ] {
        let e = add_err(s);
        assert!(e.message.contains(msg), "{s}: {e}");
    }
}

#[test]
fn action_prerequisites() {
    for (s, token, what) in [
        ("actions=mod_nw_ttl:5", "mod_nw_ttl:5", "ip or ipv6"),
        (
            "arp,actions=set_field:1.2.3.4->ip_dst",
            "set_field:1.2.3.4->ip_dst",
            "ip (dl_type",
        ),
        (
            "ipv6,actions=set_field:1.2.3.4->ip_dst",
            "set_field:1.2.3.4->ip_dst",
            "ip (dl_type",
        ),
        (
            "udp,actions=set_field:80->tcp_dst",
            "set_field:80->tcp_dst",
            "tcp or tcp6",
        ),
        (
            "actions=set_field:4101->vlan_vid",
            "set_field:4101->vlan_vid",
            "VLAN tag",
        ),
        (
            "dl_vlan=5,actions=pop_vlan,set_field:3->vlan_pcp",
            "set_field:3->vlan_pcp",
            "VLAN",
        ),
        (
            "dl_vlan=0xffff,actions=set_field:4101->vlan_vid",
            "set_field:4101->vlan_vid",
            "VLAN",
        ),
    ] {
        let e = add_err(s);
        assert_eq!(e.token, token, "{s}: {e}");
        assert_eq!(&s[e.pos..e.pos + token.len()], token, "{s}");
        assert!(
            e.message.contains("needs") && e.message.contains(what),
            "{s}: {e}"
        );
    }
    // The OpenFlow 1.0 actions need nothing (they do nothing to packets without the header)...
    for s in [
        "actions=mod_nw_dst:1.2.3.4,mod_nw_tos:4,mod_tp_dst:80,dec_ttl,strip_vlan",
        "arp,actions=mod_nw_src:1.2.3.4",
        "dl_vlan=5,actions=set_field:5->vlan_vid",
        // ...and a tag pushed or set earlier is one set_field may write.
        "actions=mod_vlan_vid:5,set_field:4102->vlan_vid",
        "actions=push_vlan:0x8100,push_vlan:0x8100,pop_vlan,set_field:4101->vlan_vid",
    ] {
        add(s);
    }
    // ...but not with push_vlan, which OpenFlow 1.0 lacks: no version takes both.
    for s in [
        "actions=push_vlan:0x8100,mod_nw_tos:4",
        "actions=strip_vlan,push_vlan:0x8100",
        "dl_vlan=5,actions=push_vlan:0x8100,set_field:5->vlan_vid",
    ] {
        let e = add_err(s);
        assert!(e.message.contains("no OpenFlow version"), "{s}: {e}");
    }
    add("ip,actions=push_vlan:0x8100,mod_nw_tos:4");
}

#[test]
fn goto_table_rules() {
    for (s, token, msg) in [
        (
            "actions=output:1,goto_table:2,output:3",
            "output:3",
            "must be the last",
        ),
        (
            "actions=goto_table:2,output:3",
            "output:3",
            "must be the last",
        ),
        (
            "actions=goto_table:1,goto_table:2",
            "goto_table:2",
            "only once",
        ),
        (
            "table=2,actions=goto_table:2",
            "goto_table:2",
            "later table",
        ),
        (
            "table=3,actions=goto_table:2",
            "goto_table:2",
            "later table",
        ),
        ("actions=goto_table:0", "goto_table:0", "later table"),
        ("actions=goto_table:1,drop", "drop", "only action"),
        ("actions=goto_table:255", "goto_table:255", "does not exist"),
        ("actions=goto_table:256", "goto_table:256", "unknown table"),
    ] {
        let e = add_err(s);
        assert_eq!(e.token, token, "{s}: {e}");
        assert!(e.message.contains(msg), "{s}: {e}");
    }
    assert_eq!(
        add("table=2,actions=output:1,goto_table:3").actions,
        vec![Action::Output(1), Action::GotoTable(3)]
    );
    // mod-flows over every table leaves the check to each rule's table (RuleTables::modify).
    let m = parse_flow("actions=goto_table:0", FlowMode::Modify, &ports).unwrap();
    assert_eq!(m.actions, vec![Action::GotoTable(0)]);
    assert!(parse_flow("table=1,actions=goto_table:0", FlowMode::Modify, &ports).is_err());
}

#[test]
fn errors_point_at_the_token() {
    let s = "in_port=1,nw_dts=10.0.0.1,actions=drop";
    let e = add_err(s);
    assert_eq!(e.pos, 10);
    assert_eq!(e.token, "nw_dts=10.0.0.1");
    assert_eq!(
        e.to_string(),
        "nw_dts=10.0.0.1: unknown field 'nw_dts' (at column 11)"
    );
    assert_eq!(&s[e.pos..e.pos + e.token.len()], e.token);
}

#[test]
fn bad_values() {
    for (s, token, msg) in [
        (
            "ip,nw_src=10.0.0,actions=drop",
            "nw_src=10.0.0",
            "not a valid IPv4",
        ),
        (
            "ip,nw_src=10.0.0.0/33,actions=drop",
            "nw_src=10.0.0.0/33",
            "out of range",
        ),
        (
            "dl_src=00:11:22:33:44,actions=drop",
            "dl_src=00:11:22:33:44",
            "not a valid MAC",
        ),
        (
            "dl_vlan=65536,actions=drop",
            "dl_vlan=65536",
            "out of range",
        ),
        (
            "dl_vlan_pcp=256,actions=drop",
            "dl_vlan_pcp=256",
            "out of range",
        ),
        (
            "dl_type=0x800/0xff00,actions=drop",
            "dl_type=0x800/0xff00",
            "invalid mask",
        ),
        (
            "in_port=1/1,actions=drop",
            "in_port=1/1",
            "cannot be masked",
        ),
        (
            "in_port=70000,actions=drop",
            "in_port=70000",
            "out of range",
        ),
        ("IP,actions=drop", "IP", "unknown field"),
        (
            "tcp,tp_dst=65536,actions=drop",
            "tcp,tp_dst=65536",
            "out of range",
        ),
        ("in_port=abc!,actions=drop", "in_port=abc!", "unknown port"),
        (
            "priority=70000,actions=drop",
            "priority=70000",
            "out of range",
        ),
        ("table=256,actions=drop", "table=256", "unknown table"),
        ("table=0x1,actions=drop", "table=0x1", "unknown table"),
        (
            "ip,ip_frag=maybe,actions=drop",
            "ip,ip_frag=maybe",
            "not a fragment type",
        ),
        (
            "tcp,tcp_flags=+syx,actions=drop",
            "tcp,tcp_flags=+syx",
            "unknown TCP flag",
        ),
        (
            "ipv6,ipv6_src=2001:db8::/129,actions=drop",
            "ipv6,ipv6_src=2001:db8::/129",
            "out of range",
        ),
        ("ip,nw_ttl=x,actions=drop", "ip,nw_ttl=x", "not a valid"),
        ("priority,actions=drop", "priority", "needs a value"),
        ("vlan_vid=5,actions=drop", "vlan_vid=5", "not supported"),
        (
            "check_overlap,actions=drop",
            "check_overlap",
            "not supported",
        ),
        (
            "send_flow_rem=1,actions=drop",
            "send_flow_rem=1",
            "no value",
        ),
        (
            "cookie=0x1/0x1,actions=drop",
            "cookie=0x1/0x1",
            "cookie mask",
        ),
        ("out_port=1,actions=drop", "out_port=1", "out_port only"),
    ] {
        let e = add_err(s);
        let token = token.rsplit(',').next().unwrap();
        assert_eq!(e.token, token, "{s}: {e}");
        assert_eq!(&s[e.pos..e.pos + token.len()], token, "{s}");
        assert!(e.message.contains(msg), "{s}: {e}");
    }
}

#[test]
fn bad_actions() {
    for (s, token, msg) in [
        (
            "actions=output:1,frobnicate",
            "frobnicate",
            "unknown action",
        ),
        ("actions=output:", "output:", "needs an argument"),
        (
            "actions=mod_vlan_vid:5000",
            "mod_vlan_vid:5000",
            "out of range",
        ),
        ("actions=mod_nw_src:1.2.3", "mod_nw_src:1.2.3", "IPv4"),
        (
            "actions=mod_dl_dst:zz:00:00:00:00:00",
            "mod_dl_dst:zz:00:00:00:00:00",
            "MAC",
        ),
        ("actions=mod_nw_tos:1", "mod_nw_tos:1", "ECN"),
        ("actions=push_vlan:0x0800", "push_vlan:0x0800", "0x8100"),
        ("actions=resubmit(,)", "resubmit(,)", "port or a table"),
        ("actions=output:1,drop", "drop", "must be the only"),
        ("actions=output:ALL", "output:ALL", "not supported"),
        (
            "actions=controller(reason=no_match)",
            "controller(reason=no_match)",
            "not supported by vswitch",
        ),
        (
            "actions=controller(max_len=10,userdata=01)",
            "controller(max_len=10,userdata=01)",
            "not supported by vswitch",
        ),
        (
            "actions=controller(pause)",
            "controller(pause)",
            "not supported by vswitch",
        ),
        (
            "actions=controller:70000",
            "controller:70000",
            "out of range",
        ),
        ("actions=output:65280", "output:65280", "reserved port"),
        ("actions=output:0x1", "output:0x1", "unknown port"),
        ("actions=learn(table=1)", "learn(table=1)", "not supported"),
        (
            "actions=output(port=1,max_len=100)",
            "output(port=1,max_len=100)",
            "max_len",
        ),
        ("actions=resubmit(1,2))", ")", "unknown action"),
    ] {
        let e = add_err(s);
        assert_eq!(e.token, token, "{s}: {e}");
        assert_eq!(&s[e.pos..e.pos + token.len()], token, "{s}");
        assert!(e.message.contains(msg), "{s}: {e}");
    }
}

#[test]
fn an_open_parenthesis_runs_to_the_end() {
    // As in ovs-ofctl: a missing ')' closes at the end of the text.
    assert_eq!(
        add("actions=output:1,resubmit(1,2").actions,
        vec![
            Action::Output(1),
            Action::Resubmit {
                port: Some(1),
                table: Some(2)
            }
        ]
    );
}

#[test]
fn missing_and_forbidden_actions() {
    let e = add_err("ip,nw_dst=10.0.0.1");
    assert_eq!(e.pos, 18);
    assert!(e.message.contains("missing 'actions='"), "{e}");
    let e = parse_flow("ip", FlowMode::Modify, &ports).unwrap_err();
    assert!(e.message.contains("missing"), "{e}");
    let e = del("ip,actions=drop").unwrap_err();
    assert_eq!((e.pos, e.token.as_str()), (3, "actions=drop"));
    assert!(e.message.contains("takes no actions"), "{e}");
}

#[test]
fn later_fields_win() {
    // As in ovs-ofctl: a field given again replaces the earlier value; a shorthand after
    // a field replaces its dl_type/nw_proto; sub-fields (dl_vlan, nw_ecn...) combine.
    for (s, want) in [
        ("in_port=1,in_port=2", Match::any().in_port(2)),
        ("tcp,tp_dst=1,tcp_dst=2", ip().nw_proto(6).tp_dst(2)),
        ("dl_vlan=1,vlan_tci=0/0", Match::any()),
        ("dl_vlan=5,dl_vlan=0xffff", Match::any().no_vlan()),
        ("ip,arp", Match::any().eth_type(ethertype::ARP)),
        ("tcp,nw_proto=17", ip().nw_proto(17)),
        (
            "tcp,ipv6",
            Match::any().eth_type(ethertype::IPV6).nw_proto(6),
        ),
        ("ip,nw_tos=4,ip_dscp=2", ip().ip_dscp(2)),
        ("ip,nw_ecn=1,nw_tos=4", ip().nw_tos(5)),
    ] {
        assert_eq!(add(&format!("{s},actions=drop")).r#match, want, "{s}");
    }
    let f = add("priority=1,priority=2,table=1,table=2,actions=drop");
    assert_eq!((f.priority, f.table), (2, Some(2)));
}

#[test]
fn values_cut_to_their_field_as_ovs_ofctl_does() {
    for (s, want) in [
        ("dl_vlan=4096", Match::any().vlan_vid(0)),
        ("dl_vlan_pcp=8", Match::any().vlan_pcp(0)),
        (
            "arp,arp_op=256",
            Match::any().eth_type(ethertype::ARP).arp_op(0),
        ),
        ("ip,nw_src=1.2.3.256", ip().nw_src(v4("1.2.3.0"), 32)),
        ("ip,nw_src=010.0.0.1", ip().nw_src(v4("10.0.0.1"), 32)),
        // Octal, as C reads it, where ovs-ofctl reads numbers so.
        ("tcp,tp_dst=010", ip().nw_proto(6).tp_dst(8)),
        ("in_port=010", Match::any().in_port(10)),
        // An ICMP match's transport fields are the one-byte type and code, unmasked.
        ("icmp,tp_dst=0x105/0xff00", ip().nw_proto(1).icmp_code(0)),
        (
            "icmp,tp_src=0x27e0/0xfff0",
            ip().nw_proto(1).icmp_type(0xe0),
        ),
        // An empty value is 0/0: any.
        ("ip,nw_proto=", ip()),
        ("tcp,tcp_flags", ip().nw_proto(6)),
    ] {
        assert_eq!(add(&format!("{s},actions=drop")).r#match, want, "{s}");
    }
    assert_eq!(add("priority=010,actions=drop").priority, 8);
    assert_eq!(add("table=010,actions=drop").table, Some(10));
    assert_eq!(add("table=255,actions=drop").to_rule_spec().table, 0);
}

#[test]
fn missing_prerequisites() {
    let s = "in_port=1,nw_src=10.0.0.1,actions=drop";
    let e = add_err(s);
    assert_eq!((e.pos, e.token.as_str()), (10, "nw_src=10.0.0.1"));
    assert!(e.message.contains("nw_src requires"), "{e}");
    let e = add_err("ip,tp_dst=80,actions=drop");
    assert_eq!(e.token, "tp_dst=80");
    assert!(e.message.contains("tp_dst requires"), "{e}");
    let e = add_err("udp,tcp_flags=+syn,actions=drop");
    assert_eq!(e.token, "tcp_flags=+syn");
    let e = add_err("ip,arp_sha=00:00:00:00:00:01,actions=drop");
    assert!(e.message.contains("arp_sha requires"), "{e}");
}

fn rule(spec: RuleSpec) -> Rule {
    Rule {
        table: spec.table,
        priority: spec.priority,
        r#match: spec.r#match,
        actions: spec.actions.into(),
        cookie: spec.cookie,
        idle_timeout: spec.idle_timeout,
        hard_timeout: spec.hard_timeout,
        send_flow_rem: spec.send_flow_rem,
        seq: 0,
        created_ms: 1_000,
        stats: Arc::default(),
    }
}

#[test]
fn dump_flows_format() {
    let r = rule(add("priority=100,idle_timeout=10,in_port=1,tcp,nw_src=10.0.0.0/24,tp_dst=80,actions=output:2").to_rule_spec());
    r.stats.credit(10, 840, 5_000);
    assert_eq!(
        format_rule(&r, 13_345, &|_| None),
        " cookie=0x0, duration=12.345s, table=0, n_packets=10, n_bytes=840, idle_timeout=10, priority=100,tcp,in_port=1,nw_src=10.0.0.0/24,tp_dst=80 actions=output:2"
    );
    // Default priority and empty match, with names.
    let r =
        rule(add("table=2,cookie=0x5,hard_timeout=3,actions=output:7,resubmit:100").to_rule_spec());
    assert_eq!(
        format_rule(&r, 1_000, &names),
        " cookie=0x5, duration=0.000s, table=2, n_packets=0, n_bytes=0, hard_timeout=3, actions=output:vm1,resubmit:uplink"
    );
    let r = rule(add("priority=1,actions=drop").to_rule_spec());
    assert!(format_rule(&r, 1_000, &names).ends_with("n_bytes=0, priority=1 actions=drop"));
}

#[test]
fn dumped_flows_read_back() {
    for s in [
        "priority=100,idle_timeout=10,in_port=vm1,tcp,nw_src=10.0.0.0/24,tp_dst=80,actions=output:uplink",
        "table=4,cookie=0x99,hard_timeout=5,arp,arp_op=2,actions=NORMAL",
        "dl_vlan=5,dl_vlan_pcp=2,actions=strip_vlan,resubmit(vm1,2)",
        "actions=drop",
    ] {
        let f = add(s);
        let printed = format_rule(&rule(f.to_rule_spec()), 2_500, &names);
        let back = add(&printed);
        assert_eq!(back.to_rule_spec(), f.to_rule_spec(), "{printed}");
    }
}

#[test]
fn format_match_named_uses_names() {
    let m = Match::any().in_port(100);
    assert_eq!(format_match_named(&m, &names), "in_port=uplink");
    assert_eq!(format_match(&m), "in_port=100");
}

#[test]
fn unusual_masks_print_generically() {
    let mut m = Match::any();
    m.set_field(Field::EthType, 0x0800, 0xff00);
    m.set_field(Field::InPort, 4, 0xc);
    m.set_field(Field::VlanTci, 0x0005, 0x000f);
    m.set_field(Field::InnerVlanTci, 0x1003, 0xffff);
    m.set_field(Field::TunSrc, 0x0a00_0000, 0xff00_0000);
    let s = format_match(&m);
    assert_eq!(
        s,
        "dl_type=0x800/0xff00,in_port=0x4/0xc,vlan_tci=0x5/0xf,inner_vlan_tci=0x1003,tun_src=10.0.0.0/8"
    );
    // The maskable ones read back; dl_type and in_port cannot be masked in ovs-ofctl's
    // syntax, so their generic form is refused.
    let back = add("vlan_tci=0x5/0xf,inner_vlan_tci=0x1003,tun_src=10.0.0.0/8,actions=drop");
    assert_eq!(back.r#match.field(Field::VlanTci), m.field(Field::VlanTci));
    assert_eq!(back.r#match.field(Field::TunSrc), m.field(Field::TunSrc));
    assert!(add_err(&format!("{s},actions=drop"))
        .message
        .contains("invalid mask"));
}

// ---- Round trip of random matches and actions ----

fn arb_mac() -> impl Strategy<Value = [u8; 6]> {
    any::<[u8; 6]>()
}

fn arb_l4(v6: bool) -> impl Strategy<Value = Match> {
    let proto = prop_oneof![
        Just(None),
        Just(Some(ipproto::TCP)),
        Just(Some(ipproto::UDP)),
        Just(Some(ipproto::SCTP)),
        Just(Some(if v6 { ipproto::ICMPV6 } else { ipproto::ICMP })),
        (0u8..=255).prop_map(Some),
    ];
    (
        proto,
        proptest::option::of((any::<u16>(), any::<u16>())),
        proptest::option::of(any::<u16>()),
        proptest::option::of((0u16..0x1000, 0u16..0x1000)),
    )
        .prop_map(move |(p, src, dst, flags)| {
            let mut m = Match::any().eth_type(if v6 { ethertype::IPV6 } else { ethertype::IPV4 });
            let Some(p) = p else { return m };
            m = m.nw_proto(p);
            let l4 = matches!(p, 6 | 17 | 132 | 1 | 58);
            let icmp = p == if v6 { ipproto::ICMPV6 } else { ipproto::ICMP };
            if icmp {
                // ICMP's type and code are one byte each and cannot be masked.
                if let Some((v, _)) = src {
                    m = m.icmp_type(v as u8);
                }
                if let Some(v) = dst {
                    m = m.icmp_code(v as u8);
                }
            } else if l4 {
                if let Some((v, mk)) = src {
                    m = m.tp_src_masked(v, mk);
                }
                if let Some(v) = dst {
                    m = m.tp_dst(v);
                }
            }
            if p == ipproto::TCP {
                if let Some((v, mk)) = flags {
                    m = m.tcp_flags(v, mk);
                }
            }
            m
        })
}

fn arb_match() -> impl Strategy<Value = Match> {
    let l3 = prop_oneof![
        Just(Match::any()),
        (
            arb_l4(false),
            any::<u32>(),
            0u8..=32,
            proptest::option::of(0usize..5)
        )
            .prop_map(|(m, a, len, frag)| {
                let mut m = m.nw_dst(Ipv4Addr::from(a), len);
                if let Some(i) = frag {
                    let (_, v, mk) = IP_FRAG[i];
                    m = m.nw_frag(v, mk);
                }
                m
            }),
        (
            arb_l4(true),
            any::<u128>(),
            0u8..=128,
            0u32..0x100000,
            0u8..64
        )
            .prop_map(|(m, a, len, label, dscp)| {
                let mut m = m.ipv6_src(Ipv6Addr::from(a), len).ip_dscp(dscp);
                m.set_field(Field::Ipv6Label, label as u128, 0xfffff);
                m
            }),
        (0u8..=255, any::<u32>(), 0u8..=32, arb_mac()).prop_map(|(op, a, len, sha)| {
            Match::any()
                .eth_type(ethertype::ARP)
                .arp_op(op)
                .arp_spa(Ipv4Addr::from(a), len)
                .arp_sha(sha)
        }),
        (any::<u16>(), any::<u8>()).prop_map(|(t, tos)| {
            let m = Match::any().eth_type(t);
            if t == ethertype::IPV4 || t == ethertype::IPV6 {
                m.nw_tos(tos)
            } else {
                m
            }
        }),
    ];
    let vlan = prop_oneof![
        Just(None),
        (0u16..4096).prop_map(|v| Some((Some(v), None))),
        (0u8..8).prop_map(|p| Some((None, Some(p)))),
        (0u16..4096, 0u8..8).prop_map(|(v, p)| Some((Some(v), Some(p)))),
        Just(Some((None, None))),
    ];
    (
        l3,
        proptest::option::of(0u32..=0xffff),
        proptest::option::of((arb_mac(), arb_mac())),
        vlan,
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(mut m, port, src, vlan, tun, ttl)| {
            if let Some(p) = port {
                m = m.in_port(p);
            }
            if let Some((a, mk)) = src {
                m = m.eth_src_masked(a, mk);
            }
            match vlan {
                None => {}
                Some((None, None)) => m = m.no_vlan(),
                Some((v, p)) => {
                    if let Some(v) = v {
                        m = m.vlan_vid(v);
                    }
                    if let Some(p) = p {
                        m = m.vlan_pcp(p);
                    }
                }
            }
            if let Some(t) = tun {
                m = m.tun_id(t);
            }
            if let Some(t) = ttl {
                if m.key().is_ip() && m.field(Field::EthType).1 == 0xffff {
                    m = m.nw_ttl(t);
                }
            }
            m
        })
}

fn arb_action() -> impl Strategy<Value = Action> {
    use SetField as S;
    prop_oneof![
        prop_oneof![0u32..0xff00, Just(OFPP_LOCAL)].prop_map(Action::Output),
        Just(Action::InPort),
        Just(Action::Normal),
        Just(Action::Flood),
        prop_oneof![Just(0x8100u16), Just(0x88a8)].prop_map(Action::PushVlan),
        Just(Action::PopVlan),
        Just(Action::DecTtl),
        (
            proptest::option::of(0u32..0xff00),
            proptest::option::of(0u8..255)
        )
            .prop_filter("port or table", |(p, t)| p.is_some() || t.is_some())
            .prop_map(|(port, table)| Action::Resubmit { port, table }),
        arb_mac().prop_map(|m| Action::Set(S::EthSrc(m.into()))),
        arb_mac().prop_map(|m| Action::Set(S::EthDst(m.into()))),
        (0u16..4096).prop_map(|v| Action::Set(S::VlanVid(v))),
        (0u8..8).prop_map(|v| Action::Set(S::VlanPcp(v))),
        any::<u32>().prop_map(|v| Action::Set(S::Ipv4Src(v))),
        any::<u32>().prop_map(|v| Action::Set(S::Ipv4Dst(v))),
        (0u8..64).prop_map(|v| Action::Set(S::IpTos(v << 2))),
        any::<u8>().prop_map(|v| Action::Set(S::IpTtl(v))),
        any::<u16>().prop_map(|v| Action::Set(S::TpSrc(v))),
        any::<u16>().prop_map(|v| Action::Set(S::TpDst(v))),
        any::<u64>().prop_map(|v| Action::Set(S::TunId(v))),
    ]
}

/// Parses `s`, or rejects the case when the action list breaks the rules of
/// `action_rules` (random lists often do: a prerequisite, push_vlan with OpenFlow 1.0 only
/// actions), which are not what these properties test.
fn parse_or_reject(s: &str) -> Result<ParsedFlow, TestCaseError> {
    match parse_flow(s, FlowMode::Add, &ports) {
        Ok(f) => Ok(f),
        Err(e) if e.message.contains("needs") || e.message.contains("no OpenFlow version") => {
            Err(TestCaseError::reject(e.to_string()))
        }
        Err(e) => Err(TestCaseError::fail(format!("{s}: {e}"))),
    }
}

/// `actions` with a final `goto_table` to a table after `table` when `goto` says so.
fn with_goto(mut actions: Vec<Action>, table: u8, goto: Option<u8>) -> Vec<Action> {
    if let (Some(g), true) = (goto, table < 254) {
        actions.push(Action::GotoTable(table + 1 + g % (254 - table)));
    }
    actions
}

proptest! {
    #[test]
    fn printed_flows_parse_back(
        m in arb_match(),
        actions in proptest::collection::vec(arb_action(), 0..6),
        goto in proptest::option::of(any::<u8>()),
    ) {
        prop_assume!(m.validate().is_ok());
        let actions = with_goto(actions, 0, goto);
        let printed = format_match(&m);
        let s = if printed.is_empty() {
            format!("actions={}", format_actions(&actions, &|_| None))
        } else {
            format!("{printed},actions={}", format_actions(&actions, &|_| None))
        };
        let f = parse_or_reject(&s)?;
        prop_assert_eq!(f.r#match, m, "{}", s);
        prop_assert_eq!(f.actions, actions, "{}", s);
    }

    #[test]
    fn printed_rules_parse_back(
        m in arb_match(),
        actions in proptest::collection::vec(arb_action(), 0..4),
        priority in any::<u16>(),
        cookie in any::<u64>(),
        table in 0u8..255,
        goto in proptest::option::of(any::<u8>()),
    ) {
        prop_assume!(m.validate().is_ok());
        let actions = with_goto(actions, table, goto);
        let mut spec = RuleSpec::new(priority, m, actions).in_table(table);
        spec.cookie = cookie;
        let printed = format_rule(&rule(spec.clone()), 5_000, &names);
        let f = parse_or_reject(&printed)?;
        prop_assert_eq!(f.to_rule_spec(), spec, "{}", printed);
    }

    #[test]
    fn parser_never_panics(s in "[a-z_0-9=,:/().>+ -]{0,40}") {
        let _ = parse_flow(&s, FlowMode::Add, &ports);
        let _ = parse_flow(&s, FlowMode::Delete, &ports);
    }
}

#[test]
fn exact_key_prints_every_field_and_fails_validation() {
    // The match of one concrete key: every field exact.
    let mut k = FlowKey::ZERO;
    k.eth_type = ethertype::IPV4;
    k.nw_proto = ipproto::UDP;
    k.in_port = 3;
    k.nw_src = 0x0a00_0001;
    k.tp_dst = 53;
    let m = Match::exact(&k);
    let s = format_match(&m);
    // Every field is printed, even those a flow cannot state (nw_frag's raw bits), and the
    // print is refused.
    assert!(
        s.contains("nw_frag=0x0") && s.contains("ipv6_src=::"),
        "{s}"
    );
    let e = add_err(&format!("{s},actions=drop"));
    assert_eq!(e.token, "nw_frag=0x0", "{e}");
}

#[test]
fn controller_action_and_send_flow_rem_read_and_print_as_ovs_ofctl() {
    // What `ovs-ofctl parse-flow` prints for each (ovs-ofctl 3.1).
    for (text, printed) in [
        ("actions=controller", "CONTROLLER:65535"),
        ("actions=CONTROLLER", "CONTROLLER:65535"),
        ("actions=controller:64", "CONTROLLER:64"),
        ("actions=controller(max_len=100)", "CONTROLLER:100"),
        (
            "actions=controller(max_len=64,reason=action)",
            "CONTROLLER:64",
        ),
        ("actions=output:CONTROLLER", "CONTROLLER:65535"),
        ("actions=output:controller", "CONTROLLER:65535"),
        ("actions=controller:64,output:2", "CONTROLLER:64,output:2"),
    ] {
        let f = add(text);
        assert_eq!(format_actions(&f.actions, &|_| None), printed, "{text}");
        // And the printed form reads back to the same actions.
        let back = add(&format!("actions={printed}"));
        assert_eq!(back.actions, f.actions, "{text}");
    }
    assert_eq!(
        add("actions=controller:64").actions,
        vec![Action::Controller { max_len: 64 }]
    );
    // ovs-ofctl's quirk: the bare port number is an output of no bytes.
    assert_eq!(
        add("actions=65533").actions,
        vec![Action::Controller { max_len: 0 }]
    );

    let f = add("send_flow_rem,idle_timeout=5,hard_timeout=7,priority=100,actions=drop");
    assert!(f.send_flow_rem);
    let spec = f.to_rule_spec();
    assert!(spec.send_flow_rem);
    let r = rule(spec);
    let line = format_rule(&r, r.created_ms, &|_| None);
    // As `ovs-ofctl dump-flows` writes it: the flag after the timeouts, then a space.
    assert_eq!(
        line,
        " cookie=0x0, duration=0.000s, table=0, n_packets=0, n_bytes=0, idle_timeout=5, \
         hard_timeout=7, send_flow_rem priority=100 actions=drop"
    );
    let r = rule(add("send_flow_rem,actions=controller").to_rule_spec());
    let line = format_rule(&r, r.created_ms, &|_| None);
    assert!(
        line.ends_with("n_bytes=0, send_flow_rem actions=CONTROLLER:65535"),
        "{line}"
    );
    // The dump reads back with the flag.
    let back = add(line.trim());
    assert!(back.send_flow_rem);
    assert!(!add("actions=drop").send_flow_rem);
}
