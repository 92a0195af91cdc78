//! Upcall translation: runs a packet's key through the rule tables and returns the datapath
//! actions together with the megaflow mask — every key bit the decision read.
//!
//! The mask is the correctness core of the caches: any packet whose key agrees with this one on
//! the masked bits must get the same actions. Each step that reads the key (a table lookup, an
//! action with a prerequisite, `dec_ttl`, `normal`) adds what it read to the mask. Lookups made
//! after an action rewrote the key read the rewritten key; their bits are still added (which can
//! only narrow the megaflow, never make it wrong), and the translation is marked *tainted* so
//! that any rule change discards the megaflow (see [`crate::megaflow`]).

use std::sync::Arc;

use crate::actions::{Action, DpAction, SetField};
use crate::fields::Field;
use crate::key::{
    ethertype, ipproto, FlowKey, FlowMask, FRAG_ANY, FRAG_LATER, VLAN_PCP_MASK, VLAN_PCP_SHIFT,
    VLAN_PRESENT, VLAN_VID_MASK,
};
use crate::rule::Rule;
use crate::tables::RuleTables;

/// Deepest nesting of `goto_table`/`resubmit` (as OVS).
pub const MAX_DEPTH: usize = 64;
/// Most table lookups one translation may make (as OVS's resubmit limit).
pub const MAX_LOOKUPS: usize = 4096;

/// Why a translation gave up (the packet is then dropped, as OVS does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlateError {
    /// `goto_table`/`resubmit` nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More than [`MAX_LOOKUPS`] lookups.
    TooManyLookups,
}

/// The outcome of a translation.
#[derive(Clone, Debug)]
pub struct Translation {
    /// What to do with the packet (empty: drop).
    pub actions: Vec<DpAction>,
    /// The bits of the key the decision depends on.
    pub mask: FlowMask,
    /// Rules whose actions ran, in order (their counters are credited for each packet).
    pub rules: Vec<Arc<Rule>>,
    /// A lookup ran on a key rewritten by an earlier action: no cheap test tells which rule
    /// changes affect this decision, so any change must discard it.
    pub tainted: bool,
    /// Tables looked up, one bit per table id below 63; bit 63 stands for all higher tables.
    pub tables: u64,
    /// Set when translation gave up; `actions` is then empty.
    pub error: Option<XlateError>,
    /// A `normal` action ran: the bridge resolves it with its MAC table, and keeps the learned
    /// source alive while the megaflow is used.
    pub normal: bool,
}

/// One table lookup of a traced translation ([`translate_traced`]).
#[derive(Clone, Debug)]
pub struct TraceStep {
    /// Nesting depth (0 for table 0, +1 per `goto_table`/`resubmit`).
    pub depth: usize,
    /// The table looked up.
    pub table: u8,
    /// The key it was looked up with (earlier actions may have rewritten it).
    pub key: FlowKey,
    /// The rule that matched, or `None` for a miss (the packet is dropped in that table).
    pub rule: Option<Arc<Rule>>,
    /// The datapath actions this rule's actions emitted, nested lookups included (before a
    /// failed translation dropped them all).
    pub emitted: Vec<DpAction>,
    /// Where they were in the translation's actions while it ran.
    span: (usize, usize),
}

/// What a bridge decides for the actions that need more than the rule tables: `normal` (its
/// MAC table and port VLANs) and `flood` (its ports). The translation calls it at the point the
/// action runs, with the key as earlier actions left it, so that trace and upcall share one
/// translation and NORMAL sees a rewritten destination as OVS does.
pub trait Resolver {
    /// Appends what NORMAL does with a packet of `key` to `out`. The translation has already
    /// made the megaflow exact on in_port, source, destination and VLAN.
    fn normal(&mut self, key: &FlowKey, out: &mut Vec<DpAction>);
    /// Appends the outputs of a flood from `in_port` to `out`.
    fn flood(&mut self, in_port: u32, out: &mut Vec<DpAction>);
}

