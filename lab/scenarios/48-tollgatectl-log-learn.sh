#!/usr/bin/env bash
# tollgatectl log -f and learn against the running lab agent. log -f prints the deny of
# blocked.test as it happens. learn watches the node while the mesh runs ALLOW_ANY and the client
# reaches blocked.test over HTTP and TLS; its YAML validates, and applied with REGISTRY_ONLY it
# allows exactly that: blocked.test on 80 and 443 again, not on a port never seen.
source "$(dirname "$0")/lib.sh"
require_protected client
expected "log -f: the blocked.test deny (http deny not_in_registry) shown as it happens;" \
  "learn over ALLOW_ANY traffic: one ServiceEntry for blocked.test (HTTP 80, TLS 443) from" \
  "default/client; config validate accepts it; applied in REGISTRY_ONLY: http and https" \
  "blocked.test allowed, blocked.test:8080 still 403"

ctl() { "$LAB_TOLLGATECTL" "$@" --run-dir "$LAB_AGENT_RUN_DIR"; }
[[ -x $LAB_TOLLGATECTL ]] || fail "no tollgatectl at $LAB_TOLLGATECTL"
blocked=$(lab_addr blocked.test)
mesh=$LAB_CONFIG/00-tollgate-config.yaml
learned=$LAB_CONFIG/90-learned-48.yaml
tmp=$(mktemp -d)
cp "$mesh" "$tmp/mesh.orig"
cleanup() {
  kill "$follower" "$learner" 2>/dev/null
  cp -f "$tmp/mesh.orig" "$mesh"
  lab_config_apply "$mesh"
  lab_config_delete "$learned"
  rm -rf "$tmp"
}
follower= learner=
trap cleanup EXIT
generation() { ctl status -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("configGeneration", 0))'; }
# Waits for the agent to load a configuration newer than generation $1.
reloaded_after() { local g; g=$(generation); [[ -n $g && $g -gt $1 ]]; }

# --- log -f: follows from the newest event, so requests are sent until it has printed one.
# The binary itself in the background, not the ctl function: $! must be tollgatectl's pid (a
# subshell would take the signals).
"$LAB_TOLLGATECTL" log default/client -f --tail 0 --kind conn --count 1 -o json \
  --run-dir "$LAB_AGENT_RUN_DIR" >"$tmp/log.json" 2>"$tmp/log.err" &
follower=$!
sent_at=0
printed() {
  if ! kill -0 "$follower" 2>/dev/null; then return 0; fi
  sent_at=$(now_ms)
  pod_curl client -- --max-time 5 --resolve "blocked.test:80:$blocked" http://blocked.test/
  return 1
}
wait_until printed || fail "log -f printed nothing while client was denied blocked.test: $(cat "$tmp/log.err")"
wait "$follower"
rc=$?
follower=
[[ $rc == 0 ]] || fail "log -f exited $rc: $(cat "$tmp/log.err")"
if verdict=$(python3 - "$tmp/log.json" "$blocked" <<'PY'
import json, sys, time
lines = [l for l in open(sys.argv[1]) if l.strip()]
if len(lines) != 1: print(f"{len(lines)} lines, want 1 (--count 1)"); sys.exit(1)
e = json.loads(lines[0]); f = e.get("fields", {})
want = {"name": "blocked.test", "decision": "deny", "reason": "not_in_registry", "protocol": "http",
        "dst": f"{sys.argv[2]}:80"}
bad = {k: f.get(k) for k, v in want.items() if f.get(k) != v}
if e.get("namespace") != "default" or e.get("pod") != "client": bad["pod"] = f"{e.get('namespace')}/{e.get('pod')}"
if bad: print(f"unexpected {bad} in {e}"); sys.exit(1)
print(f"event seq {e['seq']} at {e['unixMs']}")
PY
); then
  observe "log -f: $verdict, printed $(( $(now_ms) - sent_at )) ms after the last request was sent (at most one 200 ms poll, by design)"
else
  fail "log -f: $verdict"
fi

