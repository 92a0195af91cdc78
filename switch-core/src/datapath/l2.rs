//! A bridge's L2 settings that NORMAL and the upcall read: port VLAN settings, the bridge's
//! ports and mirrors.
//!
//! NORMAL ([`super::normal`]) takes the packet's VLAN from its ingress port, learns and looks
//! up in that VLAN, and sends to the ports that carry the VLAN, each with the tag that port
//! wants. Mirrors then add an output of the packet as received to their output port.
//!
//! The control plane replaces the whole config (an `ArcSwap`) and drops every megaflow of the
//! bridge, so cached decisions never outlive the settings they were made with.

use std::collections::BTreeMap;

use flow_table::key::FlowKey;
use flow_table::{DpAction, Field, Translation};

use crate::datapath::vlan::PortVlan;

/// A mirror as the datapath applies it (ports by number).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirror {
    /// Name.
    pub name: String,
    /// Mirror packets received on these ports.
    pub select_src: Vec<u32>,
    /// Mirror packets sent to these ports.
    pub select_dst: Vec<u32>,
    /// Mirror packets of these VLANs.
    pub select_vlan: Vec<u16>,
    /// Mirror every packet.
    pub select_all: bool,
    /// Where the copies go (`None` while that port does not exist).
    pub output: Option<u32>,
}

/// The L2 settings of one bridge.
#[derive(Clone, Debug, Default)]
pub struct L2Config {
    /// VLAN settings of ports that have some.
    pub vlans: BTreeMap<u32, PortVlan>,
    /// Every port of the bridge (flood targets), by number.
    pub ports: Vec<u32>,
    /// Mirrors.
    pub mirrors: Vec<Mirror>,
}

impl L2Config {
    /// The VLAN NORMAL learns the source of `key` in (`None`: it learns nothing).
    pub fn learn_vlan(&self, key: &FlowKey) -> Option<u16> {
        if self.is_mirror_output(key.in_port) {
            return None;
        }
        self.vlan(key.in_port).input_vlan(key.vlan_tci)
    }

    /// The VLAN settings of `port`.
    pub(crate) fn vlan(&self, port: u32) -> &PortVlan {
        /// A port without settings: a trunk of every VLAN.
        static TRUNK_ALL: PortVlan = PortVlan {
            tag: None,
            trunks: Vec::new(),
            mode: None,
        };
        self.vlans.get(&port).unwrap_or(&TRUNK_ALL)
    }

    /// True when `port` is a mirror's output (it carries copies only).
    pub(crate) fn is_mirror_output(&self, port: u32) -> bool {
        self.mirrors.iter().any(|m| m.output == Some(port))
    }

    /// Adds the mirror outputs the packet of `key` calls for (in front, so they carry the
    /// packet as it was received).
    pub fn apply_mirrors(&self, x: &mut Translation, key: &FlowKey) {
        if self.mirrors.is_empty() {
            return;
        }
        let mut vlan = None;
        for m in &self.mirrors {
            let Some(out) = m.output else { continue };
            let sends_to = |p: u32| {
                x.actions.iter().any(|a| match a {
                    DpAction::Output(o) => *o == p,
                    DpAction::Flood => p != key.in_port,
                    _ => false,
                })
            };
            let mut hit = m.select_all
                || m.select_src.contains(&key.in_port)
                || m.select_dst.iter().any(|&p| sends_to(p));
            if !hit && !m.select_vlan.is_empty() {
                let v = *vlan.get_or_insert_with(|| {
                    // The decision now depends on the tag.
                    Field::VlanTci.set(&mut x.mask.0, Field::VlanTci.all_ones());
                    self.vlan(key.in_port).input_vlan(key.vlan_tci)
                });
                hit = v.is_some_and(|v| m.select_vlan.contains(&v));
            }
            if hit && out != key.in_port && !x.actions.contains(&DpAction::Output(out)) {
                x.actions.insert(0, DpAction::Output(out));
            }
        }
    }
}
