//! Sending a burst of encapsulated frames as UDP datagrams in one `sendmmsg`.
//!
//! With UDP GSO (`UDP_SEGMENT`) a run of datagrams of equal length (the segments of a TCP
//! super-frame, or back-to-back full-size frames of one stream), optionally closed by one shorter
//! datagram, goes as a single message: its frames laid out back to back in the message's
//! iovecs, with the stride in a `UDP_SEGMENT` control message. The kernel carries that one large
//! datagram through its stack as a single buffer and splits it where it must (on veth, only on
//! the receiving side), so the per-datagram cost of the send path is paid once per run. The
//! kernel refuses UDP GSO on a socket without checksums (`SO_NO_CHECK`), so a port with
//! `csum=false` sends one message per datagram.

use crate::batch::BATCH_SIZE;
use crate::port::Burst;
use crate::sys;

/// `UDP_SEGMENT` of `<linux/udp.h>` (not in every libc target).
pub(super) const UDP_SEGMENT: i32 = 103;
/// Most payload one UDP datagram over IPv4 carries (65535 minus the IPv4 and UDP headers).
const MAX_UDP_PAYLOAD: usize = 65_507;
/// Fewest segments the kernel takes in one GSO send (`UDP_MAX_SEGMENTS` has been 64 and is
/// larger in newer kernels); a burst has at most [`BATCH_SIZE`] frames anyway.
const MAX_SEGMENTS: usize = 64;
/// `CMSG_SPACE(sizeof(u16))` on 64-bit Linux, in 8-byte words: a 16-byte header and the value
/// padded to 8.
const CMSG_WORDS: usize = 3;

/// Where the run of datagrams that starts at `i` ends (exclusive): the following datagrams of
/// the same length as `lens[i]`, and at most one shorter one to close it, while the whole fits
/// one UDP datagram.
pub(super) fn run_end(lens: &[usize], i: usize) -> usize {
    let stride = lens[i];
    let mut total = stride;
    let mut j = i + 1;
    while j < lens.len() && j - i < MAX_SEGMENTS {
        let l = lens[j];
        if l > stride || total + l > MAX_UDP_PAYLOAD {
            break;
        }
        total += l;
        j += 1;
        if l < stride {
            break;
        }
    }
    j
}

/// Writes a `UDP_SEGMENT` control message carrying `stride` into `buf` and returns its length
/// (`msg_controllen`).
fn udp_segment_cmsg(buf: &mut [u64; CMSG_WORDS], stride: u16) -> usize {
    let hdr_len = std::mem::size_of::<libc::cmsghdr>();
    let cmsg = libc::cmsghdr {
        cmsg_len: hdr_len + std::mem::size_of::<u16>(),
        cmsg_level: libc::SOL_UDP,
        cmsg_type: UDP_SEGMENT,
    };
    let bytes = buf.as_mut_ptr().cast::<u8>();
    // SAFETY: `buf` is 24 bytes, 8-aligned: room for the 16-byte header at its start and the
    // 2-byte value right behind it (CMSG_DATA is the header's length on 64-bit Linux).
    unsafe {
        bytes.cast::<libc::cmsghdr>().write(cmsg);
        bytes.add(hdr_len).cast::<u16>().write_unaligned(stride);
    }
    CMSG_WORDS * 8
}

