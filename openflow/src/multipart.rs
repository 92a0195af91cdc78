//! Statistics (1.0) / multipart (1.3) requests and replies: DESC and FLOW.
//!
//! A reply larger than a message can hold is split into several messages, all but the
//! last flagged REPLY_MORE; [`encode_flow_stats`] pages by a caller-chosen size limit so
//! one reply never holds up the connection for long.

use flow_table::{Rule, RuleFilter};

use crate::actions::{put_actions10, put_instructions13};
use crate::codec::{patch_u16, Put, Reader};
use crate::error::{BadRequest, DecodeError, ErrorCode};
use crate::header::{message, Header, MsgType, Version, HEADER_LEN};
use crate::match10::{put_match10, read_match10};
use crate::oxm::{put_match13, read_match13};
use crate::ports;

/// OFPMP_DESC (OFPST_DESC in 1.0).
pub const MP_DESC: u16 = 0;
/// OFPMP_FLOW.
pub const MP_FLOW: u16 = 1;
/// OFPMP_AGGREGATE.
pub const MP_AGGREGATE: u16 = 2;
/// OFPMP_TABLE.
pub const MP_TABLE: u16 = 3;
/// OFPMP_PORT_DESC (1.3).
pub const MP_PORT_DESC: u16 = 13;
/// OFPMP_EXPERIMENTER (OFPST_VENDOR in 1.0).
pub const MP_EXPERIMENTER: u16 = 0xffff;
/// OFPMPF_REPLY_MORE: more messages of this reply follow.
pub const REPLY_MORE: u16 = 1;
/// The largest message: the 16-bit length field's limit.
pub const MAX_MSG_LEN: usize = 65535;

/// A statistics/multipart request: its kind, flags and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartRequest<'a> {
    /// Version of the message.
    pub version: Version,
    /// Transaction id; every message of the reply carries it.
    pub xid: u32,
    /// OFPMP_* (OFPST_* in 1.0).
    pub kind: u16,
    /// OFPMPF_REQ_* flags.
    pub flags: u16,
    /// Nicira's NXST_FLOW/NXST_AGGREGATE (`kind` says which: [`MP_FLOW`],
    /// [`MP_AGGREGATE`]), sent by a 1.0 peer once the NXM flow format is agreed: answer with
    /// [`encode_nx_flow_stats`] / [`encode_nx_aggregate`].
    pub nx: bool,
    /// The body after the multipart header.
    pub body: &'a [u8],
}

