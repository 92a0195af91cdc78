//! The port abstraction every port kind implements, and its counters.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::batch::PacketBatch;
use crate::counters::counters;
use crate::netdev::NetDev;
use crate::pool::PacketPool;
use crate::spec::PortType;

/// What a port is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// A kernel tap device the switch created (`/dev/net/tun`).
    Tap,
    /// The bridge's own interface (a tap named like the bridge) for the host stack.
    Internal,
    /// An existing kernel interface driven through an AF_XDP socket.
    SystemAfXdp,
    /// An existing kernel interface driven through an AF_PACKET socket.
    SystemAfPacket,
    /// A VM's virtio-net over vhost-user; the switch listens on the socket.
    VhostUser,
    /// A VM's virtio-net over vhost-user; the VM side listens and the switch connects.
    VhostUserClient,
    /// Synthetic frames from memory, for benchmarks ([`ReplayPort`](crate::ReplayPort)).
    Replay,
    /// One end of a pair of ports joining two bridges of the switch.
    Patch,
    /// A VXLAN tunnel over a UDP socket of the host.
    Vxlan,
    /// A port in memory only, fed and read by the control plane
    /// ([`DummyPort`](crate::DummyPort)).
    Dummy,
}

impl PortKind {
    /// The configured type of ports of this kind (both system kinds are `system`).
    pub fn port_type(self) -> PortType {
        match self {
            PortKind::Tap => PortType::Tap,
            PortKind::Internal => PortType::Internal,
            PortKind::SystemAfXdp | PortKind::SystemAfPacket => PortType::System,
            PortKind::VhostUser => PortType::VhostUser,
            PortKind::VhostUserClient => PortType::VhostUserClient,
            PortKind::Replay => PortType::Replay,
            PortKind::Patch => PortType::Patch,
            PortKind::Vxlan => PortType::Vxlan,
            PortKind::Dummy => PortType::Dummy,
        }
    }

    /// The kind's name as configured: its [`port_type`](Self::port_type)'s name.
    pub fn config_name(self) -> &'static str {
        self.port_type().as_str()
    }
}

/// What one receive or transmit burst did: the figures a port adds to its counters
/// ([`PortCounters::add_rx`], [`PortCounters::add_tx`]) and [`Port::tx_burst`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Burst {
    /// Packets moved (received, or sent).
    pub packets: u64,
    /// Their bytes (frames only: no virtio-net or tunnel header).
    pub bytes: u64,
    /// Packets lost for want of room or link: no free buffer, a full device queue or guest
    /// ring, an interface that is down (see `rx_dropped`/`tx_dropped` of [`PortStats`]).
    pub dropped: u64,
    /// Packets refused or malformed: a kernel error other than "no room / link down", a bad
    /// frame or ring, offloads that could not be resolved.
    pub errors: u64,
}

impl std::ops::AddAssign for Burst {
    #[inline]
    fn add_assign(&mut self, o: Burst) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.dropped += o.dropped;
        self.errors += o.errors;
    }
}

