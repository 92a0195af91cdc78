//! What tests do with a running testpmd: start and stop forwarding, read counters and link
//! state, and send an exact number of frames.

use std::time::{Duration, Instant};

use super::instance::CmdState;
use super::stats::stat;
use super::{FwdStats, TestPmd, TestpmdPortStats, CMD_TIMEOUT};

/// Bound on [`TestPmd::send_burst`] as a whole.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Packets queued per `start tx_first` round of [`TestPmd::send_burst`]: below the default
/// 256-entry virtio ring, so a peer that polls between rounds never sees it overflow.
const SEND_CHUNK: u64 = 128;

impl TestPmd {
    fn start_locked(&self, io: &mut CmdState, command: &str) {
        let out = self.must(io, command);
        if !out.contains("packet forwarding - ports=") && !out.contains("already started") {
            panic!(
                "{}: `{command}` failed: {out}\n{}",
                self.name,
                self.log_tail()
            );
        }
        io.forwarding = true;
    }

    /// Starts forwarding in the current mode (`start`); the forwarding lcore busy-polls from
    /// now on, and only from now on are received packets counted.
    pub fn start(&self) {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        self.start_locked(&mut io, "start");
    }

    /// `start tx_first N`: every forwarding stream first sends `bursts` bursts of generated
    /// frames (as `txonly` would), then forwarding starts in the current mode.
    pub fn start_tx_first(&self, bursts: u32) {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        self.start_locked(&mut io, &format!("start tx_first {bursts}"));
    }

    /// Stops forwarding (`stop`) and returns testpmd's summary (forward statistics per port).
    pub fn stop(&self) -> String {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        io.forwarding = false;
        self.must(&mut io, "stop")
    }

    /// Changes the forwarding mode (`set fwd MODE`); takes effect at the next start.
    pub fn set_forward_mode(&self, mode: &str) {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        self.must(&mut io, &format!("set fwd {mode}"));
        io.forward_mode = mode.to_string();
    }

    pub(super) fn check_port(&self, port: u16) {
        assert!(
            port < self.nports,
            "{}: no port {port} (has {})",
            self.name,
            self.nports
        );
    }

    /// The device counters of `port` (`show port stats N`).
    pub fn port_stats(&self, port: u16) -> TestpmdPortStats {
        self.check_port(port);
        let out = self.cmd(&format!("show port stats {port}"));
        let get = |k| {
            stat(&out, k)
                .unwrap_or_else(|| panic!("{}: no {k} in stats of port {port}: {out}", self.name))
        };
        TestpmdPortStats {
            rx_packets: get("RX-packets:"),
            rx_bytes: get("RX-bytes:"),
            rx_missed: get("RX-missed:"),
            rx_errors: get("RX-errors:"),
            rx_nombuf: get("RX-nombuf:"),
            tx_packets: get("TX-packets:"),
            tx_bytes: get("TX-bytes:"),
            tx_errors: get("TX-errors:"),
        }
    }

    /// The forwarding engine's counters of `port` since the last start (zero for a port not
    /// forwarded).
    pub fn fwd_stats(&self, port: u16) -> FwdStats {
        self.check_port(port);
        let out = self.cmd("show fwd stats all");
        let head = format!("Forward statistics for port {port} ");
        let Some(at) = out.find(&head) else {
            return FwdStats::default();
        };
        let block = &out[at + head.len()..];
        let block = &block[..block.find("statistics for").unwrap_or(block.len())];
        let get = |k| stat(block, k).unwrap_or(0);
        FwdStats {
            rx_packets: get("RX-packets:"),
            rx_dropped: get("RX-dropped:"),
            tx_packets: get("TX-packets:"),
            tx_dropped: get("TX-dropped:"),
        }
    }

    /// Zeroes the device counters of every port (`clear port stats all`).
    pub fn clear_stats(&self) {
        self.cmd("clear port stats all");
    }

    /// Whether `port`'s link is up (`show port info N`). A virtio-user port is up while its
    /// vhost-user connection is set up; a `net_vhost` port once the frontend has started its
    /// queues. A connecting (`server=0`) virtio-user port does not reconnect after a loss.
    pub fn link_up(&self, port: u16) -> bool {
        self.check_port(port);
        let out = self.cmd(&format!("show port info {port}"));
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Link status:"))
            .unwrap_or_else(|| panic!("{}: no link status for port {port}: {out}", self.name))
            .trim()
            == "up"
    }

    /// Waits until `port`'s link is up, polling every 20 ms for at most `timeout`.
    pub fn wait_link_up(&self, port: u16, timeout: Duration) -> Result<(), String> {
        self.wait_link(port, true, timeout)
    }