impl<'a> MultipartRequest<'a> {
    /// Parses a whole STATS_REQUEST/MULTIPART_REQUEST.
    pub fn parse(msg: &'a [u8]) -> Result<MultipartRequest<'a>, DecodeError> {
        let h = Header::parse(msg)?;
        let version = h.version()?;
        if h.msg_type()? != MsgType::MultipartRequest {
            return Err(DecodeError::new(
                "ofp_header.type",
                "expected a multipart request",
                ErrorCode::BadRequest(BadRequest::BadType),
            ));
        }
        let mut r = Reader::new(&msg[HEADER_LEN..h.length as usize]);
        let kind = r.u16("ofp_multipart_request.type")?;
        let flags = r.u16("ofp_multipart_request.flags")?;
        if version == Version::Of13 {
            r.skip(4, "ofp_multipart_request.pad")?;
        }
        if kind == MP_EXPERIMENTER {
            // Nicira's and ONF's flow monitor (`ovs-ofctl monitor ... watch:`) and the like.
            let exp = r.u32("ofp_experimenter_multipart_header.experimenter")?;
            let sub = r.u32("ofp_experimenter_multipart_header.exp_type")?;
            let nx = exp == crate::actions::NX_VENDOR;
            if nx && version == Version::Of10 && (sub == NXST_FLOW || sub == NXST_AGGREGATE) {
                r.skip(4, "nicira_stats_msg.pad")?;
                return Ok(MultipartRequest {
                    version,
                    xid: h.xid,
                    kind: if sub == NXST_FLOW {
                        MP_FLOW
                    } else {
                        MP_AGGREGATE
                    },
                    flags,
                    nx: true,
                    body: r.rest(),
                });
            }
            let known = nx || exp == crate::error::ONF_EXPERIMENTER;
            return Err(DecodeError::new(
                "ofp_experimenter_multipart_header",
                format!("experimenter {exp:#x} statistics {sub} are not supported by vswitch"),
                ErrorCode::BadRequest(if known {
                    BadRequest::BadExpType
                } else {
                    BadRequest::BadExperimenter
                }),
            ));
        }
        Ok(MultipartRequest {
            version,
            xid: h.xid,
            kind,
            flags,
            nx: false,
            body: r.rest(),
        })
    }

    /// The rules a FLOW or AGGREGATE request asks about (the two share their request
    /// body); BAD_REQUEST/BAD_MULTIPART for other kinds.
    pub fn flow_filter(&self) -> Result<RuleFilter, DecodeError> {
        if self.kind != MP_FLOW && self.kind != MP_AGGREGATE {
            return Err(DecodeError::new(
                "ofp_multipart_request.type",
                format!("{} is not a flow statistics request", self.kind),
                ErrorCode::BadRequest(BadRequest::BadMultipart),
            ));
        }
        let mut r = Reader::new(self.body);
        let mut f = RuleFilter::all();
        if self.nx {
            // nx_flow_stats_request: out_port, match_len, table_id, pad, nx_match.
            f.out_port = ports::filter(r.u16("nx_flow_stats_request.out_port")? as u32);
            let match_len = r.u16("nx_flow_stats_request.match_len")? as usize;
            let table = r.u8("nx_flow_stats_request.table_id")?;
            r.skip(3, "nx_flow_stats_request.pad")?;
            f.table = (table != 0xff).then_some(table);
            f.r#match = crate::nxm::read_nx_match(&mut r, match_len)?;
            return Ok(f);
        }
        match self.version {
            Version::Of10 => {
                f.r#match = read_match10(&mut r)?;
                let table = r.u8("ofp_flow_stats_request.table_id")?;
                r.skip(1, "ofp_flow_stats_request.pad")?;
                f.table = (table != 0xff).then_some(table);
                f.out_port = ports::filter(r.u16("ofp_flow_stats_request.out_port")? as u32);
            }
            Version::Of13 => {
                let table = r.u8("ofp_flow_stats_request.table_id")?;
                r.skip(3, "ofp_flow_stats_request.pad")?;
                f.table = (table != 0xff).then_some(table);
                let port = r.u32("ofp_flow_stats_request.out_port")?;
                f.out_port = ports::filter(ports::from_of13(port));
                r.skip(8, "ofp_flow_stats_request.out_group")?;
                f.cookie = r.u64("ofp_flow_stats_request.cookie")?;
                f.cookie_mask = r.u64("ofp_flow_stats_request.cookie_mask")?;
                f.r#match = read_match13(&mut r)?;
            }
        }
        Ok(f)
    }
}

/// The switch's description (DESC reply). Strings are cut to fit their fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desc {
    /// Manufacturer.
    pub mfr_desc: String,
    /// Hardware.
    pub hw_desc: String,
    /// Software and version.
    pub sw_desc: String,
    /// Serial number.
    pub serial_num: String,
    /// Which datapath this is (the bridge's name).
    pub dp_desc: String,
}

pub(crate) fn put_str(b: &mut Vec<u8>, s: &str, len: usize) {
    let n = s.len().min(len - 1);
    b.extend_from_slice(&s.as_bytes()[..n]);
    b.put_zeros(len - n);
}

pub(crate) fn put_mp_header(b: &mut Vec<u8>, version: Version, kind: u16, flags: u16) {
    b.put_u16(kind);
    b.put_u16(flags);
    if version == Version::Of13 {
        b.put_zeros(4);
    }
}

impl Desc {
    /// The DESC reply to a request with `xid`.
    pub fn encode_reply(&self, version: Version, xid: u32) -> Vec<u8> {
        message(version, MsgType::MultipartReply, xid, |b| {
            put_mp_header(b, version, MP_DESC, 0);
            put_str(b, &self.mfr_desc, 256);
            put_str(b, &self.hw_desc, 256);
            put_str(b, &self.sw_desc, 256);
            put_str(b, &self.serial_num, 32);
            put_str(b, &self.dp_desc, 256);
        })
    }
}

