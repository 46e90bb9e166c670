#!/usr/bin/env bash
# httpbin.test is allowed on port 80 only; its port 443 really serves, but must not be reachable.
source "$(dirname "$0")/lib.sh"
require_protected client
httpbin=$(lab_addr httpbin.test)
expected "client https://httpbin.test/ (port 443, not in the registry) -> refused/reset; httpbin log unchanged;" \
  "access log: $httpbin:443 httpbin.test tls deny port_not_in_registry; counted"

mark httpbin.test
access_log_mark
metric_mark tollgate_connections_total decision=deny reason=port_not_in_registry
pod_curl client -- --cacert "$LAB_CA" https://httpbin.test/headers
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC != 0 && $CURL_CODE == 000 ]] || fail "port 443 answered: rc=$CURL_RC status=$CURL_CODE"
untouched httpbin.test
expect_access_log "access log" pod=default/client dst="$httpbin:443" name=httpbin.test protocol=tls \
  decision=deny reason=port_not_in_registry bytes_down=0
expect_metric_increase 1 tollgate_connections_total decision=deny reason=port_not_in_registry
finish
