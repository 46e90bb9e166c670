#!/usr/bin/env bash
# An allowed TLS service (ServiceEntry edition.test:443 TLS): the app's own TLS, verified against
# the lab CA, passes through tollgate end to end.
source "$(dirname "$0")/lib.sh"
require_protected client
edition=$(lab_addr edition.test)
expected "client GET https://edition.test/ (lab CA) -> 200 'edition.test', edition log +1 with SNI;" \
  "access log: default/client $edition:443 edition.test tls allow registry, route $(gw_route edition.test:443)"

mark edition.test
access_log_mark
metric_mark tollgate_connections_total decision=allow reason=registry
pod_curl client -- --cacert "$LAB_CA" https://edition.test/
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "want 200, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q '^edition.test$' <<<"$CURL_OUT" || fail "body is not edition.test's"
settle
server_saw edition.test 'scheme=https host="edition.test" sni="edition.test"' "$(marked edition.test)" ||
  fail "edition log has no HTTPS request with SNI edition.test"
expect_access_log "access log" pod=default/client dst="$edition:443" name=edition.test protocol=tls \
  decision=allow reason=registry route="$(gw_route edition.test:443)" 'bytes_down > 0'
expect_metric_increase 1 tollgate_connections_total decision=allow reason=registry
finish