# --- learn under ALLOW_ANY.
g=$(generation)
sed -i 's/mode: REGISTRY_ONLY/mode: ALLOW_ANY/' "$mesh"
lab_config_apply "$mesh"
wait_until reloaded_after "$g" || fail "the agent did not load ALLOW_ANY"
"$LAB_TOLLGATECTL" learn -n default --duration 10m --run-dir "$LAB_AGENT_RUN_DIR" \
  >"$tmp/learned.yaml" 2>"$tmp/learn.err" &
learner=$!
learning() { grep -q '^learning from' "$tmp/learn.err"; }
wait_until learning || fail "learn did not start: $(cat "$tmp/learn.err")"
# The gateway reloads on its own: until it has ALLOW_ANY too, it refuses the tunnel.
http_is() { pod_curl client -- --max-time 10 --resolve "blocked.test:${2:-80}:$blocked" "http://blocked.test:${2:-80}/"; [[ $CURL_CODE == "$1" ]]; }
https_is() { pod_curl client -- --max-time 10 --resolve "blocked.test:443:$blocked" --cacert "$LAB_CA" https://blocked.test/; [[ $CURL_CODE == "$1" ]]; }
wait_until http_is 200 || fail "ALLOW_ANY: http://blocked.test/ got $CURL_CODE rc=$CURL_RC"
wait_until https_is 200 || fail "ALLOW_ANY: https://blocked.test/ got $CURL_CODE rc=$CURL_RC"
# Both connections have ended once their allow_any records are in the journal.
recorded() {
  [[ $(ctl log default/client --kind conn -o json | grep -c '"reason":"allow_any"') -ge 2 ]]
}
wait_until recorded || fail "the two ALLOW_ANY connections never reached the journal"
kill -INT "$learner"
wait "$learner"
rc=$?
learner=
[[ $rc == 0 ]] || fail "learn exited $rc: $(cat "$tmp/learn.err")"
grep -q '^interrupted after' "$tmp/learn.err" || fail "learn did not end on SIGINT: $(cat "$tmp/learn.err")"
cp -f "$tmp/mesh.orig" "$mesh"
lab_config_apply "$mesh"
observe "learn: $(grep -c '^kind: ServiceEntry' "$tmp/learned.yaml") ServiceEntry(s); $(grep -m1 '^# blocked.test' "$tmp/learned.yaml")"
grep -q '^    - blocked.test$' "$tmp/learned.yaml" || fail "no entry for blocked.test: $(cat "$tmp/learned.yaml")"
grep -q '{number: 80, name: http-80, protocol: HTTP}' "$tmp/learned.yaml" || fail "blocked.test: no HTTP 80 port"
grep -q '{number: 443, name: tls-443, protocol: TLS}' "$tmp/learned.yaml" || fail "blocked.test: no TLS 443 port"
grep -q '^# blocked.test: .* from default/' "$tmp/learned.yaml" || fail "no count/service account comment"

# --- validate, apply with REGISTRY_ONLY, check what it allows.
mkdir -p "$tmp/validate"
cp "$LAB_CONFIG"/*.yaml "$tmp/validate/"
cp "$tmp/learned.yaml" "$tmp/validate/90-learned.yaml"
if out=$("$LAB_TOLLGATECTL" config validate "$tmp/validate" 2>&1); then observe "config validate: ok"; else
  fail "config validate refused the learned YAML: $out"
fi
g=$(generation)
cp "$tmp/learned.yaml" "$learned"
lab_config_apply "$learned"
wait_until reloaded_after "$g" || fail "the agent did not load the learned entries"
wait_until http_is 200 || fail "learned entry applied: http://blocked.test/ got $CURL_CODE"
observe "REGISTRY_ONLY + learned: http=$CURL_CODE"
wait_until https_is 200 || fail "learned entry applied: https://blocked.test/ got $CURL_CODE rc=$CURL_RC"
observe "https=$CURL_CODE"
http_is 403 8080 || fail "blocked.test:8080 was never seen but got $CURL_CODE"
observe "port 8080 (never seen)=$CURL_CODE"

# Back to the lab's registry: blocked.test denied again before the next scenario runs.
lab_config_delete "$learned"
wait_until http_is 403 || fail "blocked.test still allowed after the learned entry was removed"
finish
