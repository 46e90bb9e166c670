#!/usr/bin/env bash
# Mutual TLS origination: with a ServiceEntry mtls.test port 443 of protocol HTTP and a
# DestinationRule tls MUTUAL (the lab's client certificate, lab CA, SNI mtls.test), the app's plain
# http://mtls.test:443/ reaches mtls.test, which requires a client certificate from the lab CA.
# The files are removed afterwards.
source "$(dirname "$0")/lib.sh"
require_protected client
mine=$LAB_CONFIG/90-mtls-origination.yaml
pki=$LAB_STATE/pki
mtls=$(lab_addr mtls.test)
expected "SE mtls.test 443/HTTP + DR MUTUAL (lab client cert): client GET plain http://mtls.test:443/" \
  "-> 200 'mtls.test client=CN=lab-client'; mtls log: https, SNI mtls.test, from $LAB_GW;" \
  "same rule without the client cert -> 400 'No required SSL certificate'; files removed -> 403"

mark mtls.test
cleanup() { lab_config_delete "$mine"; }
trap cleanup EXIT
cat >"$mine" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: mtls-origination
  namespace: default
spec:
  hosts: ["mtls.test"]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 443, name: http-mtls, protocol: HTTP}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: mtls-origination
  namespace: default
spec:
  host: mtls.test
  trafficPolicy:
    tls:
      mode: MUTUAL
      sni: mtls.test
      clientCertificate: $pki/lab-client.crt
      privateKey: $pki/lab-client.key
      caCertificates: $LAB_CA
YAML
lab_config_apply "$mine"
deadline=$((SECONDS + HANG_S))
while :; do
  pod_curl client -- http://mtls.test:443/
  [[ $CURL_CODE == 200 ]] && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done
observe "curl rc=$CURL_RC status=$CURL_CODE"
[[ $CURL_RC == 0 && $CURL_CODE == 200 ]] || fail "want 200, got rc=$CURL_RC status=$CURL_CODE: $CURL_OUT"
if grep -q '^mtls.test client=CN=lab-client$' <<<"$CURL_OUT"; then observe "body: client=CN=lab-client"; else
  fail "mtls.test did not see the lab client certificate: $CURL_OUT"
fi
settle
if server_saw mtls.test "^$LAB_GW:[0-9]+ .*server=$mtls:443 scheme=https host=\"mtls.test\" sni=\"mtls.test\" \"GET / HTTP/1.1\" 200" \
  "$(marked mtls.test)"; then
  observe "mtls log: https sni mtls.test from $LAB_GW"
else
  fail "mtls log has no TLS GET / with SNI mtls.test from the gateway: $(tail -n 2 "$LAB_LOGS/mtls.test.access.log")"
fi

# Without the client certificate (the same rule as SIMPLE) mtls.test refuses the request and says
# why: the gateway reaches it over verified TLS, nginx answers 400 "No required SSL certificate".
sed -i -e 's/mode: MUTUAL/mode: SIMPLE/' -e '/clientCertificate:/d' -e '/privateKey:/d' "$mine"
lab_config_apply "$mine"
deadline=$((SECONDS + HANG_S))
while :; do
  pod_curl client -- http://mtls.test:443/
  [[ $CURL_CODE == 400 ]] && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done
observe "without client cert: status=$CURL_CODE"
if [[ $CURL_CODE == 400 ]] && grep -qi 'No required SSL certificate' <<<"$CURL_OUT"; then
  observe "reason: No required SSL certificate was sent"
else
  fail "without the client certificate want 400 'No required SSL certificate', got $CURL_CODE"
fi

cleanup
trap - EXIT
deadline=$((SECONDS + HANG_S))
while :; do
  # --resolve: without its ServiceEntry strict DNS NXDOMAINs mtls.test; the proxy must deny it too.
  pod_curl client -- --resolve "mtls.test:443:$mtls" http://mtls.test:443/
  [[ $CURL_CODE == 403 ]] && break
  ((SECONDS < deadline)) || break
  sleep 0.3
done
observe "removed: status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] || fail "after removing the files mtls.test:443 still gets $CURL_CODE, want 403"
finish
