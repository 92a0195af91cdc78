//! FLOW_MOD (1.0 and 1.3) into a typed [`FlowMod`], and from there to flow-table's
//! [`RuleSpec`] (add) or [`RuleFilter`] (modify, delete).

use flow_table::{Action, Match, RuleFilter, RuleSpec};

use crate::actions::{parse_actions10, parse_instructions};
use crate::codec::Reader;
use crate::error::{BadRequest, DecodeError, ErrorCode, FlowModFailed};
use crate::header::{Header, MsgType, Version, HEADER_LEN};
use crate::match10::read_match10;
use crate::oxm::read_match13;
use crate::ports;

/// OFPTT_ALL: every table (delete and modify only).
pub const TABLE_ALL: u8 = 0xff;
/// OFP_NO_BUFFER: the flow mod applies to no buffered packet.
pub const NO_BUFFER: u32 = 0xffff_ffff;
/// OFPFF_SEND_FLOW_REM: tell the controller when the rule goes.
pub const OFPFF_SEND_FLOW_REM: u16 = 1;

/// OFPFC_*: what a flow mod does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowModCommand {
    /// Install a rule (replacing one with the same match and priority).
    Add,
    /// Change the actions of every rule the match covers.
    Modify,
    /// Change the actions of the rule with exactly this match and priority.
    ModifyStrict,
    /// Remove every rule the match covers.
    Delete,
    /// Remove the rule with exactly this match and priority.
    DeleteStrict,
}

impl FlowModCommand {
    fn from_wire(c: u16) -> Result<FlowModCommand, DecodeError> {
        Ok(match c {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            _ => {
                return Err(DecodeError::new(
                    "ofp_flow_mod.command",
                    format!("unknown command {c}"),
                    ErrorCode::FlowModFailed(FlowModFailed::BadCommand),
                ))
            }
        })
    }

    /// Whether the command selects rules by exact match and priority.
    pub fn is_strict(self) -> bool {
        matches!(
            self,
            FlowModCommand::ModifyStrict | FlowModCommand::DeleteStrict
        )
    }
}

/// A decoded FLOW_MOD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    /// What to do.
    pub command: FlowModCommand,
    /// Table (1.0 has none: 0 for adds, [`TABLE_ALL`] otherwise, as OVS reads 1.0).
    pub table_id: u8,
    /// Priority.
    pub priority: u16,
    /// Cookie: the new rule's for an add, the one to select under `cookie_mask` otherwise.
    pub cookie: u64,
    /// Cookie bits compared by modify/delete (1.3; 0 in 1.0).
    pub cookie_mask: u64,
    /// Seconds without a hit before the rule expires (0 = never).
    pub idle_timeout: u16,
    /// Seconds after installation before it expires (0 = never).
    pub hard_timeout: u16,
    /// OFPFF_* flags, as sent; vswitch acts on SEND_FLOW_REM (see [`FlowMod::to_rule_spec`])
    /// and not on the others (no overlap check, counters always kept).
    pub flags: u16,
    /// A buffered packet to run through the new rule ([`NO_BUFFER`]: none; vswitch buffers
    /// nothing, so anything else is for the caller to refuse).
    pub buffer_id: u32,
    /// Delete only rules that output to this port (vswitch numbering); `None` = any.
    pub out_port: Option<u32>,
    /// The match.
    pub r#match: Match,
    /// The actions, in order (empty = drop).
    pub actions: Vec<Action>,
}

impl FlowMod {
    /// Decodes a whole FLOW_MOD message of either version, on a connection that has not
    /// enabled Nicira's flow-mod table id (see [`FlowMod::parse_with`]).
    pub fn parse(msg: &[u8]) -> Result<FlowMod, DecodeError> {
        FlowMod::parse_with(msg, false)
    }

