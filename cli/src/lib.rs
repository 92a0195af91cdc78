//! Home of the `vswitchd` daemon and the `vswitchctl` client (see `src/bin/`), and the client's
//! request bodies and output formatting, kept here so that they are unit-tested.

#![warn(missing_docs)]

pub mod format;
pub mod net_args;
pub mod request;
