#!/usr/bin/env bash
# AuthorizationPolicy at the gateway, keyed on the tunnel peer's SPIFFE identity: only namespace
# default may reach httpbin.test (other hosts stay open to everyone). Pod other (namespace team-b)
# is refused by the gateway with 403 authz; client still gets through.
source "$(dirname "$0")/lib.sh"
require_protected client
require_protected other
policy=$LAB_CONFIG/90-authz-httpbin-default-only.yaml
expected "AuthorizationPolicy ALLOW from namespaces [default] to httpbin.test: other (team-b) GET" \
  "http://httpbin.test/ -> 403 x-tollgate-denied: authz, httpbin log +0, gateway log deny authz;" \
  "client -> 200; other https://edition.test/ (not covered) -> 200; edition.test made default-only" \
  "-> other's TLS reset, edition log +0, client 200; policy removed -> other 200"

cleanup() { lab_config_delete "$policy"; }
trap cleanup EXIT
cat >"$policy" <<YAML
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: httpbin-default-only
  namespace: tollgate-system
spec:
  action: ALLOW
  rules:
  - from:
    - source: {namespaces: [default]}
    to:
    - operation: {hosts: [httpbin.test]}
  - to:
    - operation: {notHosts: [httpbin.test]}
YAML
lab_config_apply "$policy"
# The gateway picks the policy up on its own (config dir poll or API watch); wait until other is
# refused (hang bound only).
deadline=$((SECONDS + HANG_S))
while :; do
  pod_curl other -- http://httpbin.test/headers
  [[ $CURL_CODE == 403 ]] && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done

mark httpbin.test
gw_log_mark
pod_curl other -- http://httpbin.test/headers
observe "other http status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "other: want 403, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
if grep -qi '^x-tollgate-denied: authz' <<<"$CURL_OUT"; then observe "x-tollgate-denied: authz"; else
  fail "other: no 'x-tollgate-denied: authz' header: $CURL_OUT"
fi
untouched httpbin.test
expect_gw_log "gateway log" identity=spiffe://cluster.local/ns/team-b/sa/default \
  name=httpbin.test:80 decision=deny reason=authz

pod_curl client -- http://httpbin.test/headers
observe "client http status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "client: want 200, got rc=$CURL_RC status=$CURL_CODE"
pod_curl other -- --cacert "$LAB_CA" https://edition.test/
observe "other https edition status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "other edition.test: want 200, got rc=$CURL_RC status=$CURL_CODE"

# The same policy over TLS: once edition.test is default-only too, other's TLS flow is reset
# (the node cannot answer with a 403 inside the app's own TLS), client's still works.
sed -i 's/\[httpbin.test\]/[httpbin.test, edition.test]/g' "$policy"
lab_config_apply "$policy"
deadline=$((SECONDS + HANG_S))
while :; do
  pod_curl other -- --max-time 5 --cacert "$LAB_CA" https://edition.test/
  [[ $CURL_RC != 0 ]] && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done
mark edition.test
pod_curl other -- --max-time 5 --cacert "$LAB_CA" https://edition.test/
observe "other https edition (default-only): rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 35 || $CURL_RC == 56 ]] ||
  fail "other https edition.test after the policy: want a reset (curl 35/56), got rc=$CURL_RC status=$CURL_CODE"
untouched edition.test
pod_curl client -- --cacert "$LAB_CA" https://edition.test/
observe "client https edition status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "client edition.test: want 200, got rc=$CURL_RC status=$CURL_CODE"

cleanup
trap - EXIT
deadline=$((SECONDS + HANG_S))
while :; do
  pod_curl other -- http://httpbin.test/headers
  [[ $CURL_CODE == 200 ]] && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done
observe "policy removed: other status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "after removing the policy other still gets $CURL_CODE"
finish
