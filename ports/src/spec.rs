//! Port types by name, and opening a port as one instance per PMD thread.
//!
//! [`PortType`] is the one place the names of the port types (`type=` of `add-port`) are
//! spelled; the configuration layers above parse and print them through it.
//!
//! The switch runs several poll-mode threads (PMDs), and each must receive from and transmit to
//! every port without locks. So a port is opened as `n` instances, one per PMD, each a complete
//! [`Port`] owned by that PMD with queues of its own: instance `i` receives only on its queues
//! (the kernel spreads frames over the instances, each frame to one of them) and transmits only
//! on its own queue. The instances share one [`PortCounters`](crate::PortCounters), so
//! [`Port::stats`] on any of them gives the port's totals, and report the same name, kind, MTU
//! and MAC address.

use std::fmt;
use std::io;
use std::str::FromStr;

use crate::dummy::DummyPort;
use crate::patch::PatchPort;
use crate::port::Port;
use crate::replay::{ReplayConfig, ReplayPort};
use crate::system::{SystemConfig, SystemPort};
use crate::tap::{TapConfig, TapPort};
use crate::vhost::VhostUserConfig;
use crate::vxlan::{VxlanConfig, VxlanPort};

/// A port's type as configured (`type=` of `add-port`, and the REST API's `type`).
///
/// A type may be opened as more than one [`PortKind`](crate::PortKind) (`system` is AF_XDP or
/// AF_PACKET); [`PortKind::port_type`](crate::PortKind::port_type) maps back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PortType {
    /// An existing kernel interface (AF_XDP or AF_PACKET); the default, as in Open vSwitch.
    #[default]
    System,
    /// A tap device created by the switch.
    Tap,
    /// A tap the host stack uses, as the bridge's own port is.
    Internal,
    /// vhost-user; the switch listens on the socket.
    VhostUser,
    /// vhost-user; the VM listens and the switch connects.
    VhostUserClient,
    /// One end of a pair of ports joining two bridges.
    Patch,
    /// A VXLAN tunnel.
    Vxlan,
    /// A port in memory only.
    Dummy,
    /// Synthetic frames from memory, for benchmarks; built in code, never configured by name
    /// (not in [`ALL`](Self::ALL), so it does not parse).
    Replay,
}

impl PortType {
    /// Every type that can be configured by name, in the order they are listed to people.
    pub const ALL: [PortType; 8] = [
        PortType::System,
        PortType::Tap,
        PortType::Internal,
        PortType::VhostUser,
        PortType::VhostUserClient,
        PortType::Patch,
        PortType::Vxlan,
        PortType::Dummy,
    ];

    /// The name as `type=` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PortType::System => "system",
            PortType::Tap => "tap",
            PortType::Internal => "internal",
            PortType::VhostUser => "vhostuser",
            PortType::VhostUserClient => "vhostuserclient",
            PortType::Patch => "patch",
            PortType::Vxlan => "vxlan",
            PortType::Dummy => "dummy",
            PortType::Replay => "replay",
        }
    }
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no configurable [`PortType`]; its message lists the known ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPortType(pub String);

impl fmt::Display for UnknownPortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = PortType::ALL.iter().map(|t| t.as_str()).collect();
        write!(
            f,
            "unknown port type {:?} (known: {})",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownPortType {}

impl FromStr for PortType {
    type Err = UnknownPortType;

    /// Parses the name of a type in [`PortType::ALL`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PortType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownPortType(s.to_owned()))
    }
}

/// What a port is and how to open it: the configuration [`open_instances`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// A tap device created by the switch ([`TapPort::open_instances`]).
    Tap(TapConfig),
    /// The bridge's own interface, a tap named like the bridge
    /// ([`TapPort::internal_instances`]).
    Internal {
        /// Bridge (and interface) name.
        bridge: String,
    },
    /// An existing kernel interface over AF_XDP or AF_PACKET ([`SystemPort::open_instances`]).
    System(SystemConfig),
    /// A VM's virtio-net over vhost-user (server or client socket).
    VhostUser(VhostUserConfig),
    /// Synthetic frames from memory (one instance receives; the others only transmit).
    Replay(ReplayConfig),
    /// A patch port joined to the patch port named `peer` (of another bridge).
    Patch {
        /// This port's name.
        name: String,
        /// The peer port's name.
        peer: String,
    },
    /// A VXLAN tunnel port.
    Vxlan(VxlanConfig),
    /// A port in memory only, fed and read through its [`DummyHandle`](crate::DummyHandle)
    /// (the first instance receives; all transmit into one buffer).
    Dummy {
        /// Port name.
        name: String,
    },
}

