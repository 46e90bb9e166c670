#!/usr/bin/env bash
# Tampering: root in a pod removes tollgate's redirect (nftables: deletes the table in its own
# netns; ebpf: detaches the programs from its cgroup). CNI CHECK (the installed
# conflist, run as a runtime runs it) reports the drift until the agent's reconcile loop has
# repaired it; the repair (brought by the nftables event or the interval) is counted and names the
# pod in the log.
# (Scenario 13 shows the host fence holding in between.)
source "$(dirname "$0")/lib.sh"
expected "root in pod 'drift' removes the redirect: CNI CHECK fails with error JSON (code 105," \
  "'rules drifted') before the repair; redirect back (repaired by the agent); drift_detected/drift_repaired" \
  "{default/drift} +1; agent log names the pod; CHECK passes again; blocked.test 403, httpbin 200"

pod=drift
scratch_pod "$pod" --namespace default
require_protected "$pod"
expect_ok "CHECK before" lab cni check "$pod"

has_table() { redirect_installed "$pod"; }
metric_mark tollgate_drift_detected_total pod=default/$pod
metric_mark tollgate_drift_repaired_total pod=default/$pod
log_lines=$(wc -l <"$LAB_LOGS/agent.log")

# The reconcile pass may come right between the delete and CHECK; then the
# table is back and CHECK rightly passes: tamper again.
check_failed=0 attempts=0
while ((attempts < 3)); do
  attempts=$((attempts + 1))
  remove_redirect "$pod" || fail "removing the redirect as root failed"
  t0=$(now_ms)
  rc=0
  check_out=$(lab cni check "$pod" 2>&1) || rc=$?
  check_ms=$(($(now_ms) - t0))
  if ((rc != 0)); then
    check_failed=1
    break
  fi
  has_table || fail "CHECK passed while the table was missing"
done
observe "CHECK after tampering: rc=$rc in ${check_ms} ms (attempt $attempts)"
((check_failed)) || fail "CHECK never reported the deleted table"
if ((check_failed)); then
  verdict=$(python3 - "$check_out" <<'PY'
import json, sys
text = sys.argv[1]
doc = next((json.loads(l) for l in text.splitlines() if l.startswith("{")), None)
if doc is None:
    print("no error JSON in: " + text[:300]); sys.exit(1)
problems = []
if doc.get("cniVersion") != "1.0.0": problems.append(f"cniVersion {doc.get('cniVersion')!r}")
if doc.get("code") != 105: problems.append(f"code {doc.get('code')!r}")
if "rules drifted" not in doc.get("msg", ""): problems.append(f"msg {doc.get('msg')!r}")
if "details" not in doc: problems.append("no details")
print("; ".join(problems) if problems else f"code {doc['code']} msg={doc['msg'][:60]!r}")
sys.exit(1 if problems else 0)
PY
  ) || fail "CHECK error JSON: $verdict"
  observe "error JSON $verdict"
fi

if wait_until has_table; then
  observe "table repaired after ${WAITED_MS} ms"
else
  observe "table never repaired (${WAITED_MS} ms)"
  fail "table not repaired ${HANG_S} s after CHECK"
fi
expect_metric_increase 1 tollgate_drift_detected_total pod=default/$pod
expect_metric_increase 1 tollgate_drift_repaired_total pod=default/$pod
event=$(tail -n "+$((log_lines + 1))" "$LAB_LOGS/agent.log" | grep -m1 "pod default/$pod: drift detected")
if [[ -n $event ]]; then observe "event logged"; else
  observe "event NOT logged"
  fail "no 'pod default/$pod: drift detected' line in the agent log"
fi
expect_ok "CHECK after repair" lab cni check "$pod"
mark blocked.test
# By address with the name in Host: the proxy's 403 whatever the DNS mode.
pod_curl "$pod" -- -H 'Host: blocked.test' "http://$(lab_addr blocked.test)/"
observe "blocked status=$CURL_CODE"
[[ $CURL_CODE == 403 ]] && denied_header || fail "blocked.test after repair: want 403, got $CURL_CODE"
untouched blocked.test
pod_curl "$pod" -- http://httpbin.test/headers
observe "httpbin status=$CURL_CODE"
[[ $CURL_CODE == 200 ]] || fail "httpbin after repair: want 200, got $CURL_CODE"
finish
