//! Port kinds and packet buffers for the switch's datapath.
//!
//! A PMD thread owns one [`PacketPool`] (allocated once, never grown), polls its ports with
//! [`Port::rx_burst`] into a [`PacketBatch`] of at most [`BATCH_SIZE`] packets, and hands batches to
//! [`Port::tx_burst`], which consumes the packets and returns their buffers to the pool.
//!
//! Port kinds from issue 3: [`TapPort`] (`tap`), [`TapPort::internal`] (`internal`, the bridge's own
//! interface) and [`SystemPort`] (`system`: AF_XDP or AF_PACKET on an existing kernel
//! interface, chosen by [`SystemMode`]), and vhost-user ports for VMs
//! ([`VhostUserConfig`], `vhostuser` and `vhostuserclient`). [`DummyPort`] (`dummy`) exists only
//! in memory: the control plane injects frames and takes what was sent through a
//! [`DummyHandle`].
//!
//! With several PMD threads, each port is opened as one instance per PMD
//! ([`open_instances`] with a [`PortSpec`]): every instance receives on its own queues and
//! transmits on its own queue, so no PMD takes a lock on the datapath.
//!
//! Packets may carry offload requests from their input port ([`VnetHdr`]: a partial checksum, or
//! a 64 KB TCP super-frame to segment). An output port whose wire cannot carry them resolves them
//! in software with [`PacketBatch::send_resolved`] (built on [`gso::for_each_burst`]; or
//! [`gso::segment`] for one packet). A transmit reports what it did as a [`Burst`].

#![warn(missing_docs)]

mod afpacket;
mod afxdp;
mod batch;
mod bpf;
mod checksum;
mod copy;
mod counters;
mod dummy;
pub mod gso;
mod netdev;
mod packet;
mod patch;
mod pool;
mod port;
mod replay;
mod spec;
mod sys;
mod system;
mod tap;
mod vhost;
mod vxlan;

/// Fuzzing entry points into the vhost-user code (feature `fuzzing`, for `fuzz/`).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use vhost::fuzz as vhost_fuzz;

pub use afpacket::{AfPacketConfig, AfPacketPort};
pub use afxdp::{AfXdpConfig, AfXdpPort};
pub use batch::{Drain, PacketBatch, BATCH_SIZE};
pub use bpf::XdpMode;
pub use counters::CounterInfo;
pub use dummy::{DummyFull, DummyHandle, DummyPort, DUMMY_QUEUE};
pub use netdev::NetDev;
pub use packet::{Packet, TunMeta, VnetHdr};
pub use patch::{PatchLink, PatchPort, PATCH_OUTBOX};
pub use pool::{PacketPool, PoolConfig, DEFAULT_DATA_ROOM, DEFAULT_HEADROOM};
pub use port::{Burst, LinkWatch, PeerStatus, Port, PortCounters, PortKind, PortStats};
pub use replay::{ReplayConfig, ReplayPort};
pub use spec::{open_instances, PortSpec, PortType, UnknownPortType};
pub use system::{SystemConfig, SystemMode, SystemPort, AUTO_AFPACKET_DRIVERS};
pub use tap::{TapConfig, TapPort};
pub use vhost::{VhostMode, VhostUserConfig, VhostUserPort};
pub use vxlan::{VxlanConfig, VxlanPort, VXLAN_PORT};
