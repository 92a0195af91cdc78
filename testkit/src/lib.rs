//! Test harness shared by the workspace's integration tests; used only as a dev-dependency.
//!
//! It depends on none of the project's crates, so it tests them from the outside, as a VM or
//! an operator would: [`qemu`] boots guests, [`ovs`] runs a private Open vSwitch to compare
//! flow semantics with, and [`packet`] builds and reads frames.
#![deny(unsafe_code)]

pub mod ovs;
pub mod packet;
mod process;
pub mod qemu;
