#!/usr/bin/env bash
# Opaque TCP (nothing in the bytes names the destination): nc to opaque.test:9000 (ServiceEntry
# protocol TCP, resolution DNS) is denied while the pod has never resolved opaque.test, and allowed
# once it has: the proxy names the flow by what the pod resolved to that address. A fresh pod, so
# that nothing it resolved earlier counts.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_dns.sh"
opaque=$(lab_addr opaque.test)
pod=dnsfresh
expected "new pod: nc $opaque 9000 before resolving -> no reply, access log deny, opaque.test log +0;" \
  "getent hosts opaque.test -> $opaque; nc again -> banner + echo, opaque.test log +1, access log" \
  "name opaque.test allow registry tcp"

cleanup() { lab del-pod "$pod" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
lab add-pod "$pod" --namespace default --label app=dnsfresh >/dev/null 2>&1 || {
  echo "observed: add-pod $pod failed"
  exit 1
}
require_protected "$pod"

mark opaque.test
access_log_mark
nc_opaque() { lab_exec "$pod" -- sh -c "printf 'ping\n' | nc -w 5 $opaque 9000" 2>&1; }
out=$(nc_opaque)
observe "unresolved: '${out:-no reply}'"
grep -q hello <<<"$out" && fail "opaque.test answered a pod that never resolved it"
untouched opaque.test
expect_access_log "unresolved" pod=default/$pod dst="$opaque:9000" decision=deny

expect_ok "getent hosts opaque.test" lab_exec "$pod" -- getent hosts opaque.test
grep -q "^$opaque " <<<"$LAST_OUT" || fail "getent opaque.test gave '$LAST_OUT'"
mark opaque.test
access_log_mark
out=$(nc_opaque)
observe "resolved: '$(tr '\n' '|' <<<"$out")'"
grep -q "opaque.test:9000 hello" <<<"$out" && grep -q "echo ping" <<<"$out" ||
  fail "after resolving: no banner/echo from opaque.test: $out"
settle
lines=$(($(server_log_lines opaque.test) - $(marked opaque.test)))
observe "opaque.test log +$lines"
((lines == 1)) || fail "opaque.test log grew by $lines, want 1"
expect_access_log "resolved" pod=default/$pod dst="$opaque:9000" name=opaque.test decision=allow \
  reason=registry
finish
