//! Decode oracle: FLOW_MODs as ovs-ofctl sends them, decoded to what flow-table's parser
//! makes of the same flow text.
//!
//! The test plays a minimal switch on a unix socket (HELLO, FEATURES, BARRIER answered with
//! this crate's encoders) and captures what `ovs-ofctl add-flow`/`del-flows` send. It skips,
//! saying so, only when ovs-ofctl is not installed.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flow_table::flow_syntax::{parse_flow, FlowMode};
use openflow::error::{encode_error, BadRequest};
use openflow::features::FeaturesReply;
use openflow::hello::{encode_hello, negotiate, Hello};
use openflow::nicira::{parse_experimenter, Experimenter};
use openflow::port_stats::{encode_port_stats, PortStats};
use openflow::switch_config::SwitchConfig;
use openflow::{echo, ErrorCode, FlowMod, FlowModCommand, Header, MsgType, Version};

fn have_ovs_ofctl() -> bool {
    match Command::new("ovs-ofctl").arg("--version").output() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: ovs-ofctl missing");
            false
        }
        Err(e) => panic!("running ovs-ofctl: {e}"),
    }
}

fn read_msg(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut m = vec![0u8; 8];
    if s.read_exact(&mut m).is_err() {
        return None;
    }
    let len = Header::peek_len(&m).unwrap();
    assert!(len >= 8, "bad length {len}");
    m.resize(len, 0);
    s.read_exact(&mut m[8..]).expect("message body");
    Some(m)
}

/// Runs `ovs-ofctl -O PROTO CMD unix:SOCK FLOW` against a minimal switch and returns the
/// FLOW_MODs it sent (whole messages), with the version agreed.
fn capture(proto: &str, cmd: &str, flow: &str) -> (Version, Vec<Vec<u8>>) {
    let (v, mods, _) = capture_with(proto, cmd, flow, false, &|_, _| {
        unreachable!("no flow stats")
    });
    (v, mods)
}

/// Answers a flow statistics request (whole message, agreed version) with reply messages.
type FlowStats<'a> = &'a (dyn Fn(Version, &[u8]) -> Vec<Vec<u8>> + Sync);

/// [`capture`], answering flow statistics requests with `stats`; also returns ovs-ofctl's
/// standard output. `names`: let ovs-ofctl look table and port names up (`--names`).
fn capture_with(
    proto: &str,
    cmd: &str,
    flow: &str,
    names: bool,
    stats: FlowStats<'_>,
) -> (Version, Vec<Vec<u8>>, String) {
    capture_full(proto, cmd, flow, names, false, stats)
}

