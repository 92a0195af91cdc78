//! The entries of a subtable's maps, keyed by their rules' match without storing the key
//! again.
//!
//! A persistent map stores its entries in many small nodes and copies a node whenever it
//! changes, so entries must be small. An entry here is one pointer (to a rule, or to a list of
//! rules sharing a match): its key is the key of that rule's match, reached through the
//! pointer, and lookups probe with a borrowed [`FlowKey`] ([`Probe`]) hashed the same way.
//! Storing the 104-byte masked key beside each entry would triple the map's size.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use equivalent::Equivalent;

use crate::key::FlowKey;
use crate::rule::Rule;

/// What has a masked key: a rule, or a non-empty list of rules with the same match.
pub(super) trait HasKey {
    /// The masked key of the match.
    fn key(&self) -> &FlowKey;
}

impl HasKey for Arc<Rule> {
    #[inline]
    fn key(&self) -> &FlowKey {
        self.r#match.key()
    }
}

/// Lists are never empty (a subtable drops a list when its last rule goes).
impl HasKey for Arc<[Arc<Rule>]> {
    #[inline]
    fn key(&self) -> &FlowKey {
        self[0].r#match.key()
    }
}

/// A map entry hashed and compared by its key alone.
#[derive(Clone, Debug)]
pub(super) struct ByKey<T>(pub(super) T);

impl<T: HasKey> Hash for ByKey<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.0.key().hash());
    }
}

impl<T: HasKey> PartialEq for ByKey<T> {
    fn eq(&self, other: &ByKey<T>) -> bool {
        self.0.key() == other.0.key()
    }
}

impl<T: HasKey> Eq for ByKey<T> {}

/// A lookup key for the maps: a masked key, hashed and compared as a [`ByKey`] is.
pub(super) struct Probe<'a>(pub(super) &'a FlowKey);

impl Hash for Probe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.0.hash());
    }
}

impl<T: HasKey> Equivalent<ByKey<T>> for Probe<'_> {
    #[inline]
    fn equivalent(&self, entry: &ByKey<T>) -> bool {
        self.0 == entry.0.key()
    }
}

/// Builds [`KeyHasher`]s: the hash of an entry or probe is the key's own word hash
/// ([`FlowKey::hash`]), which is faster on a 104-byte key than a general hasher fed field by
/// field (the hash-table probe is most of a rule lookup). Rules are chosen by the controller,
/// not by packets, so a fixed hash is no denial-of-service lever here.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct KeyHash;

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// Passes on the one `u32` written to it (see [`KeyHash`]), in both halves of the `u64`: imbl
/// uses the low bits, other tables (hashbrown) the high ones.
#[derive(Debug)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n) << 32 | u64::from(n);
    }

    /// Not used by entries and probes; mixes the bytes in so that the hasher stays a hasher.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
