//! Thin checked wrappers over the libc calls the ports share, and the one transmit path of the
//! kernel-socket ports ([`send_mmsg`]) with its errno policy ([`tx_errno`]).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::port::Burst;

/// Turns a libc `-1` return into the thread's `errno`.
pub(crate) fn cvt<T: PartialOrd + Default>(ret: T) -> io::Result<T> {
    if ret < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The calling thread's `errno`.
#[inline]
pub(crate) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// How many times in a row a system call interrupted by a signal (`EINTR`) is tried again before
/// [`no_eintr`] gives up.
const EINTR_RETRIES: u32 = 8;

/// Calls `f`, a system call returning a count or `-1` with `errno`, again when a signal
/// interrupted it (`EINTR`), up to [`EINTR_RETRIES`] times; returns the count or the `errno`.
/// The bound keeps the datapath from spinning under a signal storm (with non-blocking calls an
/// `EINTR` is rare in the first place); an `EINTR` that outlasts it is returned, and counts as
/// transient ([`tx_errno`]).
#[inline]
pub(crate) fn no_eintr(mut f: impl FnMut() -> isize) -> Result<usize, i32> {
    let mut tries = 0;
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = errno();
        if e != libc::EINTR || tries == EINTR_RETRIES {
            return Err(e);
        }
        tries += 1;
    }
}

/// What a transmit system call's failure means for the packets it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxFailure {
    /// No room or no link right now (the device queue or socket buffer is full, the interface
    /// is down or gone): the packets that remain have nowhere to go either. They are dropped
    /// without trying them, counted as transmit drops (`tx_dropped`).
    DropRest,
    /// This packet was refused (too long for the MTU, no route, a bad descriptor…): counted as
    /// a transmit error (`tx_errors`); the next packet is tried.
    Error,
}

/// The errno policy of every kernel transmit path (`sendmmsg` on AF_PACKET and UDP sockets,
/// `write` on a tap), applied after [`no_eintr`] has retried `EINTR`:
///
/// - transient — `EAGAIN`/`EWOULDBLOCK`, `ENOBUFS`, `ENOMEM` (no room), `ENETDOWN`, `ENXIO`,
///   `EIO` (link down: AF_PACKET on a down or vanished interface, a tap whose interface is down),
///   and an `EINTR` still there after the retries: [`TxFailure::DropRest`];
/// - anything else: [`TxFailure::Error`].
#[inline]
pub(crate) fn tx_errno(errno: i32) -> TxFailure {
    match errno {
        libc::EAGAIN
        | libc::ENOBUFS
        | libc::ENOMEM
        | libc::ENETDOWN
        | libc::ENXIO
        | libc::EIO
        | libc::EINTR => TxFailure::DropRest,
        // The same value as EAGAIN on Linux; spelled out for the policy's sake.
        e if e == libc::EWOULDBLOCK => TxFailure::DropRest,
        _ => TxFailure::Error,
    }
}

/// Sends the messages `msgs` on socket `fd` with as few non-blocking `sendmmsg` calls as the
/// kernel allows, following the transmit errno policy ([`no_eintr`], then [`tx_errno`]): a
/// message the kernel refuses counts as an error and sending goes on with the next; on a
/// transient failure the rest counts as dropped. `lens[i]` is what message `i` counts for in
/// [`Burst::bytes`] (the frame, without headers the port adds). Never blocks; allocates nothing.
///
/// # Safety
///
/// Every `msgs[i].msg_hdr` must describe memory readable for the whole call: `msg_iov` pointing
/// to `msg_iovlen` iovecs, each pointing to `iov_len` bytes, and `msg_name` null or pointing to
/// `msg_namelen` bytes of socket address; `msg_control` null or likewise valid.
pub(crate) unsafe fn send_mmsg(fd: RawFd, msgs: &mut [libc::mmsghdr], lens: &[usize]) -> Burst {
    debug_assert_eq!(msgs.len(), lens.len());
    let n = msgs.len().min(lens.len());
    let refused = |_| Burst {
        errors: 1,
        ..Burst::default()
    };
    // SAFETY: the caller's guarantee, passed on; message i is datagram i.
    unsafe { send_mmsg_spans(fd, &mut msgs[..n], &lens[..n], |i| i..i + 1, refused) }
}

