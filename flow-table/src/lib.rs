//! The flow table of vswitch: everything that decides what happens to a packet, with no I/O and
//! no threads.
//!
//! The packet's way through this crate:
//! 1. [`extract`] reads the frame into a [`FlowKey`];
//! 2. a PMD thread's [`FlowCache`] looks the key up in its exact-match cache ([`emc`]), then in
//!    its megaflow cache ([`megaflow`]);
//! 3. on a miss, [`upcall::translate`] runs the key through the bridge's [`RuleTables`] and
//!    returns datapath actions plus the mask of every key bit the decision read; the caches
//!    install that as a megaflow;
//! 4. rule changes return [`RuleChange`]s, which [`FlowCache::invalidate`] uses to drop exactly
//!    the cached decisions they may alter.
//!
//! ```
//! use flow_table::{extract, Action, FlowCache, Match, RuleSpec, RuleTables, Decision, DpAction};
//! use flow_table::key::ethertype;
//! use std::net::Ipv4Addr;
//!
//! let mut tables = RuleTables::new();
//! let m = Match::any().eth_type(ethertype::IPV4).nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8);
//! tables.add(RuleSpec::new(10, m, vec![Action::Output(2)]), 0).unwrap();
//!
//! let mut frame = vec![0u8; 60];
//! frame[12..14].copy_from_slice(&[0x08, 0x00]); // IPv4
//! frame[14] = 0x45;
//! frame[16..18].copy_from_slice(&46u16.to_be_bytes());
//! frame[30..34].copy_from_slice(&[10, 1, 2, 3]); // destination
//! let key = extract(&frame, 1);
//!
//! let mut cache = FlowCache::default();
//! let d = cache.lookup(&key, key.hash(), &tables, 0);
//! assert_eq!(cache.actions(&d), &[DpAction::Output(2)]);
//! ```

#![warn(missing_docs)]

pub mod actions;
pub mod cache;
pub mod emc;
pub mod emc_gate;
pub mod extract;
pub mod fields;
pub mod flow_syntax;
mod hash;
pub mod hint;
pub mod key;
pub mod matches;
pub mod megaflow;
pub mod miss;
pub mod packet_in;
pub mod rule;
pub mod rule_table;
pub mod tables;
#[cfg(feature = "testpkt")]
pub mod testpkt;
pub mod upcall;
pub mod wire;

pub use actions::{Action, DpAction, SetField, CONTROLLER_MAX_LEN};
pub use cache::{CacheConfig, CacheStats, Decision, FlowCache, Hit};
pub use extract::{extract, extract_checked, extract_into};
pub use fields::Field;
pub use hint::FlowHint;
pub use key::{FlowKey, FlowMask};
pub use matches::{Match, MatchError};
pub use megaflow::{FlowRef, Megaflow, MegaflowCache};
pub use miss::MissConfig;
pub use packet_in::PacketInReason;
pub use rule::{Rule, RuleSpec, RuleStats};
pub use tables::{FlowModError, RuleChange, RuleFilter, RuleTables};
pub use upcall::{
    translate, translate_actions, translate_traced, translate_with, Resolver, TraceStep,
    Translation, Unresolved,
};
pub use wire::MacAddr;
