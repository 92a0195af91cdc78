//! The OpenFlow wire codec: the switch side of OpenFlow 1.0 and 1.3 messages, with no I/O.
//!
//! Decoders take one whole message (header included, as framed by [`header::Header::parse`])
//! and return typed values; every failure names the field and carries the OpenFlow error
//! ([`error::ErrorCode`]) the switch answers with. Encoders return whole messages with the
//! header's length filled in.
//!
//! Rules are expressed with flow-table's types ([`flow_table::Match`], [`flow_table::Action`]),
//! so a decoded flow mod installs through the same [`flow_table::RuleTables`] as `ovs-ofctl`
//! flows given over the management API.

#![warn(missing_docs)]

pub mod actions;
mod codec;
pub mod echo;
pub mod error;
pub mod features;
pub mod flow_mod;
pub mod header;
pub mod hello;
pub mod match10;
pub mod multipart;
pub mod oxm;
pub mod ports;
pub mod request;
pub mod switch_config;

pub use error::{DecodeError, ErrorCode};
pub use flow_mod::{FlowMod, FlowModCommand};
pub use header::{Header, MsgType, Version};
pub use request::{Received, Request};
