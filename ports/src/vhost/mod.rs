//! vhost-user ports: a VM's virtio-net device served over a unix socket and shared memory.
//!
//! The control side (the vhost-user protocol, from the `vhost` crate) runs on a thread of its own
//! per port; the PMD threads poll the virtqueues (`virtio-queue` over `vm-memory`) directly.

mod config;

pub use config::{VhostMode, VhostUserConfig};

use std::io;

use crate::port::Port;

/// Opens a vhost-user port as `n` instances, one per PMD thread.
pub fn open_instances(config: &VhostUserConfig, n: usize) -> io::Result<Vec<Box<dyn Port>>> {
    let _ = (config, n);
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "vhost-user ports are being written",
    ))
}
