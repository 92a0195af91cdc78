use super::*;
use crate::gso::tests::{payload_bytes, super_frame, Spec};
use crate::gso::udp::tests::super_datagram;

fn spec(v6: bool, vlans: usize) -> Spec {
    Spec {
        v6,
        vlans,
        ip_opts: 0,
        flags: 0x18,
        mss: 1400,
    }
}

/// The TCP checksum field of a frame, at the position its virtio-net header gives.
fn field(f: &[u8], start: u16, off: u16) -> u16 {
    let at = usize::from(start + off);
    u16::from_be_bytes([f[at], f[at + 1]])
}

#[test]
fn a_partial_tcp_checksum_is_found_where_the_sender_left_it() {
    for (v6, vlans) in [(false, 0), (true, 0), (false, 1), (true, 2)] {
        let (mut f, h) = super_frame(spec(v6, vlans), &payload_bytes(700));
        let p = unfinished_l4(&f).expect("partial");
        assert_eq!((p.start, p.offset), (h.csum_start, h.csum_offset));
        assert_eq!((p.l3, p.v6, p.tcp), (14 + 4 * vlans as u16, v6, true));
        // Completed, it is valid and no longer taken for partial.
        assert!(complete_partial(
            &mut f,
            usize::from(h.csum_start),
            usize::from(h.csum_offset)
        ));
        assert_eq!(unfinished_l4(&f), None, "v6={v6} vlans={vlans}");
        let start = usize::from(h.csum_start);
        let len = (f.len() - start) as u32;
        let pseudo = if v6 {
            let (src, dst) = (
                f[start - 32..start - 16].to_vec(),
                f[start - 16..start].to_vec(),
            );
            pseudo_v6(
                src.as_slice().try_into().unwrap(),
                dst.as_slice().try_into().unwrap(),
                6,
                len,
            )
        } else {
            let (src, dst) = (
                f[start - 8..start - 4].to_vec(),
                f[start - 4..start].to_vec(),
            );
            pseudo_v4(
                src.as_slice().try_into().unwrap(),
                dst.as_slice().try_into().unwrap(),
                6,
                len,
            )
        };
        assert_eq!(
            fold(pseudo + ones_sum(&f[start..])),
            0xffff,
            "valid checksum"
        );
    }
}

#[test]
fn a_partial_udp_checksum_is_found_and_a_zero_one_is_not() {
    for v6 in [false, true] {
        let (mut f, h) = super_datagram(
            crate::gso::udp::tests::Spec {
                v6,
                vlans: 0,
                ip_opts: 0,
                seg: 1000,
            },
            &payload_bytes(300),
        );
        let p = unfinished_l4(&f).expect("partial");
        assert_eq!(
            (p.start, p.offset, p.v6, p.tcp),
            (h.csum_start, h.csum_offset, v6, false)
        );
        if !v6 {
            let at = usize::from(h.csum_start + h.csum_offset);
            f[at..at + 2].fill(0);
            assert_eq!(
                unfinished_l4(&f),
                None,
                "no UDP checksum is not a partial one"
            );
        }
    }
}

#[test]
fn padded_fragmented_or_complete_frames_are_left_alone() {
    let (f, h) = super_frame(spec(false, 0), &payload_bytes(100));
    assert!(field(&f, h.csum_start, h.csum_offset) != 0);
    // Ethernet padding after the IP packet: the sum would cover it, so hands off.
    let mut padded = f.clone();
    padded.extend_from_slice(&[0; 6]);
    assert_eq!(unfinished_l4(&padded), None);
    // A fragment's transport header is not all there to sum.
    let mut frag = f.clone();
    frag[14 + 6] |= 0x20; // more fragments
    assert_eq!(unfinished_l4(&frag), None);
    // A checksum that is not the pseudo-header sum.
    let mut other = f.clone();
    let at = usize::from(h.csum_start + h.csum_offset);
    other[at] ^= 0x40;
    assert_eq!(unfinished_l4(&other), None);
    // Truncated anywhere: never a panic, never a position outside the frame.
    for n in 0..f.len() {
        if let Some(p) = unfinished_l4(&f[..n]) {
            assert!(usize::from(p.start + p.offset) + 2 <= n);
        }
    }
}
