//! Thin checked wrappers over the libc calls the ports share.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Turns a libc `-1` return into the thread's `errno`.
pub(crate) fn cvt<T: PartialOrd + Default>(ret: T) -> io::Result<T> {
    if ret < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
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
