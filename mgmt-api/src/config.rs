//! vswitchd's configuration file (TOML), with an embedded default.

use std::path::Path;

use serde::Deserialize;

/// The embedded default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The REST API section.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// `HOST:PORT` to listen on, or `unix:/PATH` for a unix socket (created with mode 0600).
    pub listen: String,
    /// Bearer token required on every request when set.
    pub token: Option<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Requests served at once; more are answered 503 at once rather than queued.
    pub max_clients: usize,
}

impl ApiConfig {
    /// The socket path when `listen` is `unix:/PATH`.
    pub fn unix_path(&self) -> Option<&Path> {
        self.listen.strip_prefix("unix:").map(Path::new)
    }
}

/// The datapath section.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatapathConfig {
    /// One entry per PMD thread: its core. Empty: one unpinned PMD.
    pub pmd_cores: Vec<usize>,
    /// EMC insertion probability is 1 / this (0 disables the EMC).
    pub emc_insert_inv_prob: u32,
    /// Megaflow limit per PMD.
    pub flow_limit: usize,
    /// Most OpenFlow rules a bridge holds; `add-flows` beyond it is refused.
    pub max_flows: usize,
    /// Most ports a bridge holds (not counting its own internal port).
    pub max_ports: usize,
    /// Idle megaflows are removed after this long.
    pub megaflow_idle_ms: u64,
    /// MAC learning aging time.
    pub mac_aging_secs: u64,
    /// Where `vhostuser` ports create their sockets (`<run_dir>/<port name>`, as OVS does
    /// under /var/run/openvswitch).
    pub run_dir: std::path::PathBuf,
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// REST API.
    pub api: ApiConfig,
    /// Datapath.
    pub datapath: DatapathConfig,
    /// The state directory's durability.
    #[serde(default)]
    pub state: StateConfig,
}

/// `[state]`: how changes reach the disk.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `batch`: each change is written before it is answered (`kill -9` loses nothing) and
    /// flushed to disk within 10 ms; `always`: flushed before it is answered.
    #[serde(default)]
    pub sync: crate::service::journal::SyncMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Partial {
    api: Option<toml::Table>,
    datapath: Option<toml::Table>,
    state: Option<toml::Table>,
}

impl DaemonConfig {
    /// The embedded default.
    pub fn default_config() -> DaemonConfig {
        toml::from_str(DEFAULT_CONFIG).expect("the embedded default configuration parses")
    }

    /// Parses a configuration text; keys it leaves out keep their default. Errors name the
    /// line.
    pub fn parse(text: &str) -> Result<DaemonConfig, String> {
        let user: Partial = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut merged: toml::Table = toml::from_str(DEFAULT_CONFIG).expect("default parses");
        for (section, table) in [
            ("api", user.api),
            ("datapath", user.datapath),
            ("state", user.state),
        ] {
            if let Some(t) = table {
                let base = merged
                    .get_mut(section)
                    .and_then(|v| v.as_table_mut())
                    .expect("default has every section");
                base.extend(t);
            }
        }
        let cfg: DaemonConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<DaemonConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        DaemonConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(path) = self.api.unix_path() {
            if !path.is_absolute() {
                return Err(format!(
                    "api.listen = {:?}: want unix:/ABSOLUTE/PATH",
                    self.api.listen
                ));
            }
            return self.validate_datapath();
        }
        let addr: std::net::SocketAddr = self
            .api
            .listen
            .parse()
            .map_err(|e| format!("api.listen = {:?}: {e} (want HOST:PORT)", self.api.listen))?;
        if !addr.ip().is_loopback() && self.api.token.is_none() {
            return Err(format!(
                "api.listen = {:?} is not a loopback address: set api.token to protect it",
                self.api.listen
            ));
        }
        self.validate_datapath()
    }

