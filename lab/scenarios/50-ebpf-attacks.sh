#!/usr/bin/env bash
# eBPF mode under attack: a pod's root with CAP_NET_ADMIN and CAP_NET_RAW but no CAP_BPF (what a
# NET_ADMIN pod gets) tries to take the programs off its cgroup, then to get out around them:
# raw IP, an AF_PACKET frame built by hand, TCP Fast Open and unconnected UDP. Nothing reaches
# tg-net; the programs stay; the refusals are counted.
source "$(dirname "$0")/lib.sh"
only_in_mode ebpf "it attacks the eBPF programs themselves (scenarios 13 and 29 attack the nftables table)"
expected "root+net_admin+net_raw in pod 'attacker': bpftool link detach and mounting cgroup2 refused," \
  "programs still attached; raw IP 253, AF_PACKET frame, TFO to blocked.test and 5 UDP datagrams:" \
  "witness from_pods +0; drop_other +1, drop_udp +5, fence_drop +1 (the frame), TFO denied by the proxy"

pod=attacker
scratch_pod "$pod" --namespace default
require_protected "$pod"
CAPS=(--caps net_admin,net_raw)
blocked=$(lab_addr blocked.test)
NFT=(tollgate_pod_nft_packets_total pod=default/$pod)
before=$(witness from_pods)
mark blocked.test
metric_mark "${NFT[@]}" counter=drop_other
metric_mark "${NFT[@]}" counter=drop_udp
metric_mark tollgate_fence_packets_total counter=fence_drop
metric_mark tollgate_connections_total decision=deny reason=not_in_registry

# 1. Take the programs away: every bpf() command needs CAP_BPF; cgroupfs is not mounted in the
# pod and mounting it needs CAP_SYS_ADMIN.
link=$(compgen -G "$LAB_STATE/bpffs/tollgate/pods/default_$pod/cgroup_connect4")
expect_fail "bpftool link detach (no CAP_BPF)" lab_exec "$pod" "${CAPS[@]}" -- bpftool link detach pinned "$link"
expect_fail "bpftool prog show (no CAP_BPF)" lab_exec "$pod" "${CAPS[@]}" -- bpftool prog show
expect_fail "mount cgroup2 (no CAP_SYS_ADMIN)" lab_exec "$pod" "${CAPS[@]}" -- mount -t cgroup2 none /mnt
if redirect_installed "$pod"; then observe "programs still attached"; else
  observe "programs GONE"
  fail "the pod's programs are no longer attached after the attempts"
fi

# 2. Around them.
out=$(lab_exec "$pod" "${CAPS[@]}" -- python3 - "$blocked" <<'PY' 2>&1
import socket, sys
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 253)
try:
    s.sendto(b"x" * 32, (dst, 0)); print("raw253: sent")
except OSError as e:
    print("raw253:", e.strerror)
PY
)
observe "$out"
grep -q "raw253: Operation not permitted" <<<"$out" || fail "raw IP 253: $out"

# An Ethernet frame to the node's bridge (tg0) MAC carrying IPv4/UDP to blocked.test: AF_PACKET
# never meets the IP stack's hooks; the host fence is its line.
bridge_mac=$(ip netns exec "$LAB_NS_NODE" cat /sys/class/net/tg0/address)
out=$(lab_exec "$pod" "${CAPS[@]}" -- python3 - "$blocked" "$(lab_addr "$pod")" "$bridge_mac" <<'PY' 2>&1
import socket, struct, sys
dst, src, mac = sys.argv[1:4]
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
payload = b"tollgate-af-packet"
udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
eth = bytes.fromhex(mac.replace(":", "")) + s.getsockname()[4] + b"\x08\x00"
s.send(eth + ip + udp)
print("af_packet: sent")
PY
)
observe "$out"
grep -q "af_packet: sent" <<<"$out" || fail "AF_PACKET frame not sent: $out"

out=$(lab_exec "$pod" "${CAPS[@]}" -- python3 - "$blocked" <<'PY' 2>&1
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT
s.settimeout(5)
try:
    s.connect((sys.argv[1], 80))
    s.send(b"GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n")
    print("tfo:", s.recv(200).split(b"\r\n")[0].decode())
except OSError as e:
    print("tfo:", e.strerror or e)
PY
)
observe "$out"
grep -q "tfo: HTTP/1.1 403" <<<"$out" || fail "TFO: want the proxy's 403, got: $out"

udp_send "$pod" "${CAPS[@]}" -- "$blocked" 9999 >/dev/null
sleep 0.3
arrived=$(($(witness from_pods) - before))
observe "from_pods packets +$arrived"
((arrived == 0)) || fail "$arrived packets from pods reached tg-net"
untouched blocked.test
expect_metric_increase 1 "${NFT[@]}" counter=drop_other
expect_metric_increase 5 "${NFT[@]}" counter=drop_udp
expect_metric_increase 1 tollgate_fence_packets_total counter=fence_drop
expect_metric_increase 1 tollgate_connections_total decision=deny reason=not_in_registry
finish
