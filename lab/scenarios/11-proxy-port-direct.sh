#!/usr/bin/env bash
# Connecting straight to the proxy's own listener (127.0.0.1:15001) must not be a way out: a flow
# whose original destination is a proxy port is refused (no loops, no confused deputy).
source "$(dirname "$0")/lib.sh"
require_protected client
expected "client -> 127.0.0.1:15001 with Host httpbin.test / SNI edition.test: no 200; upstreams untouched;" \
  "both logged deny loop (dst 127.0.0.1:15001); refused_loop +2"

mark httpbin.test
mark edition.test
access_log_mark
metric_mark tollgate_refused_loop_total
metric_mark tollgate_connections_total decision=deny reason=loop
pod_curl client -- -H 'Host: httpbin.test' http://127.0.0.1:15001/headers
observe "http rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] && fail "plain HTTP to 127.0.0.1:15001 was answered 200"
pod_curl client -- --cacert "$LAB_CA" --connect-to edition.test:443:127.0.0.1:15001 https://edition.test/
observe "tls rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] && fail "TLS to 127.0.0.1:15001 was answered 200"
untouched httpbin.test
untouched edition.test
# Refused before anything is read: no name, no bytes relayed.
expect_access_log "access log" pod=default/client dst=127.0.0.1:15001 decision=deny reason=loop \
  bytes_up=0 bytes_down=0
expect_metric_increase 2 tollgate_refused_loop_total
expect_metric_increase 2 tollgate_connections_total decision=deny reason=loop
finish
