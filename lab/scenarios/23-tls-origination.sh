#!/usr/bin/env bash
# TLS origination: with a ServiceEntry port 443 of protocol HTTP on httpbin.test and a
# DestinationRule tls SIMPLE for it (lab CA, SNI httpbin.test), the app's plain
# http://httpbin.test:443/ leaves the gateway as TLS, verified against the lab CA; nginx's 443
# listener (TLS only) logs it. The scenario swaps the lab's httpbin ServiceEntry for its own and
# restores it afterwards. (Origination to a targetPort: pending/23-tls-origination-targetport.sh.)
source "$(dirname "$0")/lib.sh"
require_protected client
se=$LAB_CONFIG/20-serviceentry-httpbin.yaml
saved=$LAB_STATE/23-saved-serviceentry-httpbin.yaml
mine=$LAB_CONFIG/90-httpbin-tls-origination.yaml
httpbin=$(lab_addr httpbin.test)
expected "SE httpbin.test 443/HTTP + DR SIMPLE (lab CA, sni httpbin.test): client GET plain" \
  "http://httpbin.test:443/headers -> 200; httpbin log: https on $httpbin:443, SNI httpbin.test," \
  "from $LAB_GW; restored SE -> :443 no longer allowed (403)"

restore() {
  lab_config_delete "$mine"
  lab_config_unpark "$saved" "$se"
}
trap restore EXIT
[[ -f $se ]] || fail "no $se to swap out"
lab_config_park "$se" "$saved"
cat >"$mine" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin-origination
  namespace: default
spec:
  hosts: ["httpbin.test"]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: http-tls, protocol: HTTP}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin-origination
  namespace: default
spec:
  host: httpbin.test
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls:
        mode: SIMPLE
        sni: httpbin.test
        caCertificates: $LAB_CA
YAML
lab_config_apply "$mine"
# Both the agent and the gateway reload on their own; wait for the first 200.
deadline=$((SECONDS + HANG_S))
while :; do
  mark httpbin.test
  pod_curl client -- http://httpbin.test:443/headers
  [[ $CURL_CODE == 200 ]] && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "want 200, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q '"X-Forwarded-Proto": "https"' <<<"$CURL_OUT" || fail "echo server did not see an https request"
settle
if server_saw httpbin.test "^$LAB_GW:[0-9]+ .*server=$httpbin:443 scheme=https host=\"httpbin.test\" sni=\"httpbin.test\" \"GET /headers HTTP/1.1\" 200" \
  "$(marked httpbin.test)"; then
  observe "httpbin log: https :443 sni httpbin.test from $LAB_GW"
else
  fail "httpbin log has no TLS GET /headers on :443 with SNI httpbin.test from the gateway: $(tail -n 2 "$LAB_LOGS/httpbin.test.access.log")"
fi

restore
trap - EXIT
deadline=$((SECONDS + HANG_S))
while :; do
  pod_curl client -- http://httpbin.test:443/headers
  [[ $CURL_CODE == 403 ]] && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done
observe "restored: :443 status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "after restoring the ServiceEntry port 443 still gets $CURL_CODE, want 403"
finish
