#!/usr/bin/env bash
# Removing httpbin.test's ServiceEntry from the config (the file, or the API object with
# --config-source kubernetes) denies it once the agent reloads;
# restoring it allows it again (the scenario restores it in any case).
source "$(dirname "$0")/lib.sh"
require_protected client
expected "httpbin 200; remove ServiceEntry httpbin -> 403 after the reload; restore -> 200 again"

se=$LAB_CONFIG/20-serviceentry-httpbin.yaml
parked=$LAB_STATE/parked-serviceentry-httpbin.yaml
restore() { lab_config_unpark "$parked" "$se"; }
trap restore EXIT
[[ -f $se ]] || {
  echo "observed: $se missing"
  exit 1
}

# --resolve: without its ServiceEntry strict DNS also NXDOMAINs httpbin.test; the proxy's 403 is
# what is awaited here.
httpbin=$(lab_addr httpbin.test)
pod_curl client -- --resolve "httpbin.test:80:$httpbin" http://httpbin.test/headers
observe "before: $CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "precondition: httpbin not allowed before the change (status $CURL_CODE)"

lab_config_park "$se" "$parked"
# The deny must come from the reload (inotify or the watch), not from a timer: wait for the first 403 (the
# bound only catches a hang; `bench/run lifecycle` measures how fast the reload is).
httpbin_code() {
  pod_curl client -- --max-time 2 --resolve "httpbin.test:80:$httpbin" http://httpbin.test/headers
  [[ $CURL_CODE == "$1" ]]
}
if wait_until httpbin_code 403; then
  observe "denied after ${WAITED_MS} ms"
else
  observe "never denied (${WAITED_MS} ms)"
  fail "httpbin still allowed ${HANG_S} s after its ServiceEntry was removed (last status $CURL_CODE)"
fi

restore
if wait_until httpbin_code 200; then
  observe "allowed again after ${WAITED_MS} ms"
else
  observe "never allowed again (${WAITED_MS} ms)"
  fail "httpbin not allowed again ${HANG_S} s after restoring its ServiceEntry (last status $CURL_CODE)"
fi
finish
