#!/usr/bin/env bash
# Dual stack: the lab's pods have an IPv6 ULA from host-local beside their IPv4 address, and the
# services in tg-net have IPv6 addresses (the lab resolver answers A records only, so the pod
# picks IPv6 here with --resolve to the v6 address). Allowed IPv6 flows go through the agent and
# the gateway's tunnel exactly like IPv4 (the gateway resolves the name itself); pod-to-pod IPv6
# is in-cluster; the IPv6 variants of the blocked scenarios (03, 04, 07, 08, 10, 12, 13) are
# refused, logged and counted; no IPv6 packet from a pod reaches tg-net.
source "$(dirname "$0")/lib.sh"
require_protected client
require_protected other
pod6=$(lab_addr -6 client)
other6=$(lab_addr -6 other)
httpbin6=$(lab_addr -6 httpbin.test)
edition6=$(lab_addr -6 edition.test)
blocked6=$(lab_addr -6 blocked.test)
expected "client and other have IPv6 addresses; over IPv6: httpbin.test 200 and edition.test 200" \
  "through the gateway (agent route gateway, the servers see only the gateway); other's v6 :8000" \
  "200 in-cluster; blocked.test http 403 / https reset, also as uid 1337; httpbin:443 refused" \
  "(port_not_in_registry); UDP and ping -6 dropped and counted; with the pod table deleted the" \
  "host fence drops IPv6 too; tg-net sees no IPv6 packet from a pod; blocked.test untouched"

[[ $pod6 == fd00:10:244:* && $other6 == fd00:10:244:* ]] ||
  fail "pods without an IPv6 address from host-local: client '$pod6', other '$other6'"
observe "client $pod6, other $other6"
NFT=(tollgate_pod_nft_packets_total pod=default/client)
v6_before=$(witness any_ipv6)
pods_before=$(witness from_pods)
icmp_before=$(witness any_icmp)
udp_before=$(witness to_blocked_udp)
mark blocked.test

# 1. Allowed names over IPv6: the same tunnel as IPv4.
mark httpbin.test
access_log_mark
gw_log_mark
pod_curl client -- -6 --resolve "httpbin.test:80:[$httpbin6]" http://httpbin.test/headers
observe "http v6 status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "http over IPv6: want 200, got rc=$CURL_RC status=$CURL_CODE"
expect_access_log "agent http v6" pod=default/client dst="[$httpbin6]:80" name=httpbin.test \
  protocol=http decision=allow route="$(gw_route httpbin.test:80)" 'bytes_down > 0'
expect_gw_log "gateway http v6" identity=spiffe://cluster.local/ns/default/sa/default \
  name=httpbin.test:80 decision=allow
settle
server_saw httpbin.test "^$LAB_GW:[0-9]+ .*\"GET /headers HTTP/1.1\" 200" "$(marked httpbin.test)" ||
  fail "httpbin did not get the request from the gateway $LAB_GW"
server_saw httpbin.test "^(\[)?$pod6" "$(marked httpbin.test)" && fail "httpbin saw the pod's own address"
pod_curl client -- -6 --cacert "$LAB_CA" --resolve "edition.test:443:[$edition6]" https://edition.test/
observe "https v6 status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "https over IPv6: want 200, got rc=$CURL_RC status=$CURL_CODE"
expect_access_log "agent https v6" pod=default/client dst="[$edition6]:443" name=edition.test \
  protocol=tls decision=allow route="$(gw_route edition.test:443)"

# 2. Pod to pod over IPv6: in-cluster, through the proxy, straight to the other pod.
timeout 60 "$LAB" exec other -- python3 -m http.server 8000 --bind :: --directory /tmp \
  >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait 2>/dev/null' EXIT
other_up() { ip netns exec "${LAB_POD_NS_PREFIX}other" bash -c "exec 3<>/dev/tcp/::1/8000" 2>/dev/null; }
wait_until other_up || fail "the v6 HTTP server in other did not start"
access_log_mark
pod_curl client -- -6 "http://[$other6]:8000/"
observe "pod-to-pod v6 status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "pod to pod over IPv6: want 200, got rc=$CURL_RC status=$CURL_CODE"
expect_access_log "agent in-cluster v6" pod=default/client dst="[$other6]:8000" reason=in_cluster \
  decision=allow route=in-cluster
kill "$server" 2>/dev/null

