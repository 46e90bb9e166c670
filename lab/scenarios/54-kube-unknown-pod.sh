#!/usr/bin/env bash
# --config-source kubernetes: a pod the CNI plugin names but the API server does not know (its
# Pod object deleted before ADD) is not enrolled: ADD fails with code 107 after the agent's wait,
# tollgate_enroll_unknown_pod_total grows, and its netns gets no redirect.
source "$(dirname "$0")/lib.sh"
kube_only
expected "pod ghost (sandbox, no Pod object): CNI ADD fails (code 107), enroll_unknown_pod +1, not enrolled"

cleanup() { lab del-pod ghost >/dev/null 2>&1; }
trap cleanup EXIT
cleanup
expect_ok "add-pod ghost --no-network" lab add-pod ghost --namespace default --no-network
lab_kubectl delete pod -n default ghost --grace-period=0 --force >/dev/null 2>&1 ||
  fail "kubectl delete pod ghost failed"
metric_mark tollgate_enroll_unknown_pod_total
rc=0
out=$(lab cni add ghost 2>&1) || rc=$?
observe "CNI ADD rc=$rc"
((rc != 0)) || fail "CNI ADD of a pod the API does not know succeeded: $out"
grep -q '"code": *107' <<<"$out" || fail "CNI ADD error is not code 107: $(tail -c 300 <<<"$out")"
expect_metric_increase 1 tollgate_enroll_unknown_pod_total
if redirect_installed ghost; then fail "pod ghost got tollgate's redirect"; observe "ghost: enrolled"; else
  observe "ghost: not enrolled"
fi
finish
