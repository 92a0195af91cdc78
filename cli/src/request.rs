//! How `vswitchctl` turns its arguments into request bodies, kept here so that it is
//! unit-tested.

use mgmt_api::PortType;
use serde_json::{json, Value};

/// The body of `POST /bridges/{bridge}/ports` for `add-port BR PORT SETTINGS...`.
///
/// Each setting is `KEY=VALUE`: `type=` (default `system`), `ofport_request=`/`ofport=`, and
/// anything else is a type option. Open vSwitch spellings are accepted too, so that commands
/// copied from OVS documentation work: `options:KEY=VALUE`, values in double quotes, and the
/// DPDK type names `dpdkvhostuser`/`dpdkvhostuserclient`. Options are not checked here: the
/// daemon knows them and names the one at fault.
pub fn port_body(port: &str, settings: &[String]) -> Result<Value, String> {
    let mut ty = PortType::default().as_str().to_owned();
    let mut ofport = Value::Null;
    let mut options = serde_json::Map::new();
    for s in settings {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: want KEY=VALUE"))?;
        let k = k.strip_prefix("options:").unwrap_or(k);
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        match k {
            "type" => {
                ty = match v {
                    "dpdkvhostuser" => PortType::VhostUser.as_str(),
                    "dpdkvhostuserclient" => PortType::VhostUserClient.as_str(),
                    v => v,
                }
                .to_owned()
            }
            "ofport_request" | "ofport" => {
                ofport = json!(v.parse::<u32>().map_err(|e| format!("{s}: {e}"))?)
            }
            _ => {
                options.insert(k.to_owned(), json!(v));
            }
        }
    }
    Ok(json!({ "name": port, "type": ty, "ofport": ofport, "options": options }))
}

/// The body of `POST /bridges` for `add-br BR SETTINGS...`.
///
/// The one setting is `datapath_type=netdev|dummy` (as `ovs-vsctl set bridge BR
/// datapath_type=dummy` names the column); the daemon checks the value. Anything else is
/// refused here, naming it.
pub fn bridge_body(bridge: &str, settings: &[String]) -> Result<Value, String> {
    let mut body = json!({ "name": bridge });
    for s in settings {
        match s.split_once('=') {
            Some(("datapath_type", v)) => body["datapath_type"] = json!(v),
            _ => return Err(format!("{s:?}: want datapath_type=netdev|dummy")),
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_take_a_datapath_type() {
        assert_eq!(bridge_body("br0", &[]).unwrap(), json!({ "name": "br0" }));
        assert_eq!(
            bridge_body("br0", &["datapath_type=dummy".into()]).unwrap(),
            json!({ "name": "br0", "datapath_type": "dummy" })
        );
        let e = bridge_body("br0", &["fail_mode=secure".into()]).unwrap_err();
        assert!(
            e.contains("fail_mode=secure") && e.contains("datapath_type="),
            "{e}"
        );
    }

    fn body(settings: &[&str]) -> Result<Value, String> {
        let settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        port_body("p", &settings)
    }

    #[test]
    fn plain_ports_default_to_system() {
        assert_eq!(
            body(&[]).unwrap(),
            json!({ "name": "p", "type": "system", "ofport": null, "options": {} })
        );
        let b = body(&["type=system", "mode=afpacket", "ofport_request=7"]).unwrap();
        assert_eq!(b["ofport"], 7);
        assert_eq!(b["options"], json!({ "mode": "afpacket" }));
        assert!(body(&["mode"]).unwrap_err().contains("want KEY=VALUE"));
        assert!(body(&["ofport=x"]).is_err());
    }

    #[test]
    fn vhost_user_ports_as_ovs_users_write_them() {
        let want = json!({ "name": "p", "type": "vhostuserclient", "ofport": null,
                           "options": { "vhost-server-path": "/run/vm1.sock" } });
        for settings in [
            &["type=vhostuserclient", "vhost-server-path=/run/vm1.sock"][..],
            &[
                "type=vhostuserclient",
                "options:vhost-server-path=/run/vm1.sock",
            ],
            &[
                "options:vhost-server-path=\"/run/vm1.sock\"",
                "type=dpdkvhostuserclient",
            ],
        ] {
            assert_eq!(body(settings).unwrap(), want, "{settings:?}");
        }
        assert_eq!(
            body(&["type=vhostuser"]).unwrap(),
            json!({ "name": "p", "type": "vhostuser", "ofport": null, "options": {} })
        );
        assert_eq!(body(&["type=dpdkvhostuser"]).unwrap()["type"], "vhostuser");
    }

    #[test]
    fn unknown_options_go_to_the_daemon() {
        // The daemon refuses them with the list of known ones.
        let b = body(&["type=vhostuser", "options:n_rxq=2"]).unwrap();
        assert_eq!(b["options"], json!({ "n_rxq": "2" }));
    }
}
