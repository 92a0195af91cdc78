//! Patch ports in the PMD: packets sent to a patch port continue, in the same PMD iteration,
//! in the pipeline of the peer bridge as if received on the peer port. No kernel interface and
//! no copy: the packets stay in this PMD's pool.
//!
//! A chain of patch ports is followed to [`MAX_PATCH_DEPTH`] bridges; beyond that (a loop of
//! patch ports) packets are dropped, as OVS bounds its recursion.

use ports::{PacketBatch, BATCH_SIZE};

use super::Pmd;
use crate::datapath::stats::DropReason;

/// Bridges a packet may cross through patch ports from the one it entered.
pub(crate) const MAX_PATCH_DEPTH: usize = 8;

impl Pmd {
    /// Sends the packets waiting in the patch ports of bridge `b` through their peer bridges.
    pub(super) fn deliver_patches(&mut self, b: usize, now: u64, depth: usize) {
        for p in 0..self.bridges[b].ports.len() {
            let port = &mut self.bridges[b].ports[p];
            if port.port.patch().is_none() {
                continue;
            }
            // Packets queued for the patch port reach its outbox.
            port.flush(&mut self.pool);
            let Some(patch) = port.port.patch() else {
                continue;
            };
            if !patch.has_outbox() {
                continue;
            }
            let peer = patch.peer();
            let mut pkts = std::mem::take(&mut self.patch_spares[depth]);
            patch.take_outbox(&mut pkts);
            let target = peer.and_then(|(bridge, port_no)| {
                let b2 = self.bridges.iter().position(|x| x.shared.id == bridge)?;
                let p2 = self.bridges[b2]
                    .ports
                    .iter()
                    .position(|x| x.port_no == port_no)?;
                Some((b2, p2))
            });
            match target {
                Some((b2, p2)) if depth + 1 < MAX_PATCH_DEPTH => {
                    let bytes: u64 = pkts.iter().map(|p| p.len() as u64).sum();
                    if let Some(peer) = self.bridges[b2].ports[p2].port.patch() {
                        peer.count_rx(pkts.len() as u64, bytes);
                    }
                    // The PMD's receive batch is free here (`poll_queue` has put it back).
                    let mut batch = self
                        .rx_batch
                        .take()
                        .unwrap_or_else(|| Box::new(PacketBatch::new()));
                    let mut it = pkts.drain(..);
                    loop {
                        for pkt in it.by_ref().take(BATCH_SIZE) {
                            let _ = batch.push(pkt);
                        }
                        if batch.is_empty() {
                            break;
                        }
                        self.process(b2, p2, &mut batch, now);
                        self.pool.free_batch(&mut batch);
                    }
                    drop(it);
                    self.rx_batch = Some(batch);
                    let br = &mut self.bridges[b2];
                    for port in &mut br.ports {
                        port.flush(&mut self.pool);
                    }
                    if br.n_patch > 0 {
                        self.patch_spares[depth] = pkts;
                        self.deliver_patches(b2, now, depth + 1);
                        continue;
                    }
                }
                _ => {
                    self.local.drop(DropReason::NoPort, pkts.len() as u64);
                    for pkt in pkts.drain(..) {
                        self.pool.free(pkt);
                    }
                }
            }
            self.patch_spares[depth] = pkts;
        }
    }
}