counters! {
    /// A snapshot of a port's counters.
    pub struct PortStats;
    /// Live counters of one port, shared with the control plane through an `Arc`.
    ///
    /// The PMD threads polling the port's instances (see [`open_instances`](crate::open_instances))
    /// add to them, once per burst each, and any thread may read them. Relaxed atomic adds suffice:
    /// no update is lost, each counter is independent and readers only want a recent value.
    pub struct PortCounters;

    /// Packets received and handed to the datapath.
    rx_packets { api: "Packets received.", metric: "Packets received." },
    /// Bytes of those packets.
    rx_bytes { api: "Bytes received.", metric: "Bytes received." },
    /// Packets the port received but had to drop (no free buffer, too long for a buffer).
    rx_dropped {
        api: "Received packets dropped.",
        metric: "Packets the port received but had to drop (no buffer, too long).",
    },
    /// Receive errors reported by the kernel or malformed input.
    rx_errors { api: "Receive errors.", metric: "Receive errors." },
    /// Packets sent.
    tx_packets { api: "Packets sent.", metric: "Packets sent." },
    /// Bytes of those packets.
    tx_bytes { api: "Bytes sent.", metric: "Bytes sent." },
    /// Packets dropped on send because the device or its queue was full or down.
    tx_dropped {
        api: "Packets dropped on send.",
        metric: "Packets dropped on send (queue or guest ring full, link down).",
    },
    /// Packets the kernel refused (e.g. longer than the MTU).
    tx_errors { api: "Send errors.", metric: "Send errors." },
    /// Segments the switch made in software from TCP and UDP segmentation offloads this
    /// port's peer cannot take (see [`gso`](crate::gso)).
    tx_segments {
        api: "Segments made in software from TCP and UDP GSO this port cannot take.",
        metric: "Segments made in software from TCP and UDP GSO the port cannot take.",
    },
    /// Partial checksums the switch completed in software for this port.
    tx_checksums {
        api: "Partial checksums completed in software for this port.",
        metric: "Partial checksums completed in software for the port.",
    },
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

impl PortCounters {
    /// A fresh set of zeroed counters.
    pub fn new_shared() -> Arc<PortCounters> {
        Arc::new(PortCounters::default())
    }

    /// Adds the results of one receive burst.
    #[inline]
    pub fn add_rx(&self, b: &Burst) {
        bump(&self.rx_packets, b.packets);
        bump(&self.rx_bytes, b.bytes);
        bump(&self.rx_dropped, b.dropped);
        bump(&self.rx_errors, b.errors);
    }

    /// Adds the results of one transmit burst.
    #[inline]
    pub fn add_tx(&self, b: &Burst) {
        bump(&self.tx_packets, b.packets);
        bump(&self.tx_bytes, b.bytes);
        bump(&self.tx_dropped, b.dropped);
        bump(&self.tx_errors, b.errors);
    }

    /// Adds what resolving offloads in software did for one transmit (segments made,
    /// checksums completed; what could not be resolved counts as transmit errors).
    pub fn add_offloads(&self, st: &crate::gso::GsoStats) {
        bump(&self.tx_segments, st.segments);
        bump(&self.tx_checksums, st.csums);
        bump(&self.tx_errors, st.dropped);
    }
}

/// How the control plane reads a port's link state without the port (which its PMDs own).
#[derive(Clone)]
pub enum LinkWatch {
    /// The kernel interface of that name is up with carrier.
    Interface(String),
    /// A peer is connected (a patch port's peer).
    Connected(Arc<std::sync::atomic::AtomicBool>),
    /// A peer with a state of its own to tell (vhost-user: the VM's frontend and its rings).
    Peer(Arc<dyn PeerStatus>),
}

impl std::fmt::Debug for LinkWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkWatch::Interface(n) => f.debug_tuple("Interface").field(n).finish(),
            LinkWatch::Connected(c) => f.debug_tuple("Connected").field(c).finish(),
            LinkWatch::Peer(p) => f.debug_tuple("Peer").field(&p.status()).finish(),
        }
    }
}

/// The live state of a port's peer, readable from the control plane.
pub trait PeerStatus: Send + Sync {
    /// Whether the link is up (the peer is there and traffic can flow both ways).
    fn link_up(&self) -> bool;
    /// One line for people: what is connected and, when traffic cannot flow, why.
    fn status(&self) -> String;
    /// The MTU as the peer set it, if it sets one (a VM's `host_mtu`).
    fn mtu(&self) -> Option<u32> {
        None
    }
}

impl LinkWatch {
    /// Whether the link is up now.
    pub fn is_up(&self) -> bool {
        match self {
            LinkWatch::Interface(name) => {
                crate::netdev::NetDev::new(name).is_ok_and(|n| n.link_up())
            }
            LinkWatch::Connected(flag) => flag.load(Ordering::Acquire),
            LinkWatch::Peer(p) => p.link_up(),
        }
    }

    /// The MTU the peer set, for ports whose peer sets one.
    pub fn mtu(&self) -> Option<u32> {
        match self {
            LinkWatch::Peer(p) => p.mtu(),
            _ => None,
        }
    }

    /// The peer's state in words, for ports that have one.
    pub fn status(&self) -> Option<String> {
        match self {
            LinkWatch::Peer(p) => Some(p.status()),
            _ => None,
        }
    }
}

/// A switch port (or one instance of it), polled by one PMD thread.
///
/// Ports are `Send` (built by the control plane, then moved to their PMD) and use `&mut self` for
/// I/O: one thread polls a given port. A port serving several PMDs is opened as one instance per
/// PMD with [`open_instances`](crate::open_instances); the instances share their counters.
/// Counters are readable from any thread through [`counters`](Self::counters).
pub trait Port: Send {
    /// Interface name.
    fn name(&self) -> &str;

    /// What the port is attached to.
    fn kind(&self) -> PortKind;

    /// Number of receive queues (valid `qid`s for [`rx_burst`](Self::rx_burst) are below it;
    /// larger ones are taken modulo this number). May be 0 for an instance that only transmits
    /// (an AF_XDP instance without a device queue of its own); `rx_burst` then returns 0.
    fn n_rxq(&self) -> usize;