/// Leaves `normal` and `flood` for the datapath: [`DpAction::Normal`], [`DpAction::Flood`].
pub struct Unresolved;

impl Resolver for Unresolved {
    fn normal(&mut self, _key: &FlowKey, out: &mut Vec<DpAction>) {
        out.push(DpAction::Normal);
    }
    fn flood(&mut self, _in_port: u32, out: &mut Vec<DpAction>) {
        out.push(DpAction::Flood);
    }
}

/// Bit of [`Translation::tables`] for a table id.
#[inline]
pub fn table_bit(table: u8) -> u64 {
    1u64 << table.min(63)
}

enum Flow {
    /// Go on with the next action.
    Continue,
    /// The rule's remaining actions are skipped (after `goto_table`); a caller that resubmitted
    /// goes on.
    EndRule,
    /// Translation ends here (an error).
    Stop,
}

struct Ctx<'a> {
    tables: &'a RuleTables,
    resolver: &'a mut dyn Resolver,
    orig: FlowKey,
    key: FlowKey,
    lookups: usize,
    out: Translation,
    /// Recording hook of [`translate_traced`]; `None` on the datapath's upcalls.
    trace: Option<Vec<TraceStep>>,
}

/// Translates `key` through `tables`, starting at table 0, leaving `normal` and `flood` to the
/// datapath ([`Unresolved`]).
pub fn translate(tables: &RuleTables, key: &FlowKey) -> Translation {
    run(tables, key, &mut Unresolved, None).0
}

/// Translates `key` through `tables` with a bridge's `resolver` for `normal` and `flood`.
pub fn translate_with(
    tables: &RuleTables,
    key: &FlowKey,
    resolver: &mut dyn Resolver,
) -> Translation {
    run(tables, key, resolver, None).0
}

/// Like [`translate_with`], also recording each table lookup (`ofproto/trace`). Reads the
/// tables only: no counter changes, nothing is installed.
pub fn translate_traced(
    tables: &RuleTables,
    key: &FlowKey,
    resolver: &mut dyn Resolver,
) -> (Translation, Vec<TraceStep>) {
    let (x, steps) = run(tables, key, resolver, Some(Vec::new()));
    (x, steps.unwrap_or_default())
}

fn run(
    tables: &RuleTables,
    key: &FlowKey,
    resolver: &mut dyn Resolver,
    trace: Option<Vec<TraceStep>>,
) -> (Translation, Option<Vec<TraceStep>>) {
    let mut ctx = Ctx {
        tables,
        resolver,
        orig: *key,
        key: *key,
        lookups: 0,
        out: Translation {
            actions: Vec::new(),
            mask: FlowMask::EMPTY,
            rules: Vec::new(),
            tainted: false,
            tables: 0,
            error: None,
            normal: false,
        },
        trace,
    };
    // The datapath keys every megaflow on its ingress port (as OVS does), and outputs compare
    // against it.
    ctx.consult(Field::InPort);
    ctx.table(0, 0);
    if let Some(steps) = &mut ctx.trace {
        for s in steps {
            s.emitted = ctx.out.actions[s.span.0..s.span.1].to_vec();
        }
    }
    if ctx.out.error.is_some() {
        // OVS drops the packet of a failed translation, outputs made before the failure too.
        ctx.out.actions.clear();
    } else {
        // Rewrites after the last output change nothing anyone sees (a NORMAL that restored
        // the tag it changed leaves some).
        let keep = ctx
            .out
            .actions
            .iter()
            .rposition(|a| matches!(a, DpAction::Output(_) | DpAction::Flood | DpAction::Normal))
            .map_or(0, |i| i + 1);
        ctx.out.actions.truncate(keep);
    }
    (ctx.out, ctx.trace)
}

