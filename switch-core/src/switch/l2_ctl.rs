//! The control side of port VLAN settings, mirrors and patch links: keeps each bridge's
//! [`L2Config`] in step with its ports, and every patch port pointed at its peer.

use std::sync::Arc;

use flow_table::{Match, RuleChange};

use super::{pick_port_no, resolve_port, Ctl, Inner, Switch, SwitchError};
use crate::datapath::l2::{L2Config, Mirror};
use crate::datapath::vlan::PortVlan;
use crate::switch::port_config::PortConfig;

/// A mirror as configured, with ports by name (it follows ports that come and go).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorSpec {
    /// Name, unique in the bridge.
    pub name: String,
    /// `select-src-port`: mirror what these ports receive.
    pub select_src: Vec<String>,
    /// `select-dst-port`: mirror what is sent to these ports.
    pub select_dst: Vec<String>,
    /// `select-vlan`: mirror the packets of these VLANs.
    pub select_vlan: Vec<u16>,
    /// `select-all`: mirror everything.
    pub select_all: bool,
    /// `output-port`: where the copies go.
    pub output: String,
}

impl Inner {
    /// Rebuilds the L2 config of `bridge` after its ports or settings changed and drops every
    /// megaflow of the bridge (NORMAL and FLOOD name the ports they send to, as in OVS, where
    /// a port change revalidates every flow). Also re-points the patch ports.
    pub(super) fn ports_changed(&self, ctl: &mut Ctl, bridge: &str) -> Result<(), SwitchError> {
        self.relink_patches(ctl);
        let br = ctl.bridge(bridge)?;
        let old = br.shared.l2.load_full();
        let specs = ctl.mirrors.get(bridge).cloned().unwrap_or_default();
        let by_name = |n: &String| resolve_port(br, n).ok();
        let next = L2Config {
            vlans: old
                .vlans
                .iter()
                .filter(|(no, _)| br.ports.contains_key(no))
                .map(|(no, v)| (*no, v.clone()))
                .collect(),
            ports: br.ports.keys().copied().collect(),
            mirrors: specs
                .iter()
                .map(|m| Mirror {
                    name: m.name.clone(),
                    select_src: m.select_src.iter().filter_map(by_name).collect(),
                    select_dst: m.select_dst.iter().filter_map(by_name).collect(),
                    select_vlan: m.select_vlan.clone(),
                    select_all: m.select_all,
                    output: by_name(&m.output),
                })
                .collect(),
        };
        br.shared.l2.store(Arc::new(next));
        self.invalidate(
            &br.shared,
            vec![RuleChange {
                table: 0,
                r#match: Match::any(),
            }],
        )?;
        Ok(())
    }

    /// Points every patch port at the patch port its `peer` names, when that one names it back.
    pub(super) fn relink_patches(&self, ctl: &Ctl) {
        let patches: Vec<(u32, u32, &str, &str, &ports::PatchLink)> = ctl
            .bridges
            .values()
            .flat_map(|b| {
                b.ports
                    .iter()
                    .filter_map(move |(&no, p)| match (&p.config, &p.patch) {
                        (PortConfig::Patch { peer }, Some(link)) => {
                            Some((b.shared.id, no, p.name.as_str(), peer.as_str(), &**link))
                        }
                        _ => None,
                    })
            })
            .collect();
        for &(_, _, name, peer, link) in &patches {
            let found = patches
                .iter()
                .find(|(_, _, n, back, _)| *n == peer && *back == name)
                .map(|&(b, no, ..)| (b, no));
            link.set(found);
        }
    }
}

