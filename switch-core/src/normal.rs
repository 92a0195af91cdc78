//! The NORMAL action: an L2 learning switch decision, resolved at upcall time.
//!
//! As in OVS, NORMAL is not executed per packet: the upcall learns the source address, looks the
//! destination up in the bridge's MAC table and puts the concrete outcome (one output, a flood,
//! or nothing) into the megaflow. The translation already made the megaflow exact on in_port,
//! source, destination and VLAN, so the cached outcome is right for every packet it matches until
//! the MAC table changes; a change returns the address whose megaflows must go.

use flow_table::key::{FlowKey, VLAN_PRESENT, VLAN_VID_MASK};
use flow_table::{DpAction, Match, RuleChange, Translation};

use crate::mac_table::{is_multicast, Learned, MacTable};

/// The VLAN NORMAL switches a packet in (0 = untagged).
pub fn vlan_of(key: &FlowKey) -> u16 {
    if key.vlan_tci & VLAN_PRESENT != 0 {
        key.vlan_tci & VLAN_VID_MASK
    } else {
        0
    }
}

/// Replaces every `Normal` in `x.actions` by its outcome for `key`, learning the source.
/// Returns the cache invalidation a learning event calls for: a new or moved address makes every
/// megaflow that sent traffic *to* it (flooded, or to its old port) wrong.
pub fn resolve(
    x: &mut Translation,
    key: &FlowKey,
    macs: &mut MacTable,
    now_ms: u64,
) -> Option<RuleChange> {
    if !x.actions.contains(&DpAction::Normal) {
        return None;
    }
    let vlan = vlan_of(key);
    let learned = macs.learn(vlan, key.eth_src, key.in_port, now_ms);
    let outcome = outcome(key, macs, now_ms);
    let mut out = Vec::with_capacity(x.actions.len());
    for a in x.actions.drain(..) {
        if a == DpAction::Normal {
            out.extend(outcome.clone());
        } else {
            out.push(a);
        }
    }
    x.actions = out;
    match learned {
        Some(Learned::New | Learned::Moved { .. }) => Some(towards(key.eth_src)),
        _ => None,
    }
}

/// What NORMAL does with `key` given the MAC table as it is (no learning): flood a group or
/// unknown destination, send to the learned port, or nothing when that is the ingress port.
pub fn outcome(key: &FlowKey, macs: &MacTable, now_ms: u64) -> Option<DpAction> {
    if is_multicast(&key.eth_dst) {
        return Some(DpAction::Flood);
    }
    match macs.lookup(vlan_of(key), &key.eth_dst, now_ms) {
        Some(p) if p == key.in_port => None,
        Some(p) => Some(DpAction::Output(p)),
        None => Some(DpAction::Flood),
    }
}

/// The change that invalidates every cached NORMAL decision about traffic to `mac` (it was
/// learned, moved, aged out, pinned or forgotten). NORMAL runs in table 0 and resolves the
/// destination MAC, so those decisions all matched `dl_dst=mac` there.
pub(crate) fn towards(mac: [u8; 6]) -> RuleChange {
    RuleChange {
        table: 0,
        r#match: Match::any().eth_dst(mac),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow_table::{translate, Action, RuleSpec, RuleTables};

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    fn key(in_port: u32, src: [u8; 6], dst: [u8; 6]) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = in_port;
        k.eth_src = src;
        k.eth_dst = dst;
        k.eth_type = 0x0800;
        k
    }

    fn normal_tables() -> RuleTables {
        let mut t = RuleTables::new();
        t.add(RuleSpec::new(0, Match::any(), vec![Action::Normal]), 0)
            .unwrap();
        t
    }

    fn run(
        t: &RuleTables,
        k: &FlowKey,
        macs: &mut MacTable,
    ) -> (Vec<DpAction>, Option<RuleChange>) {
        let mut x = translate(t, k);
        let ch = resolve(&mut x, k, macs, 0);
        (x.actions, ch)
    }

    #[test]
    fn unknown_floods_known_forwards_and_learning_is_reported() {
        let t = normal_tables();
        let mut macs = MacTable::default();
        let (a, ch) = run(&t, &key(1, A, B), &mut macs);
        assert_eq!(a, vec![DpAction::Flood]);
        let ch = ch.expect("A was learned");
        assert!(ch.r#match.matches(&key(2, B, A)), "flows towards A must go");
        assert!(!ch.r#match.matches(&key(2, B, B)));
        let (a, ch) = run(&t, &key(2, B, A), &mut macs);
        assert_eq!(a, vec![DpAction::Output(1)]);
        assert!(ch.is_some(), "B was learned");
        let (a, ch) = run(&t, &key(1, A, B), &mut macs);
        assert_eq!(a, vec![DpAction::Output(2)]);
        assert!(ch.is_none(), "nothing new");
    }

    #[test]
    fn never_back_out_of_the_ingress_port_and_broadcast_floods() {
        let t = normal_tables();
        let mut macs = MacTable::default();
        macs.learn(0, B, 1, 0);
        assert_eq!(run(&t, &key(1, A, B), &mut macs).0, vec![]);
        assert_eq!(
            run(&t, &key(1, A, [0xff; 6]), &mut macs).0,
            vec![DpAction::Flood]
        );
    }

    #[test]
    fn vlans_learn_separately() {
        let t = normal_tables();
        let mut macs = MacTable::default();
        let mut k = key(1, A, B);
        k.vlan_tci = VLAN_PRESENT | 10;
        run(&t, &k, &mut macs);
        assert_eq!(macs.lookup(10, &A, 0), Some(1));
        assert_eq!(macs.lookup(0, &A, 0), None);
    }

    #[test]
    fn other_actions_are_kept_in_place() {
        let mut t = RuleTables::new();
        t.add(
            RuleSpec::new(0, Match::any(), vec![Action::Output(9), Action::Normal]),
            0,
        )
        .unwrap();
        let mut macs = MacTable::default();
        assert_eq!(
            run(&t, &key(1, A, B), &mut macs).0,
            vec![DpAction::Output(9), DpAction::Flood]
        );
    }
}