/// One table's counters, for the TABLE reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// Table id.
    pub table_id: u8,
    /// Rules in the table.
    pub active_count: u32,
    /// Packets looked up in the table.
    pub lookup_count: u64,
    /// Packets that hit a rule.
    pub matched_count: u64,
}

/// The TABLE reply (1.0 names each table `table<N>` and says every field can be
/// wildcarded; 1.3 has neither).
pub fn encode_table_stats(version: Version, xid: u32, tables: &[TableStats]) -> Vec<u8> {
    message(version, MsgType::MultipartReply, xid, |b| {
        put_mp_header(b, version, MP_TABLE, 0);
        for t in tables {
            b.put_u8(t.table_id);
            b.put_zeros(3);
            if version == Version::Of10 {
                put_str(b, &format!("table{}", t.table_id), 32);
                b.put_u32((1 << 22) - 1); // OFPFW_ALL: every field may be wildcarded
                b.put_u32(1_000_000); // max_entries
            }
            b.put_u32(t.active_count);
            b.put_u64(t.lookup_count);
            b.put_u64(t.matched_count);
        }
    })
}

/// The AGGREGATE reply: totals over the rules a request selected.
pub fn encode_aggregate<'r>(
    version: Version,
    xid: u32,
    rules: impl IntoIterator<Item = &'r Rule>,
) -> Vec<u8> {
    let (mut packets, mut bytes, mut flows) = (0u64, 0u64, 0u32);
    for r in rules {
        packets += r.stats.packets();
        bytes += r.stats.bytes();
        flows += 1;
    }
    message(version, MsgType::MultipartReply, xid, |b| {
        put_mp_header(b, version, MP_AGGREGATE, 0);
        b.put_u64(packets);
        b.put_u64(bytes);
        b.put_u32(flows);
        b.put_zeros(4);
    })
}

/// The 1.3 PORT_DESC reply listing `ports` (1.0 lists them in the FEATURES_REPLY instead).
/// Port numbers are widened to 1.3's reserved range (`LOCAL`).
pub fn encode_port_desc(xid: u32, ports: &[crate::features::PhyPort]) -> Vec<u8> {
    let version = Version::Of13;
    message(version, MsgType::MultipartReply, xid, |b| {
        put_mp_header(b, version, MP_PORT_DESC, 0);
        for p in ports {
            crate::features::put_port13(b, p);
        }
    })
}