    /// Number of transmit queues (valid `qid`s for [`tx_burst`](Self::tx_burst) are below it;
    /// larger ones are taken modulo this number). A queue must be used by one thread at a time.
    fn n_txq(&self) -> usize;

    /// The switch's number for this port, stamped into every received packet's `in_port`.
    fn port_no(&self) -> u32;

    /// Sets the number stamped into received packets.
    fn set_port_no(&mut self, port_no: u32);

    /// Receives up to `batch.space()` packets from queue `qid` into buffers taken from `pool`,
    /// appending them to `batch`; returns how many were appended. Never blocks and never
    /// allocates; when `pool` is empty, frames waiting in the kernel are dropped and counted
    /// (`rx_dropped`) rather than left to stall the queue.
    fn rx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> usize;

    /// Sends every packet of `batch` on queue `qid` and frees their buffers into `pool`, sent or
    /// not (failures are counted as `tx_dropped`/`tx_errors`). Leaves `batch` empty. Never blocks.
    /// Returns what the call added to the transmit counters (segments made from a GSO packet
    /// count as the packets sent; offloads that could not be resolved as errors).
    fn tx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst;

    /// The port's live counters, for sharing with other threads.
    fn counters(&self) -> Arc<PortCounters>;

    /// A snapshot of the port's counters.
    fn stats(&self) -> PortStats {
        self.counters().snapshot()
    }

    /// The kernel interface the port sends and receives on, for ports that have one (tap,
    /// AF_PACKET, AF_XDP). The defaults of [`mtu`](Self::mtu), [`mac`](Self::mac) and
    /// [`link_up`](Self::link_up) ask it.
    fn netdev(&self) -> Option<&NetDev> {
        None
    }

    /// The interface MTU (0 if it cannot be read). By default the [`netdev`](Self::netdev)'s.
    fn mtu(&self) -> u32 {
        self.netdev().and_then(|n| n.mtu().ok()).unwrap_or(0)
    }

    /// The interface's MAC address (zero if it cannot be read). By default the
    /// [`netdev`](Self::netdev)'s.
    fn mac(&self) -> [u8; 6] {
        self.netdev().and_then(|n| n.mac().ok()).unwrap_or([0; 6])
    }

    /// Whether the interface is up and has carrier. By default whether the
    /// [`netdev`](Self::netdev) is (false without one).
    fn link_up(&self) -> bool {
        self.netdev().is_some_and(NetDev::link_up)
    }

    /// Whether an empty [`rx_burst`](Self::rx_burst) costs a system call (a tap's `read`), so
    /// that a busy PMD may poll the port less often while it stays empty.
    fn rx_polls_by_syscall(&self) -> bool {
        false
    }
    /// A way for other threads to read the link state.
    fn link_watch(&self) -> LinkWatch {
        LinkWatch::Interface(self.name().to_owned())
    }

    /// A file descriptor that becomes readable when queue `qid` has packets, so that an idle
    /// PMD can sleep in `poll`/`epoll` instead of spinning. `None` if the port has none.
    fn rx_fd(&self, qid: usize) -> Option<RawFd> {
        let _ = qid;
        None
    }

    /// The patch port behind this port, if it is one (the PMD delivers its outbox to the peer
    /// bridge).
    fn patch(&mut self) -> Option<&mut crate::patch::PatchPort> {
        None
    }

    /// The control plane's handle on this port, if it is a dummy port (frames are injected
    /// and taken through it).
    fn dummy(&self) -> Option<crate::dummy::DummyHandle> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_accumulate_and_snapshot() {
        let c = PortCounters::new_shared();
        let b = |packets, bytes, dropped, errors| Burst {
            packets,
            bytes,
            dropped,
            errors,
        };
        c.add_rx(&b(3, 300, 1, 0));
        c.add_rx(&b(2, 128, 0, 4));
        c.add_tx(&b(5, 500, 2, 1));
        let other = Arc::clone(&c);
        let s = std::thread::spawn(move || other.snapshot()).join().unwrap();
        assert_eq!(
            s,
            PortStats {
                rx_packets: 5,
                rx_bytes: 428,
                rx_dropped: 1,
                rx_errors: 4,
                tx_packets: 5,
                tx_bytes: 500,
                tx_dropped: 2,
                tx_errors: 1,
                ..PortStats::default()
            }
        );
    }

    #[test]
    fn kind_names() {
        assert_eq!(PortKind::Tap.config_name(), "tap");
        assert_eq!(PortKind::Internal.config_name(), "internal");
        assert_eq!(PortKind::SystemAfXdp.config_name(), "system");
    }
}
