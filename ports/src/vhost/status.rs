//! What a vhost-user port tells people about its VM: connected or not, which queues run, and
//! why none does.

use std::sync::atomic::Ordering;

use super::config::VhostMode;
use super::device::Device;
use crate::port::PeerStatus;

impl PeerStatus for Device {
    fn mtu(&self) -> Option<u32> {
        match self.guest_mtu.load(Ordering::Relaxed) {
            0 => Some(self.cfg.mtu_request.unwrap_or(1500)),
            m => Some(m),
        }
    }

    fn link_up(&self) -> bool {
        self.connected.load(Ordering::Acquire) && self.rx_ready.load(Ordering::Relaxed) != 0
    }

    fn status(&self) -> String {
        let pairs = self.queue_pairs();
        let mut s = if !self.connected.load(Ordering::Acquire) {
            match self.cfg.mode {
                VhostMode::Server => {
                    format!("waiting for a VM on {}", self.cfg.socket.display())
                }
                VhostMode::Client => {
                    format!(
                        "connecting to {} (no VM listening)",
                        self.cfg.socket.display()
                    )
                }
            }
        } else {
            let rx = self.rx_ready.load(Ordering::Relaxed).count_ones();
            let tx = self.tx_ready.load(Ordering::Relaxed).count_ones();
            if rx == 0 && tx == 0 {
                if self.features.load(Ordering::Relaxed) == 0 {
                    "VM connected; its driver has not started the device".to_owned()
                } else {
                    "VM connected, but no queue runs: nothing is forwarded".to_owned()
                }
            } else {
                let count = |vq: usize| self.vq_packets[vq].load(Ordering::Relaxed);
                let per_pair = |first: usize| {
                    (0..pairs)
                        .map(|q| count(2 * q + first))
                        .filter(|&n| n > 0)
                        .count()
                };
                format!(
                    "VM connected; queues running: rx {rx}/{pairs}, tx {tx}/{pairs}; \
                     queues that carried packets: to the guest {}, from the guest {}",
                    per_pair(0),
                    per_pair(1)
                )
            }
        };
        let mtu = self.guest_mtu.load(Ordering::Relaxed);
        if mtu != 0 {
            s += &format!("; guest MTU {mtu}");
        }
        if self.logging.load(Ordering::Relaxed) {
            s += "; migrating (dirty-page log on)";
        }
        let errors = self.protocol_errors.load(Ordering::Relaxed);
        if errors > 0 {
            let last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
            s += &format!("; {errors} protocol errors");
            if let Some(l) = last.as_deref() {
                s += &format!(", last: {l}");
            }
        }
        s
    }
}