impl PortSpec {
    /// The interface name the port will have (for a tap name with `%d`, the pattern).
    pub fn name(&self) -> &str {
        match self {
            PortSpec::Tap(c) => &c.name,
            PortSpec::Internal { bridge } => bridge,
            PortSpec::System(c) => &c.ifname,
            PortSpec::VhostUser(c) => &c.name,
            PortSpec::Replay(c) => &c.name,
            PortSpec::Patch { name, .. } => name,
            PortSpec::Vxlan(c) => &c.name,
            PortSpec::Dummy { name } => name,
        }
    }
}

/// Opens the port described by `spec` as `n` instances, one per PMD thread (see the module
/// documentation). How each kind divides its queues:
///
/// - tap / internal: the device gets one `IFF_MULTI_QUEUE` queue per instance (times
///   [`TapConfig::n_queues`]); the kernel steers each frame to one queue by flow hash.
/// - system over AF_PACKET: one socket per instance (times
///   [`AfPacketConfig::n_queues`](crate::AfPacketConfig::n_queues)), all in one
///   `PACKET_FANOUT_HASH` group; each instance transmits on its own socket.
/// - system over AF_XDP: one socket per device queue, queue `q` going to instance `q % n`;
///   instances beyond the number of queues get no receive queue (`n_rxq() == 0`) and transmit
///   through an AF_PACKET socket.
/// - dummy: one queue in memory, received by the first instance only; every instance
///   transmits into the one buffer of sent frames.
///
/// `n = 1` opens the port exactly as the kind's `open` does. `n = 0` is an error.
pub fn open_instances(spec: &PortSpec, n: usize) -> io::Result<Vec<Box<dyn Port>>> {
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a port needs at least one instance",
        ));
    }
    fn boxed<P: Port + 'static>(v: Vec<P>) -> Vec<Box<dyn Port>> {
        v.into_iter()
            .map(|p| Box::new(p) as Box<dyn Port>)
            .collect()
    }
    Ok(match spec {
        PortSpec::Tap(c) => boxed(TapPort::open_instances(c, n)?),
        PortSpec::Internal { bridge } => boxed(TapPort::internal_instances(bridge, n)?),
        PortSpec::System(c) => boxed(SystemPort::open_instances(c, n)?),
        PortSpec::VhostUser(c) => crate::vhost::open_instances(c, n)?,
        PortSpec::Replay(c) => (0..n)
            .map(|i| {
                let flows = if i == 0 { c.flows } else { 0 };
                let cfg = ReplayConfig { flows, ..c.clone() };
                Box::new(ReplayPort::new(cfg)) as Box<dyn Port>
            })
            .collect(),
        PortSpec::Patch { name, peer } => boxed(PatchPort::open_instances(name, peer, n)),
        PortSpec::Vxlan(c) => boxed(VxlanPort::open_instances(c, n)?),
        PortSpec::Dummy { name } => boxed(DummyPort::open_instances(name, n)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_and_others_are_refused() {
        for t in PortType::ALL {
            assert_eq!(t.as_str().parse::<PortType>(), Ok(t));
        }
        assert_eq!(PortType::default(), PortType::System);
        let e = "replay".parse::<PortType>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown port type \"replay\" (known: system, tap, internal, vhostuser, \
             vhostuserclient, patch, vxlan, dummy)"
        );
    }

    #[test]
    fn zero_instances_is_refused() {
        let spec = PortSpec::Internal {
            bridge: "br0".into(),
        };
        assert_eq!(spec.name(), "br0");
        let e = open_instances(&spec, 0).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn dummy_ports_need_no_device_and_receive_on_one_instance() {
        let spec = PortSpec::Dummy { name: "d0".into() };
        assert_eq!(spec.name(), "d0");
        let ports = open_instances(&spec, 2).unwrap();
        let rxqs: Vec<usize> = ports.iter().map(|p| p.n_rxq()).collect();
        assert_eq!(rxqs, [1, 0]);
        assert!(ports
            .iter()
            .all(|p| p.dummy().is_some() && p.kind() == crate::PortKind::Dummy));
    }

    #[test]
    fn missing_system_interface_fails() {
        let spec = PortSpec::System(SystemConfig::new("nosuchdev0"));
        assert!(open_instances(&spec, 2).is_err());
    }
}
