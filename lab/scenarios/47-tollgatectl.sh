#!/usr/bin/env bash
# tollgatectl against the running lab agent (admin.sock, root only): status and pods describe the
# node; rules reports the drift when root in a pod deletes its table (as in scenario 29) and OK
# once the agent repaired it; certs shows the SVID client's gateway flow was issued; a non-root
# user is refused with one line and exit 2.
source "$(dirname "$0")/lib.sh"
expected "status -o json: pods enrolled, gateway egress, identity on; pods: client rules ok;" \
  "rules default/ctl: DRIFT after the redirect is removed, OK after repair; certs: client's SPIFFE ID" \
  "with a serial and a future expiry; conns: client's open connection to httpbin.test, allowed," \
  "route through gateway egress, bytes both ways; as uid 65534: exit 2 'permission denied'"

ctl() { "$LAB_TOLLGATECTL" "$@" --run-dir "$LAB_AGENT_RUN_DIR"; }
[[ -x $LAB_TOLLGATECTL ]] || fail "no tollgatectl at $LAB_TOLLGATECTL"
require_protected client

# status
if status=$(ctl status -o json 2>&1); then
  verdict=$(python3 - "$status" "$(lab_mode)" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
mode = sys.argv[2]
problems = []
if int(s.get("enrolledPods", 0)) < 1: problems.append(f"enrolledPods {s.get('enrolledPods')}")
if int(s.get("configGeneration", 0)) < 1: problems.append("no config generation")
if not any(g.get("name") == "egress" for g in s.get("gateways", [])): problems.append("no gateway egress")
if not s.get("identityEnabled"): problems.append("identity off")
if s.get("redirectMode") != mode: problems.append(f"mode {s.get('redirectMode')}, lab {mode}")
print("; ".join(problems) if problems else
      f"{s['enrolledPods']} pods, generation {s['configGeneration']}, version {s.get('version')}")
sys.exit(1 if problems else 0)
PY
  ) || fail "status: $verdict"
  observe "status: $verdict"
else
  fail "status failed: $status"
fi

# pods
pods=$(ctl pods 2>&1) || fail "pods failed: $pods"
grep -Eq '^default +client +.* ok ' <<<"$pods" || fail "pods: no 'default client ... ok' row: $(head -c 400 <<<"$pods")"

# rules: drift, then repair
pod=ctl
lab del-pod "$pod" >/dev/null 2>&1
trap 'lab del-pod "$pod" >/dev/null 2>&1' EXIT
lab add-pod "$pod" --namespace default >/dev/null 2>&1 || fail "add-pod $pod failed"
rules=$(ctl rules "default/$pod" 2>&1) || fail "rules failed: $rules"
grep -q "rules OK" <<<"$rules" || fail "rules before tampering: $(head -c 300 <<<"$rules")"
# The repair may win the race with the command: tamper again (as scenario 29 does).
seen_drift=0
for _ in 1 2 3; do
  remove_redirect "$pod" || fail "removing the redirect as root failed"
  rules=$(ctl rules "default/$pod" 2>&1)
  if grep -q "DRIFT" <<<"$rules" && grep -Eq "table inet tollgate missing|link [0-9]+ was detached" <<<"$rules"; then
    seen_drift=1
    break
  fi
done
((seen_drift)) || fail "rules never showed the deleted table: $(head -c 300 <<<"$rules")"
repaired=0
for _ in $(seq 1 100); do
  if ctl rules "default/$pod" 2>/dev/null | grep -q "rules OK"; then
    repaired=1
    break
  fi
  sleep 0.1
done
((repaired)) || fail "rules did not report OK after the repair"
observe "rules: drift seen=$seen_drift, OK after repair=$repaired"

# certs: client's gateway flow needs an SVID
pod_curl client -- --max-time 5 http://httpbin.test/headers
[[ $CURL_CODE == 200 ]] || fail "client -> httpbin.test: $CURL_CODE"
if certs=$(ctl certs -o json 2>&1); then
  verdict=$(python3 - "$certs" <<'PY'
import json, sys, time
c = json.loads(sys.argv[1]).get("certs", [])
mine = [x for x in c if x.get("serviceAccount", "").startswith("default/")]
if not mine or not mine[0].get("spiffeId"):
    print(f"no issued SVID for a default/ service account in {c}"); sys.exit(1)
x = mine[0]
problems = []
if not x["spiffeId"].startswith("spiffe://"): problems.append(f"spiffeId {x['spiffeId']}")
if not x.get("serial"): problems.append("no serial")
if int(x.get("notAfterUnix", 0)) <= time.time(): problems.append("expired")
print("; ".join(problems) if problems else f"{x['spiffeId']} serial {x['serial'][:8]}...")
sys.exit(1 if problems else 0)
PY
  ) || fail "certs: $verdict"
  observe "certs: $verdict"
else
  fail "certs failed: $certs"
fi

# conns: a keep-alive connection through the gateway, held open for a few seconds
lab_exec client -- bash -c "(printf 'GET /headers HTTP/1.1\r\nHost: httpbin.test\r\n\r\n'; sleep 6) | nc -w 8 httpbin.test 80 >/dev/null" &
holder=$!
seen=""
for _ in $(seq 1 50); do
  conns=$(ctl conns default/client -o json 2>&1) || { fail "conns failed: $conns"; break; }
  seen=$(python3 - "$conns" <<'PY'
import json, sys
for c in json.loads(sys.argv[1]).get("conns", []):
    if c.get("name") == "httpbin.test" and c.get("decision") == "allow" and int(c.get("bytesDown", 0)) > 0:
        print(f"{c['originalDst']} {c['name']} {c['decision']} route={c.get('route')!r} up={c.get('bytesUp')} down={c.get('bytesDown')}")
        break
PY
  )
  [[ -n $seen ]] && break
  sleep 0.1
done
wait "$holder" 2>/dev/null
if [[ -z $seen ]]; then
  fail "conns never showed client's open connection to httpbin.test"
else
  observe "conns: $seen"
  [[ $seen == *"route='gateway egress"* ]] || fail "conns: route is not the gateway: $seen"
fi

# not root
rc=0
out=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$LAB_TOLLGATECTL" status \
  --run-dir "$LAB_AGENT_RUN_DIR" 2>&1) || rc=$?
((rc == 2)) || fail "as uid 65534: rc=$rc (expected 2)"
grep -Eq "permission denied|root only" <<<"$out" || fail "as uid 65534: $out"
observe "as uid 65534: rc=$rc"
finish
