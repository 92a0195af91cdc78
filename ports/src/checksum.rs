//! Internet (ones'-complement) checksums, shared by offload completion in
//! [`Packet::resolve_offloads`](crate::Packet::resolve_offloads) and by software segmentation in
//! [`gso`](crate::gso).
//!
//! The arithmetic lives in [`flow_table::wire::checksum`], with the datapath's incremental
//! updates, so that it is written (and tested) once; this module names the parts this crate uses.

pub(crate) use flow_table::wire::checksum::{
    checksum, complete_partial, fold, ones_sum, pseudo_v4, pseudo_v6,
};
