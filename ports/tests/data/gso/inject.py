"""Writes the TCP super-frames of a pcap (ones the kernel made) into a tap with virtio-net
headers, changed as asked, so that the kernel segments them on the way out of a bridge.

Used by make-fixtures.sh for what a Linux sender cannot be made to produce on this kernel
(no 8021q module, no bridge VLAN filtering, no tc actions): VLAN-tagged super-frames, and
IPv4 super-frames with options.

    python3 inject.py SOURCE.pcap TAP MTU MODE

MODE: "vlan" inserts an 802.1Q tag (VID 100), "qinq" an 802.1ad tag (VID 200) then an 802.1Q
one (VID 100), "ipopts" (IPv4) adds 8 bytes of IPv4
options: Record Route with one empty slot, whose "copied" bit is clear (fragmentation would
drop it from all but the first fragment; segmentation repeats it). The virtio-net header is the one a tap
delivers for such a frame: NEEDS_CSUM from the TCP header, gso_type TCPV4/TCPV6, gso_size the
MSS that fits the MTU (less the IP and TCP headers, options included).
"""

import fcntl
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
NEEDS_CSUM = 1
GSO_TCPV4, GSO_TCPV6 = 1, 4
TAGS = {
    "vlan": bytes.fromhex("81000064"),
    "qinq": bytes.fromhex("88a800c881000064"),
    "ipopts": b"",
}
# Record Route (type 7, length 7, pointer 4, one empty address), then end of list.
RECORD_ROUTE = bytes([7, 7, 4, 0, 0, 0, 0, 0])


def ip_checksum(h):
    s = sum(struct.unpack("!%dH" % (len(h) // 2), h))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def add_ip_options(f):
    """Inserts RECORD_ROUTE after the 20-byte IPv4 header of untagged frame f."""
    assert (f[14] & 0x0F) == 5, "an IPv4 header without options"
    f = bytearray(f[:34] + RECORD_ROUTE + f[34:])
    f[14] += len(RECORD_ROUTE) // 4
    total = struct.unpack("!H", f[16:18])[0] + len(RECORD_ROUTE)
    f[16:18] = struct.pack("!H", total)
    f[24:26] = b"\0\0"
    ihl = (f[14] & 0x0F) * 4
    f[24:26] = struct.pack("!H", ip_checksum(bytes(f[14 : 14 + ihl])))
    return bytes(f)


def frames(path):
    b = open(path, "rb").read()
    end = "<" if b[:4] == bytes.fromhex("d4c3b2a1") else ">"
    at = 24
    while at + 16 <= len(b):
        n = struct.unpack(end + "I", b[at + 8 : at + 12])[0]
        yield b[at + 16 : at + 16 + n]
        at += 16 + n


def main():
    src, tap, mtu, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    fd = open("/dev/net/tun", "r+b", buffering=0)
    ifr = struct.pack("16sH", tap.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    # The tap's carrier comes up with this open; give the bridge port a moment.
    time.sleep(0.5)
    sent = 0
    for f in frames(src):
        if len(f) <= 14 + mtu:
            continue  # not a super-frame
        et = f[12:14]
        v6 = et == b"\x86\xdd"
        assert v6 or et == b"\x08\x00", "untagged IPv4/IPv6 source frames only"
        ihl = 40 if v6 else (f[14] & 0x0F) * 4
        if mode == "ipopts":
            assert not v6, "IPv4 options on an IPv4 frame"
            f = add_ip_options(f)
            ihl += len(RECORD_ROUTE)
        l4 = 14 + ihl
        doff = (f[l4 + 12] >> 4) * 4
        # Segments that fit the MTU, as the sender would have made them.
        mss = mtu - ihl - doff
        tag = TAGS[mode]
        f = bytearray(f[:12] + tag + f[12:])
        l4 += len(tag)
        gso = GSO_TCPV6 if v6 else GSO_TCPV4
        hdr = struct.pack("=BBHHHH", NEEDS_CSUM, gso, l4 + doff, mss, l4, 16)
        fd.write(hdr + bytes(f))
        sent += 1
    # Keep the tap (and its carrier) until the frames have gone through.
    time.sleep(0.5)
    assert sent > 0, "no super-frame in " + src
    print(sent)


main()
