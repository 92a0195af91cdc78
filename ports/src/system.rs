//! `system` ports: an existing kernel interface, driven by AF_XDP when possible and AF_PACKET
//! otherwise.

use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;
use std::sync::Arc;

use crate::afpacket::{AfPacketConfig, AfPacketPort};
use crate::afxdp::{AfXdpConfig, AfXdpPort};
use crate::batch::PacketBatch;
use crate::netdev::NetDev;
use crate::pool::PacketPool;
use crate::port::{Burst, Port, PortCounters, PortKind};

/// Which socket type a `system` port uses (`mode=afxdp|afpacket|auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SystemMode {
    /// AF_XDP only; opening fails if it is not available.
    AfXdp,
    /// AF_PACKET only.
    AfPacket,
    /// AF_PACKET with the virtio-net header on veth interfaces, AF_XDP elsewhere, falling back
    /// to AF_PACKET when AF_XDP fails. See [`SystemPort::open`]; the choice is explained by
    /// [`SystemPort::selection_reason`].
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

/// Drivers on which `auto` mode uses AF_PACKET with the virtio-net header rather than AF_XDP.
///
/// A veth's peer hands frames over as socket buffers with their offload state: TCP/UDP sent
/// by the peer's stack (tx checksum offload is on by default) carry a partial checksum, and
/// TCP may come as 64 KB GSO frames. AF_XDP has no way to pass that state on, so such frames
/// would arrive with unfinished checksums and GSO would be impossible; AF_PACKET's virtio-net
/// header carries both.
pub const AUTO_AFPACKET_DRIVERS: &[&str] = &["veth"];

/// How to attach a `system` port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemConfig {
    /// Existing kernel interface.
    pub ifname: String,
    /// Socket type.
    pub mode: SystemMode,
    /// AF_XDP settings used in `afxdp` and `auto` modes (`ifname` is taken from above).
    pub afxdp: AfXdpConfig,
    /// AF_PACKET settings used in `afpacket` mode and by `auto` mode (`ifname` from above;
    /// `auto` always turns `vnet_hdr` on).
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
    selection_reason: Arc<str>,
    fallback_reason: Option<Arc<str>>,
}

impl SystemPort {
    /// Attaches to the interface in the configured mode.
    ///
    /// `afxdp` and `afpacket` use that socket type or fail. `auto` asks the driver's name
    /// ([`NetDev::driver`]): on a driver in [`AUTO_AFPACKET_DRIVERS`] (veth) it uses AF_PACKET
    /// with the virtio-net header, so checksum and GSO offloads work; elsewhere it tries AF_XDP
    /// and, if that fails, falls back to AF_PACKET, reporting the failure in the log (a `tracing`
    /// warning) and through [`fallback_reason`](Self::fallback_reason).
    /// [`selection_reason`](Self::selection_reason) always says why the port got its socket type.
    pub fn open(config: &SystemConfig) -> io::Result<SystemPort> {
        Self::open_instances(config, 1).map(|mut v| v.remove(0))
    }

    /// Opens the port as `n` instances, one per PMD thread, choosing the socket type as
    /// [`open`](Self::open) does (once, for all instances): see
    /// [`AfXdpPort::open_instances`] and [`AfPacketPort::open_instances`]. `n = 1` is `open`.
    pub fn open_instances(config: &SystemConfig, n: usize) -> io::Result<Vec<SystemPort>> {
        let mut xdp = config.afxdp.clone();
        xdp.ifname = config.ifname.clone();
        let mut pkt = config.afpacket.clone();
        pkt.ifname = config.ifname.clone();
        let afxdp = |xdp: &AfXdpConfig| -> io::Result<Vec<Inner>> {
            Ok(AfXdpPort::open_instances(xdp, n)?
                .into_iter()
                .map(Inner::AfXdp)
                .collect())
        };
        let afpacket = |pkt: &AfPacketConfig| -> io::Result<Vec<Inner>> {
            Ok(AfPacketPort::open_instances(pkt, n)?
                .into_iter()
                .map(Inner::AfPacket)
                .collect())
        };
        let ifname = &config.ifname;
        let (inner, why, fallback) = match config.mode {
            SystemMode::AfXdp => (afxdp(&xdp)?, "mode afxdp requested".to_owned(), None),
            SystemMode::AfPacket => (afpacket(&pkt)?, "mode afpacket requested".to_owned(), None),
            SystemMode::Auto => {
                // Auto's AF_PACKET is always the offload-capable one.
                pkt.vnet_hdr = true;
                let driver = NetDev::new(ifname)?.driver();
                match driver {
                    Ok(d) if AUTO_AFPACKET_DRIVERS.contains(&d.as_str()) => (
                        afpacket(&pkt)?,
                        format!(
                            "auto: {ifname} is a {d} device, whose peer hands over checksum \
                             and GSO offload state that AF_XDP would lose; using AF_PACKET \
                             with the virtio-net header"
                        ),
                        None,
                    ),
                    _ => {
                        let d = driver.unwrap_or_else(|e| format!("unknown ({e})"));
                        match afxdp(&xdp) {
                            Ok(v) => (v, format!("auto: {ifname} (driver {d}): AF_XDP"), None),
                            Err(e) => {
                                // One line at port creation.
                                tracing::warn!(
                                    port = %ifname,
                                    driver = %d,
                                    errno = e.raw_os_error(),
                                    "AF_XDP unavailable: {e}; falling back to AF_PACKET"
                                );
                                let f = format!("AF_XDP unavailable on {ifname}: {e}");
                                let why = format!(
                                    "auto: {ifname} (driver {d}): {f}; fell back to AF_PACKET"
                                );
                                (afpacket(&pkt)?, why, Some(f))
                            }
                        }
                    }
                }
            }
        };
        let why: Arc<str> = why.into();
        let fallback: Option<Arc<str>> = fallback.map(Into::into);
        Ok(inner
            .into_iter()
            .map(|inner| SystemPort {
                inner,
                selection_reason: Arc::clone(&why),
                fallback_reason: fallback.clone(),
            })
            .collect())
    }

    /// Why `auto` mode fell back to AF_PACKET after AF_XDP failed, if it did. (Choosing
    /// AF_PACKET on a veth is a selection, not a fallback: see
    /// [`selection_reason`](Self::selection_reason).)
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Why the port uses the socket type it does (requested mode, `auto`'s driver-based choice,
    /// or `auto`'s fallback), for logs and the management interface.
    pub fn selection_reason(&self) -> &str {
        &self.selection_reason
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
    fn tx_burst(&mut self, qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        match &mut self.inner {
            Inner::AfXdp(p) => p.tx_burst(qid, pool, batch),
            Inner::AfPacket(p) => p.tx_burst(qid, pool, batch),
        }
    }
    fn counters(&self) -> Arc<PortCounters> {
        self.port().counters()
    }
    fn netdev(&self) -> Option<&NetDev> {
        self.port().netdev()
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
