#!/usr/bin/env bash
# An allowed name on a forbidden IP (curl --resolve httpbin.test:80:<blocked.test address>) reaches
# only the allowed host: tollgate connects by name, never to the IP the app asked for.
source "$(dirname "$0")/lib.sh"
require_protected client
blocked=$(lab_addr blocked.test)
httpbin=$(lab_addr httpbin.test)
expected "client --resolve httpbin.test:80:$blocked -> 200 from httpbin; httpbin log +1 on $httpbin:80;" \
  "blocked.test untouched; access log: original dst $blocked:80, name httpbin.test allow registry," \
  "route $(gw_route httpbin.test:80) (the name decided, not the IP)"

mark blocked.test
mark httpbin.test
access_log_mark
pod_curl client -- --resolve "httpbin.test:80:$blocked" http://httpbin.test/headers
observe "status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "want 200, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q '"Host": "httpbin.test"' <<<"$CURL_OUT" || fail "response is not httpbin's echo"
untouched blocked.test
settle
lines=$(($(server_log_lines httpbin.test) - $(marked httpbin.test)))
((lines == 1)) || fail "httpbin log grew by $lines, want 1"
observe "httpbin log +$lines"
# nginx listens on each name's own address: server= says which address the proxy really reached.
server_saw httpbin.test "server=$httpbin:80 .*host=\"httpbin.test\"" "$(marked httpbin.test)" ||
  fail "httpbin's log has no request received on $httpbin:80"
expect_access_log "access log" pod=default/client dst="$blocked:80" name=httpbin.test protocol=http \
  decision=allow reason=registry route="$(gw_route httpbin.test:80)" "'$blocked' not in route" \
  'bytes_down > 0'
finish
