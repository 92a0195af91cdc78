//! Stage 1 of a burst: parse every frame into a flow key, then hash the keys.
//!
//! Stage by stage over the burst rather than packet by packet: hashing a key right after the
//! narrow stores that built it stalls on store forwarding, and the EMC slots of the whole
//! burst are fetched while the other keys hash.

use flow_table::{extract_checked, FlowCache};
use ports::PacketBatch;

use super::burst::BurstScratch;

/// Fills `s` with the keys (and, for bursts that consult the EMC, the hashes) of the packets
/// of `batch`, received on port number `in_port`, and starts the burst in `cache`. Bursts that
/// skip the EMC (see `FlowCache::begin_burst`) skip hashing too. Frames the parser rejects are
/// marked invalid, for the next stage to drop.
#[inline]
pub(super) fn extract_burst(
    s: &mut BurstScratch,
    batch: &PacketBatch,
    in_port: u32,
    cache: &mut FlowCache,
) {
    let n = batch.len();
    s.n = n;
    s.in_port = in_port;
    s.valid = [false; ports::BATCH_SIZE];
    for ((key, ok), pkt) in s.keys.iter_mut().zip(&mut s.valid).zip(batch.iter()) {
        *ok = extract_checked(pkt.data(), in_port, key);
        // Tunnel metadata from a decapsulating port (zero otherwise).
        key.tun_id = pkt.tun.id;
        key.tun_src = pkt.tun.src;
        key.tun_dst = pkt.tun.dst;
    }
    if cache.begin_burst() {
        for (h, key) in s.hashes.iter_mut().zip(&s.keys[..n]) {
            *h = key.hash();
            cache.emc.prefetch(*h);
        }
    }
}
