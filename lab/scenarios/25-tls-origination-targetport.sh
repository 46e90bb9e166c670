#!/usr/bin/env bash
# TLS origination at the gateway: with a ServiceEntry httpbin.test port 80 -> targetPort 443 and a
# DestinationRule tls SIMPLE (lab CA, SNI httpbin.test), the app's plain http://httpbin.test/
# reaches httpbin.test:443 over TLS verified against the lab CA. The scenario swaps the lab's
# httpbin ServiceEntry for its own and restores it afterwards.
source "$(dirname "$0")/lib.sh"
require_protected client
se=$LAB_CONFIG/20-serviceentry-httpbin.yaml
saved=$LAB_STATE/25-saved-serviceentry-httpbin.yaml
mine=$LAB_CONFIG/90-httpbin-tls-origination.yaml
httpbin=$(lab_addr httpbin.test)
expected "SE httpbin.test 80->targetPort 443 + DR SIMPLE (lab CA, sni httpbin.test): client GET" \
  "http://httpbin.test/headers -> 200; httpbin log: https on $httpbin:443 with SNI httpbin.test from" \
  "$LAB_GW, nothing on :80; restored SE -> plain http on :80 again"

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
  - {number: 80, name: http, protocol: HTTP, targetPort: 443}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin-origination
  namespace: default
spec:
  host: httpbin.test
  trafficPolicy:
    tls:
      mode: SIMPLE
      sni: httpbin.test
      caCertificates: $LAB_CA
YAML
lab_config_apply "$mine"
# Both the agent and the gateway reload on their own; wait until the request arrives
# over TLS.
deadline=$((SECONDS + HANG_S))
while :; do
  mark httpbin.test
  pod_curl client -- http://httpbin.test/headers
  settle
  server_saw httpbin.test "server=$httpbin:443 scheme=https" "$(marked httpbin.test)" && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "want 200, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
grep -q '"X-Forwarded-Proto": "https"' <<<"$CURL_OUT" || fail "echo server did not see an https request"
if server_saw httpbin.test "^$LAB_GW:[0-9]+ .*server=$httpbin:443 scheme=https host=\"httpbin.test\" sni=\"httpbin.test\" \"GET /headers HTTP/1.1\" 200" \
  "$(marked httpbin.test)"; then
  observe "httpbin log: https :443 sni httpbin.test from $LAB_GW"
else
  fail "httpbin log has no TLS GET /headers on :443 with SNI httpbin.test from the gateway: $(tail -n 2 "$LAB_LOGS/httpbin.test.access.log")"
fi
if server_saw httpbin.test "server=$httpbin:80 " "$(marked httpbin.test)"; then
  fail "the request also arrived in plain HTTP on :80"
fi

restore
trap - EXIT
deadline=$((SECONDS + HANG_S))
while :; do
  mark httpbin.test
  pod_curl client -- http://httpbin.test/headers
  settle
  server_saw httpbin.test "server=$httpbin:80 scheme=http " "$(marked httpbin.test)" && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done
if server_saw httpbin.test "server=$httpbin:80 scheme=http " "$(marked httpbin.test)"; then
  observe "restored: plain http on :80"
else
  fail "after restoring the ServiceEntry the request did not arrive in plain HTTP on :80 (status $CURL_CODE)"
fi
finish
