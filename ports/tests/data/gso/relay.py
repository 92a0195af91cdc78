"""Relays frames between two taps with virtio-net headers (GSO kept), marking Congestion
Experienced on the sender's frames, so that its TCP sets CWR on later data.

Used by make-fixtures.sh for the tcp4-ecn/tcp6-ecn variants: this kernel has no netem or other
qdisc that marks CE, so a userspace hop does it.

    python3 relay.py TAP_FROM_SENDER TAP_TO_RECEIVER SECONDS

Every ECT frame carrying data from the sender is marked CE until the first frame with CWR
has passed (then marking stops, so the CWR frames that follow are the sender's own response).
"""

import fcntl
import os
import select
import struct
import sys
import time

TUNSETIFF, TUNSETOFFLOAD = 0x400454CA, 0x400454D0
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN = 1, 2, 4, 8
VNET_LEN = 10


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    # Take super-frames and partial checksums as they are.
    fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
    return fd


def ip_checksum(h):
    s = sum(struct.unpack("!%dH" % (len(h) // 2), h))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mark(f):
    """Sets CE on an untagged TCP frame with data sent ECT; returns (frame, tcp flags)."""
    et = f[12:14]
    if et == b"\x08\x00" and f[23] == 6:
        ihl = (f[14] & 0x0F) * 4
        l4 = 14 + ihl
        ecn = f[15] & 3
        payload = len(f) - l4 - (f[l4 + 12] >> 4) * 4
        if ecn in (1, 2) and payload > 0:
            f[15] |= 3
            f[24:26] = b"\0\0"
            f[24:26] = struct.pack("!H", ip_checksum(bytes(f[14 : 14 + ihl])))
            return True, f[l4 + 13]
        return False, f[l4 + 13]
    if et == b"\x86\xdd" and f[20] == 6:
        l4 = 54
        ecn = (f[15] >> 4) & 3
        payload = len(f) - l4 - (f[l4 + 12] >> 4) * 4
        if ecn in (1, 2) and payload > 0:
            f[15] |= 0x30
            return True, f[l4 + 13]
        return False, f[l4 + 13]
    return False, 0


def main():
    a, b = open_tap(sys.argv[1]), open_tap(sys.argv[2])
    end = time.monotonic() + float(sys.argv[3])
    marking = True
    while time.monotonic() < end:
        ready, _, _ = select.select([a, b], [], [], 0.1)
        for fd in ready:
            buf = bytearray(os.read(fd, 70000))
            if fd == a and marking:
                f = buf[VNET_LEN:]
                marked, flags = mark(f)
                # CWR, not on the SYN (where it asks for ECN): the sender has answered.
                if flags & 0x80 and not flags & 0x02:
                    marking = False
                elif marked:
                    buf[VNET_LEN:] = f
            os.write(b if fd == a else a, bytes(buf))


main()
