#!/usr/bin/env bash
# --config-source kubernetes: `kubectl apply` of a ServiceEntry for blocked.test lets the client
# reach it once the agent's and the gateway's watches delivered it (the gateway, in tg-gw, reads
# the API too: tollgate_config_source_ready 1 and its config reloads grow with the apply and the
# delete), and `kubectl delete` denies it again; a NetworkPolicy that denies the client's egress
# blocks httpbin.test, edited to allow it, allows. The time from the apply returning to the first
# allowed request (the later of the two watches) is printed, never asserted.
source "$(dirname "$0")/lib.sh"
kube_only
require_protected client
expected "blocked.test 403; gateway on the API (source ready 1); ServiceEntry applied -> 200 (time" \
  "printed), gateway reloads +>=1; deleted -> 403, gateway reloads +>=1 again;" \
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
# The gateway's /metrics has the kubernetes source's series only when it reads the API.
gw_ready=$(gw_metric tollgate_config_source_ready)
observe "gateway config_source_ready $gw_ready"
[[ $gw_ready == 1 ]] || fail "the gateway does not read a ready kubernetes source (tollgate_config_source_ready '$gw_ready')"
# gw_reloads_above N: the gateway installed a config since its reload counter read N.
gw_reloads_above() { local n; n=$(gw_metric tollgate_gateway_config_reloads_ok_total); [[ $n =~ ^[0-9]+$ ]] && ((n > $1)); }

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
# Neither the agent nor the gateway reads files with this source: the file alone changes nothing.
code_is 403 blocked.test "$blocked" || fail "file only (not applied): blocked.test got $CURL_CODE, want 403"

gw_before=$(gw_metric tollgate_gateway_config_reloads_ok_total)
[[ $gw_before =~ ^[0-9]+$ ]] || fail "gateway /metrics unreadable ($gw_before)"
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
# Already true once the 200 came through the gateway; awaited anyway so the counter is checked
# even when the request failed for another reason.
if wait_until gw_reloads_above "$gw_before"; then
  gw_applied=$(gw_metric tollgate_gateway_config_reloads_ok_total)
  observe "gateway config reloads +$((gw_applied - gw_before)) after the apply"
else
  gw_applied=$gw_before
  fail "the gateway's config_reloads_ok_total did not grow after kubectl apply (still $gw_before)"
fi

lab_kubectl delete -f "$se" >/dev/null || fail "kubectl delete -f $se failed"
if wait_until code_is 403 blocked.test "$blocked"; then observe "deleted -> 403 after ${WAITED_MS} ms"; else
  fail "blocked.test still allowed after kubectl delete (status $CURL_CODE)"
fi
if wait_until gw_reloads_above "$gw_applied"; then
  observe "gateway config reloads +$(($(gw_metric tollgate_gateway_config_reloads_ok_total) - gw_applied)) after the delete"
else
  fail "the gateway's config_reloads_ok_total did not grow after kubectl delete (still $gw_applied)"
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
