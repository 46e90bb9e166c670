#!/usr/bin/env bash
# Running as uid 1337 (Istio's proxy uid) buys nothing: tollgate has no uid exemption.
source "$(dirname "$0")/lib.sh"
require_protected client
blocked=$(lab_addr blocked.test)
expected "as uid 1337: http://blocked.test/ 403, https://blocked.test/ reset, UDP dropped; blocked.test untouched;" \
  "both logged and counted deny not_in_registry (+2); drop_udp +5"

mark blocked.test
access_log_mark
metric_mark tollgate_connections_total decision=deny reason=not_in_registry
metric_mark tollgate_pod_nft_packets_total pod=default/client counter=drop_udp
udp_before=$(witness to_blocked_udp)
# --resolve: strict DNS NXDOMAINs blocked.test (scenario 33); the proxy's decision is checked here.
pod_curl client --uid 1337 -- --resolve "blocked.test:80:$blocked" http://blocked.test/
observe "http status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "http: want 403, got rc=$CURL_RC status=$CURL_CODE"
denied_header || fail "http: no x-tollgate-denied header"
pod_curl client --uid 1337 -- --resolve "blocked.test:443:$blocked" --cacert "$LAB_CA" https://blocked.test/
observe "https rc=$CURL_RC"
[[ $CURL_RC == 35 || $CURL_RC == 56 ]] || fail "https: want curl rc 35/56 (reset), got $CURL_RC"
udp_send client --uid 1337 -- "$blocked" 443 >/dev/null
sleep 0.3
(($(witness to_blocked_udp) == udp_before)) || fail "UDP from uid 1337 reached blocked.test"
untouched blocked.test
# The proxy sees the pod, not the uid: both connections logged as the pod's.
expect_access_log "log http" pod=default/client dst="$blocked:80" name=blocked.test protocol=http \
  decision=deny reason=not_in_registry
expect_access_log "log https" pod=default/client dst="$blocked:443" name=blocked.test \
  protocol=tls decision=deny reason=not_in_registry
expect_metric_increase 2 tollgate_connections_total decision=deny reason=not_in_registry
expect_metric_increase 5 tollgate_pod_nft_packets_total pod=default/client counter=drop_udp
finish
