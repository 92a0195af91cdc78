//! The journal: every acknowledged change as one appended record, so a change costs what it
//! changed, not the size of the whole configuration.
//!
//! Files `journal.N` in the state directory follow the snapshot (`state.toml`) that names
//! `N`; compaction (see [`super::state`]) starts `journal.N+1` and folds the older ones into a
//! new snapshot. A record is one line: the CRC-32 of its JSON in hex, a space, the JSON. A
//! last line cut short by a crash (no newline, or a checksum that does not match) is a change
//! that was never acknowledged: it is dropped, and the file cut back to the last whole record.
//! A bad line before the last is damage, and stops the daemon with its line number.
//!
//! Durability: a record is written (`write(2)`) before the change is answered, so `kill -9`
//! or a crash of the daemon loses nothing acknowledged. With [`SyncMode::Always`] the answer
//! also waits for `fdatasync` (one call serves every change written meanwhile: group commit);
//! with [`SyncMode::Batch`] a flusher thread calls it within [`FLUSH_EVERY`], which bounds what
//! a power loss can take.
//!
//! The file is opened for each append (a few microseconds next to the rest of a change) so
//! that the daemon holds nothing open in the state directory: a directory that became
//! read-only is noticed at the next change, which is then refused and undone.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state::BridgeEntry;

/// Longest time a written record waits for `fdatasync` in [`SyncMode::Batch`].
pub const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// When an acknowledged change reaches the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Written before the answer, flushed to disk within [`FLUSH_EVERY`] (as OVSDB's
    /// non-durable transactions): `kill -9` loses nothing, a power loss at most that window.
    #[default]
    Batch,
    /// Flushed to disk before the answer (group commit).
    Always,
}

/// One change, as replayed at start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Record {
    /// The bridges, ports, mirrors and namespaces (everything but flows) after the change.
    /// A bridge new here starts with the default flows; one missing is gone with its flows.
    Meta {
        /// Bridges without their flows.
        bridges: Vec<BridgeEntry>,
    },
    /// Flows added (ports by number), as `add-flows` takes them.
    Add {
        /// Bridge.
        bridge: String,
        /// Flows.
        flows: Vec<String>,
    },
    /// Flows removed: every flow (`all`), or these, each by table, priority and match.
    Del {
        /// Bridge.
        bridge: String,
        /// Every flow of the bridge.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        all: bool,
        /// The removed flows.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flows: Vec<String>,
    },
    /// Flows whose actions changed, as they are now (found by table, priority and match).
    Mod {
        /// Bridge.
        bridge: String,
        /// The changed flows.
        flows: Vec<String>,
    },
}

/// The path of journal `generation` in `dir`.
pub fn path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("journal.{generation}"))
}

fn frame(rec: &Record) -> Vec<u8> {
    let json = serde_json::to_string(rec).expect("records serialize");
    let mut line = Vec::with_capacity(json.len() + 10);
    write!(line, "{:08x} ", crc32fast::hash(json.as_bytes())).expect("vec write");
    line.extend_from_slice(json.as_bytes());
    line.push(b'\n');
    line
}

/// What [`read`] found in a journal file.
#[derive(Debug, Default)]
pub struct Read {
    /// The whole records, in order.
    pub records: Vec<Record>,
    /// Bytes of whole records (the file is cut back to this when longer).
    pub good_len: u64,
    /// Bytes after them: a record cut short by a crash.
    pub torn: u64,
}

/// Reads a journal file; a missing file reads as empty.
pub fn read(path: &Path) -> Result<Read, String> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Read::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut out = Read::default();
    let mut at = 0usize;
    let mut line_no = 0usize;
    while at < data.len() {
        line_no += 1;
        let Some(nl) = data[at..].iter().position(|&b| b == b'\n') else {
            break; // no newline: the write was cut short
        };
        let line = &data[at..at + nl];
        let last = at + nl + 1 == data.len();
        match parse_line(line) {
            Ok(rec) => out.records.push(rec),
            // Only the last line can be torn; a bad one earlier is damage.
            Err(_) if last => break,
            Err(e) => {
                return Err(format!(
                    "{} line {line_no}: {e} (the file was left as it is; fix or remove it to \
                     start)",
                    path.display()
                ))
            }
        }
        at += nl + 1;
    }
    out.good_len = at as u64;
    out.torn = (data.len() - at) as u64;
    Ok(out)
}

