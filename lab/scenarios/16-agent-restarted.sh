#!/usr/bin/env bash
# After a restart the agent re-adopts the enrolled pods from /run/tollgate: allowed traffic works
# again and denied traffic is still denied, without re-creating the pods.
source "$(dirname "$0")/lib.sh"
expected "agent started again -> client http://httpbin.test/ 200; http://blocked.test/ 403"

lab agent start >/dev/null 2>&1 || fail "agent start failed"
httpbin_ok() {
  pod_curl client -- --max-time 2 http://httpbin.test/headers
  [[ $CURL_CODE == 200 ]]
}
if wait_until httpbin_ok; then
  observe "httpbin 200 after ${WAITED_MS} ms"
else
  observe "httpbin never 200 (${WAITED_MS} ms)"
  fail "httpbin not reachable ${HANG_S} s after the agent restarted (last status $CURL_CODE)"
fi
mark blocked.test
# --resolve: strict DNS NXDOMAINs blocked.test (scenario 33); the proxy's decision is checked here.
pod_curl client -- --resolve "blocked.test:80:$(lab_addr blocked.test)" http://blocked.test/
observe "blocked status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] && denied_header || fail "blocked.test: want 403 with x-tollgate-denied, got $CURL_CODE"
untouched blocked.test
require_protected client
finish
