//! VXLAN tunnel ports (RFC 7348) over a UDP socket of the host.
//!
//! The outer IPv4/UDP headers are the kernel's business: the port sends each inner frame,
//! behind an 8-byte VXLAN header, as the payload of a UDP datagram to `remote_ip:dst_port`, so
//! the host routes the outer packet and resolves its next hop's MAC address (as OVS's
//! userspace datapath does with its own route and ARP tables). Received datagrams lose their
//! VXLAN header and enter the switch with their VNI and outer source address as tunnel
//! metadata ([`Packet::tun`]), which rules match as `tun_id` and `tun_src`.
//!
//! With `key=flow` the VNI of a sent frame is its tunnel metadata (`set_tunnel:N` or
//! `set_field:N->tun_id`), and any VNI is received; with a fixed key only that VNI is received
//! and sent.
//!
//! Instance 0 owns the socket bound to `local_ip:dst_port` and receives; the other instances
//! (one per further PMD) only send, from a socket bound to `local_ip` and an ephemeral port.
//! Each burst is one `recvmmsg` or `sendmmsg`; with outer checksums on, runs of equal-length
//! datagrams (the segments of a TCP super-frame) go as one UDP GSO message each ([`tx`]).
//!
//! The outer headers follow OVS's tunnel options: `csum` (an outer UDP checksum; on by default,
//! unlike OVS and Linux's vxlan devices for IPv4, because the kernel takes UDP GSO only from a
//! socket with checksums; off is the socket's `SO_NO_CHECK`) and
//! `df_default` (the DF bit of the outer IPv4 header, on by default; the socket's
//! `IP_MTU_DISCOVER`: `IP_PMTUDISC_DO` sets DF and refuses datagrams beyond the path MTU,
//! `IP_PMTUDISC_DONT` clears it and lets the kernel fragment them).

mod tx;

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use flow_table::wire::l4::tcp::TcpHeader;
use flow_table::wire::{ethernet, l4, VxlanHeader};

use crate::batch::{PacketBatch, BATCH_SIZE};
use crate::checksum;
use crate::packet::{Packet, VnetHdr};
use crate::pool::PacketPool;
use crate::port::{Burst, LinkWatch, Port, PortCounters, PortKind};
use crate::sys::{cvt, setsockopt, socket};

/// The IANA port of VXLAN.
pub const VXLAN_PORT: u16 = l4::VXLAN_PORT;
/// Length of the VXLAN header.
const VXLAN_HLEN: usize = l4::VXLAN_HEADER_LEN;

/// How to open a VXLAN port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanConfig {
    /// Port name.
    pub name: String,
    /// The far end's address.
    pub remote_ip: Ipv4Addr,
    /// The address to send from and receive on (any address of the host when unspecified).
    pub local_ip: Option<Ipv4Addr>,
    /// The VNI, or `None` for `key=flow`.
    pub key: Option<u32>,
    /// UDP destination port (and local port).
    pub dst_port: u16,
    /// Outer UDP checksum (OVS's `csum`; default on, which UDP GSO needs).
    pub csum: bool,
    /// DF bit on the outer IPv4 header (OVS's `df_default`; default on).
    pub df: bool,
}

impl VxlanConfig {
    /// A port sending to `remote_ip` with a fixed VNI, on the standard UDP port.
    pub fn new(name: &str, remote_ip: Ipv4Addr, key: Option<u32>) -> VxlanConfig {
        VxlanConfig {
            name: name.to_owned(),
            remote_ip,
            local_ip: None,
            key,
            dst_port: VXLAN_PORT,
            csum: true,
            df: true,
        }
    }
}

/// One PMD's instance of a VXLAN port.
pub struct VxlanPort {
    cfg: VxlanConfig,
    sock: OwnedFd,
    /// Instance 0 receives; the others only send.
    receives: bool,
    port_no: u32,
    counters: Arc<PortCounters>,
    up: Arc<std::sync::atomic::AtomicBool>,
    /// Runs of equal-length datagrams go as one UDP GSO message (needs `csum`).
    gso: bool,
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// `SO_NO_CHECK` of `<asm-generic/socket.h>` (not in every libc target).
const SO_NO_CHECK: i32 = 11;

/// Opens the UDP socket of a port instance bound to `local:port` with the outer header options
/// of `cfg`; also tells whether it takes UDP GSO.
fn udp_socket(cfg: &VxlanConfig, local: Ipv4Addr, port: u16) -> io::Result<(OwnedFd, bool)> {
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
    let fd = sock.as_raw_fd();
    // Room for bursts while the PMD is busy elsewhere.
    let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &(4i32 << 20));
    let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &(4i32 << 20));
    setsockopt(fd, libc::SOL_SOCKET, SO_NO_CHECK, &i32::from(!cfg.csum))?;
    let pmtu = if cfg.df {
        libc::IP_PMTUDISC_DO
    } else {
        libc::IP_PMTUDISC_DONT
    };
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, &pmtu)?;
    // The kernel refuses UDP GSO without checksums; an old kernel does not know the option.
    let gso = cfg.csum && setsockopt(fd, libc::SOL_UDP, tx::UDP_SEGMENT, &0i32).is_ok();
    let addr = sockaddr(local, port);
    // SAFETY: `addr` is a valid sockaddr_in of the given length for the duration of the call.
    cvt(unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })
    .map_err(|e| {
        if e.raw_os_error() == Some(libc::EADDRINUSE) {
            io::Error::new(
                e.kind(),
                format!(
                    "UDP {local}:{port} is in use (another vxlan port or a kernel vxlan device \
                     on this address; give each tunnel its own local_ip)"
                ),
            )
        } else {
            e
        }
    })?;
    Ok((sock, gso))
}

