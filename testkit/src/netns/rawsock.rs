//! The far side of a port under test: a raw AF_PACKET socket on one interface, sending frames
//! as they are and collecting the test frames that arrive.

use std::time::{Duration, Instant};

use crate::packet::sample::is_test_frame;
use crate::sys::{self, PacketSocket};

/// A non-blocking raw AF_PACKET socket bound to one interface (in the namespace of the thread
/// that bound it, see [`super::Netns::run`]).
pub struct RawSock {
    sock: PacketSocket,
    ifindex: i32,
}

impl RawSock {
    /// Opens a socket bound to `ifname` (in the calling thread's namespace).
    pub fn bind(ifname: &str) -> RawSock {
        let sock = PacketSocket::open(true).unwrap_or_else(|e| panic!("socket: {e}"));
        let ifindex = sys::ifindex(ifname);
        assert!(ifindex > 0, "no interface {ifname}");
        let ifindex = ifindex as i32;
        sock.bind(ifindex).unwrap_or_else(|e| panic!("bind: {e}"));
        RawSock { sock, ifindex }
    }

    /// Sends one frame out of the interface.
    pub fn send(&self, frame: &[u8]) {
        let n = self
            .sock
            .send(frame)
            .unwrap_or_else(|e| panic!("send: {e}"));
        assert_eq!(n, frame.len(), "send: short send");
    }

    /// Collects incoming test frames (EtherType
    /// [`TEST_ETHERTYPE`](crate::packet::sample::TEST_ETHERTYPE)) until `n` arrived or
    /// `timeout` passed.
    pub fn recv_test_frames(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while out.len() < n && Instant::now() < deadline {
            let Ok((len, outgoing)) = self.sock.recv(&mut buf) else {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            let f = &buf[..len];
            if !outgoing && is_test_frame(f) {
                out.push(f.to_vec());
            }
        }
        out
    }

    /// Interface index the socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }
}
