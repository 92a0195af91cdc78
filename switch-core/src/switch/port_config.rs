//! How a port of the switch is configured, and opening it as one instance per PMD thread.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ports::{
    AfPacketConfig, Port, PortSpec, PortType, ReplayConfig, SystemConfig, SystemMode, TapConfig,
    VhostMode, VhostUserConfig, VxlanConfig,
};

/// Configuration of a port, as `add-port` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortConfig {
    /// The bridge's own port: a tap named like the bridge.
    Internal,
    /// A tap device created by the switch, named like the port.
    Tap {
        /// Exchange virtio-net headers with the kernel (checksum and segmentation offload
        /// travel with the packets).
        offloads: bool,
    },
    /// An existing kernel interface named like the port (AF_XDP or AF_PACKET).
    System {
        /// Socket type.
        mode: SystemMode,
    },
    /// A VM's virtio-net over vhost-user.
    VhostUser {
        /// The unix socket.
        socket: PathBuf,
        /// The VM listens and the switch connects (`vhostuserclient`); otherwise the switch
        /// creates the socket and listens (`vhostuser`).
        client: bool,
        /// The port's MTU as OVS's `mtu_request` sets it, until the VM gives its own.
        mtu_request: Option<u32>,
    },
    /// Synthetic frames from memory ([`ports::ReplayPort`]), for benchmarks of the datapath
    /// alone; not offered by the management API.
    Replay {
        /// Distinct flows it sends (0: it only receives what the switch outputs to it).
        flows: u32,
        /// Frame length without FCS.
        frame_len: usize,
    },
    /// One end of a patch pair joining this bridge to the bridge of the patch port `peer`.
    Patch {
        /// The peer port's name.
        peer: String,
    },
    /// A VXLAN tunnel.
    Vxlan {
        /// The far end.
        remote_ip: Ipv4Addr,
        /// Local address to send from and receive on (any when unset).
        local_ip: Option<Ipv4Addr>,
        /// VNI, or `None` for `key=flow`.
        key: Option<u32>,
        /// UDP port.
        dst_port: u16,
        /// Outer UDP checksum (`csum`).
        csum: bool,
        /// DF bit on the outer IPv4 header (`df_default`).
        df: bool,
    },
    /// A port in memory only ([`ports::DummyPort`]): frames are injected and taken through
    /// [`Switch::dummy_receive`](crate::Switch::dummy_receive) and
    /// [`Switch::dummy_take_sent`](crate::Switch::dummy_take_sent).
    Dummy,
}

impl PortConfig {
    /// The configured type of this port.
    pub fn port_type(&self) -> PortType {
        match self {
            PortConfig::Internal => PortType::Internal,
            PortConfig::Tap { .. } => PortType::Tap,
            PortConfig::System { .. } => PortType::System,
            PortConfig::VhostUser { client: false, .. } => PortType::VhostUser,
            PortConfig::VhostUser { client: true, .. } => PortType::VhostUserClient,
            PortConfig::Replay { .. } => PortType::Replay,
            PortConfig::Patch { .. } => PortType::Patch,
            PortConfig::Vxlan { .. } => PortType::Vxlan,
            PortConfig::Dummy => PortType::Dummy,
        }
    }

    /// The `type=` name of this kind, as `add-port` takes it.
    pub fn type_name(&self) -> &'static str {
        self.port_type().as_str()
    }

    /// What `ports` needs to open the port `name` of bridge `bridge`.
    pub fn spec(&self, name: &str, bridge: &str) -> PortSpec {
        match self {
            PortConfig::Internal => PortSpec::Internal {
                bridge: bridge.to_owned(),
            },
            PortConfig::Tap { offloads } => {
                let mut cfg = TapConfig::new(name);
                cfg.vnet_hdr = *offloads;
                cfg.offloads = *offloads;
                PortSpec::Tap(cfg)
            }
            PortConfig::System { mode } => {
                let mut cfg = SystemConfig::new(name);
                cfg.mode = *mode;
                // Blocks big enough for 64 KB offloaded frames.
                cfg.afpacket = AfPacketConfig {
                    block_size: 1 << 17,
                    block_count: 32,
                    ..AfPacketConfig::new(name)
                };
                PortSpec::System(cfg)
            }
            PortConfig::VhostUser {
                socket,
                client,
                mtu_request,
            } => {
                let mode = if *client {
                    VhostMode::Client
                } else {
                    VhostMode::Server
                };
                PortSpec::VhostUser(VhostUserConfig {
                    mtu_request: *mtu_request,
                    ..VhostUserConfig::new(name, socket, mode)
                })
            }
            PortConfig::Replay { flows, frame_len } => PortSpec::Replay(ReplayConfig {
                frame_len: *frame_len,
                ..ReplayConfig::new(name, *flows)
            }),
            PortConfig::Patch { peer } => PortSpec::Patch {
                name: name.to_owned(),
                peer: peer.clone(),
            },
            PortConfig::Vxlan {
                remote_ip,
                local_ip,
                key,
                dst_port,
                csum,
                df,
            } => PortSpec::Vxlan(VxlanConfig {
                name: name.to_owned(),
                remote_ip: *remote_ip,
                local_ip: *local_ip,
                key: *key,
                dst_port: *dst_port,
                csum: *csum,
                df: *df,
            }),
            PortConfig::Dummy => PortSpec::Dummy {
                name: name.to_owned(),
            },
        }
    }

    /// Opens the port `name` of bridge `bridge` as `instances` instances, one per PMD thread
    /// (see [`ports::open_instances`] for how each kind divides its queues).
    pub fn open(
        &self,
        name: &str,
        bridge: &str,
        instances: usize,
    ) -> io::Result<Vec<Box<dyn Port>>> {
        ports::open_instances(&self.spec(name, bridge), instances)
    }
}
