//! The minimum of `bpf()` needed for AF_XDP: an XSKMAP, a six-instruction XDP program that
//! redirects each frame to the socket of its receive queue, and a BPF link attaching it to an
//! interface. Raw syscalls, so no libbpf and no C toolchain are needed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_PROG_LOAD: i32 = 5;
const BPF_LINK_CREATE: i32 = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// Attach type of XDP programs (`BPF_XDP` in `enum bpf_attach_type`).
const BPF_XDP: u32 = 37;
/// `src_reg` of a 64-bit immediate load that names a map by fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// Helper `bpf_redirect_map`.
const FN_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;

/// Which XDP hook to attach at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Generic XDP in the kernel's receive path (`XDP_FLAGS_SKB_MODE`): works on any device.
    Skb,
    /// The driver's own hook (`XDP_FLAGS_DRV_MODE`): faster, needs driver support (veth has it).
    Driver,
}

impl XdpMode {
    fn flags(self) -> u32 {
        match self {
            XdpMode::Skb => 1 << 1,
            XdpMode::Driver => 1 << 2,
        }
    }
}

/// `union bpf_attr`, as bytes: each command fills the prefix it uses; the rest must be zero. 128
/// bytes covers every field used here.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

fn bpf(cmd: i32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: `attr` is a 128-byte, 8-aligned buffer that outlives the call; every pointer stored
    // in it (by the callers below) points to memory live for the call. The kernel reads only the
    // size passed and zero-checks the tail.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn bpf_fd(cmd: i32, attr: &mut Attr) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: these commands return a fresh descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// One `struct bpf_insn`.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | (dst & 0xf);
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    b
}

/// The program: `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);` — frames of a
/// queue without a socket go on to the kernel stack.
fn redirect_program(map_fd: i32) -> [[u8; 8]; 6] {
    [
        // r2 = ((struct xdp_md *)r1)->rx_queue_index   (LDX | MEM | W, offset 16)
        insn(0x61, 2, 1, 16, 0),
        // r1 = map (LD | IMM | DW, two slots; src = pseudo map fd)
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // r3 = XDP_PASS   (ALU64 | MOV | K): the action when the map has no entry
        insn(0xb7, 3, 0, 0, XDP_PASS),
        // call bpf_redirect_map   (JMP | CALL)
        insn(0x85, 0, 0, 0, FN_REDIRECT_MAP),
        // exit   (JMP | EXIT): return r0
        insn(0x95, 0, 0, 0, 0),
    ]
}

fn load_prog(prog: &[[u8; 8]], log: Option<&mut Vec<u8>>) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut a = Attr::new();
    // prog_type, insn_cnt, insns, license
    a.u32(0, BPF_PROG_TYPE_XDP)
        .u32(4, prog.len() as u32)
        .u64(8, prog.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64);
    if let Some(log) = log {
        // log_level, log_size, log_buf
        a.u32(24, 1)
            .u32(28, log.len() as u32)
            .u64(32, log.as_mut_ptr() as u64);
    }
    a.0[48..48 + 7].copy_from_slice(b"vsw_xsk"); // prog_name
    a.u32(68, BPF_XDP); // expected_attach_type
    bpf_fd(BPF_PROG_LOAD, &mut a)
}

/// An XDP program redirecting to AF_XDP sockets, attached to one interface while it lives.
/// Dropping it detaches the program (closing the link's last fd does that).
#[derive(Debug)]
pub(crate) struct XskRedirect {
    map: OwnedFd,
    _prog: OwnedFd,
    link: Option<OwnedFd>,
    mode: XdpMode,
}

impl XskRedirect {
    /// Creates the map (one slot per queue) and loads the program; nothing is attached yet.
    pub(crate) fn load(n_queues: u32) -> io::Result<XskRedirect> {
        let mut a = Attr::new();
        // map_type, key_size, value_size, max_entries
        a.u32(0, BPF_MAP_TYPE_XSKMAP)
            .u32(4, 4)
            .u32(8, 4)
            .u32(12, n_queues.max(1));
        a.0[28..28 + 5].copy_from_slice(b"vsxsk"); // map_name
        let map = bpf_fd(BPF_MAP_CREATE, &mut a)?;

        let prog = redirect_program(map.as_raw_fd());
        let prog = match load_prog(&prog, None) {
            Ok(fd) => fd,
            Err(e) => {
                // Load again with the verifier log on, only to explain the failure.
                let mut log = vec![0u8; 16384];
                let _ = load_prog(&prog, Some(&mut log));
                let end = log.iter().position(|&b| b == 0).unwrap_or(0);
                let msg = String::from_utf8_lossy(&log[..end]);
                return Err(io::Error::new(
                    e.kind(),
                    format!("loading XDP program: {e}; verifier: {msg}"),
                ));
            }
        };
        Ok(XskRedirect {
            map,
            _prog: prog,
            link: None,
            mode: XdpMode::Skb,
        })
    }

    /// Points queue `queue`'s slot at AF_XDP socket `xsk_fd`.
    pub(crate) fn set_socket(&self, queue: u32, xsk_fd: i32) -> io::Result<()> {
        let key = queue;
        let val = xsk_fd as u32;
        let mut a = Attr::new();
        // map_fd, (pad), key, value, flags (BPF_ANY)
        a.u32(0, self.map.as_raw_fd() as u32)
            .u64(8, &key as *const u32 as u64)
            .u64(16, &val as *const u32 as u64)
            .u64(24, 0);
        bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
    }

    /// Attaches the program to `ifindex` at hook `mode` through a BPF link.
    pub(crate) fn attach(&mut self, ifindex: u32, mode: XdpMode) -> io::Result<()> {
        let mut a = Attr::new();
        // prog_fd, target_ifindex, attach_type, flags
        a.u32(0, self._prog.as_raw_fd() as u32)
            .u32(4, ifindex)
            .u32(8, BPF_XDP)
            .u32(12, mode.flags());
        self.link = Some(bpf_fd(BPF_LINK_CREATE, &mut a)?);
        self.mode = mode;
        Ok(())
    }

    /// The hook the program is attached at.
    pub(crate) fn mode(&self) -> XdpMode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encoding() {
        let p = redirect_program(7);
        assert_eq!(p[0], [0x61, 0x12, 16, 0, 0, 0, 0, 0]);
        assert_eq!(p[1], [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(p[2], [0; 8]);
        assert_eq!(p[3], [0xb7, 0x03, 0, 0, 2, 0, 0, 0]);
        assert_eq!(p[4], [0x85, 0, 0, 0, 51, 0, 0, 0]);
        assert_eq!(p[5], [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn loads_when_privileged() {
        // Loading needs CAP_BPF; unprivileged runs only check that failure is an error.
        match XskRedirect::load(1) {
            Ok(x) => assert!(x.link.is_none()),
            Err(e) => eprintln!("SKIPPED: bpf load: {e}"),
        }
    }
}
