//! Bridges, PMD threads, action execution, L2 learning and statistics: the datapath of vswitch,
//! built on `flow-table` (decisions) and `ports` (packet I/O).
//!
//! [`Switch`] is the entry point: it starts the PMD threads and offers the control-plane
//! operations (bridges, ports, rules, statistics) that the management API exposes.

#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod bridge;
pub mod bridge_options;
pub mod clock;
mod execute;
pub mod l2;
pub mod mac_table;
pub mod modify;
pub mod normal;
pub mod observe;
mod pmd;
pub mod port_spec;
pub mod rxq_sched;
pub mod stats;
pub mod switch;
pub mod trace;
pub mod vlan;

pub use bridge::LOCAL_PORT;
pub use bridge_options::{BridgeOptions, DatapathType};
pub use observe::{CaptureDir, CapturedFrame, PacketTrace};
pub use pmd::MegaflowRow;
pub use port_spec::PortConfig;
pub use stats::{DropReason, PmdStats};
pub use switch::l2_ctl::MirrorSpec;
pub use switch::{Capture, PortInfo, RxqInfo, RxqUsage, Switch, SwitchConfig, SwitchError};
pub use trace::TraceReport;
pub use vlan::{PortVlan, VlanMode};
