#!/usr/bin/env bash
# SVIDs rotate under load without breaking a request: the agent is restarted with the shortest SVID
# lifetime it accepts (--svid-lifetime 1m; rotation at half life), then client runs a continuous
# loop of requests through the gateway tunnel for ROTATION_SECONDS (default 80: two rotations, the
# second of an SVID that was itself a rotation's). Every request must succeed, and the agent
# must have rotated several times (its log) while the gateway saw new TLS connections (metrics).
# The agent is restarted with the default lifetime at the end.
source "$(dirname "$0")/lib.sh"
mode_independent "SVIDs are issued and rotated the same whatever the redirect"
require_protected client
seconds=${ROTATION_SECONDS:-80}
lifetime=60
expected "agent --svid-lifetime ${lifetime}s; ${seconds} s request loop from client: 0 failed; >= 2 rotations;" \
  "gateway TLS connections grow; tollgatectl certs shows a new serial for the same SPIFFE ID"

restore() { lab agent restart >/dev/null 2>&1 || true; }
trap restore EXIT
rotated_before=$(grep -c "SVIDs rotated" "$LAB_STATE/logs/agent.log" 2>/dev/null || true)
TOLLGATE_LAB_SVID_LIFETIME=${lifetime}s lab agent restart >/dev/null 2>&1 ||
  fail "agent restart with --svid-lifetime ${lifetime}s failed"
tls_before=$(gw_metric tollgate_gateway_tls_connections_total)

# "<spiffe id> <serial>" of client's service account, as tollgatectl certs reports it.
client_cert() {
  "$LAB_TOLLGATECTL" certs -o json --run-dir "$LAB_AGENT_RUN_DIR" 2>/dev/null | python3 -c '
import json, sys
for c in json.load(sys.stdin).get("certs", []):
    if c.get("serviceAccount", "").startswith("default/") and c.get("spiffeId"):
        print(c["spiffeId"], c.get("serial", "")); break'
}
ok=0 failed=0 codes=""
cert_first=""
t0=$SECONDS
while ((SECONDS - t0 < seconds)); do
  pod_curl client -- --max-time 5 http://httpbin.test/headers
  if [[ $CURL_CODE == 200 ]]; then
    ok=$((ok + 1))
    [[ -n $cert_first ]] || cert_first=$(client_cert)
  else
    failed=$((failed + 1))
    codes+=" $CURL_CODE"
  fi
  sleep 0.2
done
rotated=$(($(grep -c "SVIDs rotated" "$LAB_STATE/logs/agent.log" 2>/dev/null || true) - rotated_before))
tls_after=$(gw_metric tollgate_gateway_tls_connections_total)
observe "requests ok=$ok failed=$failed${codes:+ (codes:$codes)}; rotations=$rotated;" \
  "gateway TLS connections +$((tls_after - tls_before))"
((ok > 0)) || fail "no request succeeded"
((failed == 0)) || fail "$failed requests failed during rotation"
((rotated >= 2)) || fail "want >= 2 rotations in ${seconds} s with a ${lifetime} s lifetime, saw $rotated"
((tls_after > tls_before)) || fail "the gateway saw no new TLS connection: rotated SVIDs never used"
cert_last=$(client_cert)
observe "certs: ${cert_first:-none} -> ${cert_last:-none}"
if [[ -z $cert_first || -z $cert_last ]]; then
  fail "tollgatectl certs showed no SVID for client's service account"
elif [[ ${cert_first% *} != "${cert_last% *}" || ${cert_first#* } == "${cert_last#* }" ]]; then
  fail "tollgatectl certs: want the same SPIFFE ID with a new serial after rotation"
fi
finish
