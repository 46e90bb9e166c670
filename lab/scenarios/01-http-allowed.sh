#!/usr/bin/env bash
# An allowed plain-HTTP service (ServiceEntry httpbin.test:80 HTTP) works from a pod.
source "$(dirname "$0")/lib.sh"
require_protected client
httpbin=$(lab_addr httpbin.test)
expected "client GET http://httpbin.test/headers -> 200, echo sees Host httpbin.test, httpbin log +1;" \
  "access log: default/client $httpbin:80 httpbin.test http allow registry, route $(gw_route httpbin.test:80); echo and httpbin log see the gateway $LAB_GW as client"

mark httpbin.test
access_log_mark
metric_mark tollgate_connections_total decision=allow reason=registry
pod_curl client -- http://httpbin.test/headers
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "want 200, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q '"Host": "httpbin.test"' <<<"$CURL_OUT" || fail "echo server did not see Host httpbin.test"
settle
lines=$(($(server_log_lines httpbin.test) - $(marked httpbin.test)))
((lines == 1)) || fail "httpbin log grew by $lines, want 1"
server_saw httpbin.test 'host="httpbin.test" .*"GET /headers HTTP/1.1" 200' "$(marked httpbin.test)" ||
  fail "httpbin log has no 'GET /headers' 200 for Host httpbin.test"
observe "httpbin log +$lines"
# Through the tunnel the server's client is the gateway, not the pod or the node.
grep -q "\"X-Forwarded-For\": \"$LAB_GW\"" <<<"$CURL_OUT" ||
  fail "echo server did not see the gateway $LAB_GW as client (X-Forwarded-For): $CURL_OUT"
if server_saw httpbin.test "^$LAB_GW:[0-9]+ .*\"GET /headers HTTP/1.1\" 200" "$(marked httpbin.test)"; then
  observe "httpbin client $LAB_GW"
else
  fail "httpbin log does not show the gateway $LAB_GW as client"
fi
expect_access_log "access log" pod=default/client dst="$httpbin:80" name=httpbin.test protocol=http \
  decision=allow reason=registry route="$(gw_route httpbin.test:80)" 'bytes_down > 0'
expect_metric_increase 1 tollgate_connections_total decision=allow reason=registry
finish
