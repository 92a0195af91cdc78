//! Test harness shared by the workspace's integration tests; used only as a dev-dependency.
//!
//! It depends on none of the project's crates, so it tests them from the outside, as a VM or
//! an operator would: [`qemu`] boots guests, [`ovs`] runs a private Open vSwitch to compare
//! flow semantics with, [`flowgen`] makes seeded random rule sets and packets, [`difftest`]
//! compares two switches' answers, and [`packet`] builds and reads frames.
#![deny(unsafe_code)]

pub mod difftest;
pub mod flowgen;
pub mod ovs;
pub mod packet;
mod process;
pub mod qemu;
