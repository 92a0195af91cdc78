//! A QMP (QEMU Machine Protocol) client on QEMU's unix socket.

use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) struct Qmp {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Asynchronous events seen while waiting for replies, oldest first.
    pub(crate) events: Vec<Value>,
}

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    pub(crate) fn connect(socket: &Path, timeout: Duration) -> io::Result<Qmp> {
        let mut qmp = Qmp {
            stream: UnixStream::connect(socket)?,
            buf: Vec::new(),
            events: Vec::new(),
        };
        let deadline = Instant::now() + timeout;
        let greeting = qmp.read_message(deadline)?;
        if greeting.get("QMP").is_none() {
            return Err(io::Error::other(format!("not a QMP greeting: {greeting}")));
        }
        qmp.execute(&json!({"execute": "qmp_capabilities"}), timeout)?;
        Ok(qmp)
    }

    /// Sends `command` (`{"execute": ..., "arguments": ...}`) and returns its `return` value;
    /// a QMP `error` becomes an `io::Error` with its description. Events that arrive first
    /// are stored in `events`.
    pub(crate) fn execute(&mut self, command: &Value, timeout: Duration) -> io::Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut line = serde_json::to_vec(command)?;
        line.push(b'\n');
        self.stream.write_all(&line)?;
        loop {
            let msg = self.read_message(deadline)?;
            if msg.get("event").is_some() {
                self.events.push(msg);
            } else if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            } else if let Some(err) = msg.get("error") {
                return Err(io::Error::other(format!("QMP {command}: {err}")));
            } else {
                return Err(io::Error::other(format!("unexpected QMP message: {msg}")));
            }
        }
    }

    /// Reads one JSON message (QMP sends one per line).
    fn read_message(&mut self, deadline: Instant) -> io::Result<Value> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).map_err(io::Error::from);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no QMP reply in time",
                ));
            }
            self.stream
                .set_read_timeout(Some((deadline - now).min(Duration::from_millis(200))))?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "QMP socket closed: QEMU exited",
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