/// Sends the datagrams `iov` (one iovec each; `lens[i]` is what datagram `i` counts for in
/// [`Burst::bytes`]) to `dst` on the UDP socket `fd`, with as few non-blocking `sendmmsg` calls
/// as the kernel allows. With `gso`, runs of equal-length datagrams go as one UDP GSO message
/// each ([`run_end`]); a run the kernel refuses (a stride beyond the path MTU, say) is sent again
/// one datagram at a time, so that only the datagrams the kernel refuses alone count as errors.
/// Follows the transmit errno policy of [`sys::send_mmsg`]. Allocates nothing.
///
/// # Safety
///
/// Each of `iov[..]` must point to `iov_len` readable bytes for the whole call.
pub(super) unsafe fn send_datagrams(
    fd: i32,
    dst: &libc::sockaddr_in,
    iov: &mut [libc::iovec],
    lens: &[usize],
    gso: bool,
) -> Burst {
    let n = iov.len().min(lens.len()).min(BATCH_SIZE);
    let name = (dst as *const libc::sockaddr_in as *mut libc::sockaddr_in).cast();
    let namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let base = iov.as_mut_ptr();
    // SAFETY: plain C data; all-zero is valid and the used entries are filled below.
    let mut msgs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
    let mut cmsg = [[0u64; CMSG_WORDS]; BATCH_SIZE];
    // Message m carries datagrams first[m]..first[m + 1].
    let mut first = [0usize; BATCH_SIZE + 1];
    let mut m = 0;
    let mut i = 0;
    while i < n {
        let j = if gso { run_end(&lens[..n], i) } else { i + 1 };
        let h = &mut msgs[m].msg_hdr;
        // SAFETY: i < n <= iov.len().
        h.msg_iov = unsafe { base.add(i) };
        h.msg_iovlen = j - i;
        h.msg_name = name;
        h.msg_namelen = namelen;
        if j - i > 1 {
            // SAFETY: i < n; the run's datagrams are at most MAX_UDP_PAYLOAD long.
            let stride = unsafe { (*base.add(i)).iov_len } as u16;
            h.msg_controllen = udp_segment_cmsg(&mut cmsg[m], stride);
            h.msg_control = cmsg[m].as_mut_ptr().cast();
        }
        first[m] = i;
        m += 1;
        i = j;
    }
    first[m] = n;
    let refused = |k: usize| {
        let run = first[k]..first[k + 1];
        if run.len() > 1 {
            // SAFETY: the run's iovecs are the caller's (readable), and `name` is `dst`.
            unsafe { send_singly(fd, name, namelen, base, lens, run) }
        } else {
            Burst {
                errors: 1,
                ..Burst::default()
            }
        }
    };
    // SAFETY: every message points at `dst`, at iovecs of `iov` (readable memory, by the
    // caller) and at its own control buffer in `cmsg`; all outlive the call.
    unsafe {
        sys::send_mmsg_spans(
            fd,
            &mut msgs[..m],
            &lens[..n],
            |k| first[k]..first[k + 1],
            refused,
        )
    }
}

/// Sends the datagrams `range` of the iovecs at `base` one message each.
///
/// # Safety
///
/// `base[range]` must be valid iovecs pointing to readable memory, and `name` a socket address
/// of `namelen` bytes.
unsafe fn send_singly(
    fd: i32,
    name: *mut libc::c_void,
    namelen: libc::socklen_t,
    base: *mut libc::iovec,
    lens: &[usize],
    range: std::ops::Range<usize>,
) -> Burst {
    // SAFETY: plain C data; all-zero is valid and the used entries are filled below.
    let mut msgs: [libc::mmsghdr; BATCH_SIZE] = unsafe { std::mem::zeroed() };
    let cnt = range.len().min(BATCH_SIZE);
    for (m, i) in msgs.iter_mut().zip(range.clone()) {
        // SAFETY: i is in the caller's range of valid iovecs.
        m.msg_hdr.msg_iov = unsafe { base.add(i) };
        m.msg_hdr.msg_iovlen = 1;
        m.msg_hdr.msg_name = name;
        m.msg_hdr.msg_namelen = namelen;
    }
    // SAFETY: the messages point at the caller's iovecs and address (see above).
    unsafe { sys::send_mmsg(fd, &mut msgs[..cnt], &lens[range.start..range.start + cnt]) }
}

#[cfg(test)]
mod tests {
    use super::run_end;

    #[test]
    fn runs_are_equal_lengths_closed_by_at_most_one_shorter() {
        let lens = [100, 100, 100, 40, 100, 100, 120, 50, 50];
        assert_eq!(run_end(&lens, 0), 4, "three equal, then a shorter tail");
        assert_eq!(run_end(&lens, 4), 6, "a longer one starts a new run");
        assert_eq!(run_end(&lens, 6), 8, "120 then a shorter 50 closes it");
        assert_eq!(run_end(&lens, 8), 9, "a lone datagram");
        // The whole run fits one UDP datagram.
        let big = [30_000, 30_000, 30_000];
        assert_eq!(run_end(&big, 0), 2);
        assert_eq!(run_end(&big, 2), 3);
    }
}
