#!/usr/bin/env bash
# TLS to a host outside the registry is reset (decided on the ClientHello SNI).
source "$(dirname "$0")/lib.sh"
require_protected client
blocked=$(lab_addr blocked.test)
expected "client GET https://blocked.test/ -> connection reset (curl rc 35/56); blocked.test untouched;" \
  "access log: default/client $blocked:443 blocked.test tls deny not_in_registry, route none; counted"

mark blocked.test
access_log_mark
metric_mark tollgate_connections_total decision=deny reason=not_in_registry
# Strict DNS answers blocked.test NXDOMAIN (scenario 33); --resolve makes the app connect anyway,
# so the proxy's own decision is what is checked.
pod_curl client -- --resolve "blocked.test:443:$blocked" --cacert "$LAB_CA" https://blocked.test/
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 35 || $CURL_RC == 56 ]] || fail "want curl rc 35 or 56 (reset), got $CURL_RC: $CURL_OUT"
grep -qi 'reset' <<<"$CURL_OUT" || fail "curl did not report a reset: $(grep '^curl' <<<"$CURL_OUT")"
untouched blocked.test
expect_access_log "access log" pod=default/client dst="$blocked:443" name=blocked.test protocol=tls \
  decision=deny reason=not_in_registry route=none bytes_up=0 bytes_down=0
expect_metric_increase 1 tollgate_connections_total decision=deny reason=not_in_registry
finish
