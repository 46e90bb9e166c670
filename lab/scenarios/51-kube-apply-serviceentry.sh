#!/usr/bin/env bash
# --config-source kubernetes: `kubectl apply` of a ServiceEntry for blocked.test lets the client
# reach it once the agent's watch delivered it, and `kubectl delete` denies it again; a
# NetworkPolicy that denies the client's egress blocks httpbin.test, edited to allow it, allows.
# The time from the apply returning to the first allowed request is printed, never asserted.
# The gateway reads files: the ServiceEntry's file is written first and the gateway's reload
# awaited, so that time is the agent's (watch) alone.
source "$(dirname "$0")/lib.sh"
kube_only
require_protected client
expected "blocked.test 403; ServiceEntry applied -> 200 (time printed); deleted -> 403;" \
  "NetworkPolicy egress [] -> httpbin denied (access log deny); edited to allow 198.18.0.0/24 -> 200"

se=$LAB_CONFIG/90-serviceentry-blocked-51.yaml
np=$LAB_CONFIG/90-networkpolicy-51.yaml
cleanup() {
  lab_config_delete "$se"
  lab_config_delete "$np"
}
trap cleanup EXIT
blocked=$(lab_addr blocked.test)
httpbin=$(lab_addr httpbin.test)
code_is() { # <code> <host> <addr>
  pod_curl client -- --max-time 5 --resolve "$2:80:$3" "http://$2/"
  [[ $CURL_CODE == "$1" ]]
}
code_not() { ! code_is "$@"; }

code_is 403 blocked.test "$blocked" || fail "precondition: blocked.test not denied (status $CURL_CODE)"
observe "before: $CURL_CODE"

cat >"$se" <<YAML
# written by scenario 51
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: blocked-51
  namespace: default
spec:
  hosts: ["blocked.test"]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
YAML
gw_before=$(gw_metric tollgate_gateway_config_reloads_ok_total)
gw_reloaded() { local n; n=$(gw_metric tollgate_gateway_config_reloads_ok_total); [[ $n =~ ^[0-9]+$ ]] && ((n > gw_before)); }
wait_until gw_reloaded || fail "the gateway did not reload $se"
# The agent reads the API only: the file alone changes nothing for it.
code_is 403 blocked.test "$blocked" || fail "file only (not applied): blocked.test got $CURL_CODE, want 403"

t0=$(now_ms)
lab_kubectl apply -f "$se" >/dev/null || fail "kubectl apply -f $se failed"
t1=$(now_ms)
# Poll as fast as a curl in the pod goes: no sleep between tries.
allowed=0
until (($(now_ms) - t1 > HANG_S * 1000)); do
  if code_is 200 blocked.test "$blocked"; then allowed=1; break; fi
done
t2=$(now_ms)
if ((allowed)); then
  observe "applied (kubectl apply took $((t1 - t0)) ms) -> first 200 $((t2 - t1)) ms after it returned"
  echo "apply-to-allowed: $((t2 - t1)) ms (kubectl apply itself $((t1 - t0)) ms)" >&2
else
  fail "blocked.test not allowed ${HANG_S} s after kubectl apply (last status $CURL_CODE)"
fi

lab_kubectl delete -f "$se" >/dev/null || fail "kubectl delete -f $se failed"
if wait_until code_is 403 blocked.test "$blocked"; then observe "deleted -> 403 after ${WAITED_MS} ms"; else
  fail "blocked.test still allowed after kubectl delete (status $CURL_CODE)"
fi
lab_config_delete "$se"

# NetworkPolicy: deny all egress of app=client, then allow the lab's service subnet.
code_is 200 httpbin.test "$httpbin" || fail "precondition: httpbin not allowed (status $CURL_CODE)"
write_np() { # <egress yaml>
  cat >"$np" <<YAML
# written by scenario 51
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: client-egress-51
  namespace: default
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress: $1
YAML
}
access_log_mark
write_np "[]"
lab_config_apply "$np"
if wait_until code_not 200 httpbin.test "$httpbin"; then observe "policy deny-all -> $CURL_CODE"; else
  fail "httpbin still 200 with a deny-all egress NetworkPolicy"
fi
expect_access_log "deny by NetworkPolicy" pod=default/client decision=deny name=httpbin.test
write_np "[{to: [{ipBlock: {cidr: 198.18.0.0/24}}], ports: [{port: 80, protocol: TCP}]}]"
lab_config_apply "$np"
if wait_until code_is 200 httpbin.test "$httpbin"; then observe "policy edited to allow -> 200 after ${WAITED_MS} ms"; else
  fail "httpbin not allowed after the NetworkPolicy was edited to allow it (status $CURL_CODE)"
fi
finish
