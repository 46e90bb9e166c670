#!/usr/bin/env bash
# --config-source kubernetes: `kubectl label pod` moves a pod into (and out of) a NetworkPolicy's
# podSelector, and the agent's decision for that pod follows the API's labels.
source "$(dirname "$0")/lib.sh"
kube_only
expected "pod lbl: httpbin 200; kubectl label tier=locked (policy egress []) -> denied; label removed -> 200"

np=$LAB_CONFIG/90-networkpolicy-52.yaml
SCRATCH_POD_TRAP=0
cleanup() {
  lab_config_delete "$np"
  lab del-pod lbl >/dev/null 2>&1
}
trap cleanup EXIT
scratch_pod lbl --namespace default
require_protected lbl
httpbin=$(lab_addr httpbin.test)
code() { pod_curl lbl -- --max-time 5 --resolve "httpbin.test:80:$httpbin" http://httpbin.test/; }
is_200() { code; [[ $CURL_CODE == 200 ]]; }
not_200() { code; [[ $CURL_CODE != 200 ]]; }

cat >"$np" <<YAML
# written by scenario 52
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: locked-52
  namespace: default
spec:
  podSelector: {matchLabels: {tier: locked}}
  policyTypes: [Egress]
  egress: []
YAML
# The policy selects nobody yet: wait for it to be loaded (a reload counted after the apply; the
# mark comes first, or a reload quicker than the mark goes unseen), then the pod is still allowed.
metric_mark tollgate_config_reloads_ok_total
lab_config_apply "$np"
loaded() { local d; d=$(metric_delta tollgate_config_reloads_ok_total); [[ $d =~ ^[0-9]+$ ]] && ((d > 0)); }
wait_until loaded || fail "the agent counted no config reload after the NetworkPolicy was applied"
is_200 || fail "unlabelled pod: httpbin got $CURL_CODE, want 200"
observe "unlabelled: $CURL_CODE"

lab_kubectl label pod -n default lbl tier=locked >/dev/null || fail "kubectl label failed"
if wait_until not_200; then observe "labelled tier=locked -> $CURL_CODE after ${WAITED_MS} ms"; else
  fail "httpbin still 200 after the pod was labelled into a deny-all policy"
fi
lab_kubectl label pod -n default lbl tier- >/dev/null || fail "kubectl label tier- failed"
if wait_until is_200; then observe "label removed -> 200 after ${WAITED_MS} ms"; else
  fail "httpbin not allowed again after the label was removed (status $CURL_CODE)"
fi
finish
