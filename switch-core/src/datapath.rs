//! The datapath: what the PMD threads run and read. Receive, parse, the flow caches, the upcall
//! through a bridge's rule tables (NORMAL with VLANs, mirrors and MAC learning), header
//! rewrites and output, patch ports, the counters and the per-port observability hooks; and the
//! `ofproto/trace` translation, which reads the same tables and takes the same steps so that a
//! trace shows what the datapath does.
//!
//! This is the hot path. A PMD owns everything it touches per packet, so the per-packet work
//! (parse, cache hits, actions, transmit) takes no lock and allocates nothing; locking (the MAC
//! table) and allocation are confined to upcalls, armed traces and captures, and housekeeping.
//! The control plane ([`crate::switch`]) changes what happens here only through each PMD's
//! channel and by replacing shared bridge state (rule tables, L2 settings) whole.

pub mod bridge;
pub mod clock;
pub(crate) mod execute;
pub mod l2;
pub mod mac_table;
pub mod modify;
pub mod normal;
pub(crate) mod pmd;
pub mod port_obs;
pub mod stats;
pub mod trace;
pub mod vlan;