impl VxlanPort {
    /// Opens `n` instances (see the module documentation).
    pub fn open_instances(cfg: &VxlanConfig, n: usize) -> io::Result<Vec<VxlanPort>> {
        if cfg.key.is_some_and(|k| k >= 1 << 24) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a VXLAN key (VNI) has 24 bits",
            ));
        }
        let local = cfg.local_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let counters = PortCounters::new_shared();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        (0..n)
            .map(|i| {
                let port = if i == 0 { cfg.dst_port } else { 0 };
                let (sock, gso) = udp_socket(cfg, local, port)?;
                Ok(VxlanPort {
                    cfg: cfg.clone(),
                    sock,
                    receives: i == 0,
                    port_no: 0,
                    counters: Arc::clone(&counters),
                    up: Arc::clone(&up),
                    gso,
                })
            })
            .collect()
    }

    /// Checks and strips the VXLAN header of a received datagram, setting the tunnel
    /// metadata; false when the packet is to be dropped.
    fn decap(&self, pkt: &mut Packet, src: u32) -> bool {
        let d = pkt.data();
        if d.len() < VXLAN_HLEN + ethernet::HEADER_LEN {
            return false;
        }
        let Some(vni) = VxlanHeader::new(d, 0)
            .filter(|h| h.vni_valid())
            .map(|h| h.vni())
        else {
            return false;
        };
        if self.cfg.key.is_some_and(|k| k != vni) {
            return false;
        }
        pkt.tun.id = vni as u64;
        pkt.tun.src = src;
        pkt.tun.dst = self.cfg.local_ip.map_or(0, u32::from);
        if !pkt.adjust_head(VXLAN_HLEN as isize) {
            return false;
        }
        // A sender on this host (a vxlan device behind a veth) may have left the inner
        // checksum, and segmentation, for its device to do; say so, as a tap would, so that
        // outputs that cannot carry that do it.
        pkt.vnet = checksum::unfinished_l4(pkt.data()).map(|p| self.inner_offloads(pkt.data(), p));
        true
    }

    /// The virtio-net header for a received inner frame whose checksum is partial. A TCP frame
    /// larger than the tunnel's MTU is a super-frame its sender left for the device to segment
    /// (a veth carries it whole, tunnel and all, into this host's UDP socket): it is cut at the
    /// tunnel's MTU, as the sender's MSS is not on the wire and a TCP stream may be cut anywhere.
    /// A UDP one is not (its datagram boundaries are unknown): outputs that cannot take it
    /// drop it.
    fn inner_offloads(&self, frame: &[u8], p: checksum::Partial) -> VnetHdr {
        let mut h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            csum_start: p.start,
            csum_offset: p.offset,
            ..VnetHdr::default()
        };
        let (l3, l4) = (usize::from(p.l3), usize::from(p.start));
        let mtu = self.mtu() as usize;
        if !p.tcp || frame.len() - l3 <= mtu {
            return h;
        }
        let Some(tcp) = TcpHeader::new(frame, l4) else {
            return h;
        };
        let hdr = l4 + tcp.header_len();
        if hdr >= frame.len() || mtu <= hdr - l3 {
            return h;
        }
        h.gso_type = if p.v6 {
            VnetHdr::GSO_TCPV6
        } else {
            VnetHdr::GSO_TCPV4
        };
        if tcp.flags_byte() & l4::tcp::CWR != 0 {
            h.gso_type |= VnetHdr::GSO_ECN;
        }
        h.gso_size = (mtu - (hdr - l3)) as u16;
        h.hdr_len = hdr as u16;
        h
    }

    /// Encapsulates and sends a burst of at most [`BATCH_SIZE`] plain frames (offloads already
    /// resolved) with [`tx::send_datagrams`], freeing every buffer into `pool`; returns what
    /// happened.
    fn send_frames(&self, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        let mut out = Burst::default();
        // VXLAN header in each packet's headroom.
        let key = self.cfg.key;
        batch.retain(
            |p| {
                let vni = key.unwrap_or(p.tun.id as u32) & 0x00ff_ffff;
                let Some(mut h) = p
                    .prepend(VXLAN_HLEN)
                    .and_then(|h| VxlanHeader::new_mut(h, 0))
                else {
                    return false;
                };
                h.fill(vni);
                true
            },
            |p| {
                out.errors += 1;
                pool.free(p);
            },
        );
        if batch.is_empty() {
            return out;
        }
        let dst = sockaddr(self.cfg.remote_ip, self.cfg.dst_port);
        // SAFETY: plain C data; all-zero is valid and the used entries are filled below.
        let mut iov: [libc::iovec; BATCH_SIZE] = unsafe { std::mem::zeroed() };
        let mut lens = [0usize; BATCH_SIZE];
        let mut n = 0;
        for p in batch.iter().take(BATCH_SIZE) {
            iov[n] = libc::iovec {
                iov_base: p.data().as_ptr() as *mut _,
                iov_len: p.len(),
            };
            lens[n] = p.len() - VXLAN_HLEN;
            n += 1;
        }
        // SAFETY: iov[..n] point into packets still held by `batch`, alive for the call.
        out += unsafe {
            tx::send_datagrams(
                self.sock.as_raw_fd(),
                &dst,
                &mut iov[..n],
                &lens[..n],
                self.gso,
            )
        };
        pool.free_batch(batch);
        out
    }
}