    /// Waits until `port`'s link is `up` or down, polling every 20 ms for at most `timeout`.
    pub fn wait_link(&self, port: u16, up: bool, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.link_up(port) == up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let state = if up { "up" } else { "down" };
                return Err(format!(
                    "{}: port {port} not {state} after {timeout:?}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `port` has received at least `packets` packets in all, polling every 10 ms
    /// for at most `timeout`; returns the last counters either way (compare them). Packets are
    /// only counted while forwarding runs ([`start`](Self::start)).
    pub fn wait_rx(&self, port: u16, packets: u64, timeout: Duration) -> TestpmdPortStats {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.port_stats(port);
            if s.rx_packets >= packets || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Transmits exactly `count` generated frames (Ethernet/IPv4/UDP, `txonly`'s template: the
    /// port's MAC as source, its [eth peer](super::TestPmdBuilder::eth_peer) as destination, length
    /// [`tx_pkt_len`](super::TestPmdBuilder::tx_pkt_len)) on `port` alone, and returns how many the
    /// port accepted: `count`, or an error after 20 s.
    ///
    /// Testpmd 22.11 has no packet-count limit for `txonly`, but `start tx_first N` sends N
    /// bursts on every forwarding stream, synchronously, before forwarding starts. So this
    /// stops forwarding and works in rounds of at most 128 frames: narrow forwarding to `port`
    /// (`set portlist`), `set burst B`, `start tx_first N`, `stop`, then poll every port for
    /// 2 ms in `rxonly` mode so that what came back meanwhile leaves the rings (testpmd cannot
    /// poll while it sends; a 256-entry ring would overflow with larger rounds). After each
    /// round it recounts the port's transmitted packets: frames a full ring refused are freed,
    /// not counted, and sent again. At the end it restores burst, port list and mode, and
    /// restarts forwarding if it was running. So while this runs, received packets are counted
    /// but not forwarded. With several queues every queue sends an equal share: `count` must
    /// be a multiple of the queue count.
    pub fn send_burst(&self, port: u16, count: u64) -> Result<u64, String> {
        self.check_port(port);
        let queues = u64::from(self.queues);
        assert!(
            count.is_multiple_of(queues),
            "{}: {count} packets do not split evenly over {queues} queues",
            self.name
        );
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let io = &mut *io;
        let was_forwarding = io.forwarding;
        let mode = io.forward_mode.clone();
        let burst = io.burst;
        let all: Vec<String> = (0..self.nports).map(|p| p.to_string()).collect();
        let all = format!("set portlist {}", all.join(","));
        let run = |io: &mut CmdState, c: &str| self.cmd_locked(io, c, CMD_TIMEOUT);
        let tx = |io: &mut CmdState| -> Result<u64, String> {
            let out = run(io, &format!("show port stats {port}"))?;
            stat(&out, "TX-packets:").ok_or_else(|| format!("no TX-packets in {out}"))
        };
        run(io, "stop")?;
        io.forwarding = false;
        run(io, "set fwd rxonly")?;
        let before = tx(io)?;
        let deadline = Instant::now() + SEND_TIMEOUT;
        let mut sent = 0;
        let mut cur_burst = burst;
        let mut result = Ok(());
        while sent < count {
            if Instant::now() >= deadline {
                result = Err(format!(
                    "{}: sent only {sent} of {count} packets on port {port} in {SEND_TIMEOUT:?}",
                    self.name
                ));
                break;
            }
            // Every queue is a stream that sends the same number of frames.
            let per_queue = ((count - sent) / queues).min((SEND_CHUNK / queues).max(1));
            if per_queue == 0 {
                result = Err(format!(
                    "{}: {} of {count} packets left to send on port {port}, fewer than its \
                     {queues} queues",
                    self.name,
                    count - sent
                ));
                break;
            }
            let b = per_queue.min(32) as u16;
            if b != cur_burst {
                run(io, &format!("set burst {b}"))?;
                cur_burst = b;
            }
            if self.nports > 1 {
                run(io, &format!("set portlist {port}"))?;
            }
            run(io, &format!("start tx_first {}", per_queue / u64::from(b)))?;
            run(io, "stop")?;
            if self.nports > 1 {
                run(io, &all)?;
            }
            run(io, "start")?;
            std::thread::sleep(Duration::from_millis(2));
            run(io, "stop")?;
            sent = tx(io)? - before;
        }
        if cur_burst != burst {
            run(io, &format!("set burst {burst}"))?;
        }
        if self.nports > 1 {
            run(io, &all)?;
        }
        run(io, &format!("set fwd {mode}"))?;
        if was_forwarding {
            let out = run(io, "start")?;
            if !out.contains("packet forwarding - ports=") {
                return Err(format!("{}: restart failed: {out}", self.name));
            }
            io.forwarding = true;
        }
        result.map(|()| sent)
    }
}
