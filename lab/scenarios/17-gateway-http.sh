#!/usr/bin/env bash
# Plain HTTP through the egress gateway: the agent tunnels the pod's flow over mTLS with the pod's
# SVID; the gateway logs the pod's SPIFFE identity and is the only client httpbin.test sees.
source "$(dirname "$0")/lib.sh"
require_protected client
peer=spiffe://cluster.local/ns/default/sa/default
expected "client GET http://httpbin.test/headers -> 200; gateway access log: identity $peer," \
  "httpbin.test:80 allow; httpbin log +1 with client $LAB_GW (the gateway), X-Forwarded-For $LAB_GW"

mark httpbin.test
gw_log_mark
pod_curl client -- http://httpbin.test/headers
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "want 200, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q "\"X-Forwarded-For\": \"$LAB_GW\"" <<<"$CURL_OUT" ||
  fail "echo server's X-Forwarded-For is not the gateway $LAB_GW: $CURL_OUT"
expect_gw_log "gateway log" identity="$peer" name=httpbin.test:80 decision=allow \
  original_dst~'^198\.18\.0\.10:80$' 'bytes_down > 0'
[[ -n $ACCESS_LINE ]] && observe "gateway peer $(access_field identity)"
settle
lines=$(($(server_log_lines httpbin.test) - $(marked httpbin.test)))
observe "httpbin log +$lines"
((lines == 1)) || fail "httpbin log grew by $lines, want 1"
if server_saw httpbin.test "^$LAB_GW:[0-9]+ .*\"GET /headers HTTP/1.1\" 200" "$(marked httpbin.test)"; then
  observe "httpbin client $LAB_GW"
else
  fail "httpbin log has no GET /headers from the gateway $LAB_GW: $(tail -n 1 "$LAB_LOGS/httpbin.test.access.log")"
fi
finish
