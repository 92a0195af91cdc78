//! vhost-user ports: a VM's virtio-net device served over a unix socket and shared memory.
//!
//! The control side (the vhost-user protocol, from the `vhost` crate) runs on a thread of its own
//! per port ([`conn`]); the PMD threads poll the virtqueues (`virtio-queue` over `vm-memory`)
//! directly ([`vring`]), each queue handed between the two through a [`cell::SpinCell`].
//!
//! Offered: split rings, `VERSION_1`, `MRG_RXBUF`, `INDIRECT_DESC`, `EVENT_IDX`, `IN_ORDER`,
//! `MQ`, `MTU`, `GUEST_ANNOUNCE`, the offloads `CSUM`, `HOST_TSO4/6`, `HOST_ECN`, `HOST_USO`,
//! `GUEST_CSUM`, `GUEST_TSO4/6`, `GUEST_ECN`, `GUEST_USO4/6`, `VHOST_F_LOG_ALL`, and the
//! protocol features `MQ`, `REPLY_ACK`, `CONFIGURE_MEM_SLOTS`, `LOG_SHMFD` (live migration,
//! [`dirty_log`]), `NET_MTU` and `RARP` (the last two served in [`intercept`], which the
//! `vhost` crate does not know).

mod cell;
mod config;
mod conn;
mod device;
mod dirty_log;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
mod guest_map;
mod intercept;
mod port;
mod split;
mod status;
mod vring;

pub use config::{VhostMode, VhostUserConfig};
pub use port::VhostUserPort;

use std::io;
use std::sync::Arc;

use crate::port::{Port, PortCounters};

/// Opens a vhost-user port as `n` instances, one per PMD thread: creates the socket (server
/// mode) or starts connecting (client mode) and returns at once; the frontend may come later.
pub fn open_instances(config: &VhostUserConfig, n: usize) -> io::Result<Vec<Box<dyn Port>>> {
    Ok(VhostUserPort::open_instances(config, n)?
        .into_iter()
        .map(|p| Box::new(p) as Box<dyn Port>)
        .collect())
}

impl VhostUserPort {
    /// Opens the port as `n` instances (see [`open_instances`](crate::open_instances)).
    pub fn open_instances(config: &VhostUserConfig, n: usize) -> io::Result<Vec<VhostUserPort>> {
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a port needs at least one instance",
            ));
        }
        if config.max_queue_pairs == 0 || config.max_queue_pairs > 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_queue_pairs must be between 1 and 64",
            ));
        }
        let dev = Arc::new(device::Device::new(
            config.clone(),
            PortCounters::new_shared(),
        ));
        let conn = Arc::new(conn::Conn::start(Arc::clone(&dev))?);
        Ok((0..n)
            .map(|i| VhostUserPort::new(Arc::clone(&dev), Arc::clone(&conn), i, n))
            .collect())
    }
}
