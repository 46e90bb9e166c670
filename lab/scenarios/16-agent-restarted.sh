#!/usr/bin/env bash
# After a restart the agent re-adopts the enrolled pods from /run/tollgate: allowed traffic works
# again and denied traffic is still denied, without re-creating the pods.
source "$(dirname "$0")/lib.sh"
expected "agent started again -> client http://httpbin.test/ 200 within 10 s; http://blocked.test/ 403"

lab agent start >/dev/null 2>&1 || fail "agent start failed"
t0=$(now_ms)
ok_after=""
while (($(now_ms) - t0 < 10000)); do
  pod_curl client -- --max-time 1 http://httpbin.test/headers
  if [[ $CURL_CODE == 200 ]]; then
    ok_after=$(($(now_ms) - t0))
    break
  fi
  sleep 0.1
done
observe "httpbin 200 after ${ok_after:-never (10000+)} ms"
[[ -n $ok_after ]] || fail "httpbin not reachable 10 s after the agent restarted"
mark blocked.test
# --resolve: strict DNS NXDOMAINs blocked.test (scenario 33); the proxy's decision is checked here.
pod_curl client -- --resolve "blocked.test:80:$(lab_addr blocked.test)" http://blocked.test/
observe "blocked status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] && denied_header || fail "blocked.test: want 403 with x-tollgate-denied, got $CURL_CODE"
untouched blocked.test
require_protected client
finish