    /// Decodes a whole FLOW_MOD, or Nicira's NXT_FLOW_MOD (a 1.0 flow mod with an NXM match,
    /// which ovs-ofctl sends once the NXM flow format is agreed). `table_id_ext`: the connection enabled Nicira's
    /// NXT_FLOW_MOD_TABLE_ID, so a 1.0 flow mod's 16-bit command carries the table in its
    /// high byte (ovs-ofctl's `table=N` in 1.0). 1.3 has a table field and ignores it.
    pub fn parse_with(msg: &[u8], table_id_ext: bool) -> Result<FlowMod, DecodeError> {
        let h = Header::parse(msg)?;
        let version = h.version()?;
        let t = h.msg_type()?;
        let mut r = Reader::new(&msg[HEADER_LEN..h.length as usize]);
        if t == MsgType::Experimenter && crate::nicira::experimenter_ids(msg) == NXT_FLOW_MOD {
            r.skip(8, "nicira_header")?;
            return parse_nx(&mut r, table_id_ext);
        }
        if t != MsgType::FlowMod {
            return Err(DecodeError::new(
                "ofp_header.type",
                format!("expected FLOW_MOD, got {t:?}"),
                ErrorCode::BadRequest(BadRequest::BadType),
            ));
        }
        match version {
            Version::Of10 => parse10(&mut r, table_id_ext),
            Version::Of13 => parse13(&mut r),
        }
    }

    /// Whether the controller asked for a FLOW_REMOVED when the rule goes (OFPFF_SEND_FLOW_REM
    /// in [`FlowMod::flags`]).
    pub fn send_flow_rem(&self) -> bool {
        self.flags & crate::flow_removed::FF_SEND_FLOW_REM != 0
    }

    /// The rule an ADD installs.
    pub fn to_rule_spec(&self) -> RuleSpec {
        RuleSpec {
            table: if self.table_id == TABLE_ALL {
                0
            } else {
                self.table_id
            },
            priority: self.priority,
            r#match: self.r#match,
            actions: self.actions.clone(),
            cookie: self.cookie,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            send_flow_rem: self.flags & OFPFF_SEND_FLOW_REM != 0,
        }
    }

    /// The rules a MODIFY or DELETE selects (strictness: [`FlowModCommand::is_strict`]).
    /// `out_port` filters deletes only, as the spec says modifies ignore it.
    pub fn to_rule_filter(&self) -> RuleFilter {
        let is_delete = matches!(
            self.command,
            FlowModCommand::Delete | FlowModCommand::DeleteStrict
        );
        RuleFilter {
            table: (self.table_id != TABLE_ALL).then_some(self.table_id),
            r#match: self.r#match,
            priority: self.priority,
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            out_port: if is_delete { self.out_port } else { None },
        }
    }
}

fn parse10(r: &mut Reader<'_>, table_id_ext: bool) -> Result<FlowMod, DecodeError> {
    let m = read_match10(r)?;
    let cookie = r.u64("ofp_flow_mod.cookie")?;
    let raw = r.u16("ofp_flow_mod.command")?;
    let (command, table) = if table_id_ext {
        (raw & 0xff, Some((raw >> 8) as u8))
    } else {
        (raw, None)
    };
    let command = FlowModCommand::from_wire(command)?;
    let idle_timeout = r.u16("ofp_flow_mod.idle_timeout")?;
    let hard_timeout = r.u16("ofp_flow_mod.hard_timeout")?;
    let priority = r.u16("ofp_flow_mod.priority")?;
    let buffer_id = r.u32("ofp_flow_mod.buffer_id")?;
    let out_port = r.u16("ofp_flow_mod.out_port")? as u32;
    let flags = r.u16("ofp_flow_mod.flags")?;
    let actions = parse_actions10(r.rest())?;
    Ok(FlowMod {
        command,
        table_id: match table {
            Some(t) => t,
            None if command == FlowModCommand::Add => 0,
            None => TABLE_ALL,
        },
        priority,
        cookie,
        cookie_mask: 0,
        idle_timeout,
        hard_timeout,
        flags,
        buffer_id,
        out_port: ports::filter(out_port),
        r#match: m,
        actions,
    })
}

