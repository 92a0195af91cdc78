//! Files over TCP to and from a guest with busybox's `nc`, checked by `sha256sum` in the
//! guest: the guest side of [`crate::netns::Receiver`] and [`crate::netns::send_file`].

use super::guest::Guest;
use std::io;
use std::time::Duration;

impl Guest {
    /// Writes `mb` MiB from `/dev/urandom` to `path` in the guest; returns its SHA-256.
    pub fn random_file(&mut self, path: &str, mb: u32) -> String {
        let out = self.sh(&format!(
            "dd if=/dev/urandom of={path} bs=1M count={mb} 2>/dev/null && sha256sum {path}"
        ));
        first_word(&out)
    }

    /// Starts `nc` listening on TCP `port` (IPv4 and IPv6) in the background, writing the
    /// first connection's bytes to `path`. It may take a moment to listen: connect with
    /// retries ([`crate::netns::send_file`] does).
    pub fn receive_file(&mut self, port: u16, path: &str) {
        // nc stops when its own input ends: give it one that does not (for a minute).
        self.sh(&format!(
            "rm -f {path}; sleep 60 | nc -l -p {port} > {path} 2>/dev/null &"
        ));
    }

    /// Waits up to `timeout` for `path` to hold `len` bytes; returns its size and SHA-256.
    pub fn finish_file(
        &mut self,
        path: &str,
        len: u64,
        timeout: Duration,
    ) -> io::Result<(u64, String)> {
        let polls = timeout.as_millis() / 100;
        let (status, out) = self.run(
            &format!(
                "n=0; while [ \"$(wc -c < {path})\" -lt {len} ] && [ $n -lt {polls} ]; do \
                 sleep 0.1; n=$((n+1)); done; wc -c < {path}; sha256sum {path}"
            ),
            timeout + Duration::from_secs(30),
        )?;
        let mut lines = out.lines().rev();
        let sum = lines.next().map(first_word).unwrap_or_default();
        let size = lines.next().and_then(|l| l.trim().parse().ok());
        match (status, size) {
            (0, Some(size)) => Ok((size, sum)),
            _ => Err(io::Error::other(format!("guest: {out}"))),
        }
    }

    /// Sends the file at `path` to `addr` (an IPv4 or IPv6 address) port `port` with `nc`,
    /// which closes its sending side at the end of the file and returns when the receiver
    /// closes.
    pub fn send_file(
        &mut self,
        addr: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> io::Result<()> {
        let (status, out) = self.run(&format!("nc {addr} {port} < {path}"), timeout)?;
        if status == 0 {
            Ok(())
        } else {
            Err(io::Error::other(format!("nc exited with {status}: {out}")))
        }
    }
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or_default().to_owned()
}
