//! Network features of the service: port VLAN settings, patch and VXLAN port options,
//! mirrors, and attaching network namespaces (containers) through veth pairs.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use flow_table::MacAddr;
use switch_core::datapath::vlan::VLAN_OPTIONS;
use switch_core::{MirrorSpec, PortConfig, PortInfo, PortVlan};

use super::{Service, ServiceError};
use crate::service::state::{MirrorEntry, NetnsEntry, PortEntry};

mod netlink;

fn bad<T>(m: String) -> Result<T, ServiceError> {
    Err(ServiceError::BadRequest(m, None))
}

/// The VLAN settings among a port entry's options.
pub fn port_vlan(p: &PortEntry) -> Result<PortVlan, ServiceError> {
    let o = |k: &str| p.options.get(k).map(String::as_str);
    PortVlan::parse(o("tag"), o("trunks"), o("vlan_mode"))
        .map_err(|m| ServiceError::BadRequest(format!("port {}: {m}", p.name), None))
}

/// The configuration of a `patch` or `vxlan` port entry.
pub fn tunnel_config(p: &PortEntry) -> Result<PortConfig, ServiceError> {
    let opt = |k: &str| p.options.get(k).map(String::as_str);
    if p.r#type == ports::PortType::Patch.as_str() {
        let Some(peer) = opt("peer").filter(|v| !v.is_empty()) else {
            return bad("type=patch needs peer=PORT (the patch port of the other bridge)".into());
        };
        if peer == p.name {
            return bad(format!("patch port {} cannot be its own peer", p.name));
        }
        return Ok(PortConfig::Patch {
            peer: peer.to_owned(),
        });
    }
    let ip = |k: &str, v: &str| -> Result<Ipv4Addr, ServiceError> {
        v.parse()
            .or_else(|_| bad(format!("{k}={v}: want an IPv4 address")))
    };
    let Some(remote) = opt("remote_ip") else {
        return bad("type=vxlan needs remote_ip=A.B.C.D".into());
    };
    let remote_ip = ip("remote_ip", remote)?;
    let local_ip = opt("local_ip").map(|v| ip("local_ip", v)).transpose()?;
    let key = match opt("key").unwrap_or("0") {
        "flow" => None,
        k => {
            let n = if let Some(h) = k.strip_prefix("0x") {
                u32::from_str_radix(h, 16).ok()
            } else {
                k.parse::<u32>().ok()
            };
            match n {
                Some(n) if n < 1 << 24 => Some(n),
                _ => return bad(format!("key={k}: want a VNI below 2^24, or flow")),
            }
        }
    };
    let dst_port = match opt("dst_port").map(str::parse::<u16>) {
        None => ports::VXLAN_PORT,
        Some(Ok(p)) if p != 0 => p,
        Some(_) => return bad("dst_port: want a UDP port from 1 to 65535".into()),
    };
    // OVS's defaults for an IPv4 tunnel: no outer UDP checksum, DF set.
    let flag = |k: &str, default: bool| match opt(k) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => bad(format!("{k}={v}: want true or false")),
    };
    Ok(PortConfig::Vxlan {
        remote_ip,
        local_ip,
        key,
        dst_port,
        csum: flag("csum", true)?,
        df: flag("df_default", true)?,
    })
}

/// The datapath's view of a configured mirror.
pub fn mirror_spec(m: &MirrorEntry) -> MirrorSpec {
    MirrorSpec {
        name: m.name.clone(),
        select_src: m.select_src_port.clone(),
        select_dst: m.select_dst_port.clone(),
        select_vlan: m.select_vlan.clone(),
        select_all: m.select_all,
        output: m.output_port.clone(),
    }
}

/// `attach-netns`: what to create.
#[derive(Clone, Debug, Default)]
pub struct AttachNetns {
    /// Existing namespace (`ip netns add NAME`).
    pub netns: String,
    /// Address with prefix for the interface in the namespace (`10.1.0.5/24`).
    pub ip: Option<String>,
    /// MAC address for it.
    pub mac: Option<String>,
    /// Access VLAN of the switch port.
    pub vlan: Option<u16>,
    /// Interface name inside the namespace (default `eth0`).
    pub ifname: Option<String>,
    /// Switch port name (default `vsn` and 8 hex digits derived from bridge and namespace).
    pub port: Option<String>,
}

