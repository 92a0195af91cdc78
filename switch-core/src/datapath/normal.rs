//! The NORMAL and FLOOD actions of a bridge, resolved during translation.
//!
//! As in OVS, NORMAL is not executed per packet: the translation asks the bridge at the point
//! NORMAL runs (with the key as earlier actions left it), and the concrete outcome — outputs
//! with the tags each port wants, or nothing — goes into the megaflow. The translation has made
//! the megaflow exact on in_port, source, destination and VLAN, so the cached outcome is right
//! for every packet it matches until the MAC table or the bridge's L2 settings change; a change
//! of the MAC table returns the address whose megaflows must go (`towards`), a change of
//! the settings drops every megaflow of the bridge.
//!
//! The same [`Resolver`] serves the datapath's upcalls (learning) and `trace` (peeking), so a
//! trace shows what the datapath does.

use flow_table::key::{
    ethertype, FlowKey, VLAN_PCP_MASK, VLAN_PCP_SHIFT, VLAN_PRESENT, VLAN_VID_MASK,
};
use flow_table::{DpAction, MacAddr, Match, Resolver, RuleChange, SetField};

use crate::datapath::bridge::{CONTROLLER_PORT, NONE_PORT};
use crate::datapath::l2::L2Config;
use crate::datapath::mac_table::{Learned, MacTable};

/// What one NORMAL decided, for `trace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NormalNote {
    /// The destination is unknown (or a group): flooded to these ports of the VLAN.
    Flood {
        /// The VLAN.
        vlan: u16,
        /// Ports it goes to.
        ports: Vec<u32>,
    },
    /// Sent to the port the destination was learned on.
    Learned {
        /// The VLAN.
        vlan: u16,
        /// The port.
        port: u32,
    },
    /// The destination was learned on the ingress port: nowhere to send.
    IngressPort,
    /// The learned port does not carry the VLAN.
    NotOnPort {
        /// The VLAN.
        vlan: u16,
        /// The port.
        port: u32,
    },
    /// A reserved 802.1D/Q destination (01:80:c2:00:00:00–0f: STP, LACP, LLDP…): dropped, as
    /// OVS does while `other_config:forward-bpdu` is false.
    Reserved,
    /// The ingress port does not take the frame's VLAN.
    VlanRefused,
    /// The ingress port is a mirror's output: nothing is switched from it.
    MirrorPort,
    /// The ingress port is not a port of the bridge (a `resubmit` with another `in_port`).
    NoInputPort,
}

/// True for 01:80:c2:00:00:00–0f, the destinations bridges must not forward (802.1D).
pub fn is_reserved(mac: &MacAddr) -> bool {
    mac.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && mac.0[5] <= 0x0f
}

/// The bridge's [`Resolver`]: NORMAL with its MAC table and L2 settings, FLOOD over its ports.
pub struct BridgeResolver<'a> {
    l2: &'a L2Config,
    macs: &'a std::sync::Mutex<MacTable>,
    /// Locked at the first NORMAL only (most translations have none).
    guard: Option<std::sync::MutexGuard<'a, MacTable>>,
    now_ms: u64,
    learn: bool,
    /// Learning events that call for invalidation.
    pub learned: Vec<RuleChange>,
    /// What each NORMAL decided, in order.
    pub notes: Vec<NormalNote>,
}

impl<'a> BridgeResolver<'a> {
    /// A resolver over `l2` and `macs`; it learns sources only when `learn` (upcalls do,
    /// traces do not).
    pub fn new(
        l2: &'a L2Config,
        macs: &'a std::sync::Mutex<MacTable>,
        now_ms: u64,
        learn: bool,
    ) -> BridgeResolver<'a> {
        BridgeResolver {
            l2,
            macs,
            guard: None,
            now_ms,
            learn,
            learned: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn decide(&mut self, key: &FlowKey, out: &mut Vec<DpAction>) -> NormalNote {
        let l2 = self.l2;
        if is_reserved(&key.eth_dst) {
            return NormalNote::Reserved;
        }
        // A packet the controller sends out (packet-out from CONTROLLER or NONE) comes from no
        // port: NORMAL forwards it by the MAC table without learning its source, as OVS does.
        let injected = key.in_port == CONTROLLER_PORT || key.in_port == NONE_PORT;
        if !injected && !l2.ports.contains(&key.in_port) {
            return NormalNote::NoInputPort;
        }
        if l2.is_mirror_output(key.in_port) {
            return NormalNote::MirrorPort;
        }
        let Some(vlan) = l2.vlan(key.in_port).input_vlan(key.vlan_tci) else {
            return NormalNote::VlanRefused;
        };
        let macs = self.guard.get_or_insert_with(|| {
            // The table stays consistent if a holder panicked: every update is one insert
            // or remove.
            self.macs.lock().unwrap_or_else(|e| e.into_inner())
        });
        if self.learn && !injected {
            let learned = macs.learn(vlan, key.eth_src, key.in_port, self.now_ms);
            if matches!(learned, Some(Learned::New | Learned::Moved { .. })) {
                self.learned.push(towards(key.eth_src));
            }
        }
        let known = if key.eth_dst.is_multicast() {
            None
        } else if !self.learn && key.eth_dst == key.eth_src && !macs.is_static(vlan, &key.eth_src) {
            // What the lookup would see had the source just been learned, as on an upcall
            // (a pinned address does not move).
            Some(key.in_port)
        } else {
            macs.lookup(vlan, &key.eth_dst, self.now_ms)
        };
        match known {
            Some(p) if p == key.in_port => NormalNote::IngressPort,
            Some(p) => match l2.vlan(p).output(vlan) {
                Some(tagged) => {
                    emit(out, &[(p, tagged)], vlan, key.vlan_tci);
                    NormalNote::Learned { vlan, port: p }
                }
                None => NormalNote::NotOnPort { vlan, port: p },
            },
            None => {
                let targets: Vec<(u32, bool)> = l2
                    .ports
                    .iter()
                    .filter(|&&p| p != key.in_port && !l2.is_mirror_output(p))
                    .filter_map(|&p| l2.vlan(p).output(vlan).map(|t| (p, t)))
                    .collect();
                emit(out, &targets, vlan, key.vlan_tci);
                NormalNote::Flood {
                    vlan,
                    ports: targets.iter().map(|&(p, _)| p).collect(),
                }
            }
        }
    }
}

impl Resolver for BridgeResolver<'_> {
    fn normal(&mut self, key: &FlowKey, out: &mut Vec<DpAction>) {
        let note = self.decide(key, out);
        self.notes.push(note);
    }

