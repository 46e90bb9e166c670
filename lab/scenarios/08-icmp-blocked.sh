#!/usr/bin/env bash
# ICMP echo (ping) to an external address is dropped: as a pod (ICMP datagram socket, allowed by
# ping_group_range like containerd does) and as root (raw socket).
source "$(dirname "$0")/lib.sh"
require_protected client
blocked=$(lab_addr blocked.test)
expected "ping $blocked as uid 1000 and as root fails; no ICMP arrives in tg-net; drop_icmp counts them"

before=$(witness any_icmp)
mark blocked.test
metric_mark tollgate_pod_nft_packets_total pod=default/client counter=drop_icmp
expect_fail "ping as pod" lab_exec client -- python3 -c '
import socket, sys, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.settimeout(1)
s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"tollgate", (sys.argv[1], 0))
s.recv(1500)
' "$blocked"
expect_fail "ping as root" lab_exec client --root -- ping -n -c 2 -W 1 "$blocked"
arrived=$(($(witness any_icmp) - before))
observe "icmp arrived: $arrived"
((arrived == 0)) || fail "$arrived ICMP packets reached tg-net"
untouched blocked.test
# At least the pod's echo and root's first: ping stops early on some send errors.
expect_metric_increase 2 tollgate_pod_nft_packets_total pod=default/client counter=drop_icmp
finish