/// NXT_FLOW_MOD's (vendor, subtype), as [`crate::nicira::experimenter_ids`] gives them.
const NXT_FLOW_MOD: Option<(u32, u32)> =
    Some((crate::actions::NX_VENDOR, crate::nicira::nxt::FLOW_MOD));

/// `nx_flow_mod` after its Nicira header: 1.0's flow mod with the match moved to the end
/// as an `nx_match`.
fn parse_nx(r: &mut Reader<'_>, table_id_ext: bool) -> Result<FlowMod, DecodeError> {
    let cookie = r.u64("nx_flow_mod.cookie")?;
    let raw = r.u16("nx_flow_mod.command")?;
    let (command, table) = if table_id_ext {
        (raw & 0xff, Some((raw >> 8) as u8))
    } else {
        (raw, None)
    };
    let command = FlowModCommand::from_wire(command)?;
    let idle_timeout = r.u16("nx_flow_mod.idle_timeout")?;
    let hard_timeout = r.u16("nx_flow_mod.hard_timeout")?;
    let priority = r.u16("nx_flow_mod.priority")?;
    let buffer_id = r.u32("nx_flow_mod.buffer_id")?;
    let out_port = r.u16("nx_flow_mod.out_port")? as u32;
    let flags = r.u16("nx_flow_mod.flags")?;
    let match_len = r.u16("nx_flow_mod.match_len")? as usize;
    r.skip(6, "nx_flow_mod.pad")?;
    let m = crate::nxm::read_nx_match(r, match_len)?;
    r.skip(
        match_len.next_multiple_of(8) - match_len,
        "nx_flow_mod.match_pad",
    )?;
    let actions = parse_actions10(r.rest())?;
    Ok(FlowMod {
        command,
        table_id: match table {
            Some(t) => t,
            None if command == FlowModCommand::Add => 0,
            None => TABLE_ALL,
        },
        priority,
        cookie,
        cookie_mask: 0,
        idle_timeout,
        hard_timeout,
        flags,
        buffer_id,
        out_port: ports::filter(out_port),
        r#match: m,
        actions,
    })
}