    fn validate_datapath(&self) -> Result<(), String> {
        if self.api.max_clients == 0 {
            return Err("api.max_clients = 0: want at least 1".into());
        }
        // Sockets are handed to VMs by path: a relative one would depend on the daemon's cwd.
        if !self.datapath.run_dir.is_absolute() {
            return Err(format!(
                "datapath.run_dir = {:?}: want an absolute path",
                self.datapath.run_dir
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_localhost_with_one_pmd() {
        let c = DaemonConfig::default_config();
        assert_eq!(c.api.listen, "127.0.0.1:8080");
        assert!(c.datapath.pmd_cores.is_empty());
        assert_eq!(DaemonConfig::parse("").unwrap(), c);
    }

    #[test]
    fn partial_files_override_defaults() {
        let c = DaemonConfig::parse("[datapath]\npmd_cores = [1]\n").unwrap();
        assert_eq!(c.datapath.pmd_cores, vec![1]);
        assert_eq!(c.api.listen, "127.0.0.1:8080");
    }

    #[test]
    fn the_run_dir_defaults_like_ovs_and_can_be_moved() {
        let c = DaemonConfig::default_config();
        assert_eq!(c.datapath.run_dir, Path::new("/run/vswitch"));
        let c = DaemonConfig::parse("[datapath]\nrun_dir = \"/var/run/vs\"\n").unwrap();
        assert_eq!(c.datapath.run_dir, Path::new("/var/run/vs"));
        let e = DaemonConfig::parse("[datapath]\nrun_dir = \"run\"\n").unwrap_err();
        assert!(e.contains("run_dir"), "{e}");
    }

    #[test]
    fn errors_name_the_line_or_the_key() {
        let e = DaemonConfig::parse("[api]\nlisten = 8080\n").unwrap_err();
        assert!(e.contains("listen"), "{e}");
        let e = DaemonConfig::parse("[api]\nlisten = \"x\"\n[datapath\n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        let e = DaemonConfig::parse("[datapath]\npmd_core = [1]\n").unwrap_err();
        assert!(e.contains("pmd_core"), "{e}");
        let e = DaemonConfig::parse("[api]\nlisten = \"0.0.0.0:8080\"\n").unwrap_err();
        assert!(e.contains("token"), "{e}");
        assert!(DaemonConfig::parse("[api]\nlisten = \"0.0.0.0:8080\"\ntoken = \"t\"\n").is_ok());
    }

    #[test]
    fn the_state_sync_mode_defaults_to_batch_and_takes_always() {
        use crate::service::journal::SyncMode;
        assert_eq!(DaemonConfig::default_config().state.sync, SyncMode::Batch);
        let c = DaemonConfig::parse("[state]\nsync = \"always\"\n").unwrap();
        assert_eq!(c.state.sync, SyncMode::Always);
        let e = DaemonConfig::parse("[state]\nsync = \"sometimes\"\n").unwrap_err();
        assert!(
            e.contains("sometimes") || e.contains("unknown variant"),
            "{e}"
        );
        let e = DaemonConfig::parse("[state]\nfsync = true\n").unwrap_err();
        assert!(e.contains("fsync"), "{e}");
    }

    #[test]
    fn the_api_can_listen_on_a_unix_socket_without_a_token() {
        let c = DaemonConfig::parse("[api]\nlisten = \"unix:/run/vswitch/api.sock\"\n").unwrap();
        assert_eq!(c.api.unix_path(), Some(Path::new("/run/vswitch/api.sock")));
        let e = DaemonConfig::parse("[api]\nlisten = \"unix:api.sock\"\n").unwrap_err();
        assert!(e.contains("unix:/ABSOLUTE/PATH"), "{e}");
    }

    #[test]
    fn limits_have_defaults_and_zero_clients_is_refused() {
        let c = DaemonConfig::default_config();
        assert!(c.api.max_clients > 0 && c.datapath.max_flows > 0 && c.datapath.max_ports > 0);
        let c = DaemonConfig::parse("[datapath]\nmax_flows = 10\nmax_ports = 2\n").unwrap();
        assert_eq!((c.datapath.max_flows, c.datapath.max_ports), (10, 2));
        let e = DaemonConfig::parse("[api]\nmax_clients = 0\n").unwrap_err();
        assert!(e.contains("max_clients"), "{e}");
    }
}
