#!/usr/bin/env bash
# HTTP/1 keep-alive: every request's Host is checked. One curl invocation, two requests; curl
# reuses the connection for the second, whose Host is blocked.test.
source "$(dirname "$0")/lib.sh"
require_protected client
expected "1st request (Host httpbin.test) 200; 2nd on the same connection (Host blocked.test) 403 or closed;" \
  "httpbin never sees Host blocked.test; blocked.test untouched;" \
  "access log: the connection to $(lab_addr httpbin.test):80 logged deny not_in_registry, name blocked.test; counted"

mark blocked.test
mark httpbin.test
access_log_mark
metric_mark tollgate_connections_total decision=deny reason=not_in_registry
w='%{http_code} connects=%{num_connects}\n'
out=$(lab_exec client -- "${CURL[@]}" -o /dev/null -w "$w" http://httpbin.test/headers \
  --next -o /dev/null -w "$w" -H 'Host: blocked.test' http://httpbin.test/headers 2>&1)
first=$(sed -n 1p <<<"$out")
second=$(sed -n 2p <<<"$out")
observe "1st: $first, 2nd: ${second:-none}"
[[ $first == "200 connects=1" ]] || fail "first request: want '200 connects=1', got '$first' ($out)"
[[ $second == 200* ]] && fail "second request with Host blocked.test was answered 200"
[[ $second == "403 connects=0" ]] && observe "denied on the reused connection"
settle
server_saw httpbin.test 'host="blocked.test"' "$(marked httpbin.test)" &&
  fail "httpbin received a request with Host blocked.test"
untouched blocked.test
# One connection, one line: the first request went through (bytes both ways), the second closed it.
expect_access_log "access log" pod=default/client dst="$(lab_addr httpbin.test):80" protocol=http \
  name=blocked.test decision=deny reason=not_in_registry 'bytes_up > 0' 'bytes_down > 0'
expect_metric_increase 1 tollgate_connections_total decision=deny reason=not_in_registry
finish
