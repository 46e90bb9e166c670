#!/usr/bin/env bash
# A plain-HTTP request to a host outside the registry gets tollgate's 403, never the server.
source "$(dirname "$0")/lib.sh"
require_protected client
expected "client GET http://blocked.test/ -> 403 with x-tollgate-denied; blocked.test untouched"

mark blocked.test
pod_curl client -- http://blocked.test/
observe "status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "want 403, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
if denied_header; then observe "x-tollgate-denied present"; else
  fail "no x-tollgate-denied header"
fi
grep -q 'blocked.test reached' <<<"$CURL_OUT" && fail "the response came from blocked.test"
untouched blocked.test
finish
