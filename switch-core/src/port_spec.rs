//! How a port of the switch is configured, and opening it as one instance per PMD thread.

use std::io;

use ports::{AfPacketConfig, Port, SystemConfig, SystemMode, TapConfig, TapPort};

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
}

impl PortConfig {
    /// The `type=` name of this kind, as `add-port` takes it.
    pub fn type_name(&self) -> &'static str {
        match self {
            PortConfig::Internal => "internal",
            PortConfig::Tap { .. } => "tap",
            PortConfig::System { .. } => "system",
        }
    }

    /// Opens the port `name` of bridge `bridge` as `instances` instances, one per PMD thread.
    pub fn open(
        &self,
        name: &str,
        bridge: &str,
        instances: usize,
    ) -> io::Result<Vec<Box<dyn Port>>> {
        if instances != 1 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "ports are not yet opened for more than one PMD thread",
            ));
        }
        let port: Box<dyn Port> = match self {
            PortConfig::Internal => Box::new(TapPort::internal(bridge)?),
            PortConfig::Tap { offloads } => {
                let mut cfg = TapConfig::new(name);
                cfg.vnet_hdr = *offloads;
                cfg.offloads = *offloads;
                Box::new(TapPort::open(&cfg)?)
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
                Box::new(ports::SystemPort::open(&cfg)?)
            }
        };
        Ok(vec![port])
    }
}