fn parse13(r: &mut Reader<'_>) -> Result<FlowMod, DecodeError> {
    let cookie = r.u64("ofp_flow_mod.cookie")?;
    let cookie_mask = r.u64("ofp_flow_mod.cookie_mask")?;
    let table_id = r.u8("ofp_flow_mod.table_id")?;
    let command = FlowModCommand::from_wire(r.u8("ofp_flow_mod.command")? as u16)?;
    let idle_timeout = r.u16("ofp_flow_mod.idle_timeout")?;
    let hard_timeout = r.u16("ofp_flow_mod.hard_timeout")?;
    let priority = r.u16("ofp_flow_mod.priority")?;
    let buffer_id = r.u32("ofp_flow_mod.buffer_id")?;
    let out_port = ports::from_of13(r.u32("ofp_flow_mod.out_port")?);
    let _out_group = r.u32("ofp_flow_mod.out_group")?;
    let flags = r.u16("ofp_flow_mod.flags")?;
    r.skip(2, "ofp_flow_mod.pad")?;
    if table_id == TABLE_ALL && command == FlowModCommand::Add {
        return Err(DecodeError::new(
            "ofp_flow_mod.table_id",
            "an add needs one table, not OFPTT_ALL",
            ErrorCode::FlowModFailed(FlowModFailed::BadTableId),
        ));
    }
    let m = read_match13(r)?;
    let actions = parse_instructions(r.rest())?;
    Ok(FlowMod {
        command,
        table_id,
        priority,
        cookie,
        cookie_mask,
        idle_timeout,
        hard_timeout,
        flags,
        buffer_id,
        out_port: ports::filter(out_port),
        r#match: m,
        actions,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::header::message;

    /// A 1.0 flow mod: match in_port=1,ip,nw_dst=10.0.0.0/8; add; actions output:2.
    fn of10_add() -> Vec<u8> {
        let mut m = [0u8; 40];
        let wc: u32 = ((1 << 22) - 1) & !(1 | 1 << 4 | 0x3f << 14) | 24 << 14;
        m[..4].copy_from_slice(&wc.to_be_bytes());
        m[4..6].copy_from_slice(&[0, 1]);
        m[22..24].copy_from_slice(&[8, 0]);
        m[32..36].copy_from_slice(&[10, 9, 9, 9]);
        message(Version::Of10, MsgType::FlowMod, 1, |b| {
            b.extend_from_slice(&m);
            b.extend_from_slice(&7u64.to_be_bytes()); // cookie
            b.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0x80, 0]); // add, idle 10, prio 32768
            b.extend_from_slice(&[0xff; 4]); // no buffer
            b.extend_from_slice(&[0xff, 0xff, 0, 0]); // out_port NONE, flags
            b.extend_from_slice(&[0, 0, 0, 8, 0, 2, 0, 0]);
        })
    }

    #[test]
    fn decode10() {
        let f = FlowMod::parse(&of10_add()).unwrap();
        assert_eq!(f.command, FlowModCommand::Add);
        assert_eq!((f.priority, f.cookie, f.idle_timeout), (0x8000, 7, 10));
        assert_eq!(f.out_port, None);
        assert_eq!(
            f.r#match,
            Match::any()
                .in_port(1)
                .eth_type(0x0800)
                .nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8)
        );
        assert_eq!(f.actions, vec![Action::Output(2)]);
        let spec = f.to_rule_spec();
        assert_eq!((spec.table, spec.priority, spec.cookie), (0, 0x8000, 7));
    }

    /// `ovs-ofctl -O OpenFlow10 add-flow table=3,actions=output:1`, after it enabled
    /// NXT_FLOW_MOD_TABLE_ID: the command's high byte is the table.
    #[test]
    fn decode10_table_id() {
        let hex = "010e005000000004003820ff0000000000000000000000000000000000000000\
                   0000000000000000000000000000000000000000000000000300000000008000\
                   ffffffffffff00000000000800010000";
        let m: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let f = FlowMod::parse_with(&m, true).unwrap();
        assert_eq!((f.command, f.table_id), (FlowModCommand::Add, 3));
        assert_eq!(f.actions, vec![Action::Output(1)]);
        assert!(!f.send_flow_rem());
        // Without the extension the command is 0x300: unknown.
        let e = FlowMod::parse(&m).unwrap_err();
        assert_eq!(e.field, "ofp_flow_mod.command");
    }

    #[test]
    fn bad_command_and_short() {
        let mut m = of10_add();
        m[8 + 40 + 9] = 9;
        let e = FlowMod::parse(&m).unwrap_err();
        assert_eq!(e.field, "ofp_flow_mod.command");
        assert_eq!(e.reply.wire(Version::Of10), (3, 4));
        let mut short = of10_add();
        short.truncate(60);
        short[3] = 60;
        assert_eq!(
            FlowMod::parse(&short).unwrap_err().field,
            "ofp_flow_mod.hard_timeout"
        );
    }

    #[test]
    fn decode13_delete_all_tables() {
        let m = message(Version::Of13, MsgType::FlowMod, 2, |b| {
            b.extend_from_slice(&[0; 8]); // cookie
            b.extend_from_slice(&[0; 8]); // cookie_mask
            b.extend_from_slice(&[0xff, 3, 0, 0, 0, 0, 0x80, 0]); // all tables, delete
            b.extend_from_slice(&[0xff; 4]); // buffer
            b.extend_from_slice(&[0, 0, 0, 5]); // out_port 5
            b.extend_from_slice(&[0xff; 4]); // out_group any
            b.extend_from_slice(&[0; 4]); // flags, pad
            b.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]); // empty OXM match
        });
        let f = FlowMod::parse(&m).unwrap();
        assert_eq!(f.command, FlowModCommand::Delete);
        let filt = f.to_rule_filter();
        assert_eq!((filt.table, filt.out_port), (None, Some(5)));
        assert_eq!(filt.r#match, Match::any());
    }
}
