//! Actions: what rules say ([`Action`]) and what the datapath executes ([`DpAction`]).
//!
//! Rules may jump between tables and rewrite fields before further lookups; the upcall flattens
//! all of that into a list of [`DpAction`]s that a PMD thread runs on the packet without
//! consulting any table.

use std::fmt;
use std::net::Ipv4Addr;

use crate::wire::MacAddr;

/// A field rewrite, shared by rule actions and datapath actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetField {
    /// `mod_dl_src:mac`.
    EthSrc(MacAddr),
    /// `mod_dl_dst:mac`.
    EthDst(MacAddr),
    /// `mod_vlan_vid:vid` — as a datapath action, rewrites the id of the existing outer tag.
    VlanVid(u16),
    /// `mod_vlan_pcp:pcp` — as a datapath action, rewrites the priority of the existing outer tag.
    VlanPcp(u8),
    /// `mod_nw_src:addr` (IPv4).
    Ipv4Src(u32),
    /// `mod_nw_dst:addr` (IPv4).
    Ipv4Dst(u32),
    /// `mod_nw_tos:tos` — the DSCP bits (top six) of the TOS byte; ECN is kept.
    IpTos(u8),
    /// `mod_nw_ttl:ttl`.
    IpTtl(u8),
    /// `mod_tp_src:port` (TCP, UDP, SCTP).
    TpSrc(u16),
    /// `mod_tp_dst:port` (TCP, UDP, SCTP).
    TpDst(u16),
    /// `set_tunnel:id` — the tunnel id used by a later output to a tunnel port.
    TunId(u64),
}

/// An action of a rule, as written in a flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// `output:port`. Output to the packet's own ingress port is skipped, as OpenFlow says; use
    /// [`Action::InPort`] for that.
    Output(u32),
    /// `in_port`: send back out of the ingress port.
    InPort,
    /// `normal`: L2 learning switch.
    Normal,
    /// `flood`: every port of the bridge except the ingress port.
    Flood,
    /// `drop`: explicit drop (a rule with no action drops too).
    Drop,
    /// `push_vlan:tpid`: push a tag with VLAN id 0 (set it with `mod_vlan_vid`).
    PushVlan(u16),
    /// `strip_vlan` / `pop_vlan`.
    PopVlan,
    /// `mod_*` / `set_field`: rewrite a field. `mod_vlan_vid` and `mod_vlan_pcp` push a tag when
    /// the packet has none, as ovs-ofctl does.
    Set(SetField),
    /// `dec_ttl`: decrement the IP TTL; a packet whose TTL would reach zero is dropped.
    DecTtl,
    /// `goto_table:t`: continue in table `t` (must be a later table); ends this rule's actions.
    GotoTable(u8),
    /// `resubmit(port,table)`: look the packet up again (with `in_port` replaced when `port` is
    /// given, in `table` when given, else the current table), run that rule's actions, then go on.
    Resubmit {
        /// Ingress port for the nested lookup.
        port: Option<u32>,
        /// Table for the nested lookup.
        table: Option<u8>,
    },
    /// `controller:max_len`: send the packet to the OpenFlow controller as a PACKET_IN,
    /// cut to `max_len` bytes (0xffff: the whole packet).
    Controller {
        /// Bytes of the packet the PACKET_IN carries.
        max_len: u16,
    },
}

/// An action the datapath executes, with no table lookups left.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpAction {
    /// Send a copy of the packet (as modified so far) to the port.
    Output(u32),
    /// L2 learning switch decision, made by the bridge's MAC table.
    Normal,
    /// Every port of the bridge except the ingress port.
    Flood,
    /// Push an outer VLAN tag.
    PushVlan {
        /// Tag protocol identifier (0x8100 or 0x88a8).
        tpid: u16,
        /// Tag control information (PCP and VID; the present bit is not written).
        tci: u16,
    },
    /// Remove the outer VLAN tag.
    PopVlan,
    /// Rewrite a field (the header is known to be present).
    Set(SetField),
    /// Decrement the IP TTL (known to be above 1).
    DecTtl,
}

impl fmt::Display for SetField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetField::EthSrc(m) => write!(f, "mod_dl_src:{m}"),
            SetField::EthDst(m) => write!(f, "mod_dl_dst:{m}"),
            SetField::VlanVid(v) => write!(f, "mod_vlan_vid:{v}"),
            SetField::VlanPcp(p) => write!(f, "mod_vlan_pcp:{p}"),
            SetField::Ipv4Src(a) => write!(f, "mod_nw_src:{}", Ipv4Addr::from(*a)),
            SetField::Ipv4Dst(a) => write!(f, "mod_nw_dst:{}", Ipv4Addr::from(*a)),
            SetField::IpTos(t) => write!(f, "mod_nw_tos:{t}"),
            SetField::IpTtl(t) => write!(f, "mod_nw_ttl:{t}"),
            SetField::TpSrc(p) => write!(f, "mod_tp_src:{p}"),
            SetField::TpDst(p) => write!(f, "mod_tp_dst:{p}"),
            SetField::TunId(id) => write!(f, "set_tunnel:{id:#x}"),
        }
    }
}

impl fmt::Display for Action {
    /// Writes the action the way ovs-ofctl does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Output(p) => write!(f, "output:{p}"),
            Action::InPort => f.write_str("in_port"),
            Action::Normal => f.write_str("NORMAL"),
            Action::Flood => f.write_str("FLOOD"),
            Action::Drop => f.write_str("drop"),
            Action::PushVlan(t) => write!(f, "push_vlan:{t:#06x}"),
            Action::PopVlan => f.write_str("strip_vlan"),
            Action::Set(s) => write!(f, "{s}"),
            Action::DecTtl => f.write_str("dec_ttl"),
            Action::GotoTable(t) => write!(f, "goto_table:{t}"),
            Action::Controller { max_len } => write!(f, "CONTROLLER:{max_len}"),
            Action::Resubmit { port, table } => {
                f.write_str("resubmit(")?;
                if let Some(p) = port {
                    write!(f, "{p}")?;
                }
                f.write_str(",")?;
                if let Some(t) = table {
                    write!(f, "{t}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for DpAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpAction::Output(p) => write!(f, "{p}"),
            DpAction::Normal => f.write_str("normal"),
            DpAction::Flood => f.write_str("flood"),
            DpAction::PushVlan { tpid, tci } => {
                write!(f, "push_vlan(tpid={tpid:#06x},tci={tci:#x})")
            }
            DpAction::PopVlan => f.write_str("pop_vlan"),
            DpAction::Set(s) => write!(f, "{s}"),
            DpAction::DecTtl => f.write_str("dec_ttl"),
        }
    }
}

/// Writes a list of actions separated by commas, `drop` for an empty list.
pub fn fmt_actions<T: fmt::Display>(actions: &[T], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if actions.is_empty() {
        return f.write_str("drop");
    }
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{a}")?;
    }
    Ok(())
}

/// Displays a list of actions as [`fmt_actions`] writes it (`drop` when empty).
pub struct List<'a, T>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_actions(self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_print_as_ovs_ofctl_writes_them() {
        let a = [
            Action::Set(SetField::VlanVid(10)),
            Action::Set(SetField::Ipv4Dst(0x0a00_0001)),
            Action::Resubmit {
                port: None,
                table: Some(2),
            },
            Action::Output(3),
        ];
        assert_eq!(
            List(&a).to_string(),
            "mod_vlan_vid:10,mod_nw_dst:10.0.0.1,resubmit(,2),output:3"
        );
        assert_eq!(List::<Action>(&[]).to_string(), "drop");
    }
}
