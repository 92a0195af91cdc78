//! How a vhost-user port is configured.

use std::path::PathBuf;
use std::time::Duration;

/// Which side of the unix socket the switch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VhostMode {
    /// The switch creates the socket and listens (OVS `dpdkvhostuser`); the VM connects.
    Server,
    /// The VM listens; the switch connects and reconnects while it is away (OVS
    /// `dpdkvhostuserclient`).
    Client,
}

/// Settings of a vhost-user port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostUserConfig {
    /// Port name (for messages and counters).
    pub name: String,
    /// The unix socket.
    pub socket: PathBuf,
    /// Who listens.
    pub mode: VhostMode,
    /// Queue pairs offered to the frontend (`VHOST_USER_GET_QUEUE_NUM`).
    pub max_queue_pairs: usize,
    /// Client mode: wait between connection attempts.
    pub reconnect_interval: Duration,
    /// Server mode: permissions of the socket file.
    pub socket_mode: u32,
    /// The port's MTU (OVS's `mtu_request`), reported until the frontend gives the guest's
    /// (`NET_SET_MTU`); `None`: 1500.
    pub mtu_request: Option<u32>,
}

impl VhostUserConfig {
    /// Defaults for port `name` on socket `socket`: 8 queue pairs, reconnect every second,
    /// socket readable and writable by owner and group only.
    pub fn new(name: &str, socket: impl Into<PathBuf>, mode: VhostMode) -> VhostUserConfig {
        VhostUserConfig {
            name: name.to_owned(),
            socket: socket.into(),
            mode,
            max_queue_pairs: 8,
            reconnect_interval: Duration::from_secs(1),
            socket_mode: 0o660,
            mtu_request: None,
        }
    }
}