fn parse_line(line: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let (crc, json) = text
        .split_once(' ')
        .ok_or_else(|| "no checksum".to_owned())?;
    let crc = u32::from_str_radix(crc, 16).map_err(|_| "bad checksum field".to_owned())?;
    if crc32fast::hash(json.as_bytes()) != crc {
        return Err("checksum mismatch".into());
    }
    serde_json::from_str(json).map_err(|e| format!("bad record: {e}"))
}

/// Where appends go.
struct Tail {
    generation: u64,
    /// Bytes in the current file.
    size: u64,
    /// Set when a failed write could not be cut back: later appends would follow a torn
    /// record, so every change is refused until a restart.
    broken: Option<String>,
}

/// Appends records and makes them durable; shared by every request thread.
pub struct Journal {
    dir: PathBuf,
    mode: SyncMode,
    tail: Mutex<Tail>,
    /// Bytes ever written (all generations): a record's position once written.
    written: AtomicU64,
    /// Bytes known on disk, and whether a thread is flushing now.
    synced: Mutex<(u64, bool)>,
    synced_cv: Condvar,
    stop: AtomicBool,
}

impl Journal {
    /// Appends go to `journal.<generation>` in `dir`, which holds `size` bytes of whole
    /// records (created empty when missing). In [`SyncMode::Batch`] a flusher thread runs
    /// until [`Journal::stop`].
    pub fn open(
        dir: &Path,
        generation: u64,
        size: u64,
        mode: SyncMode,
    ) -> Result<Arc<Journal>, String> {
        let p = path(dir, generation);
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        // A torn record is cut off, so the next append does not follow it.
        if f.metadata().map(|m| m.len()).unwrap_or(size) != size {
            f.set_len(size)
                .map_err(|e| format!("cutting the torn record off {}: {e}", p.display()))?;
        }
        let j = Arc::new(Journal {
            dir: dir.to_owned(),
            mode,
            tail: Mutex::new(Tail {
                generation,
                size,
                broken: None,
            }),
            written: AtomicU64::new(0),
            synced: Mutex::new((0, false)),
            synced_cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        if mode == SyncMode::Batch {
            let weak = Arc::downgrade(&j);
            std::thread::Builder::new()
                .name("journal-flush".into())
                .spawn(move || loop {
                    std::thread::sleep(FLUSH_EVERY);
                    let Some(j) = weak.upgrade() else { return };
                    if j.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Err(e) = j.flush() {
                        tracing::error!("journal: fdatasync failed: {e}");
                    }
                })
                .map_err(|e| format!("journal flusher: {e}"))?;
        }
        Ok(j)
    }

    /// Stops the flusher thread after a last flush.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.flush();
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes in the current journal file.
    pub fn size(&self) -> u64 {
        self.tail().size
    }

    /// The generation appends go to.
    pub fn generation(&self) -> u64 {
        self.tail().generation
    }

    /// Appends `rec`; returns once it is as durable as the mode promises.
    pub fn append(&self, rec: &Record) -> Result<(), String> {
        let line = frame(rec);
        let end = {
            let mut tail = self.tail();
            if let Some(why) = &tail.broken {
                return Err(why.clone());
            }
            let p = path(&self.dir, tail.generation);
            let mut f = OpenOptions::new()
                .append(true)
                .open(&p)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            if let Err(e) = f.write_all(&line) {
                // Cut back a partial write, or later records would follow a torn one.
                if let Err(e2) = f.set_len(tail.size) {
                    tail.broken = Some(format!(
                        "{}: a failed write ({e}) could not be cut back ({e2}); restart the \
                         daemon",
                        p.display()
                    ));
                }
                return Err(format!("{}: {e}", p.display()));
            }
            tail.size += line.len() as u64;
            self.written.fetch_add(line.len() as u64, Ordering::Release) + line.len() as u64
        };
        if self.mode == SyncMode::Always {
            self.wait_synced(end)?;
        }
        Ok(())
    }

    /// Flushes whatever is written; returns once bytes up to `end` are on disk. One thread
    /// flushes at a time, for every writer waiting (group commit).
    fn wait_synced(&self, end: u64) -> Result<(), String> {
        let mut s = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if s.0 >= end {
                return Ok(());
            }
            if !s.1 {
                s.1 = true;
                drop(s);
                let r = self.sync_now();
                s = self.synced.lock().unwrap_or_else(|e| e.into_inner());
                s.1 = false;
                if let Ok(upto) = r {
                    s.0 = s.0.max(upto);
                }
                self.synced_cv.notify_all();
                r?;
                continue;
            }
            s = self.synced_cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// `fdatasync` of the current file; returns the position it covers.
    fn sync_now(&self) -> Result<u64, String> {
        let (p, upto) = {
            let tail = self.tail();
            (
                path(&self.dir, tail.generation),
                self.written.load(Ordering::Acquire),
            )
        };
        File::open(&p)
            .and_then(|f| f.sync_data())
            .map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(upto)
    }

    /// Flushes what is written, if anything.
    pub fn flush(&self) -> Result<(), String> {
        let w = self.written.load(Ordering::Acquire);
        self.wait_synced(w)
    }

    /// Starts the next journal file; returns its generation. Records written before are
    /// flushed first, so they are durable in the file a snapshot will replace.
    pub fn rotate(&self) -> Result<u64, String> {
        self.flush()?;
        let mut tail = self.tail();
        let next = tail.generation + 1;
        let p = path(&self.dir, next);
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: {e}", self.dir.display()))?;
        tail.generation = next;
        tail.size = 0;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(n: usize) -> Record {
        Record::Add {
            bridge: "br0".into(),
            flows: vec![format!("priority={n} actions=drop")],
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [SyncMode::Batch, SyncMode::Always] {
            let j = Journal::open(dir.path(), 7, 0, mode).unwrap();
            for n in 0..5 {
                j.append(&add(n)).unwrap();
            }
            j.stop();
            let p = path(dir.path(), 7);
            let good = fs::metadata(&p).unwrap().len();
            // A crash in the middle of the sixth write.
            let mut f = OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(&frame(&add(5))[..20]).unwrap();
            let r = read(&p).unwrap();
            assert_eq!(r.records, (0..5).map(add).collect::<Vec<_>>());
            assert_eq!((r.good_len, r.torn), (good, 20));
            // Reopening cuts it off, and appends follow the last whole record.
            let j = Journal::open(dir.path(), 7, r.good_len, mode).unwrap();
            j.append(&add(6)).unwrap();
            j.stop();
            let r = read(&p).unwrap();
            assert_eq!(r.records.len(), 6);
            assert_eq!(r.records[5], add(6));
            assert_eq!(r.torn, 0);
            fs::remove_file(&p).unwrap();
        }
    }

    #[test]
    fn a_whole_last_line_with_a_bad_checksum_is_torn_but_an_earlier_one_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), 0);
        let mut bad = frame(&add(1));
        bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
        let text = [frame(&add(0)), bad.clone()].concat();
        fs::write(&p, &text).unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.records, vec![add(0)]);
        assert_eq!(r.torn, bad.len() as u64);
        fs::write(&p, [bad, frame(&add(2))].concat()).unwrap();
        let e = read(&p).unwrap_err();
        assert!(e.contains("line 1") && e.contains("checksum"), "{e}");
    }

    #[test]
    fn rotation_starts_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), 0, 0, SyncMode::Always).unwrap();
        j.append(&add(0)).unwrap();
        assert_eq!(j.rotate().unwrap(), 1);
        j.append(&add(1)).unwrap();
        assert_eq!(j.generation(), 1);
        assert_eq!(read(&path(dir.path(), 0)).unwrap().records, vec![add(0)]);
        assert_eq!(read(&path(dir.path(), 1)).unwrap().records, vec![add(1)]);
    }

    #[test]
    fn concurrent_appends_all_land_whole() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), 0, 0, SyncMode::Always).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let j = &j;
                s.spawn(move || {
                    for n in 0..50 {
                        j.append(&add(t * 100 + n)).unwrap();
                    }
                });
            }
        });
        let r = read(&path(dir.path(), 0)).unwrap();
        assert_eq!(r.records.len(), 200);
        assert_eq!(r.torn, 0);
    }
}
