//! The MAC learning table of a bridge (what the NORMAL action learns and consults).
//!
//! Keyed by (VLAN, MAC): the same address may live on different ports in different VLANs.
//! Entries age out after [`DEFAULT_AGING_SECS`] without traffic; when the table is full the
//! least recently seen entry makes room, as OVS does.

use std::collections::HashMap;

use flow_table::MacAddr;

/// Default idle time before a learned address is forgotten (as OVS).
pub const DEFAULT_AGING_SECS: u64 = 300;
/// Default capacity.
pub const DEFAULT_MAX_ENTRIES: usize = 8192;

/// A learned address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacEntry {
    /// Port it was last seen on.
    pub port: u32,
    /// When it was last seen (ms, caller's clock).
    pub last_seen_ms: u64,
    /// Configured (`fdb-add`): never ages, never moves by learning, never evicted.
    pub is_static: bool,
}

/// What [`MacTable::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// A new address.
    New,
    /// A known address seen on another port than before.
    Moved {
        /// The port it was on.
        from: u32,
    },
    /// A known address seen again on the same port.
    Refreshed,
}

/// One row of `fdb-show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbRow {
    /// Port.
    pub port: u32,
    /// VLAN id (0 = untagged).
    pub vlan: u16,
    /// Address.
    pub mac: MacAddr,
    /// Seconds since last seen.
    pub age_secs: u64,
    /// Configured with `fdb-add` rather than learned.
    pub is_static: bool,
}

/// A MAC learning table.
#[derive(Debug)]
pub struct MacTable {
    map: HashMap<(u16, MacAddr), MacEntry, ahash::RandomState>,
    aging_ms: u64,
    max_entries: usize,
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new(DEFAULT_AGING_SECS, DEFAULT_MAX_ENTRIES)
    }
}

impl MacTable {
    /// A table forgetting addresses after `aging_secs` and holding at most `max_entries`.
    pub fn new(aging_secs: u64, max_entries: usize) -> MacTable {
        MacTable {
            map: HashMap::default(),
            aging_ms: aging_secs * 1000,
            max_entries: max_entries.max(1),
        }
    }

    /// Number of entries (including ones aged out but not yet expired).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The aging time in seconds.
    pub fn aging_secs(&self) -> u64 {
        self.aging_ms / 1000
    }

    fn live(&self, e: &MacEntry, now_ms: u64) -> bool {
        e.is_static || now_ms.saturating_sub(e.last_seen_ms) < self.aging_ms
    }

    /// Pins `mac` in `vlan` to `port` (`ovs-appctl fdb/add`): learning no longer moves it and
    /// it never ages. Returns the port it was on before, if any.
    pub fn add_static(&mut self, vlan: u16, mac: MacAddr, port: u32, now_ms: u64) -> Option<u32> {
        let old = self.map.get(&(vlan, mac)).map(|e| e.port);
        if old.is_none() && self.map.len() >= self.max_entries {
            self.expire(now_ms);
            self.evict_oldest();
        }
        self.map.insert(
            (vlan, mac),
            MacEntry {
                port,
                last_seen_ms: now_ms,
                is_static: true,
            },
        );
        old
    }

    /// True when `mac` in `vlan` is pinned (`fdb-add`): learning does not move it.
    pub fn is_static(&self, vlan: u16, mac: &MacAddr) -> bool {
        self.map.get(&(vlan, *mac)).is_some_and(|e| e.is_static)
    }

    /// Removes the entry for `mac` in `vlan`, static or learned (`ovs-appctl fdb/del`); returns
    /// its port.
    pub fn remove(&mut self, vlan: u16, mac: &MacAddr) -> Option<u32> {
        self.map.remove(&(vlan, *mac)).map(|e| e.port)
    }

    /// Makes room by forgetting the least recently seen learned entry.
    fn evict_oldest(&mut self) {
        if let Some(oldest) = self
            .map
            .iter()
            .filter(|(_, e)| !e.is_static)
            .min_by_key(|(_, e)| e.last_seen_ms)
            .map(|(k, _)| *k)
        {
            self.map.remove(&oldest);
        }
    }

    /// Records that `mac` was seen on `port` in `vlan`. Group addresses are not learned
    /// (`None`).
    pub fn learn(&mut self, vlan: u16, mac: MacAddr, port: u32, now_ms: u64) -> Option<Learned> {
        if mac.is_multicast() {
            return None;
        }
        let aging = self.aging_ms;
        if let Some(e) = self.map.get_mut(&(vlan, mac)) {
            if e.is_static {
                return None;
            }
            let was_live = now_ms.saturating_sub(e.last_seen_ms) < aging;
            let old = e.port;
            *e = MacEntry {
                port,
                last_seen_ms: now_ms,
                is_static: false,
            };
            return Some(match (was_live, old == port) {
                (false, _) => Learned::New,
                (true, true) => Learned::Refreshed,
                (true, false) => Learned::Moved { from: old },
            });
        }
        if self.map.len() >= self.max_entries {
            self.expire(now_ms);
        }
        if self.map.len() >= self.max_entries {
            self.evict_oldest();
        }
        if self.map.len() >= self.max_entries {
            // Every entry is static: nothing more is learned.
            return None;
        }
        self.map.insert(
            (vlan, mac),
            MacEntry {
                port,
                last_seen_ms: now_ms,
                is_static: false,
            },
        );
        Some(Learned::New)
    }

    /// The port `mac` was learned on in `vlan`, if it has not aged out.
    pub fn lookup(&self, vlan: u16, mac: &MacAddr, now_ms: u64) -> Option<u32> {
        self.map
            .get(&(vlan, *mac))
            .filter(|e| self.live(e, now_ms))
            .map(|e| e.port)
    }

