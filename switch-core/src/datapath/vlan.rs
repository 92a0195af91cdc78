//! Port VLAN settings as OVS names them (`tag`, `trunks`, `vlan_mode`): which VLAN a frame
//! entering a port belongs to, and how a frame of a VLAN leaves a port.
//!
//! - `access` (the default when `tag` is set): untagged frames are in VLAN `tag`; tagged
//!   frames are dropped; frames leave untagged, only for VLAN `tag`.
//! - `trunk` (the default otherwise): a frame is in the VLAN of its tag (0 when untagged); only
//!   VLANs in `trunks` are carried (all when `trunks` is empty); frames leave tagged, VLAN 0
//!   untagged unless its priority is not 0 (then with a priority tag, as OVS).
//! - `native-tagged`: a trunk whose untagged frames are in VLAN `tag`; frames of VLAN `tag`
//!   leave tagged. VLAN 0 is not carried (as OVS).
//! - `native-untagged`: the same, but frames of VLAN `tag` leave untagged.
//!
//! A frame with a priority tag (VLAN id 0) counts as untagged.

use std::fmt;

use flow_table::key::{VLAN_PRESENT, VLAN_VID_MASK};

/// `vlan_mode` of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VlanMode {
    /// One VLAN, untagged on the wire.
    Access,
    /// Tagged VLANs.
    Trunk,
    /// A trunk whose untagged frames are in the native VLAN, sent tagged.
    NativeTagged,
    /// A trunk whose untagged frames are in the native VLAN, sent untagged.
    NativeUntagged,
}

impl VlanMode {
    /// The name ovs-vsctl uses.
    pub fn name(self) -> &'static str {
        match self {
            VlanMode::Access => "access",
            VlanMode::Trunk => "trunk",
            VlanMode::NativeTagged => "native-tagged",
            VlanMode::NativeUntagged => "native-untagged",
        }
    }

    /// Parses an ovs-vsctl name.
    pub fn parse(s: &str) -> Option<VlanMode> {
        Some(match s {
            "access" => VlanMode::Access,
            "trunk" => VlanMode::Trunk,
            "native-tagged" => VlanMode::NativeTagged,
            "native-untagged" => VlanMode::NativeUntagged,
            _ => return None,
        })
    }
}

/// The VLAN settings of one port. The default (no tag, no trunks) is a trunk of every VLAN,
/// which is how a port without settings behaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortVlan {
    /// `tag`: the access or native VLAN.
    pub tag: Option<u16>,
    /// `trunks`: the VLANs a trunk carries (empty: all).
    pub trunks: Vec<u16>,
    /// `vlan_mode`; unset means access when `tag` is set, else trunk.
    pub mode: Option<VlanMode>,
}

/// The option names [`PortVlan::parse`] reads.
pub const VLAN_OPTIONS: [&str; 3] = ["tag", "trunks", "vlan_mode"];

fn parse_vid(s: &str, what: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(v) if v <= 4095 => Ok(v),
        _ => Err(format!("{what}={s}: want a VLAN id from 0 to 4095")),
    }
}

impl PortVlan {
    /// Reads `tag=N`, `trunks=N,M,...` and `vlan_mode=MODE` (any of them may be absent).
    pub fn parse(
        tag: Option<&str>,
        trunks: Option<&str>,
        mode: Option<&str>,
    ) -> Result<PortVlan, String> {
        let tag = tag
            .filter(|t| !t.is_empty() && *t != "[]")
            .map(|t| parse_vid(t, "tag"))
            .transpose()?;
        let mut list = Vec::new();
        if let Some(t) = trunks {
            for v in t
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .filter(|s| !s.trim().is_empty())
            {
                list.push(parse_vid(v, "trunks")?);
            }
        }
        list.sort_unstable();
        list.dedup();
        let mode = mode
            .map(|m| {
                VlanMode::parse(m).ok_or_else(|| {
                    format!("vlan_mode={m}: want access, trunk, native-tagged or native-untagged")
                })
            })
            .transpose()?;
        let v = PortVlan {
            tag,
            trunks: list,
            mode,
        };
        match v.mode() {
            VlanMode::Access if v.tag.is_none() => {
                Err("vlan_mode=access needs tag=N".to_owned())
            }
            VlanMode::Access if !v.trunks.is_empty() => {
                Err("an access port (tag=N) takes no trunks; use vlan_mode=native-untagged or native-tagged for a trunk with a native VLAN".to_owned())
            }
            VlanMode::NativeTagged | VlanMode::NativeUntagged if v.tag.is_none() => Err(format!(
                "vlan_mode={} needs tag=N (the native VLAN)",
                v.mode().name()
            )),
            _ => Ok(v),
        }
    }

    /// The effective mode.
    pub fn mode(&self) -> VlanMode {
        self.mode.unwrap_or(if self.tag.is_some() {
            VlanMode::Access
        } else {
            VlanMode::Trunk
        })
    }

    /// True for a port without settings (a trunk of every VLAN).
    pub fn is_default(&self) -> bool {
        self.tag.is_none() && self.trunks.is_empty()
    }

    fn trunks_have(&self, vid: u16) -> bool {
        self.trunks.is_empty() || self.trunks.binary_search(&vid).is_ok()
    }