/// One `ofp_flow_stats` entry for `rule` at `now_ms` (the rules' clock).
fn put_flow_stats(b: &mut Vec<u8>, version: Version, rule: &Rule, now_ms: u64) {
    let start = b.len();
    let age = now_ms.saturating_sub(rule.created_ms);
    b.put_u16(0);
    b.put_u8(rule.table);
    b.put_u8(0);
    if version == Version::Of10 {
        put_match10(b, &rule.r#match);
    }
    b.put_u32((age / 1000) as u32);
    b.put_u32((age % 1000) as u32 * 1_000_000);
    b.put_u16(rule.priority);
    b.put_u16(rule.idle_timeout);
    b.put_u16(rule.hard_timeout);
    match version {
        Version::Of10 => b.put_zeros(6),
        Version::Of13 => {
            // OFPFF_SEND_FLOW_REM is the one flag vswitch keeps.
            b.put_u16(u16::from(rule.send_flow_rem));
            b.put_zeros(4);
        }
    }
    b.put_u64(rule.cookie);
    b.put_u64(rule.stats.packets());
    b.put_u64(rule.stats.bytes());
    match version {
        Version::Of10 => put_actions10(b, &rule.actions),
        Version::Of13 => {
            put_match13(b, &rule.r#match);
            let (proto, mask) = rule.r#match.field(flow_table::Field::NwProto);
            put_instructions13(b, &rule.actions, (mask == 0xff).then_some(proto as u8));
        }
    }
    let len = (b.len() - start) as u16;
    patch_u16(b, start, len);
}

/// The FLOW reply for `rules`, as messages of at most `max_len` bytes (capped at 65535):
/// every message but the last has REPLY_MORE set. No rules gives one empty reply.
pub fn encode_flow_stats<'r>(
    version: Version,
    xid: u32,
    rules: impl IntoIterator<Item = &'r Rule>,
    now_ms: u64,
    max_len: usize,
) -> Vec<Vec<u8>> {
    let entries = rules.into_iter().map(|rule| {
        let mut e = Vec::new();
        put_flow_stats(&mut e, version, rule, now_ms);
        e
    });
    paged(version, xid, MP_FLOW, entries, max_len)
}

/// Packs `entries` into reply messages of kind `kind` of at most `max_len` bytes (capped at
/// 65535), REPLY_MORE on all but the last; no entries gives one empty reply.
pub(crate) fn paged(
    version: Version,
    xid: u32,
    kind: u16,
    entries: impl IntoIterator<Item = Vec<u8>>,
    max_len: usize,
) -> Vec<Vec<u8>> {
    paged_with(version, xid, kind, &[], entries, max_len)
}

/// [`paged`] with `extra` after the multipart header of every message (a vendor statistics
/// reply's vendor and subtype).
fn paged_with(
    version: Version,
    xid: u32,
    kind: u16,
    extra: &[u8],
    entries: impl IntoIterator<Item = Vec<u8>>,
    max_len: usize,
) -> Vec<Vec<u8>> {
    let max_len = max_len.min(MAX_MSG_LEN);
    let mut pages: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
    let head = HEADER_LEN + if version == Version::Of13 { 8 } else { 4 } + extra.len();
    let mut used = head;
    for e in entries {
        // A page always takes its first entry, so an entry over the limit still goes out.
        if used + e.len() > max_len && !pages.last().expect("a page").is_empty() {
            pages.push(Vec::new());
            used = head;
        }
        used += e.len();
        pages.last_mut().expect("a page").push(e);
    }
    let n = pages.len();
    pages
        .into_iter()
        .enumerate()
        .map(|(i, page)| {
            message(version, MsgType::MultipartReply, xid, |b| {
                put_mp_header(b, version, kind, if i + 1 < n { REPLY_MORE } else { 0 });
                b.extend_from_slice(extra);
                for e in page {
                    b.extend_from_slice(&e);
                }
            })
        })
        .collect()
}

/// NXST_FLOW: Nicira's flow statistics (vendor statistics subtype), with NXM matches.
pub const NXST_FLOW: u32 = 0;
/// NXST_AGGREGATE.
pub const NXST_AGGREGATE: u32 = 1;

/// The vendor part of a Nicira statistics reply header: vendor, subtype, padding.
fn nx_stats_head(subtype: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(12);
    h.put_u32(crate::actions::NX_VENDOR);
    h.put_u32(subtype);
    h.put_zeros(4);
    h
}

/// One `nx_flow_stats` entry.
fn put_nx_flow_stats(b: &mut Vec<u8>, rule: &Rule, now_ms: u64) {
    let start = b.len();
    let age = now_ms.saturating_sub(rule.created_ms);
    b.put_u16(0);
    b.put_u8(rule.table);
    b.put_u8(0);
    b.put_u32((age / 1000) as u32);
    b.put_u32((age % 1000) as u32 * 1_000_000);
    b.put_u16(rule.priority);
    b.put_u16(rule.idle_timeout);
    b.put_u16(rule.hard_timeout);
    let match_len_at = b.len();
    b.put_u16(0);
    b.put_u16(0); // idle_age: unknown
    b.put_u16(0); // hard_age: unknown
    b.put_u64(rule.cookie);
    b.put_u64(rule.stats.packets());
    b.put_u64(rule.stats.bytes());
    let m = b.len();
    let n = crate::nxm::put_nx_match(b, &rule.r#match);
    b.pad8(m);
    patch_u16(b, match_len_at, n as u16);
    put_actions10(b, &rule.actions);
    let len = (b.len() - start) as u16;
    patch_u16(b, start, len);
}

/// Nicira's NXST_FLOW reply (1.0 connections that agreed on the NXM flow format): as
/// [`encode_flow_stats`], with NXM matches, so nothing 1.0's match lacks is lost.
pub fn encode_nx_flow_stats<'r>(
    xid: u32,
    rules: impl IntoIterator<Item = &'r Rule>,
    now_ms: u64,
    max_len: usize,
) -> Vec<Vec<u8>> {
    let entries = rules.into_iter().map(|rule| {
        let mut e = Vec::new();
        put_nx_flow_stats(&mut e, rule, now_ms);
        e
    });
    paged_with(
        Version::Of10,
        xid,
        MP_EXPERIMENTER,
        &nx_stats_head(NXST_FLOW),
        entries,
        max_len,
    )
}

/// Nicira's NXST_AGGREGATE reply: totals over the rules a request selected.
pub fn encode_nx_aggregate<'r>(xid: u32, rules: impl IntoIterator<Item = &'r Rule>) -> Vec<u8> {
    let (mut packets, mut bytes, mut flows) = (0u64, 0u64, 0u32);
    for r in rules {
        packets += r.stats.packets();
        bytes += r.stats.bytes();
        flows += 1;
    }
    message(Version::Of10, MsgType::MultipartReply, xid, |b| {
        put_mp_header(b, Version::Of10, MP_EXPERIMENTER, 0);
        b.extend_from_slice(&nx_stats_head(NXST_AGGREGATE));
        b.put_u64(packets);
        b.put_u64(bytes);
        b.put_u32(flows);
        b.put_zeros(4);
    })
}

