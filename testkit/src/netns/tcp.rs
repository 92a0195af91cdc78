//! A TCP client and server in two namespaces, joined by veth pairs to a third one where the
//! test's forwarding loop runs (the ports' `tcp_forward` test checks correctness there, the
//! bench of that name measures throughput):
//!
//! ```text
//!  nsC: c0 10.77.0.1 ── s0 [switch loop] s1 ── t0 10.77.0.2 :nsT
//! ```
//!
//! The loop (which opens ports on `s0` and `s1`) is the caller's: this crate knows no ports.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Netns;

/// The three namespaces (switch, client, server); deleted with it.
pub struct TcpTopology {
    pub sw: Netns,
    pub client: Netns,
    pub server: Netns,
}

impl TcpTopology {
    /// Creates the three namespaces and two veth pairs, addressed and up.
    #[allow(clippy::new_without_default)] // Creates namespaces: not a default value.
    pub fn new() -> TcpTopology {
        let t = TcpTopology {
            sw: Netns::new(),
            client: Netns::new(),
            server: Netns::new(),
        };
        t.sw.ip(&[
            "link",
            "add",
            "s0",
            "type",
            "veth",
            "peer",
            "name",
            "c0",
            "netns",
            &t.client.name,
        ]);
        t.sw.ip(&[
            "link",
            "add",
            "s1",
            "type",
            "veth",
            "peer",
            "name",
            "t0",
            "netns",
            &t.server.name,
        ]);
        t.sw.ip(&["link", "set", "s0", "up"]);
        t.sw.ip(&["link", "set", "s1", "up"]);
        t.client.ip(&["addr", "add", "10.77.0.1/24", "dev", "c0"]);
        t.client.ip(&["link", "set", "c0", "up"]);
        t.server.ip(&["addr", "add", "10.77.0.2/24", "dev", "t0"]);
        t.server.ip(&["link", "set", "t0", "up"]);
        t
    }

    /// Starts `switch` on its own thread inside the switch namespace, where it forwards
    /// between `s0` and `s1` until the flag it gets is set ([`SwitchThread::stop`]); returns
    /// once its ports had time to come up.
    pub fn start_switch<T: Send + 'static>(
        &self,
        switch: impl FnOnce(Arc<AtomicBool>) -> T + Send + 'static,
    ) -> SwitchThread<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            self.sw.spawn(move || switch(stop))
        };
        // Let the ports come up before traffic starts.
        std::thread::sleep(Duration::from_millis(100));
        SwitchThread { stop, handle }
    }

    /// Sends `total` bytes client → server; returns the elapsed time and whether the bytes
    /// matched.
    pub fn transfer(&self, total: usize) -> (Duration, bool) {
        let (ready, is_ready) = std::sync::mpsc::channel();
        let server = self.server.spawn(move || {
            let l = TcpListener::bind("10.77.0.2:5201").unwrap();
            ready.send(()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let (mut got, mut ok) = (0usize, true);
            while got < total {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                ok &= buf[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == ((got + i) % 251) as u8);
                got += n;
            }
            ok && got == total
        });
        is_ready.recv_timeout(Duration::from_secs(5)).unwrap();
        let elapsed = self.client.run(move || {
            let mut s = TcpStream::connect_timeout(
                &"10.77.0.2:5201".parse().unwrap(),
                Duration::from_secs(5),
            )
            .unwrap();
            s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            let chunk: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
            let start = Instant::now();
            let mut sent = 0;
            while sent < total {
                // Keep the pattern continuous across chunks (2^20 is not a multiple of 251).
                let off = sent % 251;
                let n = (total - sent).min(chunk.len() - off);
                s.write_all(&chunk[off..off + n]).unwrap();
                sent += n;
            }
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut b = [0u8; 1];
            let _ = s.read(&mut b);
            start.elapsed()
        });
        (elapsed, server.join().unwrap())
    }
}

/// The caller's forwarding loop, running on its own thread inside the switch namespace.
pub struct SwitchThread<T> {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<T>,
}

impl<T> SwitchThread<T> {
    /// Sets the stop flag and returns what the loop returned.
    pub fn stop(self) -> T {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}