    /// Marks an address as still in use (traffic to or from it hit a cached flow).
    pub fn touch(&mut self, vlan: u16, mac: &MacAddr, now_ms: u64) {
        if let Some(e) = self.map.get_mut(&(vlan, *mac)) {
            e.last_seen_ms = e.last_seen_ms.max(now_ms);
        }
    }

    /// Removes aged-out entries and returns them as (vlan, mac, port).
    pub fn expire(&mut self, now_ms: u64) -> Vec<(u16, MacAddr, u32)> {
        let aging = self.aging_ms;
        let mut gone = Vec::new();
        self.map.retain(|&(vlan, mac), e| {
            let keep = e.is_static || now_ms.saturating_sub(e.last_seen_ms) < aging;
            if !keep {
                gone.push((vlan, mac, e.port));
            }
            keep
        });
        gone
    }

    /// Forgets every address learned on `port` (the port went away); returns them.
    pub fn flush_port(&mut self, port: u32) -> Vec<(u16, MacAddr)> {
        let mut gone = Vec::new();
        self.map.retain(|&(vlan, mac), e| {
            let keep = e.port != port;
            if !keep {
                gone.push((vlan, mac));
            }
            keep
        });
        gone
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Live entries as `fdb-show` lists them: by port, then VLAN, then address.
    pub fn rows(&self, now_ms: u64) -> Vec<FdbRow> {
        let mut rows: Vec<FdbRow> = self
            .map
            .iter()
            .filter(|(_, e)| self.live(e, now_ms))
            .map(|(&(vlan, mac), e)| FdbRow {
                port: e.port,
                vlan,
                mac,
                age_secs: now_ms.saturating_sub(e.last_seen_ms) / 1000,
                is_static: e.is_static,
            })
            .collect();
        rows.sort_by_key(|r| (r.port, r.vlan, r.mac));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    #[test]
    fn learn_lookup_move_and_refresh() {
        let mut t = MacTable::default();
        assert_eq!(t.learn(0, A, 1, 0), Some(Learned::New));
        assert_eq!(t.learn(0, A, 1, 10), Some(Learned::Refreshed));
        assert_eq!(t.lookup(0, &A, 20), Some(1));
        assert_eq!(t.lookup(5, &A, 20), None, "VLANs are separate");
        assert_eq!(t.learn(0, A, 2, 30), Some(Learned::Moved { from: 1 }));
        assert_eq!(t.lookup(0, &A, 40), Some(2));
        assert_eq!(t.learn(0, MacAddr([1, 0, 0x5e, 0, 0, 1]), 1, 0), None);
        assert_eq!(t.learn(0, MacAddr::BROADCAST, 1, 0), None);
    }

    #[test]
    fn aging() {
        let mut t = MacTable::new(300, 10);
        t.learn(0, A, 1, 0);
        t.learn(0, B, 2, 200_000);
        assert_eq!(t.lookup(0, &A, 299_999), Some(1));
        assert_eq!(t.lookup(0, &A, 300_000), None);
        assert_eq!(t.rows(300_000).len(), 1);
        assert_eq!(t.expire(300_000), vec![(0, A, 1)]);
        assert_eq!(t.len(), 1);
        // A stale entry seen again counts as new.
        t.learn(0, B, 2, 200_000);
        assert_eq!(t.learn(0, B, 3, 600_000), Some(Learned::New));
        t.touch(0, &B, 800_000);
        assert_eq!(t.lookup(0, &B, 1_000_000), Some(3));
    }

    #[test]
    fn full_table_evicts_the_least_recently_seen() {
        let mut t = MacTable::new(300, 2);
        t.learn(0, A, 1, 10);
        t.learn(0, B, 2, 5);
        let c = MacAddr([2, 0, 0, 0, 0, 0xc]);
        t.learn(0, c, 3, 20);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(0, &B, 20), None);
        assert_eq!(t.lookup(0, &A, 20), Some(1));
    }

    #[test]
    fn static_entries_stay_put() {
        let mut t = MacTable::new(300, 2);
        assert_eq!(t.add_static(0, B, 2, 0), None);
        // Learning does not move it, aging does not remove it.
        assert_eq!(t.learn(0, B, 1, 10), None);
        assert_eq!(t.lookup(0, &B, 10_000_000), Some(2));
        assert!(t.expire(10_000_000).is_empty());
        // Eviction takes learned entries only.
        t.learn(0, A, 1, 10);
        t.learn(0, MacAddr([2, 0, 0, 0, 0, 0xc]), 3, 20);
        assert_eq!(t.lookup(0, &B, 30), Some(2));
        assert_eq!(t.len(), 2);
        assert!(t.rows(30).iter().any(|r| r.is_static && r.mac == B));
        assert_eq!(t.remove(0, &B), Some(2));
        assert_eq!(t.learn(0, B, 1, 40), Some(Learned::New));
    }

    #[test]
    fn flush_port_and_rows() {
        let mut t = MacTable::default();
        t.learn(0, B, 2, 0);
        t.learn(0, A, 1, 0);
        t.learn(7, A, 2, 1000);
        let rows = t.rows(5000);
        assert_eq!(
            rows.iter().map(|r| (r.port, r.vlan)).collect::<Vec<_>>(),
            vec![(1, 0), (2, 0), (2, 7)]
        );
        assert_eq!(rows[0].age_secs, 5);
        assert_eq!(t.flush_port(2).len(), 2);
        assert_eq!(t.len(), 1);
    }
}
