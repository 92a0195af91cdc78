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
//! Each burst is one `recvmmsg` or `sendmmsg`.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use flow_table::wire::{ethernet, l4, VxlanHeader};

use crate::batch::{PacketBatch, BATCH_SIZE};
use crate::packet::Packet;
use crate::pool::PacketPool;
use crate::port::{Burst, LinkWatch, Port, PortCounters, PortKind};
use crate::sys::{self, cvt, setsockopt, socket};

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

fn udp_socket(local: Ipv4Addr, port: u16) -> io::Result<OwnedFd> {
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
    let fd = sock.as_raw_fd();
    // Room for bursts while the PMD is busy elsewhere.
    let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &(4i32 << 20));
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
    Ok(sock)
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
                Ok(VxlanPort {
                    cfg: cfg.clone(),
                    sock: udp_socket(local, port)?,
                    receives: i == 0,
                    port_no: 0,
                    counters: Arc::clone(&counters),
                    up: Arc::clone(&up),
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
        pkt.adjust_head(VXLAN_HLEN as isize)
    }

    /// Encapsulates and sends a burst of at most [`BATCH_SIZE`] plain frames (offloads already
    /// resolved) with [`sys::send_mmsg`], freeing every buffer into `pool`; returns what
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
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
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
        for i in 0..n {
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name =
                (&dst as *const libc::sockaddr_in as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        }
        // SAFETY: msgs[..n] point at `dst` and at one iovec each into packets still held by
        // `batch`; all outlive the call. No control data.
        out += unsafe { sys::send_mmsg(self.sock.as_raw_fd(), &mut msgs[..n], &lens[..n]) };
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
mod tests {
    use super::*;
    use crate::pool::PoolConfig;

    /// Two ports on loopback, each the other's remote: a frame sent by one arrives at the
    /// other without its VXLAN header and with the VNI and source as metadata.
    #[test]
    fn loopback_round_trip_with_fixed_and_flow_keys() {
        let mut pool = PacketPool::new(PoolConfig {
            n_buffers: 64,
            ..PoolConfig::default()
        })
        .unwrap();
        let lo = Ipv4Addr::LOCALHOST;
        // Ports derived from the pid so parallel runs do not collide.
        let base = 20000 + (std::process::id() % 20000) as u16;
        let mut a_cfg = VxlanConfig::new("vxa", lo, Some(42));
        a_cfg.local_ip = Some(lo);
        a_cfg.dst_port = base;
        let mut b_cfg = VxlanConfig::new("vxb", lo, None);
        b_cfg.local_ip = Some(lo);
        b_cfg.dst_port = base;
        let mut a = VxlanPort::open_instances(&a_cfg, 1).unwrap().remove(0);
        // The same local address and port again is refused, with a clear reason.
        let e = VxlanPort::open_instances(&b_cfg, 1).err().unwrap();
        assert!(e.to_string().contains("in use"), "{e}");
        // b listens on base+1 and a sends there.
        b_cfg.dst_port = base + 1;
        let mut b = VxlanPort::open_instances(&b_cfg, 2).unwrap();
        assert_eq!(b[1].n_rxq(), 0, "only instance 0 receives");
        a.cfg.dst_port = base + 1;
        a.set_port_no(5);
        b[0].set_port_no(6);

        let frame: Vec<u8> = (0..60u8).collect();
        let mut batch = PacketBatch::new();
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(&frame));
        let _ = batch.push(p);
        a.tx_burst(0, &mut pool, &mut batch);
        assert_eq!(a.stats().tx_packets, 1, "{:?}", a.stats());

        let mut got = PacketBatch::new();
        for _ in 0..100 {
            if b[0].rx_burst(0, &mut pool, &mut got) > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let p = got.pop().expect("the datagram arrived");
        assert_eq!(p.data(), &frame[..]);
        assert_eq!(p.tun.id, 42);
        assert_eq!(p.tun.src, u32::from(lo));
        assert_eq!(p.in_port, 6);
        pool.free(p);

        // key=flow sends the packet's tun_id; a fixed-key receiver drops other VNIs.
        a.cfg.dst_port = base; // a listens on base
        b[1].cfg.dst_port = base;
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(&frame));
        p.tun.id = 7;
        let _ = batch.push(p);
        b[1].tx_burst(0, &mut pool, &mut batch);
        let mut got = PacketBatch::new();
        for _ in 0..20 {
            a.rx_burst(0, &mut pool, &mut got);
            if a.stats().rx_errors > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(got.is_empty(), "VNI 7 is not key 42");
        assert_eq!(a.stats().rx_errors, 1);
    }

    /// A GSO packet leaves as one datagram per segment, each with the VXLAN header.
    #[test]
    fn gso_packets_leave_as_segments() {
        use crate::gso::tests::{big_pool, payload_bytes, super_frame, Spec};
        let mut pool = big_pool(16);
        let lo = Ipv4Addr::LOCALHOST;
        let rx = std::net::UdpSocket::bind((lo, 0)).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        // Ports derived from the pid, away from the range the test above uses.
        let base = 40000 + (std::process::id() % 20000) as u16;
        let mut cfg = VxlanConfig::new("vxg", lo, Some(9));
        cfg.local_ip = Some(lo);
        cfg.dst_port = base;
        let mut a = VxlanPort::open_instances(&cfg, 1).unwrap().remove(0);
        a.cfg.dst_port = rx.local_addr().unwrap().port();
        let s = Spec {
            v6: true,
            vlans: 0,
            ip_opts: 0,
            flags: 0x19,
            mss: 1000,
        };
        let (frame, h) = super_frame(s, &payload_bytes(3500));
        let mut batch = PacketBatch::new();
        let mut p = pool.alloc().unwrap();
        assert!(p.set_data(&frame));
        p.vnet = Some(h);
        let _ = batch.push(p);
        a.tx_burst(0, &mut pool, &mut batch);
        assert_eq!(a.stats().tx_packets, 4, "{:?}", a.stats());
        assert_eq!(a.stats().tx_errors, 0);
        assert_eq!(pool.available(), 16);
        let hdrs = 14 + 40 + 32;
        let mut buf = [0u8; 4096];
        for want in [1000, 1000, 1000, 500] {
            let n = rx.recv(&mut buf).expect("a segment arrived");
            assert_eq!(n, VXLAN_HLEN + hdrs + want);
            assert_eq!(&buf[..8], &[l4::VXLAN_FLAG_I, 0, 0, 0, 0, 0, 9, 0]);
        }
    }
}
