#!/usr/bin/env bash
# Fail closed: with the agent (and so the proxy) killed, the rules stay and nothing leaves.
# Scenario 16 restarts the agent.
source "$(dirname "$0")/lib.sh"
require_protected client
expected "after SIGKILL of the agent: http://httpbin.test/ refused, https://blocked.test/ fails, DNS unanswered," \
  "the redirect still installed (nftables: its table; ebpf: its pinned programs); servers untouched;" \
  "a new pod cannot start (CNI ADD fails)"

lab agent status >/dev/null 2>&1 || fail "precondition: agent not running"
lab agent kill >/dev/null 2>&1
lab agent status >/dev/null 2>&1 && fail "agent still running after kill"
mark httpbin.test
mark blocked.test
# --resolve: DNS fails too with the agent down (checked below); the TCP itself must be refused.
httpbin=$(lab_addr httpbin.test)
pod_curl client -- --resolve "httpbin.test:80:$httpbin" http://httpbin.test/headers
observe "httpbin rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC != 0 && $CURL_CODE == 000 ]] || fail "httpbin answered with the agent down: status $CURL_CODE"
pod_curl client -- --resolve "blocked.test:443:$(lab_addr blocked.test)" --cacert "$LAB_CA" https://blocked.test/
[[ $CURL_RC != 0 ]] || fail "blocked.test answered with the agent down"
# DNS goes to the (dead) DNS proxy port: no answer, and nothing reaches a resolver.
expect_fail "dig with the agent down" lab_exec client -- dig +time=1 +tries=1 httpbin.test A
expect_ok "redirect still installed" redirect_installed client
untouched httpbin.test
untouched blocked.test
# Fail closed at start-up too: ADD cannot reach the agent, so the pod must not come up.
lab del-pod late >/dev/null 2>&1
if lab add-pod late >/dev/null 2>&1; then
  fail "add-pod succeeded with the agent down"
  lab del-pod late >/dev/null 2>&1
  observe "add-pod late: SUCCEEDED"
else
  observe "add-pod late: refused"
  ip netns list | grep -qw "${LAB_POD_NS_PREFIX}late" && fail "netns tg-pod-late left behind after a failed ADD"
fi
finish
