//! Home of the `vswitchd` daemon and the `vswitchctl` client (see `src/bin/`), and the client's
//! output formatting, kept here so that it is unit-tested.

#![warn(missing_docs)]

pub mod format;
