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
//!
//! A connection's life, as the channel (a later step) will run it:
//! - send [`hello::encode_hello`], read the peer's HELLO ([`hello::Hello::parse`]) and
//!   [`hello::negotiate`] a [`Version`] (or send the HELLO_FAILED it returns and close);
//! - frame the stream with [`Header::peek_len`], decode each message with
//!   [`Received::parse`], and answer: [`echo::echo_reply`], [`echo::barrier_reply`],
//!   [`features::FeaturesReply::encode`], [`switch_config::SwitchConfig::encode_reply`],
//!   [`FlowMod::to_rule_spec`]/[`FlowMod::to_rule_filter`] for the rule tables,
//!   [`multipart::MultipartRequest::flow_filter`] then [`multipart::encode_flow_stats`],
//!   [`multipart::Desc::encode_reply`];
//! - answer every refusal with [`DecodeError::to_error_msg`] (or [`error::encode_error`]
//!   with `ErrorCode::from(&FlowModError)` for what the rule tables refuse);
//! - run a PACKET_OUT's actions ([`packet_out::PacketOut`]); answer PORT statistics
//!   ([`multipart::MultipartRequest::port_stats_port`], [`port_stats::encode_port_stats`]),
//!   ROLE_REQUEST ([`role::encode_role_reply`]), GET_ASYNC
//!   ([`async_config::AsyncConfig::encode_reply`]);
//! - keep the connection's state from experimenter messages ([`nicira::Experimenter`]):
//!   Nicira's flow-mod table id and NXM flow format (pass them back as [`ParseOptions`];
//!   with NXM, 1.0 flow mods come as NXT_FLOW_MODs and flow statistics are asked with
//!   NXST_FLOW, [`multipart::MultipartRequest::nx`], answered by
//!   [`multipart::encode_nx_flow_stats`]), ONF bundles
//!   ([`bundle`]: hold the added FLOW_MODs, apply them on commit, answer each control);
//! - send asynchronous messages: [`packet_in::encode_packet_in`],
//!   [`flow_removed::encode_flow_removed`] (for rules whose flow mod had
//!   [`FlowMod::send_flow_rem`]), [`port_status::encode_port_status`], filtered by the
//!   connection's [`async_config::AsyncConfig`].
//!
//! Port numbers follow flow-table (OpenFlow 1.0's 16-bit numbering, `LOCAL` = 0xfffe); 1.3's
//! 32-bit reserved ports are folded onto it ([`ports`]).

#![warn(missing_docs)]

pub mod actions;
pub mod async_config;
pub mod bundle;
mod codec;
pub mod echo;
pub mod error;
pub mod features;
pub mod flow_mod;
pub mod flow_removed;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod header;
pub mod hello;
pub mod match10;
pub mod multipart;
pub mod nicira;
pub mod nxm;
pub mod oxm;
pub mod packet_in;
pub mod packet_out;
pub mod port_stats;
pub mod port_status;
pub mod ports;
pub mod request;
pub mod role;
pub mod switch_config;

pub use error::{DecodeError, ErrorCode};
pub use flow_mod::{FlowMod, FlowModCommand};
pub use header::{Header, MsgType, Version};
pub use request::{ParseOptions, Received, Request};
