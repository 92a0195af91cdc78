//! OpenFlow packet-out on a PMD thread: a frame from the controller, with its actions, run in
//! the bridge's datapath like a received packet's (the PMD owns the port instances, their
//! transmit batches and the pool, so no other thread may send on them).

use flow_table::{extract, Action};

use super::Pmd;
use crate::datapath::execute::execute;
use crate::datapath::stats::DropReason;

impl Pmd {
    /// Translates `actions` for `data` (as if received on `in_port`) through bridge `bridge`,
    /// credits the rules an output to TABLE hit, and runs the result; the copies leave with
    /// this PMD's next flush (done here). The control plane already checked the frame's
    /// length.
    pub(super) fn packet_out(
        &mut self,
        bridge: u32,
        in_port: u32,
        data: &[u8],
        actions: &[Action],
    ) {
        let now = crate::datapath::clock::now_ms();
        let Some(b) = self.bridges.iter().position(|x| x.shared.id == bridge) else {
            return;
        };
        let Some(mut pkt) = self.pool.alloc() else {
            self.local.drop(DropReason::NoBuffer, 1);
            return;
        };
        if !pkt.set_data(data) {
            self.pool.free(pkt);
            self.local.drop(DropReason::Malformed, 1);
            return;
        }
        pkt.in_port = in_port;
        let key = extract(data, in_port);
        let br = &mut self.bridges[b];
        let x = br.shared.packet_out(&key, actions, now, &mut br.learned);
        for rule in &x.rules {
            rule.stats.credit(1, data.len() as u64, now);
        }
        let drops_before = self.local.drops;
        execute(
            &x.actions,
            pkt,
            in_port,
            &mut br.ports,
            &mut self.pool,
            &mut self.local,
            &br.shared.events,
        );
        if let Some(p) = br.ports.iter().find(|p| p.port_no == in_port) {
            crate::datapath::port_obs::attribute_drops(
                &drops_before,
                &self.local.drops,
                &p.obs.drops,
            );
        }
        for port in &mut br.ports {
            port.flush(&mut self.pool);
        }
        if br.n_patch > 0 {
            self.deliver_patches(b, now, 0);
        }
    }
}
