//! One testpmd port: which vhost-user role it plays, its socket, and its device arguments.

use std::path::{Path, PathBuf};

/// Which vhost-user role a port plays in testpmd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortRole {
    /// `net_virtio_user`: the frontend, what a VM's virtio-net is.
    VirtioUser,
    /// `net_vhost`: DPDK's own vhost-user backend (a reference switch port).
    Vhost,
}

/// One testpmd port: a vhost-user socket and how to use it. Build with
/// [`TestpmdPort::virtio_user`] or [`TestpmdPort::vhost`], then adjust.
#[derive(Clone, Debug)]
pub struct TestpmdPort {
    role: PortRole,
    pub(super) path: PathBuf,
    pub(super) server: bool,
    pub(super) queues: u16,
    mac: Option<String>,
    queue_size: Option<u16>,
    devargs: Vec<String>,
}

impl TestpmdPort {
    /// A virtio-user (frontend) port that connects to an existing socket (`server=0`): the
    /// switch must be listening (a `vhostuser` server port) before the spawn.
    pub fn virtio_user(path: impl AsRef<Path>) -> Self {
        TestpmdPort {
            role: PortRole::VirtioUser,
            path: path.as_ref().to_path_buf(),
            server: false,
            queues: 1,
            mac: None,
            queue_size: None,
            devargs: Vec::new(),
        }
    }

    /// A DPDK `net_vhost` (backend) port that listens on the socket (`client=0`); with
    /// `.server(false)` it connects instead (`client=1`) and retries until the peer exists.
    pub fn vhost(path: impl AsRef<Path>) -> Self {
        TestpmdPort {
            role: PortRole::Vhost,
            server: true,
            ..TestpmdPort::virtio_user(path)
        }
    }

    /// Whether testpmd creates the socket and listens on it. For a virtio-user port this is
    /// `server=1`: the switch then connects as a vhost-user client (`vhostuserclient`), and
    /// testpmd's start-up blocks until it does. Testpmd removes such a socket when it quits; so
    /// does [`TestPmd`](super::TestPmd)'s drop if it was killed.
    pub fn server(mut self, server: bool) -> Self {
        self.server = server;
        self
    }

    /// Queue pairs (default 1). Testpmd configures the largest count of all its ports on every
    /// port, so give all ports of one instance the same count.
    pub fn queues(mut self, queues: u16) -> Self {
        self.queues = queues.max(1);
        self
    }

    /// The port's MAC address (virtio-user only; `net_vhost` ports have fixed ones, see
    /// [`TestPmd::port_mac`](super::TestPmd::port_mac)). Default: a locally administered address unique to the instance
    /// and port.
    pub fn mac(mut self, mac: &str) -> Self {
        self.mac = Some(mac.to_string());
        self
    }

    /// The virtqueue size (virtio-user only; DPDK's default is 256).
    pub fn queue_size(mut self, size: u16) -> Self {
        self.queue_size = Some(size);
        self
    }

    /// Any other device argument, e.g. `packed_vq=1` or `mrg_rxbuf=0` (virtio-user), or
    /// `iommu-support=1` (vhost).
    pub fn devarg(mut self, arg: &str) -> Self {
        self.devargs.push(arg.to_string());
        self
    }

    /// Its `--vdev` argument as port `index` of instance `instance` (which seeds default MACs).
    pub(super) fn vdev(&self, index: usize, instance: u32) -> String {
        let path = self.path.display();
        let mut s = match self.role {
            PortRole::VirtioUser => {
                let mac = self.mac.clone().unwrap_or_else(|| {
                    let pid = std::process::id();
                    format!(
                        "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
                        (pid >> 8) & 0xff,
                        pid & 0xff,
                        instance & 0xff,
                        index & 0xff
                    )
                });
                let mut s = format!(
                    "net_virtio_user{index},path={path},server={},queues={},mac={mac}",
                    u8::from(self.server),
                    self.queues
                );
                if let Some(q) = self.queue_size {
                    s += &format!(",queue_size={q}");
                }
                s
            }
            PortRole::Vhost => format!(
                "net_vhost{index},iface={path},client={},queues={}",
                u8::from(!self.server),
                self.queues
            ),
        };
        for a in &self.devargs {
            s += ",";
            s += a;
        }
        s
    }
}
