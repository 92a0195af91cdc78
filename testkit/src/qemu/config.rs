//! What a guest is made of: memory, CPUs, NICs, kernel arguments, migration role.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A NIC of the guest; in the guest they appear as `eth0`, `eth1`, … in this order.
#[derive(Clone, Debug)]
pub enum Nic {
    /// A virtio-net NIC whose datapath is a vhost-user backend (the switch).
    VhostUser(VhostUserNic),
    /// A virtio-net NIC on a host tap device that QEMU creates (and removes when it exits);
    /// needs root. For testing the harness itself without the switch.
    Tap {
        /// Host name of the tap device (at most 15 bytes).
        ifname: String,
        /// The guest NIC's MAC address.
        mac: String,
    },
}

/// A vhost-user NIC. See [`VhostUserNic::new`] for the defaults.
///
/// Whichever side listens, QEMU 7.2 does not start the guest (nor answer QMP) until the
/// backend is connected: with the switch not yet there, use
/// [`Guest::spawn`](super::Guest::spawn) and then [`Guest::wait_shell`](super::Guest::wait_shell).
#[derive(Clone, Debug)]
pub struct VhostUserNic {
    /// The vhost-user unix socket.
    pub socket: PathBuf,
    /// Whether QEMU listens on `socket` (the switch's `vhostuserclient` mode) rather than
    /// connecting to it (the switch's `vhostuser` mode).
    pub qemu_listens: bool,
    /// Queue pairs; more than one turns on virtio-net multiqueue.
    pub queues: u16,
    /// The guest NIC's MAC address.
    pub mac: String,
    /// The MTU the device advertises to the guest driver (`host_mtu`).
    pub host_mtu: Option<u16>,
    /// Whether the device offers checksum and segmentation offloads (the default). When
    /// `false`, every checksum, TSO and ECN feature of the device is turned off, so the guest
    /// computes its checksums and sends and receives MTU-sized frames.
    pub offloads: bool,
}

impl VhostUserNic {
    /// A single-queue NIC on `socket`, QEMU connecting to the switch (which listens), with a
    /// MAC unique in this process.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        VhostUserNic {
            socket: socket.into(),
            qemu_listens: false,
            queues: 1,
            mac: next_mac(),
            host_mtu: None,
            offloads: true,
        }
    }

    /// QEMU listens on the socket and the switch connects (`vhostuserclient` ports).
    pub fn qemu_listens(mut self, yes: bool) -> Self {
        self.qemu_listens = yes;
        self
    }

    /// Sets the number of queue pairs (multiqueue when more than one). The guest's driver
    /// uses as many pairs as it has CPUs: give it `smp` at least `queues`.
    pub fn queues(mut self, queues: u16) -> Self {
        self.queues = queues.max(1);
        self
    }

    /// Sets the MAC address.
    pub fn mac(mut self, mac: &str) -> Self {
        self.mac = mac.to_string();
        self
    }

    /// Sets the MTU the device offers the guest.
    pub fn host_mtu(mut self, mtu: u16) -> Self {
        self.host_mtu = Some(mtu);
        self
    }

    /// With `false`, the device offers no checksum, segmentation (TSO) or ECN offload in
    /// either direction (`csum`, `guest_csum`, `gso`, `host_tso4/6`, `host_ecn`,
    /// `guest_tso4/6`, `guest_ecn` all off), as for measuring a switch without them.
    pub fn offloads(mut self, yes: bool) -> Self {
        self.offloads = yes;
        self
    }
}

/// A guest's configuration, built with chained setters from [`GuestConfig::new`].
#[derive(Clone, Debug)]
pub struct GuestConfig {
    /// A name for logs, QEMU's `-name` and temporary paths.
    pub name: String,
    /// Guest memory in MiB (shared memfd, as vhost-user requires).
    pub memory_mb: u32,
    /// Virtual CPUs.
    pub smp: u32,
    /// NICs, in PCI order.
    pub nics: Vec<Nic>,
    /// Boot as a live-migration destination listening on `127.0.0.1:port`.
    pub incoming: Option<u16>,
    /// Appended to the kernel command line.
    pub kernel_args: Vec<String>,
    /// How long [`Guest::boot`](super::Guest::boot) waits for the shell.
    pub boot_timeout: Duration,
}

