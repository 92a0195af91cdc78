//! The rules an action list obeys as a whole, as OpenFlow (and so ovs-ofctl) sets them:
//! `drop` stands alone, `goto_table` comes last, once, to a later table, and `set_field` (and
//! `mod_nw_ttl`) only writes a field the match says the packet has.
//!
//! ovs-ofctl checks the prerequisites against the match as the actions change it, so a
//! `push_vlan` or `mod_vlan_vid` lets a later `set_field:->vlan_vid` through and a `pop_vlan`
//! stops it. The older `mod_nw_src`, `mod_tp_dst`, `mod_nw_tos`, `dec_ttl`, `strip_vlan` need
//! their header only from OpenFlow 1.1 on: OpenFlow 1.0 (ovs-ofctl's default) defines them as
//! doing nothing to packets without it, and vswitch does the same. So they are taken without
//! it, unless the list also has an action OpenFlow 1.0 lacks (`push_vlan`): then no version of
//! OpenFlow takes the flow, and neither does vswitch.

use super::action_list::{Need, ParsedAction, Version};
use super::{err, FlowParseError};
use crate::actions::{Action, SetField};
use crate::fields::Field;
use crate::key::{ethertype, ipproto, VLAN_PRESENT};
use crate::matches::Match;

/// What is known of the packet while walking the actions.
struct Known {
    eth_type: Option<u16>,
    nw_proto: Option<u8>,
    /// Whether each of the two outermost VLAN tags is known to be there.
    vlans: [bool; 2],
}

impl Known {
    fn of(m: &Match) -> Known {
        let exact = |f: Field| {
            let (v, mask) = m.field(f);
            (mask == f.all_ones()).then_some(v)
        };
        let (tci, tci_mask) = m.field(Field::VlanTci);
        let present = VLAN_PRESENT as u128;
        Known {
            eth_type: exact(Field::EthType).map(|v| v as u16),
            nw_proto: exact(Field::NwProto).map(|v| v as u8),
            vlans: [tci_mask & present != 0 && tci & present != 0, false],
        }
    }

    fn has(&self, need: Need) -> bool {
        let ip = matches!(self.eth_type, Some(ethertype::IPV4 | ethertype::IPV6));
        match need {
            Need::Ipv4 => self.eth_type == Some(ethertype::IPV4),
            Need::Ip => ip,
            Need::Proto(p) => ip && self.nw_proto == Some(p),
            Need::Ports => {
                ip && matches!(
                    self.nw_proto,
                    Some(ipproto::TCP | ipproto::UDP | ipproto::SCTP)
                )
            }
            Need::Vlan => self.vlans[0],
        }
    }

    /// What `a` changes in what is known.
    fn apply(&mut self, a: &Action) {
        match a {
            Action::PushVlan(_) => self.vlans = [true, self.vlans[0]],
            Action::PopVlan => self.vlans = [self.vlans[1], false],
            // mod_vlan_vid/mod_vlan_pcp push a tag when there is none.
            Action::Set(SetField::VlanVid(_) | SetField::VlanPcp(_)) => self.vlans[0] = true,
            _ => {}
        }
    }
}

/// Checks an action list against its rule's `table` (when known) and match, and returns the
/// actions (`drop` gives none).
pub(super) fn check_actions(
    list: &[ParsedAction<'_>],
    table: Option<u8>,
    m: &Match,
) -> Result<Vec<Action>, FlowParseError> {
    let at = |a: &ParsedAction<'_>, msg: String| err(a.piece.pos, a.piece.text, msg);
    if let Some(d) = list.iter().find(|a| a.action.is_none()) {
        if list.iter().any(|a| a.action.is_some()) {
            return at(d, "'drop' must be the only action".into());
        }
    }
    let gotos: Vec<&ParsedAction<'_>> = list
        .iter()
        .filter(|a| matches!(a.action, Some(Action::GotoTable(_))))
        .collect();
    if let Some(second) = gotos.get(1) {
        return at(second, "goto_table may be given only once".into());
    }
    if let Some(g) = gotos.first() {
        let last = list.last().expect("a goto_table is in the list");
        if !std::ptr::eq(*g, last) {
            return at(
                last,
                format!(
                    "'{}' after goto_table: goto_table must be the last action",
                    last.piece.text
                ),
            );
        }
        if let (Some(Action::GotoTable(to)), Some(from)) = (&g.action, table) {
            if *to <= from {
                return at(
                    g,
                    format!("goto_table must name a later table than this rule's (table {from})"),
                );
            }
        }
    }
    let mut known = Known::of(m);
    let mut out = Vec::with_capacity(list.len());
    // The first action that only OpenFlow 1.0, and the first that only 1.1+, takes here.
    let (mut of10, mut of11) = (None, None);
    for a in list {
        let Some(action) = &a.action else { continue };
        if let Some(need) = a.needs {
            if !known.has(need) {
                return at(
                    a,
                    format!(
                        "action '{}' needs {} in the match",
                        a.piece.text,
                        need.describe()
                    ),
                );
            }
        }
        let why10 = match (a.needs_of11, a.only) {
            (Some(need), _) if !known.has(need) => Some(format!("lacks {}", need.describe())),
            (_, Some(Version::Of10)) => Some("has no OFPVID_PRESENT bit (0x1000)".to_string()),
            _ => None,
        };
        if of10.is_none() {
            of10 = why10.map(|w| (a, w));
        }
        if of11.is_none() && a.only == Some(Version::Of11) {
            of11 = Some(a);
        }
        if let (Some((a10, why)), Some(a11)) = (&of10, of11) {
            return at(
                a,
                format!(
                    "'{}' {why}, which only OpenFlow 1.0 allows, and '{}' is not in OpenFlow \
                     1.0: no OpenFlow version takes both",
                    a10.piece.text, a11.piece.text
                ),
            );
        }
        known.apply(action);
        out.push(action.clone());
    }
    Ok(out)
}
