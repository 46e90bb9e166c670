#!/usr/bin/env bash
# IPv6 to an external address (blocked.test's v6 address in tg-net) does not get out.
# 1. As the lab creates it (IPv4 only), the pod has no IPv6 route: nothing leaves the socket.
# 2. Root in the pod then gives it IPv6 itself (a global address and a route to tg-net's
#    prefix), as a privileged pod could: TCP now meets the proxy (denied and logged), UDP and
#    ICMPv6 meet the pod's drop rules (counted), and still nothing arrives in tg-net.
# 3. Root removes the global address again but keeps the route: TCP from the link-local source is
#    dropped and counted (drop_tcp), nothing arrives.
source "$(dirname "$0")/lib.sh"
require_protected client
POD6=fd00:10:244::99   # the address root adds in phase 2
NFT=(tollgate_pod_nft_packets_total pod=default/client)
expected "curl -6 http://[$BLOCKED6]/ and UDP to it fail; no IPv6 packet arrives in tg-net;" \
  "with an IPv6 address+route added by root in the pod: curl -6 -> 403, logged deny no_name and" \
  "counted; UDP -> drop_udp; ping -6 -> drop_icmp; still no IPv6 packet arrives;" \
  "with the route but only a link-local address: curl -6 fails, drop_tcp counted"

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
expect_fail "curl -6" lab_exec client -- "${CURL[@]}" -6 "http://[$BLOCKED6]/"
expect_fail "curl -6 as root" lab_exec client --root -- "${CURL[@]}" -6 "http://[$BLOCKED6]/"
out=$(udp6)
observe "udp -6: $out"
[[ $out == "Network is unreachable" ]] || fail "UDP to $BLOCKED6 without an IPv6 route: $out"

# Phase 2.
trap 'lab_exec client --root -- ip -6 route del "${BLOCKED6%::*}::/64" dev eth0 2>/dev/null
      lab_exec client --root -- ip -6 addr del "$POD6/64" dev eth0 2>/dev/null' EXIT
expect_ok "root adds $POD6 and a route" lab_exec client --root -- sh -c \
  "ip -6 addr add $POD6/64 dev eth0 nodad && ip -6 route add ${BLOCKED6%::*}::/64 dev eth0"
access_log_mark
metric_mark tollgate_connections_total decision=deny reason=no_name
metric_mark "${NFT[@]}" counter=drop_udp
metric_mark "${NFT[@]}" counter=drop_icmp
pod_curl client -- -6 "http://[$BLOCKED6]/"
observe "curl -6 with a route: status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "curl -6 with a route: want 403, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q 'blocked.test reached' <<<"$CURL_OUT" && fail "the response came from blocked.test"
out=$(udp6)
observe "udp -6 with a route: $out"
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
expect_metric_increase 1 "${NFT[@]}" counter=drop_icmp

# Phase 3: root removes the global address but keeps the route, so TCP to the v6 address now has
# a link-local source. The proxy could not answer such a peer: the pod's rules drop and count it.
metric_mark "${NFT[@]}" counter=drop_tcp
expect_ok "root removes $POD6, keeps the route" lab_exec client --root -- ip -6 addr del "$POD6/64" dev eth0
expect_fail "curl -6 from a link-local source" lab_exec client -- "${CURL[@]}" -6 --max-time 2 \
  "http://[$BLOCKED6]/"
sleep 0.3
arrived=$(($(witness any_ipv6) - before))
((arrived == 0)) || fail "$arrived IPv6 packets reached tg-net"
expect_metric_increase 1 "${NFT[@]}" counter=drop_tcp
finish
