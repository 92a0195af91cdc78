//! The few system calls the harnesses need and std lacks: entering a network namespace, raw
//! AF_PACKET sockets, mounting hugetlbfs, a close-on-exec pipe, signals, `bpf()`. This is the only
//! `unsafe` code of the crate (which denies it elsewhere); each call is one small function
//! with its safety argument, so the modules above stay safe.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

fn c_string(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `bpf(cmd, attr)` for the commands that return a new descriptor (`BPF_PROG_LOAD`,
/// `BPF_LINK_CREATE`); `attr` is `union bpf_attr` as bytes, the unused tail zero.
#[allow(unsafe_code)]
pub(crate) fn bpf_fd(cmd: i32, attr: &mut [u8; 128]) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is 128 bytes live for the call, which the kernel copies in (no alignment
    // needed); the pointers the callers stored in it point to memory live for the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: these commands return a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Moves the calling thread into the network namespace `ns` (a `/var/run/netns/NAME` file);
/// the rest of the process stays where it is.
#[allow(unsafe_code)]
pub(crate) fn enter_netns(ns: &File) -> io::Result<()> {
    // SAFETY: setns with an open namespace fd affects only this thread; no memory is passed.
    check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })
}

/// The index of interface `name` in the calling thread's namespace; 0 when there is none.
#[allow(unsafe_code)]
pub(crate) fn ifindex(name: &str) -> u32 {
    let Ok(c) = c_string(name) else {
        return 0;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// Mounts a hugetlbfs with mount `options` (e.g. `pagesize=2M`) on the directory `dir`.
#[allow(unsafe_code)]
pub(crate) fn mount_hugetlbfs(dir: &str, options: &str) -> io::Result<()> {
    let (src, dst, fs, opts) = (
        c_string("none")?,
        c_string(dir)?,
        c_string("hugetlbfs")?,
        c_string(options)?,
    );
    // SAFETY: all four are valid NUL-terminated strings that outlive the call.
    check(unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            fs.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    })
}

/// A pipe whose two ends (read, write) are closed on exec.
#[allow(unsafe_code)]
pub(crate) fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes the process `cmd` starts ignore SIGPIPE, as a VM's hypervisor does.
#[allow(unsafe_code)]
pub(crate) fn ignore_sigpipe_on_exec(cmd: &mut Command) {
    // SAFETY: the closure only calls signal(2), which is async-signal-safe, as pre_exec
    // requires of code running between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// Sends SIGTERM to process `pid` (errors, such as a process already gone, are ignored).
#[allow(unsafe_code)]
pub(crate) fn sigterm(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill has no memory preconditions; callers pass their own unreaped child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// A raw AF_PACKET socket for every protocol (`ETH_P_ALL`), closed on drop.
pub(crate) struct PacketSocket(OwnedFd);

fn sockaddr_ll(ifindex: i32, protocol: u16) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

const SOCKADDR_LL_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_ll>() as _;

impl PacketSocket {
    /// `ETH_P_ALL` in network byte order, as socket(2) and sockaddr_ll want it.
    pub(crate) const ALL: u16 = (libc::ETH_P_ALL as u16).to_be();

    /// Opens a socket in the calling thread's namespace, non-blocking or not.
    #[allow(unsafe_code)]
    pub(crate) fn open(nonblocking: bool) -> io::Result<PacketSocket> {
        let flags = if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
        // SAFETY: plain socket creation, no memory passed.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | flags,
                i32::from(Self::ALL),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socket succeeded, so fd is an open descriptor nothing else owns.
        Ok(PacketSocket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Binds the socket to interface `ifindex`, receiving every protocol.
    #[allow(unsafe_code)]
    pub(crate) fn bind(&self, ifindex: i32) -> io::Result<()> {
        let sll = sockaddr_ll(ifindex, Self::ALL);
        // SAFETY: sll is a valid sockaddr_ll, read for the length given; the fd is ours.
        check(unsafe {
            libc::bind(
                self.0.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                SOCKADDR_LL_LEN,
            )
        })
    }

    /// Sends `frame` out of the interface the socket is bound to; returns the bytes sent.
    #[allow(unsafe_code)]
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: frame is readable for its length; the fd is ours.
        let n = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Sends `frame` out of interface `ifindex` (the socket need not be bound); returns the
    /// bytes sent.
    #[allow(unsafe_code)]
    pub(crate) fn send_to(&self, frame: &[u8], ifindex: i32) -> io::Result<usize> {
        let mut sa = sockaddr_ll(ifindex, 0);
        sa.sll_halen = 6;
        // SAFETY: `frame` and `sa` are valid for the lengths given; the fd is ours.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                SOCKADDR_LL_LEN,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Receives one frame into `buf`; returns its length and whether it was one the host sent
    /// (`PACKET_OUTGOING`) rather than received.
    #[allow(unsafe_code)]
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        let mut sll = sockaddr_ll(0, 0);
        let mut len = SOCKADDR_LL_LEN;
        // SAFETY: buf and sll are writable for the lengths given; the fd is ours.
        let n = unsafe {
            libc::recvfrom(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        Ok((n, sll.sll_pkttype == libc::PACKET_OUTGOING))
    }
}
