//! UDP segmentation offload (USO): which frames ask for it, and which kernels take it whole.
//!
//! A sender using `UDP_SEGMENT` (QUIC stacks, WireGuard) writes one UDP "super-datagram" that
//! stands for many datagrams of `gso_size` payload bytes each (the last one shorter). On a device
//! with `tx-udp-segmentation` (veth, a tap with `TUN_F_USO4/6`) it reaches the switch whole, with
//! a [`VnetHdr`] of `gso_type` [`VnetHdr::GSO_UDP_L4`]. Ports that cannot carry it get the
//! datagrams, made by the same segmentation as TCP ([`Segmenter`](super::Segmenter)).

use std::sync::OnceLock;

use crate::packet::VnetHdr;

/// True if `h` asks for UDP segmentation (`GSO_UDP_L4`; the older UFO, `GSO_UDP`, is not it).
#[inline]
pub fn is_udp_gso(h: &VnetHdr) -> bool {
    h.gso_type & !VnetHdr::GSO_ECN == VnetHdr::GSO_UDP_L4
}

/// Whether the running kernel takes `GSO_UDP_L4` in the virtio-net header of a frame written
/// to a tap or an AF_PACKET socket: `virtio_net_hdr_to_skb` knows it from Linux 6.2 on and
/// refuses it (`EINVAL`, a transmit error) before. Read once.
pub fn kernel_takes_uso() -> bool {
    static TAKES: OnceLock<bool> = OnceLock::new();
    *TAKES.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        release_at_least(&release, (6, 2))
    })
}

/// Whether kernel release string `r` ("6.18.44-...") is at least `want` (major, minor).
fn release_at_least(r: &str, want: (u32, u32)) -> bool {
    let mut it = r
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= want,
        _ => false,
    }
}

/// What a kernel tap or AF_PACKET socket with virtio-net headers takes as it is: every offload,
/// except UDP segmentation on kernels that predate it ([`kernel_takes_uso`]).
pub(crate) fn kernel_takes(h: &VnetHdr) -> bool {
    !is_udp_gso(h) || kernel_takes_uso()
}

#[cfg(test)]
pub(crate) mod tests;
