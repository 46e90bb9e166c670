#!/usr/bin/env bash
# IPv6 to an external address (blocked.test's v6 address in tg-net) does not get out.
# 1. As the lab creates it (dual stack: a ULA from host-local and a default route), the pod's
#    IPv6 TCP meets the proxy (denied and logged), UDP and ICMPv6 meet the pod's drop rules
#    (counted), and nothing arrives in tg-net.
# 2. Root in the pod removes its global address and routes blocked.test's prefix on-link, so TCP
#    leaves from the link-local source (which the proxy on [::1] could not answer): the pod's
#    rules drop and count it, nothing arrives. The address and route are put back afterwards.
source "$(dirname "$0")/lib.sh"
require_protected client
NFT=(tollgate_pod_nft_packets_total pod=default/client)
# The class raw ICMPv6 is counted under: the eBPF backstop counts IPv6 as a class of its own.
icmp6=drop_icmp
[[ $(lab_mode) == ebpf ]] && icmp6=drop_ipv6
pod6=$(lab_addr -6 client)
expected "the client pod has an IPv6 address; curl -6 http://[$BLOCKED6]/ -> 403, logged deny" \
  "no_name and counted; UDP -> drop_udp; ping -6 -> $icmp6; no IPv6 packet arrives in tg-net;" \
  "with only a link-local address (root removed the global one): curl -6 fails, drop_tcp counted" \
  "(nftables: the proxy on ::1 cannot answer a link-local peer) or is denied by the proxy (ebpf:" \
  "the rewrite happens before source selection)"

[[ $pod6 == fd00:10:244:* ]] || fail "client has no IPv6 address from host-local: '$pod6'"
observe "client $pod6"

udp6() {  # one datagram (uid 1000) to blocked.test's v6 address:443; prints "sent" or the error
  lab_exec client -- python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try:
    s.sendto(b"q" * 64, (sys.argv[1], 443))
    print("sent")
except OSError as e:
    print(e.strerror)
' "$BLOCKED6"
}

before=$(witness any_ipv6)
mark blocked.test
access_log_mark
metric_mark tollgate_connections_total decision=deny reason=no_name
metric_mark "${NFT[@]}" counter=drop_udp
metric_mark "${NFT[@]}" counter=$icmp6
pod_curl client -- -6 "http://[$BLOCKED6]/"
observe "curl -6: status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "curl -6: want 403, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q 'blocked.test reached' <<<"$CURL_OUT" && fail "the response came from blocked.test"
out=$(udp6)
observe "udp -6: $out"
expect_fail "ping -6 as root" lab_exec client --root -- ping -6 -n -c 1 -W 1 "$BLOCKED6"
sleep 0.3
arrived=$(($(witness any_ipv6) - before))
observe "ipv6 packets arrived: $arrived"
((arrived == 0)) || fail "$arrived IPv6 packets reached tg-net"
untouched blocked.test
expect_access_log "access log" pod=default/client dst="[$BLOCKED6]:80" protocol=http decision=deny \
  reason=no_name bytes_up=0 bytes_down=0
expect_metric_increase 1 tollgate_connections_total decision=deny reason=no_name
expect_metric_increase 1 "${NFT[@]}" counter=drop_udp
expect_metric_increase 1 "${NFT[@]}" counter=$icmp6

# Phase 2: only the link-local source is left for TCP to the v6 address.
trap 'lab_exec client --root -- ip -6 route del "${BLOCKED6%::*}::/64" dev eth0 2>/dev/null
      lab_exec client --root -- ip -6 addr replace "$pod6/64" dev eth0 nodad 2>/dev/null
      lab_exec client --root -- ip -6 route replace default via "$(lab_addr -6 bridge)" dev eth0 2>/dev/null' EXIT
metric_mark "${NFT[@]}" counter=drop_tcp
expect_ok "root removes $pod6, routes ${BLOCKED6%::*}::/64 on-link" lab_exec client --root -- sh -c \
  "ip -6 addr del $pod6/64 dev eth0 && ip -6 route add ${BLOCKED6%::*}::/64 dev eth0"
if [[ $(lab_mode) == ebpf ]]; then
  metric_mark tollgate_connections_total decision=deny reason=no_name
  pod_curl client -- -6 --max-time 5 "http://[$BLOCKED6]/"
  observe "curl -6 from a link-local source: status=$CURL_CODE"
  [[ $CURL_CODE == 403 ]] || fail "curl -6 from a link-local source: want 403 from the proxy, got rc=$CURL_RC status=$CURL_CODE"
else
  expect_fail "curl -6 from a link-local source" lab_exec client -- "${CURL[@]}" -6 --max-time 2 \
    "http://[$BLOCKED6]/"
fi
sleep 0.3
arrived=$(($(witness any_ipv6) - before))
((arrived == 0)) || fail "$arrived IPv6 packets reached tg-net"
if [[ $(lab_mode) == ebpf ]]; then
  expect_metric_increase 1 tollgate_connections_total decision=deny reason=no_name
else
  expect_metric_increase 1 "${NFT[@]}" counter=drop_tcp
fi
finish
