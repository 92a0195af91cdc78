#!/usr/bin/env bash
# Makes the kernel-segmentation fixtures that ports/tests/gso_kernel.rs checks software GSO
# against: for each variant, the TCP super-frames a Linux sender hands a TSO device
# (<variant>-before.pcap) and the segments the kernel's own software GSO made of them
# (<variant>-after.pcap).
#
# Usage (root; needs ip, ethtool, tcpdump, python3):
#   sudo ports/tests/data/gso/make-fixtures.sh [OUTDIR]   # OUTDIR defaults to this folder
#   sudo ONLY="tcp4-ipopts" ports/tests/data/gso/make-fixtures.sh   # just these variants
#   (the injected ones read tcp4/tcp6-before.pcap from OUTDIR)
#
# Three kinds of variant, each in namespaces made for it and deleted afterwards.
#
# tcp4, tcp6: made by the kernel's TCP end to end.
#
#   ns1: a (TSO on, gso_max_size GSO_MAX) --veth-- ns2: b1 ] br0 [ b2 (tso off, gso on,
#        tx-checksumming off) --veth-- ns3: c
#
#   A sender in ns1 writes PAYLOAD bytes in one call and shuts down; a receiver in ns3 reads
#   them. Frames leave `a` as super-frames with a partial TCP checksum (the pseudo-header sum)
#   and cross b1 and the bridge unchanged; b2 cannot take them, so the kernel segments them in
#   software there and completes the checksums. tcpdump records them on b1 (before) and b2
#   (after). The MTU fixes the MSS; GSO_MAX keeps super-frames (and the files) small.
#
# tcp4-ecn, tcp6-ecn: the same with ECN on and relay.py between two taps in the middle
#   (b1 ] br0 [ tA = relay = tB ] br1 [ b2), marking the sender's data CE, so that its TCP
#   sends a super-frame with CWR (and SKB_GSO_TCP_ECN). Recorded on tB and b2. A userspace
#   hop because this kernel (6.18, no modules) has no netem or other qdisc that marks CE.
#
# tcp4-vlan, tcp6-qinq, tcp4-ipopts: the super-frames of tcp4/tcp6 with one 802.1Q tag, an
#   802.1ad and an 802.1Q tag, or 8 bytes of IPv4 options (Record Route), written by
#   inject.py into a tap `t0` with virtio-net headers on a bridge with b2 as above; recorded
#   on t0 and b2. Not the TCP stack's own frames, because this kernel has no 8021q, no bridge
#   VLAN filtering and no tc actions, so nothing can tag a sender's frames; the segmentation
#   recorded is still the kernel's. On b2 the kernel keeps the outer tag in skb metadata;
#   libpcap writes it back inline, so the files show the frames as on a wire.
#
# Every run gives different sequence numbers, IP IDs and timestamps; the test derives all it
# needs from the files, so re-running just means committing the new files (then update the
# counts in README.md's Reliability table). KEEP_TMP=1 keeps the work folder (tcpdump logs).
set -euo pipefail

OUT=$(realpath "${1:-$(dirname "$0")}")
MTU=1280 # the least IPv6 allows
GSO_MAX=12000
PAYLOAD=20001 # odd, so the last segment has an odd length
PORT=5001
P="gsofx$$"
NS1="${P}-1" NS2="${P}-2" NS3="${P}-3"
TMP=$(mktemp -d)
TCPDUMPS=()
RELAY="" SERVER=""