impl Port for VxlanPort {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Vxlan
    }

    fn n_rxq(&self) -> usize {
        usize::from(self.receives)
    }

    fn n_txq(&self) -> usize {
        1
    }

    fn port_no(&self) -> u32 {
        self.port_no
    }

    fn set_port_no(&mut self, port_no: u32) {
        self.port_no = port_no;
    }

    fn rx_burst(&mut self, _qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> usize {
        if !self.receives {
            return 0;
        }
        let want = batch.space().min(BATCH_SIZE);
        let mut pkts: [Option<Packet>; BATCH_SIZE] = Default::default();
        // SAFETY: plain C data; all-zero is valid and the used entries are filled below.
        let mut iov: [libc::iovec; BATCH_SIZE] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut addrs: [libc::sockaddr_in; BATCH_SIZE] = unsafe { std::mem::zeroed() };
        let mut n = 0;
        while n < want {
            let Some(mut p) = pool.alloc() else { break };
            let off = p.headroom();
            let buf = &mut p.buffer_mut()[off..];
            iov[n] = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            pkts[n] = Some(p);
            n += 1;
        }
        for i in 0..n {
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        }
        let got = if n == 0 {
            0
        } else {
            // SAFETY: msgs[..n] point at iovecs into buffers held by `pkts` and at `addrs`,
            // all alive for the call.
            let r = unsafe {
                libc::recvmmsg(
                    self.sock.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    n as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            r.max(0) as usize
        };
        let (mut taken, mut bytes, mut bad) = (0, 0u64, 0u64);
        for (i, slot) in pkts.iter_mut().enumerate().take(n) {
            let Some(mut p) = slot.take() else { continue };
            if i >= got {
                pool.free(p);
                continue;
            }
            let len = msgs[i].msg_len as usize;
            let truncated = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let off = p.headroom();
            p.set_bounds(off, len);
            let src = u32::from_be(addrs[i].sin_addr.s_addr);
            if truncated || !self.decap(&mut p, src) {
                bad += 1;
                pool.free(p);
                continue;
            }
            p.in_port = self.port_no;
            bytes += p.len() as u64;
            taken += 1;
            if let Err(p) = batch.push(p) {
                pool.free(p);
            }
        }
        self.counters.add_rx(&Burst {
            packets: taken as u64,
            bytes,
            dropped: 0,
            errors: bad,
        });
        taken
    }

    fn tx_burst(&mut self, _qid: usize, pool: &mut PacketPool, batch: &mut PacketBatch) -> Burst {
        // The datagram carries a plain frame: finish partial checksums and segment GSO
        // packets first; what cannot be resolved counts as an error.
        let this = &*self;
        batch.send_resolved(
            pool,
            &self.counters,
            |_| false,
            |pool, burst| this.send_frames(pool, burst),
        )
    }

    fn counters(&self) -> Arc<PortCounters> {
        Arc::clone(&self.counters)
    }

    /// Inner frames must fit a 1500-byte underlay with the 50 bytes of outer headers.
    fn mtu(&self) -> u32 {
        1450
    }

    fn mac(&self) -> [u8; 6] {
        [0; 6]
    }

    fn link_up(&self) -> bool {
        true
    }

    fn rx_polls_by_syscall(&self) -> bool {
        true
    }

    fn link_watch(&self) -> LinkWatch {
        LinkWatch::Connected(Arc::clone(&self.up))
    }

    fn rx_fd(&self, qid: usize) -> Option<RawFd> {
        (self.receives && qid == 0).then(|| self.sock.as_raw_fd())
    }
}

#[cfg(test)]
mod tests;
