//! Frontend messages served before the `vhost` crate sees them: the ones it refuses in an order
//! QEMU really sends, and the net-device ones it does not know.
//!
//! - `SET_VRING_ENABLE` before `SET_FEATURES`: QEMU 7.2 restores each ring's enable state in
//!   `vhost_net_start` before it sets the features, and never sends it again. The crate refuses
//!   it (protocol features not yet acknowledged); the spec's ring states say a ring enabled this
//!   way runs once started, as DPDK's vhost library treats it.
//! - `NET_SET_MTU` (`VHOST_USER_PROTOCOL_F_NET_MTU`): the MTU QEMU gives the guest (`host_mtu`).
//! - `SEND_RARP` (`VHOST_USER_PROTOCOL_F_RARP`): after a migration, the guest's MAC address, for
//!   a frontend whose guest cannot announce itself.
//!
//! Each carries no file descriptor and a small body, so it is peeked at on the socket, read off
//! whole here, and acknowledged when the frontend asked for a reply.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use vhost::vhost_user::message::{FrontendReq, VhostUserProtocolFeatures};

/// Size of a message header: request, flags, body size (each a native-endian u32).
const HDR: usize = 12;
/// Header flag: protocol version 1.
const VERSION_1: u32 = 0x1;
/// Header flag: this is a reply.
const REPLY: u32 = 0x4;
/// Header flag: the frontend waits for an acknowledgement (with `REPLY_ACK`).
const NEED_REPLY: u32 = 0x8;
/// Largest body of the messages taken here (a vring state or a u64 is 8 bytes).
const MAX_BODY: usize = 8;

/// A message taken off the socket here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Early {
    /// `SET_VRING_ENABLE` before the features are set.
    VringEnable { index: u32, enable: bool },
    /// `NET_SET_MTU`.
    Mtu(u64),
    /// `SEND_RARP` with the guest's MAC address.
    Rarp([u8; 6]),
}

/// What the connection's handler answers for the messages taken here.
pub(crate) trait EarlyHandler {
    /// Whether `SET_FEATURES` has acknowledged `VHOST_USER_F_PROTOCOL_FEATURES` (after it, the
    /// crate takes `SET_VRING_ENABLE` itself).
    fn protocol_features_set(&self) -> bool;
    /// The protocol features the frontend acknowledged.
    fn acked_protocol(&self) -> VhostUserProtocolFeatures;
    /// Applies one message; an error is refused (and logged by the handler).
    fn early(&mut self, msg: Early) -> Result<(), String>;
}

