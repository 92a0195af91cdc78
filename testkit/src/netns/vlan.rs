//! A host on a VLAN trunk without the kernel's 802.1Q module (kernels built without
//! `CONFIG_VLAN_8021Q` have no `type vlan` link): two tiny BPF programs on the host's interface,
//! attached with tcx links, tag everything it sends with the VLAN and take the tag off what it
//! receives, dropping frames of any other VLAN or none. The stack above still offloads: the
//! tag travels as skb metadata, so TCP super-frames leave tagged.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::Netns;

const BPF_PROG_LOAD: i32 = 5;
const BPF_LINK_CREATE: i32 = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
/// `enum bpf_attach_type`: the tcx hooks (Linux 6.6+).
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;
/// Helpers `bpf_skb_vlan_push`, `bpf_skb_vlan_pop`.
const FN_VLAN_PUSH: i32 = 18;
const FN_VLAN_POP: i32 = 19;
/// tc verdicts.
const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
/// Offsets in `struct __sk_buff`.
const SKB_VLAN_PRESENT: i16 = 20;
const SKB_VLAN_TCI: i16 = 24;

/// The tcx links tagging a host's interface; dropping this detaches them.
#[derive(Debug)]
pub struct VlanTag {
    _links: [OwnedFd; 2],
}

impl VlanTag {
    /// Makes `ifname` in `ns` a trunk port of VLAN `vid` as its host sees it: frames sent
    /// leave tagged `vid`, frames received tagged `vid` arrive untagged, others are dropped.
    pub fn attach(ns: &Netns, ifname: &str, vid: u16) -> io::Result<VlanTag> {
        let ifname = ifname.to_owned();
        ns.run(move || {
            let ifindex = crate::sys::ifindex(&ifname);
            if ifindex == 0 {
                return Err(io::Error::other(format!("no interface {ifname}")));
            }
            let egress = load(&push_program(vid), BPF_TCX_EGRESS)?;
            let ingress = load(&pop_program(vid), BPF_TCX_INGRESS)?;
            Ok(VlanTag {
                _links: [
                    link(&egress, ifindex, BPF_TCX_EGRESS)?,
                    link(&ingress, ifindex, BPF_TCX_INGRESS)?,
                ],
            })
        })
    }
}

/// `union bpf_attr` as bytes (128 covers the fields used here; the rest must be zero).
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn put(&mut self, off: usize, v: &[u8]) -> &mut Self {
        self.0[off..off + v.len()].copy_from_slice(v);
        self
    }
}

fn bpf_fd(cmd: i32, attr: &mut Attr) -> io::Result<OwnedFd> {
    crate::sys::bpf_fd(cmd, &mut attr.0)
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

const MOV_K: u8 = 0xb7; // ALU64 | MOV | K
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

/// `bpf_skb_vlan_push(skb, htons(0x8100), vid); return TC_ACT_OK;`
fn push_program(vid: u16) -> Vec<[u8; 8]> {
    vec![
        // r2 = htons(ETH_P_8021Q) as the helper reads it (a __be16 in a register).
        insn(MOV_K, 2, 0, 0, i32::from(0x8100u16.to_be())),
        insn(MOV_K, 3, 0, 0, i32::from(vid)),
        insn(CALL, 0, 0, 0, FN_VLAN_PUSH),
        insn(MOV_K, 0, 0, 0, TC_ACT_OK),
        insn(EXIT, 0, 0, 0, 0),
    ]
}

/// `if (!skb->vlan_present || (skb->vlan_tci & 0xfff) != vid) return TC_ACT_SHOT;
/// bpf_skb_vlan_pop(skb); return TC_ACT_OK;` (the kernel has moved a received tag into the
/// metadata before this hook runs).
fn pop_program(vid: u16) -> Vec<[u8; 8]> {
    const LDX_W: u8 = 0x61; // LDX | MEM | W
    const AND_K: u8 = 0x57; // ALU64 | AND | K
    const JEQ_K: u8 = 0x15; // JMP | JEQ | K
    const JNE_K: u8 = 0x55; // JMP | JNE | K
    vec![
        insn(LDX_W, 2, 1, SKB_VLAN_PRESENT, 0),
        insn(JEQ_K, 2, 0, 6, 0), // untagged: to the drop
        insn(LDX_W, 2, 1, SKB_VLAN_TCI, 0),
        insn(AND_K, 2, 0, 0, 0xfff),
        insn(JNE_K, 2, 0, 3, i32::from(vid)), // another VLAN: to the drop
        insn(CALL, 0, 0, 0, FN_VLAN_POP),     // r1 is still the skb
        insn(MOV_K, 0, 0, 0, TC_ACT_OK),
        insn(EXIT, 0, 0, 0, 0),
        insn(MOV_K, 0, 0, 0, TC_ACT_SHOT),
        insn(EXIT, 0, 0, 0, 0),
    ]
}

fn load(prog: &[[u8; 8]], attach_type: u32) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 8192];
    let mut a = Attr([0; 128]);
    a.put(0, &BPF_PROG_TYPE_SCHED_CLS.to_ne_bytes())
        .put(4, &(prog.len() as u32).to_ne_bytes())
        .put(8, &(prog.as_ptr() as u64).to_ne_bytes())
        .put(16, &(license.as_ptr() as u64).to_ne_bytes())
        // log_level, log_size, log_buf: the verifier says why, should it refuse.
        .put(24, &1u32.to_ne_bytes())
        .put(28, &(log.len() as u32).to_ne_bytes())
        .put(32, &(log.as_mut_ptr() as u64).to_ne_bytes())
        .put(48, b"vs_vlan")
        .put(68, &attach_type.to_ne_bytes());
    bpf_fd(BPF_PROG_LOAD, &mut a).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(0);
        io::Error::new(
            e.kind(),
            format!(
                "loading the VLAN program: {e}; verifier: {}",
                String::from_utf8_lossy(&log[..end])
            ),
        )
    })
}

fn link(prog: &OwnedFd, ifindex: u32, attach_type: u32) -> io::Result<OwnedFd> {
    let mut a = Attr([0; 128]);
    // prog_fd, target_ifindex, attach_type, flags
    a.put(0, &(prog.as_raw_fd() as u32).to_ne_bytes())
        .put(4, &ifindex.to_ne_bytes())
        .put(8, &attach_type.to_ne_bytes());
    bpf_fd(BPF_LINK_CREATE, &mut a)
        .map_err(|e| io::Error::new(e.kind(), format!("tcx link on ifindex {ifindex}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_the_drop() {
        let p = pop_program(10);
        // Both conditional jumps skip to the `r0 = TC_ACT_SHOT` at index 8.
        for (at, i) in [(1usize, &p[1]), (4, &p[4])] {
            let off = i16::from_ne_bytes([i[2], i[3]]);
            assert_eq!(at as i16 + 1 + off, 8, "jump at {at}");
        }
        assert_eq!(p[8][4..8], TC_ACT_SHOT.to_ne_bytes());
        assert_eq!(push_program(10)[0][4..6], [0x81, 0x00]);
    }
}
