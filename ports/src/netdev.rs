//! Interface queries and settings through the classic `SIOC*IF*` ioctls.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::{cvt, ifreq, socket};

/// A handle on a kernel network interface by name, in the network namespace the handle was
/// created in (the ioctls act on the namespace of their socket).
#[derive(Debug)]
pub struct NetDev {
    name: String,
    sock: OwnedFd,
}

impl NetDev {
    /// A handle on interface `name` (which need not exist yet).
    pub fn new(name: &str) -> io::Result<NetDev> {
        crate::sys::ifname(name)?;
        // Any socket will do for these ioctls; a datagram socket needs no privilege.
        let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
        Ok(NetDev {
            name: name.to_owned(),
            sock,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn ioctl(&self, req: libc::c_ulong, ifr: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: callers only pass requests that read/write the `ifreq` itself (no pointer
        // members), and it lives for the whole call.
        cvt(unsafe { libc::ioctl(self.sock.as_raw_fd(), req as _, ifr as *mut libc::ifreq) })
            .map(drop)
    }

    /// The interface index.
    pub fn ifindex(&self) -> io::Result<u32> {
        let mut r = ifreq(&self.name)?;
        self.ioctl(libc::SIOCGIFINDEX, &mut r)?;
        // SAFETY: SIOCGIFINDEX filled the `ifru_ifindex` member of the union.
        Ok(unsafe { r.ifr_ifru.ifru_ifindex } as u32)
    }

    /// The MTU.
    pub fn mtu(&self) -> io::Result<u32> {
        let mut r = ifreq(&self.name)?;
        self.ioctl(libc::SIOCGIFMTU, &mut r)?;
        // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
        Ok(unsafe { r.ifr_ifru.ifru_mtu } as u32)
    }

    /// Sets the MTU.
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        let mut r = ifreq(&self.name)?;
        r.ifr_ifru.ifru_mtu = mtu as i32;
        self.ioctl(libc::SIOCSIFMTU, &mut r)
    }

    /// The MAC address.
    pub fn mac(&self) -> io::Result<[u8; 6]> {
        let mut r = ifreq(&self.name)?;
        self.ioctl(libc::SIOCGIFHWADDR, &mut r)?;
        // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member.
        let sa = unsafe { r.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (m, &b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = b as u8;
        }
        Ok(mac)
    }

    /// The `IFF_*` flags.
    pub fn flags(&self) -> io::Result<u32> {
        let mut r = ifreq(&self.name)?;
        self.ioctl(libc::SIOCGIFFLAGS, &mut r)?;
        // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member.
        Ok(unsafe { r.ifr_ifru.ifru_flags } as u16 as u32)
    }

    fn update_flags(&self, set: u32, clear: u32) -> io::Result<()> {
        let old = self.flags()?;
        let new = (old | set) & !clear;
        if new == old {
            return Ok(());
        }
        let mut r = ifreq(&self.name)?;
        r.ifr_ifru.ifru_flags = new as u16 as i16;
        self.ioctl(libc::SIOCSIFFLAGS, &mut r)
    }

    /// Brings the interface administratively up.
    pub fn set_up(&self) -> io::Result<()> {
        self.update_flags(libc::IFF_UP as u32, 0)
    }

    /// Turns promiscuous mode on or off.
    pub fn set_promisc(&self, on: bool) -> io::Result<()> {
        let f = libc::IFF_PROMISC as u32;
        if on {
            self.update_flags(f, 0)
        } else {
            self.update_flags(0, f)
        }
    }

    /// Up and with carrier (`IFF_UP` and `IFF_RUNNING`); false if the interface is gone.
    pub fn link_up(&self) -> bool {
        let want = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
        self.flags().map(|f| f & want == want).unwrap_or(false)
    }

    /// Number of receive queues: the driver's channel counts (`ETHTOOL_GCHANNELS`), else sysfs
    /// (which only shows the namespace sysfs was mounted in), else 1.
    pub fn n_rx_queues(&self) -> usize {
        if let Some(n) = self.channels_rx() {
            return n.max(1);
        }
        std::fs::read_dir(format!("/sys/class/net/{}/queues", self.name))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count()
                    .max(1)
            })
            .unwrap_or(1)
    }

    /// The name of the interface's driver (`veth`, `tun`, `ixgbe`, …) from `ETHTOOL_GDRVINFO`.
    /// An ioctl rather than the `/sys/class/net/IF/device/driver` link because it answers in the
    /// namespace of the handle's socket (sysfs shows the namespace it was mounted in) and
    /// covers virtual devices, which have no `device` link. Fails for devices whose driver
    /// does not implement the query (e.g. loopback).
    pub fn driver(&self) -> io::Result<String> {
        const ETHTOOL_GDRVINFO: u32 = 0x03;
        // struct ethtool_drvinfo (linux/ethtool.h). Only `driver` is read; the other fields
        // give the kernel the size it writes.
        #[repr(C)]
        #[allow(dead_code)]
        struct DrvInfo {
            cmd: u32,
            driver: [u8; 32],
            version: [u8; 32],
            fw_version: [u8; 32],
            bus_info: [u8; 32],
            erom_version: [u8; 32],
            reserved2: [u8; 12],
            n_priv_flags: u32,
            n_stats: u32,
            testinfo_len: u32,
            eedump_len: u32,
            regdump_len: u32,
        }
        // SAFETY: plain integers and byte arrays; all-zero is valid.
        let mut info: DrvInfo = unsafe { std::mem::zeroed() };
        info.cmd = ETHTOOL_GDRVINFO;
        let mut r = ifreq(&self.name)?;
        r.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
        // SAFETY: SIOCETHTOOL reads the `ifreq` and the command buffer its `ifru_data` points
        // to; `info` is that buffer, laid out as the kernel's `ethtool_drvinfo`, and both live
        // across the call.
        cvt(unsafe {
            libc::ioctl(
                self.sock.as_raw_fd(),
                libc::SIOCETHTOOL as _,
                &mut r as *mut libc::ifreq,
            )
        })?;
        let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
        Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
    }

    /// Receive plus combined channels as the driver reports them.
    fn channels_rx(&self) -> Option<usize> {
        // struct ethtool_channels: cmd, then max_{rx,tx,other,combined}, then
        // {rx,tx,other,combined}_count, all u32.
        const ETHTOOL_GCHANNELS: u32 = 0x3c;
        let mut ch = [0u32; 9];
        ch[0] = ETHTOOL_GCHANNELS;
        let mut r = ifreq(&self.name).ok()?;
        r.ifr_ifru.ifru_data = ch.as_mut_ptr().cast();
        // SAFETY: SIOCETHTOOL reads the `ifreq` and the command buffer its `ifru_data` points
        // to; `ch` is that buffer, as large as ETHTOOL_GCHANNELS needs, and both live across
        // the call.
        let ret = unsafe {
            libc::ioctl(
                self.sock.as_raw_fd(),
                libc::SIOCETHTOOL as _,
                &mut r as *mut libc::ifreq,
            )
        };
        cvt(ret).ok()?;
        let n = ch[5] as usize + ch[8] as usize;
        (n > 0).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_queryable() {
        let lo = NetDev::new("lo").unwrap();
        assert_eq!(lo.ifindex().unwrap(), 1);
        assert!(lo.mtu().unwrap() > 0);
        assert_eq!(lo.mac().unwrap(), [0; 6]);
        assert!(lo.flags().unwrap() & libc::IFF_LOOPBACK as u32 != 0);
    }

    #[test]
    fn bad_names_are_rejected() {
        assert!(NetDev::new("").is_err());
        assert!(NetDev::new("a-name-far-too-long").is_err());
        let gone = NetDev::new("nosuchdev0").unwrap();
        assert!(gone.ifindex().is_err());
        assert!(!gone.link_up());
        assert!(gone.driver().is_err());
    }
}
