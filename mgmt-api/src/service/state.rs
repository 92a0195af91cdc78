//! The persistent configuration: bridges, their ports and their flows, as a snapshot in a
//! TOML file of the state directory followed by a journal of the changes since.
//!
//! A change is one record appended to the journal (see [`super::journal`]) before it is
//! answered, so its cost follows its size, not the configuration's. When the journal has grown
//! past half the snapshot (and a few MiB), compaction starts the next journal file and writes a
//! new snapshot from the configuration as it was at that point: to a temporary file, flushed to
//! disk, renamed over the old one (then the directory is flushed), so a crash or `kill -9` at
//! any moment leaves the old snapshot with its journals or the new one, never a mix. The
//! snapshot names the journal that follows it. A file that does not parse stops the daemon with
//! the line of the error; it is never overwritten.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::journal::{self, Journal, Record, SyncMode};

/// File name of the state inside the state directory.
pub const STATE_FILE: &str = "state.toml";

/// A port as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PortEntry {
    /// Port name (also the kernel interface or tap name).
    pub name: String,
    /// Port type: `system`, `tap`, `internal`, `vhostuser`, `vhostuserclient`, `patch`,
    /// `vxlan`, `dummy`.
    #[serde(rename = "type")]
    pub r#type: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// Type-specific options (`mode=afxdp|afpacket|auto` for system ports, `offloads=true|false`
    /// for taps, `vhost-server-path=PATH` for vhostuserclient ports).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A bridge as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeEntry {
    /// Bridge name.
    pub name: String,
    /// `netdev` (its own port is a tap) or `dummy` (a port in memory). Written only when not
    /// `netdev`, so files of bridges that never had one stay as they were.
    #[serde(default = "netdev", skip_serializing_if = "is_netdev")]
    pub datapath_type: String,
    /// Ports, in the order they were added (the internal port is implicit).
    #[serde(default)]
    pub ports: Vec<PortEntry>,
    /// Flows in ovs-ofctl syntax, as `dump-flows` would print them without counters.
    #[serde(default)]
    pub flows: Vec<String>,
    /// Mirrors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorEntry>,
    /// Namespaces attached with `attach-netns` (their ports are in `ports`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<NetnsEntry>,
    /// OpenFlow controller targets (`set-controller`), as OVS writes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<String>,
    /// `standalone` or `secure` (`set-fail-mode`); unset behaves as `standalone`, as in OVS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<String>,
    /// The OpenFlow datapath id (16 hex digits), chosen when the bridge was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath_id: Option<String>,
}

fn netdev() -> String {
    "netdev".to_owned()
}

fn is_netdev(t: &str) -> bool {
    t == "netdev"
}

/// A mirror as configured (`add-mirror`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MirrorEntry {
    /// Name, unique in the bridge.
    pub name: String,
    /// Mirror what these ports receive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select_src_port: Vec<String>,
    /// Mirror what is sent to these ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select_dst_port: Vec<String>,
    /// Mirror the packets of these VLANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select_vlan: Vec<u16>,
    /// Mirror every packet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub select_all: bool,
    /// The port the copies go to.
    pub output_port: String,
}

/// A network namespace attached to a bridge with `attach-netns`: a veth pair whose `port`
/// end is a switch port and whose other end is `ifname` inside `netns`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetnsEntry {
    /// Namespace name (as `ip netns` knows it).
    pub netns: String,
    /// The switch port (the veth end left in the switch's namespace).
    pub port: String,
    /// The interface inside the namespace.
    pub ifname: String,
}

/// Everything the daemon must restore after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The journal whose records follow this snapshot (`journal.N`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub journal: u64,
    /// Bridges.
    #[serde(default)]
    pub bridges: Vec<BridgeEntry>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl State {
    /// The bridge of that name.
    pub fn bridge(&self, name: &str) -> Option<&BridgeEntry> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// The bridge of that name, writable.
    pub fn bridge_mut(&mut self, name: &str) -> Option<&mut BridgeEntry> {
        self.bridges.iter_mut().find(|b| b.name == name)
    }
}

