//! The guest's serial console (ttyS0 on a QEMU unix socket), used as a command channel.
//!
//! Each command goes out as one shell line framed by a begin and an end marker and is run
//! by `sh -c` with stdin from /dev/null (so it cannot eat later commands) and stderr on
//! stdout. The markers are written split by quotes (`__TK_B7''_`), so the tty's echo of the
//! line, when it is on (before the init's `stty -echo`), never looks like the markers the
//! shell prints. Output from before the begin marker (prompts, a timed-out command's late
//! output, kernel messages) is dropped; everything read is kept in a transcript file for
//! errors.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A line longer than this would be cut by the guest tty's canonical-mode buffer (4095).
const MAX_LINE: usize = 3800;

pub(crate) struct Console {
    stream: UnixStream,
    buf: Vec<u8>,
    transcript: File,
    next_id: u64,
}

impl Console {
    /// Connects to QEMU's console socket; the transcript is appended to `transcript`.
    pub(crate) fn connect(socket: &Path, transcript: &Path) -> io::Result<Console> {
        let stream = UnixStream::connect(socket)?;
        Ok(Console {
            stream,
            buf: Vec::new(),
            transcript: File::options().create(true).append(true).open(transcript)?,
            next_id: 1,
        })
    }

    /// Writes raw bytes to the guest's tty.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Runs `cmd` and returns its exit status and output (CRs removed, final newline
    /// trimmed). On timeout it sends ^C, which interrupts the command (the interactive shell
    /// survives it), and fails with `TimedOut`.
    pub(crate) fn run(&mut self, cmd: &str, timeout: Duration) -> io::Result<(i32, String)> {
        let deadline = Instant::now() + timeout;
        let id = self.next_id;
        self.next_id += 1;
        let line = format!(
            "echo __TK_B{id}''_; sh -c '{}' </dev/null 2>&1; echo __TK_E{id}''_$?\n",
            cmd.replace('\'', r"'\''")
        );
        if line.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("command too long for the console ({} bytes)", line.len()),
            ));
        }
        self.buf.clear();
        self.send(line.as_bytes())?;
        let begin = format!("__TK_B{id}_\n");
        let end = format!("__TK_E{id}_");
        loop {
            let text = self.text();
            if let Some(b) = text.find(&begin) {
                let body = &text[b + begin.len()..];
                if let Some(e) = body.find(&end) {
                    let rest = &body[e + end.len()..];
                    if let Some(nl) = rest.find('\n') {
                        let status = rest[..nl].trim().parse::<i32>().map_err(|_| {
                            io::Error::other(format!("bad status {:?}", &rest[..nl]))
                        })?;
                        let out = body[..e].trim_end_matches('\n').to_string();
                        self.buf.clear();
                        return Ok((status, out));
                    }
                }
            }
            if !self.fill(deadline)? {
                let _ = self.send(b"\x03");
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    // The caller's error quotes the console transcript.
                    format!("guest command {cmd:?} did not finish within {timeout:?}"),
                ));
            }
        }
    }

    /// The unread console output with CRs removed.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).replace('\r', "")
    }

    /// Reads what is available; `Ok(false)` once `deadline` has passed.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        let wait = (deadline - now).min(Duration::from_millis(200));
        self.stream.set_read_timeout(Some(wait))?;
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "console closed: QEMU exited",
            )),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                let _ = self.transcript.write_all(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }
}

/// The last `max` bytes of a file, lossily decoded; empty if it cannot be read.
pub(crate) fn tail(path: &Path, max: usize) -> String {
    let data = std::fs::read(path).unwrap_or_default();
    let from = data.len().saturating_sub(max);
    String::from_utf8_lossy(&data[from..]).replace('\r', "")
}
