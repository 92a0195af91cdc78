//! The management service: applies requests to the datapath and to the persistent state, and
//! answers only once both hold the change.
//!
//! A flow change is computed on a copy of the bridge's rules, recorded in the journal, and only
//! then published to the datapath; a change the state directory cannot record is not made. A
//! change of bridges or ports that the datapath accepts but the state directory cannot record is
//! undone in the datapath. Either way what runs never differs from what a restart would restore.
//!
//! Flow changes to different bridges run at the same time (each bridge's rules have their own
//! lock, and the journal takes concurrent records); changes of bridges and ports take the
//! configuration's write lock and run alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use flow_table::flow_syntax::{self, FlowMode, ParsedFlow};
use flow_table::{Rule, RuleFilter, RuleSpec};
use ports::{PortType, SystemMode};
use switch_core::switch::bridge_options;
use switch_core::{
    BridgeOptions, DatapathType, PortConfig, PortInfo, Switch, SwitchConfig, SwitchError,
    LOCAL_PORT,
};

use crate::config::DaemonConfig;
use journal::Record;
use state::{BridgeEntry, PortEntry, State, Store};

/// Rules changed by one request from which its freed memory is given back to the kernel.
const BULK_RULES: usize = 10_000;

/// The highest port number a port may ask for (OpenFlow's `OFPP_MAX` is the next one).
const MAX_OFPORT: u32 = 0xfeff;

/// Why a request failed, with the HTTP status class it maps to.
#[derive(Debug)]
pub enum ServiceError {
    /// 404: a named object does not exist.
    NotFound(String),
    /// 409: the object exists already, or is not of the kind the request needs.
    Conflict(String),
    /// 400: the request is malformed; the detail says where.
    BadRequest(String, Option<serde_json::Value>),
    /// 500: the datapath failed (e.g. an interface could not be opened).
    Datapath(String),
    /// 500: the state directory could not record the change (nothing changed).
    Storage(String),
    /// 503: the datapath cannot take it now (a dummy port's receive queue is full); the same
    /// request may succeed later.
    Unavailable(String),
    /// 400: the rule tables refused a rule (kept whole, so OpenFlow can answer with the exact
    /// error).
    FlowMod(flow_table::FlowModError),
}

impl From<SwitchError> for ServiceError {
    fn from(e: SwitchError) -> Self {
        match e {
            SwitchError::NoSuchBridge(_) | SwitchError::NoSuchPort(_) => {
                ServiceError::NotFound(e.to_string())
            }
            SwitchError::BridgeExists(_)
            | SwitchError::PortExists(_)
            | SwitchError::NotDummy(_) => ServiceError::Conflict(e.to_string()),
            SwitchError::DummyFull(..) => ServiceError::Unavailable(e.to_string()),
            SwitchError::FlowMod(e) => ServiceError::FlowMod(e),
            SwitchError::Port(..)
            | SwitchError::BadFdbEntry
            | SwitchError::BadMirror(_)
            | SwitchError::BadPacketOut(_) => ServiceError::BadRequest(e.to_string(), None),
            SwitchError::Timeout => ServiceError::Datapath(e.to_string()),
            SwitchError::NotRecorded(m) => ServiceError::Storage(format!(
                "the change was not saved, so nothing was changed: {m}"
            )),
        }
    }
}

/// The running daemon's state: the switch, and the configuration that restores it.
pub struct Service {
    switch: Switch,
    /// Directory of vhostuser sockets.
    run_dir: PathBuf,
    /// Bridges, ports, mirrors and namespaces (flows live in the datapath's rule tables).
    state: RwLock<State>,
    store: Store,
    limits: crate::limits::Limits,
}

/// Checks a bridge or port name: it becomes a kernel interface name.
pub fn check_name(kind: &str, name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(ServiceError::BadRequest(
            format!(
                "invalid {kind} name {name:?}: 1 to 15 characters of letters, digits, '-', '_', '.'"
            ),
            None,
        ))
    }
}

/// Reads a bridge's `datapath_type` (`netdev` when absent); a 400 naming the field otherwise.
pub fn datapath_type(text: Option<&str>) -> Result<DatapathType, ServiceError> {
    let Some(t) = text else {
        return Ok(DatapathType::default());
    };
    t.parse().map_err(|e: bridge_options::UnknownDatapathType| {
        ServiceError::BadRequest(
            e.to_string(),
            Some(serde_json::json!({ "field": "datapath_type", "value": t })),
        )
    })
}

