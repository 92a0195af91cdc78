//! Bridges, PMD threads, action execution, L2 learning and statistics: the datapath of vswitch,
//! built on `flow-table` (decisions) and `ports` (packet I/O).
//!
//! [`Switch`] is the entry point: it starts the PMD threads and offers the control-plane
//! operations (bridges, ports, rules, statistics) that the management API exposes.
//!
//! Two halves: [`datapath`] is what the PMD threads run per packet (no locks, no allocation on
//! the per-packet path), [`switch`] the control plane that builds and changes it. [`events`]
//! is what flows back: packet-ins and flow-removed for an OpenFlow controller.

#![warn(missing_docs)]

pub mod datapath;
pub mod events;
pub mod memory;
pub mod switch;

pub use datapath::bridge::{CONTROLLER_PORT, LOCAL_PORT, NONE_PORT};
pub use datapath::pmd::MegaflowRow;
pub use datapath::port_obs::{CaptureDir, CapturedFrame, PacketTrace};
pub use datapath::stats::{DropReason, PmdStats};
pub use datapath::trace::TraceReport;
pub use datapath::vlan::{PortVlan, VlanMode};
pub use events::{FlowRemoved, FlowRemovedReason, PacketIn, SwitchEvent};
pub use flow_table::{MissConfig, PacketInReason};
pub use switch::bridge_options::{BridgeOptions, DatapathType};
pub use switch::l2_ctl::MirrorSpec;
pub use switch::port_config::PortConfig;
pub use switch::{
    default_rules, Capture, PortInfo, RxqInfo, RxqUsage, Switch, SwitchConfig, SwitchError,
    Visibility,
};
