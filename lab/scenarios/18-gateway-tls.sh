#!/usr/bin/env bash
# The app's own TLS inside the tunnel: the gateway relays the bytes of https://edition.test/ and
# never terminates the app's TLS (curl verifies edition.test's certificate against the lab CA).
source "$(dirname "$0")/lib.sh"
require_protected client
peer=spiffe://cluster.local/ns/default/sa/default
expected "client GET https://edition.test/ (lab CA) -> 200 'edition.test'; gateway access log:" \
  "identity $peer, edition.test:443 allow; edition log +1 with SNI edition.test from $LAB_GW"

mark edition.test
gw_log_mark
pod_curl client -- --cacert "$LAB_CA" https://edition.test/
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "want 200, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q '^edition.test$' <<<"$CURL_OUT" || fail "body is not edition.test's"
expect_gw_log "gateway log" identity="$peer" name=edition.test:443 decision=allow 'bytes_down > 0'
[[ -n $ACCESS_LINE ]] && observe "gateway peer $(access_field identity)"
settle
if server_saw edition.test "^$LAB_GW:[0-9]+ .*scheme=https host=\"edition.test\" sni=\"edition.test\"" \
  "$(marked edition.test)"; then
  observe "edition log: https from $LAB_GW"
else
  fail "edition log has no HTTPS request with SNI edition.test from $LAB_GW"
fi
finish
