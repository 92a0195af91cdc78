//! `system` ports: an existing kernel interface, driven by AF_XDP when possible and AF_PACKET
//! otherwise.

use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;
use std::sync::Arc;

use crate::afpacket::{AfPacketConfig, AfPacketPort};
use crate::afxdp::{AfXdpConfig, AfXdpPort};
use crate::batch::PacketBatch;
use crate::pool::PacketPool;
use crate::port::{Port, PortCounters, PortKind};

/// Which socket type a `system` port uses (`mode=afxdp|afpacket|auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SystemMode {
    /// AF_XDP only; opening fails if it is not available.
    AfXdp,
    /// AF_PACKET only.
    AfPacket,
    /// AF_XDP, falling back to AF_PACKET (the reason is kept in
    /// [`SystemPort::fallback_reason`]).
    #[default]
    Auto,
}

impl FromStr for SystemMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "afxdp" => Ok(SystemMode::AfXdp),
            "afpacket" => Ok(SystemMode::AfPacket),
            "auto" => Ok(SystemMode::Auto),
            _ => Err(format!(
                "unknown system port mode {s:?} (expected afxdp, afpacket or auto)"
            )),
        }
    }
}

/// How to attach a `system` port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemConfig {
    /// Existing kernel interface.
    pub ifname: String,
    /// Socket type.
    pub mode: SystemMode,
    /// AF_XDP settings used in `afxdp` and `auto` modes (`ifname` is taken from above).
    pub afxdp: AfXdpConfig,
    /// AF_PACKET settings used in `afpacket` mode and as the fallback (`ifname` from above).
    pub afpacket: AfPacketConfig,
}

impl SystemConfig {
    /// `auto` mode with default socket settings.
    pub fn new(ifname: &str) -> SystemConfig {
        SystemConfig {
            ifname: ifname.to_owned(),
            mode: SystemMode::Auto,
            afxdp: AfXdpConfig::new(ifname),
            afpacket: AfPacketConfig::new(ifname),
        }
    }
}

enum Inner {
    AfXdp(AfXdpPort),
    AfPacket(AfPacketPort),
}

/// A `system` port: AF_XDP or AF_PACKET on an existing interface.
pub struct SystemPort {
    inner: Inner,
    fallback_reason: Option<String>,
}

impl SystemPort {
    /// Attaches to the interface in the configured mode. In `auto` mode a failed AF_XDP attempt
    /// is reported on stderr and through [`fallback_reason`](Self::fallback_reason).
    pub fn open(config: &SystemConfig) -> io::Result<SystemPort> {
        let mut xdp = config.afxdp.clone();
        xdp.ifname = config.ifname.clone();
        let mut pkt = config.afpacket.clone();
        pkt.ifname = config.ifname.clone();
        let (inner, fallback_reason) = match config.mode {
            SystemMode::AfXdp => (Inner::AfXdp(AfXdpPort::open(&xdp)?), None),
            SystemMode::AfPacket => (Inner::AfPacket(AfPacketPort::open(&pkt)?), None),
            SystemMode::Auto => match AfXdpPort::open(&xdp) {
                Ok(p) => (Inner::AfXdp(p), None),
                Err(e) => {
                    let why = format!("AF_XDP unavailable on {}: {e}", config.ifname);
                    // The switch has no logger dependency here; one line at port creation.
                    eprintln!("ports: {why}; falling back to AF_PACKET");
                    (Inner::AfPacket(AfPacketPort::open(&pkt)?), Some(why))
                }
            },
        };
        Ok(SystemPort {
            inner,
            fallback_reason,
        })
    }

    /// Why `auto` mode fell back to AF_PACKET, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    fn port(&self) -> &dyn Port {
        match &self.inner {
            Inner::AfXdp(p) => p,
            Inner::AfPacket(p) => p,
        }
    }

    fn port_mut(&mut self) -> &mut dyn Port {
        match &mut self.inner {
            Inner::AfXdp(p) => p,
            Inner::AfPacket(p) => p,
        }
    }
}

impl Port for SystemPort {
    fn name(&self) -> &str {
        self.port().name()
    }
    fn kind(&self) -> PortKind {
        self.port().kind()
    }
    fn n_rxq(&self) -> usize {
        self.port().n_rxq()
    }
    fn n_txq(&self) -> usize {
        self.port().n_txq()
    }
    fn port_no(&self) -> u32 {
        self.port().port_no()
    }
    fn set_port_no(&mut self, port_no: u32) {
        self.port_mut().set_port_no(port_no)
    }
    fn rx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> usize {
        // Static dispatch on the hot path.
        match &mut self.inner {
            Inner::AfXdp(p) => p.rx_burst(qid, pool, batch),
            Inner::AfPacket(p) => p.rx_burst(qid, pool, batch),
        }
    }
    fn tx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) {
        match &mut self.inner {
            Inner::AfXdp(p) => p.tx_burst(qid, pool, batch),
            Inner::AfPacket(p) => p.tx_burst(qid, pool, batch),
        }
    }
    fn counters(&self) -> Arc<PortCounters> {
        self.port().counters()
    }
    fn mtu(&self) -> u32 {
        self.port().mtu()
    }
    fn mac(&self) -> [u8; 6] {
        self.port().mac()
    }
    fn link_up(&self) -> bool {
        self.port().link_up()
    }
    fn rx_fd(&self, qid: usize) -> Option<RawFd> {
        self.port().rx_fd(qid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parsing() {
        assert_eq!("afxdp".parse(), Ok(SystemMode::AfXdp));
        assert_eq!("afpacket".parse(), Ok(SystemMode::AfPacket));
        assert_eq!("auto".parse(), Ok(SystemMode::Auto));
        assert!("dpdk".parse::<SystemMode>().is_err());
        assert_eq!(SystemMode::default(), SystemMode::Auto);
    }

    #[test]
    fn missing_interface_fails_in_every_mode() {
        for mode in [SystemMode::AfXdp, SystemMode::AfPacket, SystemMode::Auto] {
            let mut c = SystemConfig::new("nosuchdev0");
            c.mode = mode;
            assert!(SystemPort::open(&c).is_err());
        }
    }
}
