//! A TCP stream forwarded between two namespaces by two AF_PACKET ports with virtio-net headers:
//! proves that checksum and GSO offload metadata travel with the packets (64 KB TCP segments
//! cross whole and arrive with correct checksums). The throughput of the same setup is measured
//! by the `tcp_forward` bench, not here.

mod common;
#[path = "common/tcp_forward.rs"]
mod tcp;

use common::*;

#[test]
fn tcp_crosses_afpacket_ports_with_offloads() {
    if !can_run("tcp_crosses_afpacket_ports_with_offloads") {
        return;
    }
    let t = tcp::topology();
    let fwd = tcp::Forwarder::start(&t);
    let (_, ok) = tcp::transfer(&t, 32 << 20);
    let (pkts, gso) = fwd.stop();
    assert!(ok, "bytes arrived intact");
    assert!(
        gso > 0,
        "GSO segments crossed whole ({pkts} packets forwarded)"
    );
}
