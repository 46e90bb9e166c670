#!/usr/bin/env bash
# Binding of name and address: curl --resolve httpbin.test:80:<blocked.test's address> sends Host
# httpbin.test to an address the pod never resolved httpbin.test to. The decision is unchanged (the
# name decides and the proxy connects by name), but the flow is marked name_addr_mismatch in the
# access log and counted. The same request after a real lookup is not marked.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_dns.sh"
require_protected client
httpbin=$(lab_addr httpbin.test)
blocked=$(lab_addr blocked.test)
expected "curl http://httpbin.test/ (resolved by the pod) -> 200, not marked; --resolve httpbin.test:80:$blocked" \
  "-> 200, access log dst $blocked:80 name httpbin.test allow + name_addr_mismatch; name_addr_mismatch +1;" \
  "blocked.test untouched"

mark blocked.test
access_log_mark
pod_curl client -- http://httpbin.test/headers
observe "resolved: $CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "resolved: want 200, got rc=$CURL_RC status=$CURL_CODE"
expect_access_log "resolved" pod=default/client dst="$httpbin:80" name=httpbin.test decision=allow \
  'not r.get("name_addr_mismatch")'

access_log_mark
metric_mark tollgate_name_addr_mismatch_total
pod_curl client -- --resolve "httpbin.test:80:$blocked" http://httpbin.test/headers
observe "--resolve: $CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "--resolve: want 200 (decision unchanged), got rc=$CURL_RC status=$CURL_CODE"
expect_access_log "--resolve" pod=default/client dst="$blocked:80" name=httpbin.test decision=allow \
  name_addr_mismatch=True
expect_metric_increase 1 tollgate_name_addr_mismatch_total
untouched blocked.test
finish