    /// The VLAN of a frame entering with outer TCI `tci` (the flow key's `vlan_tci`), or
    /// `None` when the port does not take it.
    pub fn input_vlan(&self, tci: u16) -> Option<u16> {
        let vid = if tci & VLAN_PRESENT != 0 {
            tci & VLAN_VID_MASK
        } else {
            0
        };
        let tag = self.tag.unwrap_or(0);
        match self.mode() {
            VlanMode::Access => (vid == 0).then_some(tag),
            VlanMode::Trunk => self.trunks_have(vid).then_some(vid),
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                if vid == 0 {
                    Some(tag)
                } else {
                    (vid == tag || self.trunks_have(vid)).then_some(vid)
                }
            }
        }
    }

    /// How a frame of VLAN `vlan` leaves this port: `None` when it does not, else whether it
    /// carries a tag (for VLAN 0: a priority tag, when the frame's priority is not 0).
    pub fn output(&self, vlan: u16) -> Option<bool> {
        let tag = self.tag.unwrap_or(0);
        match self.mode() {
            VlanMode::Access => (vlan == tag).then_some(false),
            VlanMode::Trunk => self.trunks_have(vlan).then_some(true),
            VlanMode::NativeUntagged if vlan == tag => Some(false),
            VlanMode::NativeTagged if vlan == tag => Some(true),
            VlanMode::NativeUntagged | VlanMode::NativeTagged => {
                (vlan != 0 && self.trunks_have(vlan)).then_some(true)
            }
        }
    }

    /// The settings as port options (`tag`, `trunks`, `vlan_mode`), only those that are set.
    pub fn options(&self) -> Vec<(String, String)> {
        let mut o = Vec::new();
        if let Some(t) = self.tag {
            o.push(("tag".to_owned(), t.to_string()));
        }
        if !self.trunks.is_empty() {
            let list: Vec<String> = self.trunks.iter().map(u16::to_string).collect();
            o.push(("trunks".to_owned(), list.join(",")));
        }
        if let Some(m) = self.mode {
            o.push(("vlan_mode".to_owned(), m.name().to_owned()));
        }
        o
    }
}

impl fmt::Display for PortVlan {
    /// `tag=10 trunks=20,30 vlan_mode=native-untagged`, empty for the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .options()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(tag: Option<&str>, trunks: Option<&str>, mode: Option<&str>) -> PortVlan {
        PortVlan::parse(tag, trunks, mode).unwrap()
    }
    const T10: u16 = VLAN_PRESENT | 10;
    const T20: u16 = VLAN_PRESENT | 20;

    #[test]
    fn access_ports() {
        let a = p(Some("10"), None, None);
        assert_eq!(a.mode(), VlanMode::Access);
        assert_eq!(a.input_vlan(0), Some(10));
        assert_eq!(
            a.input_vlan(VLAN_PRESENT),
            Some(10),
            "priority tag is untagged"
        );
        assert_eq!(a.input_vlan(T10), None, "tagged frames are dropped");
        assert_eq!(a.output(10), Some(false));
        assert_eq!(a.output(20), None);
        assert_eq!(a.to_string(), "tag=10");
    }

    #[test]
    fn trunk_ports() {
        let all = PortVlan::default();
        assert!(all.is_default());
        assert_eq!(all.input_vlan(T20), Some(20));
        assert_eq!(all.input_vlan(0), Some(0));
        assert_eq!(
            all.output(0),
            Some(true),
            "a priority tag when there is a priority"
        );
        let t = p(None, Some("20,10"), None);
        assert_eq!(t.trunks, vec![10, 20]);
        assert_eq!(t.input_vlan(T10), Some(10));
        assert_eq!(t.input_vlan(VLAN_PRESENT | 30), None);
        assert_eq!(t.input_vlan(0), None, "VLAN 0 is not in trunks");
        assert_eq!(t.output(20), Some(true));
        assert_eq!(t.output(30), None);
    }

    #[test]
    fn native_modes() {
        let u = p(Some("10"), Some("20"), Some("native-untagged"));
        assert_eq!(u.input_vlan(0), Some(10));
        assert_eq!(u.input_vlan(T20), Some(20));
        assert_eq!(u.input_vlan(T10), Some(10));
        assert_eq!(u.output(10), Some(false));
        assert_eq!(u.output(20), Some(true));
        assert_eq!(u.output(0), None, "VLAN 0 is not carried");
        let t = p(Some("10"), Some("20"), Some("native-tagged"));
        assert_eq!(t.input_vlan(0), Some(10));
        assert_eq!(t.output(10), Some(true));
        assert_eq!(t.output(30), None);
        assert_eq!(t.to_string(), "tag=10 trunks=20 vlan_mode=native-tagged");
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let e = |t, tr, m| PortVlan::parse(t, tr, m).unwrap_err();
        assert!(e(Some("4096"), None, None).contains("tag=4096"));
        assert!(e(None, Some("1,x"), None).contains("trunks=x"));
        assert!(e(None, None, Some("hybrid")).contains("vlan_mode=hybrid"));
        assert!(e(None, None, Some("access")).contains("needs tag"));
        assert!(e(Some("1"), Some("2"), None).contains("no trunks"));
        assert!(e(None, None, Some("native-tagged")).contains("native VLAN"));
    }
}