cleanup() {
    for pid in $RELAY $SERVER; do kill "$pid" 2>/dev/null || true; done
    for pid in "${TCPDUMPS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for ns in "$NS1" "$NS2" "$NS3"; do ip netns del "$ns" 2>/dev/null || true; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

n1() { ip netns exec "$NS1" "$@"; }
n2() { ip netns exec "$NS2" "$@"; }
n3() { ip netns exec "$NS3" "$@"; }

# setup FAMILY: builds the three namespaces; sets SRC and DST.
setup() {
    local fam=$1
    for ns in "$NS1" "$NS2" "$NS3"; do ip netns add "$ns"; done
    ip -n "$NS1" link add name a type veth peer name b1 netns "$NS2"
    ip -n "$NS2" link add name b2 type veth peer name c netns "$NS3"
    n2 ip link add name br0 type bridge
    n2 ip link set dev b1 master br0
    n2 ip link set dev b2 master br0
    n1 ethtool -K a tso on >/dev/null
    n2 ethtool -K b2 tso off gso on tx off >/dev/null
    for d in "$NS1:a" "$NS2:b1" "$NS2:b2" "$NS3:c"; do
        ip -n "${d%%:*}" link set dev "${d#*:}" mtu "$MTU" up
    done
    n1 ip link set dev a gso_max_size "$GSO_MAX"
    n2 ip link set dev br0 up
    if [ "$fam" = 6 ]; then
        SRC=fd77::1 DST=fd77::3
        n1 ip addr add "$SRC/64" dev a nodad
        n3 ip addr add "$DST/64" dev c nodad
    else
        SRC=10.77.0.1 DST=10.77.0.3
        n1 ip addr add "$SRC/24" dev a
        n3 ip addr add "$DST/24" dev c
    fi
}

# capture NS DEV FILE FILTER: starts tcpdump, waits until it listens.
capture() {
    local ns=$1 dev=$2 file=$3 filter=$4 log
    log="$TMP/$(basename "$file").log"
    ip netns exec "$ns" tcpdump --immediate-mode -i "$dev" -s 0 -w "$file" "$filter" 2>"$log" &
    TCPDUMPS+=($!)
    for _ in $(seq 50); do
        grep -q "listening on" "$log" && return 0
        sleep 0.1
    done
    echo "tcpdump on $dev did not start: $(cat "$log")" >&2
    return 1
}

stop_captures() {
    sleep 0.3
    for pid in "${TCPDUMPS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${TCPDUMPS[@]}"; do wait "$pid" 2>/dev/null || true; done
    TCPDUMPS=()
}

# One connection: the sender writes PAYLOAD bytes in one call and shuts down. The receiver
# (small buffer) reads nothing until then, so the tail is still queued when the sender shuts
# down and goes out later as a super-frame with FIN and PSH.
transfer() {
    ip netns exec "$NS3" timeout 20 python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
open(sys.argv[3], "w").close()
c, _ = s.accept()
# Reads nothing until the sender has shut down: the small window holds the tail back.
for _ in range(100):
    if os.path.exists(sys.argv[5]):
        break
    time.sleep(0.05)
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
c.close()
assert n == int(sys.argv[4]), n
' "$DST" "$PORT" "$TMP/listening" "$PAYLOAD" "$TMP/sent" &
    SERVER=$!
    for _ in $(seq 50); do
        [ -e "$TMP/listening" ] && break
        sleep 0.1
    done
    n1 timeout 20 python3 -c '
import socket, sys
n = int(sys.argv[3])
data = bytes((i * 7 + i // 251) & 0xff for i in range(n))
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
s.connect((sys.argv[1], int(sys.argv[2])))
s.sendall(data)
s.shutdown(socket.SHUT_WR)
open(sys.argv[4], "w").close()
while s.recv(4096):
    pass
s.close()
' "$DST" "$PORT" "$PAYLOAD" "$TMP/sent"
    wait "$SERVER"
    SERVER=""
    rm -f "$TMP/listening" "$TMP/sent"
}

# wanted NAME: whether to make that variant this run.
wanted() {
    [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]
}

# variant NAME FAMILY: one connection; again (at most 5 times) until the FIN went out on a
# super-frame.
variant() {
    local name=$1 fam=$2 filter="tcp dst port $PORT" attempt
    wanted "$name" || return 0
    for attempt in $(seq 5); do
        setup "$fam"
        capture "$NS2" b1 "$TMP/$name-before.pcap" "$filter"
        capture "$NS2" b2 "$TMP/$name-after.pcap" "$filter"
        transfer
        stop_captures
        for ns in "$NS1" "$NS2" "$NS3"; do ip netns del "$ns"; done
        if has_super_frame "$TMP/$name-before.pcap" 1 "$fam"; then
            cp "$TMP/$name-before.pcap" "$TMP/$name-after.pcap" "$OUT/"
            echo "$name: $(tcpdump -r "$OUT/$name-before.pcap" 2>/dev/null | wc -l) frames before," \
                "$(tcpdump -r "$OUT/$name-after.pcap" 2>/dev/null | wc -l) after"
            return 0
        fi
        echo "$name: attempt $attempt sent FIN on no super-frame, again" >&2
    done
    echo "$name: FIN on no super-frame in 5 attempts" >&2
    return 1
}

# has_super_frame FILE FLAG FAMILY: a frame longer than the MTU (a super-frame) with that TCP
# flag (pcap filters index TCP headers over IPv4 only; IPv6 here has no extension headers).
has_super_frame() {
    local at="tcp[13]"
    [ "$3" = 6 ] && at="ip6[53]"
    [ -n "$(tcpdump -r "$1" "$at & $2 != 0 and greater $((MTU + 15))" 2>/dev/null)" ]
}

# injected NAME SOURCE MODE FILTER: the super-frames of SOURCE-before.pcap, changed by
# inject.py MODE, written into a tap on the bridge; captured on the tap and on b2.
injected() {
    local name=$1 source=$2 mode=$3 filter=$4
    wanted "$name" || return 0
    ip netns add "$NS2"
    n2 ip link add name br0 type bridge
    n2 ip tuntap add mode tap name t0 vnet_hdr
    n2 ip link add name b2 type veth peer name c
    n2 ethtool -K b2 tso off gso on tx off >/dev/null
    for d in t0 b2; do n2 ip link set dev "$d" master br0; done
    for d in t0 b2 c br0; do n2 ip link set dev "$d" mtu "$MTU" up; done
    capture "$NS2" t0 "$TMP/$name-before.pcap" "$filter"
    capture "$NS2" b2 "$TMP/$name-after.pcap" "$filter"
    n2 timeout 20 python3 "$(dirname "$0")/inject.py" "$OUT/$source-before.pcap" t0 "$MTU" "$mode" >/dev/null
    stop_captures
    ip netns del "$NS2"
    cp "$TMP/$name-before.pcap" "$TMP/$name-after.pcap" "$OUT/"
    echo "$name: $(tcpdump -r "$OUT/$name-before.pcap" 2>/dev/null | wc -l) frames before," \
        "$(tcpdump -r "$OUT/$name-after.pcap" 2>/dev/null | wc -l) after"
}

# relayed NAME FAMILY: like variant, with ECN on and relay.py between b1 and b2 marking CE,
# again (at most 10 times: about one run in three has CWR on a single frame) until a
# super-frame carries CWR.
relayed() {
    local name=$1 fam=$2 filter="tcp dst port $PORT" attempt
    wanted "$name" || return 0
    for attempt in $(seq 10); do
        setup "$fam"
        n1 sysctl -qw net.ipv4.tcp_ecn=1
        # b1 ] br0 [ tA = relay = tB ] br1 [ b2
        n2 ip link set dev b2 nomaster
        n2 ip link add name br1 type bridge
        n2 ip tuntap add mode tap name tA vnet_hdr
        n2 ip tuntap add mode tap name tB vnet_hdr
        n2 ip link set dev tA master br0
        n2 ip link set dev tB master br1
        n2 ip link set dev b2 master br1
        for d in tA tB br1; do n2 ip link set dev "$d" mtu "$MTU" up; done
        ip netns exec "$NS2" timeout 30 python3 "$(dirname "$0")/relay.py" tA tB 25 &
        RELAY=$!
        sleep 0.5 # the taps' carriers come up when the relay opens them
        capture "$NS2" tB "$TMP/$name-before.pcap" "$filter"
        capture "$NS2" b2 "$TMP/$name-after.pcap" "$filter"
        transfer
        stop_captures
        kill "$RELAY" 2>/dev/null || true
        wait "$RELAY" 2>/dev/null || true
        RELAY=""
        for ns in "$NS1" "$NS2" "$NS3"; do ip netns del "$ns"; done
        if has_super_frame "$TMP/$name-before.pcap" 0x80 "$fam"; then
            cp "$TMP/$name-before.pcap" "$TMP/$name-after.pcap" "$OUT/"
            echo "$name: $(tcpdump -r "$OUT/$name-before.pcap" 2>/dev/null | wc -l) frames before," \
                "$(tcpdump -r "$OUT/$name-after.pcap" 2>/dev/null | wc -l) after"
            return 0
        fi
        echo "$name: attempt $attempt sent CWR on no super-frame, again" >&2
    done
    echo "$name: CWR on no super-frame in 10 attempts" >&2
    return 1
}

# Made by the kernel's TCP, end to end.
variant tcp4 4
variant tcp6 6
relayed tcp4-ecn 4
relayed tcp6-ecn 6
# The same super-frames, tagged or with CWR, written into a tap.
injected tcp4-vlan tcp4 vlan "vlan and tcp dst port $PORT"
injected tcp6-qinq tcp6 qinq "vlan and vlan and tcp dst port $PORT"
injected tcp4-ipopts tcp4 ipopts "tcp dst port $PORT"
