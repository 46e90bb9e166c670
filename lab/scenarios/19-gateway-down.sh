#!/usr/bin/env bash
# The gateway is the only way out: with it stopped, allowed flows fail closed (HTTP gets the
# agent's 503 gateway_unavailable, TLS is cut) and nothing leaves for tg-net directly, from the
# pods or from the node; once it is back, the same requests work again.
source "$(dirname "$0")/lib.sh"
require_protected client
expected "gateway stopped: client http://httpbin.test/ -> 503 x-tollgate-denied: gateway_unavailable," \
  "https://edition.test/ fails; httpbin/edition logs +0, tg-net witness (not DNS) from_pods +0 from_node +0;" \
  "gateway started again: http 200, https 200"

restore() { lab gateway start >/dev/null 2>&1; }
trap restore EXIT
lab gateway stop >/dev/null 2>&1
if lab gateway status >/dev/null 2>&1; then fail "gateway still running after gateway stop"; fi
mark httpbin.test
mark edition.test
pods_before=$(witness from_pods_nondns)
node_before=$(witness from_node_nondns)

pod_curl client -- http://httpbin.test/headers
observe "down: http status=$CURL_CODE"
[[ $CURL_CODE == 503 ]] || fail "http: want 503, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
if grep -qi '^x-tollgate-denied: gateway_unavailable' <<<"$CURL_OUT"; then
  observe "x-tollgate-denied: gateway_unavailable"
else
  fail "http: no 'x-tollgate-denied: gateway_unavailable' header: $CURL_OUT"
fi
pod_curl client -- --cacert "$LAB_CA" https://edition.test/
observe "down: https rc=$CURL_RC"
((CURL_RC != 0)) || fail "https succeeded with the gateway stopped: $CURL_OUT"
untouched httpbin.test
untouched edition.test
pods=$(($(witness from_pods_nondns) - pods_before))
node=$(($(witness from_node_nondns) - node_before))
observe "witness (not DNS) from_pods +$pods from_node +$node"
((pods == 0 && node == 0)) || fail "packets reached tg-net without the gateway: pods +$pods, node +$node"

lab gateway start >/dev/null 2>&1 || fail "gateway did not start again"
trap - EXIT
pod_curl client -- http://httpbin.test/headers
observe "up again: http status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "after restart: want 200, got rc=$CURL_RC status=$CURL_CODE"
pod_curl client -- --cacert "$LAB_CA" https://edition.test/
observe "https status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "after restart: https want 200, got rc=$CURL_RC status=$CURL_CODE"
finish