/// Why the state could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    /// The file could not be read or written.
    Io(PathBuf, io::Error),
    /// The file is not valid: the message names the line.
    Parse(PathBuf, String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            StoreError::Parse(p, e) => write!(
                f,
                "{}: {e}(the file was left as it is; fix or remove it to start)",
                p.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// `state` in the state file's TOML, with its header comment.
pub fn to_toml(state: &State) -> String {
    let mut text = String::from(
        "# vswitchd state: bridges, ports and flows, followed by the changes in journal.N \
         (N below).\n\n",
    );
    // Plain strings, maps and lists: serialising cannot fail.
    text.push_str(&toml::to_string(state).expect("the state serialises"));
    text
}

/// Journal bytes below which compaction never starts.
pub const COMPACT_MIN_BYTES: u64 = 4 << 20;

/// The snapshot and journals of a state directory. Clones share the journal.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    dir: PathBuf,
    sync: SyncMode,
    journal: OnceLock<Arc<Journal>>,
    /// Bytes of the last snapshot written or read.
    snapshot_bytes: AtomicU64,
    compacting: AtomicBool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// The snapshot and the journal records that follow it, as [`Store::recover`] found them.
#[derive(Debug)]
pub struct Recovered {
    /// The snapshot (with its flows).
    pub snapshot: State,
    /// The records since, oldest first.
    pub records: Vec<Record>,
}

impl Store {
    /// A store in `dir` (created, mode 0700, if missing); changes reach the disk as
    /// [`SyncMode::Batch`] says.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, SyncMode::default())
    }

    /// A store in `dir` with the given durability.
    pub fn open_with(dir: &Path, sync: SyncMode) -> Result<Store, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.to_owned(), e))?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                dir: dir.to_owned(),
                sync,
                journal: OnceLock::new(),
                snapshot_bytes: AtomicU64::new(0),
                compacting: AtomicBool::new(false),
            }),
        })
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.inner.dir.join(STATE_FILE)
    }

    /// Reads the snapshot alone; a missing file is an empty state.
    pub fn load(&self) -> Result<State, StoreError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(StoreError::Io(path, e)),
        };
        self.inner
            .snapshot_bytes
            .store(text.len() as u64, Ordering::Relaxed);
        toml::from_str(&text).map_err(|e| StoreError::Parse(path, e.to_string()))
    }

    /// Reads the snapshot and the journals after it (a torn last record left out), changing
    /// nothing. Also returns the generation and whole-record size of the last journal.
    pub fn read(&self) -> Result<(Recovered, u64, u64), StoreError> {
        let snapshot = self.load()?;
        let dir = &self.inner.dir;
        let mut records = Vec::new();
        let mut generation = snapshot.journal;
        let mut size = 0;
        loop {
            let p = journal::path(dir, generation);
            if !p.exists() {
                break;
            }
            let r = journal::read(&p).map_err(|e| StoreError::Parse(p.clone(), e))?;
            if r.torn > 0 {
                tracing::warn!(
                    "{}: dropped a last record cut short ({} bytes): it was never acknowledged",
                    p.display(),
                    r.torn
                );
            }
            records.extend(r.records);
            size = r.good_len;
            if !journal::path(dir, generation + 1).exists() {
                break;
            }
            generation += 1;
        }
        Ok((Recovered { snapshot, records }, generation, size))
    }

    /// Reads the snapshot and the journals after it, removes journals an earlier compaction
    /// left behind, and opens the last journal for appends (cutting off a torn last record).
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let (recovered, generation, size) = self.read()?;
        let dir = &self.inner.dir;
        // Journals older than the snapshot are already in it.
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let older = e
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("journal."))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n < recovered.snapshot.journal);
                if older {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let j = Journal::open(dir, generation, size, self.inner.sync)
            .map_err(|e| StoreError::Io(journal::path(dir, generation), io::Error::other(e)))?;
        let _ = self.inner.journal.set(j);
        Ok(recovered)
    }

    fn journal(&self) -> Result<&Arc<Journal>, StoreError> {
        self.inner.journal.get().ok_or_else(|| {
            StoreError::Io(
                self.inner.dir.clone(),
                io::Error::other("the store was not recovered"),
            )
        })
    }

    /// Appends a change; returns once it is as durable as the store's mode promises.
    pub fn append(&self, rec: &Record) -> Result<(), StoreError> {
        self.journal()?
            .append(rec)
            .map_err(|e| StoreError::Io(self.inner.dir.clone(), io::Error::other(e)))
    }

    /// Records the bridges, ports, mirrors and namespaces of `state` (its flows are not
    /// written: they have records of their own).
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let bridges = state
            .bridges
            .iter()
            .map(|b| BridgeEntry {
                flows: Vec::new(),
                ..b.clone()
            })
            .collect();
        self.append(&Record::Meta { bridges })
    }

    /// True when the journal has grown enough that a new snapshot is worth writing and no
    /// compaction is running; the caller then owns the compaction until
    /// [`Store::compaction_done`].
    pub fn start_compaction(&self) -> bool {
        let Ok(j) = self.journal() else { return false };
        let snap = self.inner.snapshot_bytes.load(Ordering::Relaxed);
        if j.size() < COMPACT_MIN_BYTES.max(snap / 2) {
            return false;
        }
        !self.inner.compacting.swap(true, Ordering::AcqRel)
    }

    /// Starts the next journal file (changes from now on go there); returns its generation,
    /// which the snapshot of the state as it is now must name.
    pub fn rotate(&self) -> Result<u64, StoreError> {
        self.journal()?
            .rotate()
            .map_err(|e| StoreError::Io(self.inner.dir.clone(), io::Error::other(e)))
    }

    /// Ends a compaction started with [`Store::start_compaction`].
    pub fn compaction_done(&self) {
        self.inner.compacting.store(false, Ordering::Release);
    }

    /// Writes `state` (flows included) as the snapshot, atomically and durably, then removes
    /// the journals it replaces (those before `state.journal`).
    pub fn write_snapshot(&self, state: &State) -> Result<(), StoreError> {
        let dir = &self.inner.dir;
        let path = self.path();
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let io_err = |e| StoreError::Io(path.clone(), e);
        let text = to_toml(state);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        f.write_all(text.as_bytes()).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_err)?;
        // The rename itself must reach the disk before the old journals go.
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
        self.inner
            .snapshot_bytes
            .store(text.len() as u64, Ordering::Relaxed);
        for g in (0..state.journal).rev() {
            match fs::remove_file(journal::path(dir, g)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => tracing::warn!("removing journal.{g}: {e}"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            journal: 0,
            bridges: vec![BridgeEntry {
                name: "br0".into(),
                datapath_type: "netdev".into(),
                ports: vec![PortEntry {
                    name: "eth1".into(),
                    r#type: "system".into(),
                    ofport: 1,
                    options: [("mode".to_string(), "afpacket".to_string())].into(),
                }],
                flows: vec!["priority=0 actions=NORMAL".into()],
                controllers: vec!["tcp:127.0.0.1:6653".into()],
                fail_mode: Some("secure".into()),
                datapath_id: Some("0000020000000001".into()),
                mirrors: vec![],
                attached: vec![],
            }],
        }
    }

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), State::default());
        store.write_snapshot(&sample()).unwrap();
        assert_eq!(store.load().unwrap(), sample());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(STATE_FILE)]);
    }

    #[test]
    fn vhost_ports_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut state = sample();
        state.bridges[0].ports.extend([
            // Server mode: the socket is <run_dir>/<name>, so the name and type suffice.
            PortEntry {
                name: "vhu0".into(),
                r#type: "vhostuser".into(),
                ofport: 2,
                options: BTreeMap::new(),
            },
            PortEntry {
                name: "vm1".into(),
                r#type: "vhostuserclient".into(),
                ofport: 3,
                options: [("vhost-server-path".to_string(), "/run/vm1.sock".to_string())].into(),
            },
        ]);
        store.write_snapshot(&state).unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.contains("type = \"vhostuserclient\""), "{text}");
        assert!(text.contains("vhost-server-path"), "{text}");
        assert_eq!(store.load().unwrap(), state);
    }

    #[test]
    fn the_datapath_type_is_written_when_not_netdev() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut state = sample();
        store.write_snapshot(&state).unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains("datapath_type"), "{text}");
        state.bridges[0].datapath_type = "dummy".into();
        state.bridges[0].ports[0].r#type = "dummy".into();
        state.bridges[0].ports[0].options.clear();
        store.write_snapshot(&state).unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.contains("datapath_type = \"dummy\""), "{text}");
        assert_eq!(store.load().unwrap(), state);
    }

    #[test]
    fn files_written_before_vhost_ports_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // As earlier versions wrote it: no options table on ports that had none.
        let old = "# vswitchd state\n\n[[bridges]]\nname = \"br0\"\n\
                   flows = [\"priority=0 actions=NORMAL\"]\n\n\
                   [[bridges.ports]]\nname = \"t0\"\ntype = \"tap\"\nofport = 1\n\n\
                   [[bridges.ports]]\nname = \"eth1\"\ntype = \"system\"\nofport = 2\n\n\
                   [bridges.ports.options]\nmode = \"afpacket\"\n";
        fs::write(store.path(), old).unwrap();
        let state = store.load().unwrap();
        let ports = &state.bridge("br0").unwrap().ports;
        assert_eq!(ports.len(), 2);
        assert!(ports[0].options.is_empty());
        assert_eq!(ports[1].options["mode"], "afpacket");
        assert_eq!(state.bridges[0].flows, ["priority=0 actions=NORMAL"]);
        assert_eq!(state.bridges[0].datapath_type, "netdev");
    }

    #[test]
    fn a_broken_file_names_the_line_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let broken = "[[bridges]]\nname = \"br0\"\nports = 7\n";
        fs::write(store.path(), broken).unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        assert_eq!(fs::read_to_string(store.path()).unwrap(), broken);
    }
}