/// If the next message on `sock` is one of those above, reads it, applies it through `h` and
/// acknowledges it when asked; returns whether it did. Otherwise leaves the socket untouched
/// for the crate. Blocks until a whole header has arrived.
pub(crate) fn take(sock: &mut UnixStream, h: &mut impl EarlyHandler) -> io::Result<bool> {
    let mut hdr = [0u8; HDR];
    // SAFETY: `hdr` is a writable buffer of HDR bytes for the duration of the call.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            hdr.as_mut_ptr().cast(),
            HDR,
            libc::MSG_PEEK | libc::MSG_WAITALL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if (n as usize) < HDR {
        // Closed or a short header: the crate reports it.
        return Ok(false);
    }
    let word = |i: usize| u32::from_ne_bytes(hdr[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    let (request, flags, size) = (word(0), word(1), word(2) as usize);
    let wanted = match request {
        r if r == FrontendReq::SET_VRING_ENABLE as u32 => !h.protocol_features_set(),
        r if r == FrontendReq::NET_SET_MTU as u32 || r == FrontendReq::SEND_RARP as u32 => true,
        _ => false,
    };
    if !wanted || size > MAX_BODY {
        return Ok(false);
    }
    let mut msg = [0u8; HDR + MAX_BODY];
    sock.read_exact(&mut msg[..HDR + size])?;
    let body = &msg[HDR..HDR + size];
    let parsed = parse(request, body);
    let result = match parsed {
        Some(m) => h.early(m),
        None => Err(format!(
            "{} with a {size}-byte body",
            name(request).unwrap_or("message")
        )),
    };
    if flags & NEED_REPLY != 0
        && h.acked_protocol()
            .contains(VhostUserProtocolFeatures::REPLY_ACK)
    {
        let mut reply = [0u8; HDR + 8];
        reply[..4].copy_from_slice(&request.to_ne_bytes());
        reply[4..8].copy_from_slice(&(VERSION_1 | REPLY).to_ne_bytes());
        reply[8..12].copy_from_slice(&8u32.to_ne_bytes());
        reply[12..].copy_from_slice(&u64::from(result.is_err()).to_ne_bytes());
        sock.write_all(&reply)?;
    }
    Ok(true)
}

/// The message `request` with `body`, if the body has the size the spec gives it.
fn parse(request: u32, body: &[u8]) -> Option<Early> {
    let u64_body = || Some(u64::from_ne_bytes(body.try_into().ok()?));
    if request == FrontendReq::SET_VRING_ENABLE as u32 {
        let state: [u8; 8] = body.try_into().ok()?;
        let index = u32::from_ne_bytes(state[..4].try_into().ok()?);
        let num = u32::from_ne_bytes(state[4..].try_into().ok()?);
        if num > 1 {
            return None;
        }
        Some(Early::VringEnable {
            index,
            enable: num == 1,
        })
    } else if request == FrontendReq::NET_SET_MTU as u32 {
        u64_body().map(Early::Mtu)
    } else {
        // SEND_RARP: the MAC in the first six bytes of a u64, in memory order.
        let b = u64_body()?.to_ne_bytes();
        Some(Early::Rarp(b[..6].try_into().ok()?))
    }
}

/// The spec's name of `request`, for log lines.
pub(crate) fn name(request: u32) -> Option<&'static str> {
    Some(match request {
        r if r == FrontendReq::SET_VRING_ENABLE as u32 => "SET_VRING_ENABLE",
        r if r == FrontendReq::NET_SET_MTU as u32 => "NET_SET_MTU",
        r if r == FrontendReq::SEND_RARP as u32 => "SEND_RARP",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rec {
        protocol: bool,
        acked: VhostUserProtocolFeatures,
        seen: Vec<Early>,
    }

    impl EarlyHandler for Rec {
        fn protocol_features_set(&self) -> bool {
            self.protocol
        }
        fn acked_protocol(&self) -> VhostUserProtocolFeatures {
            self.acked
        }
        fn early(&mut self, msg: Early) -> Result<(), String> {
            self.seen.push(msg);
            match msg {
                Early::Mtu(m) if m < 68 => Err("too small".into()),
                _ => Ok(()),
            }
        }
    }

    fn msg(request: u32, flags: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&request.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&(body.len() as u32).to_ne_bytes());
        m.extend_from_slice(body);
        m
    }

    fn state(index: u32, num: u32) -> Vec<u8> {
        [index.to_ne_bytes(), num.to_ne_bytes()].concat()
    }

    #[test]
    fn takes_enable_before_features_and_leaves_the_rest() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let mut h = Rec {
            protocol: false,
            acked: VhostUserProtocolFeatures::empty(),
            seen: vec![],
        };
        a.write_all(&msg(18, VERSION_1, &state(1, 1))).unwrap();
        a.write_all(&msg(2, VERSION_1, &0u64.to_ne_bytes()))
            .unwrap();
        assert!(take(&mut b, &mut h).unwrap());
        assert_eq!(
            h.seen,
            vec![Early::VringEnable {
                index: 1,
                enable: true
            }]
        );
        // SET_FEATURES stays for the crate, untouched.
        assert!(!take(&mut b, &mut h).unwrap());
        let mut rest = [0u8; 20];
        b.read_exact(&mut rest).unwrap();
        assert_eq!(rest[0], 2);
        // Once protocol features are set the crate takes SET_VRING_ENABLE.
        h.protocol = true;
        a.write_all(&msg(18, VERSION_1, &state(0, 1))).unwrap();
        assert!(!take(&mut b, &mut h).unwrap());
    }

    #[test]
    fn acknowledges_when_asked_with_the_result() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let mut h = Rec {
            protocol: true,
            acked: VhostUserProtocolFeatures::REPLY_ACK,
            seen: vec![],
        };
        a.write_all(&msg(20, VERSION_1 | NEED_REPLY, &9000u64.to_ne_bytes()))
            .unwrap();
        a.write_all(&msg(20, VERSION_1 | NEED_REPLY, &10u64.to_ne_bytes()))
            .unwrap();
        assert!(take(&mut b, &mut h).unwrap());
        assert!(take(&mut b, &mut h).unwrap());
        assert_eq!(h.seen, vec![Early::Mtu(9000), Early::Mtu(10)]);
        let mut r = [0u8; 40];
        a.read_exact(&mut r).unwrap();
        assert_eq!(u32::from_ne_bytes(r[..4].try_into().unwrap()), 20);
        assert_eq!(
            u32::from_ne_bytes(r[4..8].try_into().unwrap()),
            VERSION_1 | REPLY
        );
        assert_eq!(u64::from_ne_bytes(r[12..20].try_into().unwrap()), 0);
        assert_eq!(
            u64::from_ne_bytes(r[32..40].try_into().unwrap()),
            1,
            "refused"
        );
    }

    #[test]
    fn rarp_carries_the_mac_and_bad_bodies_are_refused() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let mut h = Rec {
            protocol: true,
            acked: VhostUserProtocolFeatures::REPLY_ACK,
            seen: vec![],
        };
        let mut mac = [0u8; 8];
        mac[..6].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 9]);
        a.write_all(&msg(19, VERSION_1, &mac)).unwrap();
        assert!(take(&mut b, &mut h).unwrap());
        assert_eq!(h.seen, vec![Early::Rarp([0x52, 0x54, 0, 0, 0, 9])]);
        // An enable value other than 0 or 1 is read off and refused, not applied.
        h.protocol = false;
        a.write_all(&msg(18, VERSION_1 | NEED_REPLY, &state(0, 7)))
            .unwrap();
        assert!(take(&mut b, &mut h).unwrap());
        assert_eq!(h.seen.len(), 1);
        let mut r = [0u8; 20];
        a.read_exact(&mut r).unwrap();
        assert_eq!(u64::from_ne_bytes(r[12..20].try_into().unwrap()), 1);
    }
}