/// Longest unix socket path (`sun_path` holds 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The datapath configuration of a port entry; `run_dir` holds `vhostuser` sockets.
pub fn port_config(p: &PortEntry, run_dir: &Path) -> Result<PortConfig, ServiceError> {
    let bad = |m: String| Err(ServiceError::BadRequest(m, None));
    let ty = match p.r#type.parse::<PortType>() {
        Ok(t) => t,
        Err(e) => return bad(e.to_string()),
    };
    let allowed: &[&str] = match ty {
        PortType::System => &["mode"],
        PortType::Tap | PortType::Internal => &["offloads"],
        PortType::VhostUser => &["mtu_request"],
        PortType::VhostUserClient => &["vhost-server-path", "mtu_request"],
        PortType::Patch => &["peer"],
        PortType::Vxlan => &[
            "remote_ip",
            "local_ip",
            "key",
            "dst_port",
            "csum",
            "df_default",
        ],
        PortType::Dummy => &[],
        // Benchmarks build replay ports in code; the name does not parse.
        PortType::Replay => return bad(ports::UnknownPortType(p.r#type.clone()).to_string()),
    };
    // VLAN settings apply to every type (see `port_vlan`).
    let vlan_opts = switch_core::datapath::vlan::VLAN_OPTIONS;
    if let Some(k) = p
        .options
        .keys()
        .find(|k| !allowed.contains(&k.as_str()) && !vlan_opts.contains(&k.as_str()))
    {
        let known: Vec<&str> = allowed.iter().chain(&vlan_opts).copied().collect();
        let known = known.join(", ");
        return bad(format!(
            "unknown option {k:?} for type={} (known: {known})",
            p.r#type
        ));
    }
    let opt = |k: &str| p.options.get(k).map(String::as_str);
    let mtu_request = match opt("mtu_request") {
        None => None,
        Some(m) => match m.parse::<u32>() {
            Ok(n) if (68..=65535).contains(&n) => Some(n),
            _ => return bad(format!("mtu_request={m}: want an MTU from 68 to 65535")),
        },
    };
    Ok(match ty {
        PortType::Patch | PortType::Vxlan => return crate::service::net::tunnel_config(p),
        PortType::Dummy => PortConfig::Dummy,
        PortType::System => PortConfig::System {
            mode: match opt("mode").unwrap_or("auto") {
                "auto" => SystemMode::Auto,
                "afxdp" => SystemMode::AfXdp,
                "afpacket" => SystemMode::AfPacket,
                m => return bad(format!("mode={m}: want afxdp, afpacket or auto")),
            },
        },
        PortType::VhostUser => {
            // The socket is <run_dir>/<name>. Checked here as well as by `check_name`, because
            // restored entries come from a file that may have been edited by hand.
            let n = &p.name;
            if n.is_empty() || n.starts_with('.') || n.contains(['/', '\0']) || n.contains("..") {
                return bad(format!(
                    "invalid port name {n:?} for type=vhostuser: the name becomes a socket in \
                     the run directory, so it must not start with '.' nor contain '/' or '..'"
                ));
            }
            let socket = run_dir.join(n);
            if socket.as_os_str().len() > MAX_SOCKET_PATH {
                return bad(format!(
                    "socket path {} is longer than {MAX_SOCKET_PATH} bytes: use a shorter \
                     port name or run directory",
                    socket.display()
                ));
            }
            PortConfig::VhostUser {
                socket,
                client: false,
                mtu_request,
            }
        }
        PortType::VhostUserClient => {
            let Some(path) = opt("vhost-server-path") else {
                return bad(
                    "type=vhostuserclient needs vhost-server-path=PATH (the socket the VM \
                     listens on)"
                        .to_owned(),
                );
            };
            if !path.starts_with('/') || path.len() > MAX_SOCKET_PATH || path.contains('\0') {
                return bad(format!(
                    "vhost-server-path={path:?}: want an absolute path of at most \
                     {MAX_SOCKET_PATH} bytes"
                ));
            }
            PortConfig::VhostUser {
                socket: PathBuf::from(path),
                client: true,
                mtu_request,
            }
        }
        // An extra internal port is a tap the host stack uses, as OVS's internal ports are.
        PortType::Tap | PortType::Internal => PortConfig::Tap {
            offloads: match opt("offloads").unwrap_or(if ty == PortType::Tap {
                "true"
            } else {
                "false"
            }) {
                "true" => true,
                "false" => false,
                v => return bad(format!("offloads={v}: want true or false")),
            },
        },
        PortType::Replay => unreachable!("refused with the unknown types above"),
    })
}

/// Creates the run directory (owner and group only: the sockets in it give access to the
/// switch's ports).
fn create_run_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| format!("run directory {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .map_err(|e| format!("run directory {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn switch_config(cfg: &DaemonConfig) -> SwitchConfig {
    let d = &cfg.datapath;
    let defaults = SwitchConfig::default();
    SwitchConfig {
        pmd_cores: if d.pmd_cores.is_empty() {
            vec![None]
        } else {
            d.pmd_cores.iter().map(|&c| Some(c)).collect()
        },
        cache: flow_table::CacheConfig {
            emc_insert_inv_prob: d.emc_insert_inv_prob,
            flow_limit: d.flow_limit,
            ..defaults.cache
        },
        megaflow_idle_ms: d.megaflow_idle_ms,
        mac_aging_secs: d.mac_aging_secs,
        // The service answers 409 at this limit first; the switch's own check backs it.
        max_rules: d.max_flows,
        ..defaults
    }
}

impl Service {
    /// Starts the datapath and restores the saved state. A port that cannot be opened (its
    /// interface is gone) is reported and left in the state, so it comes back once fixed.
    pub fn start(cfg: &DaemonConfig, store: Store) -> Result<Service, String> {
        let recovered = store.recover().map_err(|e| e.to_string())?;
        let restore::Restored { state, mut rules } =
            restore::replay(recovered, switch_core::datapath::clock::now_ms())?;
        let switch = Switch::start(switch_config(cfg)).map_err(|e| format!("datapath: {e}"))?;
        create_run_dir(&cfg.datapath.run_dir)?;
        let svc = Service {
            switch,
            run_dir: cfg.datapath.run_dir.clone(),
            state: RwLock::new(state.clone()),
            store,
            limits: crate::limits::Limits {
                max_flows: cfg.datapath.max_flows,
                max_ports: cfg.datapath.max_ports,
            },
        };
        for br in &state.bridges {
            let options = BridgeOptions {
                datapath_type: br
                    .datapath_type
                    .parse()
                    .map_err(|e| format!("restoring bridge {}: {e}", br.name))?,
            };
            svc.switch
                .add_bridge_with(&br.name, options)
                .map_err(|e| format!("restoring bridge {}: {e}", br.name))?;
            for p in &br.ports {
                let restored = port_config(p, &cfg.datapath.run_dir)
                    .map_err(|e| format!("{e:?}"))
                    .and_then(|c| {
                        let vlan = net::port_vlan(p).map_err(|e| format!("{e:?}"))?;
                        svc.switch
                            .add_port_vlan(&br.name, &p.name, c, Some(p.ofport), vlan)
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = restored {
                    tracing::error!(bridge = %br.name, port = %p.name, "port not restored: {e}");
                }
            }
            for m in &br.mirrors {
                if let Err(e) = svc.switch.add_mirror(&br.name, net::mirror_spec(m)) {
                    tracing::error!(bridge = %br.name, mirror = %m.name, "mirror not restored: {e}");
                }
            }
            let tables = rules.remove(&br.name).unwrap_or_default();
            svc.switch
                .install_rules(&br.name, tables)
                .map_err(|e| format!("restoring flows of {}: {e}", br.name))?;
        }
        switch_core::memory::release_free_heap();
        Ok(svc)
    }

    /// The datapath (read-only operations for views).
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// The configuration, for a change of bridges or ports (nothing else changes meanwhile).
    fn lock(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration, for reading or a flow change (flow changes run side by side).
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a new snapshot when the journal has grown enough. The cut is taken under the
    /// write lock (no change in flight): the next journal starts there and the rule tables are
    /// shared snapshots, so the lock is held for microseconds; the snapshot is written by a
    /// thread of its own while changes go on.
    fn maybe_compact(&self) {
        if !self.store.start_compaction() {
            return;
        }
        let cut = {
            let state = self.lock();
            self.store.rotate().map(|generation| {
                let rules: Vec<_> = state
                    .bridges
                    .iter()
                    .filter_map(|b| {
                        Some((b.name.clone(), self.switch.rules_snapshot(&b.name).ok()?))
                    })
                    .collect();
                (generation, state.clone(), rules)
            })
        };
        let (generation, mut snapshot, rules) = match cut {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("compaction: cannot start a new journal: {e}");
                self.store.compaction_done();
                return;
            }
        };
        let store = self.store.clone();
        let spawned = std::thread::Builder::new()
            .name("compaction".into())
            .spawn(move || {
                let t0 = std::time::Instant::now();
                snapshot.journal = generation;
                let mut n = 0;
                for (name, tables) in rules {
                    if let Some(b) = snapshot.bridge_mut(&name) {
                        b.flows = tables
                            .rules()
                            .iter()
                            .map(|r| spec_text(r, &|_| None))
                            .collect();
                        n += b.flows.len();
                    }
                }
                match store.write_snapshot(&snapshot) {
                    Ok(()) => tracing::info!(
                        flows = n,
                        "compaction: snapshot for journal.{generation} written in {:?}",
                        t0.elapsed()
                    ),
                    // The old snapshot and every journal since stay: nothing is lost.
                    Err(e) => tracing::error!("compaction: {e}"),
                }
                store.compaction_done();
                switch_core::memory::release_free_heap();
            });
        if let Err(e) = spawned {
            tracing::error!("compaction: {e}");
            self.store.compaction_done();
        }
    }

    /// Saves `next` as the state; on failure runs `undo` on the datapath and reports it.
    fn commit(
        &self,
        state: &mut State,
        next: State,
        undo: impl FnOnce(),
    ) -> Result<(), ServiceError> {
        match self.store.save(&next) {
            Ok(()) => {
                *state = next;
                Ok(())
            }
            Err(e) => {
                undo();
                Err(ServiceError::Storage(format!(
                    "the change was not saved, so it was undone: {e}"
                )))
            }
        }
    }

    /// Creates a bridge; its own port is a tap, or a dummy port for [`DatapathType::Dummy`].
    pub fn add_bridge(&self, name: &str, datapath_type: DatapathType) -> Result<(), ServiceError> {
        check_name("bridge", name)?;
        let mut state = self.lock();
        self.switch
            .add_bridge_with(name, BridgeOptions { datapath_type })?;
        // The OpenFlow datapath id is the bridge's own MAC address when it was made (as OVS
        // picks it), kept so that controllers know the bridge again after a restart gives
        // it a new internal port.
        let datapath_id = self
            .switch
            .ports(name)
            .ok()
            .and_then(|ps| ps.into_iter().find(|p| p.port_no == LOCAL_PORT))
            .map(|p| format!("{:016x}", controller::mac_dpid(p.mac)));
        let mut next = state.clone();
        next.bridges.push(BridgeEntry {
            name: name.to_owned(),
            datapath_type: datapath_type.name().to_owned(),
            ports: Vec::new(),
            flows: Vec::new(),
            mirrors: Vec::new(),
            attached: Vec::new(),
            controllers: Vec::new(),
            fail_mode: None,
            datapath_id,
        });
        self.commit(&mut state, next, || {
            let _ = self.switch.del_bridge(name);
        })
    }

    /// Deletes a bridge and its ports.
    pub fn del_bridge(&self, name: &str) -> Result<(), ServiceError> {
        let mut state = self.lock();
        let old = state
            .bridge(name)
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(format!("no bridge named '{name}'")))?;
        let mut next = state.clone();
        next.bridges.retain(|b| b.name != name);
        // Save first: deleting cannot be undone cheaply (ports would have to be reopened).
        self.store
            .save(&next)
            .map_err(|e| ServiceError::Storage(format!("nothing was changed: {e}")))?;
        *state = next;
        self.switch.del_bridge(name)?;
        net::remove_links(&old);
        Ok(())
    }

    /// Adds a port; `ofport` 0 picks the lowest free number.
    pub fn add_port(&self, bridge: &str, mut port: PortEntry) -> Result<PortInfo, ServiceError> {
        check_name("port", &port.name)?;
        let cfg = port_config(&port, &self.run_dir)?;
        if port.ofport == LOCAL_PORT {
            return Err(ServiceError::BadRequest(
                format!("ofport {LOCAL_PORT} is the bridge's own port"),
                None,
            ));
        }
        // Flows name ports by number (the state file too), and the flow syntax, as ovs-ofctl's,
        // reads only OpenFlow's port numbers: 1 to 65279, the rest being reserved.
        if port.ofport > MAX_OFPORT {
            return Err(ServiceError::BadRequest(
                format!(
                    "ofport {} out of range (1-{MAX_OFPORT}; OpenFlow reserves the numbers above)",
                    port.ofport
                ),
                None,
            ));
        }
        let mut state = self.lock();
        let Some(br) = state.bridge(bridge) else {
            return Err(ServiceError::NotFound(format!(
                "no bridge named '{bridge}'"
            )));
        };
        self.limits.check_ports(bridge, br.ports.len())?;
        let want = (port.ofport != 0).then_some(port.ofport);
        let vlan = net::port_vlan(&port)?;
        let no = self
            .switch
            .add_port_vlan(bridge, &port.name, cfg, want, vlan)?;
        port.ofport = no;
        let mut next = state.clone();
        next.bridge_mut(bridge)
            .expect("checked above")
            .ports
            .push(port.clone());
        self.commit(&mut state, next, || {
            let _ = self.switch.del_port(bridge, &port.name);
        })?;
        self.port(bridge, &port.name)
    }

    /// Removes a port (by name or number).
    pub fn del_port(&self, bridge: &str, port: &str) -> Result<(), ServiceError> {
        let mut state = self.lock();
        let no = self.switch.port_no(bridge, port)?;
        if no == LOCAL_PORT {
            return Err(ServiceError::BadRequest(
                "the bridge's own port goes with the bridge (use del-br)".into(),
                None,
            ));
        }
        let mut next = state.clone();
        next.bridge_mut(bridge)
            .ok_or_else(|| ServiceError::NotFound(format!("no bridge named '{bridge}'")))?
            .ports
            .retain(|p| p.ofport != no);
        self.store
            .save(&next)
            .map_err(|e| ServiceError::Storage(format!("nothing was changed: {e}")))?;
        *state = next;
        self.switch.del_port(bridge, &no.to_string())?;
        Ok(())
    }

    /// One port with its counters.
    pub fn port(&self, bridge: &str, port: &str) -> Result<PortInfo, ServiceError> {
        let no = self.switch.port_no(bridge, port)?;
        self.switch
            .ports(bridge)?
            .into_iter()
            .find(|p| p.port_no == no)
            .ok_or_else(|| ServiceError::NotFound(format!("no port '{port}' on {bridge}")))
    }

    /// The configured entry of a port (type and options), if any.
    pub fn port_entry(&self, bridge: &str, name: &str) -> Option<PortEntry> {
        self.read()
            .bridge(bridge)?
            .ports
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    /// Bridge names.
    pub fn bridges(&self) -> Vec<String> {
        self.read().bridges.iter().map(|b| b.name.clone()).collect()
    }

    /// Port numbers by name.
    fn port_numbers(&self, bridge: &str) -> Result<BTreeMap<String, u32>, ServiceError> {
        Ok(self
            .switch
            .ports(bridge)?
            .into_iter()
            .map(|p| (p.name, p.port_no))
            .collect())
    }

    fn parse(&self, bridge: &str, text: &str, mode: FlowMode) -> Result<ParsedFlow, ServiceError> {
        let ports = self.port_numbers(bridge)?;
        parse_with(text, mode, &|name: &str| ports.get(name).copied())
    }

    /// A match in `ovs-ofctl` syntax, port names resolved on `bridge` (traces, filters).
    pub fn parse_match(&self, bridge: &str, text: &str) -> Result<flow_table::Match, ServiceError> {
        Ok(self.parse(bridge, text, FlowMode::Delete)?.r#match)
    }

    fn port_names(&self, bridge: &str) -> Result<BTreeMap<u32, String>, ServiceError> {
        Ok(self
            .switch
            .ports(bridge)?
            .into_iter()
            .map(|p| (p.port_no, p.name))
            .collect())
    }

    /// Runs a flow change on `bridge` under the configuration's read lock (the bridge cannot
    /// go meanwhile; other bridges' flow changes go on), then compacts the journal if due.
    fn change_flows<T>(
        &self,
        bridge: &str,
        size: impl FnOnce(&T) -> usize,
        f: impl FnOnce() -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let out = {
            let state = self.read();
            if state.bridge(bridge).is_none() {
                return Err(ServiceError::NotFound(format!(
                    "no bridge named '{bridge}'"
                )));
            }
            f()?
        };
        self.maybe_compact();
        // A bulk change leaves its request's strings freed inside the heap.
        if size(&out) >= BULK_RULES {
            switch_core::memory::release_free_heap();
        }
        Ok(out)
    }

    fn record(&self, rec: &Record) -> Result<(), String> {
        self.store.append(rec).map_err(|e| e.to_string())
    }

    /// `add-flow`/`add-flows`: all or nothing. Errors name the offending flow by index.
    pub fn add_flows(&self, bridge: &str, flows: &[String]) -> Result<usize, ServiceError> {
        let ports = self.port_numbers(bridge)?;
        let named = std::cell::Cell::new(false);
        let resolve = |name: &str| {
            named.set(true);
            ports.get(name).copied()
        };
        let mut specs = Vec::with_capacity(flows.len());
        for (i, f) in flows.iter().enumerate() {
            let p = parse_with(f, FlowMode::Add, &resolve).map_err(|e| match e {
                ServiceError::BadRequest(m, Some(mut d)) => {
                    d["index"] = i.into();
                    ServiceError::BadRequest(format!("flow {}: {m}", i + 1), Some(d))
                }
                other => other,
            })?;
            specs.push(p.to_rule_spec());
        }
        // The journal keeps ports by number; flows that named none are kept as given.
        let texts: Vec<String> = if named.get() {
            specs.iter().map(spec_text_of).collect()
        } else {
            flows.to_vec()
        };
        self.add_rules(bridge, specs, Some(texts))
    }

    /// Adds rules given as specs (all or nothing), as `add-flows` does; `texts` are their
    /// journal form when the caller has it (ports by number), else it is printed.
    pub fn add_rules(
        &self,
        bridge: &str,
        specs: Vec<RuleSpec>,
        texts: Option<Vec<String>>,
    ) -> Result<usize, ServiceError> {
        self.add_rules_visible(bridge, specs, texts, switch_core::Visibility::Datapath)
    }

    /// [`Service::add_rules`], returning when the change is as visible as `vis` says.
    pub fn add_rules_visible(
        &self,
        bridge: &str,
        specs: Vec<RuleSpec>,
        texts: Option<Vec<String>>,
        vis: switch_core::Visibility,
    ) -> Result<usize, ServiceError> {
        let n = specs.len();
        let texts = texts.unwrap_or_else(|| specs.iter().map(spec_text_of).collect());
        self.change_flows(
            bridge,
            |_| n,
            || {
                let have = self.switch.n_flows(bridge)?;
                self.limits.check_flows(bridge, have, n)?;
                Ok(self.switch.add_flows_visible(
                    bridge,
                    specs,
                    || {
                        self.record(&Record::Add {
                            bridge: bridge.to_owned(),
                            flows: texts,
                        })
                    },
                    vis,
                )?)
            },
        )?;
        Ok(n)
    }

    /// `del-flows`: `flow` is a match (empty: every flow). Returns how many were removed.
    pub fn del_flows(&self, bridge: &str, flow: &str, strict: bool) -> Result<usize, ServiceError> {
        // The journal says "all" only when it was all: strict with no match selects just the
        // catch-all rule of priority 0.
        let all = flow.trim().is_empty() && !strict;
        let filter = if flow.trim().is_empty() {
            RuleFilter::all()
        } else {
            self.parse(bridge, flow, FlowMode::Delete)?.to_rule_filter()
        };
        self.del_rules(bridge, &filter, strict, all)
    }

    /// Removes the rules `filter` selects, as `del-flows` does; `all` says that it selects
    /// every rule (the journal then records just that). Returns how many went.
    pub fn del_rules(
        &self,
        bridge: &str,
        filter: &RuleFilter,
        strict: bool,
        all: bool,
    ) -> Result<usize, ServiceError> {
        self.change_flows(
            bridge,
            |n| *n,
            || {
                let gone = self
                    .switch
                    .del_flows_recorded(bridge, filter, strict, |gone| {
                        self.record(&Record::Del {
                            bridge: bridge.to_owned(),
                            all,
                            flows: if all { Vec::new() } else { texts_of(gone) },
                        })
                    })?;
                Ok(gone.len())
            },
        )
    }

    /// `mod-flows`: returns how many rules changed.
    pub fn mod_flows(&self, bridge: &str, flow: &str, strict: bool) -> Result<usize, ServiceError> {
        let p = self.parse(bridge, flow, FlowMode::Modify)?;
        self.mod_rules(bridge, &p.to_rule_filter(), &p.actions, strict)
    }

    /// Replaces the actions of the rules `filter` selects, as `mod-flows` does. Returns how
    /// many changed.
    pub fn mod_rules(
        &self,
        bridge: &str,
        filter: &RuleFilter,
        actions: &[flow_table::Action],
        strict: bool,
    ) -> Result<usize, ServiceError> {
        self.change_flows(
            bridge,
            |n| *n,
            || {
                Ok(self
                    .switch
                    .mod_flows_recorded(bridge, filter, actions, strict, |changed| {
                        self.record(&Record::Mod {
                            bridge: bridge.to_owned(),
                            flows: texts_of(changed),
                        })
                    })?)
            },
        )
    }

    /// The running configuration in the state file's TOML (flows with ports by number): what
    /// a restart would restore.
    pub fn dump_config(&self) -> Result<String, ServiceError> {
        let mut state = self.read().clone();
        for b in &mut state.bridges {
            b.flows = texts_of(&self.switch.rules_snapshot(&b.name)?.rules());
        }
        state.journal = 0;
        Ok(state::to_toml(&state))
    }

    /// The rules of a bridge with fresh counters.
    pub fn flows(&self, bridge: &str) -> Result<Vec<std::sync::Arc<Rule>>, ServiceError> {
        Ok(self.switch.flows(bridge)?)
    }

    /// Port names by number (for printing flows).
    pub fn names(&self, bridge: &str) -> Result<BTreeMap<u32, String>, ServiceError> {
        self.port_names(bridge)
    }
}

/// A rule as the state file keeps it: `dump-flows` syntax without counters, which
/// [`flow_syntax::parse_flow`] reads back to the same rule.
pub fn spec_text(r: &Rule, names: &dyn Fn(u32) -> Option<String>) -> String {
    let mut parts = Vec::new();
    if r.table != 0 {
        parts.push(format!("table={}", r.table));
    }
    if r.cookie != 0 {
        parts.push(format!("cookie={:#x}", r.cookie));
    }
    if r.idle_timeout != 0 {
        parts.push(format!("idle_timeout={}", r.idle_timeout));
    }
    if r.hard_timeout != 0 {
        parts.push(format!("hard_timeout={}", r.hard_timeout));
    }
    if r.send_flow_rem {
        parts.push("send_flow_rem".into());
    }
    parts.push(format!("priority={}", r.priority));
    let m = flow_syntax::format_match_named(&r.r#match, names);
    if !m.is_empty() {
        parts.push(m);
    }
    format!(
        "{} actions={}",
        parts.join(","),
        flow_syntax::format_actions(&r.actions, names)
    )
}

/// The configuration a restart would restore from `store` (flows included, ports by number),
/// read without changing anything: the snapshot with the journal's records applied.
pub fn saved_state(store: &Store) -> Result<State, String> {
    let (recovered, _, _) = store.read().map_err(|e| e.to_string())?;
    let restored = restore::replay(recovered, 0)?;
    Ok(restore::with_flows(restored))
}

/// Parses a flow; an error names the offending token and its position.
fn parse_with(
    text: &str,
    mode: FlowMode,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<ParsedFlow, ServiceError> {
    flow_syntax::parse_flow(text, mode, ports).map_err(|e| {
        ServiceError::BadRequest(
            format!("bad flow: {e}"),
            Some(serde_json::json!({
                "flow": text,
                "position": e.pos,
                "token": e.token,
            })),
        )
    })
}

/// Rules as the journal keeps them (ports by number).
fn texts_of(rules: &[std::sync::Arc<Rule>]) -> Vec<String> {
    rules.iter().map(|r| spec_text(r, &|_| None)).collect()
}

/// A spec as the journal keeps it (ports by number).
fn spec_text_of(s: &RuleSpec) -> String {
    spec_text(
        &Rule {
            table: s.table,
            priority: s.priority,
            r#match: s.r#match,
            actions: s.actions.as_slice().into(),
            cookie: s.cookie,
            idle_timeout: s.idle_timeout,
            hard_timeout: s.hard_timeout,
            send_flow_rem: s.send_flow_rem,
            seq: 0,
            created_ms: 0,
            stats: Default::default(),
        },
        &|_| None,
    )
}

/// The spec that re-creates a rule (same table, priority, match, actions, cookie, timeouts).
pub fn spec_of(r: &Rule) -> RuleSpec {
    RuleSpec {
        table: r.table,
        priority: r.priority,
        r#match: r.r#match,
        actions: r.actions.to_vec(),
        cookie: r.cookie,
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        send_flow_rem: r.send_flow_rem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, ty: &str, options: &[(&str, &str)]) -> PortEntry {
        PortEntry {
            name: name.into(),
            r#type: ty.into(),
            ofport: 0,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn config(name: &str, ty: &str, options: &[(&str, &str)]) -> Result<PortConfig, String> {
        port_config(&entry(name, ty, options), Path::new("/run/vswitch")).map_err(|e| match e {
            ServiceError::BadRequest(m, _) => m,
            other => panic!("not a validation error: {other:?}"),
        })
    }

    #[test]
    fn vhostuser_sockets_live_in_the_run_dir() {
        assert_eq!(
            config("vhu0", "vhostuser", &[]),
            Ok(PortConfig::VhostUser {
                socket: "/run/vswitch/vhu0".into(),
                client: false,
                mtu_request: None,
            })
        );
        assert_eq!(
            config("vhu0", "vhostuser", &[]).unwrap().type_name(),
            "vhostuser"
        );
    }

    #[test]
    fn vhostuser_names_cannot_leave_or_hide_in_the_run_dir() {
        for name in [
            "../etc", "..", ".", ".hidden", "a..b", "a/b", "/abs", "a\0b", "",
        ] {
            let e = config(name, "vhostuser", &[]).unwrap_err();
            assert!(e.contains("invalid port name"), "{name:?}: {e}");
        }
        // Dots inside a name are fine, as in interface names.
        assert!(config("vm1.eth0", "vhostuser", &[]).is_ok());
    }

    #[test]
    fn vhostuser_socket_paths_must_fit_sun_path() {
        let dir = format!("/{}", "d".repeat(100));
        let e = port_config(&entry("vhu0123456", "vhostuser", &[]), Path::new(&dir)).unwrap_err();
        assert!(format!("{e:?}").contains("longer than 107 bytes"), "{e:?}");
    }

    #[test]
    fn vhostuser_takes_no_options() {
        let e = config("vhu0", "vhostuser", &[("vhost-server-path", "/tmp/x")]).unwrap_err();
        assert_eq!(
            e,
            "unknown option \"vhost-server-path\" for type=vhostuser (known: mtu_request, tag, trunks, vlan_mode)"
        );
        assert_eq!(
            config("vhu0", "vhostuser", &[("mtu_request", "9000")]),
            Ok(PortConfig::VhostUser {
                socket: "/run/vswitch/vhu0".into(),
                client: false,
                mtu_request: Some(9000),
            })
        );
        for bad in ["67", "65536", "x", ""] {
            let e = config("vhu0", "vhostuser", &[("mtu_request", bad)]).unwrap_err();
            assert!(e.contains("want an MTU from 68 to 65535"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn vhostuserclient_needs_an_absolute_server_path() {
        assert_eq!(
            config(
                "vm1",
                "vhostuserclient",
                &[("vhost-server-path", "/run/vm1.sock")]
            ),
            Ok(PortConfig::VhostUser {
                socket: "/run/vm1.sock".into(),
                client: true,
                mtu_request: None,
            })
        );
        let e = config("vm1", "vhostuserclient", &[]).unwrap_err();
        assert!(e.contains("needs vhost-server-path=PATH"), "{e}");
        for bad in [
            "vm1.sock",
            "./vm1.sock",
            "",
            &format!("/{}", "x".repeat(107)),
        ] {
            let e = config("vm1", "vhostuserclient", &[("vhost-server-path", bad)]).unwrap_err();
            assert!(e.contains("vhost-server-path="), "{bad:?}: {e}");
            assert!(
                e.contains("absolute path of at most 107 bytes"),
                "{bad:?}: {e}"
            );
        }
        let e = config(
            "vm1",
            "vhostuserclient",
            &[("vhost-server-path", "/run/vm1.sock"), ("server", "1")],
        )
        .unwrap_err();
        assert_eq!(
            e,
            "unknown option \"server\" for type=vhostuserclient (known: vhost-server-path, mtu_request, tag, trunks, vlan_mode)"
        );
    }

    #[test]
    fn dummy_ports_take_only_vlan_settings() {
        assert_eq!(config("d0", "dummy", &[]), Ok(PortConfig::Dummy));
        assert_eq!(
            config("d0", "dummy", &[("tag", "10")]),
            Ok(PortConfig::Dummy)
        );
        assert_eq!(config("d0", "dummy", &[]).unwrap().type_name(), "dummy");
        let e = config("d0", "dummy", &[("peer", "x")]).unwrap_err();
        assert_eq!(
            e,
            "unknown option \"peer\" for type=dummy (known: tag, trunks, vlan_mode)"
        );
    }

    #[test]
    fn datapath_types_are_netdev_or_dummy() {
        assert_eq!(datapath_type(None).unwrap(), DatapathType::Netdev);
        assert_eq!(datapath_type(Some("dummy")).unwrap(), DatapathType::Dummy);
        match datapath_type(Some("system")) {
            Err(ServiceError::BadRequest(m, Some(d))) => {
                assert!(m.contains("datapath_type"), "{m}");
                assert_eq!(d["field"], "datapath_type");
            }
            other => panic!("{other:?}"),
        }
        // The datapath's refusals of dummy operations map to their statuses' classes.
        let full = ports::DummyFull {
            offered: 1,
            waiting: 4096,
            capacity: 4096,
        };
        assert!(matches!(
            ServiceError::from(SwitchError::DummyFull("d0".into(), full)),
            ServiceError::Unavailable(_)
        ));
        assert!(matches!(
            ServiceError::from(SwitchError::NotDummy("t0".into())),
            ServiceError::Conflict(_)
        ));
    }

    #[test]
    fn other_types_keep_their_options() {
        assert_eq!(
            config("eth1", "system", &[("mode", "afpacket")]),
            Ok(PortConfig::System {
                mode: SystemMode::AfPacket
            })
        );
        assert_eq!(
            config("t0", "tap", &[]),
            Ok(PortConfig::Tap { offloads: true })
        );
        let e = config("t0", "dpdkvhostuser", &[]).unwrap_err();
        assert!(e.contains("vhostuser, vhostuserclient"), "{e}");
        let e = config("eth1", "system", &[("vhost-server-path", "/x")]).unwrap_err();
        assert!(e.contains("unknown option"), "{e}");
    }
}

// Port VLAN settings, patch and VXLAN ports, mirrors, namespace attachment (issue 8).
pub mod controller;
pub mod net;

pub mod journal;
mod restore;
pub mod state;
