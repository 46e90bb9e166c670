#!/usr/bin/env bash
# A plain-HTTP request to a host outside the registry gets tollgate's 403, never the server.
source "$(dirname "$0")/lib.sh"
require_protected client
blocked=$(lab_addr blocked.test)
expected "client GET http://blocked.test/ -> 403 with x-tollgate-denied; blocked.test untouched;" \
  "access log: default/client $blocked:80 blocked.test http deny not_in_registry, route none; counted"

mark blocked.test
access_log_mark
metric_mark tollgate_connections_total decision=deny reason=not_in_registry
# Strict DNS answers blocked.test NXDOMAIN (scenario 33); --resolve makes the app connect anyway,
# so the proxy's own decision is what is checked.
pod_curl client -- --resolve "blocked.test:80:$blocked" http://blocked.test/
observe "status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "want 403, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
if denied_header; then observe "x-tollgate-denied present"; else
  fail "no x-tollgate-denied header"
fi
grep -q 'blocked.test reached' <<<"$CURL_OUT" && fail "the response came from blocked.test"
untouched blocked.test
expect_access_log "access log" pod=default/client dst="$blocked:80" name=blocked.test protocol=http \
  decision=deny reason=not_in_registry route=none bytes_up=0
expect_metric_increase 1 tollgate_connections_total decision=deny reason=not_in_registry
finish
