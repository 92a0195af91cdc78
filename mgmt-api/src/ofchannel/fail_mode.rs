//! The fail mode, as the datapath's table-miss behaviour. With controllers configured and
//! none connected, a `standalone` bridge forwards everything by NORMAL (OVS's fail-open flow
//! outranks every controller flow), a `secure` one only by the flows installed. While an
//! OpenFlow 1.0 controller is connected, a packet that misses every rule goes to it, as OVS
//! does for 1.0 (1.3 controllers install a table-miss flow instead).
//!
//! OVS waits three inactivity probes before failing open; vswitch fails open as soon as no
//! controller is connected (a deliberate difference, listed in the README).

use std::collections::BTreeMap;
use std::sync::Arc;

use openflow::Version;

use super::hub::{ConnInfo, Kind, Role};
use crate::api::AppState;
use crate::service::controller::{ControllerSettings, FailMode};

/// What the datapath should do with packets no rule takes, and whether rules apply at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Miss {
    /// Every packet goes NORMAL.
    pub fail_open: bool,
    /// A table miss goes to the controller with this many bytes.
    pub controller: Option<u16>,
}

/// What `settings` and the live connections `conns` ask of the datapath.
pub fn desired(settings: &ControllerSettings, conns: &[ConnInfo]) -> Miss {
    let connected = conns.iter().any(|c| c.kind == Kind::Controller);
    let fail_open = !settings.targets.is_empty()
        && settings.fail_mode.unwrap_or_default() == FailMode::Standalone
        && !connected;
    let controller = conns
        .iter()
        .filter(|c| c.version == Version::Of10 && c.wants_async() && c.role != Role::Slave)
        .map(|c| c.miss_send_len)
        .filter(|&l| l > 0)
        .max();
    Miss {
        fail_open,
        controller,
    }
}

/// What each bridge's datapath was last told, so it is told only changes.
#[derive(Default)]
pub(super) struct Applied {
    last: BTreeMap<String, Miss>,
}

impl Applied {
    /// Brings `bridge`'s datapath in line with its settings and connections.
    pub fn apply(&mut self, app: &Arc<AppState>, bridge: &str, settings: &ControllerSettings) {
        let want = desired(settings, &app.openflow.conns(bridge));
        if self.last.get(bridge) == Some(&want) {
            return;
        }
        match set_miss(app, bridge, want) {
            Ok(()) => {
                if want.fail_open != self.last.get(bridge).is_some_and(|m| m.fail_open) {
                    tracing::info!(bridge, fail_open = want.fail_open, "OpenFlow fail mode");
                }
                self.last.insert(bridge.to_owned(), want);
            }
            Err(e) => tracing::error!(bridge, "cannot set the table-miss behaviour: {e}"),
        }
    }

    /// Forgets bridges that are gone.
    pub fn retain(&mut self, bridges: &[String]) {
        self.last.retain(|b, _| bridges.contains(b));
    }
}

fn set_miss(app: &Arc<AppState>, bridge: &str, m: Miss) -> Result<(), String> {
    let cfg = flow_table::MissConfig {
        fail_open: m.fail_open,
        controller: m.controller,
    };
    app.service
        .switch()
        .set_miss(bridge, cfg)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofchannel::target::Target;

    fn conn(kind: Kind, version: Version, miss_send_len: u16) -> ConnInfo {
        ConnInfo {
            kind,
            target: None,
            version,
            role: Role::Equal,
            miss_send_len,
        }
    }

    fn settings(n: usize, mode: Option<FailMode>) -> ControllerSettings {
        ControllerSettings {
            targets: (0..n)
                .map(|i| Target::Tcp(format!("127.0.0.1:{}", 6653 + i).parse().unwrap()))
                .collect(),
            fail_mode: mode,
            datapath_id: None,
        }
    }

    #[test]
    fn standalone_fails_open_only_while_no_controller_is_connected() {
        let none = Miss::default();
        // No controller configured: the bridge's own flows, as before.
        assert_eq!(desired(&settings(0, None), &[]), none);
        let open = Miss {
            fail_open: true,
            controller: None,
        };
        assert_eq!(desired(&settings(1, None), &[]), open);
        assert_eq!(desired(&settings(1, Some(FailMode::Standalone)), &[]), open);
        assert_eq!(desired(&settings(1, Some(FailMode::Secure)), &[]), none);
        // A service connection (ovs-ofctl) is not a controller.
        let svc = conn(Kind::Service, Version::Of13, 0);
        assert_eq!(desired(&settings(1, None), &[svc]), open);
        let ctl = conn(Kind::Controller, Version::Of13, 128);
        assert_eq!(desired(&settings(1, None), &[ctl]), none);
    }

    #[test]
    fn openflow_10_connections_get_table_misses() {
        let c10 = conn(Kind::Controller, Version::Of10, 128);
        assert_eq!(
            desired(&settings(1, Some(FailMode::Secure)), &[c10]).controller,
            Some(128)
        );
        // ovs-ofctl monitor on the service socket, with a miss length.
        let mon = conn(Kind::Service, Version::Of10, 65535);
        let quiet = conn(Kind::Service, Version::Of10, 0);
        assert_eq!(
            desired(&settings(0, None), std::slice::from_ref(&quiet)).controller,
            None
        );
        assert_eq!(
            desired(&settings(0, None), &[quiet, mon]).controller,
            Some(65535)
        );
        let mut slave = conn(Kind::Controller, Version::Of10, 128);
        slave.role = Role::Slave;
        assert_eq!(desired(&settings(1, None), &[slave]).controller, None);
    }
}