# 3. The blocked variants over IPv6.
access_log_mark
metric_mark tollgate_connections_total decision=deny reason=not_in_registry
metric_mark tollgate_connections_total decision=deny reason=port_not_in_registry
metric_mark "${NFT[@]}" counter=drop_udp
icmp6=drop_icmp
[[ $(lab_mode) == ebpf ]] && icmp6=drop_ipv6  # the eBPF backstop counts IPv6 as its own class
metric_mark "${NFT[@]}" counter=$icmp6
pod_curl client -- -6 --resolve "blocked.test:80:[$blocked6]" http://blocked.test/
observe "blocked http v6 status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] && denied_header || fail "blocked.test http v6: want 403 with x-tollgate-denied, got $CURL_CODE"
pod_curl client -- -6 --resolve "blocked.test:443:[$blocked6]" --cacert "$LAB_CA" https://blocked.test/
observe "blocked https v6 rc=$CURL_RC"
[[ $CURL_RC == 35 || $CURL_RC == 56 ]] || fail "blocked.test https v6: want a reset (curl 35/56), got $CURL_RC"
pod_curl client --uid 1337 -- -6 --resolve "blocked.test:80:[$blocked6]" http://blocked.test/
observe "blocked http v6 as uid 1337 status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "blocked.test http v6 as uid 1337: want 403, got $CURL_CODE"
pod_curl client -- -6 --cacert "$LAB_CA" --resolve "httpbin.test:443:[$httpbin6]" https://httpbin.test/
observe "httpbin:443 v6 rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC != 0 && $CURL_CODE == 000 ]] || fail "httpbin port 443 over IPv6 answered: rc=$CURL_RC status=$CURL_CODE"
udp_send client -- "$blocked6" 443 >/dev/null
udp_send client --root -- "$blocked6" 443 >/dev/null
expect_fail "ping -6 as root" lab_exec client --root -- ping -6 -n -c 1 -W 1 "$blocked6"
expect_access_log "log blocked http v6" pod=default/client dst="[$blocked6]:80" name=blocked.test \
  protocol=http decision=deny reason=not_in_registry
expect_access_log "log blocked https v6" pod=default/client dst="[$blocked6]:443" name=blocked.test \
  protocol=tls decision=deny reason=not_in_registry
expect_access_log "log httpbin:443 v6" pod=default/client dst="[$httpbin6]:443" name=httpbin.test \
  decision=deny reason=port_not_in_registry
expect_metric_increase 3 tollgate_connections_total decision=deny reason=not_in_registry
expect_metric_increase 1 tollgate_connections_total decision=deny reason=port_not_in_registry
expect_metric_increase 10 "${NFT[@]}" counter=drop_udp
expect_metric_increase 1 "${NFT[@]}" counter=$icmp6

# 4. The host fence holds for IPv6 too: root in a pod deletes its table.
pod=fence6
lab del-pod "$pod" >/dev/null 2>&1
trap 'kill $server 2>/dev/null; wait 2>/dev/null; lab del-pod "$pod" >/dev/null 2>&1' EXIT
if lab add-pod "$pod" --namespace default >/dev/null 2>&1; then
  metric_mark tollgate_fence_packets_total counter=fence_drop
  expect_ok "remove the redirect (fence6)" remove_redirect "$pod"
  expect_fail "fence6 http v6 as root" lab_exec "$pod" --root -- "${CURL[@]}" -6 -f \
    --resolve "blocked.test:80:[$blocked6]" http://blocked.test/
  udp_send "$pod" --root -- "$blocked6" 443 >/dev/null
  expect_metric_increase 1 tollgate_fence_packets_total counter=fence_drop
else
  fail "add-pod $pod failed"
fi

sleep 0.3
untouched blocked.test
observe "tg-net: ipv6 +$(($(witness any_ipv6) - v6_before)), from_pods +$(($(witness from_pods) - pods_before)), icmp +$(($(witness any_icmp) - icmp_before)), udp to blocked +$(($(witness to_blocked_udp) - udp_before))"
(($(witness any_ipv6) == v6_before)) || fail "IPv6 packets from pods reached tg-net"
(($(witness any_icmp) == icmp_before)) || fail "ICMP from pods reached tg-net"
(($(witness to_blocked_udp) == udp_before)) || fail "UDP reached blocked.test"
finish
