//! Request bodies of the network-feature verbs of `vswitchctl`: `set-port`, `add-mirror`,
//! `attach-netns`.

use serde_json::{json, Map, Value};

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// The body of `PATCH /bridges/{bridge}/ports/{port}` for `set-port BR PORT KEY=VALUE...`
/// (`tag=10`, `trunks=10,20`, `vlan_mode=native-untagged`; `tag=` or `tag=[]` clears).
pub fn set_port_body(settings: &[String]) -> Result<Value, String> {
    let mut options = Map::new();
    for s in settings {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: want KEY=VALUE"))?;
        let v = unquote(v);
        let v = if v == "[]" { "" } else { v };
        options.insert(
            k.to_owned(),
            json!(v.trim_matches(|c| c == '[' || c == ']')),
        );
    }
    if options.is_empty() {
        return Err("set-port needs KEY=VALUE settings (tag, trunks, vlan_mode)".into());
    }
    Ok(json!({ "options": options }))
}

/// The body of `POST /bridges/{bridge}/mirrors` for `add-mirror BR NAME SELECTION...
/// output-port=PORT`, where a selection is `select-src-port=P,Q`, `select-dst-port=P,Q`,
/// `select-vlan=N,M` or `select-all` (OVS's column names, `_` or `-` alike).
pub fn mirror_body(name: &str, settings: &[String]) -> Result<Value, String> {
    let list = |v: &str| -> Vec<String> {
        unquote(v)
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut body = json!({ "name": name });
    for s in settings {
        let norm = s.replace('_', "-");
        if norm == "select-all" || norm == "select-all=true" {
            body["select_all"] = json!(true);
            continue;
        }
        let (k, v) = norm
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: want KEY=VALUE or select-all"))?;
        match k {
            "select-src-port" => body["select_src_port"] = json!(list(v)),
            "select-dst-port" => body["select_dst_port"] = json!(list(v)),
            "select-vlan" => {
                let vlans = list(v)
                    .iter()
                    .map(|x| x.parse::<u16>().map_err(|_| format!("select-vlan={v}: want VLAN ids")))
                    .collect::<Result<Vec<u16>, String>>()?;
                body["select_vlan"] = json!(vlans);
            }
            "output-port" => body["output_port"] = json!(unquote(v)),
            _ => {
                return Err(format!(
                    "{s:?}: want select-src-port=, select-dst-port=, select-vlan=, select-all or output-port="
                ))
            }
        }
    }
    if body.get("output_port").is_none() {
        return Err("add-mirror needs output-port=PORT".into());
    }
    Ok(body)
}

/// The body of `POST /bridges/{bridge}/netns` for `attach-netns BR NETNS [--ip A/P]
/// [--mac M] [--vlan N] [--ifname I] [--port P]`.
pub fn attach_body(
    netns: &str,
    ip: Option<&str>,
    mac: Option<&str>,
    vlan: Option<u16>,
    ifname: Option<&str>,
    port: Option<&str>,
) -> Value {
    let mut b = json!({ "netns": netns });
    for (k, v) in [("ip", ip), ("mac", mac), ("ifname", ifname), ("port", port)] {
        if let Some(v) = v {
            b[k] = json!(v);
        }
    }
    if let Some(v) = vlan {
        b["vlan"] = json!(v);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn mirrors_as_written() {
        assert_eq!(
            mirror_body(
                "m0",
                &v(&[
                    "select-src-port=p1,p2",
                    "select_dst_port=p1",
                    "select-vlan=10",
                    "output-port=p3"
                ])
            )
            .unwrap(),
            json!({ "name": "m0", "select_src_port": ["p1", "p2"], "select_dst_port": ["p1"],
                    "select_vlan": [10], "output_port": "p3" })
        );
        assert_eq!(
            mirror_body("m", &v(&["select-all", "output-port=p"])).unwrap()["select_all"],
            true
        );
        assert!(mirror_body("m", &v(&["select-all"]))
            .unwrap_err()
            .contains("output-port"));
        assert!(mirror_body("m", &v(&["select-vlan=x", "output-port=p"])).is_err());
        assert!(mirror_body("m", &v(&["bogus=1", "output-port=p"])).is_err());
    }

    #[test]
    fn set_port_and_attach() {
        assert_eq!(
            set_port_body(&v(&[
                "tag=10",
                "trunks=[20,30]",
                "vlan_mode=native-untagged"
            ]))
            .unwrap(),
            json!({ "options": { "tag": "10", "trunks": "20,30", "vlan_mode": "native-untagged" } })
        );
        assert_eq!(
            set_port_body(&v(&["tag=[]"])).unwrap(),
            json!({ "options": { "tag": "" } })
        );
        assert!(set_port_body(&[]).is_err());
        assert_eq!(
            attach_body("web", Some("10.1.0.5/24"), None, Some(10), None, None),
            json!({ "netns": "web", "ip": "10.1.0.5/24", "vlan": 10 })
        );
    }
}
