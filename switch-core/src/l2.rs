//! A bridge's L2 settings that NORMAL and the upcall read: port VLAN settings and mirrors.
//!
//! When no port has VLAN settings and there is no mirror, NORMAL works as before (one MAC
//! table per VLAN tag, `Flood` resolved by the datapath over every port). Otherwise NORMAL is
//! resolved here with the ports' VLAN modes: the packet's VLAN comes from its ingress port,
//! learning and lookup happen in that VLAN, and a flood becomes explicit outputs to the ports
//! that carry the VLAN, each with the tag that port wants (untagged outputs first, then the
//! tag is pushed or rewritten once for the tagged ones). Mirrors then add an output of the
//! packet as received to their output port.
//!
//! The control plane replaces the whole config (an `ArcSwap`) and drops every megaflow of the
//! bridge, so cached decisions never outlive the settings they were made with.

use std::collections::BTreeMap;

use flow_table::key::{ethertype, FlowKey, VLAN_PCP_MASK, VLAN_PRESENT, VLAN_VID_MASK};
use flow_table::{DpAction, Field, RuleChange, SetField, Translation};

use crate::mac_table::{is_multicast, Learned, MacTable};
use crate::normal;
use crate::vlan::PortVlan;

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
    /// True when NORMAL must be resolved here (some port has VLAN settings, or a mirror
    /// exists).
    pub fn explicit(&self) -> bool {
        !self.mirrors.is_empty() || self.vlans.values().any(|v| !v.is_default())
    }

    /// The VLAN NORMAL learns the source of `key` in (`None`: it learns nothing).
    pub fn learn_vlan(&self, key: &FlowKey) -> Option<u16> {
        if self.explicit() {
            self.vlan(key.in_port).input_vlan(key.vlan_tci)
        } else {
            Some(normal::vlan_of(key))
        }
    }

    fn vlan(&self, port: u32) -> &PortVlan {
        /// A port without settings: a trunk of every VLAN.
        static TRUNK_ALL: PortVlan = PortVlan {
            tag: None,
            trunks: Vec::new(),
            mode: None,
        };
        self.vlans.get(&port).unwrap_or(&TRUNK_ALL)
    }

    fn is_mirror_output(&self, port: u32) -> bool {
        self.mirrors.iter().any(|m| m.output == Some(port))
    }

    /// Replaces every `Normal` in `x.actions` by its VLAN-aware outcome for `key`, learning
    /// the source; returns the invalidation a learning event calls for.
    pub fn resolve_normal(
        &self,
        x: &mut Translation,
        key: &FlowKey,
        macs: &mut MacTable,
        now_ms: u64,
    ) -> Option<RuleChange> {
        if !x.actions.contains(&DpAction::Normal) {
            return None;
        }
        let mut outcome = Vec::new();
        let mut change = None;
        // A mirror's output port is for the copies only: nothing is learned or forwarded
        // from it.
        let vlan = if self.is_mirror_output(key.in_port) {
            None
        } else {
            self.vlan(key.in_port).input_vlan(key.vlan_tci)
        };
        if let Some(v) = vlan {
            let learned = macs.learn(v, key.eth_src, key.in_port, now_ms);
            if matches!(learned, Some(Learned::New | Learned::Moved { .. })) {
                change = Some(normal::towards(key.eth_src));
            }
            let known = if is_multicast(&key.eth_dst) {
                None
            } else {
                macs.lookup(v, &key.eth_dst, now_ms)
            };
            let targets: Vec<(u32, bool)> = match known {
                Some(p) if p == key.in_port => Vec::new(),
                Some(p) => self.vlan(p).output(v).map(|t| (p, t)).into_iter().collect(),
                None => self
                    .ports
                    .iter()
                    .filter(|&&p| p != key.in_port && !self.is_mirror_output(p))
                    .filter_map(|&p| self.vlan(p).output(v).map(|t| (p, t)))
                    .collect(),
            };
            emit(&mut outcome, &targets, v, key.vlan_tci);
        }
        let mut out = Vec::with_capacity(x.actions.len() + outcome.len());
        for a in x.actions.drain(..) {
            if a == DpAction::Normal {
                out.extend(outcome.iter().cloned());
            } else {
                out.push(a);
            }
        }
        x.actions = out;
        change
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

/// Appends the actions sending a frame of VLAN `vlan`, which arrived with outer TCI `tci`, to
/// `targets` (port, tagged): untagged ports first, then one tag change for the tagged ones.
fn emit(out: &mut Vec<DpAction>, targets: &[(u32, bool)], vlan: u16, tci: u16) {
    let mut has_tag = tci & VLAN_PRESENT != 0;
    if targets.iter().any(|&(_, t)| !t) {
        if has_tag {
            out.push(DpAction::PopVlan);
            has_tag = false;
        }
        out.extend(
            targets
                .iter()
                .filter(|&&(_, t)| !t)
                .map(|&(p, _)| DpAction::Output(p)),
        );
    }
    if targets.iter().any(|&(_, t)| t) {
        if !has_tag {
            out.push(DpAction::PushVlan {
                tpid: ethertype::VLAN,
                tci: (tci & VLAN_PCP_MASK) | vlan,
            });
        } else if tci & VLAN_VID_MASK != vlan {
            out.push(DpAction::Set(SetField::VlanVid(vlan)));
        }
        out.extend(
            targets
                .iter()
                .filter(|&&(_, t)| t)
                .map(|&(p, _)| DpAction::Output(p)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow_table::{translate, Action, Match, RuleSpec, RuleTables};

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    fn key(in_port: u32, tci: u16, dst: [u8; 6]) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = in_port;
        k.eth_src = A;
        k.eth_dst = dst;
        k.vlan_tci = tci;
        k.eth_type = 0x0800;
        k
    }

    fn run(cfg: &L2Config, k: &FlowKey, macs: &mut MacTable) -> Vec<DpAction> {
        let mut t = RuleTables::new();
        t.add(RuleSpec::new(0, Match::any(), vec![Action::Normal]), 0)
            .unwrap();
        let mut x = translate(&t, k);
        cfg.resolve_normal(&mut x, k, macs, 0);
        cfg.apply_mirrors(&mut x, k);
        x.actions
    }

    /// Ports 1, 2: access VLAN 10; 3: access VLAN 20; 4: trunk of 10 and 20; 5: plain.
    fn cfg() -> L2Config {
        let mut c = L2Config {
            ports: vec![1, 2, 3, 4, 5],
            ..L2Config::default()
        };
        let acc = |t: &str| PortVlan::parse(Some(t), None, None).unwrap();
        c.vlans.insert(1, acc("10"));
        c.vlans.insert(2, acc("10"));
        c.vlans.insert(3, acc("20"));
        c.vlans
            .insert(4, PortVlan::parse(None, Some("10,20"), None).unwrap());
        c
    }

    #[test]
    fn flood_stays_in_the_vlan_with_the_right_tags() {
        let c = cfg();
        assert!(c.explicit());
        let mut macs = MacTable::default();
        let a = run(&c, &key(1, 0, [0xff; 6]), &mut macs);
        assert_eq!(
            a,
            vec![
                DpAction::Output(2),
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 10
                },
                DpAction::Output(4),
                DpAction::Output(5),
            ]
        );
        assert_eq!(macs.lookup(10, &A, 0), Some(1), "learned in VLAN 10");
        // From the trunk in VLAN 20: to port 3 untagged, to the plain port 5 tagged.
        let a = run(&c, &key(4, VLAN_PRESENT | 20, [0xff; 6]), &mut macs);
        assert_eq!(
            a,
            vec![
                DpAction::PopVlan,
                DpAction::Output(3),
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 20
                },
                DpAction::Output(5)
            ]
        );
        // VLAN 30 is not on the trunk; tagged frames on an access port are dropped.
        assert!(run(&c, &key(4, VLAN_PRESENT | 30, [0xff; 6]), &mut macs).is_empty());
        assert!(run(&c, &key(1, VLAN_PRESENT | 10, [0xff; 6]), &mut macs).is_empty());
    }

    #[test]
    fn unicast_to_a_learned_port_and_mirrors() {
        let mut c = cfg();
        let mut macs = MacTable::default();
        macs.learn(10, B, 4, 0);
        let a = run(&c, &key(1, 0, B), &mut macs);
        assert_eq!(
            a,
            vec![
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 10
                },
                DpAction::Output(4)
            ]
        );
        c.mirrors.push(Mirror {
            name: "m".into(),
            select_dst: vec![4],
            output: Some(5),
            ..Mirror::default()
        });
        let a = run(&c, &key(1, 0, B), &mut macs);
        assert_eq!(
            a[0],
            DpAction::Output(5),
            "the copy goes first, as received"
        );
        // The mirror port gets the copy (port 4 is a destination) but is left out of the flood
        // itself, and what arrives on it goes nowhere.
        let a = run(&c, &key(3, 0, [0xff; 6]), &mut macs);
        assert_eq!(
            a,
            vec![
                DpAction::Output(5),
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 20
                },
                DpAction::Output(4)
            ]
        );
        assert!(run(&c, &key(5, 0, [0xff; 6]), &mut macs).is_empty());
        // A VLAN selection.
        c.mirrors[0] = Mirror {
            name: "m".into(),
            select_vlan: vec![20],
            output: Some(5),
            ..Mirror::default()
        };
        assert!(!run(&c, &key(1, 0, B), &mut macs).contains(&DpAction::Output(5)));
        assert_eq!(
            run(&c, &key(3, 0, [0xff; 6]), &mut macs)[0],
            DpAction::Output(5)
        );
    }
}
