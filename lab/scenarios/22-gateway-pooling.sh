#!/usr/bin/env bash
# Tunnels share pooled TLS connections: 200 sequential short HTTP connections from client (a new
# TCP connection and Connection: close each time) become 200 CONNECT streams at the gateway over
# at most a handful of mTLS connections (the agent keeps --tunnel-connections, default 2, per
# identity and gateway).
source "$(dirname "$0")/lib.sh"
require_protected client
n=200
expected "$n sequential connections client -> http://httpbin.test/: all 200; gateway" \
  "tunnels_total +>= $n, tls_connections_total +<= 4"

# Prime the pool first: a reconnect after an earlier scenario restarted the gateway is not measured.
pod_curl client -- http://httpbin.test/headers
tun_before=$(gw_metric tollgate_gateway_tunnels_total) || fail "gateway /metrics unreadable"
tls_before=$(gw_metric tollgate_gateway_tls_connections_total) || fail "gateway /metrics unreadable"
out=$(lab_exec client -- python3 -c '
import http.client, sys
ok = bad = 0
for _ in range(int(sys.argv[1])):
    c = http.client.HTTPConnection("httpbin.test", 80, timeout=5)
    try:
        c.request("GET", "/headers", headers={"Connection": "close"})
        r = c.getresponse()
        r.read()
        ok += r.status == 200
        bad += r.status != 200
    except OSError:
        bad += 1
    finally:
        c.close()
print(f"ok {ok} bad {bad}")
' "$n" 2>&1)
observe "requests: $out"
[[ $out == "ok $n bad 0" ]] || fail "not all $n requests got 200: $out"
# The agent counts a tunnel when its stream ends: wait for the gateway to see them all.
deadline=$(($(now_ms) + HANG_S * 1000))
while :; do
  tun=$(($(gw_metric tollgate_gateway_tunnels_total) - tun_before))
  ((tun >= n)) && break
  (($(now_ms) < deadline)) || break
  sleep 0.1
done
tls=$(($(gw_metric tollgate_gateway_tls_connections_total) - tls_before))
observe "gateway tunnels +$tun tls_connections +$tls"
((tun >= n)) || fail "gateway saw $tun tunnels, want >= $n (did the flows bypass it?)"
((tls <= 4)) || fail "gateway accepted $tls TLS connections for $n flows, want <= 4"
finish