impl GuestConfig {
    /// 256 MiB, one CPU, no NIC, 60 s to boot.
    pub fn new(name: &str) -> Self {
        GuestConfig {
            name: name.to_string(),
            memory_mb: 256,
            smp: 1,
            nics: Vec::new(),
            incoming: None,
            kernel_args: Vec::new(),
            boot_timeout: Duration::from_secs(60),
        }
    }

    /// Sets the memory size in MiB.
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// Sets the number of virtual CPUs.
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus.max(1);
        self
    }

    /// Adds a vhost-user NIC.
    pub fn vhost_user(mut self, nic: VhostUserNic) -> Self {
        self.nics.push(Nic::VhostUser(nic));
        self
    }

    /// Adds a tap NIC (QEMU creates host device `ifname`).
    pub fn tap(mut self, ifname: &str) -> Self {
        self.nics.push(Nic::Tap {
            ifname: ifname.to_string(),
            mac: next_mac(),
        });
        self
    }

    /// Makes the guest a migration destination listening on `127.0.0.1:port`
    /// (see [`free_local_port`](super::free_local_port)).
    pub fn incoming(mut self, port: u16) -> Self {
        self.incoming = Some(port);
        self
    }

    /// Appends an argument to the kernel command line.
    pub fn kernel_arg(mut self, arg: &str) -> Self {
        self.kernel_args.push(arg.to_string());
        self
    }

    /// Sets how long booting may take before [`Guest::boot`](super::Guest::boot) fails.
    pub fn boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = timeout;
        self
    }

    /// QEMU's arguments for the NICs.
    pub(crate) fn nic_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (i, nic) in self.nics.iter().enumerate() {
            match nic {
                Nic::VhostUser(v) => {
                    let server = if v.qemu_listens {
                        ",server=on,wait=off"
                    } else {
                        // Survive a switch restart: QEMU reconnects every second.
                        ",reconnect=1"
                    };
                    args.push("-chardev".into());
                    args.push(format!(
                        "socket,id=c{i},path={}{server}",
                        v.socket.display()
                    ));
                    args.push("-netdev".into());
                    args.push(format!(
                        "vhost-user,id=n{i},chardev=c{i},queues={}",
                        v.queues
                    ));
                    // vectors=0: QEMU 7.2 under TCG segfaults in msix_set_vector_notifiers
                    // when a vhost-user virtio-net device starts with MSI-X.
                    let mut dev = format!("virtio-net-pci,netdev=n{i},mac={},vectors=0", v.mac);
                    if v.queues > 1 {
                        dev.push_str(",mq=on");
                    }
                    if let Some(mtu) = v.host_mtu {
                        dev.push_str(&format!(",host_mtu={mtu}"));
                    }
                    if !v.offloads {
                        dev.push_str(NO_OFFLOADS);
                    }
                    args.push("-device".into());
                    args.push(dev);
                }
                Nic::Tap { ifname, mac } => {
                    args.push("-netdev".into());
                    args.push(format!(
                        "tap,id=n{i},ifname={ifname},script=no,downscript=no,vhost=off"
                    ));
                    args.push("-device".into());
                    args.push(format!("virtio-net-pci,netdev=n{i},mac={mac}"));
                }
            }
        }
        args
    }
}

/// The virtio-net device properties that turn every checksum and segmentation offload off.
const NO_OFFLOADS: &str = ",csum=off,guest_csum=off,gso=off,host_tso4=off,host_tso6=off,\
host_ecn=off,guest_tso4=off,guest_tso6=off,guest_ecn=off";

/// A locally administered MAC, unique in this process and unlikely to clash across processes.
fn next_mac() -> String {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!(
        "52:54:{:02x}:{:02x}:{:02x}:{:02x}",
        (pid >> 8) & 0xff,
        pid & 0xff,
        (n >> 8) & 0xff,
        n & 0xff
    )
}