/// [`send_mmsg`] for messages that each carry one or more datagrams (UDP GSO): message `m`
/// stands for the datagrams `span(m)`, counted by their `lens` in [`Burst`] (spans are
/// consecutive and cover `lens`), and a message the kernel refuses is handed to `refused(m)`,
/// whose result is added (the caller may send a run's datagrams again one at a time). On a
/// transient failure the datagrams not yet sent count as dropped.
///
/// # Safety
///
/// As for [`send_mmsg`].
pub(crate) unsafe fn send_mmsg_spans(
    fd: RawFd,
    msgs: &mut [libc::mmsghdr],
    lens: &[usize],
    span: impl Fn(usize) -> std::ops::Range<usize>,
    mut refused: impl FnMut(usize) -> Burst,
) -> Burst {
    let n = msgs.len();
    let mut out = Burst::default();
    let mut i = 0;
    while i < n {
        let rest = &mut msgs[i..n];
        let r = no_eintr(|| {
            // SAFETY: the caller guarantees that every message's iovecs, payloads and address
            // are readable for this call; the kernel only reads them (and writes `msg_len`
            // into the `mmsghdr`s, which `rest` borrows mutably).
            unsafe {
                libc::sendmmsg(
                    fd,
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                ) as isize
            }
        });
        match r {
            Ok(k) if k > 0 => {
                // The kernel never reports more than it was given; clamp all the same.
                let k = k.min(n - i);
                let sent = span(i).start..span(i + k - 1).end;
                out.packets += sent.len() as u64;
                out.bytes += lens[sent.clone()].iter().sum::<usize>() as u64;
                i += k;
            }
            // Nothing sent and no errno (the kernel does not do that for a non-empty vector):
            // treated as no room, so the loop ends.
            Ok(_) => {
                out.dropped += (lens.len() - span(i).start) as u64;
                break;
            }
            Err(e) => match tx_errno(e) {
                TxFailure::DropRest => {
                    out.dropped += (lens.len() - span(i).start) as u64;
                    break;
                }
                // The kernel reports an error for the first message it could not send, so
                // msgs[i] is the one refused.
                TxFailure::Error => {
                    out += refused(i);
                    i += 1;
                }
            },
        }
    }
    out
}