impl Ctx<'_> {
    fn consult(&mut self, f: Field) {
        f.set(&mut self.out.mask.0, f.all_ones());
    }

    /// Looks `table` up and runs the matching rule's actions. `in_port`, from
    /// `resubmit(port,table)`, replaces the ingress port for the lookup only: as in OVS, the
    /// rule's actions see the packet's own (outputs to it are skipped, `in_port` sends back).
    fn table(&mut self, table: u8, depth: usize) -> Flow {
        self.table_from(table, depth, None)
    }

    fn table_from(&mut self, table: u8, depth: usize, in_port: Option<u32>) -> Flow {
        if depth > MAX_DEPTH {
            self.out.error = Some(XlateError::TooDeep);
            return Flow::Stop;
        }
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            self.out.error = Some(XlateError::TooManyLookups);
            return Flow::Stop;
        }
        self.out.tables |= table_bit(table);
        let mut lk = self.key;
        if let Some(p) = in_port {
            lk.in_port = p;
        }
        if lk.nw_frag & FRAG_ANY != 0 {
            // OVS's default fragment handling: the transport ports of a fragment, first
            // included, are taken as 0 by lookups.
            lk.tp_src = 0;
            lk.tp_dst = 0;
        }
        if lk != self.orig {
            self.out.tainted = true;
        }
        let rule = self
            .tables
            .lookup(table, &lk, &mut self.out.mask)
            .map(Arc::clone);
        if self.out.mask.0.tp_src != 0 || self.out.mask.0.tp_dst != 0 {
            // The ports read are the real ones only when the packet is not a fragment.
            self.consult(Field::NwFrag);
        }
        if let Some(t) = &mut self.trace {
            t.push(TraceStep {
                depth,
                table,
                key: self.key,
                rule: rule.clone(),
                emitted: Vec::new(),
                span: (self.out.actions.len(), self.out.actions.len()),
            });
        }
        let Some(rule) = rule else {
            return Flow::Continue;
        };
        let step = self.trace.as_ref().map(|t| t.len() - 1);
        self.out.rules.push(Arc::clone(&rule));
        let mut flow = Flow::Continue;
        for action in rule.actions.iter() {
            match self.action(action, table, depth) {
                Flow::Continue => {}
                Flow::EndRule => break,
                Flow::Stop => {
                    flow = Flow::Stop;
                    break;
                }
            }
        }
        if let (Some(t), Some(i)) = (&mut self.trace, step) {
            t[i].span.1 = self.out.actions.len();
        }
        flow
    }

    fn action(&mut self, action: &Action, table: u8, depth: usize) -> Flow {
        match action {
            Action::Output(p) => {
                if *p != self.key.in_port {
                    self.out.actions.push(DpAction::Output(*p));
                }
            }
            Action::InPort => self.out.actions.push(DpAction::Output(self.key.in_port)),
            Action::Normal => {
                for f in [Field::EthSrc, Field::EthDst, Field::VlanTci] {
                    self.consult(f);
                }
                if self.key != self.orig {
                    // NORMAL decides on the rewritten key: a MAC table change about its
                    // addresses says nothing about the original ones.
                    self.out.tainted = true;
                }
                self.resolver.normal(&self.key, &mut self.out.actions);
                self.out.normal = true;
            }
            Action::Flood => self.resolver.flood(self.key.in_port, &mut self.out.actions),
            Action::Drop => {}
            // Placeholder until the controller channel's version lands: no PACKET_IN yet.
            Action::Controller { .. } => {}
            Action::PushVlan(tpid) => {
                // As OVS: the new tag has VLAN id 0 and priority 0, on a tagged frame too
                // (OpenFlow would copy the outer tag's fields).
                self.consult(Field::VlanTci);
                self.consult(Field::InnerVlanTci);
                self.key.inner_vlan_tci = self.key.vlan_tci;
                self.key.vlan_tci = VLAN_PRESENT;
                self.out.actions.push(DpAction::PushVlan {
                    tpid: *tpid,
                    tci: 0,
                });
            }
            Action::PopVlan => {
                self.consult(Field::VlanTci);
                self.consult(Field::InnerVlanTci);
                if self.key.has_vlan() {
                    self.key.vlan_tci = self.key.inner_vlan_tci;
                    self.key.inner_vlan_tci = 0;
                    self.out.actions.push(DpAction::PopVlan);
                }
            }
            Action::Set(sf) => self.set_field(*sf),
            Action::DecTtl => {
                self.consult(Field::EthType);
                if self.key.is_ip() {
                    self.consult(Field::NwTtl);
                    if self.key.nw_ttl <= 1 {
                        // As OVS: the rest of this action list is skipped; a rule that
                        // resubmitted here goes on with its own actions.
                        return Flow::EndRule;
                    }
                    self.key.nw_ttl -= 1;
                    self.out.actions.push(DpAction::DecTtl);
                }
            }
            Action::GotoTable(t) => {
                return match self.table(*t, depth + 1) {
                    Flow::Stop => Flow::Stop,
                    _ => Flow::EndRule,
                };
            }
            Action::Resubmit { port, table: t } => {
                return self.table_from(t.unwrap_or(table), depth + 1, *port);
            }
        }
        Flow::Continue
    }

    fn set_field(&mut self, sf: SetField) {
        let k = &mut self.key;
        let applied = match sf {
            SetField::EthSrc(m) => {
                k.eth_src = m;
                true
            }
            SetField::EthDst(m) => {
                k.eth_dst = m;
                true
            }
            SetField::VlanVid(_) | SetField::VlanPcp(_) => {
                self.set_vlan(sf);
                return;
            }
            SetField::TunId(id) => {
                k.tun_id = id;
                true
            }
            SetField::Ipv4Src(a) | SetField::Ipv4Dst(a) => {
                self.consult(Field::EthType);
                let k = &mut self.key;
                let ok = k.eth_type == ethertype::IPV4;
                if ok {
                    if matches!(sf, SetField::Ipv4Src(_)) {
                        k.nw_src = a;
                    } else {
                        k.nw_dst = a;
                    }
                }
                ok
            }
            SetField::IpTos(t) => {
                self.consult(Field::EthType);
                let k = &mut self.key;
                let ok = k.is_ip();
                if ok {
                    k.nw_tos = (k.nw_tos & 0x03) | (t & 0xfc);
                }
                ok
            }
            SetField::IpTtl(t) => {
                self.consult(Field::EthType);
                let k = &mut self.key;
                let ok = k.is_ip();
                if ok {
                    k.nw_ttl = t;
                }
                ok
            }
            SetField::TpSrc(p) | SetField::TpDst(p) => {
                for f in [Field::EthType, Field::NwProto, Field::NwFrag] {
                    self.consult(f);
                }
                let k = &mut self.key;
                let ok = k.is_ip()
                    && matches!(k.nw_proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP)
                    && k.nw_frag & FRAG_LATER == 0;
                if ok {
                    if matches!(sf, SetField::TpSrc(_)) {
                        k.tp_src = p;
                    } else {
                        k.tp_dst = p;
                    }
                }
                ok
            }
        };
        if applied {
            self.out.actions.push(DpAction::Set(sf));
        }
    }

    /// `mod_vlan_vid`/`mod_vlan_pcp`: rewrite the outer tag, or push one when there is none.
    fn set_vlan(&mut self, sf: SetField) {
        self.consult(Field::VlanTci);
        let (bits, clear) = match sf {
            SetField::VlanVid(v) => (v & VLAN_VID_MASK, VLAN_VID_MASK),
            SetField::VlanPcp(p) => (((p & 7) as u16) << VLAN_PCP_SHIFT, VLAN_PCP_MASK),
            _ => unreachable!("set_vlan is only called for VLAN fields"),
        };
        if self.key.has_vlan() {
            self.key.vlan_tci = (self.key.vlan_tci & !clear) | bits;
            self.out.actions.push(DpAction::Set(sf));
        } else {
            self.consult(Field::InnerVlanTci);
            self.key.inner_vlan_tci = 0;
            self.key.vlan_tci = VLAN_PRESENT | bits;
            self.out.actions.push(DpAction::PushVlan {
                tpid: ethertype::VLAN,
                tci: bits,
            });
        }
    }
}

#[cfg(test)]
mod tests;
