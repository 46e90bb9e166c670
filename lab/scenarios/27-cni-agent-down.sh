#!/usr/bin/env bash
# A pod created while the agent is down, the way a runtime creates it: the sandbox (netns, cgroup)
# first, then CNI ADD of the installed conflist (bridge + host-local + tollgate-cni; CNI_*
# environment, each plugin's config on stdin: lab/cni_exec.py). Fail closed: ADD fails with the
# spec's error JSON, and in that moment (bridge has already given the pod its interface and
# address) not even root in the pod's netns gets a packet to tg-net. Then the runtime's clean-up
# DEL, the agent back, and the retried ADD succeeds with the pod protected.
# (Scenario 15 kills the agent and sees add-pod refused; this one looks inside the failed sandbox.)
source "$(dirname "$0")/lib.sh"
expected "agent stopped: CNI ADD of pod 'late' exits 1 with error JSON {cniVersion 1.0.0, code 190," \
  "msg 'tollgate agent unreachable', details naming ADD default/late}; root in its netns reaches" \
  "nothing (http/ping/udp to tg-net by address; witness from_pods +0, servers +0); DEL ok; agent" \
  "started: retried ADD ok, pod protected, httpbin.test 200 through the proxy, blocked.test 403"

pod=late
cleanup() {
  lab del-pod "$pod" >/dev/null 2>&1
  lab agent status >/dev/null 2>&1 || lab agent start >/dev/null 2>&1
}
trap cleanup EXIT
lab del-pod "$pod" >/dev/null 2>&1
lab agent stop >/dev/null 2>&1
if lab agent status >/dev/null 2>&1; then
  fail "agent still running after stop"
else
  observe "agent stopped"
fi

expect_ok "sandbox" lab add-pod "$pod" --namespace default --no-network
rc=0
add_err=$(lab cni add "$pod" 2>&1 >/dev/null) || rc=$?
observe "ADD rc=$rc"
((rc != 0)) || fail "CNI ADD succeeded with the agent down"
verdict=$(python3 - "$add_err" "$pod" <<'PY'
import json, sys
text, pod = sys.argv[1], sys.argv[2]
doc = next((json.loads(l) for l in text.splitlines() if l.startswith("{")), None)
if doc is None:
    print("no error JSON in: " + text[:300]); sys.exit(1)
problems = []
if doc.get("cniVersion") != "1.0.0": problems.append(f"cniVersion {doc.get('cniVersion')!r}")
if doc.get("code") != 190: problems.append(f"code {doc.get('code')!r}")
if doc.get("msg") != "tollgate agent unreachable": problems.append(f"msg {doc.get('msg')!r}")
if f"ADD default/{pod}" not in doc.get("details", ""): problems.append(f"details {doc.get('details')!r}")
print("; ".join(problems) if problems else f"error JSON code {doc['code']} {doc['msg']!r}")
sys.exit(1 if problems else 0)
PY
) || fail "ADD error: $verdict"
observe "$verdict"

# The pod's netns right after the failed ADD, as the runtime holds it before its clean-up: bridge
# gave it eth0, an address and a default route, tollgate-cni did not enroll it.
addr=$(ip -n "$LAB_POD_NS_PREFIX$pod" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}')
observe "eth0 ${addr:-none}"
blocked=$(lab_addr blocked.test)
httpbin=$(lab_addr httpbin.test)
mark blocked.test
mark httpbin.test
before_pods=$(witness from_pods)
expect_fail "root http blocked" lab_exec "$pod" --root -- "${CURL[@]}" --connect-timeout 2 -H 'Host: blocked.test' "http://$blocked/"
expect_fail "root http httpbin" lab_exec "$pod" --root -- "${CURL[@]}" --connect-timeout 2 -H 'Host: httpbin.test' "http://$httpbin/headers"
expect_fail "root ping" lab_exec "$pod" --root -- ping -n -c 1 -W 1 "$blocked"
udp_send "$pod" --root -- "$blocked" 443 >/dev/null
sleep 0.3
untouched blocked.test
untouched httpbin.test
delta=$(($(witness from_pods) - before_pods))
observe "witness from_pods +$delta"
((delta == 0)) || fail "$delta packets from pods reached tg-net while the pod was not enrolled"

# What the runtime does after a failed ADD: DEL (must succeed with the agent away), then retry.
expect_ok "DEL with the agent down" lab cni del "$pod"
lab agent start >/dev/null 2>&1 || fail "agent start failed"
expect_ok "retried ADD" lab cni add "$pod"
require_protected "$pod"
pod_curl "$pod" -- http://httpbin.test/headers
observe "httpbin status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "httpbin after the retried ADD: want 200, got $CURL_CODE"
mark blocked.test
# By address with the name in Host: a 403 from the proxy whatever the DNS mode (strict DNS would
# already refuse to resolve the name).
pod_curl "$pod" -- -H 'Host: blocked.test' "http://$blocked/"
observe "blocked status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] && denied_header || fail "blocked.test: want 403 with x-tollgate-denied, got $CURL_CODE"
untouched blocked.test
finish