impl Switch {
    /// Adds a port with VLAN settings, in force from its first packet.
    pub fn add_port_vlan(
        &self,
        bridge: &str,
        name: &str,
        config: PortConfig,
        port_no: Option<u32>,
        vlan: PortVlan,
    ) -> Result<u32, SwitchError> {
        if vlan.is_default() && vlan.mode.is_none() {
            return self.add_port(bridge, name, config, port_no);
        }
        let mut ctl = self.inner.lock();
        let br = ctl.bridge(bridge)?;
        // The number the port will get, so the settings can be in place before it polls.
        let no = pick_port_no(br, port_no)?;
        let mut l2 = L2Config::clone(&br.shared.l2.load());
        l2.vlans.insert(no, vlan);
        br.shared.l2.store(Arc::new(l2));
        let r = self.inner.attach(&mut ctl, bridge, name, config, Some(no));
        if r.is_err() {
            if let Ok(br) = ctl.bridge(bridge) {
                let mut l2 = L2Config::clone(&br.shared.l2.load());
                l2.vlans.remove(&no);
                br.shared.l2.store(Arc::new(l2));
            }
        }
        r
    }

    /// Changes the VLAN settings of a port (`ovs-vsctl set port P tag=N ...`).
    pub fn set_port_vlan(
        &self,
        bridge: &str,
        port: &str,
        vlan: PortVlan,
    ) -> Result<(), SwitchError> {
        let mut ctl = self.inner.lock();
        let br = ctl.bridge(bridge)?;
        let no = resolve_port(br, port)?;
        let mut l2 = L2Config::clone(&br.shared.l2.load());
        l2.vlans.insert(no, vlan);
        br.shared.l2.store(Arc::new(l2));
        // Learned addresses were learned in the port's old VLAN.
        let gone = br.shared.macs().flush_port(no);
        drop(gone);
        self.inner.ports_changed(&mut ctl, bridge)?;
        // The port's settings changed even when NORMAL stays in its plain mode.
        let br = ctl.bridge(bridge)?;
        self.inner.invalidate(
            &br.shared,
            vec![RuleChange {
                table: 0,
                r#match: Match::any(),
            }],
        )
    }

    /// Adds a mirror. Its ports must exist now; it follows them if they go and come back.
    pub fn add_mirror(&self, bridge: &str, spec: MirrorSpec) -> Result<(), SwitchError> {
        let mut ctl = self.inner.lock();
        let br = ctl.bridge(bridge)?;
        for p in spec
            .select_src
            .iter()
            .chain(&spec.select_dst)
            .chain(std::iter::once(&spec.output))
        {
            resolve_port(br, p)?;
        }
        if spec.select_vlan.iter().any(|&v| v > 4095) {
            return Err(SwitchError::BadMirror(
                "select-vlan wants VLAN ids from 0 to 4095".into(),
            ));
        }
        if !spec.select_all
            && spec.select_src.is_empty()
            && spec.select_dst.is_empty()
            && spec.select_vlan.is_empty()
        {
            return Err(SwitchError::BadMirror(
                "a mirror needs select-all, select-src-port, select-dst-port or select-vlan".into(),
            ));
        }
        let list = ctl.mirrors.entry(bridge.to_owned()).or_default();
        if list.iter().any(|m| m.name == spec.name) {
            return Err(SwitchError::BadMirror(format!(
                "mirror '{}' already exists",
                spec.name
            )));
        }
        list.push(spec);
        self.inner.ports_changed(&mut ctl, bridge)
    }

    /// Removes a mirror; false if there was none of that name.
    pub fn del_mirror(&self, bridge: &str, name: &str) -> Result<bool, SwitchError> {
        let mut ctl = self.inner.lock();
        ctl.bridge(bridge)?;
        let list = ctl.mirrors.entry(bridge.to_owned()).or_default();
        let before = list.len();
        list.retain(|m| m.name != name);
        let had = list.len() != before;
        self.inner.ports_changed(&mut ctl, bridge)?;
        Ok(had)
    }

    /// The mirrors of a bridge.
    pub fn mirrors(&self, bridge: &str) -> Result<Vec<MirrorSpec>, SwitchError> {
        let ctl = self.inner.lock();
        ctl.bridge(bridge)?;
        Ok(ctl.mirrors.get(bridge).cloned().unwrap_or_default())
    }
}
