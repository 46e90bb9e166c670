#!/usr/bin/env bash
# TLS to a host outside the registry is reset (decided on the ClientHello SNI).
source "$(dirname "$0")/lib.sh"
require_protected client
expected "client GET https://blocked.test/ -> connection reset (curl rc 35/56); blocked.test untouched"

mark blocked.test
pod_curl client -- --cacert "$LAB_CA" https://blocked.test/
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 35 || $CURL_RC == 56 ]] || fail "want curl rc 35 or 56 (reset), got $CURL_RC: $CURL_OUT"
grep -qi 'reset' <<<"$CURL_OUT" || fail "curl did not report a reset: $(grep '^curl' <<<"$CURL_OUT")"
untouched blocked.test
finish
