//! Test harness shared by the workspace's integration tests; used only as a dev-dependency.
//!
//! It depends on none of the project's crates, so it tests them from the outside, as a VM or
//! an operator would.
#![deny(unsafe_code)]

mod process;
pub mod qemu;
