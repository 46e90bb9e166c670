#!/usr/bin/env bash
# Removing httpbin.test's ServiceEntry from the config dir denies it within 1 s; restoring it
# allows it again (the scenario restores it in any case).
source "$(dirname "$0")/lib.sh"
require_protected client
expected "httpbin 200; remove ServiceEntry httpbin -> 403 within 1000 ms; restore -> 200 again"

se=$LAB_CONFIG/20-serviceentry-httpbin.yaml
parked=$LAB_STATE/parked-serviceentry-httpbin.yaml
restore() { [[ -f $parked ]] && mv -f "$parked" "$se"; }
trap restore EXIT
[[ -f $se ]] || {
  echo "observed: $se missing"
  exit 1
}

# --resolve: without its ServiceEntry strict DNS also NXDOMAINs httpbin.test; the proxy's 403 is
# what is timed here.
httpbin=$(lab_addr httpbin.test)
pod_curl client -- --resolve "httpbin.test:80:$httpbin" http://httpbin.test/headers
observe "before: $CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "precondition: httpbin not allowed before the change (status $CURL_CODE)"

mv -f "$se" "$parked"
t0=$(now_ms)
denied_after=""
# The time of a deny is when the first denied request was sent: it was already in effect then.
while (($(now_ms) - t0 < 3000)); do
  sent=$(($(now_ms) - t0))
  # Short timeout: an attempt that hangs must not hide when the deny took effect.
  pod_curl client -- --max-time 0.5 --resolve "httpbin.test:80:$httpbin" http://httpbin.test/headers
  if [[ $CURL_CODE == 403 ]]; then
    denied_after=$sent
    break
  fi
  sleep 0.05
done
observe "denied after ${denied_after:-never (3000+)} ms"
[[ -n $denied_after ]] || fail "httpbin still allowed 3 s after its ServiceEntry was removed"
[[ -n $denied_after ]] && ((denied_after > 1000)) && fail "deny took $denied_after ms (> 1000)"

restore
t0=$(now_ms)
allowed_after=""
while (($(now_ms) - t0 < 5000)); do
  pod_curl client -- --max-time 1 --resolve "httpbin.test:80:$httpbin" http://httpbin.test/headers
  if [[ $CURL_CODE == 200 ]]; then
    allowed_after=$(($(now_ms) - t0))
    break
  fi
  sleep 0.05
done
observe "allowed again after ${allowed_after:-never (5000+)} ms"
[[ -n $allowed_after ]] || fail "httpbin not allowed again 5 s after restoring its ServiceEntry"
finish