/// [`capture_with`]; `nxm`: the switch accepts Nicira's NXM flow format (then ovs-ofctl
/// sends NXT_FLOW_MODs and NXST_FLOW requests, which go to `mods` and `stats`).
fn capture_full(
    proto: &str,
    cmd: &str,
    flow: &str,
    names: bool,
    nxm: bool,
    stats: FlowStats<'_>,
) -> (Version, Vec<Vec<u8>>, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let names = if names { "--names" } else { "--no-names" };
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "ofcodec-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Removes the directory however the capture ends (ovs-ofctl ends on its own --timeout).
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = RemoveDir(dir.clone());
    let sock = dir.join("sw");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut child = Command::new("ovs-ofctl")
        .args(["-O", proto, "--timeout=10", names])
        .args(cmd.split(' '))
        .arg(format!("unix:{}", sock.display()))
        .args((!flow.is_empty()).then_some(flow))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // ovs-ofctl may open several connections (`show` does); serve each until it exits.
    let deadline = Instant::now() + Duration::from_secs(15);
    // Connections are served concurrently: ovs-ofctl keeps one open while using the next.
    let mods = std::sync::Mutex::new(Vec::new());
    let version = std::thread::scope(|scope| {
        let mut served = Vec::new();
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    let mods = &mods;
                    served.push(scope.spawn(move || serve(s, cmd, flow, nxm, stats, mods)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    assert!(Instant::now() < deadline, "ovs-ofctl did not finish");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        served.into_iter().filter_map(|t| t.join().unwrap()).next()
    });
    let mods = mods.into_inner().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ovs-ofctl {cmd} {flow}: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    (version.expect("a HELLO"), mods, stdout)
}

/// Plays the switch on one connection until ovs-ofctl closes it; FLOW_MODs, PACKET_OUTs
/// and experimenter messages go to `mods` (bundles are answered, table-id and format
/// requests accepted or refused as the decoder says). Returns the version agreed.
fn serve(
    mut s: UnixStream,
    cmd: &str,
    flow: &str,
    nxm: bool,
    stats: FlowStats<'_>,
    mods: &std::sync::Mutex<Vec<Vec<u8>>>,
) -> Option<Version> {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let ours = Version::ALL;
    s.write_all(&encode_hello(&ours, 1)).unwrap();
    let mut version = None;
    while let Some(m) = read_msg(&mut s) {
        let h = Header::parse(&m).unwrap();
        eprintln!("{cmd} {flow}: got {m:02x?}");
        if h.msg_type == 0 {
            let v = negotiate(&Hello::parse(&m).unwrap(), &ours).expect("a common version");
            version = Some(v);
            continue;
        }
        let v = version.expect("HELLO first");
        let reply = match h.msg_type().unwrap() {
            MsgType::EchoRequest => echo::echo_reply(&m).unwrap(),
            MsgType::FeaturesRequest => FeaturesReply {
                datapath_id: 1,
                n_buffers: 0,
                n_tables: 254,
                capabilities: 0,
                ports: vec![local_port()],
            }
            .encode(v, h.xid),
            MsgType::GetConfigRequest => SwitchConfig::default().encode_reply(v, h.xid),
            MsgType::FlowMod | MsgType::PacketOut => {
                mods.lock().unwrap().push(m);
                continue;
            }
            MsgType::Experimenter if FlowMod::parse(&m).is_ok() => {
                // An NXT_FLOW_MOD.
                mods.lock().unwrap().push(m);
                continue;
            }
            MsgType::Experimenter => {
                let reply = match openflow::nicira::parse_experimenter_with(&m, nxm) {
                    Ok(Experimenter::BundleControl(c)) => Some(c.encode_reply(h.xid)),
                    Ok(_) => None,
                    Err(e) => Some(e.to_error_msg(v, &m)),
                };
                mods.lock().unwrap().push(m);
                match reply {
                    Some(r) => r,
                    None => continue,
                }
            }
            MsgType::MultipartRequest if m[8..10] == [0, 4] => {
                let req = openflow::multipart::MultipartRequest::parse(&m).unwrap();
                let port = req.port_stats_port().unwrap();
                let stats: Vec<PortStats> = [1, 0xfffe]
                    .into_iter()
                    .filter(|p| port.is_none_or(|q| q == *p))
                    .map(|p| PortStats {
                        port_no: p,
                        rx_packets: 5,
                        tx_packets: 6,
                        rx_bytes: 500,
                        tx_bytes: 600,
                        duration_ms: 1500,
                        ..Default::default()
                    })
                    .collect();
                // One entry a message, to exercise REPLY_MORE.
                for r in encode_port_stats(v, h.xid, &stats, 130) {
                    s.write_all(&r).unwrap();
                }
                continue;
            }
            // ovs-ofctl asks for table statistics; an empty reply of the same kind will do.
            MsgType::MultipartRequest if m[8..10] == [0, 1] || m[8..10] == [0xff, 0xff] => {
                for r in stats(v, &m) {
                    s.write_all(&r).unwrap();
                }
                continue;
            }
            MsgType::MultipartRequest if v == Version::Of13 && m[8..10] == [0, 13] => {
                openflow::multipart::encode_port_desc(h.xid, &[local_port()])
            }
            MsgType::MultipartRequest if v == Version::Of13 && m[8..10] == [0, 12] => {
                for r in openflow::multipart::encode_table_features(h.xid, 254, 1_000_000) {
                    s.write_all(&r).unwrap();
                }
                continue;
            }
            MsgType::MultipartRequest if m[8..10] == [0, 3] => {
                let tables: Vec<_> = (0..254)
                    .map(|t| openflow::multipart::TableStats {
                        table_id: t,
                        active_count: 0,
                        lookup_count: 0,
                        matched_count: 0,
                    })
                    .collect();
                openflow::multipart::encode_table_stats(v, h.xid, &tables)
            }
            MsgType::MultipartRequest => {
                let kind = [m[8], m[9]];
                openflow::header::message(v, MsgType::MultipartReply, h.xid, |b| {
                    b.extend_from_slice(&kind);
                    b.extend_from_slice(&[0, 0]);
                    if v == Version::Of13 {
                        b.extend_from_slice(&[0; 4]);
                    }
                })
            }
            MsgType::BarrierRequest => echo::barrier_reply(v, h.xid),
            _ => encode_error(v, h.xid, ErrorCode::BadRequest(BadRequest::BadType), &m),
        };
        s.write_all(&reply).unwrap();
    }
    version
}

/// The port the test switch reports.
fn local_port() -> openflow::features::PhyPort {
    openflow::features::PhyPort {
        port_no: 0xfffe,
        hw_addr: flow_table::MacAddr([2, 0, 0, 0, 0, 0xab]),
        name: "br0".into(),
        config: 0,
        state: 0,
        curr: 0,
    }
}

fn check_add(proto: &str, want_version: Version, flow: &str) {
    let (v, mods) = capture(proto, "add-flow", flow);
    assert_eq!(v, want_version);
    assert_eq!(mods.len(), 1, "{flow}");
    let got = &FlowMod::parse(&mods[0]).unwrap_or_else(|e| panic!("{flow}: {e}"));
    let want = parse_flow(flow, FlowMode::Add, &|_| None).unwrap();
    assert_eq!(got.command, FlowModCommand::Add);
    assert_eq!(got.r#match, want.r#match, "{proto} {flow}");
    assert_eq!(got.actions, want.actions, "{proto} {flow}");
    assert_eq!(got.to_rule_spec(), want.to_rule_spec(), "{proto} {flow}");
}

const COMMON: [&str; 5] = [
    "priority=100,in_port=1,ip,nw_dst=10.0.0.0/8,actions=output:2",
    "cookie=0x55,idle_timeout=30,hard_timeout=60,udp,nw_src=192.168.0.0/16,tp_src=53,actions=mod_dl_src:02:00:00:00:00:01,mod_tp_src:5353,IN_PORT",
    "tcp,dl_dst=01:02:03:04:05:06,tp_dst=80,actions=mod_nw_dst:10.0.0.1,mod_tp_dst:8080,output:3",
    "arp,arp_tpa=10.0.0.1,actions=FLOOD",
    "icmp,icmp_type=8,nw_tos=32,actions=NORMAL,LOCAL",
];

#[test]
fn ovs_ofctl_add_flow_of10() {
    if !have_ovs_ofctl() {
        return;
    }
    for flow in COMMON {
        check_add("OpenFlow10", Version::Of10, flow);
    }
    for flow in [
        "dl_vlan=10,dl_vlan_pcp=3,actions=mod_vlan_vid:20,mod_vlan_pcp:1,output:1",
        "dl_vlan=0xffff,actions=drop",
        "dl_vlan=5,actions=strip_vlan,output:4",
    ] {
        check_add("OpenFlow10", Version::Of10, flow);
    }
}

#[test]
fn ovs_ofctl_add_flow_of13() {
    if !have_ovs_ofctl() {
        return;
    }
    for flow in COMMON {
        check_add("OpenFlow13", Version::Of13, flow);
    }
    for flow in [
        "table=1,priority=5,ip,nw_src=1.2.3.4,actions=dec_ttl,goto_table:2",
        "ipv6,ipv6_src=2001:db8::/32,actions=output:7",
        "dl_vlan=10,actions=pop_vlan,output:1",
        "vlan_tci=0x1000/0x1000,dl_src=00:00:00:00:00:01/01:00:00:00:00:00,actions=drop",
        "dl_vlan=0xffff,actions=drop",
        "dl_vlan=10,dl_vlan_pcp=3,actions=mod_vlan_vid:20,mod_vlan_pcp:1,output:1",
        "in_port=LOCAL,ipv6,ipv6_dst=fe80::/10,actions=mod_dl_dst:02:00:00:00:00:09,output:1",
    ] {
        check_add("OpenFlow13", Version::Of13, flow);
    }
}

#[test]
fn ovs_ofctl_del_flows() {
    if !have_ovs_ofctl() {
        return;
    }
    for (proto, v) in [("OpenFlow10", Version::Of10), ("OpenFlow13", Version::Of13)] {
        let flow = "ip,nw_dst=10.0.0.0/8";
        let (got_v, mods) = capture(proto, "del-flows", flow);
        assert_eq!(got_v, v);
        assert_eq!(mods.len(), 1);
        let got = FlowMod::parse(&mods[0]).unwrap();
        assert_eq!(got.command, FlowModCommand::Delete);
        let want = parse_flow(flow, FlowMode::Delete, &|_| None).unwrap();
        let got = got.to_rule_filter();
        let want = want.to_rule_filter();
        assert_eq!(got.table, want.table, "{proto}");
        assert_eq!(got.r#match, want.r#match, "{proto}");
        assert_eq!(got.out_port, want.out_port, "{proto}");
        assert_eq!(
            (got.cookie, got.cookie_mask),
            (want.cookie, want.cookie_mask),
            "{proto}"
        );
    }
}

/// What vswitch cannot do is refused with the error OpenFlow names for it.
#[test]
fn ovs_ofctl_unsupported() {
    if !have_ovs_ofctl() {
        return;
    }
    let cases: [(&str, Version, &str, (u16, u16)); 5] = [
        // nw_ttl is a Nicira (NXM) field in OVS's 1.3 encoding.
        (
            "OpenFlow13",
            Version::Of13,
            "ip,nw_ttl=3,actions=output:1",
            (4, 6),
        ),
        // TABLE is for packet-outs only.
        ("OpenFlow13", Version::Of13, "actions=output:TABLE", (2, 4)),
        ("OpenFlow13", Version::Of13, "actions=group:1", (2, 9)),
        ("OpenFlow10", Version::Of10, "actions=enqueue:1:2", (2, 0)),
        // A Nicira action vswitch does not do: BAD_VENDOR_TYPE.
        (
            "OpenFlow13",
            Version::Of13,
            "actions=learn(table=1,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[])",
            (2, 3),
        ),
    ];
    for (proto, v, flow, want) in cases {
        let (got_v, mods) = capture(proto, "add-flow", flow);
        assert_eq!(got_v, v);
        let e = FlowMod::parse(&mods[0]).expect_err(flow);
        assert_eq!(e.reply.wire(v), want, "{flow}: {e}");
        let msg = e.to_error_msg(v, &mods[0]);
        assert_eq!(
            &msg[4..8],
            &mods[0][4..8],
            "the error carries the flow mod's xid"
        );
        assert_eq!(&msg[12..], &mods[0][..mods[0].len().min(64)]);
    }
}

/// `mod_vlan_vid` on a rule that does not match a tag: ovs-ofctl's 1.3 encoding pushes a tag
/// first (PUSH_VLAN, SET_FIELD), where flow-table's one action pushes only when the packet
/// has none. The decoder keeps what the wire says.
#[test]
fn ovs_ofctl_mod_vlan_vid_of13_pushes() {
    if !have_ovs_ofctl() {
        return;
    }
    let (_, mods) = capture(
        "OpenFlow13",
        "add-flow",
        "ip,actions=mod_vlan_vid:5,output:1",
    );
    let got = FlowMod::parse(&mods[0]).unwrap();
    assert_eq!(
        got.actions,
        vec![
            flow_table::Action::PushVlan(0x8100),
            flow_table::Action::Set(flow_table::SetField::VlanVid(5)),
            flow_table::Action::Output(1),
        ]
    );
}

/// `ovs-ofctl dump-flows`: its request decodes to the filter flow-table's parser gives for
/// the same text, and the reply we send (paged small, to exercise REPLY_MORE) prints as the
/// rules it came from.
#[test]
fn ovs_ofctl_dump_flows() {
    use openflow::multipart::{encode_flow_stats, MultipartRequest};
    if !have_ovs_ofctl() {
        return;
    }
    let flows = [
        "priority=100,in_port=1,ip,nw_dst=10.0.0.0/8,actions=output:2",
        "cookie=0x7,tcp,tp_dst=22,actions=mod_nw_tos:32,NORMAL",
        "priority=1,actions=drop",
    ];
    let rules: Vec<flow_table::Rule> = flows
        .iter()
        .map(|f| {
            let s = parse_flow(f, FlowMode::Add, &|_| None)
                .unwrap()
                .to_rule_spec();
            flow_table::Rule {
                table: s.table,
                priority: s.priority,
                r#match: s.r#match,
                actions: s.actions.into(),
                cookie: s.cookie,
                idle_timeout: 0,
                hard_timeout: 0,
                send_flow_rem: false,
                seq: 0,
                created_ms: 0,
                stats: Default::default(),
            }
        })
        .collect();
    for proto in ["OpenFlow10", "OpenFlow13"] {
        let filter_text = "ip";
        let handler = |v: Version, req: &[u8]| {
            let r = MultipartRequest::parse(req).unwrap();
            let f = r.flow_filter().unwrap();
            let want = parse_flow(filter_text, FlowMode::Delete, &|_| None)
                .unwrap()
                .to_rule_filter();
            assert_eq!(f.r#match, want.r#match, "{proto}");
            assert_eq!((f.table, f.out_port), (None, None), "{proto}");
            // Every rule (filtering is the switch's job, not the codec's), one per message.
            let pages = encode_flow_stats(v, r.xid, &rules, 1500, 64);
            assert_eq!(pages.len(), rules.len());
            pages
        };
        let (_, _, out) = capture_with(proto, "dump-flows", filter_text, false, &handler);
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("actions=")).collect();
        assert_eq!(lines.len(), rules.len(), "{proto}: {out}");
        for (line, rule) in lines.iter().zip(&rules) {
            let back = parse_flow(line.trim(), FlowMode::Add, &|_| None)
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(back.r#match, rule.r#match, "{proto} {line}");
            assert_eq!(back.actions, rule.actions.to_vec(), "{proto} {line}");
            assert_eq!(
                (back.priority, back.cookie),
                (rule.priority, rule.cookie),
                "{line}"
            );
            assert!(line.contains("duration=1.5"), "{line}");
        }
    }
}

/// `ovs-ofctl show`: the handshake replies (FEATURES_REPLY, GET_CONFIG_REPLY) as a real
/// client reads them.
#[test]
fn ovs_ofctl_show() {
    if !have_ovs_ofctl() {
        return;
    }
    for (proto, tag) in [("OpenFlow13", " (OF1.3)"), ("OpenFlow10", "")] {
        let (_, _, out) = capture_with(proto, "show", "", false, &|_, _| unreachable!());
        assert!(
            out.starts_with(&format!("OFPT_FEATURES_REPLY{tag} (xid=")),
            "{proto}: {out}"
        );
        assert!(out.contains("dpid:0000000000000001"), "{proto}: {out}");
        assert!(out.contains("n_tables:254"), "{proto}: {out}");
        assert!(
            out.contains(" LOCAL(br0): addr:02:00:00:00:00:ab"),
            "{proto}: {out}"
        );
        assert!(out.contains("OFPT_GET_CONFIG_REPLY"), "{proto}: {out}");
        assert!(
            out.contains("frags=normal miss_send_len=128"),
            "{proto}: {out}"
        );
    }
}

/// Without `--no-names`, ovs-ofctl first asks for table statistics (1.0) or features (1.3)
/// to learn table names; the TABLE and (paged) TABLE_FEATURES replies satisfy it.
#[test]
fn ovs_ofctl_add_flow_with_names() {
    if !have_ovs_ofctl() {
        return;
    }
    let flow = "in_port=1,actions=output:2";
    for proto in ["OpenFlow10", "OpenFlow13"] {
        let (_, mods, _) = capture_with(proto, "add-flow", flow, true, &|_, _| unreachable!());
        let got = FlowMod::parse(&mods[0]).unwrap();
        let want = parse_flow(flow, FlowMode::Add, &|_| None).unwrap();
        assert_eq!(got.to_rule_spec(), want.to_rule_spec(), "{proto}");
    }
}

/// CONTROLLER, ALL and Nicira's resubmit, as ovs-ofctl encodes them in both versions.
#[test]
fn ovs_ofctl_controller_all_resubmit() {
    use flow_table::Action;
    if !have_ovs_ofctl() {
        return;
    }
    let flow = "actions=CONTROLLER:100,ALL,resubmit(,2),resubmit(3),resubmit(4,5),controller";
    for proto in ["OpenFlow10", "OpenFlow13"] {
        let (_, mods) = capture(proto, "add-flow", flow);
        let got = FlowMod::parse(&mods[0]).unwrap_or_else(|e| panic!("{proto}: {e}"));
        assert_eq!(
            got.actions,
            vec![
                Action::Controller { max_len: 100 },
                Action::Flood,
                Action::Resubmit {
                    port: None,
                    table: Some(2)
                },
                Action::Resubmit {
                    port: Some(3),
                    table: None
                },
                Action::Resubmit {
                    port: Some(4),
                    table: Some(5)
                },
                Action::Controller { max_len: 0xffff },
            ],
            "{proto}"
        );
    }
}

/// `table=N` in 1.0: ovs-ofctl enables Nicira's flow-mod table id first, then puts the
/// table in the command's high byte.
#[test]
fn ovs_ofctl_table_id_of10() {
    if !have_ovs_ofctl() {
        return;
    }
    let flow = "table=3,priority=7,ip,actions=resubmit(,4)";
    let (_, mods) = capture("OpenFlow10", "add-flow", flow);
    assert_eq!(mods.len(), 2, "{mods:02x?}");
    assert_eq!(
        parse_experimenter(&mods[0]).unwrap(),
        Experimenter::FlowModTableId(true)
    );
    let got = FlowMod::parse_with(&mods[1], true).unwrap();
    let want = parse_flow(flow, FlowMode::Add, &|_| None).unwrap();
    assert_eq!(got.to_rule_spec(), want.to_rule_spec());
    assert_eq!(got.table_id, 3);
    // Through the dispatcher, with the connection's option.
    let opts = openflow::ParseOptions {
        flow_mod_table_id: true,
        nxm: false,
    };
    let r = openflow::Received::parse_with(&mods[1], Version::Of10, opts).unwrap();
    assert!(matches!(r.request, openflow::Request::FlowMod(f) if f.table_id == 3));
}

/// `tun_id=N` in 1.0 needs the NXM flow format, which the decoder refuses: ovs-ofctl gives
/// up, saying the switch lacks the format.
#[test]
fn ovs_ofctl_nxm_refused_of10() {
    if !have_ovs_ofctl() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ofcodec-nxm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("sw");
    let listener = UnixListener::bind(&sock).unwrap();
    let child = Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow10", "--timeout=10", "--no-names", "add-flow"])
        .arg(format!("unix:{}", sock.display()))
        .arg("tun_id=5,actions=output:1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (s, _) = listener.accept().unwrap();
    let mods = std::sync::Mutex::new(Vec::new());
    serve(
        s,
        "add-flow",
        "tun_id",
        false,
        &|_, _| unreachable!(),
        &mods,
    );
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not support any of the usable flow formats"),
        "{err}"
    );
    let mods = mods.into_inner().unwrap();
    // NXT_SET_FLOW_FORMAT(NXM), each refused with EPERM; never an NXT_FLOW_MOD.
    assert!(!mods.is_empty());
    for m in &mods {
        let e = parse_experimenter(m).unwrap_err();
        assert_eq!(e.reply.wire(Version::Of10), (1, 5));
    }
}

/// `ovs-ofctl packet-out`: the decoded PACKET_OUT, TABLE as resubmit(,0).
#[test]
fn ovs_ofctl_packet_out() {
    use flow_table::Action;
    use openflow::packet_out::PacketOut;
    if !have_ovs_ofctl() {
        return;
    }
    let packet =
        "ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002";
    let spec = format!("in_port=LOCAL,packet={packet},actions=mod_vlan_vid:5,TABLE,output:2");
    for proto in ["OpenFlow10", "OpenFlow13"] {
        let (_, mods) = capture(proto, "packet-out", &spec);
        assert_eq!(mods.len(), 1, "{proto}");
        let p = PacketOut::parse(&mods[0]).unwrap_or_else(|e| panic!("{proto}: {e}"));
        assert_eq!(p.in_port, 0xfffe, "{proto}");
        let hex: String = p.data.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, packet, "{proto}");
        let table = Action::Resubmit {
            port: None,
            table: Some(0),
        };
        let tail = [table, Action::Output(2)];
        assert!(p.actions.ends_with(&tail), "{proto}: {:?}", p.actions);
        assert!(
            p.actions
                .contains(&Action::Set(flow_table::SetField::VlanVid(5))),
            "{proto}: {:?}",
            p.actions
        );
        // The same bytes, cut anywhere, never panic.
        for len in 8..mods[0].len() {
            let mut t = mods[0][..len].to_vec();
            t[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            let _ = PacketOut::parse(&t);
        }
    }
}

/// `ovs-ofctl dump-ports`: the request's port and the (paged) reply as ovs-ofctl prints it.
#[test]
fn ovs_ofctl_dump_ports() {
    if !have_ovs_ofctl() {
        return;
    }
    for proto in ["OpenFlow10", "OpenFlow13"] {
        let (_, _, out) = capture_with(proto, "dump-ports", "", false, &|_, _| unreachable!());
        assert_eq!(out.matches("rx pkts=5").count(), 2, "{proto}: {out}");
        assert!(
            out.contains("port  1: rx pkts=5, bytes=500, drop=0, errs=0"),
            "{proto}: {out}"
        );
        assert!(out.contains("port LOCAL: rx pkts=5"), "{proto}: {out}");
        assert!(out.contains("tx pkts=6, bytes=600"), "{proto}: {out}");
        let (_, _, one) = capture_with(proto, "dump-ports", "LOCAL", false, &|_, _| unreachable!());
        assert!(one.contains("port LOCAL"), "{proto}: {one}");
        assert!(!one.contains("port  1:"), "{proto}: {one}");
    }
}

/// `ovs-ofctl --bundle add-flows` (1.3): OPEN, two ADD_MESSAGEs holding FLOW_MODs, COMMIT,
/// each control answered with its reply.
#[test]
fn ovs_ofctl_bundle_of13() {
    use openflow::bundle::BundleCtrlType;
    if !have_ovs_ofctl() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ofcodec-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flows");
    let flows = ["in_port=1,actions=output:2", "table=2,ip,actions=drop"];
    std::fs::write(&file, flows.join("\n")).unwrap();
    let (_, mods) = capture("OpenFlow13", "--bundle add-flows", file.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    let kinds: Vec<_> = mods
        .iter()
        .map(|m| parse_experimenter(m).unwrap())
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    let Experimenter::BundleControl(open) = kinds[0] else {
        panic!("{kinds:?}")
    };
    assert_eq!(open.kind, BundleCtrlType::Open);
    for (k, flow) in kinds[1..3].iter().zip(flows) {
        let Experimenter::BundleAdd(a) = k else {
            panic!("{kinds:?}")
        };
        assert_eq!(a.bundle_id, open.bundle_id);
        let got = FlowMod::parse(a.message).unwrap();
        let want = parse_flow(flow, FlowMode::Add, &|_| None).unwrap();
        assert_eq!(got.to_rule_spec(), want.to_rule_spec());
    }
    let Experimenter::BundleControl(commit) = kinds[3] else {
        panic!("{kinds:?}")
    };
    assert_eq!(commit.kind, BundleCtrlType::Commit);
}

/// Once the switch takes the NXM flow format, 1.0 flows with fields 1.0's match lacks
/// (IPv6, tunnel id, TTL, ARP hardware addresses, fragments, TCP flags) arrive as
/// NXT_FLOW_MODs and decode to what flow-table's parser makes of the text; `dump-flows`
/// asks with NXST_FLOW and prints our NXST_FLOW reply back as the same rules.
#[test]
fn ovs_ofctl_nxm_of10() {
    use openflow::multipart::{encode_nx_flow_stats, MultipartRequest};
    if !have_ovs_ofctl() {
        return;
    }
    let flows = [
        "tun_id=5,actions=output:1",
        "priority=9,ipv6,ipv6_src=2001:db8::/32,ipv6_dst=fe80::1,actions=resubmit(,2)",
        "ip,nw_ttl=3,nw_frag=later,actions=drop",
        "tcp,tcp_flags=+syn-ack,tp_dst=80,actions=output:5",
        "arp,arp_sha=02:00:00:00:00:01,arp_op=2,actions=NORMAL",
        "icmp6,icmp_type=135,nw_tos=32,actions=set_tunnel:0x123456789,output:3",
        "sctp,tp_src=9,actions=output:2",
        "tun_src=10.0.0.1,tun_dst=10.0.0.2,in_port=4,dl_vlan=7,actions=strip_vlan,LOCAL",
    ];
    for flow in flows {
        let (_, mods, _) = capture_full(
            "OpenFlow10",
            "add-flow",
            flow,
            false,
            true,
            &|_, _| unreachable!(),
        );
        let fm = mods
            .iter()
            .find_map(|m| FlowMod::parse(m).ok())
            .unwrap_or_else(|| panic!("{flow}: no flow mod in {mods:02x?}"));
        // SCTP ports fit 1.0's match: that one goes as a plain FLOW_MOD.
        assert_eq!(
            mods[0][1] == 4,
            !flow.starts_with("sctp"),
            "{flow}: NXT_FLOW_MOD?"
        );
        let want = parse_flow(flow, FlowMode::Add, &|_| None).unwrap();
        assert_eq!(fm.r#match, want.r#match, "{flow}");
        assert_eq!(fm.actions, want.actions, "{flow}");
        assert_eq!(fm.to_rule_spec(), want.to_rule_spec(), "{flow}");
    }
    let rules: Vec<flow_table::Rule> = flows
        .iter()
        .map(|f| {
            let s = parse_flow(f, FlowMode::Add, &|_| None)
                .unwrap()
                .to_rule_spec();
            flow_table::Rule {
                table: s.table,
                priority: s.priority,
                r#match: s.r#match,
                actions: s.actions.into(),
                cookie: s.cookie,
                idle_timeout: 0,
                hard_timeout: 0,
                send_flow_rem: false,
                seq: 0,
                created_ms: 0,
                stats: Default::default(),
            }
        })
        .collect();
    let handler = |_: Version, req: &[u8]| {
        let r = MultipartRequest::parse(req).unwrap();
        assert!(r.nx, "an NXST_FLOW request");
        let f = r.flow_filter().unwrap();
        let want = parse_flow("ipv6", FlowMode::Delete, &|_| None)
            .unwrap()
            .to_rule_filter();
        assert_eq!(f.r#match, want.r#match);
        // Every rule, a few per message.
        encode_nx_flow_stats(r.xid, &rules, 2000, 400)
    };
    let (_, _, out) = capture_full("OpenFlow10", "dump-flows", "ipv6", false, true, &handler);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("actions=")).collect();
    assert_eq!(lines.len(), rules.len(), "{out}");
    for (line, rule) in lines.iter().zip(&rules) {
        let back = parse_flow(line.trim(), FlowMode::Add, &|_| None)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(back.r#match, rule.r#match, "{line}");
        assert_eq!(back.actions, rule.actions.to_vec(), "{line}");
        assert!(line.contains("duration=2s"), "{line}");
    }
}

/// `ovs-ofctl monitor`: its packet-in format requests are refused (it falls back to
/// standard PACKET_INs), then the asynchronous messages we send print as what they say.
#[test]
fn ovs_ofctl_monitor_prints_async_messages() {
    use openflow::flow_removed::{encode_flow_removed, FlowRemovedMsg, RemovedReason};
    use openflow::packet_in::{encode_packet_in, PacketInMsg, NO_BUFFER, REASON_NO_MATCH};
    use openflow::port_status::{encode_port_status, PortReason};
    if !have_ovs_ofctl() {
        return;
    }
    for (proto, v) in [("OpenFlow10", Version::Of10), ("OpenFlow13", Version::Of13)] {
        let dir = std::env::temp_dir().join(format!("ofcodec-mon-{}-{proto}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("sw");
        let listener = UnixListener::bind(&sock).unwrap();
        let child = Command::new("ovs-ofctl")
            .args(["-O", proto, "--no-names", "monitor"])
            .arg(format!("unix:{}", sock.display()))
            .env("OVS_RUNDIR", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s.write_all(&encode_hello(&[v], 1)).unwrap();
        let mut refused = 0;
        // Answer until ovs-ofctl goes quiet: it then waits for asynchronous messages.
        while let Some(m) = read_msg(&mut s) {
            let h = Header::parse(&m).unwrap();
            let reply = match h.msg_type().unwrap() {
                MsgType::Hello | MsgType::SetConfig => continue,
                MsgType::BarrierRequest => echo::barrier_reply(v, h.xid),
                MsgType::EchoRequest => echo::echo_reply(&m).unwrap(),
                MsgType::GetConfigRequest => SwitchConfig::default().encode_reply(v, h.xid),
                MsgType::Experimenter => {
                    let e = parse_experimenter(&m).expect_err("a packet-in format we refuse");
                    refused += 1;
                    e.to_error_msg(v, &m)
                }
                t => panic!("{proto}: unexpected {t:?}"),
            };
            s.write_all(&reply).unwrap();
        }
        assert!(refused >= 1, "{proto}: no packet-in format request");
        let frame: Vec<u8> = [
            &[0xff; 6][..],
            &[2, 0, 0, 0, 0, 1, 0x08, 0x06],
            &[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 10, 0, 0, 2],
        ]
        .concat();
        s.write_all(&encode_packet_in(
            v,
            0,
            &PacketInMsg {
                buffer_id: NO_BUFFER,
                total_len: frame.len() as u16,
                in_port: 3,
                reason: REASON_NO_MATCH,
                table_id: 0,
                cookie: u64::MAX,
                tun_id: 0,
                data: &frame,
            },
        ))
        .unwrap();
        s.write_all(&encode_port_status(v, PortReason::Add, &local_port()))
            .unwrap();
        let removed = FlowRemovedMsg {
            cookie: 0x42,
            priority: 7,
            reason: RemovedReason::HardTimeout,
            table_id: 0,
            duration_sec: 3,
            duration_nsec: 0,
            idle_timeout: 0,
            hard_timeout: 3,
            packet_count: 1,
            byte_count: 42,
            r#match: flow_table::Match::any().eth_type(0x0806),
        };
        s.write_all(&encode_flow_removed(v, &removed)).unwrap();
        // Let ovs-ofctl read everything before the connection closes.
        std::thread::sleep(Duration::from_millis(300));
        drop(s);
        let out = child.wait_with_output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // monitor prints what it receives on stderr (stdout is for its control socket).
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("OFPT_PACKET_IN"), "{proto}: {text}");
        assert!(
            text.contains("in_port=3 (via no_match) data_len=42"),
            "{proto}: {text}"
        );
        assert!(text.contains("arp_tpa=10.0.0.2"), "{proto}: {text}");
        assert!(text.contains("OFPT_PORT_STATUS"), "{proto}: {text}");
        assert!(text.contains("ADD: LOCAL(br0)"), "{proto}: {text}");
        assert!(text.contains("OFPT_FLOW_REMOVED"), "{proto}: {text}");
        assert!(
            text.contains("priority=7,arp reason=hard"),
            "{proto}: {text}"
        );
    }
}
