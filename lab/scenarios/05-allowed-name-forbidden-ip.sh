#!/usr/bin/env bash
# An allowed name on a forbidden IP (curl --resolve httpbin.test:80:<blocked.test address>) reaches
# only the allowed host: tollgate connects by name, never to the IP the app asked for.
source "$(dirname "$0")/lib.sh"
require_protected client
blocked=$(lab_addr blocked.test)
expected "client --resolve httpbin.test:80:$blocked -> 200 from httpbin; httpbin log +1; blocked.test untouched"

mark blocked.test
mark httpbin.test
pod_curl client -- --resolve "httpbin.test:80:$blocked" http://httpbin.test/headers
observe "status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "want 200, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q '"Host": "httpbin.test"' <<<"$CURL_OUT" || fail "response is not httpbin's echo"
untouched blocked.test
settle
lines=$(($(server_log_lines httpbin.test) - $(marked httpbin.test)))
((lines == 1)) || fail "httpbin log grew by $lines, want 1"
observe "httpbin log +$lines"
finish
