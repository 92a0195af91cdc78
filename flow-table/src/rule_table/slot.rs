//! The entry of a subtable: the rules that share one exact match, stored so that the map's
//! key is the rules themselves.
//!
//! A persistent map stores its entries in many small nodes and copies a node whenever it
//! changes, so entries must be small: a slot is one pointer plus a tag (16 bytes) instead of
//! the 104-byte masked key and a list. The key is not stored again: it is the key of the
//! slot's rules' match, reached through the rule, and lookups probe with a borrowed
//! [`FlowKey`] ([`Probe`]) hashed the same way.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use equivalent::Equivalent;

use crate::key::FlowKey;
use crate::rule::Rule;

/// The rules with one exact match (masked key) in a subtable, one per priority, highest
/// first. Nearly every match has a single rule, kept without a list.
#[derive(Clone, Debug)]
pub(super) enum Slot {
    /// The only rule with this match.
    One(Arc<Rule>),
    /// Two or more rules, highest priority first (priorities are distinct).
    Many(Arc<[Arc<Rule>]>),
}

impl Slot {
    /// The rules, highest priority first (never empty).
    #[inline]
    pub(super) fn rules(&self) -> &[Arc<Rule>] {
        match self {
            Slot::One(r) => std::slice::from_ref(r),
            Slot::Many(rs) => rs,
        }
    }

    /// The highest-priority rule: the one a lookup picks in this slot.
    #[inline]
    pub(super) fn first(&self) -> &Arc<Rule> {
        &self.rules()[0]
    }

    /// The masked key every rule of the slot matches.
    #[inline]
    pub(super) fn key(&self) -> &FlowKey {
        self.first().r#match.key()
    }

    /// The rule with this priority.
    pub(super) fn find(&self, priority: u16) -> Option<&Arc<Rule>> {
        self.rules().iter().find(|r| r.priority == priority)
    }

    fn of(mut rules: Vec<Arc<Rule>>) -> Option<Slot> {
        match rules.len() {
            0 => None,
            1 => rules.pop().map(Slot::One),
            _ => Some(Slot::Many(rules.into())),
        }
    }

    /// This slot with `rule` added, or put in place of the rule of the same priority (which
    /// is returned).
    pub(super) fn with(&self, rule: Arc<Rule>) -> (Slot, Option<Arc<Rule>>) {
        let mut rules = self.rules().to_vec();
        let replaced = match rules.binary_search_by(|r| rule.priority.cmp(&r.priority)) {
            Ok(i) => Some(std::mem::replace(&mut rules[i], rule)),
            Err(i) => {
                rules.insert(i, rule);
                None
            }
        };
        (
            Slot::of(rules).expect("a slot with a rule added is not empty"),
            replaced,
        )
    }

    /// This slot without its rule of this priority (`None` when that was the last rule), and
    /// the removed rule; `None` when no rule has this priority.
    pub(super) fn without(&self, priority: u16) -> Option<(Option<Slot>, Arc<Rule>)> {
        let i = self.rules().iter().position(|r| r.priority == priority)?;
        let mut rules = self.rules().to_vec();
        let removed = rules.remove(i);
        Some((Slot::of(rules), removed))
    }
}

/// Slots are keyed by their match's key, hashed with the key hash the caches use (one
/// `u32`, see [`KeyHash`]).
impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.key().hash());
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Slot) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Slot {}

/// A lookup key for a subtable's map: a masked key, hashed and compared as a [`Slot`] is.
pub(super) struct Probe<'a>(pub(super) &'a FlowKey);

impl Hash for Probe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.0.hash());
    }
}

impl Equivalent<Slot> for Probe<'_> {
    #[inline]
    fn equivalent(&self, slot: &Slot) -> bool {
        self.0 == slot.key()
    }
}

/// Builds [`KeyHasher`]s: the hash of a slot or probe is the key's own word hash
/// ([`FlowKey::hash`]), which is faster on a 104-byte key than a general hasher fed field by
/// field, and is already computed the same way for the caches. Rules are chosen by the
/// controller, not by packets, so a fixed hash is no denial-of-service lever here.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct KeyHash;

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// Passes on the one `u32` written to it (see [`KeyHash`]).
#[derive(Debug)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }

    /// Not used by slots and probes; mixes the bytes in so that the hasher stays a hasher.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
