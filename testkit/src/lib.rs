//! Test harness shared by the workspace's integration tests; used only as a dev-dependency.
//!
//! It depends on none of the project's crates, so it tests them from the outside, as a VM or
//! an operator would: [`qemu`] boots guests, [`testpmd`] plays a VM with dpdk-testpmd,
//! [`netns`] makes network namespaces into test hosts and topologies, [`ovs`] runs a private
//! Open vSwitch to compare flow semantics with, [`flowgen`] makes seeded random rule sets and
//! packets, [`difftest`] compares two switches' answers, and [`packet`] builds and reads
//! frames. [`require`] says whether a test can run here (and prints a loud `SKIPPED` line when
//! not) and holds the one lock heavy tests share; [`wait`] polls with a bound.
//!
//! The only `unsafe` code is a few system calls std lacks, in one private module (the crate
//! denies `unsafe_code` otherwise: `[lints]` of its Cargo.toml).

pub mod difftest;
pub mod flowgen;
pub mod netns;
pub mod ovs;
pub mod packet;
mod process;
pub mod qemu;
pub mod require;
mod sys;
pub mod testpmd;
pub mod wait;
