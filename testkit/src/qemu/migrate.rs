//! Live migration between two QEMUs on this host.

use super::guest::Guest;
use serde_json::{json, Value};
use std::io;
use std::time::{Duration, Instant};

/// What QEMU's `query-migrate` reported for a completed migration.
#[derive(Clone, Debug)]
pub struct MigrationStats {
    /// From the `migrate` command to completion, as QEMU measured it (`total-time`).
    pub total: Duration,
    /// How long the guest was paused (`downtime`).
    pub downtime: Duration,
    /// RAM bytes sent.
    pub ram_transferred: u64,
    /// Wall time of [`Guest::migrate_to`] up to completion, as the harness saw it.
    pub wall: Duration,
}

impl Guest {
    /// Live-migrates this guest to `dest`, a guest booted with `incoming` (see
    /// [`Guest::boot_destination`]), then quits this QEMU (paused after the migration) and
    /// waits for the shell on `dest`, all within `timeout`. A failed migration is an error
    /// with QEMU's reason; on timeout the migration is cancelled.
    pub fn migrate_to(
        &mut self,
        dest: &mut Guest,
        timeout: Duration,
    ) -> io::Result<MigrationStats> {
        let start = Instant::now();
        let deadline = start + timeout;
        let port = dest.config.incoming.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "migrate_to: the destination was not booted with `incoming`",
            )
        })?;
        // The default bandwidth cap (128 MiB/s) only slows a test down on loopback.
        self.qmp(json!({"execute": "migrate-set-parameters",
                        "arguments": {"max-bandwidth": 10_u64 << 30}}))?;
        self.qmp(json!({"execute": "migrate",
                        "arguments": {"uri": format!("tcp:127.0.0.1:{port}")}}))?;
        let info = loop {
            let info = self.qmp(json!({"execute": "query-migrate"}))?;
            match info["status"].as_str() {
                Some("completed") => break info,
                Some("failed") | Some("cancelled") => {
                    let why = info["error-desc"].as_str().unwrap_or("no reason given");
                    return Err(self.error(&format!(
                        "migration {}: {why}; destination log: {}",
                        info["status"],
                        dest.log_path().display()
                    )));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                let _ = self.qmp(json!({"execute": "migrate_cancel"}));
                return Err(self.error(&format!("migration not done within {timeout:?}: {info}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let wall = start.elapsed();
        let ms = |v: &Value| Duration::from_millis(v.as_u64().unwrap_or(0));
        let stats = MigrationStats {
            total: ms(&info["total-time"]),
            downtime: ms(&info["downtime"]),
            ram_transferred: info["ram"]["transferred"].as_u64().unwrap_or(0),
            wall,
        };
        self.shutdown();
        dest.wait_shell(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(5)),
        )?;
        Ok(stats)
    }
}
