//! One TCP stream of a file between namespaces, checked end to end by the SHA-256 of what
//! arrived (coreutils' `sha256sum`: no hashing crate in the workspace), so a corrupted,
//! reordered or truncated byte anywhere on the path shows, not just a short count.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{run, Netns};

/// How long a stream may stall (no byte moving) before it fails.
const STALL: Duration = Duration::from_secs(10);

/// Writes `len` pseudo-random bytes from `seed` (xorshift64*) to `path`: the same seed gives
/// the same file, so a failure can be reproduced.
pub fn seeded_file(path: &Path, len: usize, seed: u64) -> io::Result<()> {
    let mut x = seed | 1;
    let mut out = BufWriter::new(File::create(path)?);
    let mut left = len;
    while left > 0 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let word = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        let n = left.min(8);
        out.write_all(&word[..n])?;
        left -= n;
    }
    out.flush()
}

/// The SHA-256 of a file, in hex (`sha256sum`).
pub fn sha256(path: &Path) -> String {
    let p = path.to_string_lossy();
    let out = run(&["sha256sum", "--", &p]);
    out.split_whitespace().next().unwrap_or_default().to_owned()
}

/// A listener in a namespace that takes one connection and writes what it receives to a file.
pub struct Receiver {
    handle: JoinHandle<io::Result<u64>>,
    path: PathBuf,
}

impl Receiver {
    /// Listens on `addr` inside `ns` (returns once it listens) and writes the bytes of the
    /// first connection to `out` until the peer closes it.
    pub fn start(ns: &Netns, addr: SocketAddr, out: &Path) -> io::Result<Receiver> {
        let (tx, rx) = mpsc::channel();
        let path = out.to_owned();
        let handle = ns.spawn(move || {
            let l = match TcpListener::bind(addr) {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(0);
                }
            };
            // accept() has no timeout: poll a non-blocking listener instead.
            l.set_nonblocking(true)?;
            let deadline = Instant::now() + STALL;
            let mut s = loop {
                match l.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(io::Error::new(io::ErrorKind::TimedOut, "no connection"));
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(e),
                }
            };
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(STALL))?;
            let mut f = BufWriter::new(File::create(&path)?);
            let n = io::copy(&mut s, &mut f)?;
            f.flush()?;
            Ok(n)
        });
        match rx.recv_timeout(STALL) {
            Ok(Ok(())) => Ok(Receiver {
                handle,
                path: out.to_owned(),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "listener")),
        }
    }

    /// Waits for the stream to end; returns the bytes received and their SHA-256.
    pub fn finish(self) -> io::Result<(u64, String)> {
        let n = self
            .handle
            .join()
            .map_err(|_| io::Error::other("receiver panicked"))??;
        Ok((n, sha256(&self.path)))
    }
}

/// Connects from inside `ns` to `to` and sends the file at `path`, then closes the stream;
/// returns the bytes sent.
pub fn send_file(ns: &Netns, to: SocketAddr, path: &Path) -> io::Result<u64> {
    let path = path.to_owned();
    ns.spawn(move || {
        // The listener may still be starting (a guest's nc): retry while refused.
        let deadline = Instant::now() + STALL;
        let mut s = loop {
            match TcpStream::connect_timeout(&to, STALL) {
                Err(e)
                    if e.kind() == io::ErrorKind::ConnectionRefused
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => break other?,
            }
        };
        s.set_write_timeout(Some(STALL))?;
        s.set_read_timeout(Some(STALL))?;
        let n = io::copy(&mut File::open(&path)?, &mut s)?;
        s.shutdown(std::net::Shutdown::Write)?;
        // Until the receiver closes too: everything was taken.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        Ok(n)
    })
    .join()
    .map_err(|_| io::Error::other("sender panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_files_repeat_and_differ_by_seed() {
        let dir = std::env::temp_dir().join(format!("seeded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        seeded_file(&a, 1001, 7).unwrap();
        seeded_file(&b, 1001, 7).unwrap();
        seeded_file(&c, 1001, 8).unwrap();
        let (a, b, c) = (
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            std::fs::read(c).unwrap(),
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(a.len(), 1001);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