/// Opens a socket as an owned descriptor (closed on drop), close-on-exec.
pub(crate) fn socket(domain: i32, ty: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; a non-negative result is a fresh descriptor that
    // nothing else owns, so `OwnedFd` may take it.
    unsafe {
        let fd = cvt(libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// `setsockopt` with a plain-data value.
pub(crate) fn setsockopt<T: Copy>(fd: i32, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to `size_of::<T>()` readable bytes for the duration of the call; the
    // kernel copies them and keeps no pointer.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `getsockopt` into a plain-data value (all-zero bit patterns must be valid for `T`).
pub(crate) fn getsockopt<T: Copy>(fd: i32, level: i32, name: i32, val: &mut T) -> io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is `len` writable bytes; the kernel writes at most `len` bytes into it.
    cvt(unsafe { libc::getsockopt(fd, level, name, (val as *mut T).cast(), &mut len) }).map(drop)
}

/// An interface name as the kernel wants it (NUL-terminated, at most 15 bytes).
pub(crate) fn ifname(name: &str) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (o, &c) in out.iter_mut().zip(b) {
        *o = c as libc::c_char;
    }
    Ok(out)
}

/// Reads a NUL-terminated interface name back.
pub(crate) fn ifname_to_string(raw: &[libc::c_char; libc::IFNAMSIZ]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An `ifreq` for `name`, all other fields zero.
pub(crate) fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: `ifreq` is plain C data (names, integers, a union of those and pointers) for which
    // all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name = ifname(name)?;
    Ok(req)
}

/// A shared anonymous or file-backed mapping, unmapped on drop.
pub(crate) struct Mmap {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
}

impl Mmap {
    /// Maps `len` bytes of `fd` at `offset`, shared and read-write (how packet rings and XDP
    /// rings are mapped).
    pub(crate) fn shared(fd: i32, len: usize, offset: i64, populate: bool) -> io::Result<Mmap> {
        let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: a new mapping at a kernel-chosen address aliases no Rust memory; MAP_FAILED is
        // checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mmap { ptr: p.cast(), len })
    }
}

impl Mmap {
    /// Maps `len` bytes of private anonymous memory, faulted in now (AF_XDP's UMEM).
    pub(crate) fn anon(len: usize) -> io::Result<Mmap> {
        // SAFETY: a new anonymous mapping aliases nothing; MAP_FAILED is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mmap { ptr: p.cast(), len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly a mapping made by `Mmap::shared`, unmapped only here.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    use super::*;

    /// Sends `bufs` as one message each (to `dst` when given) with [`send_mmsg`], each counting
    /// for its length minus `hdr` bytes.
    fn send(fd: RawFd, bufs: &[Vec<u8>], hdr: usize, dst: Option<&libc::sockaddr_in>) -> Burst {
        let n = bufs.len();
        let mut iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut _,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain C data; all-zero is valid and the fields used are set below.
        let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            if let Some(a) = dst {
                m.msg_hdr.msg_name =
                    (a as *const libc::sockaddr_in as *mut libc::sockaddr_in).cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            }
        }
        let lens: Vec<usize> = bufs.iter().map(|b| b.len() - hdr).collect();
        // SAFETY: every message points at one iovec of `iov` over a buffer of `bufs`, and at
        // `dst` if given; all outlive the call.
        unsafe { send_mmsg(fd, &mut msgs, &lens) }
    }

    /// A connected pair of non-blocking Unix datagram sockets.
    fn dgram_pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0, "socketpair: {}", io::Error::last_os_error());
        // SAFETY: both descriptors were just created and are owned by nothing else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    /// Lengths of the datagrams waiting on `fd`, in order.
    fn recv_lens(fd: RawFd) -> Vec<usize> {
        let mut buf = vec![0u8; 1 << 17];
        let mut lens = Vec::new();
        loop {
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                return lens;
            }
            lens.push(n as usize);
        }
    }

    fn frames(lens: &[usize]) -> Vec<Vec<u8>> {
        lens.iter().map(|&l| vec![0xab; l]).collect()
    }

    #[test]
    fn a_burst_is_sent_whole_and_counted_with_the_given_lengths() {
        let (a, b) = dgram_pair();
        let sizes = [60, 100, 1500, 9000, 64];
        let out = send(a.as_raw_fd(), &frames(&sizes), 4, None);
        let bytes = sizes.iter().map(|s| (s - 4) as u64).sum();
        assert_eq!(
            out,
            Burst {
                packets: 5,
                bytes,
                dropped: 0,
                errors: 0
            }
        );
        assert_eq!(recv_lens(b.as_raw_fd()), sizes);
        // Nothing to send: no call, nothing counted.
        assert_eq!(send(a.as_raw_fd(), &[], 0, None), Burst::default());
    }

    /// EAGAIN: the peer's queue (or our send buffer) is full, so the rest of the burst is
    /// dropped, not tried message by message and not counted as errors.
    #[test]
    fn a_full_socket_drops_the_rest_of_the_burst() {
        let (a, b) = dgram_pair();
        // A small send buffer fills after a few datagrams.
        setsockopt(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, &4096i32).unwrap();
        let one = [0u8; 512];
        let mut queued = 0;
        loop {
            // SAFETY: `one` is readable for its length.
            let r = unsafe {
                libc::send(
                    a.as_raw_fd(),
                    one.as_ptr().cast(),
                    one.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                assert_eq!(errno(), libc::EAGAIN);
                break;
            }
            queued += 1;
            assert!(queued < 100_000, "the socket never filled");
        }
        let out = send(a.as_raw_fd(), &frames(&[512; 8]), 0, None);
        assert_eq!(
            out,
            Burst {
                dropped: 8,
                ..Burst::default()
            }
        );
        // Room for one again: the burst sends what fits and drops the rest.
        let mut buf = [0u8; 512];
        // SAFETY: `buf` is writable for its length.
        let r = unsafe {
            libc::recv(
                b.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        assert_eq!(r, 512);
        let out = send(a.as_raw_fd(), &frames(&[512; 8]), 0, None);
        assert!(out.packets >= 1, "{out:?}");
        assert!(out.dropped >= 1, "{out:?}");
        assert_eq!(out.packets + out.dropped, 8, "{out:?}");
        assert_eq!(out.errors, 0);
        assert_eq!(out.bytes, out.packets * 512);
        assert_eq!(
            recv_lens(b.as_raw_fd()).len() as u64,
            queued - 1 + out.packets
        );
    }

    /// A message the kernel refuses (EMSGSIZE, a UDP datagram above 64 KB) is an error; the
    /// messages after it still go.
    #[test]
    fn a_refused_message_is_an_error_and_the_rest_still_goes() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        let dst = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let out = send(
            tx.as_raw_fd(),
            &frames(&[100, 70_000, 200, 70_000]),
            0,
            Some(&dst),
        );
        assert_eq!(
            out,
            Burst {
                packets: 2,
                bytes: 300,
                dropped: 0,
                errors: 2
            }
        );
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < 2 && std::time::Instant::now() < deadline {
            match rx.recv(&mut buf) {
                Ok(n) => got.push(n),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        assert_eq!(got, [100, 200]);
    }

    /// EBADF is no transient condition: every message counts as an error.
    #[test]
    fn a_bad_descriptor_makes_every_message_an_error() {
        let out = send(-1, &frames(&[60, 60, 60]), 0, None);
        assert_eq!(
            out,
            Burst {
                errors: 3,
                ..Burst::default()
            }
        );
    }

    #[test]
    fn errno_policy() {
        for e in [
            libc::EAGAIN,
            libc::EWOULDBLOCK,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::ENETDOWN,
            libc::ENXIO,
            libc::EIO,
            libc::EINTR,
        ] {
            assert_eq!(tx_errno(e), TxFailure::DropRest, "errno {e}");
        }
        for e in [
            libc::EMSGSIZE,
            libc::EBADF,
            libc::EINVAL,
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
            libc::EPERM,
        ] {
            assert_eq!(tx_errno(e), TxFailure::Error, "errno {e}");
        }
    }

    /// Sets the thread's errno, as a failing system call would.
    fn set_errno(e: i32) {
        // SAFETY: __errno_location returns the calling thread's errno, valid for writes.
        unsafe { *libc::__errno_location() = e };
    }

    #[test]
    fn eintr_is_retried_a_bounded_number_of_times() {
        let mut calls = 0;
        let r = no_eintr(|| {
            calls += 1;
            if calls < 3 {
                set_errno(libc::EINTR);
                -1
            } else {
                7
            }
        });
        assert_eq!((r, calls), (Ok(7), 3));

        let mut calls = 0;
        let r = no_eintr(|| {
            calls += 1;
            set_errno(libc::EINTR);
            -1
        });
        assert_eq!(r, Err(libc::EINTR));
        assert_eq!(calls, EINTR_RETRIES + 1);

        // Other errors are returned at once.
        let mut calls = 0;
        let r = no_eintr(|| {
            calls += 1;
            set_errno(libc::EAGAIN);
            -1
        });
        assert_eq!((r, calls), (Err(libc::EAGAIN), 1));
    }
}