/// The one mapping of netlink failures to service errors (500, as the datapath's own
/// failures): `what` says what was being done, the error the errno, with a hint where one
/// helps.
fn link_error(what: &str, e: netlink::Error) -> ServiceError {
    let hint = match e.errno() {
        Some(libc::EPERM) => {
            " (vswitchd needs CAP_NET_ADMIN, and CAP_SYS_ADMIN to enter a namespace)"
        }
        _ => "",
    };
    ServiceError::Datapath(format!("{what}: {e}{hint}"))
}

/// Deletes the link `port` (with its veth peer), logging instead of failing: the undo of a
/// failed step, and the cleanup of a deleted bridge.
fn delete_quietly(port: &str) {
    if let Err(e) = netlink::delete_link(port) {
        tracing::warn!(port, errno = e.errno(), "cannot delete the veth pair: {e}");
    }
}

fn check_ifname(what: &str, n: &str) -> Result<(), ServiceError> {
    super::check_name(what, n)
}

/// FNV-1a, for a stable default port name.
fn short_hash(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// Deletes the veth pairs of the namespaces attached to a deleted bridge (those still there).
pub(super) fn remove_links(br: &crate::service::state::BridgeEntry) {
    for a in &br.attached {
        delete_quietly(&a.port);
    }
}

impl Service {
    /// Changes the VLAN settings of a port (`set-port BR PORT tag=N trunks=... vlan_mode=...`);
    /// an empty value removes a setting. Saved with the port.
    pub fn set_port_options(
        &self,
        bridge: &str,
        port: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<PortInfo, ServiceError> {
        if let Some(k) = options.keys().find(|k| !VLAN_OPTIONS.contains(&k.as_str())) {
            return bad(format!(
                "option {k:?} cannot be changed on a running port (changeable: {})",
                VLAN_OPTIONS.join(", ")
            ));
        }
        let mut state = self.lock();
        let no = self.switch.port_no(bridge, port)?;
        let mut next = state.clone();
        let br = next
            .bridge_mut(bridge)
            .ok_or_else(|| ServiceError::NotFound(format!("no bridge named '{bridge}'")))?;
        let Some(entry) = br.ports.iter_mut().find(|p| p.ofport == no) else {
            return bad("the bridge's own port has no VLAN settings here".into());
        };
        let old = port_vlan(entry)?;
        for (k, v) in options {
            if v.is_empty() {
                entry.options.remove(k);
            } else {
                entry.options.insert(k.clone(), v.clone());
            }
        }
        let vlan = port_vlan(entry)?;
        let name = entry.name.clone();
        self.switch.set_port_vlan(bridge, &name, vlan)?;
        self.commit(&mut state, next, || {
            let _ = self.switch.set_port_vlan(bridge, &name, old);
        })?;
        drop(state);
        self.port(bridge, &name)
    }

    /// Adds a mirror (`add-mirror`).
    pub fn add_mirror(&self, bridge: &str, m: MirrorEntry) -> Result<(), ServiceError> {
        check_ifname("mirror", &m.name)?;
        let mut state = self.lock();
        self.switch.add_mirror(bridge, mirror_spec(&m))?;
        let mut next = state.clone();
        next.bridge_mut(bridge)
            .ok_or_else(|| ServiceError::NotFound(format!("no bridge named '{bridge}'")))?
            .mirrors
            .push(m.clone());
        self.commit(&mut state, next, || {
            let _ = self.switch.del_mirror(bridge, &m.name);
        })
    }

    /// Removes a mirror (`del-mirror`).
    pub fn del_mirror(&self, bridge: &str, name: &str) -> Result<(), ServiceError> {
        let mut state = self.lock();
        let mut next = state.clone();
        let br = next
            .bridge_mut(bridge)
            .ok_or_else(|| ServiceError::NotFound(format!("no bridge named '{bridge}'")))?;
        let Some(i) = br.mirrors.iter().position(|m| m.name == name) else {
            return Err(ServiceError::NotFound(format!(
                "no mirror '{name}' on {bridge}"
            )));
        };
        let old = br.mirrors.remove(i);
        self.switch.del_mirror(bridge, name)?;
        self.commit(&mut state, next, || {
            let _ = self.switch.add_mirror(bridge, mirror_spec(&old));
        })
    }

    /// The mirrors of a bridge.
    pub fn mirrors(&self, bridge: &str) -> Result<Vec<MirrorEntry>, ServiceError> {
        self.read()
            .bridge(bridge)
            .map(|b| b.mirrors.clone())
            .ok_or_else(|| ServiceError::NotFound(format!("no bridge named '{bridge}'")))
    }

    /// The namespaces attached to a bridge.
    pub fn attached(&self, bridge: &str) -> Result<Vec<NetnsEntry>, ServiceError> {
        self.read()
            .bridge(bridge)
            .map(|b| b.attached.clone())
            .ok_or_else(|| ServiceError::NotFound(format!("no bridge named '{bridge}'")))
    }

    /// `attach-netns`: creates a veth pair with one end inside the namespace (named, addressed,
    /// up) and adds the other end to the bridge as a port (an access port of `vlan` if given).
    /// Undone entirely if any step fails. The links are made with netlink requests
    /// ([`netlink`]); their failures are 500s naming the interface, namespace and errno.
    pub fn attach_netns(&self, bridge: &str, req: AttachNetns) -> Result<NetnsEntry, ServiceError> {
        check_ifname("namespace", &req.netns)?;
        let ns_path = Path::new("/run/netns").join(&req.netns);
        if !ns_path.exists() {
            return Err(ServiceError::NotFound(format!(
                "no network namespace '{}' (create it with ip netns add)",
                req.netns
            )));
        }
        let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
        check_ifname("interface", &ifname)?;
        let port = req.port.clone().unwrap_or_else(|| {
            format!("vsn{:08x}", short_hash(&format!("{bridge}/{}", req.netns)))
        });
        check_ifname("port", &port)?;
        let ip = match &req.ip {
            None => None,
            Some(ip) => {
                let parsed = ip.split_once('/').and_then(|(a, l)| {
                    let a = a.parse::<IpAddr>().ok()?;
                    let l = l.parse::<u8>().ok()?;
                    (l <= if a.is_ipv4() { 32 } else { 128 }).then_some((a, l))
                });
                let Some(parsed) = parsed else {
                    return bad(format!("--ip {ip}: want ADDRESS/PREFIX, e.g. 10.1.0.5/24"));
                };
                Some(parsed)
            }
        };
        let mac = match &req.mac {
            None => None,
            Some(mac) => match mac.parse::<MacAddr>() {
                Ok(m) if m.is_unicast() => Some(m.0),
                _ => return bad(format!("--mac {mac}: want a unicast xx:xx:xx:xx:xx:xx")),
            },
        };
        if req.vlan.is_some_and(|v| v == 0 || v > 4094) {
            return bad("--vlan: want a VLAN id from 1 to 4094".into());
        }
        {
            let state = self.read();
            let br = state
                .bridge(bridge)
                .ok_or_else(|| ServiceError::NotFound(format!("no bridge named '{bridge}'")))?;
            if br.attached.iter().any(|a| a.netns == req.netns) {
                return Err(ServiceError::Conflict(format!(
                    "namespace '{}' is attached to {bridge} already",
                    req.netns
                )));
            }
        }
        let ns = &req.netns;
        let ns_file = File::open(&ns_path).map_err(|e| {
            ServiceError::Datapath(format!("cannot open network namespace '{ns}': {e}"))
        })?;
        // One request makes the pair: `port` here (up), and `ifname` (with the MAC address)
        // directly in the namespace, so that name may exist here; then, inside the namespace,
        // one request adds the IP address and one brings `ifname` up.
        netlink::create_veth(&port, &ifname, &ns_file, mac).map_err(|e| {
            let what = match e.errno() {
                Some(libc::EEXIST) if Path::new("/sys/class/net").join(&port).exists() => {
                    format!("interface {port} exists already")
                }
                Some(libc::EEXIST) => {
                    format!("interface {ifname} exists in namespace '{ns}' already")
                }
                _ => format!("cannot create veth pair {port} (peer {ifname} in namespace '{ns}')"),
            };
            link_error(&what, e)
        })?;
        if let Err(e) = netlink::configure_peer(&ns_file, &ifname, ip) {
            delete_quietly(&port);
            let what = match ip {
                Some((addr, prefix)) => format!(
                    "cannot add address {addr}/{prefix} to {ifname} in namespace '{ns}' or \
                     bring it up"
                ),
                None => format!("cannot bring up {ifname} in namespace '{ns}'"),
            };
            return Err(link_error(&what, e));
        }
        let mut options = BTreeMap::new();
        if let Some(v) = req.vlan {
            options.insert("tag".to_owned(), v.to_string());
        }
        let entry = PortEntry {
            name: port.clone(),
            r#type: "system".into(),
            ofport: 0,
            options,
        };
        if let Err(e) = self.add_port(bridge, entry) {
            delete_quietly(&port);
            return Err(e);
        }
        let att = NetnsEntry {
            netns: req.netns.clone(),
            port: port.clone(),
            ifname,
        };
        let mut state = self.lock();
        let mut next = state.clone();
        if let Some(b) = next.bridge_mut(bridge) {
            b.attached.push(att.clone());
        }
        let saved = self.store.save(&next);
        match saved {
            Ok(()) => {
                *state = next;
                Ok(att)
            }
            Err(e) => {
                drop(state);
                let _ = self.del_port(bridge, &port);
                delete_quietly(&port);
                Err(ServiceError::Storage(format!(
                    "the change was not saved, so it was undone: {e}"
                )))
            }
        }
    }

    /// `detach-netns`: removes the port of an attached namespace and deletes its veth pair
    /// (the namespace itself stays).
    pub fn detach_netns(&self, bridge: &str, netns: &str) -> Result<(), ServiceError> {
        let att = self
            .attached(bridge)?
            .into_iter()
            .find(|a| a.netns == netns)
            .ok_or_else(|| {
                ServiceError::NotFound(format!("namespace '{netns}' is not attached to {bridge}"))
            })?;
        if self.switch.port_no(bridge, &att.port).is_ok() {
            self.del_port(bridge, &att.port)?;
        } else {
            // Not running (its interface was gone at restore): forget the entry only.
            let mut state = self.lock();
            let mut next = state.clone();
            if let Some(b) = next.bridge_mut(bridge) {
                b.ports.retain(|p| p.name != att.port);
            }
            self.store
                .save(&next)
                .map_err(|e| ServiceError::Storage(format!("nothing was changed: {e}")))?;
            *state = next;
        }
        let mut state = self.lock();
        let mut next = state.clone();
        if let Some(b) = next.bridge_mut(bridge) {
            b.attached.retain(|a| a.netns != netns);
        }
        self.store
            .save(&next)
            .map_err(|e| ServiceError::Storage(format!("the port is gone, the record not: {e}")))?;
        *state = next;
        drop(state);
        // Deleting our end deletes the peer inside the namespace. It may be gone already
        // (the namespace was deleted).
        netlink::delete_link(&att.port)
            .map(drop)
            .map_err(|e| link_error(&format!("cannot delete veth pair {}", att.port), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ty: &str, opts: &[(&str, &str)]) -> PortEntry {
        PortEntry {
            name: "p0".into(),
            r#type: ty.into(),
            ofport: 0,
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn err(r: Result<PortConfig, ServiceError>) -> String {
        match r {
            Err(ServiceError::BadRequest(m, _)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn vxlan_and_patch_options() {
        assert_eq!(
            tunnel_config(&entry(
                "vxlan",
                &[("remote_ip", "192.0.2.1"), ("key", "flow")]
            ))
            .unwrap(),
            PortConfig::Vxlan {
                remote_ip: "192.0.2.1".parse().unwrap(),
                local_ip: None,
                key: None,
                dst_port: 4789,
                csum: true,
                df: true
            }
        );
        assert_eq!(
            tunnel_config(&entry(
                "vxlan",
                &[
                    ("remote_ip", "192.0.2.1"),
                    ("key", "0x2a"),
                    ("dst_port", "8472"),
                    ("csum", "false"),
                    ("df_default", "false")
                ]
            ))
            .unwrap(),
            PortConfig::Vxlan {
                remote_ip: "192.0.2.1".parse().unwrap(),
                local_ip: None,
                key: Some(42),
                dst_port: 8472,
                csum: false,
                df: false
            }
        );
        assert!(err(tunnel_config(&entry("vxlan", &[]))).contains("remote_ip"));
        assert!(err(tunnel_config(&entry("vxlan", &[("remote_ip", "x")]))).contains("IPv4"));
        assert!(err(tunnel_config(&entry(
            "vxlan",
            &[("remote_ip", "192.0.2.1"), ("key", "16777216")]
        )))
        .contains("key="));
        assert!(err(tunnel_config(&entry(
            "vxlan",
            &[("remote_ip", "192.0.2.1"), ("csum", "yes")]
        )))
        .contains("csum=yes"));
        assert!(err(tunnel_config(&entry(
            "vxlan",
            &[("remote_ip", "192.0.2.1"), ("df_default", "1")]
        )))
        .contains("df_default=1"));
        assert!(err(tunnel_config(&entry("patch", &[]))).contains("peer="));
        assert!(err(tunnel_config(&entry("patch", &[("peer", "p0")]))).contains("own peer"));
        assert!(port_vlan(&entry("system", &[("tag", "5000")])).is_err());
        assert_eq!(
            port_vlan(&entry("system", &[("tag", "5")])).unwrap().tag,
            Some(5)
        );
    }
}