/// OFPMP_TABLE_FEATURES (1.3).
pub const MP_TABLE_FEATURES: u16 = 12;

/// The 1.3 TABLE_FEATURES reply to a query (a request without a body): tables
/// `0..n_tables`, named `table<N>`, each with room for `max_entries` rules and the
/// instructions, actions and fields this codec decodes. Paged like flow statistics.
pub fn encode_table_features(xid: u32, n_tables: u8, max_entries: u32) -> Vec<Vec<u8>> {
    use crate::oxm::{ofb, width, CLASS_BASIC};
    // Matchable and settable fields, as OXM headers (class, field, hasmask, length).
    let fields: Vec<u8> = (0..40u8).filter(|f| width(*f).is_some()).collect();
    let oxm = |f: u8, masked: bool| -> u32 {
        let (w, _) = width(f).expect("known field");
        (CLASS_BASIC as u32) << 16 | (f as u32) << 9 | (masked as u32) << 8 | w as u32
    };
    let settable = [
        ofb::ETH_DST,
        ofb::ETH_SRC,
        ofb::VLAN_VID,
        ofb::VLAN_PCP,
        ofb::IP_DSCP,
        ofb::IPV4_SRC,
        ofb::IPV4_DST,
        ofb::TCP_SRC,
        ofb::TCP_DST,
        ofb::UDP_SRC,
        ofb::UDP_DST,
        ofb::SCTP_SRC,
        ofb::SCTP_DST,
        ofb::TUNNEL_ID,
    ];
    let entries = (0..n_tables).map(|t| {
        let mut b = Vec::new();
        b.put_u16(0);
        b.put_u8(t);
        b.put_zeros(5);
        put_str(&mut b, &format!("table{t}"), 32);
        b.put_u64(0); // metadata_match: vswitch has no metadata
        b.put_u64(0); // metadata_write
        b.put_u32(0); // config
        b.put_u32(max_entries);
        let prop = |b: &mut Vec<u8>, ty: u16, body: &[u8]| {
            let start = b.len();
            b.put_u16(ty);
            b.put_u16((4 + body.len()) as u16);
            b.extend_from_slice(body);
            b.pad8(start);
        };
        let headers = |list: &[u16]| -> Vec<u8> {
            list.iter()
                .flat_map(|t| [t.to_be_bytes(), 4u16.to_be_bytes()].concat())
                .collect()
        };
        let oxms = |list: &[u8], masked: bool| -> Vec<u8> {
            list.iter()
                .flat_map(|f| {
                    let m = masked && width(*f).is_some_and(|(_, can)| can);
                    oxm(*f, m).to_be_bytes()
                })
                .collect()
        };
        // GOTO_TABLE only where a later table exists; APPLY_ACTIONS, CLEAR_ACTIONS.
        let inst: &[u16] = if t + 1 < n_tables {
            &[1, 4, 5]
        } else {
            &[4, 5]
        };
        prop(&mut b, 0, &headers(inst)); // INSTRUCTIONS
        let next: Vec<u8> = (t + 1..n_tables).collect();
        prop(&mut b, 2, &next); // NEXT_TABLES
        prop(&mut b, 4, &[]); // WRITE_ACTIONS: none
        prop(&mut b, 6, &headers(&[0, 17, 18, 23, 24, 25])); // APPLY_ACTIONS
        prop(&mut b, 8, &oxms(&fields, true)); // MATCH
        prop(&mut b, 10, &oxms(&fields, false)); // WILDCARDS
        prop(&mut b, 12, &[]); // WRITE_SETFIELD: none
        prop(&mut b, 14, &oxms(&settable, false)); // APPLY_SETFIELD
        let len = b.len() as u16;
        patch_u16(&mut b, 0, len);
        b
    });
    paged(Version::Of13, xid, MP_TABLE_FEATURES, entries, MAX_MSG_LEN)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use flow_table::{Action, Match, RuleStats};

    use super::*;

    pub(crate) fn rule(priority: u16, actions: Vec<Action>) -> Rule {
        Rule {
            table: 0,
            priority,
            r#match: Match::any()
                .eth_type(0x0800)
                .nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8),
            actions: actions.into(),
            cookie: 0x42,
            idle_timeout: 0,
            hard_timeout: 0,
            send_flow_rem: false,
            seq: 0,
            created_ms: 0,
            stats: Arc::new(RuleStats::default()),
        }
    }

    #[test]
    fn paging() {
        let rules: Vec<Rule> = (0..10).map(|p| rule(p, vec![Action::Output(1)])).collect();
        let one = encode_flow_stats(Version::Of13, 1, &rules[..1], 0, MAX_MSG_LEN);
        let entry = one[0].len() - 16;
        let pages = encode_flow_stats(Version::Of13, 1, &rules, 0, 16 + 3 * entry);
        assert_eq!(pages.len(), 4);
        for (i, p) in pages.iter().enumerate() {
            let more = u16::from_be_bytes([p[10], p[11]]);
            assert_eq!(more, if i < 3 { REPLY_MORE } else { 0 });
            assert!(p.len() <= 16 + 3 * entry);
            assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len());
        }
        let empty = encode_flow_stats(Version::Of10, 2, [], 0, MAX_MSG_LEN);
        assert_eq!(empty, vec![vec![1, 17, 0, 12, 0, 0, 0, 2, 0, 1, 0, 0]]);
    }

    #[test]
    fn flow_request_filter() {
        let m = message(Version::Of13, MsgType::MultipartRequest, 3, |b| {
            b.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
            b.extend_from_slice(&[2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
            b.extend_from_slice(&[0xff; 4]);
            b.extend_from_slice(&[0; 4]);
            b.extend_from_slice(&5u64.to_be_bytes());
            b.extend_from_slice(&u64::MAX.to_be_bytes());
            b.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]);
        });
        let req = MultipartRequest::parse(&m).unwrap();
        let f = req.flow_filter().unwrap();
        assert_eq!(
            (f.table, f.out_port, f.cookie, f.cookie_mask),
            (Some(2), None, 5, u64::MAX)
        );
        let desc = message(Version::Of13, MsgType::MultipartRequest, 3, |b| {
            b.extend_from_slice(&[0; 8])
        });
        let req = MultipartRequest::parse(&desc).unwrap();
        assert_eq!(req.kind, MP_DESC);
        assert_eq!(
            req.flow_filter().unwrap_err().reply,
            ErrorCode::BadRequest(BadRequest::BadMultipart)
        );
    }
}