    /// Every port of the bridge but the ingress port, by port number (as OVS, FLOOD ignores
    /// VLAN settings and mirrors).
    fn flood(&mut self, in_port: u32, out: &mut Vec<DpAction>) {
        out.extend(
            self.l2
                .ports
                .iter()
                .filter(|&&p| p != in_port)
                .map(|&p| DpAction::Output(p)),
        );
    }
}

/// Appends the actions sending a frame of VLAN `vlan`, which arrived with outer TCI `tci`, to
/// `targets` (port, tagged): untagged ports first, then one tag change for the tagged ones;
/// then puts the tag back as it was, so that actions after NORMAL see the frame they would
/// have seen without it (trailing rewrites are trimmed by the translation). A tagged frame of
/// VLAN 0 carries a priority tag only when its priority is not 0, as in OVS.
fn emit(out: &mut Vec<DpAction>, targets: &[(u32, bool)], vlan: u16, tci: u16) {
    let orig = (tci & VLAN_PRESENT != 0).then_some(tci & !VLAN_PRESENT);
    let pcp = if orig.is_some() {
        tci & VLAN_PCP_MASK
    } else {
        0
    };
    let want = (vlan != 0 || pcp != 0).then_some(pcp | vlan);
    let tagged = |t: bool| if t { want } else { None };
    let groups: &[Option<u16>] = if want.is_some() {
        &[None, want]
    } else {
        &[None]
    };
    let mut tag = orig;
    for &group in groups {
        let ports: Vec<u32> = targets
            .iter()
            .filter(|&&(_, t)| tagged(t) == group)
            .map(|&(p, _)| p)
            .collect();
        if ports.is_empty() {
            continue;
        }
        retag(out, tag, group);
        tag = group;
        out.extend(ports.into_iter().map(DpAction::Output));
    }
    // Restore the frame's own tag.
    retag(out, tag, orig);
}

/// Appends the actions that change the outer tag from `from` to `to` (TCIs without the present
/// bit; `None`: no tag).
fn retag(out: &mut Vec<DpAction>, from: Option<u16>, to: Option<u16>) {
    match (from, to) {
        (Some(_), None) => out.push(DpAction::PopVlan),
        (None, Some(t)) => out.push(DpAction::PushVlan {
            tpid: ethertype::VLAN,
            tci: t,
        }),
        (Some(f), Some(t)) if f != t => {
            if f & VLAN_VID_MASK != t & VLAN_VID_MASK {
                out.push(DpAction::Set(SetField::VlanVid(t & VLAN_VID_MASK)));
            }
            if f & VLAN_PCP_MASK != t & VLAN_PCP_MASK {
                out.push(DpAction::Set(SetField::VlanPcp(
                    (t >> VLAN_PCP_SHIFT) as u8,
                )));
            }
        }
        _ => {}
    }
}

/// The change that invalidates every cached NORMAL decision about traffic to `mac` (it was
/// learned, moved, aged out, pinned or forgotten). NORMAL runs in table 0 and resolves the
/// destination MAC, so those decisions all matched `dl_dst=mac` there (a decision made after
/// the key was rewritten is tainted, and any change discards it).
pub(crate) fn towards(mac: MacAddr) -> RuleChange {
    RuleChange {
        table: 0,
        r#match: Match::any().eth_dst(mac),
    }
}

#[cfg(test)]
mod tests;
